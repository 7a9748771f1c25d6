package bench

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
)

// rounder answers NewRound as a node does: it starts the next round only
// when the current one is over, and refuses otherwise.
type rounder struct {
	hangmanv1.GameServiceClient
	mu      sync.Mutex
	round   uint64
	over    bool
	calls   atomic.Int64
	refused atomic.Int64
}

func (r *rounder) NewRound(context.Context, *hangmanv1.NewRoundRequest, ...grpc.CallOption) (*hangmanv1.NewRoundResponse, error) {
	r.calls.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.over {
		r.refused.Add(1)
		return nil, status.Error(codes.FailedPrecondition, "round still playing")
	}
	r.round, r.over = r.round+1, false
	return &hangmanv1.NewRoundResponse{State: &hangmanv1.RoomState{Round: r.round, Status: "playing"}}, nil
}

// TestRoundGateStartsEachRoundOnce checks that however many guessers of a
// room see its round end, one NewRound starts the next, and that a guesser
// who missed a round learns of it instead of asking again.
func TestRoundGateStartsEachRoundOnce(t *testing.T) {
	ctx := context.Background()
	cl := &rounder{round: 1}
	g := &roundGate{room: "r"}
	for round := uint64(1); round <= 5; round++ {
		cl.mu.Lock()
		cl.over = true
		cl.mu.Unlock()
		var wg sync.WaitGroup
		got := make([]uint64, 8)
		for i := range got {
			wg.Go(func() { got[i] = g.after(ctx, cl, newPlayer("p"), round) })
		}
		wg.Wait()
		for i, r := range got {
			if r != round+1 {
				t.Errorf("round %d: guesser %d learnt round %d, want %d", round, i, r, round+1)
			}
		}
	}
	if n := cl.calls.Load(); n != 5 {
		t.Errorf("5 rounds took %d NewRound calls (%d refused), want 5", n, cl.refused.Load())
	}
	// A guesser still at round 2 hears of round 6 and calls nobody.
	if r := g.after(ctx, cl, newPlayer("p"), 2); r != 6 {
		t.Errorf("stale guesser learnt round %d, want 6", r)
	}
	if n := cl.calls.Load(); n != 5 {
		t.Errorf("a stale guesser made a NewRound call (%d in all)", n)
	}
}
