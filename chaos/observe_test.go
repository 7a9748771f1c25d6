package chaos

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/hangman/hangman/internal/harness"
	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
	"github.com/hangman/hangman/relay"
)

// TestObserversOutnumberAddressCap: the observers watch every room through
// every relay with one websocket each, all from loopback, so a soak that
// makes more rooms than a relay lets one address hold websockets
// (relay.DefaultMaxConnsPerAddr) must still see every room through every
// relay. With the cap on, the relay refused the newest rooms' observers
// (429) for good, and the convergence check reported those rooms at seq 0
// (issue 15).
func TestObserversOutnumberAddressCap(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes; skipped under -short")
	}
	if err := netnsAvailable(); err != nil {
		t.Skipf("network namespaces unavailable (%v): the lab needs root, iproute2 and iptables", err)
	}
	bin := buildBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	lab, err := StartLab(ctx, LabConfig{Binary: bin, Dir: t.TempDir(), Nodes: 1, Relays: 1, Log: log})
	if err != nil {
		t.Fatalf("start lab: %v", err)
	}
	defer lab.Close()
	leader, err := lab.WaitLeader(ctx, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	rooms := map[string]uint64{} // room -> seq of its creation
	for i := range relay.DefaultMaxConnsPerAddr + 5 {
		room := fmt.Sprintf("cap%d", i)
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		res, err := lab.Nodes[leader].Game().CreateRoom(cctx, &hangmanv1.CreateRoomRequest{Room: room, RequestId: "create-" + room})
		ccancel()
		if err != nil {
			t.Fatalf("create room %s: %v", room, err)
		}
		rooms[room] = res.GetState().GetSeq()
	}

	obsCtx, stopObs := context.WithCancel(ctx)
	obs := newObservers(log, nil, nil)
	defer func() { stopObs(); obs.close() }()
	r := lab.Relays[0]
	for room := range rooms {
		obs.watchRelay(obsCtx, r, room)
	}
	harness.Eventually(t, 30*time.Second, "every room shown through relay "+r.Name, func() error {
		var unseen []string
		for room, seq := range rooms {
			if got := obs.Latest(room)["relay-"+r.Name]; got != seq {
				unseen = append(unseen, fmt.Sprintf("%s at seq %d, want %d", room, got, seq))
			}
		}
		if len(unseen) > 0 {
			return fmt.Errorf("%d of %d rooms not shown: %s", len(unseen), len(rooms), clipList(unseen, 10))
		}
		return nil
	})
}
