package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// joinAckAfterJoinedEvent makes the race behind issue 20's empty "What
// happened" panel happen every time: the page's answer to a join (its
// ack) is held back until the room's player_joined event has been handed
// to the page, as happens whenever NATS brings the event before gRPC
// brings the answer.
const joinAckAfterJoinedEvent = `(() => {
	const Real = window.WebSocket;
	window.WebSocket = class extends Real {
		set onmessage(fn) {
			let held = [], joinedSeen = false;
			super.onmessage = (ev) => {
				let f = {};
				try { f = JSON.parse(ev.data); } catch (e) { /* handed on as is */ }
				if (f.type === "ack" && f.op === "join" && !joinedSeen) { held.push(ev); return; }
				fn(ev);
				// The event comes alone or in its state's frame.
				const ev = f.type === "event" ? f.data : f.type === "state" ? f.event : null;
				if (ev && ev.kind === "player_joined") {
					joinedSeen = true;
					const h = held; held = [];
					h.forEach(fn);
				}
			};
		}
		get onmessage() { return super.onmessage; }
	};
})()`

// stillJS waits for the drawing's animations to end, and takes the focus
// ring and any message off the screen, for a screenshot.
const stillJS = `document.getAnimations().length === 0 && (document.activeElement.blur(), document.querySelector("#toast").hidden = true)`

// addScript runs src in every document the browser opens from now on,
// before the page's own scripts; the returned function stops that.
func addScript(b *browser, src string) func() {
	b.T.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, 20*time.Second)
	defer cancel()
	res, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: src})
	if err != nil {
		b.T.Fatalf("%s: add script: %v", b.Name, err)
	}
	return func() {
		ctx, cancel := context.WithTimeout(b.Ctx, 20*time.Second)
		defer cancel()
		if _, err := chromedp.Call(ctx, page.RemoveScriptToEvaluateOnNewDocument, page.RemoveScriptToEvaluateOnNewDocumentParams(res)); err != nil {
			b.T.Fatalf("%s: remove script: %v", b.Name, err)
		}
	}
}

// checkNoOverflow fails the test if the page scrolls sideways.
func checkNoOverflow(t *testing.T, b *browser, where string) {
	t.Helper()
	var w struct{ Scroll, Inner int }
	b.Eval(`({Scroll: document.documentElement.scrollWidth, Inner: window.innerWidth})`, &w)
	if w.Scroll > w.Inner {
		var wide []string
		b.Eval(`[...document.querySelectorAll("body *")].filter((e) => e.getBoundingClientRect().right > window.innerWidth + 0.5 && e.getClientRects().length).slice(0, 8).map((e) => e.tagName + (e.id ? "#" + e.id : "") + "." + e.className)`, &wide)
		t.Errorf("%s: %s is %d px wide in a %d px window; too wide: %v", b.Name, where, w.Scroll, w.Inner, wide)
	}
}

