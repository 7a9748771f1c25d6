package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/hangman/hangman/internal/harness"
	"github.com/hangman/hangman/internal/proc"
	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
)

// runDev starts `hangman dev` on a data dir and waits until its first relay
// is ready. It returns the process and the first node's gRPC address.
func runDev(t *testing.T, bin, dataDir string, offset int) (*proc.Proc, string) {
	t.Helper()
	lines := make(chan string, 64)
	p, err := proc.Start(proc.Spec{Name: "dev", Path: bin, Args: []string{"dev", "--data-dir", dataDir, "--port-offset", fmt.Sprint(offset)}, Lines: lines})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Kill() })
	var grpcAddr, relayURL string
	timeout := time.After(60 * time.Second)
read:
	for {
		select {
		case l := <-lines:
			f := strings.Fields(l)
			if len(f) >= 2 && f[0] == "play" && relayURL == "" {
				relayURL = f[1]
			}
			if len(f) >= 3 && f[0] == "node1" && f[1] == "grpc" {
				grpcAddr = f[2]
			}
			if strings.Contains(l, "Ctrl-C stops everything") {
				break read
			}
		case <-p.Done():
			t.Fatalf("hangman dev exited before printing its addresses:\n%s", p.Tail())
		case <-timeout:
			t.Fatal("hangman dev printed no addresses within 60s")
		}
	}
	if grpcAddr == "" || relayURL == "" {
		t.Fatalf("hangman dev did not print its addresses (grpc %q, relay %q)", grpcAddr, relayURL)
	}
	if err := p.WaitHTTP(context.Background(), relayURL+"/readyz", 20*time.Second); err != nil {
		t.Fatal(err)
	}
	return p, grpcAddr
}

// interrupt sends Ctrl-C and requires a clean exit within the deadline.
func interrupt(t *testing.T, p *proc.Proc) {
	t.Helper()
	if err := p.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
		if st := p.ExitState(); !st.Success() {
			t.Fatalf("hangman dev exited uncleanly after Ctrl-C: %v\n%s", st, p.Tail())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("hangman dev still running 15s after Ctrl-C")
	}
}

func TestDevStopsCleanlyAndRestartsFromItsDataDir(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole system twice; skipped with -short")
	}
	bin := harness.Binary(t)
	dataDir := t.TempDir()
	offset := 15000 + rand.IntN(5000)

	cmd, addr := runDev(t, bin, dataDir, offset)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dial := func() hangmanv1.GameServiceClient {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return hangmanv1.NewGameServiceClient(conn)
	}
	cl := dial()
	if _, err := cl.CreateRoom(ctx, &hangmanv1.CreateRoomRequest{Room: "kept"}); err != nil {
		t.Fatal(err)
	}
	j, err := cl.JoinRoom(ctx, &hangmanv1.JoinRoomRequest{Room: "kept", PlayerId: "ann", Name: "Ann"})
	if err != nil {
		t.Fatal(err)
	}
	g, err := cl.Guess(ctx, &hangmanv1.GuessRequest{Room: "kept", PlayerId: "ann", Letter: "e", Token: j.GetToken()})
	if err != nil {
		t.Fatal(err)
	}
	interrupt(t, cmd)

	cmd, addr = runDev(t, bin, dataDir, offset)
	cl = dial()
	r, err := cl.GetRoom(ctx, &hangmanv1.GetRoomRequest{Room: "kept", Consistency: hangmanv1.Consistency_CONSISTENCY_LINEARIZABLE})
	if err != nil {
		t.Fatalf("room after restart: %v", err)
	}
	if r.GetState().GetSeq() != g.GetState().GetSeq() || strings.Join(r.GetState().GetGuessed(), "") != "e" {
		t.Fatalf("room after restart is %v, want the state after the guess (seq %d)", r.GetState(), g.GetState().GetSeq())
	}
	interrupt(t, cmd)
}
