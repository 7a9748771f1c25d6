package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/hangman/hangman/internal/harness"
	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
)

// nodeArgs are the flags of a one-node cluster on free loopback ports.
func nodeArgs(t *testing.T, dataDir string) (args []string, grpcAddr, httpAddr string) {
	t.Helper()
	addrs := make([]string, 6)
	for i, p := range harness.FreePorts(t, len(addrs)) {
		addrs[i] = net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
	}
	return []string{"--id", "solo", "--data-dir", dataDir, "--bootstrap-expect", "1", "--log-level", "error",
		"--grpc-addr", addrs[0], "--raft-addr", addrs[1], "--serf-addr", addrs[2],
		"--nats-addr", addrs[3], "--nats-cluster-addr", addrs[4], "--http-addr", addrs[5]}, addrs[0], addrs[5]
}

// runNodeUntil runs `hangman node args` until check has run against it
// once the node is ready, then stops it.
func runNodeUntil(t *testing.T, args []string, grpcAddr, httpAddr string, check func(hangmanv1.GameServiceClient)) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	var runErr error
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		runErr = runNode(ctx, args)
	}()
	if err := harness.WaitHTTP(ctx, "http://"+httpAddr+"/readyz", 20*time.Second, exited); err != nil {
		cancel()
		<-exited
		t.Fatalf("hangman node %s: %v (it returned %v)", strings.Join(args, " "), err, runErr)
	}
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	check(hangmanv1.NewGameServiceClient(conn))
	conn.Close()
	cancel()
	<-exited
	if runErr != nil {
		t.Fatalf("node stopped with %v", runErr)
	}
}

