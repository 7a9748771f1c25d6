package raftnode

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/hangman/hangman/internal/harness"
	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
)

// setupRoom creates a room through node i and joins two players.
func setupRoom(t *testing.T, c *testCluster, i int, room string) *hangmanv1.RoomState {
	t.Helper()
	ctx := ctxT(t)
	cl := c.client(i)
	if _, err := cl.CreateRoom(ctx, &hangmanv1.CreateRoomRequest{Room: room, MaxWrong: 26}); err != nil {
		t.Fatalf("create room %s via %s: %v", room, c.cfgs[i].ID, err)
	}
	var st *hangmanv1.RoomState
	for _, p := range []string{"alice", "bob"} {
		r, err := cl.JoinRoom(ctx, &hangmanv1.JoinRoomRequest{Room: room, PlayerId: p, Name: p, Token: harness.TokenOf(p)})
		if err != nil {
			t.Fatalf("join %s: %v", p, err)
		}
		st = r.GetState()
	}
	return st
}

// playGuesses makes n guesses in a room, starting a new round whenever one
// ends, and returns the acknowledged responses.
func playGuesses(t *testing.T, cl hangmanv1.GameServiceClient, room, player string, n int) []*hangmanv1.GuessResponse {
	t.Helper()
	ctx := ctxT(t)
	var out []*hangmanv1.GuessResponse
	letters := "etaoinshrdlucmfwypvbgkqjxz"
	next := 0
	for len(out) < n {
		r, err := cl.Guess(ctx, &hangmanv1.GuessRequest{Room: room, PlayerId: player, Letter: string(letters[next%26]), RequestId: fmt.Sprintf("%s-%s-%d", room, player, len(out)), Token: harness.TokenOf(player)})
		if err != nil {
			t.Fatalf("guess %d: %v", len(out), err)
		}
		out = append(out, r)
		next++
		if r.GetState().GetStatus() != "playing" {
			if _, err := cl.NewRound(ctx, &hangmanv1.NewRoundRequest{Room: room, PlayerId: player, Token: harness.TokenOf(player)}); err != nil {
				t.Fatalf("new round: %v", err)
			}
			next = 0
		}
	}
	return out
}

func TestClusterElectsAndReplicatesThroughAnyNode(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.leader()
	setupRoom(t, c, 0, "lobby")
	ctx := ctxT(t)
	// One guess through each node: followers forward to the leader.
	for i, letter := range []string{"a", "e", "o"} {
		res, err := c.client(i).Guess(ctx, &hangmanv1.GuessRequest{Room: "lobby", PlayerId: "alice", Letter: letter, RequestId: "g-" + letter, Token: harness.TokenOf("alice")})
		if err != nil {
			t.Fatalf("guess %q via %s: %v", letter, c.cfgs[i].ID, err)
		}
		if res.GetDuplicate() || res.GetIndex() == 0 {
			t.Fatalf("guess via %s: duplicate=%v index=%d", c.cfgs[i].ID, res.GetDuplicate(), res.GetIndex())
		}
	}
	c.converged()
	for i := range c.nodes {
		r, err := c.client(i).GetRoom(ctx, &hangmanv1.GetRoomRequest{Room: "lobby", Consistency: hangmanv1.Consistency_CONSISTENCY_STALE})
		if err != nil {
			t.Fatalf("stale read on %s: %v", c.cfgs[i].ID, err)
		}
		if got := r.GetState().GetGuessed(); len(got) != 3 {
			t.Fatalf("%s has guessed %v, want 3 letters", c.cfgs[i].ID, got)
		}
	}
}

