package relay

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hangman/hangman/internal/harness"
	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
	"github.com/hangman/hangman/subjects"
)

// spectatorsIs matches the spectators frame of room with total n.
func spectatorsIs(room string, n int) func(frame) bool {
	return func(f frame) bool { return f.Room == room && f.Count == n }
}

func watchRoom(c *wsClient, room string) {
	c.t.Helper()
	c.send(map[string]any{"type": "watch", "room": room, "id": "watch-" + room})
	if f := c.answer("watch-" + room); f.Type != "ack" {
		c.t.Fatalf("watch %s: %s", room, f.raw)
	}
}

// TestSpectatorsCountedOverAllRelays: spectators on two relays are summed
// for everyone in the room, on both relays; a spectator who takes a seat,
// leaves or disconnects stops counting, and so do those of a relay that
// dies.
func TestSpectatorsCountedOverAllRelays(t *testing.T) {
	cl := startCluster(t)
	cl.createRoom(t, "den")
	cl.createRoom(t, "attic")
	a, b := startRelay(t, cl, nil), startRelay(t, cl, nil)
	harness.EventuallyTrue(t, waitFor, "the relays know each other", func() bool {
		return a.peers.count() == 1
	})

	player := mustDial(t, a.url)
	join(player, "den", "ann", "Ann")
	player.expect(typeSpectators, spectatorsIs("den", 0))

	onA := mustDial(t, a.url)
	watchRoom(onA, "den")
	onA.expect(typeSpectators, spectatorsIs("den", 1))
	player.expect(typeSpectators, spectatorsIs("den", 1))

	onB := mustDial(t, b.url)
	watchRoom(onB, "den")
	onB.expect(typeSpectators, spectatorsIs("den", 2))
	player.expect(typeSpectators, spectatorsIs("den", 2))
	onA.expect(typeSpectators, spectatorsIs("den", 2))

	// Another room's spectators are not this room's.
	elsewhere := mustDial(t, b.url)
	watchRoom(elsewhere, "attic")
	elsewhere.expect(typeSpectators, spectatorsIs("attic", 1))

	// A spectator who joins is a player.
	join(onA, "den", "bob", "Bob")
	player.expect(typeSpectators, spectatorsIs("den", 1))
	onB.expect(typeSpectators, spectatorsIs("den", 1))

	// One who leaves, or whose connection ends, stops counting.
	onB.send(map[string]any{"type": "leave", "id": "bye"})
	onB.answer("bye")
	player.expect(typeSpectators, spectatorsIs("den", 0))
	watchRoom(onB, "den")
	player.expect(typeSpectators, spectatorsIs("den", 1))
	_ = onB.conn.Close()
	player.expect(typeSpectators, spectatorsIs("den", 0))

	// A relay that dies takes its spectators out of the sum.
	onB2 := mustDial(t, b.url)
	watchRoom(onB2, "den")
	player.expect(typeSpectators, spectatorsIs("den", 1))
	_ = b.Close()
	player.expect(typeSpectators, spectatorsIs("den", 0))
}

// TestSpectatorCannotGuess: a connection that watches a room without a
// seat is refused a guess, even with a seated player's token, and even if
// it held a seat before it switched to watching; nothing changes.
func TestSpectatorCannotGuess(t *testing.T) {
	cl := startCluster(t)
	cl.createRoom(t, "den")
	tr := startRelay(t, cl, nil)
	player := mustDial(t, tr.url)
	join(player, "den", "ann", "Ann")
	before := roomSeq(t, cl, "den")

	spectator := mustDial(t, tr.url)
	watchRoom(spectator, "den")
	spectator.send(map[string]any{"type": "guess", "letter": "e", "id": "g1", "token": harness.TokenOf("ann")})
	if f := spectator.answer("g1"); f.Code != CodeNotJoined {
		t.Fatalf("a spectator's guess was answered %s, want %s", f.raw, CodeNotJoined)
	}

	// A player whose connection turns to watching is a spectator too.
	player.send(map[string]any{"type": "watch", "room": "den", "id": "w"})
	player.answer("w")
	player.guess("e", "g2")
	if f := player.answer("g2"); f.Code != CodeNotJoined {
		t.Fatalf("a guess after watching was answered %s, want %s", f.raw, CodeNotJoined)
	}
	if after := roomSeq(t, cl, "den"); after != before {
		t.Fatalf("the room moved from seq %d to %d on refused guesses", before, after)
	}
}

// roomSeq is the room's seq as the leader has it.
func roomSeq(t *testing.T, cl *cluster, room string) uint64 {
	t.Helper()
	res, err := cl.game.GetRoom(context.Background(), &hangmanv1.GetRoomRequest{Room: room, Consistency: hangmanv1.Consistency_CONSISTENCY_LEADER})
	if err != nil {
		t.Fatalf("get room %s: %v", room, err)
	}
	return res.GetState().GetSeq()
}

// TestHeartbeatSpectatorsValidated: a heartbeat's counts are taken only
// when well formed; a malformed set is ignored whole and the heartbeat
// still counts for discovery.
func TestHeartbeatSpectatorsValidated(t *testing.T) {
	many := make(map[string]int, maxSpectatedRooms+1)
	for i := range maxSpectatedRooms + 1 {
		many[fmt.Sprintf("room-%d", i)] = 1
	}
	for _, tc := range []struct {
		name   string
		counts map[string]int
		ok     bool
	}{
		{"none", nil, true},
		{"some", map[string]int{"den": 2, "attic": 1}, true},
		{"zero", map[string]int{"den": 0}, false},
		{"negative", map[string]int{"den": -3}, false},
		{"too many spectators", map[string]int{"den": maxSpectatorCount + 1}, false},
		{"bad room name", map[string]int{"Den Room": 1}, false},
		{"too many rooms", many, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := validSpectators(tc.counts); got != tc.ok {
				t.Fatalf("validSpectators = %v, want %v", got, tc.ok)
			}
		})
	}

	cl := startCluster(t)
	cl.createRoom(t, "den")
	tr := startRelay(t, cl, nil)
	player := mustDial(t, tr.url)
	join(player, "den", "ann", "Ann")
	player.expect(typeSpectators, spectatorsIs("den", 0))
	publish := func(name string, counts map[string]int) {
		b, _ := json.Marshal(heartbeat{Name: name, Sessions: 1, Spectators: counts, At: time.Now().UTC()})
		if err := cl.nc.Publish(subjects.RelayHeartbeat, b); err != nil {
			t.Fatal(err)
		}
	}
	publish("other", map[string]int{"den": 3, "Bad Name": 1})
	publish("other", map[string]int{"den": 2})
	f, before := player.expect(typeSpectators, nil)
	if f.Count != 2 {
		t.Fatalf("spectators %s after a malformed then a good heartbeat; before: %s", f.raw, describe(before))
	}
	for _, g := range before {
		if strings.Contains(string(g.raw), `"count":3`) {
			t.Fatalf("the malformed counts were taken: %s", g.raw)
		}
	}
}
