package raftnode

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hangman/hangman/internal/harness"
	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
	"github.com/hangman/hangman/services/game"
	"github.com/hangman/hangman/subjects"
)

// recorder subscribes to every hangman subject on one NATS server and keeps
// what arrives, in order.
type recorder struct {
	t    *testing.T
	nc   *nats.Conn
	mu   sync.Mutex
	msgs []*nats.Msg
}

func record(t *testing.T, url string) *recorder {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	r := &recorder{t: t, nc: nc}
	sub, err := nc.Subscribe("hangman.>", func(m *nats.Msg) {
		r.mu.Lock()
		r.msgs = append(r.msgs, m)
		r.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return r
}

// waitInterest publishes probes from every live node's server until this
// recorder has seen one from each: the subscription has then reached the
// whole NATS cluster, and nothing the publisher sends can miss it.
func (r *recorder) waitInterest(c *testCluster) {
	r.t.Helper()
	for _, n := range c.alive() {
		pub, err := nats.Connect(n.NATSURL())
		if err != nil {
			r.t.Fatal(err)
		}
		subject := "hangman.probe." + n.ID()
		harness.Eventually(r.t, 10*time.Second, "subscription interest from "+n.ID(), func() error {
			if err := pub.Publish(subject, nil); err != nil {
				return err
			}
			if err := pub.Flush(); err != nil {
				return err
			}
			for _, m := range r.snapshot() {
				if m.Subject == subject {
					return nil
				}
			}
			return fmt.Errorf("no probe yet")
		})
		pub.Close()
	}
}

func (r *recorder) snapshot() []*nats.Msg {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*nats.Msg(nil), r.msgs...)
}

// events returns the room's events as received, in arrival order.
func (r *recorder) events(room string) []game.Event {
	var out []game.Event
	for _, m := range r.snapshot() {
		if m.Subject != subjects.RoomEvent(room) {
			continue
		}
		var ev game.Event
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			r.t.Fatalf("bad event %s: %v", m.Data, err)
		}
		if got, want := m.Header.Get(nats.MsgIdHdr), fmt.Sprintf("%s.%d", room, ev.Seq); got != want {
			r.t.Fatalf("event header Nats-Msg-Id %q, want %q", got, want)
		}
		out = append(out, ev)
	}
	return out
}

// latestState returns the newest state of a room by seq.
func (r *recorder) latestState(room string) (game.State, bool) {
	var best game.State
	found := false
	for _, m := range r.snapshot() {
		if m.Subject != subjects.RoomState(room) {
			continue
		}
		var st game.State
		if err := json.Unmarshal(m.Data, &st); err != nil {
			r.t.Fatalf("bad state %s: %v", m.Data, err)
		}
		if !found || st.Seq > best.Seq {
			best, found = st, true
		}
	}
	return best, found
}

// waitClusterRoutes waits until every embedded NATS server routes to every
// other.
func (c *testCluster) waitClusterRoutes() {
	c.t.Helper()
	harness.Eventually(c.t, 15*time.Second, "a full NATS cluster", func() error {
		nodes := c.alive()
		for _, n := range nodes {
			if got := n.nats.NATS().NumRemotes(); got < len(nodes)-1 {
				return fmt.Errorf("%s has %d routes, want %d", n.ID(), got, len(nodes)-1)
			}
		}
		return nil
	})
}

// dedupe drops repeats by seq, checking a repeat carries the same seq only
// with the same content.
func dedupe(t *testing.T, evs []game.Event) []game.Event {
	t.Helper()
	seen := map[uint64]game.Event{}
	var out []game.Event
	for _, ev := range evs {
		if prev, ok := seen[ev.Seq]; ok {
			if prev != ev {
				t.Fatalf("seq %d published twice with different content: %+v vs %+v", ev.Seq, prev, ev)
			}
			continue
		}
		seen[ev.Seq] = ev
		out = append(out, ev)
	}
	return out
}

