package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
)

// devOffset moves the test's dev system off the default ports, so the tests
// run while a developer's own `hangman dev` is up.
const devOffset = 20000

func startTestDev(t *testing.T, offset int) *devSystem {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	sys, err := startDev(ctx, devOptions{DataDir: t.TempDir(), Nodes: 3, Relays: 2, PortOffset: offset,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		cancel()
		t.Fatalf("start dev system: %v", err)
	}
	t.Cleanup(func() {
		sys.Close()
		cancel()
	})
	deadline := time.Now().Add(20 * time.Second)
	for _, u := range sys.relayURLs {
		for {
			resp, err := http.Get(u + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("relay %s not ready: %v", u, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return sys
}

func TestDevSystemServesGameThroughEveryNode(t *testing.T) {
	sys := startTestDev(t, devOffset)
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
	sys := startTestDev(t, devOffset+100)
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
