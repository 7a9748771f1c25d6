package e2e

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/hangman/hangman/internal/browsertest"
)

// The room modes of issue 20 (parts 3-5) in real browsers: room settings
// chosen in the create form and shown in the room, a round whose word a
// player sets through the page while the others guess, and timed turns
// that pass on a guess or when they run out.

// leaksJS is true when the page holds word anywhere a player could find
// it: its markup, the values of its inputs, its title, address or storage.
func leaksJS(word string) string {
	return `(() => { const w = ` + js(strings.ToLower(word)) + `;
		const where = [document.documentElement.outerHTML, document.title, location.href,
			...[...document.querySelectorAll("input")].map((i) => i.value),
			JSON.stringify(Object.assign({}, localStorage)), JSON.stringify(Object.assign({}, sessionStorage))];
		return where.some((t) => String(t).toLowerCase().includes(w)); })()`
}

// checkSecret fails the test if word shows on b's page, or reached it in
// a websocket frame received before the round's end (a state or event
// whose status is won or lost).
func checkSecret(t *testing.T, b *browser, frames []string, word, when string) {
	t.Helper()
	var leaked bool
	if b.Eval(leaksJS(word), &leaked); leaked {
		t.Errorf("%s: the word %q is on the page %s", b.Name, word, when)
	}
	for i, f := range frames {
		if strings.Contains(f, `"status":"won"`) || strings.Contains(f, `"status":"lost"`) {
			return
		}
		if strings.Contains(strings.ToLower(f), word) {
			t.Errorf("%s: frame %d received %s holds the word: %s", b.Name, i, when, f)
		}
	}
}

// playerID is the id the page plays as (kept per tab).
func (b *browser) playerID() string {
	b.T.Helper()
	var id string
	b.Eval(`sessionStorage.getItem("hangman.playerId") || ""`, &id)
	if id == "" {
		b.T.Fatalf("%s: the page has no player id", b.Name)
	}
	return id
}

// choose picks value in the select sel by keyboard: focus, then arrow
// keys until it is chosen (each key press fires the select's change).
func (b *browser) choose(sel, value string) {
	b.T.Helper()
	var options []string
	b.Eval(fmt.Sprintf(`[...document.querySelector(%q).options].map((o) => o.value)`, sel), &options)
	b.Do("focus "+sel, chromedp.Focus(chromedp.CSS(sel)))
	for range options {
		var cur string
		if b.Eval(fmt.Sprintf(`document.querySelector(%q).value`, sel), &cur); cur == value {
			return
		}
		b.Do("arrow down in "+sel, chromedp.KeyEvent(kb.ArrowDown))
	}
	b.T.Fatalf("%s: %q is not an option of %s (%v)", b.Name, value, sel, options)
}

// guessKey types letter on b's keyboard and waits until the room applied
// it (the letter's key is disabled and no longer pending).
func (b *browser) guessKey(letter string) {
	b.T.Helper()
	b.Do("type "+letter, chromedp.KeyEvent(letter))
	b.WaitJS(letter+" applied", fmt.Sprintf(`document.querySelector('#keyboard [data-letter="%s"]').disabled && !document.querySelector('#keyboard [data-letter="%s"]').classList.contains("pending")`, letter, letter))
}

// seatWhileSetting takes a seat in a host room whose round waits for its
// word (no blanks to show yet, unlike takeSeat's wait).
func (b *browser) seatWhileSetting(nickname string) {
	b.T.Helper()
	b.WaitJS("watching", `!document.querySelector("#join-form").hidden && `+settingJS)
	b.Do("take a seat as "+nickname,
		chromedp.SendKeys(chromedp.CSS("#join-name"), nickname),
		chromedp.Click(chromedp.CSS("#join-btn")),
	)
	b.WaitJS(nickname+" seated", settingJS+` && document.querySelector("#join-form").hidden && document.querySelector("#scores").textContent.includes(`+js(nickname+" (you)")+`)`)
}

