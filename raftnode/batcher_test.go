package raftnode

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/hangman/hangman/internal/harness"
	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
	"github.com/hangman/hangman/raftnode/raftstore"
	"github.com/hangman/hangman/services/api"
	"github.com/hangman/hangman/services/game"
)

func TestPack(t *testing.T) {
	p := func(room string, size int) *proposal { return &proposal{room: room, cmd: make([]byte, size)} }
	many := make([]*proposal, maxBatch+3)
	for i := range many {
		many[i] = p(fmt.Sprintf("r%d", i), 10)
	}
	rooms := func(ps []*proposal) string {
		var s []string
		for _, p := range ps {
			s = append(s, p.room)
		}
		return strings.Join(s, ",")
	}
	for _, tc := range []struct {
		name                string
		pending             []*proposal
		wantBatch, wantRest string
	}{
		{"one", []*proposal{p("a", 10)}, "a", ""},
		{"distinct rooms share the entry", []*proposal{p("a", 10), p("b", 10), p("c", 10)}, "a,b,c", ""},
		{"a room once per entry, its order kept", []*proposal{p("a", 10), p("b", 10), p("a", 11), p("c", 10), p("a", 12)}, "a,b,c", "a,a"},
		{"bytes bound the entry", []*proposal{p("a", maxBatchBytes-5), p("b", 10), p("c", 5)}, "a,c", "b"},
		{"an oversized first command still goes", []*proposal{p("a", maxBatchBytes+1), p("b", 1)}, "a", "b"},
		{"count bounds the entry", many, rooms(many[:maxBatch]), rooms(many[maxBatch:])},
	} {
		t.Run(tc.name, func(t *testing.T) {
			batch, rest := pack(tc.pending)
			if got := rooms(batch); got != tc.wantBatch {
				t.Errorf("batch %s, want %s", got, tc.wantBatch)
			}
			if got := rooms(rest); got != tc.wantRest {
				t.Errorf("rest %s, want %s", got, tc.wantRest)
			}
			if len(batch)+len(rest) != len(tc.pending) {
				t.Errorf("%d + %d proposals out of %d in", len(batch), len(rest), len(tc.pending))
			}
			// Every room's proposals keep their order across batch and rest.
			order := slices.Concat(batch, rest)
			for _, r := range []string{"a"} {
				var sizes []int
				for _, q := range order {
					if q.room == r {
						sizes = append(sizes, len(q.cmd))
					}
				}
				if !slices.IsSorted(sizes) {
					t.Errorf("room %s reordered: sizes %v", r, sizes)
				}
			}
		})
	}
}

// TestProposalsWhileRaftIsBusyShareOneEntry holds the batcher's in-flight
// slots, as entries on their way through raft would, lets proposals pile up
// on a real single-node raft, then releases it: the commands for distinct
// rooms commit in one entry, each room's second command in the next one,
// and every proposer gets its own command's result.
func TestProposalsWhileRaftIsBusyShareOneEntry(t *testing.T) {
	c := newTestCluster(t, 1, nil)
	n := c.nodes[c.leader()]
	const rooms = 8
	for r := range rooms {
		setupRoom(t, c, 0, fmt.Sprintf("b%d", r))
	}
	for range maxInflightEntries {
		n.batcher.inflight <- struct{}{}
	}
	type answer struct {
		room, letter string
		res          game.Result
		index        uint64
		err          error
	}
	answers := make(chan answer, 2*rooms)
	var wg sync.WaitGroup
	propose := func(room, letter string) {
		cmd := game.Command{Kind: game.KindGuess, Room: room, Player: "alice", Letter: letter, RequestID: room + letter, TokenHash: game.HashToken(harness.TokenOf("alice"))}.Encode()
		wg.Go(func() {
			res, index, err := n.Propose(ctxT(t), room, cmd)
			answers <- answer{room, letter, res, index, err}
		})
	}
	for r := range rooms {
		propose(fmt.Sprintf("b%d", r), "e")
	}
	// Each room's second guess queues behind its first. (The batcher
	// holds the first proposal it took while it waits for a slot.)
	harness.Eventually(t, 5*time.Second, "the first guesses queued", func() error {
		if got := len(n.batcher.in); got < rooms-1 {
			return fmt.Errorf("%d queued", got)
		}
		return nil
	})
	for r := range rooms {
		propose(fmt.Sprintf("b%d", r), "t")
	}
	harness.Eventually(t, 5*time.Second, "all guesses queued", func() error {
		if got := len(n.batcher.in); got < 2*rooms-1 {
			return fmt.Errorf("%d queued", got)
		}
		return nil
	})
	for range maxInflightEntries {
		<-n.batcher.inflight
	}
	wg.Wait()
	close(answers)

	indexes := map[string]map[uint64]bool{} // letter -> indexes
	byRoom := map[string][]answer{}
	for a := range answers {
		if a.err != nil || a.res.Err != nil {
			t.Fatalf("guess %s in %s: %v %v", a.letter, a.room, a.err, a.res.Err)
		}
		if a.res.Room != a.room || a.res.Event == nil || a.res.Event.Letter != a.letter || a.res.Index != a.index {
			t.Fatalf("guess %s in %s got someone else's result: %+v at %d", a.letter, a.room, a.res, a.index)
		}
		if indexes[a.letter] == nil {
			indexes[a.letter] = map[uint64]bool{}
		}
		indexes[a.letter][a.index] = true
		byRoom[a.room] = append(byRoom[a.room], a)
	}
	if len(indexes["e"]) != 1 || len(indexes["t"]) != 1 {
		t.Fatalf("first guesses at indexes %v, second at %v: want one entry each", indexes["e"], indexes["t"])
	}
	for room, as := range byRoom {
		slices.SortFunc(as, func(a, b answer) int { return int(a.index) - int(b.index) })
		if len(as) != 2 || as[0].letter != "e" || as[1].letter != "t" || as[1].res.Event.Prev != as[0].index {
			t.Fatalf("room %s: guesses %+v, want e then t, linked by prev", room, as)
		}
	}
}

