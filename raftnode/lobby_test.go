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

// lobbyLines returns the lines received on hangman.lobby for room, in
// arrival order, refusing any payload that is not exactly a lobby line.
func (r *recorder) lobbyLines(room string) []game.Summary {
	var out []game.Summary
	for _, m := range r.snapshot() {
		if m.Subject != subjects.Lobby {
			continue
		}
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(m.Data, &fields); err != nil || len(fields) != 5 {
			r.t.Fatalf("lobby line %s: want exactly room, players, round, status, seq (%v)", m.Data, err)
		}
		var line game.Summary
		if err := json.Unmarshal(m.Data, &line); err != nil {
			r.t.Fatalf("lobby line %s: %v", m.Data, err)
		}
		if line.Room == room {
			out = append(out, line)
		}
	}
	return out
}

// TestLobbyLines checks hangman.lobby on a real cluster, watched from a
// follower's NATS server: creating a room, taking a seat and deleting the
// room each publish the room's line with the seq of the change, a guess
// that leaves the round playing publishes none, and a new leader
// republishes the line of every room.
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
		harness.Eventually(t, 10*time.Second, fmt.Sprintf("%d lobby lines of %s", len(want), room), func() error {
			got := rec.lobbyLines(room)
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
	g, err := cl.Guess(ctx, &hangmanv1.GuessRequest{Room: "stay", PlayerId: "ann", Letter: "q", Token: harness.TokenOf("ann")})
	if err != nil || g.GetState().GetStatus() != string(game.StatusPlaying) {
		t.Fatalf("guess: %v, %v", g, err)
	}
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
	// now (the guess and the rename moved its seq).
	target := c.cfgs[(li+2)%3].ID
	if _, err := c.clusterClient(li).TransferLeadership(ctx, &hangmanv1.TransferLeadershipRequest{TargetId: target}); err != nil {
		t.Fatalf("transfer: %v", err)
	}
	now, err := c.client(fi).GetRoom(ctx, &hangmanv1.GetRoomRequest{Room: "stay", Consistency: hangmanv1.Consistency_CONSISTENCY_LINEARIZABLE})
	if err != nil {
		t.Fatal(err)
	}
	again := seated
	again.Seq = now.GetState().GetSeq()
	wait("stay", opened, seated, again)
	if got := rec.lobbyLines("gone"); len(got) != 2 {
		t.Fatalf("the deleted room's lines after the new leader's republish: %+v", got)
	}
}
