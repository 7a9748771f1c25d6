package raftnode

import (
	"errors"
	"io"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestNewTermHeartbeatDeposesTheLeaderBeforeItAppends reproduces
// hashicorp/raft#695, the replica divergence the chaos suite found after
// SIGSTOP and SIGCONT of a leader: raft answers heartbeats on the
// transport's goroutine (a fast path that keeps them from waiting on the
// disk), and a heartbeat of a newer term sets the term and makes the node
// a follower there, while the main loop, parked in the leader's select,
// goes on. The next command it takes is written under the new term, at an
// index where the new term's real leader wrote something else: the two
// logs then agree on the term and differ in the command, so neither
// notices, and each node applies its own.
//
// Here a heartbeat of term T+1 reaches an idle leader of term T, exactly
// as the new leader's first heartbeat reaches a leader resumed by SIGCONT,
// and a command is proposed to it at once. The leader must stop leading
// before it appends anything: the command is refused, and nothing of
// term T+1 is written.
func TestNewTermHeartbeatDeposesTheLeaderBeforeItAppends(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	li := c.leader()
	leader := c.nodes[li]
	term := leader.raft.CurrentTerm()

	client, err := raft.NewTCPTransport("127.0.0.1:0", nil, 1, 5*time.Second, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	ghost := raft.ServerAddress(client.LocalAddr())
	heartbeat := raft.AppendEntriesRequest{
		RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("ghost"), Addr: []byte(ghost)},
		Term:      term + 1,
	}
	var resp raft.AppendEntriesResponse
	if err := client.AppendEntries(leader.ident.raftID, raft.ServerAddress(c.cfgs[li].RaftAddr), &heartbeat, &resp); err != nil {
		t.Fatalf("heartbeat of term %d to the leader: %v", term+1, err)
	}
	if resp.Term != term+1 {
		t.Fatalf("the leader answered a heartbeat of term %d in term %d", term+1, resp.Term)
	}

	err = leader.raft.Apply(leaderMarker, 5*time.Second).Error()
	lastTerm, _ := strconv.ParseUint(leader.raft.Stats()["last_log_term"], 10, 64)
	if lastTerm > term {
		t.Fatalf("deposed by a heartbeat of term %d, the leader of term %d wrote an entry of term %d (apply: %v): a term it never led", term+1, term, lastTerm, err)
	}
	if !errors.Is(err, raft.ErrNotLeader) && !errors.Is(err, raft.ErrLeadershipLost) {
		t.Fatalf("a command proposed to a leader deposed by a newer term: %v, want it refused as not leader", err)
	}
}

// TestRoutineHeartbeat: only a follower's heartbeats of its own term take
// raft's fast path; whatever could change the term or the role goes to
// the main loop.
func TestRoutineHeartbeat(t *testing.T) {
	hb := func(term uint64) raft.RPC { return raft.RPC{Command: &raft.AppendEntriesRequest{Term: term}} }
	tests := []struct {
		name  string
		state raft.RaftState
		rpc   raft.RPC
		want  bool
	}{
		{"follower, its term", raft.Follower, hb(5), true},
		{"follower, a newer term", raft.Follower, hb(6), false},
		{"follower, an older term", raft.Follower, hb(4), false},
		{"leader, a newer term", raft.Leader, hb(6), false},
		{"candidate, its term (an election lost)", raft.Candidate, hb(5), false},
		{"not an append", raft.Follower, raft.RPC{Command: &raft.RequestVoteRequest{Term: 5}}, false},
	}
	for _, tt := range tests {
		if got := routineHeartbeat(tt.state, 5, tt.rpc); got != tt.want {
			t.Errorf("%s: routine %v, want %v", tt.name, got, tt.want)
		}
	}
}
