package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// chromiumPath finds Debian's Chromium (or HANGMAN_CHROMIUM).
func chromiumPath() string {
	names := []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"}
	if p := os.Getenv("HANGMAN_CHROMIUM"); p != "" {
		names = []string{p}
	}
	for _, name := range names {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

func artifactsDir(t *testing.T) string {
	dir := os.Getenv("HANGMAN_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(moduleRoot(t), "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browser is one headless Chromium with one tab, as one player.
type browser struct {
	t      *testing.T
	name   string
	ctx    context.Context
	alerts atomic.Int32 // JavaScript dialogs opened: an XSS that ran
}

func newBrowser(t *testing.T, name string, width, height int) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath()),
		chromedp.Headless,
		chromedp.NoSandbox, // CI runs as root
		chromedp.DisableGPU,
		chromedp.WindowSize(width, height),
		chromedp.Flag("disable-dev-shm-usage", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	b := &browser{t: t, name: name, ctx: ctx}
	// Start the browser now, without a deadline (a deadline on the first
	// run would bound the browser's life).
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(int64(width), int64(height))); err != nil {
		t.Fatalf("%s: start chromium: %v", name, err)
	}
	if err := chromedp.Listen(ctx, func(ev any) {
		if _, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			b.alerts.Add(1)
			go func() { _ = chromedp.Do(ctx, dismissDialog) }()
		}
	}); err != nil {
		t.Fatal(err)
	}
	return b
}

func dismissDialog(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
	_, err := cdp.Call(ctx, t, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
	return chromedp.Void{}, err
}

// do runs steps with a deadline.
func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 45*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("%s: %s: %v", b.name, what, err)
	}
}

// eval evaluates a JavaScript expression into out.
func (b *browser) eval(expr string, out any) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[json.RawMessage](`JSON.stringify(`+expr+`)`))
	if err != nil {
		b.t.Fatalf("%s: evaluate %s: %v", b.name, expr, err)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		b.t.Fatalf("%s: evaluate %s: %v", b.name, expr, err)
	}
	if err := json.Unmarshal([]byte(s), out); err != nil {
		b.t.Fatalf("%s: evaluate %s = %s: %v", b.name, expr, s, err)
	}
}

// waitJS waits until a JavaScript expression is truthy.
func (b *browser) waitJS(what, expr string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 45*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(40*time.Second))); err != nil {
		var dump string
		b.eval(`document.querySelector("#badge-text").textContent + " | " + document.querySelector("main").innerText.slice(0, 600)`, &dump)
		b.t.Fatalf("%s: waiting for %s: %v\npage: %s", b.name, what, err, dump)
	}
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	var s string
	b.eval(fmt.Sprintf(`(document.querySelector(%q)||{}).textContent||""`, sel), &s)
	return s
}

