package raftnode

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/hangman/hangman/internal/harness"
)

// TestCrashedLeaderReplacedFast: with heartbeat and election timeouts long
// enough for a starved machine, a leader whose process is gone is still
// replaced in a fraction of them, because the followers find its raft
// port closed instead of waiting out the silence.
func TestCrashedLeaderReplacedFast(t *testing.T) {
	const timeout = 3 * time.Second
	c := newTestCluster(t, 3, func(cfg *Config) {
		cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = timeout, timeout, timeout
	})
	old := c.leader()
	start := time.Now()
	c.kill(old)
	harness.Eventually(t, 4*timeout, "a new leader", func() error {
		for _, n := range c.alive() {
			if n.IsLeader() {
				return nil
			}
		}
		return fmt.Errorf("no live node leads")
	})
	if took := time.Since(start); took >= timeout {
		t.Fatalf("a new leader took %v after the old one's process died: the followers waited out the %v heartbeat timeout", took, timeout)
	} else {
		t.Logf("new leader %v after the kill", took)
	}
}

// TestCrashWatch drives the fast failover's decision: when a follower
// whose leader's port is closed stands for election, and when it leaves
// the election to another survivor.
func TestCrashWatch(t *testing.T) {
	const (
		suspect = 250 * time.Millisecond
		stagger = 500 * time.Millisecond
	)
	t0 := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	ms := time.Millisecond
	silent := func(d time.Duration) follower {
		return follower{leader: "n1", leaderAddr: "127.0.0.1:1", following: true, silence: d}
	}
	// The candidate's log, against this node's last entry (term 2, index 100).
	voteFrom := func(term, index uint64) raft.RequestVoteRequest {
		return raft.RequestVoteRequest{Term: 3, LastLogTerm: term, LastLogIndex: index}
	}
	// step is a tick at t0+at, or a vote request seen then (vote set).
	type step struct {
		at    time.Duration
		f     follower
		gone  bool
		turn  int
		vote  *raft.RequestVoteRequest
		stand bool
	}
	ptr := func(r raft.RequestVoteRequest) *raft.RequestVoteRequest { return &r }
	tests := []struct {
		name  string
		steps []step
	}{
		{"leader heard from: no probe result matters", []step{
			{at: 0, f: silent(100 * ms), gone: true, turn: 0},
		}},
		{"silent but its port answers (starved, paused, partitioned): wait", []step{
			{at: 0, f: silent(300 * ms), gone: false, turn: 0},
			{at: 900 * ms, f: silent(1200 * ms), gone: false, turn: 0},
		}},
		{"first in turn stands as soon as the port is closed, once", []step{
			{at: 0, f: silent(300 * ms), gone: true, turn: 0, stand: true},
			{at: 50 * ms, f: silent(350 * ms), gone: true, turn: 0},
			{at: 2000 * ms, f: silent(2300 * ms), gone: true, turn: 0},
		}},
		{"second in turn waits a stagger", []step{
			{at: 0, f: silent(300 * ms), gone: true, turn: 1},
			{at: 450 * ms, f: silent(750 * ms), gone: true, turn: 1},
			{at: 500 * ms, f: silent(800 * ms), gone: true, turn: 1, stand: true},
		}},
		{"a candidate behind this node's log: stand at once", []step{
			{at: 0, f: silent(300 * ms), gone: true, turn: 1},
			{at: 20 * ms, f: silent(320 * ms), gone: true, turn: 1, vote: ptr(voteFrom(2, 99)), stand: true},
		}},
		{"a candidate from an older term is behind too", []step{
			{at: 0, f: silent(300 * ms), gone: true, turn: 1, vote: ptr(voteFrom(1, 500)), stand: true},
		}},
		{"a behind candidate seen by a non-voter: nothing", []step{
			{at: 0, f: silent(300 * ms), gone: true, turn: -1, vote: ptr(voteFrom(2, 99))},
		}},
		{"a candidate this node votes for: leave it the election", []step{
			{at: 0, f: silent(300 * ms), gone: true, turn: 1},
			{at: 20 * ms, f: silent(320 * ms), gone: true, turn: 1, vote: ptr(voteFrom(2, 100))},
			{at: 600 * ms, f: silent(900 * ms), gone: true, turn: 1},
		}},
		{"a behind candidate while the leader's port answers: nothing", []step{
			{at: 0, f: silent(300 * ms), gone: false, turn: 1, vote: ptr(voteFrom(2, 99))},
		}},
		{"not a voter: never by turn", []step{
			{at: 0, f: silent(300 * ms), gone: true, turn: -1},
			{at: 5000 * ms, f: silent(5300 * ms), gone: true, turn: -1},
		}},
		{"a candidate already (raft's own timeout): leave raft to it", []step{
			{at: 0, f: follower{leader: "n1", leaderAddr: "127.0.0.1:1", following: false, silence: 2 * time.Second}, gone: true, turn: 0},
		}},
		{"this node led: nothing to watch", []step{
			{at: 0, f: follower{leader: "n3", leaderAddr: "127.0.0.1:3", following: true, silence: 2 * time.Second}, gone: true, turn: 0},
		}},
		{"a new leader heard from: a fresh watch for it", []step{
			{at: 0, f: silent(300 * ms), gone: true, turn: 0, stand: true},
			{at: 400 * ms, f: follower{leader: "n2", leaderAddr: "127.0.0.1:2", following: true, silence: 10 * ms}, gone: true, turn: 0},
			{at: 9000 * ms, f: follower{leader: "n2", leaderAddr: "127.0.0.1:2", following: true, silence: 300 * ms}, gone: true, turn: 0, stand: true},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := crashWatch{self: "n3", suspect: suspect, stagger: stagger}
			for _, st := range tc.steps {
				gone := func() bool { return st.gone }
				var stand bool
				if st.vote != nil {
					stand = w.vote(st.f, *st.vote, 2, 100, func() int { return st.turn }, gone)
				} else {
					stand = w.tick(t0.Add(st.at), st.f, func() int { return st.turn }, gone)
				}
				if stand != st.stand {
					t.Fatalf("at %v: stand %v, want %v", st.at, stand, st.stand)
				}
			}
		})
	}
}

