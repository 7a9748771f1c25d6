package raftnode

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/hangman/hangman/internal/harness"
	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
	"github.com/hangman/hangman/services/api"
	"github.com/hangman/hangman/services/game"
)

// TestForwardedResultsSurviveTheWire sends every kind of answer through
// toWire, protobuf and fromWire, as a forwarded write's result travels.
func TestForwardedResultsSurviveTheWire(t *testing.T) {
	played := game.State{
		Room: "r1", Round: 2, Seq: 41, Prev: 17, Masked: "h_ll_", Guessed: []string{"h", "l", "z"}, Wrong: []string{"z"},
		WrongLeft: 5, MaxWrong: 6, Status: game.StatusPlaying,
		Players:   []game.Player{{ID: "p1", Name: "Ada", Score: 3}, {ID: "p2", Name: "Bob"}},
		LastGuess: &game.LastGuess{Player: "p1", Letter: "l", Outcome: game.OutcomeCorrect},
	}
	fresh := game.State{Room: "r2", Round: 1, Seq: 3, Masked: "____", Guessed: []string{}, Wrong: []string{}, WrongLeft: 6, MaxWrong: 6, Status: game.StatusPlaying, Players: []game.Player{}}
	won := played
	won.Status, won.Word, won.Masked = game.StatusWon, "hello", "hello"
	tests := []struct {
		name string
		in   proposed
	}{
		{"guess", proposed{res: game.Result{Room: "r1", Outcome: game.OutcomeCorrect, Index: 41, State: played}, index: 41}},
		{"duplicate", proposed{res: game.Result{Room: "r1", Outcome: game.OutcomeWrong, Duplicate: true, Index: 12, State: played}, index: 41}},
		{"new room", proposed{res: game.Result{Room: "r2", Index: 3, State: fresh}, index: 3}},
		{"new seat", proposed{res: game.Result{Room: "r1", Index: 40, State: played, Event: &game.Event{
			Seq: 40, Prev: 39, Room: "r1", Kind: game.EventPlayerJoined, Round: 2, Player: "p2", Name: "Bob",
			Status: game.StatusPlaying, At: time.Date(2026, 11, 29, 8, 1, 2, 345678000, time.UTC),
		}}, index: 40}},
		{"guess with its event", proposed{res: game.Result{Room: "r1", Outcome: game.OutcomeCorrect, Index: 41, State: played, Event: &game.Event{
			Seq: 41, Prev: 40, Room: "r1", Kind: game.EventGuess, Round: 2, Player: "p1", Letter: "l",
			Outcome: game.OutcomeCorrect, Status: game.StatusPlaying, At: time.Date(2026, 11, 29, 8, 1, 3, 0, time.UTC),
		}}, index: 41}},
		{"round won", proposed{res: game.Result{Room: "r1", Outcome: game.OutcomeCorrect, Index: 42, State: won}, index: 42}},
		{"refused", proposed{res: game.Result{Room: "r1", Err: &game.Error{Code: game.CodePrecondition, Msg: "round 2 of room \"r1\" is over (won); start a new round"}}, index: 43}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := fromWire(viaProtobuf(t, toWire(tt.in)))
			if got.err != nil {
				t.Fatalf("fromWire: %v", got.err)
			}
			if !reflect.DeepEqual(got, tt.in) {
				t.Fatalf("after the wire:\n got %+v\nwant %+v", got, tt.in)
			}
		})
	}
}

func TestForwardingFailuresSurviveTheWire(t *testing.T) {
	tests := []struct {
		name string
		in   *hangmanv1.Proposed
		want error // errors.Is target; nil: any error
	}{
		{"not leader", toWire(proposed{err: api.ErrNotLeader}), api.ErrNotLeader},
		{"unknown outcome", toWire(proposed{err: api.ErrUnknownOutcome}), api.ErrUnknownOutcome},
		{"internal", toWire(proposed{err: errors.New("disk on fire")}), nil},
		{"expired", toWire(notProposed(context.DeadlineExceeded)), errNotProposed},
		// An answer with neither state nor refusal (a leader speaking
		// another version of the protocol) must not pass for success.
		{"empty answer", &hangmanv1.Proposed{Index: 9}, api.ErrUnknownOutcome},
		{"no state", &hangmanv1.Proposed{Index: 9, Applied: &hangmanv1.Applied{Room: "r1"}}, api.ErrUnknownOutcome},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := fromWire(viaProtobuf(t, tt.in))
			if got.err == nil {
				t.Fatalf("fromWire accepted %v as a result: %+v", tt.in, got.res)
			}
			if tt.want != nil && !errors.Is(got.err, tt.want) {
				t.Fatalf("fromWire error %v, want %v", got.err, tt.want)
			}
		})
	}
}

