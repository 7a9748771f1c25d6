package raftnode

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hangman/hangman/internal/harness"
	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
	"github.com/hangman/hangman/services/game"
)

// TestFloodedRoomKeepsItsPlayers: alice floods her room from many
// connections to two nodes, each request new (its own id; a letter
// guessed already), and each remembered. The leader stops proposing
// her flood once the room is under pressure (game.Machine.Admit), so the
// room's memory of answers never fills, and bob's guesses still go in.
// Before, her flood filled it (game.SessionCap) and every request to the
// room, bob's too, was refused busy for game.SessionMinAge.
func TestFloodedRoomKeepsItsPlayers(t *testing.T) {
	// Raft in memory: a flood into one room is one entry per command
	// (an entry holds one command per room), over 5,000 of them, and what
	// is tested is the leader's choice, not the disk.
	c, _ := newInmemCluster(t, 3)
	li := c.leader()
	setupRoom(t, c, li, "den")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	leader, follower := c.client(li), c.client((li+1)%3)
	if _, err := leader.Guess(ctx, &hangmanv1.GuessRequest{Room: "den", PlayerId: "alice", Letter: "e", Token: harness.TokenOf("alice")}); err != nil {
		t.Fatal(err)
	}

	var admitted, refused atomic.Int64
	var wg sync.WaitGroup
	for w := range 32 {
		cl := leader
		if w%2 == 1 {
			cl = follower // forwarded: the leader admits it all the same
		}
		wg.Go(func() {
			for i := 0; admitted.Load() <= game.SessionCap; i++ {
				_, err := cl.Guess(ctx, &hangmanv1.GuessRequest{Room: "den", PlayerId: "alice", Letter: "e", RequestId: fmt.Sprintf("flood-%d-%d", w, i), Token: harness.TokenOf("alice")})
				switch status.Code(err) {
				case codes.OK, codes.FailedPrecondition:
					admitted.Add(1)
				case codes.ResourceExhausted:
					refused.Add(1)
					return
				default:
					t.Errorf("flood %d/%d: %v", w, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	t.Logf("alice's flood: %d admitted, then busy", admitted.Load())
	// The leader asks as each entry is made: beyond what put the room
	// under pressure, it admitted at most one command of the room for
	// this entry and each on its way.
	if got := admitted.Load(); got < game.PressureAt-game.SeatShare || got > game.PressureAt+maxInflightEntries+1 {
		t.Fatalf("%d of alice's requests admitted; want the room under pressure (%d young answers) and at most %d beyond", got, game.PressureAt, maxInflightEntries+1)
	}
	for i := range game.SeatShare - 1 {
		letter := string(rune('a' + i%26))
		_, err := leader.Guess(ctx, &hangmanv1.GuessRequest{Room: "den", PlayerId: "bob", Letter: letter, RequestId: fmt.Sprintf("bob-%d", i), Token: harness.TokenOf("bob")})
		if code := status.Code(err); code != codes.OK && code != codes.FailedPrecondition {
			t.Fatalf("bob's guess %q during alice's flood: %v", letter, err)
		}
	}
	if got := c.metricsOf(li)["hangman_flood_refusals_total"]; got < float64(refused.Load()) {
		t.Errorf("hangman_flood_refusals_total = %v; the leader refused %d", got, refused.Load())
	}
}

// TestAdmissionFitsARoomsMemory: the commands the leader admits to a room
// before the room's last answers are applied (one per entry on its way,
// and the one being made) stay within game.InflightMargin, so a room
// under pressure can still remember every seat's share and the
// outsiders'.
func TestAdmissionFitsARoomsMemory(t *testing.T) {
	if in := maxInflightEntries + 1; in > game.InflightMargin {
		t.Fatalf("%d commands to a room may be admitted and not applied; game.InflightMargin is %d", in, game.InflightMargin)
	}
}