// TestInviteSpectateAndEndOfRound is issue 20's invite links, spectators
// and end of round, played by keyboard in three real browsers on two
// relays:
//
//   - alice plays with the keyboard only (nickname, room, letters, copy
//     link, new round) and copies the room's invite link;
//   - bob opens the link through the other relay without a nickname: he
//     watches, with no keyboard, and everyone sees one spectator; letters
//     he types change nothing;
//   - carol, on a 360 px phone, opens the link, watches, then takes a seat
//     (her "What happened" shows her own join however the answer and the
//     event race), and a reload keeps her seat and score; nothing on her
//     screen is wider than the phone;
//   - the round is lost: the letters nobody guessed are shown apart from
//     the found ones, in shape as well as colour.
//
// Screenshots of the lobby, a game, the end of a round and the phone are
// saved as artifacts (the README's "How to play" shows them).
func TestInviteSpectateAndEndOfRound(t *testing.T) {
	needBrowser(t)
	sys := startSystem(t, 2)
	r1, r2 := sys.relays[0], sys.relays[1]
	room := uniqueRoom("invite")
	dir := artifactsDir(t)
	spectators := func(n string) string {
		return `document.querySelector("#spectators").textContent === ` + js(n)
	}

	alice := newBrowser(t, "alice", 1000, 800)
	alice.Do("open the page", chromedp.Navigate(r1.url+"/"))
	alice.WaitJS("connected", connectedJS)
	t.Run("the lobby", func(t *testing.T) {
		if !alice.hidden("#keys-hint") {
			t.Errorf("the lobby's footer says %q", alice.Text("#keys-hint"))
		}
		// "Create & join" sits on the line of the fields it submits.
		var gap float64
		alice.Eval(`Math.abs(document.querySelector("#create-btn").getBoundingClientRect().bottom - document.querySelector("#new-room").getBoundingClientRect().bottom)`, &gap)
		if gap > 2 {
			t.Errorf("the create button is %.0f px off the line of the room name", gap)
		}
	})
	alice.Do("pick a nickname and create a room, by keyboard",
		chromedp.Focus(chromedp.CSS("#name")),
		chromedp.SendKeys(chromedp.CSS("#name"), "Alice\r"),
		chromedp.SetValue(chromedp.CSS("#max-wrong"), "4"),
		chromedp.Focus(chromedp.CSS("#new-room")),
		chromedp.SendKeys(chromedp.CSS("#new-room"), room+"\r"),
	)
	alice.WaitJS("in the game", inGameJS)
	alice.WaitJS("alice's own join in her feed", `document.querySelector("#feed").textContent.includes("You joined.")`)
	t.Run("misses before any miss", func(t *testing.T) {
		var st struct{ Text, Transform, Color, Muted string }
		alice.Eval(`(() => { const w = document.querySelector("#wrong"), cs = getComputedStyle(w);
			return {Text: w.textContent, Transform: cs.textTransform, Color: cs.color, Muted: getComputedStyle(document.querySelector("#wrong-left")).color}; })()`, &st)
		if st.Text != "none" || st.Transform != "none" || st.Color != st.Muted {
			t.Errorf("no misses shown as %q, text-transform %s, colour %s (muted text is %s)", st.Text, st.Transform, st.Color, st.Muted)
		}
		if alice.hidden("#keys-hint") {
			t.Error("the typing hint is hidden in the game")
		}
	})
	alice.Do("copy the invite link, by keyboard", chromedp.Focus(chromedp.CSS("#copy-link")), chromedp.KeyEvent("\r"))
	alice.WaitJS("the link told", `!document.querySelector("#toast").hidden && document.querySelector("#toast").textContent.includes("/#/room/")`)
	toast := alice.Text("#toast")
	link := toast[strings.Index(toast, "http"):]
	if want := r1.url + "/#/room/" + room; link != want {
		t.Fatalf("invite link %q, want %q", link, want)
	}
	// The link opens the room through any relay.
	linkOnR2 := r2.url + link[len(r1.url):]

	bob := newBrowser(t, "bob", 1000, 800)
	bob.Do("open the invite link on the other relay", chromedp.Navigate(linkOnR2))
	bob.WaitJS("connected", connectedJS)
	bob.WaitJS("watching the room", watchingJS)
	t.Run("a spectator is counted and cannot guess", func(t *testing.T) {
		alice.WaitJS("one spectator on alice's page", spectators("1 spectator"))
		bob.WaitJS("one spectator on bob's page", spectators("1 spectator"))
		if !bob.hidden("#keys-hint") || !bob.hidden("#new-round") {
			t.Error("a spectator is offered to type letters or start a round")
		}
		bob.Do("type e as a spectator", chromedp.KeyEvent("e"))
		alice.Do("type a", chromedp.KeyEvent("a"))
		bob.WaitJS("alice's guess on bob's page", `document.querySelector("#feed").textContent.includes("Alice guessed A")`)
		alice.WaitJS("alice's guess applied", `document.querySelector('#keyboard [data-letter="a"]').disabled && !document.querySelector('#keyboard [data-letter="a"]').classList.contains("pending")`)
		if strings.Contains(alice.Text("#feed"), "guessed E") {
			t.Errorf("bob's letter reached the game: %q", alice.Text("#feed"))
		}
	})

	carol := newBrowser(t, "carol", 360, 740)
	stopRace := addScript(carol, joinAckAfterJoinedEvent)
	carol.Do("open the invite link on a phone", chromedp.Navigate(link))
	carol.WaitJS("connected", connectedJS)
	carol.WaitJS("watching the room", watchingJS)
	alice.WaitJS("two spectators", spectators("2 spectators"))
	var width int
	if carol.Eval(`window.innerWidth`, &width); width != 360 {
		t.Fatalf("carol's window is %d px wide, want 360", width)
	}
	checkNoOverflow(t, carol, "the game watched at 360 px")
	carol.takeSeat("Carol")
	carol.WaitJS("in the game", inGameJS)
	t.Run("the feed of a player who joins shows the join", func(t *testing.T) {
		carol.WaitJS("carol's join in her feed", `document.querySelector("#feed").textContent.includes("You joined.")`)
	})
	stopRace()
	alice.WaitJS("carol seated, one spectator left", `document.querySelector("#scores").textContent.includes("Carol") && `+spectators("1 spectator"))
	carol.WaitJS("one spectator on carol's page", spectators("1 spectator"))
	checkNoOverflow(t, carol, "the game at 360 px")
	carol.screenshot(filepath.Join(dir, "how-phone.png"))

	t.Run("accessible names", func(t *testing.T) {
		var labels []string
		carol.Eval(`[...document.querySelectorAll("#keyboard button")].map((b) => b.getAttribute("aria-label") || "")`, &labels)
		if len(labels) != 26 || !strings.HasPrefix(labels[0], "Letter A") || !strings.HasPrefix(labels[25], "Letter Z") {
			t.Errorf("keyboard labels %q", labels)
		}
		if l := carol.attr("#gallows", "aria-label"); !strings.Contains(l, "misses") {
			t.Errorf("the drawing is labelled %q", l)
		}
		if l := carol.attr("#keyboard", "aria-label"); l == "" {
			t.Error("the keyboard has no label")
		}
	})

	t.Run("a reload through the link keeps the seat and the score", func(t *testing.T) {
		var letter string
		carol.Eval(`(document.querySelector('#keyboard button:not(:disabled)')||{}).dataset.letter`, &letter)
		carol.Do("tap "+letter, chromedp.Click(chromedp.CSS(`#keyboard [data-letter="`+letter+`"]`)))
		alice.WaitJS("carol's guess", fmt.Sprintf(`document.querySelector('#keyboard [data-letter="%s"]').disabled`, letter))
		carol.WaitJS("carol's guess applied", fmt.Sprintf(`!document.querySelector('#keyboard [data-letter="%s"]').classList.contains("pending")`, letter))
		before := carol.Text("#scores")
		carol.Do("reload", chromedp.Reload())
		carol.WaitJS("back in the game", inGameJS+` && document.querySelector("#scores").textContent.includes("Carol (you)")`)
		if after := carol.Text("#scores"); after != before {
			t.Fatalf("carol's scoreboard after the reload %q, before %q", after, before)
		}
		if got := carol.location(); !strings.HasSuffix(got, "#/room/"+room) {
			t.Errorf("after the reload the page is at %s", got)
		}
	})

	alice.WaitJS("a still screen", stillJS)
	alice.screenshot(filepath.Join(dir, "how-game.png"))

	t.Run("the end of a lost round sets the unguessed letters apart", func(t *testing.T) {
		alice.Do("type e", chromedp.KeyEvent("e"))
		for _, l := range "qxzjvkwyfbpgmhu" {
			var status string
			alice.Eval(`document.querySelector("#status").className`, &status)
			if !strings.Contains(status, "playing") {
				break
			}
			var done bool
			alice.Eval(fmt.Sprintf(`document.querySelector('#keyboard [data-letter="%c"]').disabled`, l), &done)
			if done {
				continue
			}
			alice.Do("type "+string(l), chromedp.KeyEvent(string(l)))
			alice.WaitJS(string(l)+" applied", fmt.Sprintf(`document.querySelector('#keyboard [data-letter="%c"]').disabled && !document.querySelector('#keyboard [data-letter="%c"]').classList.contains("pending")`, l, l))
		}
		alice.WaitJS("the round lost", `document.querySelector("#status").classList.contains("lost")`)
		var cells []struct{ Class, Text, Border string }
		alice.Eval(`[...document.querySelectorAll("#masked .cell")].map((c) => ({Class: c.className, Text: c.textContent, Border: getComputedStyle(c).borderTopStyle}))`, &cells)
		revealed := 0
		for _, c := range cells {
			switch {
			case strings.Contains(c.Class, "revealed"):
				revealed++
				if c.Border != "dashed" || c.Text == "_" {
					t.Errorf("an unguessed letter shows as %+v", c)
				}
			case c.Border == "dashed":
				t.Errorf("a found letter shows like an unguessed one: %+v", c)
			}
		}
		if revealed == 0 || alice.hidden("#masked-legend") {
			t.Errorf("no unguessed letter set apart, or no legend: %+v", cells)
		}
		// Found and missed letters differ by more than colour.
		var marks struct{ Miss, Hit, MissLine string }
		alice.Eval(`(() => { const m = document.querySelector("#keyboard button.miss"), h = document.querySelector("#keyboard button.hit");
			return {Miss: m ? getComputedStyle(m, "::after").content : "", Hit: h ? getComputedStyle(h, "::after").content : "", MissLine: m ? getComputedStyle(m).textDecorationLine : ""}; })()`, &marks)
		if marks.Miss == marks.Hit || marks.Miss == "" || marks.MissLine != "line-through" {
			t.Errorf("misses and hits marked %+v", marks)
		}
		alice.WaitJS("a still screen", stillJS)
		alice.screenshot(filepath.Join(dir, "how-end.png"))
		checkNoOverflow(t, carol, "the end of the round at 360 px")
		carol.WaitJS("the end of the round on carol's phone", `document.querySelector("#status").classList.contains("lost")`)
	})

	t.Run("a new round by keyboard", func(t *testing.T) {
		alice.Do("press Enter on New round", chromedp.Focus(chromedp.CSS("#new-round")), chromedp.KeyEvent("\r"))
		carol.WaitJS("round 2 on carol's phone", `document.querySelector("#round").textContent === "Round 2"`)
	})

	alice.Do("back to the lobby", chromedp.Click(chromedp.CSS("#leave")))
	alice.WaitJS("the room in the lobby", fmt.Sprintf(`!!document.querySelector('#rooms li[data-room=%s]')`, js(room)))
	alice.screenshot(filepath.Join(dir, "how-lobby.png"))
	carol.Do("carol back to the lobby", chromedp.Click(chromedp.CSS("#leave")))
	carol.WaitJS("carol's lobby", `!document.querySelector("#lobby").hidden && document.querySelector("#rooms").children.length > 0`)
	checkNoOverflow(t, carol, "the lobby at 360 px")
	if !carol.hidden("#keys-hint") {
		t.Error("the footer tells the lobby to type letters")
	}
}

// hidden reports whether the element sel matches takes no room on the page.
func (b *browser) hidden(sel string) bool {
	b.T.Helper()
	var h bool
	b.Eval(fmt.Sprintf(`(() => { const e = document.querySelector(%q); return !e || e.getClientRects().length === 0; })()`, sel), &h)
	return h
}

func (b *browser) attr(sel, name string) string {
	b.T.Helper()
	var v string
	b.Eval(fmt.Sprintf(`(document.querySelector(%q)||{getAttribute(){return ""}}).getAttribute(%q)||""`, sel, name), &v)
	return v
}

func (b *browser) location() string {
	b.T.Helper()
	var v string
	b.Eval(`location.href`, &v)
	return v
}