// TestNodeRecoverFlag runs `hangman node --recover` on a real data dir: a
// bad peers file is refused before anything is touched, a good one is
// applied once and the data is kept.
func TestNodeRecoverFlag(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	args, grpcAddr, httpAddr := nodeArgs(t, dir)
	runNodeUntil(t, args, grpcAddr, httpAddr, func(cl hangmanv1.GameServiceClient) {
		if _, err := cl.CreateRoom(t.Context(), &hangmanv1.CreateRoomRequest{Room: "kept", MaxWrong: 26}); err != nil {
			t.Fatalf("create room: %v", err)
		}
	})
	db := filepath.Join(dir, "raft", "raft.db")
	stored, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}

	peers := filepath.Join(t.TempDir(), "peers.json")
	// A file that does not parse is refused before the data dir is even
	// opened; one that names servers the node does not have is refused
	// before raft's state is changed (TestRecoverRefusesWhatItCannotDo
	// checks the log), and the recovery below still finds the room.
	for _, tc := range []struct {
		file, want string
		untouched  bool
	}{
		{"", "no such file", true},
		{`[{"id": "solo"},]`, "want a JSON array", true},
		{`[{"id": "other"}]`, `"other" is neither this node nor a server of its raft configuration`, false},
	} {
		if tc.file != "" {
			if err := os.WriteFile(peers, []byte(tc.file), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		err := runNode(t.Context(), append(args, "--recover", peers))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("--recover with %q: got %v, want an error containing %q", tc.file, err, tc.want)
		}
		if now, err := os.ReadFile(db); tc.untouched && (err != nil || string(now) != string(stored)) {
			t.Fatalf("a refused --recover changed %s (%v)", db, err)
		}
	}

	if err := os.WriteFile(peers, []byte(`[{"id": "solo"}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	hasRoom := func(cl hangmanv1.GameServiceClient) {
		r, err := cl.GetRoom(t.Context(), &hangmanv1.GetRoomRequest{Room: "kept", Consistency: hangmanv1.Consistency_CONSISTENCY_LINEARIZABLE})
		if err != nil || r.GetState().GetRoom() != "kept" {
			t.Fatalf("room after recovery: %v, %v", r, err)
		}
	}
	runNodeUntil(t, append(args, "--recover", peers), grpcAddr, httpAddr, hasRoom)
	markers, err := filepath.Glob(filepath.Join(dir, "raft", "recovered-*"))
	if err != nil || len(markers) != 1 {
		t.Fatalf("recovery markers %v, %v", markers, err)
	}
	// The same list again, inline in the environment as a container
	// would keep it, is not applied a second time.
	t.Setenv("HANGMAN_RECOVER", `[{"id": "solo"}]`)
	runNodeUntil(t, args, grpcAddr, httpAddr, hasRoom)
	if again, _ := filepath.Glob(filepath.Join(dir, "raft", "recovered-*")); len(again) != 1 {
		t.Fatalf("recovery markers after a second start: %v", again)
	}
}

func TestNodeAdvertiseKeepsNames(t *testing.T) {
	for _, tc := range []struct{ advertise, bind, want string }{
		{"localhost", "0.0.0.0:9001", "localhost"},
		{"10.1.2.3", "0.0.0.0:9001", "10.1.2.3"},
		{"", "127.0.0.1:9001", ""},
	} {
		got, err := resolveAdvertise(t.Context(), tc.advertise, tc.bind)
		if err != nil || got != tc.want {
			t.Errorf("resolveAdvertise(%q, %q) = %q, %v; want %q", tc.advertise, tc.bind, got, err, tc.want)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if _, err := resolveAdvertise(ctx, "no-such-host.invalid", "0.0.0.0:9001"); err == nil || !strings.Contains(err.Error(), strconv.Quote("no-such-host.invalid")) {
		t.Fatalf("an advertise name that never resolves: %v", err)
	}
}

// TestNodeRefusesCapsItCannotTake: a gRPC cap of 0 would refuse every
// call (and means "the default" inside the config), and gRPC takes 32
// bits; both are refused with the flag's name, before anything starts.
func TestNodeRefusesCapsItCannotTake(t *testing.T) {
	for _, tc := range []struct {
		v    uint
		want uint32
		err  bool
	}{
		{0, 0, true},
		{1, 1, false},
		{16 << 10, 16 << 10, false},
		{math.MaxUint32, math.MaxUint32, false},
		{math.MaxUint32 + 1, 0, true},
	} {
		got, err := flagUint32("grpc-max-streams", tc.v)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("flagUint32(%d) = %d, %v; want %d, error %v", tc.v, got, err, tc.want, tc.err)
		}
		if err != nil && !strings.Contains(err.Error(), "--grpc-max-streams") {
			t.Errorf("error %q does not name the flag", err)
		}
	}
	err := runNode(context.Background(), []string{"--id", "n1", "--data-dir", t.TempDir(), "--grpc-max-header-bytes", "0"})
	if err == nil || !strings.Contains(err.Error(), "--grpc-max-header-bytes") {
		t.Fatalf("hangman node --grpc-max-header-bytes 0: %v, want a refusal naming the flag", err)
	}
}

// TestNodeAuditFlags runs `hangman node --audit-every 2 --audit-dir DIR`:
// the node writes the states it audits to DIR, each file named by its
// digest, and Status gives the digest of the whole state when asked.
// --audit-dir without --audit-every is refused.
func TestNodeAuditFlags(t *testing.T) {
	auditDir := filepath.Join(t.TempDir(), "audit")
	args, grpcAddr, httpAddr := nodeArgs(t, filepath.Join(t.TempDir(), "data"))
	args = append(args, "--audit-every", "2", "--audit-dir", auditDir)
	runNodeUntil(t, args, grpcAddr, httpAddr, func(cl hangmanv1.GameServiceClient) {
		// The state after r3 is audited at its index or the next, that
		// of r4.
		for i := range 5 {
			if _, err := cl.CreateRoom(t.Context(), &hangmanv1.CreateRoomRequest{Room: fmt.Sprintf("r%d", i)}); err != nil {
				t.Fatalf("create room: %v", err)
			}
		}
		conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		cc := hangmanv1.NewClusterServiceClient(conn)
		st, err := cc.Status(t.Context(), &hangmanv1.StatusRequest{StateDigest: true})
		if err != nil || len(st.GetStateDigest()) != 64 || st.GetStateIndex() == 0 || st.GetStateIndex() > st.GetAppliedIndex() {
			t.Fatalf("status with a digest: %v, %v", st, err)
		}
		if plain, err := cc.Status(t.Context(), &hangmanv1.StatusRequest{}); err != nil || plain.GetStateDigest() != "" {
			t.Fatalf("status without asking for a digest: %v, %v", plain, err)
		}
		harness.EventuallyTrue(t, 5*time.Second, "an audit of the state with r3", func() bool {
			files, _ := filepath.Glob(filepath.Join(auditDir, "audit-*.json"))
			for _, f := range files {
				if data, err := os.ReadFile(f); err == nil && strings.Contains(string(data), `"name":"r3"`) {
					sum := sha256.Sum256(data)
					return strings.HasSuffix(f, "-"+hex.EncodeToString(sum[:])[:12]+".json")
				}
			}
			return false
		})
	})
	err := runNode(context.Background(), []string{"--id", "n1", "--data-dir", t.TempDir(), "--audit-dir", auditDir})
	if err == nil || !strings.Contains(err.Error(), "audit-every is 0") {
		t.Fatalf("hangman node --audit-dir without --audit-every: %v, want a refusal", err)
	}
}
