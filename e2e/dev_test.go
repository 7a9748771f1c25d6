package e2e

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
)

// runDev starts `hangman dev` on a data dir and waits until its first relay
// is ready. It returns the process and the first node's gRPC address.
func runDev(t *testing.T, bin, dataDir string, offset int) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(bin, "dev", "--data-dir", dataDir, "--port-offset", fmt.Sprint(offset))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	var grpcAddr, relayURL string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "play" && relayURL == "" {
			relayURL = f[1]
		}
		if len(f) >= 3 && f[0] == "node1" && f[1] == "grpc" {
			grpcAddr = f[2]
		}
		if strings.Contains(sc.Text(), "Ctrl-C stops everything") {
			break
		}
	}
	go func() {
		for sc.Scan() {
		}
	}()
	if grpcAddr == "" || relayURL == "" {
		t.Fatalf("hangman dev did not print its addresses (grpc %q, relay %q)", grpcAddr, relayURL)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(relayURL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("relay %s not ready: %v", relayURL, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return cmd, grpcAddr
}

// interrupt sends Ctrl-C and requires a clean exit within the deadline.
func interrupt(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("hangman dev exited uncleanly after Ctrl-C: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("hangman dev still running 15s after Ctrl-C")
	}
}

func TestDevStopsCleanlyAndRestartsFromItsDataDir(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole system twice; skipped with -short")
	}
	bin := buildBinary(t)
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
