package raftnode

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/hangman/hangman/internal/harness"
	"github.com/hangman/hangman/raftnode/raftstore"
	"github.com/hangman/hangman/services/game"
)

// memStorage is raft's in-memory log and stable store as the node's
// raftStorage: nothing to close, and its writes never fail.
type memStorage struct{ *raft.InmemStore }

func (memStorage) WriteHealth() error  { return nil }
func (memStorage) WriteErrors() uint64 { return 0 }
func (memStorage) Close() error        { return nil }

// newInmemCluster is newTestCluster with raft in memory: each node's raft
// talks over a raft.InmemTransport connected to every other node's, has
// no raft port (RaftAddr is empty), and keeps its log, term, vote and
// snapshots in raft's in-memory stores. Only the raft server id file is
// written to the data dir. Serf, NATS, gRPC and the HTTP port are still
// real on loopback: serf is how the nodes find each other and form the
// cluster, and gRPC how formation asks peers whether they have state.
// The transports are returned by node id, for tests to cut and mend.
func newInmemCluster(t *testing.T, size int) (*testCluster, map[string]*raft.InmemTransport) {
	t.Helper()
	trans := connectedInmemTransports(size)
	c := newTestCluster(t, size, func(cfg *Config) {
		cfg.RaftAddr = ""
		cfg.raftTransport = trans[cfg.ID]
		cfg.raftStores = &raftStores{log: memStorage{raft.NewInmemStore()}, snaps: raft.NewInmemSnapshotStore()}
	})
	return c, trans
}

// connectedInmemTransports returns the in-memory raft transports of nodes
// n1..n<size>, by node id, each connected to every other.
func connectedInmemTransports(size int) map[string]*raft.InmemTransport {
	trans := make(map[string]*raft.InmemTransport, size)
	for i := range size {
		id := fmt.Sprintf("n%d", i+1)
		_, trans[id] = raft.NewInmemTransport(raft.ServerAddress("inmem-" + id))
	}
	for _, a := range trans {
		for _, b := range trans {
			if a != b {
				a.Connect(b.LocalAddr(), b)
			}
		}
	}
	return trans
}

// isolate cuts node id's raft off the others, both ways; mend joins it
// again.
func isolate(trans map[string]*raft.InmemTransport, id string) {
	trans[id].DisconnectAll()
	for other, t := range trans {
		if other != id {
			t.Disconnect(trans[id].LocalAddr())
		}
	}
}

func mend(trans map[string]*raft.InmemTransport, id string) {
	for other, t := range trans {
		if other != id {
			t.Connect(trans[id].LocalAddr(), trans[id])
			trans[id].Connect(t.LocalAddr(), t)
		}
	}
}

// hasRoom reports whether node n's replica has room.
func hasRoom(n *Node, room string) bool {
	var ok bool
	n.Read(func(m *game.Machine) { _, ok = m.Room(room) })
	return ok
}

// TestInmemRaftCommitsEverywhereAndDropsAnIsolatedLeadersProposal runs
// consensus without sockets or a log on disk: a command the leader
// commits is applied identically on every replica; a leader cut off from
// the others still appends a proposal to its own log, but the others
// elect a new leader, and once the old one is back its uncommitted entry
// is overwritten and never applied anywhere.
func TestInmemRaftCommitsEverywhereAndDropsAnIsolatedLeadersProposal(t *testing.T) {
	c, trans := newInmemCluster(t, 3)
	ctx := ctxT(t)
	create := func(room string) []byte {
		return game.Command{Kind: game.KindCreateRoom, Room: room, Word: "apple", RequestID: room, At: time.Now().UnixMilli()}.Encode()
	}

	li := c.leader()
	old := c.nodes[li]
	if res, _, err := old.Propose(ctx, "kept", create("kept")); err != nil || res.Err != nil {
		t.Fatalf("propose on the leader: %v, refused: %v", err, res.Err)
	}
	c.converged()
	for _, n := range c.alive() {
		if !hasRoom(n, "kept") {
			t.Fatalf("%s has not applied the committed room", n.ID())
		}
		if _, ok := n.logStore.(memStorage); !ok || n.raftLayer != nil {
			t.Fatalf("%s does not run raft in memory (log store %T, network layer %v)", n.ID(), n.logStore, n.raftLayer)
		}
	}

	oldTerm := old.raft.CurrentTerm()
	isolate(trans, old.ID())
	lost := create("lost")
	future := old.raft.Apply(lost, 0)
	var lostIndex uint64
	harness.Eventually(t, 5*time.Second, "the isolated leader to append its proposal", func() error {
		last, err := old.logStore.LastIndex()
		if err != nil {
			return err
		}
		var l raft.Log
		if err := old.logStore.GetLog(last, &l); err != nil {
			return err
		}
		if !bytes.Equal(l.Data, lost) {
			return fmt.Errorf("last entry %d is not the proposal", last)
		}
		lostIndex = last
		return nil
	})
	if err := future.Error(); err == nil {
		t.Fatalf("the isolated leader's proposal committed at %d", future.Index())
	}

	next := c.leaderAfter(t, old, oldTerm)
	if res, _, err := next.Propose(ctx, "after", create("after")); err != nil || res.Err != nil {
		t.Fatalf("propose on the new leader: %v, refused: %v", err, res.Err)
	}

	mend(trans, old.ID())
	harness.Eventually(t, 15*time.Second, "the old leader to apply the new leader's entry", func() error {
		if !hasRoom(old, "after") {
			return errors.New("not yet")
		}
		return nil
	})
	c.converged()
	var l raft.Log
	if err := old.logStore.GetLog(lostIndex, &l); err != nil {
		t.Fatalf("read entry %d on the old leader: %v", lostIndex, err)
	}
	if bytes.Equal(l.Data, lost) {
		t.Fatalf("the old leader still holds its uncommitted proposal at %d", lostIndex)
	}
	for _, n := range c.alive() {
		if hasRoom(n, "lost") {
			t.Fatalf("%s applied the isolated leader's uncommitted proposal", n.ID())
		}
		if !hasRoom(n, "kept") || !hasRoom(n, "after") {
			t.Fatalf("%s lacks a committed room", n.ID())
		}
	}
}

