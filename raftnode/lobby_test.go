package raftnode

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/hangman/hangman/internal/harness"
	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
	"github.com/hangman/hangman/services/game"
	"github.com/hangman/hangman/subjects"
)

// lobbyLine is a line received on hangman.lobby, and whether it came
// again with a republish (a new leader's, or one after NATS reconnected)
// rather than with the change that made it.
type lobbyLine struct {
	game.Summary
	republished bool
}

// lobbyLines returns the lines received on hangman.lobby for room, in
// arrival order, refusing any payload that is not exactly a lobby line. A
// change publishes its state and then its line, and a republish sends the
// state again and then the line, so a line is a republish when the
// room's state with its seq had arrived before, in an earlier message.
func (r *recorder) lobbyLines(room string) []lobbyLine {
	var out []lobbyLine
	states := map[uint64]int{}
	for _, m := range r.snapshot() {
		switch m.Subject {
		case subjects.RoomState(room):
			var st game.State
			if err := json.Unmarshal(m.Data, &st); err != nil {
				r.t.Fatalf("bad state %s: %v", m.Data, err)
			}
			states[st.Seq]++
		case subjects.Lobby:
			var fields map[string]json.RawMessage
			if err := json.Unmarshal(m.Data, &fields); err != nil || len(fields) != 5 {
				r.t.Fatalf("lobby line %s: want exactly room, players, round, status, seq (%v)", m.Data, err)
			}
			var line game.Summary
			if err := json.Unmarshal(m.Data, &line); err != nil {
				r.t.Fatalf("lobby line %s: %v", m.Data, err)
			}
			if line.Room == room {
				out = append(out, lobbyLine{line, states[line.Seq] > 1})
			}
		}
	}
	return out
}

// changeLines returns room's lobby lines that came with their changes.
func (r *recorder) changeLines(room string) []game.Summary {
	var out []game.Summary
	for _, l := range r.lobbyLines(room) {
		if !l.republished {
			out = append(out, l.Summary)
		}
	}
	return out
}