// TestFollowerForwardsWritesInBatches holds a follower's forwarding slots,
// as calls on their way to the leader would, sends it guesses for several
// rooms (two per room) through its game service, then releases it: they
// all reach the leader in one ReplicaService call, and each caller gets
// its own guess's result, each room's two guesses in order.
func TestFollowerForwardsWritesInBatches(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.leader()
	fi := (leader + 1) % 3
	f := c.nodes[fi]
	const rooms = 4
	for r := range rooms {
		setupRoom(t, c, leader, fmt.Sprintf("f%d", r))
	}
	for range maxInflightForwards {
		f.forwarder.inflight <- struct{}{}
	}
	calls, cmds := f.forwarder.calls.Load(), f.forwarder.commands.Load()
	cl := c.client(fi)
	type answer struct {
		room, letter string
		resp         *hangmanv1.GuessResponse
		err          error
	}
	answers := make(chan answer, 2*rooms)
	var wg sync.WaitGroup
	guess := func(room, letter string) {
		wg.Go(func() {
			r, err := cl.Guess(ctxT(t), &hangmanv1.GuessRequest{Room: room, PlayerId: "alice", Letter: letter, RequestId: room + letter, Token: harness.TokenOf("alice")})
			answers <- answer{room, letter, r, err}
		})
	}
	queued := func(n int) func() error {
		return func() error {
			// The forwarder holds the first proposal it took while it
			// waits for a slot.
			if got := len(f.forwarder.in); got < n-1 {
				return fmt.Errorf("%d queued", got)
			}
			return nil
		}
	}
	for r := range rooms {
		guess(fmt.Sprintf("f%d", r), "e")
	}
	harness.Eventually(t, 5*time.Second, "the first guesses queued", queued(rooms))
	for r := range rooms {
		guess(fmt.Sprintf("f%d", r), "t")
	}
	harness.Eventually(t, 5*time.Second, "all guesses queued", queued(2*rooms))
	for range maxInflightForwards {
		<-f.forwarder.inflight
	}
	wg.Wait()
	close(answers)

	if got := f.forwarder.calls.Load() - calls; got != 1 {
		t.Errorf("%d forwarding calls, want 1", got)
	}
	if got := f.forwarder.commands.Load() - cmds; got != 2*rooms {
		t.Errorf("%d commands forwarded, want %d", got, 2*rooms)
	}
	byRoom := map[string]map[string]uint64{}
	for a := range answers {
		if a.err != nil {
			t.Fatalf("guess %s in %s: %v", a.letter, a.room, a.err)
		}
		if a.resp.GetState().GetRoom() != a.room || a.resp.GetIndex() == 0 || a.resp.GetDuplicate() {
			t.Fatalf("guess %s in %s got %+v", a.letter, a.room, a.resp)
		}
		if byRoom[a.room] == nil {
			byRoom[a.room] = map[string]uint64{}
		}
		byRoom[a.room][a.letter] = a.resp.GetIndex()
	}
	for room, idx := range byRoom {
		if idx["e"] == 0 || idx["t"] <= idx["e"] {
			t.Fatalf("room %s: e at %d, t at %d; want e first", room, idx["e"], idx["t"])
		}
	}
}

