package game

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// checkHidden fails if the secret word shows anywhere a playing round's
// room can be seen from outside the Machine: its states, events, lobby
// summary and the result of the last command, as JSON and as log text.
func checkHidden(t *testing.T, m *Machine, res Result, room, word string) {
	t.Helper()
	s, ok := m.Room(room)
	if !ok {
		t.Fatalf("no room %q", room)
	}
	if s.Status != StatusPlaying {
		t.Fatalf("round is %s, not playing", s.Status)
	}
	if s.Word != "" || res.State.Word != "" {
		t.Fatalf("State.Word = %q / %q while playing", s.Word, res.State.Word)
	}
	if s.Masked == word || !strings.Contains(s.Masked, "_") {
		t.Fatalf("Masked = %q while playing", s.Masked)
	}
	var fields map[string]any
	if err := json.Unmarshal([]byte(mustJSON(t, s)), &fields); err != nil {
		t.Fatal(err)
	}
	if _, ok := fields["word"]; ok {
		t.Fatalf("state JSON has a word field while playing: %v", fields)
	}
	seen := map[string]any{
		"Result":       res,
		"Room":         s,
		"States":       m.States(),
		"Rooms":        m.Rooms(),
		"RecentEvents": m.RecentEvents(room),
	}
	if res.Err != nil {
		seen["error"] = res.Err.Error()
	}
	for what, v := range seen {
		for _, text := range []string{mustJSON(t, v), fmt.Sprintf("%v", v), fmt.Sprintf("%+v", v)} {
			if strings.Contains(text, word) {
				t.Fatalf("%s shows the secret %q while playing: %s", what, word, text)
			}
		}
	}
}

func TestSecretWordHiddenWhilePlaying(t *testing.T) {
	const word = "jukebox"
	h := newHarness(t)
	res := h.ok(create("den", word))
	checkHidden(t, h.m, res, "den", word)
	checkHidden(t, h.m, h.ok(join("den", "p1", "Ann")), "den", word)
	checkHidden(t, h.m, h.refused(newRound("den", "p1", "apple"), CodePrecondition), "den", word)
	checkHidden(t, h.m, h.refused(guess("den", "p2", "j"), CodePrecondition), "den", word)
	for _, l := range []string{"j", "z", "U", "k", "e", "b", "e", "o"} {
		res := h.ok(guess("den", "p1", l))
		checkHidden(t, h.m, res, "den", word)
	}
	if s, _ := h.m.Room("den"); s.Masked != "jukebo_" {
		t.Fatalf("masked %q, want jukebo_", s.Masked)
	}

	// The last letter ends the round: now the word is public.
	res = h.ok(guess("den", "p1", "x"))
	if res.State.Status != StatusWon || res.State.Word != word || res.State.Masked != word {
		t.Fatalf("after the win: %+v", res.State)
	}
	if !strings.Contains(mustJSON(t, res.State), `"word":"`+word+`"`) {
		t.Fatalf("state JSON after the win lacks the word: %s", mustJSON(t, res.State))
	}
	if s := h.m.States()[0]; s.Word != word {
		t.Fatalf("States() after the win: %+v", s)
	}

	// A new round hides its own word again.
	const next = "quartz"
	res = h.ok(newRound("den", "p1", next))
	checkHidden(t, h.m, res, "den", next)
	if res.State.Masked != "______" || res.State.Word != "" {
		t.Fatalf("new round shows the last word: %s", mustJSON(t, res.State))
	}
	// The finished round's word is public, in the history only: not in
	// the new round's state, once in a read of the room.
	if strings.Contains(mustJSON(t, res.State), word) {
		t.Fatalf("new round's state shows the last word: %s", mustJSON(t, res.State))
	}
	if s, _ := h.m.Room("den"); len(s.History) != 1 || s.History[0].Word != word || strings.Count(mustJSON(t, s), word) != 1 {
		t.Fatalf("new round's history: %s", mustJSON(t, s))
	}
	for _, l := range []string{"b", "c", "d", "e", "f"} {
		checkHidden(t, h.m, h.ok(guess("den", "p1", l)), "den", next)
	}
	res = h.ok(guess("den", "p1", "g")) // sixth wrong letter
	if res.State.Status != StatusLost || res.State.Word != next || res.State.Masked != "______" {
		t.Fatalf("after the loss: %+v", res.State)
	}
}