func TestLeaderKillElectsNewLeaderAndRestartCatchesUp(t *testing.T) {
	for _, tc := range []struct {
		name string
		// localSnapshot: the killed node took a snapshot before dying and
		// must restore from it; leaderSnapshot: the leader compacted past
		// the killed node's log and must send it a snapshot.
		localSnapshot, leaderSnapshot bool
		tweak                         func(*Config)
	}{
		{name: "from log"},
		{name: "from own snapshot", localSnapshot: true},
		{name: "from leader snapshot", leaderSnapshot: true, tweak: func(c *Config) {
			c.TrailingLogs = 2
			c.SnapshotThreshold = 1 << 20 // only the explicit snapshot below
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestCluster(t, 3, tc.tweak)
			old := c.leader()
			setupRoom(t, c, old, "failover")
			c.converged()
			if tc.localSnapshot {
				if err := c.nodes[old].raft.Snapshot().Error(); err != nil {
					t.Fatalf("snapshot before kill: %v", err)
				}
			}
			c.kill(old)

			newLeader := c.leader()
			if newLeader == old {
				t.Fatalf("killed node %d still leads", old)
			}
			ctx := ctxT(t)
			other := (old + 1) % 3
			playGuesses(t, c.client(other), "failover", "bob", 20)
			if tc.leaderSnapshot {
				ln := c.nodes[newLeader]
				if err := ln.raft.Snapshot().Error(); err != nil {
					t.Fatalf("snapshot: %v", err)
				}
				first, _ := ln.logStore.FirstIndex()
				last, err := c.logLastIndexOnDisk(old)
				if err != nil {
					t.Fatal(err)
				}
				if first <= last+1 {
					t.Fatalf("leader still holds log from %d; the restarted node (last %d) would not need a snapshot", first, last)
				}
			}
			restarted := c.start(old)
			if tc.localSnapshot {
				if idx := restarted.raft.Stats()["last_snapshot_index"]; idx == "0" {
					t.Fatalf("restarted node did not restore its own snapshot")
				}
			}
			want := c.converged()
			if got := snapshotOf(t, restarted); got != want {
				t.Fatalf("restarted node differs")
			}
			if tc.leaderSnapshot {
				// raft restores the FSM from an installed snapshot before
				// it records the snapshot, so the state can match a moment
				// before the stats say how it came.
				harness.Eventually(t, 10*time.Second, "the restarted node to record the leader's snapshot", func() error {
					if st := restarted.raft.Stats(); st["last_snapshot_index"] == "0" {
						return fmt.Errorf("it caught up without installing the leader's snapshot: %v", st)
					}
					return nil
				})
			}
			got, err := c.client(old).GetRoom(ctx, &hangmanv1.GetRoomRequest{Room: "failover", Consistency: hangmanv1.Consistency_CONSISTENCY_STALE})
			if err != nil {
				t.Fatalf("read restarted node: %v", err)
			}
			want2, err := c.client(newLeader).GetRoom(ctx, &hangmanv1.GetRoomRequest{Room: "failover", Consistency: hangmanv1.Consistency_CONSISTENCY_LINEARIZABLE})
			if err != nil {
				t.Fatalf("read leader: %v", err)
			}
			if !proto.Equal(got.GetState(), want2.GetState()) {
				t.Fatalf("restarted node shows %v, leader %v", got.GetState(), want2.GetState())
			}
		})
	}
}

// logLastIndexOnDisk reads the last index of a stopped node's log.
func (c *testCluster) logLastIndexOnDisk(i int) (uint64, error) {
	c.t.Helper()
	if c.nodes[i] != nil {
		return 0, fmt.Errorf("node %d is running", i)
	}
	return lastIndexInDir(c.cfgs[i].DataDir)
}

// guessClients are the two ways to send a guess: a unary Guess call, and
// the Guesses stream that relays use. Each must answer alike.
func guessClients(c *testCluster) map[string]func(i int) hangmanv1.GameServiceClient {
	return map[string]func(int) hangmanv1.GameServiceClient{"unary": c.client, "stream": c.streamClient}
}

func TestRetriedGuessIsAppliedOnce(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.leader()
	for name, client := range guessClients(c) {
		t.Run(name, func(t *testing.T) {
			room := "retry-" + name
			setupRoom(t, c, 0, room)
			ctx := ctxT(t)
			req := &hangmanv1.GuessRequest{Room: room, PlayerId: "alice", Letter: "z", RequestId: "once", Token: harness.TokenOf("alice")}
			first, err := client(0).Guess(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			// The retry arrives at another node, as after a lost reply.
			second, err := client(2).Guess(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if first.GetDuplicate() || !second.GetDuplicate() {
				t.Fatalf("duplicate flags: first %v second %v", first.GetDuplicate(), second.GetDuplicate())
			}
			if first.GetOutcome() != second.GetOutcome() {
				t.Fatalf("outcome changed on retry: %q then %q", first.GetOutcome(), second.GetOutcome())
			}
			if first.GetIndex() == 0 || second.GetIndex() != first.GetIndex() {
				t.Fatalf("retry reports index %d, the original was applied at %d", second.GetIndex(), first.GetIndex())
			}
			if a, b := first.GetState().GetSeq(), second.GetState().GetSeq(); a != b {
				t.Fatalf("retry changed the room: seq %d then %d", a, b)
			}
			if n := len(second.GetState().GetGuessed()); n != 1 {
				t.Fatalf("guessed %v after a retried guess, want one letter", second.GetState().GetGuessed())
			}
		})
	}
}

func TestBadInputIsRefusedAndChangesNothing(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.leader()
	setupRoom(t, c, 0, "strict")
	c.converged()
	before := roomsOf(t, c.nodes[0])
	ctx := ctxT(t)
	for name, client := range guessClients(c) {
		cl := client(1)
		for _, tc := range []struct {
			name string
			req  *hangmanv1.GuessRequest
			code codes.Code
		}{
			{"two letters", &hangmanv1.GuessRequest{Room: "strict", PlayerId: "alice", Letter: "ab", Token: harness.TokenOf("alice")}, codes.InvalidArgument},
			{"digit", &hangmanv1.GuessRequest{Room: "strict", PlayerId: "alice", Letter: "7", Token: harness.TokenOf("alice")}, codes.InvalidArgument},
			{"empty letter", &hangmanv1.GuessRequest{Room: "strict", PlayerId: "alice", Token: harness.TokenOf("alice")}, codes.InvalidArgument},
			{"unicode letter", &hangmanv1.GuessRequest{Room: "strict", PlayerId: "alice", Letter: "é", Token: harness.TokenOf("alice")}, codes.InvalidArgument},
			{"empty player", &hangmanv1.GuessRequest{Room: "strict", Letter: "a"}, codes.InvalidArgument},
			{"subject injection", &hangmanv1.GuessRequest{Room: "strict.>", PlayerId: "alice", Letter: "a", Token: harness.TokenOf("alice")}, codes.InvalidArgument},
			{"unknown room", &hangmanv1.GuessRequest{Room: "nowhere", PlayerId: "alice", Letter: "a", Token: harness.TokenOf("alice")}, codes.NotFound},
			{"player not joined", &hangmanv1.GuessRequest{Room: "strict", PlayerId: "mallory", Letter: "a", Token: harness.TokenOf("mallory")}, codes.FailedPrecondition},
			{"no token", &hangmanv1.GuessRequest{Room: "strict", PlayerId: "alice", Letter: "a"}, codes.PermissionDenied},
			{"another player's token", &hangmanv1.GuessRequest{Room: "strict", PlayerId: "alice", Letter: "a", Token: harness.TokenOf("bob")}, codes.PermissionDenied},
		} {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				_, err := cl.Guess(ctx, tc.req)
				if got := status.Code(err); got != tc.code {
					t.Fatalf("code %v (%v), want %v", got, err, tc.code)
				}
				if msg := status.Convert(err).Message(); msg == "" {
					t.Fatalf("error without a message")
				}
			})
		}
	}
	if _, err := c.client(1).GetRoom(ctx, &hangmanv1.GetRoomRequest{Room: "nowhere"}); status.Code(err) != codes.NotFound {
		t.Fatalf("get unknown room: %v", err)
	}
	// Refusals by the rules still take a log index; no room may change.
	c.converged()
	for _, n := range c.alive() {
		if after := roomsOf(t, n); after != before {
			t.Fatalf("refused input changed the rooms on %s:\nbefore %s\nafter  %s", n.ID(), before, after)
		}
	}
}

