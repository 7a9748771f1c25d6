package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/hangman/hangman/internal/browsertest"
	"github.com/hangman/hangman/internal/harness"
)

// browser is one player's Chromium tab (browsertest.Browser) with the
// e2e suite's own steps.
type browser struct{ *browsertest.Browser }

func newBrowser(t *testing.T, name string, width, height int) *browser {
	return &browser{browsertest.New(t, name, width, height)}
}

func artifactsDir(t *testing.T) string {
	dir := os.Getenv("HANGMAN_ARTIFACTS")
	if dir == "" {
		root, err := harness.ModuleRoot()
		if err != nil {
			t.Fatal(err)
		}
		dir = filepath.Join(root, "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func (b *browser) screenshot(path string) {
	b.T.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.T.Fatalf("%s: screenshot: %v", b.Name, err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.T.Fatal(err)
	}
	b.T.Logf("saved %s", path)
}

const (
	connectedJS = `document.querySelector("#badge").dataset.state === "connected"`
	// inGameJS: the game shown to a player (a spectator has no keyboard).
	inGameJS = `!document.querySelector("#game").hidden && document.querySelector("#masked").children.length > 0 && !document.querySelector("#keyboard").hidden`
	xssName  = `<img src=x onerror=alert(1)>`
	// watchingJS: the game shown to a spectator, with the form to join.
	watchingJS = `!document.querySelector("#game").hidden && document.querySelector("#masked").children.length > 0 && document.querySelector("#keyboard").hidden && !document.querySelector("#join-form").hidden`
)

func js(v string) string { b, _ := json.Marshal(v); return string(b) }

// enterLobby picks a nickname and waits for the lobby's room list (or its
// word that there are no rooms).
func (b *browser) enterLobby(nickname string) {
	b.T.Helper()
	b.Do("set a nickname",
		chromedp.SendKeys(chromedp.CSS("#name"), nickname),
		chromedp.Click(chromedp.CSS("#name-btn")),
	)
	b.WaitJS("the lobby's room list", `document.querySelector("#rooms").children.length > 0 || !document.querySelector("#no-rooms").hidden`)
}

// createRoom is a player's first steps on the page: pick a nickname,
// create room (10 wrong guesses allowed) and wait to be in its game.
func (b *browser) createRoom(nickname, room string) {
	b.T.Helper()
	b.Do("set a nickname and create a room",
		chromedp.SendKeys(chromedp.CSS("#name"), nickname),
		chromedp.Click(chromedp.CSS("#name-btn")),
		chromedp.SendKeys(chromedp.CSS("#new-room"), room),
		chromedp.SetValue(chromedp.CSS("#max-wrong"), "10"),
		chromedp.Click(chromedp.CSS("#create-btn")),
	)
	b.WaitJS("in the game", inGameJS)
}

// takeSeat is what a first visit through an invite link does: the page
// shows the room to watch, with a form to pick a nickname and take a seat.
func (b *browser) takeSeat(nickname string) {
	b.T.Helper()
	b.WaitJS("watching the room", watchingJS)
	b.Do("take a seat as "+nickname,
		chromedp.SendKeys(chromedp.CSS("#join-name"), nickname),
		chromedp.Click(chromedp.CSS("#join-btn")),
	)
}

// TestTwoBrowsersTwoRelays is the player's story: two browsers on two
// relays play in one room, a hostile name stays text, a screenshot is kept,
// and killing one browser's relay moves it to the other with the right
// state.
func TestTwoBrowsersTwoRelays(t *testing.T) {
	needBrowser(t)
	sys := startSystem(t, 2)
	r1, r2 := sys.relays[0], sys.relays[1]
	room := uniqueRoom("e2e")

	alice := newBrowser(t, "alice", 1100, 820)
	mallory := newBrowser(t, "mallory", 390, 844) // a phone

	// Alice, on relay 1, creates the room from the lobby.
	alice.Do("open the page", chromedp.Navigate(r1.url+"/"))
	alice.WaitJS("connected", connectedJS)
	alice.enterLobby("Alice")
	alice.screenshot(filepath.Join(artifactsDir(t), "lobby.png"))
	alice.Do("create a room",
		chromedp.SendKeys(chromedp.CSS("#new-room"), room),
		chromedp.SetValue(chromedp.CSS("#max-wrong"), "10"),
		chromedp.Click(chromedp.CSS("#create-btn")),
	)
	alice.WaitJS("in the game", inGameJS)

	// Mallory, on relay 2, follows a link to the room and picks a name
	// made of markup.
	mallory.Do("open the room link", chromedp.Navigate(r2.url+"/#/room/"+room))
	mallory.WaitJS("connected", connectedJS)
	if got := mallory.Text("#badge-text"); !strings.Contains(got, r2.name) {
		t.Fatalf("mallory's badge %q does not name %s", got, r2.name)
	}
	mallory.takeSeat(xssName)
	mallory.WaitJS("in the game", inGameJS)

	t.Run("guess typed in one browser appears in the other", func(t *testing.T) {
		// Alice types on her physical keyboard.
		alice.Do("type e", chromedp.KeyEvent("e"))
		mallory.WaitJS("alice's guess in mallory's feed", `document.querySelector("#feed").textContent.includes("Alice guessed E")`)
		mallory.WaitJS("E marked on mallory's keyboard", `document.querySelector('#keyboard [data-letter="e"]').disabled`)
		// Mallory taps the on-screen keyboard.
		for _, l := range []string{"a", "o", "t"} {
			mallory.Do("tap "+l, chromedp.Click(chromedp.CSS(`#keyboard [data-letter="`+l+`"]`)))
			alice.WaitJS("mallory's guess of "+l, fmt.Sprintf(`document.querySelector('#keyboard [data-letter="%s"]').disabled`, l))
		}
	})

	t.Run("a name made of markup renders as text", func(t *testing.T) {
		alice.WaitJS("mallory on alice's scoreboard", `document.querySelector("#scores").textContent.includes(`+js(xssName)+`)`)
		for _, b := range []*browser{alice, mallory} {
			var imgs int
			b.Eval(`document.querySelectorAll("img").length`, &imgs)
			if imgs != 0 {
				t.Errorf("%s: the name became %d <img> element(s)", b.Name, imgs)
			}
			if n := b.Alerts.Load(); n != 0 {
				t.Errorf("%s: %d JavaScript dialogs opened", b.Name, n)
			}
		}
		if !strings.Contains(alice.Text("#feed"), xssName) {
			t.Errorf("alice's feed does not show the name as text: %q", alice.Text("#feed"))
		}
	})

	t.Run("screenshot of a game in progress", func(t *testing.T) {
		dir := artifactsDir(t)
		for _, b := range []*browser{alice, mallory} {
			b.WaitJS("animations done", `document.getAnimations().length === 0`)
		}
		alice.screenshot(filepath.Join(dir, "game.png"))
		mallory.screenshot(filepath.Join(dir, "game-phone.png"))
	})

	t.Run("killing a relay moves its browser to the other", func(t *testing.T) {
		sys.kill(r1)
		alice.WaitJS("alice reconnected to relay 2", fmt.Sprintf(`document.querySelector("#badge").dataset.state === "connected" && document.querySelector("#badge-text").textContent.includes(%s)`, js(r2.name)))
		// The state alice shows is the room's, and it keeps moving.
		var next string
		mallory.Eval(`(document.querySelector('#keyboard button:not(:disabled)')||{}).dataset.letter`, &next)
		if next == "" {
			t.Fatal("no letter left to guess")
		}
		mallory.Do("tap "+next, chromedp.Click(chromedp.CSS(`#keyboard [data-letter="`+next+`"]`)))
		alice.WaitJS("mallory's guess after the failover", fmt.Sprintf(`document.querySelector('#keyboard [data-letter="%s"]').disabled`, next))
		mallory.WaitJS("mallory's own guess applied", fmt.Sprintf(`document.querySelector('#keyboard [data-letter="%s"]').disabled && !document.querySelector('#keyboard [data-letter="%s"]').classList.contains("pending")`, next, next))
		for _, sel := range []string{"#masked", "#wrong", "#scores", "#round", "#status"} {
			a, m := alice.Text(sel), mallory.Text(sel)
			if sel == "#scores" {
				a = strings.ReplaceAll(a, " (you)", "")
				m = strings.ReplaceAll(m, " (you)", "")
			}
			if a != m {
				t.Errorf("after failover %s differs: alice %q, mallory %q", sel, a, m)
			}
		}
		// And alice can still play.
		var mine string
		alice.Eval(`(document.querySelector('#keyboard button:not(:disabled)')||{}).dataset.letter`, &mine)
		if mine != "" {
			alice.Do("type "+mine, chromedp.KeyEvent(mine))
			mallory.WaitJS("alice's guess through relay 2", fmt.Sprintf(`document.querySelector('#keyboard [data-letter="%s"]').disabled`, mine))
		}
	})
}

// TestGuessTypedWhileRejoining is the compose test's browser failover, made
// deterministic: a page behind the entry (`hangman proxy`, as in
// deploy/compose.yaml) loses its relay, and the player types a letter while
// the page still shows the game but has not joined the room again on a new
// relay. The letter waits, shown pending, and is played once the page is
// back: it is not dropped because the join of the new connection has not
// been answered yet.
func TestGuessTypedWhileRejoining(t *testing.T) {
	needBrowser(t)
	sys := startSystem(t, 0)
	ports := harness.FreePorts(t, 2)
	entryURL := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	relayAddr := fmt.Sprintf("127.0.0.1:%d", ports[1])
	// The relay advertises the entry, and only it, as in compose.yaml.
	sys.startRelay("e2e-relay-1", ports[1], entryURL, []string{entryURL})
	sys.waitReady("http://" + relayAddr + "/readyz")
	entry := sys.startEntry(ports[0], relayAddr)
	room := uniqueRoom("rejoin")
	applied := func(l string) string {
		return fmt.Sprintf(`document.querySelector('#keyboard [data-letter="%s"]').disabled && !document.querySelector('#keyboard [data-letter="%s"]').classList.contains("pending")`, l, l)
	}

	bob := newBrowser(t, "bob", 1000, 800)
	bob.Do("open the page through the entry", chromedp.Navigate(entry+"/"))
	bob.WaitJS("connected", connectedJS)
	bob.createRoom("Bob", room)
	bob.Do("type e", chromedp.KeyEvent("e"))
	bob.WaitJS("e applied", applied("e"))

	sys.kill(sys.relays[0])
	bob.WaitJS("the page lost its relay", `document.querySelector("#badge").dataset.state !== "connected"`)
	bob.WaitJS("the game still shown", inGameJS)
	bob.Do("type t", chromedp.KeyEvent("t"))
	bob.WaitJS("t shown pending", `document.querySelector('#keyboard [data-letter="t"]').classList.contains("pending")`)

	sys.startRelay("e2e-relay-2", ports[1], entryURL, []string{entryURL})
	bob.WaitJS("back through the entry on the new relay", connectedJS+` && document.querySelector("#badge-text").textContent.includes("e2e-relay-2")`)
	bob.WaitJS("t applied", applied("t"))
	bob.WaitJS("e still shown", applied("e"))
	var seats int
	bob.Eval(`[...document.querySelectorAll("#scores li")].filter((li) => li.textContent.startsWith("Bob")).length`, &seats)
	if seats != 1 {
		t.Errorf("bob holds %d seats after rejoining, want 1", seats)
	}
}

// needBrowser skips a browser test under -short or without Chromium.
func needBrowser(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end browser test skipped with -short")
	}
	if browsertest.ChromiumPath() == "" {
		t.Skip("Chromium not found (install Debian's chromium, or set HANGMAN_CHROMIUM); skipping the browser tests")
	}
}

// uniqueRoom names a room for one run: tests on one dev system do not
// meet each other's rooms.
func uniqueRoom(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()%1_000_000)
}
