package raftnode

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/hangman/hangman/internal/harness"
	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
	"github.com/hangman/hangman/services/api"
	"github.com/hangman/hangman/services/game"
)

func mustEncode(t *testing.T, room, player, letter string) []byte {
	t.Helper()
	return game.Command{Kind: game.KindGuess, Room: room, Player: player, Letter: letter, RequestID: "stuck-" + letter, TokenHash: game.HashToken(harness.TokenOf(player))}.Encode()
}

// stallingStore is the node's real log store with a switch that makes
// writes hang, as on a disk that stopped answering.
type stallingStore struct {
	raft.LogStore
	mu      sync.Mutex
	stalled bool
	release chan struct{}
}

func (s *stallingStore) stall() {
	s.mu.Lock()
	s.stalled = true
	s.release = make(chan struct{})
	s.mu.Unlock()
}

func (s *stallingStore) unstall() {
	s.mu.Lock()
	if s.stalled {
		s.stalled = false
		close(s.release)
	}
	s.mu.Unlock()
}

// newStallingCluster starts newTestCluster's cluster, tweaked, with every
// node's log in a stallingStore; store returns node i's.
func newStallingCluster(t *testing.T, size int, tweak func(*Config)) (c *testCluster, store func(i int) *stallingStore) {
	t.Helper()
	var mu sync.Mutex
	stores := map[string]*stallingStore{}
	c = newTestCluster(t, size, func(cfg *Config) {
		tweak(cfg)
		id := cfg.ID
		cfg.wrapLogStore = func(ls raft.LogStore) raft.LogStore {
			s := &stallingStore{LogStore: ls}
			mu.Lock()
			stores[id] = s
			mu.Unlock()
			return s
		}
	})
	return c, func(i int) *stallingStore {
		mu.Lock()
		defer mu.Unlock()
		return stores[c.cfgs[i].ID]
	}
}

func (s *stallingStore) wait() {
	s.mu.Lock()
	stalled, release := s.stalled, s.release
	s.mu.Unlock()
	if stalled {
		<-release
	}
}

func (s *stallingStore) StoreLog(l *raft.Log) error {
	s.wait()
	return s.LogStore.StoreLog(l)
}

func (s *stallingStore) StoreLogs(ls []*raft.Log) error {
	s.wait()
	return s.LogStore.StoreLogs(ls)
}

func TestLeaderWithStalledDiskStepsDown(t *testing.T) {
	c, store := newStallingCluster(t, 3, func(cfg *Config) { cfg.StallTimeout = time.Second })
	old := c.leader()
	setupRoom(t, c, old, "stall")
	s := store(old)
	s.stall()
	t.Cleanup(s.unstall)
	// A write arrives at the stalled leader: it cannot commit, and the
	// caller is told the outcome is unknown when its deadline passes.
	stuck := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _, err := c.nodes[old].Propose(ctx, "stall", mustEncode(t, "stall", "alice", "z"))
		stuck <- err
	}()

	// The stalled leader's heartbeats go on; only the watchdog can make
	// way for a leader whose disk works.
	harness.Eventually(t, 15*time.Second, "another node to lead", func() error {
		for i, n := range c.alive() {
			if i != old && n.IsLeader() {
				return nil
			}
		}
		return fmt.Errorf("no other leader yet")
	})
	if err := c.nodes[old].Ready(); err == nil {
		t.Fatalf("the stalled node still reports ready")
	}
	if err := <-stuck; !errors.Is(err, api.ErrUnknownOutcome) {
		t.Fatalf("write stuck at the stalled leader returned %v, want outcome unknown", err)
	}
	ctx := ctxT(t)
	other := (old + 1) % 3
	if _, err := c.client(other).Guess(ctx, &hangmanv1.GuessRequest{Room: "stall", PlayerId: "alice", Letter: "e", RequestId: "after-stall", Token: harness.TokenOf("alice")}); err != nil {
		t.Fatalf("guess after the stalled leader stepped down: %v", err)
	}

	// The disk answers again: the node follows the new leader, applies
	// its entries and is ready, without a restart.
	s.unstall()
	harness.Eventually(t, 30*time.Second, "the formerly stalled node to be ready again", c.nodes[old].Ready)
	if c.nodes[old].IsLeader() {
		t.Errorf("the formerly stalled node leads again; want it to follow")
	}
}