func TestLinearizableReadSeesAcknowledgedWrite(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.leader()
	setupRoom(t, c, 0, "reads")
	ctx := ctxT(t)
	for i, letter := range []string{"q", "w", "e", "r", "t", "y"} {
		g, err := c.client(i%3).Guess(ctx, &hangmanv1.GuessRequest{Room: "reads", PlayerId: "bob", Letter: letter, Token: harness.TokenOf("bob")})
		if err != nil {
			t.Fatal(err)
		}
		// A linearizable read through any other node must see the write.
		r, err := c.client((i+1)%3).GetRoom(ctx, &hangmanv1.GetRoomRequest{Room: "reads", Consistency: hangmanv1.Consistency_CONSISTENCY_LINEARIZABLE})
		if err != nil {
			t.Fatal(err)
		}
		if r.GetState().GetSeq() < g.GetIndex() {
			t.Fatalf("read seq %d after write at index %d", r.GetState().GetSeq(), g.GetIndex())
		}
	}
}

func TestClusterServiceReportsAndTransfersLeadership(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	old := c.leader()
	ctx := ctxT(t)
	cc := c.clusterClient((old + 1) % 3)
	cfg, err := cc.RaftConfiguration(ctx, &hangmanv1.RaftConfigurationRequest{})
	if err != nil {
		t.Fatal(err)
	}
	voters := 0
	for _, s := range cfg.GetServers() {
		if s.GetSuffrage() == raft.Voter.String() {
			voters++
		}
	}
	if voters != 3 {
		t.Fatalf("configuration %v has %d voters, want 3", cfg.GetServers(), voters)
	}
	m, err := cc.Members(ctx, &hangmanv1.MembersRequest{})
	if err != nil || len(m.GetMembers()) != 3 {
		t.Fatalf("members %v, err %v", m.GetMembers(), err)
	}
	// Each member names where it serves gRPC: relays follow nodes by it.
	for _, mb := range m.GetMembers() {
		if !slices.ContainsFunc(c.nodes, func(n *Node) bool { return n.GRPCAddr() == mb.GetGrpcAddress() }) {
			t.Fatalf("member %s lists gRPC address %q, no node's", mb.GetName(), mb.GetGrpcAddress())
		}
	}
	target := c.cfgs[(old+2)%3].ID
	tr, err := cc.TransferLeadership(ctx, &hangmanv1.TransferLeadershipRequest{TargetId: target})
	if err != nil {
		t.Fatalf("transfer: %v", err)
	}
	if tr.GetLeaderId() != target {
		t.Fatalf("transfer answered leader %q, want %q", tr.GetLeaderId(), target)
	}
	harness.Eventually(t, 10*time.Second, "leadership to move to "+target, func() error {
		st, err := cc.Status(ctx, &hangmanv1.StatusRequest{})
		if err != nil {
			return err
		}
		if st.GetLeaderId() != target {
			return fmt.Errorf("leader is %q", st.GetLeaderId())
		}
		return nil
	})
}
