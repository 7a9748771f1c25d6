package e2e

import (
	"fmt"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestLiveLobby is issue 20's live lobby in real browsers on two relays:
// a room created in one page appears in the other page's lobby, and fills,
// without a reload or Refresh; Quick play then seats the second player in
// that room, the fullest open one.
func TestLiveLobby(t *testing.T) {
	needBrowser(t)
	sys := startSystem(t, 2)
	r1, r2 := sys.relays[0], sys.relays[1]
	room := uniqueRoom("live")
	line := func(want string) string {
		return fmt.Sprintf(`(() => { const li = document.querySelector('#rooms li[data-room=%s]'); return !!li && li.querySelector(".meta").textContent === %s; })()`, js(room), js(want))
	}

	bob := newBrowser(t, "bob", 1000, 800)
	bob.Do("open the lobby", chromedp.Navigate(r2.url+"/"))
	bob.WaitJS("connected", connectedJS)
	bob.enterLobby("Bob")
	// A reload would lose this mark.
	var marked bool
	bob.Eval(`window.noReload = true`, &marked)

	alice := newBrowser(t, "alice", 1000, 800)
	alice.Do("open the page", chromedp.Navigate(r1.url+"/"))
	alice.WaitJS("connected", connectedJS)
	alice.Do("set a nickname and create a room",
		chromedp.SendKeys(chromedp.CSS("#name"), "Alice"),
		chromedp.Click(chromedp.CSS("#name-btn")),
		chromedp.SendKeys(chromedp.CSS("#new-room"), room),
		chromedp.Click(chromedp.CSS("#create-btn")),
	)
	alice.WaitJS("in the game", inGameJS)

	bob.WaitJS("alice's room with alice in bob's lobby", line("round 1 · 1 player · playing"))
	var kept bool
	bob.Eval(`window.noReload === true`, &kept)
	if !kept {
		t.Fatal("bob's page was reloaded")
	}
	bob.screenshot(artifactsDir(t) + "/lobby-live.png")

	bob.Do("quick play", chromedp.Click(chromedp.CSS("#quick-play")))
	bob.WaitJS("bob in alice's room", inGameJS+` && document.querySelector("#room-name").textContent === `+js(room))
	alice.WaitJS("bob on alice's scoreboard", `document.querySelector("#scores").textContent.includes("Bob")`)

	// Alice, back in the lobby, sees the room as it is now.
	alice.Do("leave the room", chromedp.Click(chromedp.CSS("#leave")))
	alice.WaitJS("the room with two players in alice's lobby", line("round 1 · 2 players · playing"))
}
