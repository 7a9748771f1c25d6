package publish

import (
	"context"
	"encoding/json"
	"log/slog"
	"reflect"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/hangman/hangman/internal/natstest"
	"github.com/hangman/hangman/services/game"
	"github.com/hangman/hangman/subjects"
	"github.com/hangman/hangman/wire"
)

// startPublisher runs a publisher on a real nats-server and returns it
// with a subscriber to every hangman subject.
func startPublisher(t *testing.T) (*Publisher, *nats.Subscription) {
	t.Helper()
	srv := natstest.Server(t, natsserver.Options{})
	p, err := New(srv, "n1", slog.New(slog.DiscardHandler), func(*nats.Options) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go p.Run(ctx)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	sub, err := nc.SubscribeSync(subjects.All)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return p, sub
}

// TestOnlyALeaderPublishesInLogOrder: a follower's changes go nowhere; a
// leader's go out in the order the FSM handed them over, each room change
// as its event, then its state (both with Nats-Msg-Id <room>.<seq>), then
// its history when it finished a round, then its lobby line when the line
// changed.
func TestOnlyALeaderPublishesInLogOrder(t *testing.T) {
	p, sub := startPublisher(t)
	created := Change{
		State: game.State{Room: "r", Round: 1, Seq: 7, Masked: "____", Status: game.StatusPlaying},
		Event: game.Event{Seq: 7, Room: "r", Kind: game.EventRoomCreated, Round: 1, Status: game.StatusPlaying},
	}
	guessed := Change{
		State: game.State{Room: "r", Round: 1, Seq: 8, Prev: 7, Masked: "_a__", Status: game.StatusPlaying},
		Event: game.Event{Seq: 8, Prev: 7, Room: "r", Kind: game.EventGuess, Round: 1, Letter: "a", Outcome: game.OutcomeCorrect, Status: game.StatusPlaying},
	}
	rounds := []game.RoundRecord{{Seq: 9, Round: 1, Word: "bass", Status: game.StatusWon, Winner: "p1",
		Guesses: []game.GuessRecord{{Player: "p1", Letter: "a", Outcome: game.OutcomeCorrect}}}}
	won := Change{
		State:   game.State{Room: "r", Round: 1, Seq: 9, Prev: 8, Masked: "bass", Status: game.StatusWon, Word: "bass", HistorySeq: 9},
		Event:   game.Event{Seq: 9, Prev: 8, Room: "r", Kind: game.EventGuess, Round: 1, Letter: "b", Outcome: game.OutcomeCorrect, Status: game.StatusWon},
		History: &game.History{Room: "r", Seq: 9, Rounds: rounds},
	}
	p.EnqueueChanges([]Change{created})
	p.SetLeader(true)
	p.EnqueueChanges([]Change{created, guessed, won})

	want := []struct{ subject, msgID string }{
		{subjects.RoomEvent("r"), "r.7"}, {subjects.RoomState("r"), "r.7"}, {subjects.Lobby, ""},
		// A guess that leaves the round playing changes no lobby line.
		{subjects.RoomEvent("r"), "r.8"}, {subjects.RoomState("r"), "r.8"},
		// One that finishes the round publishes the history after the
		// state, once.
		{subjects.RoomEvent("r"), "r.9"}, {subjects.RoomState("r"), "r.9"}, {subjects.RoomHistory("r"), "r.9.history"}, {subjects.Lobby, ""},
	}
	for i, w := range want {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("message %d (%s): %v", i, w.subject, err)
		}
		if m.Subject != w.subject || m.Header.Get(nats.MsgIdHdr) != w.msgID {
			t.Fatalf("message %d: %s %q, want %s %q", i, m.Subject, m.Header.Get(nats.MsgIdHdr), w.subject, w.msgID)
		}
		if from := m.Header.Get(wire.PublisherHeader); w.msgID != "" && from != "n1" {
			t.Fatalf("message %d (%s) says it is from %q, want n1", i, m.Subject, from)
		}
		if m.Subject == subjects.RoomHistory("r") {
			var h game.History
			if err := json.Unmarshal(m.Data, &h); err != nil || !reflect.DeepEqual(h, *won.History) {
				t.Fatalf("history %s (%v), want %+v", m.Data, err, *won.History)
			}
		}
	}
	if m, err := sub.NextMsg(200 * time.Millisecond); err == nil {
		t.Fatalf("one message more: %s %s (the follower's change, or a lobby line for a playing guess)", m.Subject, m.Data)
	}
	if st := p.Stats(); st.Events != 3 || st.States != 3 || st.Histories != 1 || st.Lobby != 2 || !st.Leader {
		t.Fatalf("stats %+v", st)
	}
}
