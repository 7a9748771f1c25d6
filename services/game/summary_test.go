package game

import (
	"testing"
	"time"
)

// TestChangesSummary plays every kind of event and checks that
// Event.ChangesSummary says exactly when the room's lobby line changed:
// the rule by which the leader publishes on hangman.lobby.
func TestChangesSummary(t *testing.T) {
	h := newHarness(t)
	var last Summary
	steps := []struct {
		name string
		cmd  Command
		want bool
	}{
		{"create", create("r", "apple"), true},
		{"join", as(join("r", "alice", "Alice"), annToken), true},
		{"rename", as(join("r", "alice", "Alicia"), annToken), false},
		{"second seat", as(join("r", "bob", "Bob"), bobToken), true},
		{"correct guess", as(guess("r", "alice", "a"), annToken), false},
		{"wrong guess", as(guess("r", "bob", "z"), bobToken), false},
		{"repeated guess", as(guess("r", "bob", "z"), bobToken), false},
		{"guess", as(guess("r", "alice", "p"), annToken), false},
		{"guess", as(guess("r", "alice", "l"), annToken), false},
		{"winning guess", as(guess("r", "alice", "e"), annToken), true},
		{"new round", as(newRound("r", "alice", "kiwi"), annToken), true},
		{"reclaimed seat", at(Command{Kind: KindReclaimSeat, Room: "r", Player: "bob", At: at0, Cutoff: at0 + 1}, time.Hour), true},
		{"deleted", at(Command{Kind: KindDeleteRoom, Room: "r", At: at0, Cutoff: at0 + 120000}, 2*time.Hour), true},
	}
	for _, s := range steps {
		if s.name == "reclaimed seat" {
			// Only a seat idle while others acted is reclaimed.
			h.ok(at(as(guess("r", "alice", "k"), annToken), time.Minute))
		}
		res := h.ok(s.cmd)
		if res.Event == nil {
			t.Fatalf("%s: no event", s.name)
		}
		line := res.State.Summary()
		if line.Seq != h.index || line.Room != "r" || line.Players != len(res.State.Players) {
			t.Fatalf("%s: line %+v at index %d from state %+v", s.name, line, h.index, res.State)
		}
		changed := line.Players != last.Players || line.Round != last.Round || line.Status != last.Status || line.Room != last.Room
		if changed != s.want {
			t.Fatalf("%s: line %+v after %+v: changed %v, want %v", s.name, line, last, changed, s.want)
		}
		if got := res.Event.ChangesSummary(); got != s.want {
			t.Errorf("%s (%s event): ChangesSummary() = %v, want %v", s.name, res.Event.Kind, got, s.want)
		}
		last = line
	}
	if last.Status != StatusDeleted || last.Players != 0 {
		t.Fatalf("deleted room's line %+v", last)
	}
}
