package raftnode

import (
	"fmt"
	"testing"
	"time"

	"github.com/hangman/hangman/internal/harness"
	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
	"github.com/hangman/hangman/services/game"
)

// TestTurnsAcrossALeaderKill times out the turns of a timed room on a real
// cluster while its leader dies mid-turn. The leader's sweep, at the
// times the test gives it, proposes a timeout only once a turn's deadline
// has passed; the old leader's timeout, proposed again after the failover
// (as a new leader might find it uncommitted), is refused; the new leader
// re-derives the deadline from the state and times out the next turn, on
// its own clock, exactly once. The turns alternate between the two
// players with none skipped and none doubled, on every node.
func TestTurnsAcrossALeaderKill(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	li := c.leader()
	ctx := ctxT(t)
	cl := c.client((li + 1) % 3)
	if _, err := cl.CreateRoom(ctx, &hangmanv1.CreateRoomRequest{Room: "timed", TurnSeconds: game.MinTurnSeconds}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"ann", "bob"} {
		if _, err := cl.JoinRoom(ctx, &hangmanv1.JoinRoomRequest{Room: "timed", PlayerId: p, Name: p, Token: harness.TokenOf(p)}); err != nil {
			t.Fatal(err)
		}
	}
	turn := func(n *Node) *game.Turn {
		var st game.State
		n.Read(func(m *game.Machine) { st, _ = m.Room("timed") })
		return st.Turn
	}
	first := turn(c.nodes[li])
	if first == nil || first.Player != "ann" || first.Number != 1 {
		t.Fatalf("first turn %+v", first)
	}
	deadline := time.UnixMilli(first.Deadline)

	// Before the deadline nothing is timed out; at it, the turn passes.
	if got := c.nodes[li].sweeper.sweepTurns(ctx, deadline.Add(-time.Millisecond)); got != 0 {
		t.Fatalf("%d turns timed out before the deadline", got)
	}
	var stale []game.Command
	c.nodes[li].Read(func(m *game.Machine) { stale = m.TurnTimeouts(deadline, 10) })
	if got := c.nodes[li].sweeper.sweepTurns(ctx, deadline); got != 1 {
		t.Fatalf("%d turns timed out at the deadline, want 1", got)
	}
	second := turn(c.nodes[li])
	if second == nil || second.Player != "bob" || second.Number != 2 || second.Deadline != first.Deadline+game.MinTurnSeconds*1000 {
		t.Fatalf("second turn %+v", second)
	}

	// The leader dies mid-turn. The new one proposes the old timeout again:
	// refused, the turn it names is over.
	c.kill(li)
	ni := c.leader()
	if len(stale) != 1 {
		t.Fatalf("the old leader's timeout: %+v", stale)
	}
	res, _, err := c.nodes[ni].Propose(ctx, "timed", stale[0].Encode())
	if err != nil || game.CodeOf(res.Err) != game.CodePrecondition {
		t.Fatalf("old timeout proposed again: %+v, %v", res, err)
	}
	if got := turn(c.nodes[ni]); *got != *second {
		t.Fatalf("turn after the stale timeout %+v, want %+v", got, second)
	}
	// Its sweep at the old deadline finds nothing to do; its own loop, on
	// the real clock, times out bob's turn once it runs out, and only once.
	if got := c.nodes[ni].sweeper.sweepTurns(ctx, deadline); got != 0 {
		t.Fatalf("new leader timed out %d turns at the old deadline", got)
	}
	harness.Eventually(t, 3*game.MinTurnSeconds*time.Second, "the new leader to time out bob's turn", func() error {
		if got := turn(c.nodes[ni]); got == nil || got.Number < 3 {
			return fmt.Errorf("turn %+v", got)
		}
		return nil
	})
	third := turn(c.nodes[ni])
	if third.Player != "ann" || third.Number != 3 {
		t.Fatalf("third turn %+v", third)
	}
	c.converged()

	// Every node holds the same sequence: ann's turn ran out, then bob's.
	for _, n := range c.alive() {
		var page game.EventPage
		n.Read(func(m *game.Machine) { page, err = m.EventsSince("timed", 0, 0) })
		if err != nil {
			t.Fatal(err)
		}
		var timedOut []string
		for _, ev := range page.Events {
			if ev.Kind == game.EventTurnTimeout {
				timedOut = append(timedOut, ev.Player)
			}
		}
		if fmt.Sprint(timedOut) != "[ann bob]" {
			t.Fatalf("%s: turns timed out %v, want [ann bob]", n.ID(), timedOut)
		}
		if got := turn(n); got == nil || *got != *third {
			t.Fatalf("%s: turn %+v, want %+v", n.ID(), got, third)
		}
	}
}