func viaProtobuf(t *testing.T, p *hangmanv1.Proposed) *hangmanv1.Proposed {
	t.Helper()
	b, err := proto.Marshal(p)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	var out hangmanv1.Proposed
	if err := proto.Unmarshal(b, &out); err != nil {
		t.Fatalf("unmarshal: %v", err)
	}
	return &out
}

// TestRefusedGuessNeverTakesEffectLater is the first scenario of issue 15
// in a real cluster. A follower's forwarding calls are all taken, as by
// calls to a leader that stopped answering, when a guess by a player who
// has not joined reaches it; its caller gives up. A retry of the same
// request id on the leader is refused (the player has not joined), the
// player joins, and the follower's forwarding frees up. The refused guess
// must never take effect, and every retry must keep answering the refusal.
func TestRefusedGuessNeverTakesEffectLater(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.leader()
	fi := (leader + 1) % 3
	f := c.nodes[fi]
	ctx := ctxT(t)
	lc, fc := c.client(leader), c.client(fi)
	if _, err := lc.CreateRoom(ctx, &hangmanv1.CreateRoomRequest{Room: "x"}); err != nil {
		t.Fatalf("create room: %v", err)
	}
	for range maxInflightForwards {
		f.forwarder.inflight <- struct{}{}
	}
	held := maxInflightForwards
	t.Cleanup(func() {
		for range held {
			<-f.forwarder.inflight
		}
	})

	r1 := &hangmanv1.GuessRequest{Room: "x", PlayerId: "late", Letter: "e", RequestId: "R1", Token: harness.TokenOf("late")}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err := fc.Guess(short, r1)
	cancel()
	if err == nil {
		t.Fatal("the follower answered a guess while its forwarding was stuck")
	}
	t.Logf("the stuck guess: %v", err)
	_, err = lc.Guess(ctx, r1)
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("retry of R1 on the leader: %v, want FailedPrecondition", err)
	}
	refusal := status.Convert(err).Message()
	if _, err := lc.JoinRoom(ctx, &hangmanv1.JoinRoomRequest{Room: "x", PlayerId: "late", Name: "Late", Token: harness.TokenOf("late")}); err != nil {
		t.Fatalf("join: %v", err)
	}

	// One forwarding slot frees: the follower's calls now go one at a
	// time, so once a later write through it is answered, so is every
	// write it held before.
	<-f.forwarder.inflight
	held--
	if _, err := fc.Guess(ctx, &hangmanv1.GuessRequest{Room: "x", PlayerId: "late", Letter: "t", RequestId: "M", Token: harness.TokenOf("late")}); err != nil {
		t.Fatalf("guess through the follower after it freed up: %v", err)
	}
	st, err := lc.GetRoom(ctx, &hangmanv1.GetRoomRequest{Room: "x", Consistency: hangmanv1.Consistency_CONSISTENCY_LINEARIZABLE})
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if g := st.GetState().GetGuessed(); slices.Contains(g, "e") {
		t.Fatalf("the refused guess took effect: guessed %v, last guess %v", g, st.GetState().GetLastGuess())
	}
	for i := range c.nodes {
		_, err := c.client(i).Guess(ctx, r1)
		if status.Code(err) != codes.FailedPrecondition || status.Convert(err).Message() != refusal {
			t.Fatalf("retry of R1 on %s after the join: %v, want FailedPrecondition %q", c.cfgs[i].ID, err, refusal)
		}
	}
}

// fakeLeader is a ReplicaService client whose calls the test answers.
type fakeLeader struct{ calls chan *fakeCall }

type fakeCall struct {
	ctx    context.Context
	req    *hangmanv1.ProposeRequest
	answer chan *hangmanv1.ProposeResponse
}