func (b *browser) screenshot(path string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("%s: screenshot: %v", b.name, err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("saved %s", path)
}

const (
	connectedJS = `document.querySelector("#badge").dataset.state === "connected"`
	inGameJS    = `!document.querySelector("#game").hidden && document.querySelector("#masked").children.length > 0`
	xssName     = `<img src=x onerror=alert(1)>`
)

func js(v string) string { b, _ := json.Marshal(v); return string(b) }

// TestTwoBrowsersTwoRelays is the player's story: two browsers on two
// relays play in one room, a hostile name stays text, a screenshot is kept,
// and killing one browser's relay moves it to the other with the right
// state.
func TestTwoBrowsersTwoRelays(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end browser test skipped with -short")
	}
	if chromiumPath() == "" {
		t.Skip("Chromium not found (install Debian's chromium, or set HANGMAN_CHROMIUM); skipping the browser tests")
	}
	sys := startSystem(t, 2)
	r1, r2 := sys.relays[0], sys.relays[1]
	room := fmt.Sprintf("e2e-%d", time.Now().UnixNano()%1_000_000)

	alice := newBrowser(t, "alice", 1100, 820)
	mallory := newBrowser(t, "mallory", 390, 844) // a phone

	// Alice, on relay 1, creates the room from the lobby.
	alice.do("open the page", chromedp.Navigate(r1.url+"/"))
	alice.waitJS("connected", connectedJS)
	alice.do("set a nickname",
		chromedp.SendKeys(chromedp.CSS("#name"), "Alice"),
		chromedp.Click(chromedp.CSS("#name-btn")),
	)
	alice.waitJS("the lobby's room list", `document.querySelector("#rooms").children.length > 0 || !document.querySelector("#no-rooms").hidden`)
	alice.screenshot(filepath.Join(artifactsDir(t), "lobby.png"))
	alice.do("create a room",
		chromedp.SendKeys(chromedp.CSS("#new-room"), room),
		chromedp.SetValue(chromedp.CSS("#max-wrong"), "10"),
		chromedp.Click(chromedp.CSS("#create-btn")),
	)
	alice.waitJS("in the game", inGameJS)

	// Mallory, on relay 2, follows a link to the room and picks a name
	// made of markup.
	mallory.do("open the room link", chromedp.Navigate(r2.url+"/#room="+room))
	mallory.waitJS("connected", connectedJS)
	if got := mallory.text("#badge-text"); !strings.Contains(got, r2.name) {
		t.Fatalf("mallory's badge %q does not name %s", got, r2.name)
	}
	mallory.do("set a nickname",
		chromedp.SendKeys(chromedp.CSS("#name"), xssName),
		chromedp.Click(chromedp.CSS("#name-btn")),
	)
	mallory.waitJS("in the game", inGameJS)

	t.Run("guess typed in one browser appears in the other", func(t *testing.T) {
		// Alice types on her physical keyboard.
		alice.do("type e", chromedp.KeyEvent("e"))
		mallory.waitJS("alice's guess in mallory's feed", `document.querySelector("#feed").textContent.includes("Alice guessed E")`)
		mallory.waitJS("E marked on mallory's keyboard", `document.querySelector('#keyboard [data-letter="e"]').disabled`)
		// Mallory taps the on-screen keyboard.
		for _, l := range []string{"a", "o", "t"} {
			mallory.do("tap "+l, chromedp.Click(chromedp.CSS(`#keyboard [data-letter="`+l+`"]`)))
			alice.waitJS("mallory's guess of "+l, fmt.Sprintf(`document.querySelector('#keyboard [data-letter="%s"]').disabled`, l))
		}
	})

	t.Run("a name made of markup renders as text", func(t *testing.T) {
		alice.waitJS("mallory on alice's scoreboard", `document.querySelector("#scores").textContent.includes(`+js(xssName)+`)`)
		for _, b := range []*browser{alice, mallory} {
			var imgs int
			b.eval(`document.querySelectorAll("img").length`, &imgs)
			if imgs != 0 {
				t.Errorf("%s: the name became %d <img> element(s)", b.name, imgs)
			}
			if n := b.alerts.Load(); n != 0 {
				t.Errorf("%s: %d JavaScript dialogs opened", b.name, n)
			}
		}
		if !strings.Contains(alice.text("#feed"), xssName) {
			t.Errorf("alice's feed does not show the name as text: %q", alice.text("#feed"))
		}
	})

	t.Run("screenshot of a game in progress", func(t *testing.T) {
		dir := artifactsDir(t)
		for _, b := range []*browser{alice, mallory} {
			b.waitJS("animations done", `document.getAnimations().length === 0`)
		}
		alice.screenshot(filepath.Join(dir, "game.png"))
		mallory.screenshot(filepath.Join(dir, "game-phone.png"))
	})

	t.Run("killing a relay moves its browser to the other", func(t *testing.T) {
		sys.kill(r1)
		alice.waitJS("alice reconnected to relay 2", fmt.Sprintf(`document.querySelector("#badge").dataset.state === "connected" && document.querySelector("#badge-text").textContent.includes(%s)`, js(r2.name)))
		// The state alice shows is the room's, and it keeps moving.
		var next string
		mallory.eval(`(document.querySelector('#keyboard button:not(:disabled)')||{}).dataset.letter`, &next)
		if next == "" {
			t.Fatal("no letter left to guess")
		}
		mallory.do("tap "+next, chromedp.Click(chromedp.CSS(`#keyboard [data-letter="`+next+`"]`)))
		alice.waitJS("mallory's guess after the failover", fmt.Sprintf(`document.querySelector('#keyboard [data-letter="%s"]').disabled`, next))
		mallory.waitJS("mallory's own guess applied", fmt.Sprintf(`document.querySelector('#keyboard [data-letter="%s"]').disabled && !document.querySelector('#keyboard [data-letter="%s"]').classList.contains("pending")`, next, next))
		for _, sel := range []string{"#masked", "#wrong", "#scores", "#round", "#status"} {
			a, m := alice.text(sel), mallory.text(sel)
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
		alice.eval(`(document.querySelector('#keyboard button:not(:disabled)')||{}).dataset.letter`, &mine)
		if mine != "" {
			alice.do("type "+mine, chromedp.KeyEvent(mine))
			mallory.waitJS("alice's guess through relay 2", fmt.Sprintf(`document.querySelector('#keyboard [data-letter="%s"]').disabled`, mine))
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
	if testing.Short() {
		t.Skip("end-to-end browser test skipped with -short")
	}
	if chromiumPath() == "" {
		t.Skip("Chromium not found (install Debian's chromium, or set HANGMAN_CHROMIUM); skipping the browser tests")
	}
	sys := startSystem(t, 0)
	ports := freePorts(t, 2)
	entryURL := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	relayAddr := fmt.Sprintf("127.0.0.1:%d", ports[1])
	// The relay advertises the entry, and only it, as in compose.yaml.
	sys.startRelay("e2e-relay-1", ports[1], entryURL, []string{entryURL})
	sys.waitReady("http://" + relayAddr + "/readyz")
	entry := sys.startEntry(ports[0], relayAddr)
	room := fmt.Sprintf("rejoin-%d", time.Now().UnixNano()%1_000_000)
	applied := func(l string) string {
		return fmt.Sprintf(`document.querySelector('#keyboard [data-letter="%s"]').disabled && !document.querySelector('#keyboard [data-letter="%s"]').classList.contains("pending")`, l, l)
	}

	bob := newBrowser(t, "bob", 1000, 800)
	bob.do("open the page through the entry", chromedp.Navigate(entry+"/"))
	bob.waitJS("connected", connectedJS)
	bob.do("set a nickname and create a room",
		chromedp.SendKeys(chromedp.CSS("#name"), "Bob"),
		chromedp.Click(chromedp.CSS("#name-btn")),
		chromedp.SendKeys(chromedp.CSS("#new-room"), room),
		chromedp.SetValue(chromedp.CSS("#max-wrong"), "10"),
		chromedp.Click(chromedp.CSS("#create-btn")),
	)
	bob.waitJS("in the game", inGameJS)
	bob.do("type e", chromedp.KeyEvent("e"))
	bob.waitJS("e applied", applied("e"))

	sys.kill(sys.relays[0])
	bob.waitJS("the page lost its relay", `document.querySelector("#badge").dataset.state !== "connected"`)
	bob.waitJS("the game still shown", inGameJS)
	bob.do("type t", chromedp.KeyEvent("t"))
	bob.waitJS("t shown pending", `document.querySelector('#keyboard [data-letter="t"]').classList.contains("pending")`)

	sys.startRelay("e2e-relay-2", ports[1], entryURL, []string{entryURL})
	bob.waitJS("back through the entry on the new relay", connectedJS+` && document.querySelector("#badge-text").textContent.includes("e2e-relay-2")`)
	bob.waitJS("t applied", applied("t"))
	bob.waitJS("e still shown", applied("e"))
	var seats int
	bob.eval(`[...document.querySelectorAll("#scores li")].filter((li) => li.textContent.startsWith("Bob")).length`, &seats)
	if seats != 1 {
		t.Errorf("bob holds %d seats after rejoining, want 1", seats)
	}
}
