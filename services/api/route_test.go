package api

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
	"github.com/hangman/hangman/services/game"
)

// fakeReplica is a consensus layer that leads or not as the test says and
// answers proposals from a script. It never knows a leader elsewhere
// (LeaderConn is nil), so while it does not lead no leader is known.
type fakeReplica struct {
	mu      sync.Mutex
	leader  bool
	changed chan struct{}
	// answers are returned by successive proposals while leading; the
	// last one repeats.
	answers []answer
	// proposed records every command proposed while leading.
	proposed []game.Command
	// refused is closed when a proposal first meets "not the leader".
	refused     chan struct{}
	refusedOnce sync.Once
}

type answer struct {
	res game.Result
	err error
	// stepDown makes the replica stop leading as it answers, as a leader
	// deposed while applying does.
	stepDown bool
}

func newFakeReplica(leader bool, answers ...answer) *fakeReplica {
	return &fakeReplica{leader: leader, changed: make(chan struct{}), answers: answers, refused: make(chan struct{})}
}

// setLeader makes the replica lead (or not) and wakes waiters, as raft's
// leader observation does.
func (r *fakeReplica) setLeader(leader bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.setLeaderLocked(leader)
}

func (r *fakeReplica) setLeaderLocked(leader bool) {
	r.leader = leader
	close(r.changed)
	r.changed = make(chan struct{})
}

func (r *fakeReplica) Propose(_ context.Context, _ string, cmd []byte) (game.Result, uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.leader {
		r.refusedOnce.Do(func() { close(r.refused) })
		return game.Result{}, 0, ErrNotLeader
	}
	c, err := game.DecodeCommand(cmd)
	if err != nil {
		return game.Result{}, 0, err
	}
	r.proposed = append(r.proposed, c)
	a := r.answers[min(len(r.proposed), len(r.answers))-1]
	if a.stepDown {
		r.setLeaderLocked(false)
	}
	return a.res, a.res.Index, a.err
}

func (r *fakeReplica) Forward(context.Context, string, []byte) (game.Result, uint64, error) {
	return game.Result{}, 0, errors.New("fakeReplica never knows another leader, so nothing is forwarded")
}

func (r *fakeReplica) ReadIndex(context.Context) error {
	if !r.IsLeader() {
		return ErrNotLeader
	}
	return nil
}

func (r *fakeReplica) IsLeader() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.leader
}

func (r *fakeReplica) Read(fn func(m *game.Machine)) uint64 {
	fn(game.New())
	return 0
}

func (r *fakeReplica) LeaderChanged() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed
}

func (r *fakeReplica) LeaderConn() *grpc.ClientConn { return nil }

func (r *fakeReplica) commands() []game.Command {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]game.Command(nil), r.proposed...)
}

var applied = answer{res: game.Result{Room: "r", Outcome: game.Outcome("hit"), Index: 7, State: game.State{Room: "r", Seq: 7}}}

// guess is p1's guess of "e" with request id id, carrying a well-formed
// token (the fake replica has no seats to check it against).
func guess(id string) *hangmanv1.GuessRequest {
	return &hangmanv1.GuessRequest{Room: "r", PlayerId: "p1", Letter: "e", RequestId: id, Token: NewToken()}
}