func (f *fakeLeader) Propose(ctx context.Context, req *hangmanv1.ProposeRequest, _ ...grpc.CallOption) (*hangmanv1.ProposeResponse, error) {
	c := &fakeCall{ctx: ctx, req: req, answer: make(chan *hangmanv1.ProposeResponse, 1)}
	f.calls <- c
	select {
	case r := <-c.answer:
		return r, nil
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

// TestForwardedCallFollowsItsCallers checks that a forwarded call lasts no
// longer than its callers wait: its deadline is the latest of theirs
// (within forwardTimeout), each command carries its caller's remaining
// time, and the call ends as soon as every caller has gone or the leader
// it went to is deposed.
func TestForwardedCallFollowsItsCallers(t *testing.T) {
	type caller struct {
		timeout time.Duration // 0: no deadline
		cancel  bool          // the test cancels it while the call is open
	}
	tests := []struct {
		name    string
		callers []caller
		depose  bool
		// the call's deadline this far from when the callers came (it
		// is answered then); 0: the call must end by itself
		want time.Duration
	}{
		{name: "the latest caller's deadline", callers: []caller{{timeout: time.Second}, {timeout: 3 * time.Second}}, want: 3 * time.Second},
		{name: "no later than forwardTimeout", callers: []caller{{timeout: time.Hour}, {}}, want: forwardTimeout},
		{name: "ends when every caller has gone", callers: []caller{{timeout: time.Hour, cancel: true}, {cancel: true}}},
		{name: "ends when the leader is deposed", callers: []caller{{timeout: time.Hour}}, depose: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			batch := make([]*proposal, len(tt.callers))
			cancels := make([]context.CancelFunc, len(tt.callers))
			for i, c := range tt.callers {
				ctx, cancel := context.WithCancel(context.Background())
				if c.timeout > 0 {
					ctx, cancel = context.WithTimeout(context.Background(), c.timeout)
				}
				t.Cleanup(cancel)
				cancels[i] = cancel
				batch[i] = &proposal{ctx: ctx, room: fmt.Sprintf("r%d", i), cmd: []byte{byte(i)}, done: make(chan proposed, 1)}
			}
			leader := &fakeLeader{calls: make(chan *fakeCall, 1)}
			deposed := make(chan struct{})
			returned := make(chan struct{})
			go func() {
				forward(leader, batch, deposed)
				close(returned)
			}()
			call := <-leader.calls

			for i, c := range tt.callers {
				got := time.Duration(call.req.GetProposals()[i].GetTimeoutMs()) * time.Millisecond
				switch {
				case c.timeout == 0 && got != 0:
					t.Errorf("caller %d without a deadline: timeout %v, want none", i, got)
				case c.timeout > 0 && (got > c.timeout || got < c.timeout-time.Since(start)-time.Millisecond):
					t.Errorf("caller %d with %v: timeout %v", i, c.timeout, got)
				}
			}
			deadline, ok := call.ctx.Deadline()
			if !ok || deadline.After(time.Now().Add(forwardTimeout)) {
				t.Fatalf("call deadline in %v (set %v), want within %v", time.Until(deadline), ok, forwardTimeout)
			}

			if tt.want > 0 {
				if deadline.Before(start.Add(tt.want)) || deadline.After(time.Now().Add(tt.want)) {
					t.Fatalf("call deadline %v after the start, want %v", deadline.Sub(start), tt.want)
				}
				call.answer <- &hangmanv1.ProposeResponse{Results: []*hangmanv1.Proposed{
					toWire(proposed{res: game.Result{Room: "r0", Err: &game.Error{Code: game.CodePrecondition, Msg: "no"}}, index: 5}),
					toWire(proposed{res: game.Result{Room: "r1", Err: &game.Error{Code: game.CodeNotFound, Msg: "none"}}, index: 5}),
				}[:len(batch)]}
				<-returned
				for i, p := range batch {
					if r := <-p.done; r.err != nil || r.index != 5 || r.res.Err == nil {
						t.Fatalf("proposal %d answered %+v", i, r)
					}
				}
				return
			}

			if tt.depose {
				close(deposed)
			}
			for i, c := range tt.callers {
				if c.cancel {
					if call.ctx.Err() != nil {
						t.Fatalf("the call ended before caller %d of %d had gone", i+1, len(tt.callers))
					}
					cancels[i]()
				}
			}
			select {
			case <-call.ctx.Done():
			case <-time.After(10 * time.Second):
				t.Fatal("the call outlived its callers")
			}
			<-returned
			for i, p := range batch {
				if r := <-p.done; !errors.Is(r.err, api.ErrUnknownOutcome) {
					t.Fatalf("proposal %d of an abandoned call answered %+v, want outcome unknown", i, r)
				}
			}
		})
	}
}

func TestProposalContext(t *testing.T) {
	parent, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	want, _ := parent.Deadline()
	ctx, stop := proposalContext(parent, &hangmanv1.Proposal{})
	if d, _ := ctx.Deadline(); !d.Equal(want) {
		t.Fatalf("without a timeout: deadline %v, want the call's %v", d, want)
	}
	stop()
	start := time.Now()
	ctx, stop = proposalContext(parent, &hangmanv1.Proposal{TimeoutMs: 1500})
	defer stop()
	if d, _ := ctx.Deadline(); d.Before(start.Add(1500*time.Millisecond)) || d.After(time.Now().Add(1500*time.Millisecond)) {
		t.Fatalf("with 1500 ms: deadline in %v", d.Sub(start))
	}
	cancel()
	if ctx.Err() == nil {
		t.Fatal("a proposal outlived its call")
	}
}

func TestTimeoutMs(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want uint32
	}{
		{-time.Second, 1}, {0, 1}, {time.Microsecond, 1}, {time.Millisecond, 1}, {1500 * time.Microsecond, 2},
		{time.Second, 1000}, {100 * 24 * time.Hour, math.MaxUint32},
	} {
		if got := timeoutMs(tc.d); got != tc.want {
			t.Errorf("timeoutMs(%v) = %d, want %d", tc.d, got, tc.want)
		}
	}
}