// title is a browser's name as its player is called on the pages.
func title(b *browser) string { return strings.ToUpper(b.Name[:1]) + b.Name[1:] }

const (
	// settingJS: a host room's round waits for its word.
	settingJS = `!document.querySelector("#game").hidden && document.querySelector("#status").classList.contains("setting")`
	// allKeysOffJS: the player cannot guess now.
	allKeysOffJS = `[...document.querySelectorAll("#keyboard button")].every((b) => b.disabled)`
)

func roundJS(n int) string {
	return fmt.Sprintf(`document.querySelector("#round").textContent === "Round %d"`, n)
}

func setterFormJS(shown bool) string {
	if shown {
		return `!document.querySelector("#set-word-form").hidden`
	}
	return `document.querySelector("#set-word-form").hidden`
}

// TestHostPickedRounds plays issue 20's host mode in three browsers on two
// relays: alice creates a room where the players pick the words (chosen in
// the create form by keyboard), the room shows its settings, carol (on a
// 360 px phone) and bob take seats through the invite link; alice sets the
// word through the page, hidden as she types unless she shows it, and does
// not guess; carol and bob guess it. The word is in none of the guessers'
// pages nor any websocket frame they receive until the round ends, then
// shows on every page and in the last rounds. The next round's setter is
// carol, the next seat, who sets it on her phone: setters rotate.
// Screenshots of the lobby's settings, the setter's view and a guesser's
// view are saved.
func TestHostPickedRounds(t *testing.T) {
	needBrowser(t)
	sys := startSystem(t, 2)
	r1, r2 := sys.relays[0], sys.relays[1]
	room := uniqueRoom("host")
	dir := artifactsDir(t)
	const word, second = "giraffe", "walrus"

	alice := newBrowser(t, "alice", 1000, 900)
	alice.Do("open the page", chromedp.Navigate(r1.url+"/"))
	alice.WaitJS("connected", connectedJS)
	alice.Do("pick a nickname", chromedp.Focus(chromedp.CSS("#name")), chromedp.SendKeys(chromedp.CSS("#name"), "Alice\r"))
	alice.Do("name the room", chromedp.SendKeys(chromedp.CSS("#new-room"), room))
	alice.choose("#mode", "host")
	alice.choose("#word-length", "6-8")
	alice.choose("#max-players", "3")
	t.Run("the settings fieldset", func(t *testing.T) {
		var cat struct {
			Disabled bool
			Hint     string
		}
		alice.Eval(`({Disabled: document.querySelector("#category").disabled, Hint: document.querySelector("#category-hint").textContent})`, &cat)
		if !cat.Disabled || !strings.Contains(cat.Hint, "not used") {
			t.Errorf("with players picking the words, the word list is %+v", cat)
		}
		var unlabelled []string
		alice.Eval(`[...document.querySelectorAll("#room-settings select")].filter((s) => !s.labels.length || !s.labels[0].textContent.trim()).map((s) => s.id)`, &unlabelled)
		if len(unlabelled) > 0 {
			t.Errorf("settings without a label: %v", unlabelled)
		}
	})
	alice.WaitJS("a still screen", stillJS)
	alice.screenshot(filepath.Join(dir, "how-lobby-settings.png"))
	alice.Do("create the room, by keyboard", chromedp.Focus(chromedp.CSS("#new-room")), chromedp.KeyEvent("\r"))
	alice.WaitJS("alice asked for the word", settingJS+` && `+setterFormJS(true))

	t.Run("the room shows its settings", func(t *testing.T) {
		rules := alice.Text("#room-rules")
		for _, want := range []string{"Players pick the words", "6-8 letters", "6 misses allowed", "No turn timer", "Up to 3 players"} {
			if !strings.Contains(rules, want) {
				t.Errorf("the room's settings read %q, without %q", rules, want)
			}
		}
	})
	link := r1.url + "/#/room/" + room

	carol := newBrowser(t, "carol", 360, 740)
	carolFrames := carol.RecordFrames()
	carol.Do("open the invite link on a phone", chromedp.Navigate(link))
	carol.WaitJS("connected", connectedJS)
	carol.WaitJS("watching", `!document.querySelector("#join-form").hidden`)
	carol.seatWhileSetting("Carol")
	alice.WaitJS("carol on alice's scoreboard", `document.querySelector("#scores").textContent.includes("Carol")`)
	bob := newBrowser(t, "bob", 1000, 900)
	bobFrames := bob.RecordFrames()
	bob.Do("open the invite link on the other relay", chromedp.Navigate(r2.url+"/#/room/"+room))
	bob.WaitJS("connected", connectedJS)
	bob.WaitJS("watching", `!document.querySelector("#join-form").hidden`)
	bob.seatWhileSetting("Bob")

	for _, b := range []*browser{bob, carol} {
		b.WaitJS("waiting for alice's word", `document.querySelector("#status").textContent === "Waiting for Alice to set the word." && `+setterFormJS(false)+` && `+allKeysOffJS)
	}
	checkNoOverflow(t, carol, "the wait for the word at 360 px")

	t.Run("the setter types the word hidden, and may show it", func(t *testing.T) {
		alice.Do("type the word", chromedp.Focus(chromedp.CSS("#set-word")), chromedp.SendKeys(chromedp.CSS("#set-word"), "Giraffe"))
		if typ := alice.attr("#set-word", "type"); typ != "password" {
			t.Errorf("the word is typed in an input of type %q", typ)
		}
		if l := alice.attr("#show-word", "aria-pressed"); l != "false" {
			t.Errorf("the show toggle starts aria-pressed=%q", l)
		}
		alice.WaitJS("a still screen", stillJS)
		alice.screenshot(filepath.Join(dir, "how-host-setter.png"))
		alice.Do("show the word, by keyboard", chromedp.Focus(chromedp.CSS("#show-word")), chromedp.KeyEvent(" "))
		alice.WaitJS("the word shown", `document.querySelector("#set-word").type === "text" && document.querySelector("#show-word").getAttribute("aria-pressed") === "true"`)
		alice.Do("hide it again", chromedp.KeyEvent(" "))
		alice.WaitJS("the word hidden", `document.querySelector("#set-word").type === "password" && document.querySelector("#show-word").getAttribute("aria-pressed") === "false"`)
		alice.Do("set the word with Enter", chromedp.Focus(chromedp.CSS("#set-word")), chromedp.KeyEvent("\r"))
	})

	for _, b := range []*browser{bob, carol} {
		b.WaitJS("the round playing, seven blanks", `document.querySelector("#status").classList.contains("playing") && document.querySelectorAll("#masked .cell.blank").length === 7 && !document.querySelector('#keyboard [data-letter="e"]').disabled`)
		b.WaitJS("alice's word set in the feed", `document.querySelector("#feed").textContent.includes("Alice set the word.")`)
	}
	t.Run("the setter does not guess", func(t *testing.T) {
		alice.WaitJS("alice watches her word", `document.querySelector("#status").textContent === "You set this word: watch the others guess." && `+allKeysOffJS+` && `+setterFormJS(false))
		alice.Do("type e as the setter", chromedp.KeyEvent("e"))
	})
	checkSecret(t, bob, bobFrames.All(), word, "once the word is set")
	checkSecret(t, carol, carolFrames.All(), word, "once the word is set")

	bob.guessKey("e")
	carol.WaitJS("bob's E", `document.querySelector('#keyboard [data-letter="e"]').disabled`)
	if feed := alice.Text("#feed"); strings.Contains(feed, "Alice guessed") {
		t.Errorf("the setter's letter was played: %q", feed)
	}
	carol.Do("tap a", chromedp.Click(chromedp.CSS(`#keyboard [data-letter="a"]`)))
	carol.WaitJS("a applied", `document.querySelector('#keyboard [data-letter="a"]').disabled && !document.querySelector('#keyboard [data-letter="a"]').classList.contains("pending")`)
	bob.guessKey("o")
	carol.WaitJS("a still screen", stillJS)
	carol.screenshot(filepath.Join(dir, "how-host-phone.png"))
	bob.WaitJS("a still screen", stillJS)
	bob.screenshot(filepath.Join(dir, "how-host-guesser.png"))
	checkNoOverflow(t, carol, "a host round at 360 px")
	for _, l := range []string{"g", "i", "r"} {
		bob.guessKey(l)
	}
	checkSecret(t, bob, bobFrames.All(), word, "before the last letter")
	checkSecret(t, carol, carolFrames.All(), word, "before the last letter")
	carol.WaitJS("the word but one letter", `document.querySelectorAll("#masked .cell.blank").length === 2`)
	carol.Do("tap f", chromedp.Click(chromedp.CSS(`#keyboard [data-letter="f"]`)))

	t.Run("the word shows at the end", func(t *testing.T) {
		for _, b := range []*browser{alice, bob, carol} {
			b.WaitJS("the round won", `document.querySelector("#status").classList.contains("won") && document.querySelector("#status").textContent.includes("giraffe")`)
			b.WaitJS("the round in the last rounds", `!document.querySelector("#history-card").hidden && document.querySelector("#history").textContent.includes("giraffe") && document.querySelector("#history").textContent.includes("Solved by Carol") && document.querySelector("#history").textContent.includes("set by Alice")`)
			b.WaitJS("the leaderboard", `document.querySelectorAll("#leaderboard li").length === 3`)
		}
		for name, frames := range map[string]*browsertest.Frames{"bob": bobFrames, "carol": carolFrames} {
			seen := false
			for _, f := range frames.All() {
				seen = seen || strings.Contains(f, `"word":"giraffe"`)
			}
			if !seen {
				t.Errorf("%s received no frame with the word once the round ended", name)
			}
		}
		checkNoOverflow(t, carol, "the end of a host round at 360 px")
	})

	t.Run("the setters rotate", func(t *testing.T) {
		bob.Do("press New round, by keyboard", chromedp.Focus(chromedp.CSS("#new-round")), chromedp.KeyEvent("\r"))
		for _, b := range []*browser{alice, bob, carol} {
			b.WaitJS("round 2 waiting for its word", roundJS(2)+` && `+settingJS)
		}
		// The seats are alice's, carol's, bob's: the word of round 2 is carol's.
		carol.WaitJS("carol sets round 2", setterFormJS(true)+` && document.querySelector("#status").textContent === "You set this round's word: the others guess it."`)
		for _, b := range []*browser{alice, bob} {
			b.WaitJS("waiting for carol's word", setterFormJS(false)+` && document.querySelector("#status").textContent === "Waiting for Carol to set the word."`)
		}
		checkNoOverflow(t, carol, "the set-word form at 360 px")
		round2 := len(bobFrames.All())
		carol.Do("set the second word on the phone", chromedp.SendKeys(chromedp.CSS("#set-word"), second), chromedp.Click(chromedp.CSS("#set-word-btn")))
		for _, b := range []*browser{alice, bob} {
			b.WaitJS("guessing carol's word", `document.querySelector("#status").textContent === "Guess the word Carol set." && document.querySelectorAll("#masked .cell").length === 6 && !document.querySelector('#keyboard [data-letter="e"]').disabled`)
		}
		carol.WaitJS("carol does not guess", `document.querySelector("#status").classList.contains("playing") && `+allKeysOffJS)
		alice.guessKey("a")
		alice.guessKey("x")
		alice.WaitJS("a still screen", stillJS)
		alice.screenshot(filepath.Join(dir, "how-host-round-2.png"))
		checkSecret(t, alice, nil, second, "while carol's round plays")
		checkSecret(t, bob, bobFrames.All()[round2:], second, "while carol's round plays")
	})

	t.Run("accessible names", func(t *testing.T) {
		for sel, attr := range map[string]string{"#room-rules": "aria-label", "#show-word": "aria-controls", "#turn-left": "role"} {
			if alice.attr(sel, attr) == "" {
				t.Errorf("%s has no %s", sel, attr)
			}
		}
		var labelled bool
		if alice.Eval(`document.querySelector("#set-word").labels.length === 1 && document.querySelector("#set-word").labels[0].textContent.trim() !== ""`, &labelled); !labelled {
			t.Error("the set-word input has no label")
		}
	})
}