// TestRouteWithoutLeaderFailsFast is issue 15's second part: a node that
// knows no leader answers Unavailable once no leader has been known for
// the bound it was given, not when the client's deadline runs out, and
// says the write was not applied and may be retried with its request id.
func TestRouteWithoutLeaderFailsFast(t *testing.T) {
	const bound = 150 * time.Millisecond
	svc := New(newFakeReplica(false), slog.New(slog.DiscardHandler), WithNoLeaderTimeout(bound))
	tests := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"guess", func(ctx context.Context) error { _, err := svc.Guess(ctx, guess("g1")); return err }},
		{"join", func(ctx context.Context) error {
			_, err := svc.JoinRoom(ctx, &hangmanv1.JoinRoomRequest{Room: "r", PlayerId: "p1", Name: "P", RequestId: "j1", Token: NewToken()})
			return err
		}},
		{"linearizable read", func(ctx context.Context) error {
			_, err := svc.GetRoom(ctx, &hangmanv1.GetRoomRequest{Room: "r", Consistency: hangmanv1.Consistency_CONSISTENCY_LINEARIZABLE})
			return err
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			start := time.Now()
			err := tc.call(ctx)
			took := time.Since(start)
			if status.Code(err) != codes.Unavailable {
				t.Fatalf("got %v, want Unavailable", err)
			}
			if took < bound || took > bound+2*time.Second {
				t.Errorf("answered after %v; want about the no-leader bound %v, far from the 10s deadline", took, bound)
			}
			for _, want := range []string{"no leader known", "not applied", "same request_id"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("message %q does not say %q", err, want)
				}
			}
		})
	}
}

// TestRouteWaitsForAnElection: a leader that appears within the bound
// takes the request; the caller sees one success.
func TestRouteWaitsForAnElection(t *testing.T) {
	rep := newFakeReplica(false, applied)
	svc := New(rep, slog.New(slog.DiscardHandler), WithNoLeaderTimeout(5*time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type result struct {
		resp *hangmanv1.GuessResponse
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := svc.Guess(ctx, guess("g2"))
		done <- result{resp, err}
	}()
	// The request has met "not the leader" and waits; then one is elected.
	select {
	case <-rep.refused:
	case r := <-done:
		t.Fatalf("the guess ended before meeting a replica without a leader: %v", r.err)
	}
	rep.setLeader(true)
	r := <-done
	if r.err != nil {
		t.Fatalf("guess while a leader was being elected: %v", r.err)
	}
	if r.resp.GetOutcome() != "hit" || r.resp.GetDuplicate() {
		t.Errorf("response %v, want the applied outcome, not a duplicate", r.resp)
	}
	if cmds := rep.commands(); len(cmds) != 1 || cmds[0].RequestID != "g2" {
		t.Errorf("proposed %+v, want the guess once with its request id", cmds)
	}
}

// TestRouteUnknownOutcome: a retry after an attempt of unknown outcome
// keeps the request id, and the duplicate it meets is the call's own
// (so the caller is not told "duplicate"); when no leader comes back the
// answer says the outcome is unknown rather than "not applied".
func TestRouteUnknownOutcome(t *testing.T) {
	unknown := answer{err: ErrUnknownOutcome}
	dup := applied
	dup.res.Duplicate = true

	t.Run("retried at a leader", func(t *testing.T) {
		rep := newFakeReplica(true, unknown, dup)
		svc := New(rep, slog.New(slog.DiscardHandler), WithNoLeaderTimeout(time.Second))
		resp, err := svc.Guess(context.Background(), guess("g3"))
		if err != nil {
			t.Fatalf("guess: %v", err)
		}
		if resp.GetDuplicate() {
			t.Errorf("the retry of an unknown outcome is reported as the client's duplicate")
		}
		cmds := rep.commands()
		if len(cmds) != 2 || cmds[0].RequestID != "g3" || cmds[1].RequestID != "g3" {
			t.Errorf("proposed %+v, want two attempts with request id g3", cmds)
		}
	})

	t.Run("no leader after it", func(t *testing.T) {
		lost := unknown
		lost.stepDown = true
		svc := New(newFakeReplica(true, lost), slog.New(slog.DiscardHandler), WithNoLeaderTimeout(100*time.Millisecond))
		_, err := svc.Guess(context.Background(), guess("g4"))
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("got %v, want Unavailable", err)
		}
		if !strings.Contains(err.Error(), "unknown") || strings.Contains(err.Error(), "not applied") {
			t.Errorf("message %q must say the outcome is unknown, not that it was not applied", err)
		}
	})
}