// fakeRaftLoop runs a group-commit loop of one slot, packing with pack, on
// a fake raft until t ends: each batch it starts is sent on started (its
// commands) and answered at once, every proposal with its own room and its
// command as the outcome, at the batch's number as the index.
func fakeRaftLoop(t *testing.T, pack func([]*proposal) ([]*proposal, []*proposal)) (b *batcher, started <-chan []string) {
	sent := make(chan []string, 8)
	batches := 0 // only the loop's goroutine calls start
	b = newLoop(1, pack, func(batch []*proposal) func() {
		batches++
		n := uint64(batches)
		cmds := make([]string, len(batch))
		for i, p := range batch {
			cmds[i] = string(p.cmd)
		}
		sent <- cmds
		return func() {
			for _, p := range batch {
				p.done <- proposed{res: game.Result{Room: p.room, Outcome: game.Outcome(p.cmd)}, index: n}
			}
		}
	})
	ctx, stop := context.WithCancel(context.Background())
	t.Cleanup(func() {
		stop()
		<-b.stopped
	})
	go b.run(ctx)
	return b, sent
}

// TestLoopDropsProposalsWhoseCallersAreGone runs the group-commit loop
// with a fake raft (start records each batch): a proposal whose caller
// gave up, by cancelling or by its deadline, while it waited for a slot is
// never packed, and a batch of nothing but such proposals is never sent.
func TestLoopDropsProposalsWhoseCallersAreGone(t *testing.T) {
	for _, tc := range []struct {
		name string
		pack func([]*proposal) ([]*proposal, []*proposal)
	}{{"batcher", pack}, {"forwarder", packFirst}} {
		t.Run(tc.name, func(t *testing.T) {
			b, started := fakeRaftLoop(t, tc.pack)

			// The only slot is taken: proposals wait in the loop.
			b.inflight <- struct{}{}
			cancelled, cancel := context.WithCancel(context.Background())
			expired, cancelExpired := context.WithTimeout(context.Background(), time.Millisecond)
			defer cancelExpired()
			waits := []func() proposed{
				b.enqueue(cancelled, "a", []byte("cancelled")),
				b.enqueue(context.Background(), "b", []byte("live")),
				b.enqueue(expired, "c", []byte("expired")),
			}
			cancel()
			<-expired.Done()
			<-b.inflight
			if got := <-started; !slices.Equal(got, []string{"live"}) {
				t.Fatalf("sent %q, want only the live proposal", got)
			}
			if r := waits[1](); r.err != nil || r.index != 1 {
				t.Fatalf("live proposal: %+v", r)
			}
			for _, i := range []int{0, 2} {
				if r := waits[i](); r.err == nil {
					t.Fatalf("proposal %d of a gone caller answered %+v", i, r)
				}
			}

			// Only gone callers: nothing is sent, and the slot is free for
			// the next proposal.
			b.inflight <- struct{}{}
			gone, leave := context.WithCancel(context.Background())
			wait := b.enqueue(gone, "d", []byte("gone"))
			leave()
			<-b.inflight
			if r := b.propose(context.Background(), "e", []byte("next")); r.err != nil {
				t.Fatalf("proposal after a dropped one: %v", r.err)
			}
			if got := <-started; !slices.Equal(got, []string{"next"}) {
				t.Fatalf("sent %q, want only the next proposal", got)
			}
			if r := wait(); r.err == nil {
				t.Fatalf("proposal of a gone caller answered %+v", r)
			}
			if got := b.dropped.Load(); got != 3 {
				t.Fatalf("%d proposals counted as dropped, want 3", got)
			}
		})
	}
}

// TestLoopBatchesWhatArrivesWhileBusy runs the group-commit loop with a
// fake raft (start records each batch and answers every proposal with its
// batch's number): a proposal to an idle loop leaves at once, alone; the
// proposals that arrive while the only slot is taken leave together, one
// per room, each room's later ones in the next batches in the order they
// came; and every proposer gets its own command's answer.
func TestLoopBatchesWhatArrivesWhileBusy(t *testing.T) {
	b, started := fakeRaftLoop(t, pack)

	if r := b.propose(context.Background(), "a", []byte("a0")); r.err != nil || r.index != 1 || r.res.Outcome != "a0" {
		t.Fatalf("proposal to an idle loop: %+v", r)
	}
	if got := <-started; !slices.Equal(got, []string{"a0"}) {
		t.Fatalf("idle loop sent %q, want the proposal alone", got)
	}

	b.inflight <- struct{}{} // the only slot: a batch on its way
	sent := []struct{ room, cmd string }{{"a", "a1"}, {"b", "b1"}, {"a", "a2"}, {"c", "c1"}, {"a", "a3"}, {"b", "b2"}}
	waits := make([]func() proposed, len(sent))
	for i, s := range sent {
		waits[i] = b.enqueue(context.Background(), s.room, []byte(s.cmd))
	}
	<-b.inflight
	want := [][]string{{"a1", "b1", "c1"}, {"a2", "b2"}, {"a3"}}
	for i, w := range want {
		if got := <-started; !slices.Equal(got, w) {
			t.Fatalf("batch %d sent %q, want %q", i+2, got, w)
		}
	}
	wantIndex := map[string]uint64{"a1": 2, "b1": 2, "c1": 2, "a2": 3, "b2": 3, "a3": 4}
	for i, s := range sent {
		r := waits[i]()
		if r.err != nil || r.res.Room != s.room || string(r.res.Outcome) != s.cmd || r.index != wantIndex[s.cmd] {
			t.Errorf("proposal %s got %+v, want its own answer at %d", s.cmd, r, wantIndex[s.cmd])
		}
	}
}