// turnOf is the turn a page shows: whose, its number and its deadline
// (Unix milliseconds), and how long the page says is left.
type turnOf struct {
	Player   string
	Number   int
	Deadline int64
	Left     string
	Who      string
}

func (b *browser) turn() turnOf {
	b.T.Helper()
	var raw struct{ Player, Number, Deadline, Left, Who string }
	b.Eval(`(() => { const t = document.querySelector("#turn"); return {Player: t.dataset.player || "", Number: t.dataset.number || "0", Deadline: t.dataset.deadline || "0", Left: document.querySelector("#turn-left").textContent, Who: document.querySelector("#turn-who").textContent}; })()`, &raw)
	n, _ := strconv.Atoi(raw.Number)
	d, _ := strconv.ParseInt(raw.Deadline, 10, 64)
	return turnOf{Player: raw.Player, Number: n, Deadline: d, Left: raw.Left, Who: raw.Who}
}

func turnJS(player string, number int) string {
	return fmt.Sprintf(`document.querySelector("#turn").dataset.player === %s && document.querySelector("#turn").dataset.number === "%d"`, js(player), number)
}

// TestTimedTurns plays a room with the shortest turns the rules allow
// (5 s), created with a category and settings that the room then shows:
// alice and bob (on a 360 px phone) guess in order, only the player whose
// turn it is can, a guess passes the turn to the other, and a turn left to
// run out passes to the next player when it does, not before, and only
// once. A screenshot of a timed turn is saved.
func TestTimedTurns(t *testing.T) {
	needBrowser(t)
	sys := startSystem(t, 1)
	r1 := sys.relays[0]
	room := uniqueRoom("timed")
	dir := artifactsDir(t)

	alice := newBrowser(t, "alice", 1000, 800)
	alice.Do("open the page", chromedp.Navigate(r1.url+"/"))
	alice.WaitJS("connected", connectedJS)
	alice.Do("pick a nickname", chromedp.SendKeys(chromedp.CSS("#name"), "Alice\r"))
	alice.Do("name the room", chromedp.SendKeys(chromedp.CSS("#new-room"), room))
	alice.choose("#category", "animals")
	alice.choose("#word-length", "3-5")
	alice.choose("#max-wrong", "8")
	alice.choose("#turn-seconds", "5")
	alice.Do("create the room", chromedp.Click(chromedp.CSS("#create-btn")))
	alice.WaitJS("in the game", inGameJS)

	bob := newBrowser(t, "bob", 360, 740)
	bob.Do("open the room's link on a phone", chromedp.Navigate(r1.url+"/#/room/"+room))
	bob.takeSeat("Bob")
	bob.WaitJS("bob seated", inGameJS+` && document.querySelector("#scores").textContent.includes("Bob (you)")`)

	t.Run("the room shows its settings", func(t *testing.T) {
		for _, b := range []*browser{alice, bob} {
			rules := b.Text("#room-rules")
			for _, want := range []string{"Animals", "3-5 letters", "8 misses allowed", "5 s turns"} {
				if !strings.Contains(rules, want) {
					t.Errorf("%s: the room's settings read %q, without %q", b.Name, rules, want)
				}
			}
			var cells int
			if b.Eval(`document.querySelectorAll("#masked .cell").length`, &cells); cells < 3 || cells > 5 {
				t.Errorf("%s: a word of %d letters in a room of 3-5", b.Name, cells)
			}
		}
		checkNoOverflow(t, bob, "a timed room at 360 px")
	})

	players := map[string]*browser{alice.playerID(): alice, bob.playerID(): bob}
	other := func(b *browser) *browser {
		if b == alice {
			return bob
		}
		return alice
	}

	// A turn with time enough to play it: the one shown, or the next.
	var cur turnOf
	deadline := time.Now().Add(30 * time.Second)
	for {
		alice.WaitJS("a turn", `!document.querySelector("#turn").hidden && !!document.querySelector("#turn").dataset.player`)
		cur = alice.turn()
		if time.Until(time.UnixMilli(cur.Deadline)) > 2500*time.Millisecond {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no turn with time left to play it within 30s (last %+v)", cur)
		}
		alice.WaitJS("the next turn", fmt.Sprintf(`Number(document.querySelector("#turn").dataset.number) > %d`, cur.Number))
	}
	p := players[cur.Player]
	if p == nil {
		t.Fatalf("the turn is %q's, not a player's", cur.Player)
	}
	q := other(p)
	p.WaitJS("the turn on its player's page", turnJS(cur.Player, cur.Number)+` && document.querySelector("#turn").classList.contains("mine")`)

	t.Run("only the player whose turn it is can guess", func(t *testing.T) {
		q.WaitJS("the turn on the other page", turnJS(cur.Player, cur.Number)+` && `+allKeysOffJS)
		if who := q.turn().Who; who != title(p)+"'s turn" {
			t.Errorf("%s's page says %q on %s's turn", q.Name, who, p.Name)
		}
		if !strings.HasPrefix(p.turn().Who, "▶ Your turn") {
			t.Errorf("%s's page says %q on their turn", p.Name, p.turn().Who)
		}
	})

	t.Run("a guess passes the turn", func(t *testing.T) {
		var letter string
		p.Eval(`(document.querySelector('#keyboard button:not(:disabled)')||{}).dataset.letter`, &letter)
		p.guessKey(letter)
		for _, b := range []*browser{alice, bob} {
			b.WaitJS("the next turn, the other player's", turnJS(q.playerID(), cur.Number+1))
		}
		q.WaitJS("the other player may guess", `document.querySelector("#turn").classList.contains("mine") && !document.querySelector('#keyboard button:not(.hit):not(.miss)').disabled`)
		p.WaitJS("and the guesser may not", allKeysOffJS)
	})
	passed := time.Now()
	timeouts := func() int {
		var n int
		p.Eval(`[...document.querySelectorAll("#feed li")].filter((li) => li.textContent.includes("turn ran out")).length`, &n)
		return n
	}
	before := timeouts()
	// The screenshot shows alice's page on her turn: this one, or the
	// next once bob's runs out.
	shot := func() {
		alice.WaitJS("a still screen", stillJS)
		alice.screenshot(filepath.Join(dir, "how-turn.png"))
	}
	if q == alice {
		shot()
	}
	checkNoOverflow(t, bob, "a turn at 360 px")

	t.Run("a turn that runs out passes to the next player", func(t *testing.T) {
		for _, b := range []*browser{alice, bob} {
			b.WaitJS("the turn back to "+p.Name+" on timeout", turnJS(p.playerID(), cur.Number+2))
		}
		if waited := time.Since(passed); waited < 4*time.Second {
			t.Errorf("the 5 s turn ran out after %v", waited)
		}
		if p == alice {
			shot()
		}
		p.WaitJS("the timeout in the feed", `document.querySelector("#feed").textContent.includes(`+js(title(q)+"'s turn ran out.")+`)`)
		q.WaitJS("the timeout in the feed of the player who ran out", `document.querySelector("#feed").textContent.includes("Your turn ran out.")`)
		if n := timeouts() - before; n != 1 {
			t.Errorf("%d turns ran out, want 1", n)
		}
		// The player whose turn it is again plays it.
		var letter string
		p.Eval(`(document.querySelector('#keyboard button:not(:disabled)')||{}).dataset.letter`, &letter)
		p.guessKey(letter)
		q.WaitJS("the turn passed on by the guess", turnJS(q.playerID(), cur.Number+3))
	})
}