// TestLobbyLines checks hangman.lobby on a real cluster, watched from a
// follower's NATS server: creating a room, taking a seat and deleting the
// room each publish the room's line with the seq of the change, a guess
// that leaves the round playing publishes none, and a new leader
// republishes the line of every room. Lines that a republish sent are told
// apart from those a change sent, so a republish the test did not ask for
// (an election or a NATS reconnection on a loaded machine) neither hides
// a line a change should not have sent nor fails the test.
func TestLobbyLines(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) {
		cfg.ReclaimInterval = time.Hour // the test sweeps at the times it wants
	})
	li := c.leader()
	c.waitClusterRoutes()
	fi := (li + 1) % 3
	rec := record(t, c.nodes[fi].NATSURL())
	rec.waitInterest(c)
	ctx := ctxT(t)
	cl := c.client(fi)

	wait := func(room string, want ...game.Summary) {
		t.Helper()
		harness.Eventually(t, 10*time.Second, fmt.Sprintf("%d lobby lines of %s from its changes", len(want), room), func() error {
			got := rec.changeLines(room)
			if len(got) != len(want) {
				return fmt.Errorf("lines %+v, want %+v", got, want)
			}
			for i := range want {
				if got[i] != want[i] {
					return fmt.Errorf("line %d is %+v, want %+v", i, got[i], want[i])
				}
			}
			return nil
		})
	}

	created, err := cl.CreateRoom(ctx, &hangmanv1.CreateRoomRequest{Room: "stay"})
	if err != nil {
		t.Fatal(err)
	}
	opened := game.Summary{Room: "stay", Players: 0, Round: 1, Status: game.StatusPlaying, Seq: created.GetState().GetSeq()}
	wait("stay", opened)
	joined, err := cl.JoinRoom(ctx, &hangmanv1.JoinRoomRequest{Room: "stay", PlayerId: "ann", Name: "Ann", Token: harness.TokenOf("ann")})
	if err != nil {
		t.Fatal(err)
	}
	seated := game.Summary{Room: "stay", Players: 1, Round: 1, Status: game.StatusPlaying, Seq: joined.GetState().GetSeq()}
	wait("stay", opened, seated)

	// A guess that leaves the round playing and a rename change no line;
	// the next creation's line arriving after them shows none was sent.
	// Between them a new leader republishes stay's line, as a node does
	// whenever it takes over or its NATS routes come back, and that line
	// is told apart from a change's.
	g, err := cl.Guess(ctx, &hangmanv1.GuessRequest{Room: "stay", PlayerId: "ann", Letter: "q", Token: harness.TokenOf("ann")})
	if err != nil || g.GetState().GetStatus() != string(game.StatusPlaying) {
		t.Fatalf("guess: %v, %v", g, err)
	}
	republishedAt := func(want game.Summary) {
		t.Helper()
		harness.Eventually(t, 10*time.Second, "the new leader's republished line of stay", func() error {
			lines := rec.lobbyLines("stay")
			if last := lines[len(lines)-1]; !last.republished || last.Summary != want {
				return fmt.Errorf("lines %+v, want the last republished as %+v", lines, want)
			}
			return nil
		})
	}
	second := (li + 2) % 3
	if _, err := c.clusterClient(li).TransferLeadership(ctx, &hangmanv1.TransferLeadershipRequest{TargetId: c.cfgs[second].ID}); err != nil {
		t.Fatalf("transfer: %v", err)
	}
	guessed := seated
	guessed.Seq = g.GetState().GetSeq()
	republishedAt(guessed)
	if _, err := cl.JoinRoom(ctx, &hangmanv1.JoinRoomRequest{Room: "stay", PlayerId: "ann", Name: "Annie", Token: harness.TokenOf("ann")}); err != nil {
		t.Fatal(err)
	}
	gone, err := cl.CreateRoom(ctx, &hangmanv1.CreateRoomRequest{Room: "gone"})
	if err != nil {
		t.Fatal(err)
	}
	wait("gone", game.Summary{Room: "gone", Round: 1, Status: game.StatusPlaying, Seq: gone.GetState().GetSeq()})
	wait("stay", opened, seated)

	// An empty room idle for an hour is deleted; "stay" has a seated
	// player and stays.
	if r, s := c.sweepAt(time.Now().Add(time.Hour + time.Minute)); r != 1 || s != 0 {
		t.Fatalf("reclaimed %d rooms and %d seats, want 1 room", r, s)
	}
	harness.Eventually(t, 10*time.Second, "the deletion of gone on NATS", func() error {
		if st, ok := rec.latestState("gone"); !ok || st.Status != game.StatusDeleted {
			return fmt.Errorf("gone's last state %+v", st)
		}
		return nil
	})
	deleted, _ := rec.latestState("gone")
	wait("gone", game.Summary{Room: "gone", Round: 1, Status: game.StatusPlaying, Seq: gone.GetState().GetSeq()},
		game.Summary{Room: "gone", Players: 0, Round: 1, Status: game.StatusDeleted, Seq: deleted.Seq})

	// A new leader republishes the line of every room it has, as it is
	// now (the rename moved its seq).
	if _, err := c.clusterClient(second).TransferLeadership(ctx, &hangmanv1.TransferLeadershipRequest{TargetId: c.cfgs[li].ID}); err != nil {
		t.Fatalf("transfer back: %v", err)
	}
	now, err := c.client(fi).GetRoom(ctx, &hangmanv1.GetRoomRequest{Room: "stay", Consistency: hangmanv1.Consistency_CONSISTENCY_LINEARIZABLE})
	if err != nil {
		t.Fatal(err)
	}
	again := seated
	again.Seq = now.GetState().GetSeq()
	republishedAt(again)
	wait("stay", opened, seated)
	// A room created after the republish has its line after it: by then
	// anything the republish sent of the deleted room has arrived, and it
	// sent nothing.
	after, err := cl.CreateRoom(ctx, &hangmanv1.CreateRoomRequest{Room: "after"})
	if err != nil {
		t.Fatal(err)
	}
	wait("after", game.Summary{Room: "after", Round: 1, Status: game.StatusPlaying, Seq: after.GetState().GetSeq()})
	if got := rec.lobbyLines("gone"); got[len(got)-1].Status != game.StatusDeleted {
		t.Fatalf("a line of the deleted room after its deletion: %+v", got)
	}
}
