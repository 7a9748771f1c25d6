package relay

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/hangman/hangman/services/game"
)

// playOut guesses letters as c's player until the round ends, and returns
// the state that ended it.
func playOut(t *testing.T, c *wsClient, room string) *game.State {
	t.Helper()
	for i, l := range "etaoinshrdlucmfwypvbgkqjxz" {
		id := fmt.Sprintf("out-%s-%d", room, i)
		c.guess(string(l), id)
		ack := c.answer(id)
		if ack.Type != "ack" {
			t.Fatalf("guess %c: %s", l, ack.raw)
		}
		st, _ := c.expect("state", stateWith(room, ack.Seq))
		if st.state.Status != game.StatusPlaying {
			return st.state
		}
	}
	t.Fatal("the round never ended")
	return nil
}

// TestHistoryTravelsApartFromStates: a room's finished rounds reach its
// sessions once, in a history frame after the state of the change that
// finished the round, never inside a state; a new watcher gets the state,
// then the history; and the next round's states name the history without
// carrying it.
func TestHistoryTravelsApartFromStates(t *testing.T) {
	cl := startTrustedCluster(t)
	cl.createRoom(t, "annals")
	tr := startRelay(t, cl, nil)
	a := mustDial(t, tr.url)
	join(a, "annals", "pa", "Ann")
	ended := playOut(t, a, "annals")
	if ended.HistorySeq != ended.Seq {
		t.Fatalf("the state that ended the round names history %d, want its own seq %d", ended.HistorySeq, ended.Seq)
	}
	h, _ := a.expect("history", func(f frame) bool { return f.history.Seq == ended.Seq })
	if h.history.Room != "annals" || len(h.history.Rounds) != 1 || h.history.Rounds[0].Word != ended.Word || h.history.Rounds[0].Seq != ended.Seq {
		t.Fatalf("history frame %s after the round %+v", h.raw, ended)
	}

	b := mustDial(t, tr.url)
	join(b, "annals", "pb", "Bob")
	b.expect("state", stateWith("annals", ended.Seq))
	bh, _ := b.expect("history", nil)
	if !bytes.Equal(bh.Data, h.Data) {
		t.Fatalf("new watcher's history %s, want %s", bh.Data, h.Data)
	}
	if first := firstOf(b.seen, "state", "history"); first != "state" {
		t.Fatalf("new watcher got its history before a state: %s", describe(b.seen))
	}

	a.send(`{"type":"newRound","id":"nr","token":"` + a.token + `"}`)
	if ack := a.answer("nr"); ack.Type != "ack" {
		t.Fatalf("new round: %s", ack.raw)
	}
	next, _ := a.expect("state", func(f frame) bool { return f.state != nil && f.state.Round == 2 })
	if next.state.HistorySeq != ended.Seq {
		t.Fatalf("next round's state names history %d, want %d", next.state.HistorySeq, ended.Seq)
	}
	for _, c := range []*wsClient{a, b} {
		for _, f := range c.seen {
			if f.Type == "state" && bytes.Contains(f.Data, []byte(`"history":`)) {
				t.Fatalf("a state frame carries the history: %s", f.raw)
			}
		}
		if n := countFrames(c.seen, "history"); n != 1 {
			t.Fatalf("%d history frames, want 1: %s", n, describe(c.seen))
		}
	}
}

// TestMissedHistoryIsRead: when the history a state names never comes on
// NATS (the leader died between the two messages), the relay reads the
// room, and every session gets the history all the same.
func TestMissedHistoryIsRead(t *testing.T) {
	cl := startTrustedCluster(t)
	cl.createRoom(t, "lost")
	tr := startRelay(t, cl, nil)
	a := mustDial(t, tr.url)
	join(a, "lost", "pa", "Ann")
	cl.rep.noHistory.Store(true)
	ended := playOut(t, a, "lost")
	h, _ := a.expect("history", func(f frame) bool { return f.history.Seq == ended.Seq })
	if len(h.history.Rounds) != 1 || h.history.Rounds[0].Word != ended.Word {
		t.Fatalf("history read after it was missed: %s", h.raw)
	}
	if tr.stats.histories.Load() != 1 {
		t.Fatalf("%d histories sent, want 1", tr.stats.histories.Load())
	}
}

// firstOf returns which of the frame types comes first in fs.
func firstOf(fs []frame, types ...string) string {
	for _, f := range fs {
		for _, typ := range types {
			if f.Type == typ {
				return typ
			}
		}
	}
	return ""
}

func countFrames(fs []frame, typ string) int {
	n := 0
	for _, f := range fs {
		if f.Type == typ {
			n++
		}
	}
	return n
}