// TestInmemServerWithoutStateRefusesVotes is
// TestServerWithoutStateRefusesVotes over an injected transport: the vote
// guard wraps it as it wraps TCP, so a node with an empty configuration
// refuses votes, and raft never sees the requests.
func TestInmemServerWithoutStateRefusesVotes(t *testing.T) {
	ports := harness.FreePorts(t, 4)
	addr := func(k int) string { return "127.0.0.1:" + strconv.Itoa(ports[k]) }
	_, trans := raft.NewInmemTransport("inmem-lone")
	n, err := Start(context.Background(), Config{ID: "lone", DataDir: t.TempDir(), GRPCAddr: addr(0), SerfAddr: addr(1),
		NATSAddr: addr(2), NATSClusterAddr: addr(3), FastGossip: true, Logger: harness.Logger(),
		raftTransport: trans, raftStores: &raftStores{log: memStorage{raft.NewInmemStore()}, snaps: raft.NewInmemSnapshotStore()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	_, candidate := raft.NewInmemTransport("inmem-candidate")
	candidate.Connect(trans.LocalAddr(), trans)
	requireVotesRefused(t, n, candidate, trans.LocalAddr())
}

// TestIsolatedLeadersTailIsReplacedOnDisk runs the in-memory transport
// over the nodes' own bbolt log stores, whose tail truncation waits for
// the append that follows it (raftstore.Store.DeleteRange): six times, the
// leader of a room's game is cut off with guesses of its own appended but
// not committed, the others elect a leader that commits other guesses at
// the same indexes, and once the old leader is back every replica must
// hold the same game, byte for byte.
func TestIsolatedLeadersTailIsReplacedOnDisk(t *testing.T) {
	trans := connectedInmemTransports(3)
	c := newTestCluster(t, 3, func(cfg *Config) {
		cfg.RaftAddr = ""
		cfg.raftTransport = trans[cfg.ID]
		s, snaps, err := raftstore.Open(t.TempDir(), harness.Logger(), nil)
		if err != nil {
			t.Fatal(err)
		}
		cfg.raftStores = &raftStores{log: s, snaps: snaps}
	})
	ctx := ctxT(t)
	at := time.Now().UnixMilli()
	cmd := func(c game.Command) []byte { c.At = at; return c.Encode() }
	li := c.leader()
	if _, _, err := c.nodes[li].Propose(ctx, "r", cmd(game.Command{Kind: game.KindCreateRoom, Room: "r", Word: "zebra", MaxWrong: 26})); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.nodes[li].Propose(ctx, "r", cmd(game.Command{Kind: game.KindJoinRoom, Room: "r", Player: "p", Name: "P"})); err != nil {
		t.Fatal(err)
	}
	letters := "abcdefghijklmnopqrstuvwxy"
	k := 0
	for range 6 {
		li = c.leader()
		old := c.nodes[li]
		oldTerm := old.raft.CurrentTerm()
		isolate(trans, old.ID())
		for range 3 {
			old.raft.Apply(cmd(game.Command{Kind: game.KindGuess, Room: "r", Player: "p", Letter: string(letters[k%25])}), 0)
			k++
		}
		next := c.leaderAfter(t, old, oldTerm)
		for range 5 {
			// A guess the rules refuse (the round won) is committed all
			// the same: only a failure to commit fails the test.
			if _, _, err := next.Propose(ctx, "r", cmd(game.Command{Kind: game.KindGuess, Room: "r", Player: "p", Letter: string(letters[k%25])})); err != nil {
				t.Fatalf("guess on the new leader %s: %v", next.ID(), err)
			}
			k++
		}
		mend(trans, old.ID())
		c.converged()
	}
}

// leaderAfter waits for a node other than old to lead, ready, in a term
// later than oldTerm, and returns it.
func (c *testCluster) leaderAfter(t *testing.T, old *Node, oldTerm uint64) *Node {
	t.Helper()
	var next *Node
	harness.Eventually(t, 15*time.Second, "the others to elect a new leader", func() error {
		for _, n := range c.alive() {
			if n != old && n.IsLeader() && n.raft.CurrentTerm() > oldTerm && n.readyTerm.Load() == n.raft.CurrentTerm() {
				next = n
				return nil
			}
		}
		return errors.New("no ready leader in a later term")
	})
	return next
}
