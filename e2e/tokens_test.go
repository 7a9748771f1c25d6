package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestSeatBelongsToItsBrowser is issue 17's impersonation in real
// browsers: mallory knows alice's player id (every state lists it) and
// tries to be her, with frames she forges in her page's JavaScript and by
// taking alice's id in her own page; every attempt is refused and alice
// keeps her seat, name and score. Alice reloads and keeps her seat and
// score: her page holds her token.
func TestSeatBelongsToItsBrowser(t *testing.T) {
	needBrowser(t)
	sys := startSystem(t, 1)
	r1 := sys.relays[0]
	room := uniqueRoom("seat")

	alice := newBrowser(t, "alice", 1000, 800)
	mallory := newBrowser(t, "mallory", 1000, 800)
	alice.Do("open the page", chromedp.Navigate(r1.url+"/"))
	alice.WaitJS("connected", connectedJS)
	alice.createRoom("Alice", room)
	for _, l := range []string{"e", "a", "o"} {
		alice.Do("type "+l, chromedp.KeyEvent(l))
		alice.WaitJS(l+" applied", fmt.Sprintf(`document.querySelector('#keyboard [data-letter="%s"]').disabled && !document.querySelector('#keyboard [data-letter="%s"]').classList.contains("pending")`, l, l))
	}
	var aliceID, aliceToken string
	alice.Eval(`sessionStorage.getItem("hangman.playerId")`, &aliceID)
	alice.Eval(fmt.Sprintf(`localStorage.getItem("hangman.token.%s." + sessionStorage.getItem("hangman.playerId"))`, room), &aliceToken)
	if aliceID == "" || len(aliceToken) < 22 {
		t.Fatalf("alice's page holds player id %q and a token of %d characters", aliceID, len(aliceToken))
	}
	aliceScore := func() string {
		var sc string
		alice.Eval(`[...document.querySelectorAll("#scores li")].filter((li) => li.querySelector(".pname").textContent.startsWith("Alice")).map((li) => li.textContent).join("|")`, &sc)
		return sc
	}
	before := aliceScore()

	mallory.Do("open the room link", chromedp.Navigate(r1.url+"/#/room/"+room))
	mallory.WaitJS("connected", connectedJS)
	mallory.takeSeat("Mallory")
	mallory.WaitJS("in the game", inGameJS)
	alice.WaitJS("mallory on alice's scoreboard", `document.querySelector("#scores").textContent.includes("Mallory")`)

	t.Run("frames forged in JavaScript are refused", func(t *testing.T) {
		// Mallory's own websocket, as any script on her page could open
		// it: she joins as alice with no token and with a made-up one;
		// then, seated as herself, guesses with a wrong token and none.
		var started bool
		mallory.Eval(fmt.Sprintf(`(() => {
			window.forged = [];
			const ws = new WebSocket(location.origin.replace(/^http/, "ws") + "/ws");
			ws.onmessage = (e) => {
				const f = JSON.parse(e.data);
				window.forged.push(f);
				if (f.type !== "welcome") return;
				ws.send(JSON.stringify({type: "join", room: %[1]q, playerId: %[2]q, name: "Mallory", id: "f1"}));
				ws.send(JSON.stringify({type: "join", room: %[1]q, playerId: %[2]q, name: "Mallory", id: "f2", token: "made-up-by-mallory-0123456789"}));
				ws.send(JSON.stringify({type: "join", room: %[1]q, playerId: "mallory-bis", name: "Mallory", id: "f3", token: "mallorys-own-token-0123456789"}));
				ws.send(JSON.stringify({type: "guess", letter: "t", id: "f4", token: "made-up-by-mallory-0123456789"}));
				ws.send(JSON.stringify({type: "guess", letter: "t", id: "f5"}));
			};
			return true;
		})()`, room, aliceID), &started)
		mallory.WaitJS("answers to the forged frames", `window.forged.filter((f) => /^f[1-5]$/.test(f.id)).length === 5`)
		var codes map[string]string
		mallory.Eval(`Object.fromEntries(window.forged.filter((f) => /^f[1-5]$/.test(f.id)).map((f) => [f.id, f.type === "error" ? f.code : f.type]))`, &codes)
		want := map[string]string{"f1": "permission_denied", "f2": "permission_denied", "f3": "ack", "f4": "permission_denied", "f5": "permission_denied"}
		for id, code := range want {
			if codes[id] != code {
				t.Errorf("forged frame %s answered %q, want %q (all: %v)", id, codes[id], code, codes)
			}
		}
	})

	t.Run("a page that takes alice's id is refused and plays as itself", func(t *testing.T) {
		var set bool
		mallory.Eval(fmt.Sprintf(`(sessionStorage.setItem("hangman.playerId", %q), true)`, aliceID), &set)
		mallory.Do("reload as alice", chromedp.Reload())
		mallory.WaitJS("told the seat is someone else's", `!document.querySelector("#toast").hidden && document.querySelector("#toast").textContent.includes("belongs to someone else")`)
		mallory.WaitJS("back in the game as a new player", inGameJS+` && sessionStorage.getItem("hangman.playerId") !== `+js(aliceID))
	})

	// Alice's seat, name and score are untouched by all of it; mallory
	// holds three seats of her own.
	alice.WaitJS("mallory's three seats on alice's scoreboard", `document.querySelector("#scores").textContent.split("Mallory").length === 4`)
	if after := aliceScore(); after != before || !strings.HasPrefix(after, "Alice (you)") {
		t.Fatalf("alice's scoreboard line after the attempts: %q, before: %q", after, before)
	}

	t.Run("a reload keeps the seat and the score", func(t *testing.T) {
		var players int
		alice.Eval(`document.querySelector("#scores").children.length`, &players)
		before := alice.Text("#scores")
		alice.Do("reload", chromedp.Reload())
		alice.WaitJS("back in the game", inGameJS)
		alice.WaitJS("the scoreboard", `document.querySelector("#scores").textContent.includes("Alice (you)")`)
		if after := alice.Text("#scores"); after != before {
			t.Fatalf("scoreboard after the reload %q, before %q", after, before)
		}
		var n int
		alice.Eval(`document.querySelector("#scores").children.length`, &n)
		if n != players {
			t.Fatalf("%d players after the reload, %d before: the reload took a new seat", n, players)
		}
		// And she still plays.
		var next string
		alice.Eval(`(document.querySelector('#keyboard button:not(:disabled)')||{}).dataset.letter`, &next)
		alice.Do("type "+next, chromedp.KeyEvent(next))
		mallory.WaitJS("alice's guess after her reload", fmt.Sprintf(`document.querySelector('#keyboard [data-letter="%s"]').disabled`, next))
	})
}