// TestStallWatch drives the watchdog's decision with a made-up clock: it
// gives up leadership only for writes that see no apply for the timeout
// while the node leads in one term, takes a late tick for a paused
// process, leaves a deposed node alone, and heals a cut-off by itself.
func TestStallWatch(t *testing.T) {
	const (
		timeout = 4 * time.Second // ticks every second
		cutFor  = 3 * time.Second
	)
	t0 := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	s := time.Second
	// step is one tick: the node as the watchdog reads it at t0+at, what
	// the node did before it (event), and the expected answer.
	type step struct {
		at       time.Duration
		leader   bool
		term     uint64
		inflight int64
		progress time.Duration // last apply, since t0
		event    func(w *stallWatch)
		want     stallAction
		wantTerm uint64
		ready    bool // what ready() says after the tick
	}
	// stalled is a leader in term 3 with writes in flight since t0 and no
	// apply since t0 - 1s.
	stalled := func(d time.Duration, want stallAction) step {
		st := step{at: d, leader: true, term: 3, inflight: 2, progress: -s, want: want, ready: true}
		if want == stallGiveUp {
			st.wantTerm = 3
		}
		return st
	}
	deposed := func(d time.Duration) step {
		return step{at: d, leader: false, term: 4, inflight: 2, progress: -s, want: stallWait, ready: true}
	}
	gaveUp := func(d time.Duration) func(w *stallWatch) {
		return func(w *stallWatch) { w.gaveUpLeadership(3, at(d)) }
	}
	cut := func(d time.Duration) func(w *stallWatch) {
		return func(w *stallWatch) { w.gaveUpLeadership(3, at(d)); w.cut(at(d)) }
	}
	// firing is a measurement from 1s that fires at 5s, then more steps.
	firing := func(more ...step) []step {
		return append([]step{stalled(1*s, stallWait), stalled(2*s, stallWait), stalled(3*s, stallWait), stalled(4*s, stallWait), stalled(5*s, stallGiveUp)}, more...)
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"still leading in the same term with no apply: gives up", []step{
			stalled(1*s, stallWait), stalled(2*s, stallWait), stalled(3*s, stallWait), stalled(4*s, stallWait), stalled(5*s, stallGiveUp),
		}},
		{"idle leader: nothing to measure", []step{
			{at: 1 * s, leader: true, term: 3, progress: -time.Hour, ready: true},
			{at: 9 * s, leader: true, term: 3, progress: -time.Hour, ready: true},
		}},
		{"applies keep coming: not stalled", []step{
			stalled(1*s, stallWait), stalled(2*s, stallWait),
			{at: 3 * s, leader: true, term: 3, inflight: 2, progress: 2500 * time.Millisecond, ready: true},
			{at: 4 * s, leader: true, term: 3, inflight: 2, progress: 3500 * time.Millisecond, ready: true},
			{at: 5 * s, leader: true, term: 3, inflight: 2, progress: 4500 * time.Millisecond, ready: true},
			{at: 6 * s, leader: true, term: 3, inflight: 2, progress: 4500 * time.Millisecond, ready: true},
		}},
		{"paused process (late tick) starts over instead of firing", []step{
			stalled(1*s, stallWait), stalled(2*s, stallWait),
			// SIGSTOP for 6s: the next tick comes 7s after the last.
			stalled(9*s, stallWait), stalled(10*s, stallWait), stalled(11*s, stallWait), stalled(12*s, stallWait),
			// Still leading, still stuck, a full timeout after resuming.
			stalled(13*s, stallGiveUp),
		}},
		{"paused and deposed meanwhile: no action", []step{
			stalled(1*s, stallWait), stalled(2*s, stallWait),
			stalled(9*s, stallWait), deposed(10 * s), deposed(11 * s), deposed(20 * s),
		}},
		{"stepped down: no action however long", []step{
			deposed(1 * s), deposed(2 * s), deposed(3 * s), deposed(4 * s), deposed(5 * s), deposed(6 * s),
		}},
		{"a new term starts a new measurement", []step{
			stalled(1*s, stallWait), stalled(2*s, stallWait), stalled(3*s, stallWait), stalled(4*s, stallWait),
			{at: 5 * s, leader: true, term: 5, inflight: 2, progress: -s, ready: true},
			{at: 6 * s, leader: true, term: 5, inflight: 2, progress: -s, ready: true},
			{at: 7 * s, leader: true, term: 5, inflight: 2, progress: -s, ready: true},
			{at: 8 * s, leader: true, term: 5, inflight: 2, progress: -s, ready: true},
			{at: 9 * s, leader: true, term: 5, inflight: 2, progress: -s, want: stallGiveUp, wantTerm: 5, ready: true},
		}},
		{"cut off: restored after cutFor, ready once it applies", firing(
			step{at: 6 * s, leader: false, term: 4, inflight: 0, progress: -s, event: cut(5 * s), want: stallWait},
			step{at: 7 * s, leader: false, term: 4, progress: -s, want: stallWait},
			step{at: 8 * s, leader: false, term: 4, progress: -s, want: stallRestore},
			step{at: 9 * s, leader: false, term: 4, progress: -s, want: stallWait},
			step{at: 10 * s, leader: false, term: 4, progress: 9500 * time.Millisecond, want: stallHealed, ready: true},
			step{at: 11 * s, leader: false, term: 4, progress: 10500 * time.Millisecond, want: stallWait, ready: true},
		)},
		{"handed over: ready once it applies the new leader's entries", firing(
			step{at: 6 * s, leader: false, term: 4, progress: -s, event: gaveUp(5 * s), want: stallWait},
			step{at: 7 * s, leader: false, term: 4, progress: 6500 * time.Millisecond, want: stallHealed, ready: true},
		)},
		{"gave up in a term: not again in it, again in a later one", firing(
			step{at: 6 * s, leader: true, term: 3, inflight: 2, progress: -s, event: gaveUp(5 * s), want: stallWait},
			step{at: 7 * s, leader: true, term: 3, inflight: 2, progress: -s, want: stallWait},
			step{at: 8 * s, leader: true, term: 3, inflight: 2, progress: -s, want: stallWait},
			step{at: 9 * s, leader: true, term: 3, inflight: 2, progress: -s, want: stallWait},
			step{at: 10 * s, leader: true, term: 3, inflight: 2, progress: -s, want: stallWait},
			step{at: 11 * s, leader: true, term: 3, inflight: 2, progress: -s, want: stallWait},
			step{at: 12 * s, leader: true, term: 7, inflight: 2, progress: -s, want: stallWait},
			step{at: 13 * s, leader: true, term: 7, inflight: 2, progress: -s, want: stallWait},
			step{at: 14 * s, leader: true, term: 7, inflight: 2, progress: -s, want: stallWait},
			step{at: 15 * s, leader: true, term: 7, inflight: 2, progress: -s, want: stallWait},
			step{at: 16 * s, leader: true, term: 7, inflight: 2, progress: -s, want: stallGiveUp, wantTerm: 7},
		)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newStallWatch(timeout, cutFor)
			for _, st := range tc.steps {
				if st.event != nil {
					st.event(w)
				}
				sample := stallSample{Leader: st.leader, Term: st.term, Inflight: st.inflight, InflightSince: t0, Progress: at(st.progress)}
				act, term := w.tick(at(st.at), sample)
				if act != st.want || term != st.wantTerm {
					t.Fatalf("tick at %v: got action %d term %d, want %d term %d", st.at, act, term, st.want, st.wantTerm)
				}
				if err := w.ready(); (err == nil) != st.ready {
					t.Fatalf("after the tick at %v: ready() = %v, want ready %v", st.at, err, st.ready)
				}
			}
		})
	}
}
