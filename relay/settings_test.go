package relay

import (
	"strings"
	"testing"

	"github.com/hangman/hangman/services/game"
)

// TestHostRoomOverWebsockets creates a host room with settings through a
// relay, has the setter set the word with a setWord frame and the other
// player guess, and checks that no frame the guesser receives while the
// round plays shows the word.
func TestHostRoomOverWebsockets(t *testing.T) {
	cl := startCluster(t)
	tr := startRelay(t, cl, nil)
	ann, bob := mustDial(t, tr.url), mustDial(t, tr.url)
	ann.send(`{"type":"create","room":"host","mode":"host","category":"animals","minWordLen":4,"maxWordLen":8,"maxPlayers":3,"id":"c1","playerId":"ann"}`)
	ann.expect("ack", func(f frame) bool { return f.Op == "create" && f.ID == "c1" })
	ann.send(`{"type":"create","room":"bad","category":"cars","id":"c2"}`)
	if f := ann.answer("c2"); f.Code != CodeInvalid || !strings.Contains(f.Message, "category") {
		t.Fatalf("creation with an unknown category: %s", f.raw)
	}
	join(ann, "host", "ann", "Ann")
	j := join(bob, "host", "bob", "Bob")
	if f, _ := bob.expect("state", stateWith("host", j.Seq)); f.state.Setter != "ann" || f.state.Status != game.StatusSetting {
		t.Fatalf("host room before its word: %s", f.Data)
	}
	bob.send(map[string]any{"type": "setWord", "word": "otter", "token": bob.token, "id": "s0"})
	if f := bob.answer("s0"); f.Code != CodePrecondition {
		t.Fatalf("bob setting the word: %s", f.raw)
	}
	ann.send(map[string]any{"type": "setWord", "word": "Wombat", "id": "s1"})
	if f := ann.answer("s1"); f.Code != CodePermission {
		t.Fatalf("setWord without a token: %s", f.raw)
	}
	ann.send(map[string]any{"type": "setWord", "word": "Wombat", "token": ann.token, "id": "s2"})
	set := ann.answer("s2")
	if set.Type != "ack" || strings.Contains(strings.ToLower(string(set.raw)), "wombat") {
		t.Fatalf("setWord: %s", set.raw)
	}
	bob.guess("o", "g1")
	_, frames := bob.expect("state", func(f frame) bool { return f.state != nil && f.state.Masked == "_o____" })
	for _, f := range frames {
		if strings.Contains(strings.ToLower(string(f.raw)), "wombat") {
			t.Fatalf("bob received the word while the round plays: %s", f.raw)
		}
	}
}