// TestPeerClosedConnectionNoted: the raft layer notes a peer that closed a
// connection it had opened to this node (a leader whose process ended,
// its network perhaps with it), by the peer's IP, and not a connection
// this node closed itself.
func TestPeerClosedConnectionNoted(t *testing.T) {
	tcp, err := newTCPLayer("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	layer := newCuttableLayer(tcp)
	defer layer.Close()
	loopback, elsewhere := []net.IP{net.IPv4(127, 0, 0, 1)}, []net.IP{net.IPv4(10, 0, 0, 1)}
	accept := func() (peer, here net.Conn) {
		t.Helper()
		peer, err := net.Dial("tcp", tcp.ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		here, err = layer.Accept()
		if err != nil {
			t.Fatal(err)
		}
		return peer, here
	}
	read := func(c net.Conn) error {
		_, err := c.Read(make([]byte, 1))
		return err
	}

	start := time.Now()
	peer, here := accept()
	_ = here.Close()
	if err := read(here); err == nil {
		t.Fatal("read from a closed connection succeeded")
	}
	_ = peer.Close()
	if layer.peerClosedSince(loopback, start) {
		t.Fatal("a connection this node closed was taken for the peer's doing")
	}

	peer, here = accept()
	defer here.Close()
	_ = peer.Close()
	if err := read(here); err == nil {
		t.Fatal("read after the peer closed succeeded")
	}
	if !layer.peerClosedSince(loopback, start) {
		t.Error("the peer's close was not noted")
	}
	if layer.peerClosedSince(elsewhere, start) {
		t.Error("the peer's close was noted for another IP")
	}
	if layer.peerClosedSince(loopback, time.Now()) {
		t.Error("the peer's close was noted as later than it was")
	}
}
