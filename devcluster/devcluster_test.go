package devcluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os/exec"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/hangman/hangman/internal/harness"
	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
)

// startTestDev starts a dev system of 3 nodes and 2 relays on a random
// port offset, off the default ports so that the tests run while a
// developer's own `hangman dev` is up. The other packages' tests (the
// bench's systems, e2e's) run beside these on ports of their own choosing,
// so a port already taken means another offset, up to devStartTries times.
func startTestDev(t *testing.T) *System {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var sys *System
	for try := 1; ; try++ {
		offset := 17000 + rand.IntN(6000)
		var err error
		sys, err = Start(ctx, Options{DataDir: t.TempDir(), Nodes: 3, Relays: 2, PortOffset: offset,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err == nil {
			break
		}
		if try == devStartTries || !strings.Contains(err.Error(), "address already in use") {
			cancel()
			t.Fatalf("start dev system: %v", err)
		}
		t.Logf("dev system on port offset %d: %v; trying another", offset, err)
	}
	t.Cleanup(func() {
		sys.Close()
		cancel()
	})
	// Start returns with the cluster formed, NATS mesh included: a
	// browser may act at once, and what it does must reach every relay.
	for _, n := range sys.nodes {
		if err := n.Ready(); err != nil {
			t.Fatalf("node %s not ready when Start returned: %v", n.ID(), err)
		}
		if got := n.NATSServer().NumRemotes(); got != len(sys.nodes)-1 {
			t.Fatalf("node %s has NATS routes to %d nodes when Start returned, want %d", n.ID(), got, len(sys.nodes)-1)
		}
	}
	for _, u := range sys.relayURLs {
		if err := harness.WaitHTTP(context.Background(), u+"/readyz", 20*time.Second, nil); err != nil {
			t.Fatalf("relay %s: %v", u, err)
		}
	}
	return sys
}

// devStartTries is how many port offsets startTestDev tries.
const devStartTries = 4

func TestDevSystemServesGameThroughEveryNode(t *testing.T) {
	sys := startTestDev(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i, addr := range sys.grpcAddrs {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		cl := hangmanv1.NewGameServiceClient(conn)
		room := fmt.Sprintf("dev-%d", i)
		if _, err := cl.CreateRoom(ctx, &hangmanv1.CreateRoomRequest{Room: room}); err != nil {
			t.Fatalf("create via %s: %v", addr, err)
		}
		rooms, err := cl.ListRooms(ctx, &hangmanv1.ListRoomsRequest{Consistency: hangmanv1.Consistency_CONSISTENCY_LINEARIZABLE})
		if err != nil {
			t.Fatalf("list via %s: %v", addr, err)
		}
		if len(rooms.GetRooms()) != i+1 {
			t.Fatalf("list via %s: %d rooms, want %d", addr, len(rooms.GetRooms()), i+1)
		}
	}
}

func TestGrpcurlListsServicesOfDevNode(t *testing.T) {
	grpcurl, err := exec.LookPath("grpcurl")
	if err != nil {
		t.Skip("grpcurl not installed (.ci/run installs it with go install github.com/fullstorydev/grpcurl/cmd/grpcurl)")
	}
	sys := startTestDev(t)
	out, err := exec.Command(grpcurl, "-plaintext", sys.grpcAddrs[0], "list").CombinedOutput()
	if err != nil {
		t.Fatalf("grpcurl list: %v\n%s", err, out)
	}
	for _, svc := range []string{"hangman.v1.GameService", "hangman.v1.ClusterService", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"} {
		if !strings.Contains(string(out), svc) {
			t.Errorf("grpcurl list lacks %s:\n%s", svc, out)
		}
	}
	out, err = exec.Command(grpcurl, "-plaintext", "-d", `{"room":"grpcurl"}`, sys.grpcAddrs[1], "hangman.v1.GameService/CreateRoom").CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"masked"`) {
		t.Fatalf("grpcurl CreateRoom: %v\n%s", err, out)
	}
}

func TestNatsCLIWatchesGamesAndListsServices(t *testing.T) {
	natsCLI, err := exec.LookPath("nats")
	if err != nil {
		t.Skip("nats CLI not installed (.ci/run installs it with go install github.com/nats-io/natscli/nats)")
	}
	sys := startTestDev(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Watch on the leader's own server, so the subscription is in place
	// for the publisher the moment the CLI says so.
	var leaderURL string
	harness.Eventually(t, 10*time.Second, "a leader", func() error {
		for i, n := range sys.nodes {
			if n.IsLeader() {
				leaderURL = sys.natsURLs[i]
				return nil
			}
		}
		return errors.New("no node leads")
	})
	sub := exec.CommandContext(ctx, natsCLI, "--server", leaderURL, "sub", "hangman.room.clitest.>", "--count", "4")
	var out harness.SyncBuffer
	sub.Stdout, sub.Stderr = &out, &out
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, 10*time.Second, "nats sub to subscribe", func() error {
		if !strings.Contains(out.String(), "Subscribing on") {
			return fmt.Errorf("nats sub says %q", out.String())
		}
		return nil
	})

	conn, err := grpc.NewClient(sys.grpcAddrs[2], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cl := hangmanv1.NewGameServiceClient(conn)
	if _, err := cl.CreateRoom(ctx, &hangmanv1.CreateRoomRequest{Room: "clitest"}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.JoinRoom(ctx, &hangmanv1.JoinRoomRequest{Room: "clitest", PlayerId: "p1", Name: "Ann"}); err != nil {
		t.Fatal(err)
	}
	if err := sub.Wait(); err != nil {
		t.Fatalf("nats sub: %v\n%s", err, out.String())
	}
	got := out.String()
	for _, want := range []string{`hangman.room.clitest.event`, `hangman.room.clitest.state`, `"kind":"room_created"`, `"kind":"player_joined"`, `Nats-Msg-Id: clitest.`} {
		if !strings.Contains(got, want) {
			t.Errorf("nats sub output lacks %s:\n%s", want, got)
		}
	}

	// The embedded servers mesh their routes in the background: wait until
	// the CLI, on node 1's server, sees every node's service.
	var ls []byte
	harness.Eventually(t, 15*time.Second, "nats micro ls to list 3 hangman-node instances", func() error {
		ls, err = exec.CommandContext(ctx, natsCLI, "--server", sys.natsURLs[0], "micro", "ls", "--json").CombinedOutput()
		if err != nil {
			return fmt.Errorf("nats micro ls: %w: %s", err, ls)
		}
		if n := strings.Count(string(ls), `"name": "hangman-node"`); n != 3 {
			return fmt.Errorf("%d instances listed", n)
		}
		return nil
	})
	stats, err := exec.CommandContext(ctx, natsCLI, "--server", sys.natsURLs[1], "micro", "stats", "hangman-node", "--json").CombinedOutput()
	if err != nil {
		t.Fatalf("nats micro stats: %v\n%s", err, stats)
	}
	var resp []struct {
		Endpoints []struct {
			Data struct {
				Leader bool   `json:"leader"`
				Events uint64 `json:"events_published"`
			} `json:"data"`
		} `json:"endpoints"`
	}
	if err := json.Unmarshal(stats, &resp); err != nil {
		t.Fatalf("nats micro stats --json: %v\n%s", err, stats)
	}
	var published uint64
	for _, r := range resp {
		for _, e := range r.Endpoints {
			if e.Data.Leader {
				published += e.Data.Events
			}
		}
	}
	if published < 2 {
		t.Errorf("nats micro stats shows %d events published by the leader, want at least 2:\n%s", published, stats)
	}
}