func TestSubscriberOnAnotherNodeSeesEveryEventInOrder(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.leader()
	c.waitClusterRoutes()
	rec := record(t, c.nodes[2].NATSURL())
	rec.waitInterest(c)

	setupRoom(t, c, 0, "ordered")
	acks := playGuesses(t, c.client(0), "ordered", "alice", 40)
	// The room's last change may be a new round after the last guess.
	final, err := c.client(0).GetRoom(ctxT(t), &hangmanv1.GetRoomRequest{Room: "ordered", Consistency: hangmanv1.Consistency_CONSISTENCY_LINEARIZABLE})
	if err != nil {
		t.Fatal(err)
	}
	last := final.GetState().GetSeq()
	if last < acks[len(acks)-1].GetIndex() {
		t.Fatalf("room at seq %d, before the last guess's index %d", last, acks[len(acks)-1].GetIndex())
	}
	harness.Eventually(t, 10*time.Second, "the last event and state on node 3's NATS", func() error {
		evs := rec.events("ordered")
		if len(evs) == 0 || evs[len(evs)-1].Seq < last {
			return fmt.Errorf("have %d events", len(evs))
		}
		if st, _ := rec.latestState("ordered"); st.Seq < last {
			return fmt.Errorf("latest state at seq %d", st.Seq)
		}
		return nil
	})
	// A republish (a route that opened late, say) repeats events; a consumer
	// drops those by seq, and after that every event must follow the one
	// before it: strictly increasing seq, each prev the seq before, no gap.
	evs := dedupe(t, rec.events("ordered"))
	var prevSeq uint64
	for i, ev := range evs {
		if ev.Seq <= prevSeq || ev.Prev != prevSeq {
			t.Fatalf("event %d: seq %d prev %d after seq %d", i, ev.Seq, ev.Prev, prevSeq)
		}
		prevSeq = ev.Seq
	}
	guesses := 0
	for _, ev := range evs {
		if ev.Kind == game.EventGuess {
			guesses++
		}
	}
	if guesses != len(acks) {
		t.Fatalf("saw %d guess events, %d guesses were acknowledged", guesses, len(acks))
	}
	st, ok := rec.latestState("ordered")
	if !ok || st.Seq != last {
		t.Fatalf("latest state seq %d, want %d", st.Seq, last)
	}
}

func TestKilledLeaderIsCoveredByRepublish(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.leader()
	c.waitClusterRoutes()
	survivor := (leader + 1) % 3
	rec := record(t, c.nodes[survivor].NATSURL())
	rec.waitInterest(c)

	rooms := []string{"k1", "k2", "k3"}
	for _, room := range rooms {
		setupRoom(t, c, leader, room)
	}
	for _, room := range rooms {
		playGuesses(t, c.client(leader), room, "bob", 5)
	}
	// Kill the leader right after its last commit was acknowledged: it may
	// never have published the last changes.
	c.kill(leader)
	newLeader := c.leader()

	ctx := ctxT(t)
	cl := c.client(newLeader)
	for _, room := range rooms {
		want, err := cl.GetRoom(ctx, &hangmanv1.GetRoomRequest{Room: room, Consistency: hangmanv1.Consistency_CONSISTENCY_LINEARIZABLE})
		if err != nil {
			t.Fatal(err)
		}
		harness.Eventually(t, 10*time.Second, "the final state of "+room, func() error {
			st, ok := rec.latestState(room)
			if !ok || st.Seq != want.GetState().GetSeq() {
				return fmt.Errorf("latest seq %d, want %d", st.Seq, want.GetState().GetSeq())
			}
			if strings.Join(st.Guessed, "") != strings.Join(want.GetState().GetGuessed(), "") {
				return fmt.Errorf("guessed %v, want %v", st.Guessed, want.GetState().GetGuessed())
			}
			return nil
		})
		// Repeats are allowed, but only as the same seq with the same content.
		dedupe(t, rec.events(room))
	}
}