// fakeFuture is a raft.ApplyFuture that has already resolved.
type fakeFuture struct {
	err  error
	resp any
}

func (f fakeFuture) Error() error  { return f.err }
func (f fakeFuture) Index() uint64 { return 0 }
func (f fakeFuture) Response() any { return f.resp }

// TestAnswerFansOutToTheBatch checks what every proposal of an entry is
// told when raft answers the entry: each its own result when it applied,
// and otherwise all the same error, saying what the failure means for a
// caller (ask the leader again, the outcome is unknown, or neither).
func TestAnswerFansOutToTheBatch(t *testing.T) {
	results := &applyResult{index: 9, results: []game.Result{{Room: "a"}, {Room: "b"}, {Room: "c"}}}
	tests := []struct {
		name   string
		future fakeFuture
		// want is the error every proposal gets, checked with errors.Is;
		// nil: each gets its own result.
		want error
		// wantNot is text the error must not hold.
		wantNot string
	}{
		{"applied", fakeFuture{resp: results}, nil, ""},
		{"not the leader", fakeFuture{err: raft.ErrNotLeader}, api.ErrNotLeader, ""},
		{"a leadership transfer", fakeFuture{err: raft.ErrLeadershipTransferInProgress}, api.ErrNotLeader, ""},
		{"raft's queue full", fakeFuture{err: raft.ErrEnqueueTimeout}, api.ErrNotLeader, ""},
		{"leadership lost", fakeFuture{err: raft.ErrLeadershipLost}, api.ErrUnknownOutcome, ""},
		{"raft shut down", fakeFuture{err: raft.ErrRaftShutdown}, api.ErrUnknownOutcome, ""},
		{"a restore", fakeFuture{err: raft.ErrAbortedByRestore}, api.ErrUnknownOutcome, ""},
		{"a full disk", fakeFuture{err: fmt.Errorf("%w: write /var/lib/hangman/raft.db: no space", raftstore.ErrNotPersisted)}, api.ErrUnknownOutcome, "/var/lib"},
		{"another failure", fakeFuture{err: errors.New("boom")}, errUnexpected, ""},
		{"too few results", fakeFuture{resp: &applyResult{index: 9, results: results.results[:2]}}, errUnexpected, ""},
		{"a response of another type", fakeFuture{resp: errors.New("fsm error")}, errUnexpected, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			batch := make([]*proposal, 3)
			for i, room := range []string{"a", "b", "c"} {
				batch[i] = &proposal{ctx: context.Background(), room: room, done: make(chan proposed, 1)}
			}
			answer(tc.future, batch)
			for i, p := range batch {
				var r proposed
				select {
				case r = <-p.done:
				default:
					t.Fatalf("proposal %d was not answered", i)
				}
				switch {
				case tc.want == nil:
					if r.err != nil || r.res.Room != p.room || r.index != 9 {
						t.Errorf("proposal for %s got %+v, want its own result at 9", p.room, r)
					}
				case tc.want == errUnexpected:
					if r.err == nil || errors.Is(r.err, api.ErrNotLeader) || errors.Is(r.err, api.ErrUnknownOutcome) {
						t.Errorf("proposal for %s got %v, want a failure that is neither not-leader nor unknown", p.room, r.err)
					}
				default:
					if !errors.Is(r.err, tc.want) || (tc.wantNot != "" && strings.Contains(r.err.Error(), tc.wantNot)) {
						t.Errorf("proposal for %s got %v, want %v without %q", p.room, r.err, tc.want, tc.wantNot)
					}
				}
			}
		})
	}
}

// errUnexpected marks, in TestAnswerFansOutToTheBatch, a failure that is
// neither api.ErrNotLeader nor api.ErrUnknownOutcome.
var errUnexpected = errors.New("unexpected")
