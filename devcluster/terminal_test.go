package devcluster

import (
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestNatsCLIPlaysARound plays a whole round with the real nats CLI
// against a dev system, as README's "Play from the terminal" does:
// create, join (the answer carries the seat's token), guesses until the
// round ends, a new round, the list; and a guess with a wrong token is
// refused 403 and changes nothing. Then the README's host round: a setter
// sets the word over hangman.api.setword, another player guesses it (the
// word in no answer until the round is won), and the next round is the
// other player's to set.
func TestNatsCLIPlaysARound(t *testing.T) {
	natsCLI, err := exec.LookPath("nats")
	if err != nil {
		t.Skip("nats CLI not installed (.ci/run installs it with go install github.com/nats-io/natscli/nats)")
	}
	sys := startTestDev(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// req runs `nats req` on node i's server and returns the answer, or
	// an error's body.
	req := func(i int, subject, body string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, natsCLI, "--server", sys.natsURLs[i], "req", "--raw", subject, body)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("nats req %s %s: %v\n%s%s", subject, body, err, stdout.String(), stderr.String())
		}
		return stdout.String()
	}
	type state struct {
		Round   uint64 `json:"round"`
		Masked  string `json:"masked"`
		Status  string `json:"status"`
		Word    string `json:"word"`
		Guessed []string
	}
	var answer struct {
		State   state  `json:"state"`
		Token   string `json:"token"`
		Outcome string `json:"outcome"`
		Rooms   []struct {
			Room    string `json:"room"`
			Players int    `json:"players"`
			Round   uint64 `json:"round"`
		} `json:"rooms"`
	}
	decode := func(out string) {
		t.Helper()
		answer.State = state{}
		if err := json.Unmarshal([]byte(out), &answer); err != nil {
			t.Fatalf("answer %q: %v", out, err)
		}
	}

	decode(req(0, "hangman.api.create", `{"room":"terminal"}`))
	if answer.State.Status != "playing" || answer.State.Round != 1 {
		t.Fatalf("created: %+v", answer.State)
	}
	decode(req(1, "hangman.api.join", `{"room":"terminal","player":"ann","name":"Ann"}`))
	token := answer.Token
	if len(token) < 22 {
		t.Fatalf("join answered token %q", token)
	}

	out := req(2, "hangman.api.guess", `{"room":"terminal","player":"ann","token":"wrong-token-0123456789ab","letter":"e"}`)
	if !strings.Contains(out, `"code":403`) || strings.Contains(out, token) {
		t.Fatalf("a wrong token: %s, want 403", out)
	}

	for i, l := range "etaoinshrdlucmfwypvbgkqjxz" {
		decode(req(i%3, "hangman.api.guess", `{"room":"terminal","player":"ann","token":"`+token+`","letter":"`+string(l)+`","requestId":"ann-`+string(l)+`"}`))
		if answer.Outcome == "" {
			t.Fatalf("guess %c: no outcome", l)
		}
		if answer.State.Status != "playing" {
			break
		}
	}
	if answer.State.Status == "playing" || answer.State.Word == "" {
		t.Fatalf("the round did not end: %+v", answer.State)
	}
	decode(req(0, "hangman.api.newround", `{"room":"terminal","player":"ann","token":"`+token+`"}`))
	if answer.State.Round != 2 || answer.State.Status != "playing" || answer.State.Word != "" {
		t.Fatalf("new round: %+v", answer.State)
	}
	decode(req(1, "hangman.api.list", `{}`))
	if len(answer.Rooms) != 1 || answer.Rooms[0].Room != "terminal" || answer.Rooms[0].Players != 1 || answer.Rooms[0].Round != 2 {
		t.Fatalf("list: %+v", answer.Rooms)
	}

	// README's host round: ann sets the word, bob guesses it to the end,
	// and the next round is bob's to set.
	decode(req(0, "hangman.api.create", `{"room":"friends","mode":"host","maxPlayers":4}`))
	if answer.State.Status != "setting" {
		t.Fatalf("host room created: %+v", answer.State)
	}
	decode(req(1, "hangman.api.join", `{"room":"friends","player":"ann","name":"Ann"}`))
	ann := answer.Token
	decode(req(2, "hangman.api.join", `{"room":"friends","player":"bob","name":"Bob"}`))
	bob := answer.Token
	out = req(0, "hangman.api.setword", `{"room":"friends","player":"ann","token":"`+ann+`","word":"otter"}`)
	decode(out)
	if answer.State.Status != "playing" || answer.State.Masked != "_____" || strings.Contains(out, "otter") {
		t.Fatalf("word set: %s", out)
	}
	for i, step := range []struct{ letter, masked, status, word string }{
		{"t", "_tt__", "playing", ""},
		{"o", "ott__", "playing", ""},
		{"e", "otte_", "playing", ""},
		{"r", "otter", "won", "otter"},
	} {
		out = req(i%3, "hangman.api.guess", `{"room":"friends","player":"bob","token":"`+bob+`","letter":"`+step.letter+`"}`)
		decode(out)
		if answer.Outcome != "correct" || answer.State.Masked != step.masked || answer.State.Status != step.status || answer.State.Word != step.word {
			t.Fatalf("bob's guess of %s: %s", step.letter, out)
		}
		if step.status == "playing" && strings.Contains(out, "otter") {
			t.Fatalf("the word in an answer while the round plays: %s", out)
		}
	}
	out = req(2, "hangman.api.newround", `{"room":"friends","player":"bob","token":"`+bob+`"}`)
	var next struct {
		State struct {
			Round  uint64 `json:"round"`
			Status string `json:"status"`
			Setter string `json:"setter"`
		} `json:"state"`
	}
	if err := json.Unmarshal([]byte(out), &next); err != nil || next.State.Round != 2 || next.State.Status != "setting" || next.State.Setter != "bob" {
		t.Fatalf("the next host round: %s (%v), want round 2 set by bob", out, err)
	}
}