func TestWordIsOnNoSubjectWhilePlaying(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.leader()
	c.waitClusterRoutes()
	rec := record(t, c.nodes[1].NATSURL())
	rec.waitInterest(c)

	setupRoom(t, c, 0, "secret")
	var final *hangmanv1.RoomState
	ctx := ctxT(t)
	for _, l := range "etaoinshrdlucmfwypvbgkqjxz" {
		r, err := c.client(0).Guess(ctx, &hangmanv1.GuessRequest{Room: "secret", PlayerId: "alice", Letter: string(l), Token: harness.TokenOf("alice")})
		if err != nil {
			t.Fatal(err)
		}
		if r.GetState().GetStatus() != "playing" {
			final = r.GetState()
			break
		}
		if r.GetState().GetWord() != "" {
			t.Fatalf("gRPC reply carries the word while playing")
		}
	}
	if final == nil || final.GetWord() == "" {
		t.Fatalf("round did not end with the word revealed: %v", final)
	}
	word := []byte(final.GetWord())
	harness.Eventually(t, 10*time.Second, "the final state", func() error {
		if st, ok := rec.latestState("secret"); !ok || st.Seq != final.GetSeq() {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	scanned := 0
	for _, m := range rec.snapshot() {
		if strings.HasPrefix(m.Subject, "hangman.probe.") {
			continue
		}
		var probe struct {
			Seq    uint64 `json:"seq"`
			Status string `json:"status"`
		}
		_ = json.Unmarshal(m.Data, &probe)
		if probe.Seq >= final.GetSeq() {
			continue // the message that ended the round may show it
		}
		scanned++
		if bytes.Contains(m.Data, word) || bytes.Contains(m.Data, []byte(`"word"`)) {
			t.Fatalf("the word %q leaked on %s before the round ended: %s", word, m.Subject, m.Data)
		}
	}
	if scanned < 10 {
		t.Fatalf("scanned only %d messages", scanned)
	}
}

// TestPublishingSurvivesLossOfAnEmbeddedNATSServer kills the leader's own
// NATS server under a game: the leader's publisher moves to another server
// and republishes every room, so a subscriber elsewhere gets every event.
// An event the leader wrote to the dying server's socket may be lost and
// arrive again, out of order, with the republish; a consumer puts events
// in seq order by their prev links, and so does this test.
func TestPublishingSurvivesLossOfAnEmbeddedNATSServer(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.leader()
	c.waitClusterRoutes()
	other := (leader + 1) % 3
	rec := record(t, c.nodes[other].NATSURL())
	rec.waitInterest(c)
	setupRoom(t, c, leader, "natsloss")

	// The leader's own NATS server dies; the node and raft live on.
	c.nodes[leader].nats.Shutdown()

	acks := playGuesses(t, c.client(other), "natsloss", "alice", 10)
	last := acks[len(acks)-1].GetIndex()
	harness.Eventually(t, 15*time.Second, "events published through the remaining servers", func() error {
		st, ok := rec.latestState("natsloss")
		if !ok || st.Seq < last {
			return fmt.Errorf("latest seq %d, want %d", st.Seq, last)
		}
		return nil
	})
	// Back on another server, the leader republished every room, since
	// what it sent while cut off may be lost.
	harness.Eventually(t, 10*time.Second, "a republish after the reconnect", func() error {
		if n := c.nodes[leader].pub.Stats().Republishes; n < 2 {
			return fmt.Errorf("%d republishes", n)
		}
		return nil
	})
	harness.Eventually(t, 10*time.Second, "every event of the room, without a gap", func() error {
		evs := dedupe(t, rec.events("natsloss"))
		slices.SortFunc(evs, func(a, b game.Event) int { return cmp.Compare(a.Seq, b.Seq) })
		var prev uint64
		for _, ev := range evs {
			if ev.Prev != prev {
				return fmt.Errorf("gap: event seq %d prev %d after %d", ev.Seq, ev.Prev, prev)
			}
			prev = ev.Seq
		}
		if prev < last {
			return fmt.Errorf("events up to seq %d, want %d", prev, last)
		}
		return nil
	})
}
