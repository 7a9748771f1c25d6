package relay

import (
	"fmt"
	"testing"

	"github.com/hangman/hangman/subjects"
)

// TestLobbyPushesNewerLinesToWatchers publishes lobby lines on NATS as a
// leader does, repeats and stale ones included (a new leader's republish,
// a late message): the browsers that watch the lobby get each room's
// newer lines, each once, in lobby frames; a browser that does not watch,
// or stopped, gets none, and lines that are not a node's are dropped.
func TestLobbyPushesNewerLinesToWatchers(t *testing.T) {
	cl := startCluster(t)
	tr := startRelay(t, cl, nil)
	watcher := mustDial(t, tr.url)
	bystander := mustDial(t, tr.url)
	watcher.send(`{"type":"lobby","watch":true,"id":"l1"}`)
	watcher.expect("ack", func(f frame) bool { return f.Op == "lobby" && f.ID == "l1" })

	publish := func(lines ...string) {
		t.Helper()
		for _, l := range lines {
			if err := cl.nc.Publish(subjects.Lobby, []byte(l)); err != nil {
				t.Fatal(err)
			}
		}
		if err := cl.nc.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	line := func(room string, players int, status string, seq uint64) string {
		return fmt.Sprintf(`{"room":%q,"players":%d,"round":1,"status":%q,"seq":%d}`, room, players, status, seq)
	}
	// got collects the lines the watcher received until want holds.
	var got []roomSummary
	until := func(c *wsClient, what string, want func(roomSummary) bool) {
		t.Helper()
		c.expectFrame(what, func(f frame) bool {
			if f.Type != "lobby" {
				return false
			}
			got = append(got, f.Rooms...)
			for _, r := range f.Rooms {
				if want(r) {
					return true
				}
			}
			return false
		})
	}

	publish(line("r1", 0, "playing", 5), line("r1", 0, "playing", 5), line("r1", 0, "playing", 3),
		`{"room":"<b>bad</b>","players":1,"round":1,"status":"playing","seq":9}`, `not json`, line("r2", 0, "playing", 6),
		line("r1", 1, "playing", 7))
	until(watcher, "r1 with a player", func(r roomSummary) bool { return r.Room == "r1" && r.Seq == 7 })
	publish(line("r2", 0, "deleted", 8), line("r2", 0, "playing", 6))
	until(watcher, "r2 deleted", func(r roomSummary) bool { return r.Room == "r2" && r.Status == "deleted" })

	seen := map[string]bool{}
	for _, r := range got {
		key := fmt.Sprint(r.Room, "@", r.Seq)
		if seen[key] || r.Room == "<b>bad</b>" || r.Seq == 3 {
			t.Fatalf("lines %+v: %s is a repeat, stale or not a node's", got, key)
		}
		seen[key] = true
	}
	if !seen["r2@6"] || !seen["r1@7"] || got[len(got)-1].Players != 0 {
		t.Fatalf("lines %+v", got)
	}

	// Another watcher gets what comes next; the first, having stopped,
	// does not, nor does the bystander.
	watcher.send(`{"type":"lobby","watch":false,"id":"l2"}`)
	watcher.expect("ack", func(f frame) bool { return f.Op == "lobby" && f.ID == "l2" })
	other := mustDial(t, tr.url)
	other.send(`{"type":"lobby","id":"l3"}`)
	other.expect("ack", func(f frame) bool { return f.Op == "lobby" && f.ID == "l3" })
	publish(line("r3", 2, "won", 9), line("r2", 0, "playing", 6))
	got = nil
	until(other, "r3", func(r roomSummary) bool { return r.Room == "r3" })
	if len(got) != 1 {
		t.Fatalf("the new watcher got %+v, want r3 alone", got)
	}
	for _, c := range []*wsClient{watcher, bystander} {
		c.send(`{"type":"ping","id":"p"}`)
		_, before := c.expect("pong", nil)
		for _, f := range before {
			if f.Type == "lobby" {
				t.Fatalf("a browser not watching the lobby got %s", f.raw)
			}
		}
	}
}
