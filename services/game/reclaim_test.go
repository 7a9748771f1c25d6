package game

import (
	"fmt"
	"reflect"
	"testing"
	"time"
)

// at returns a command c stamped at at0 plus d.
func at(c Command, d time.Duration) Command {
	c.At = at0 + d.Milliseconds()
	return c
}

// now0 is the clock of the tests' leader: at0.
var now0 = time.UnixMilli(at0)

func TestReclaimable(t *testing.T) {
	policy := ReclaimPolicy{RoomIdle: 24 * time.Hour, RoomOverIdle: time.Hour, SeatIdle: time.Hour}
	h := newHarness(t)
	// busy: played a minute ago by alice; bob left two hours ago.
	h.ok(create("busy", "apple"))
	h.ok(as(join("busy", "bob", "Bob"), bobToken))
	h.ok(at(as(join("busy", "alice", "Alice"), annToken), 2*time.Hour-time.Minute))
	// paused: a round in play, nobody acted for two hours: kept, seats
	// and all.
	h.ok(create("paused", "apple"))
	h.ok(as(join("paused", "bob", "Bob"), bobToken))
	// over: the round was won two hours ago.
	h.ok(create("over", "ox"))
	h.ok(as(join("over", "bob", "Bob"), bobToken))
	h.ok(as(guess("over", "bob", "o"), bobToken))
	h.ok(as(guess("over", "bob", "x"), bobToken))
	// empty: created an hour and a half ago, nobody joined.
	h.ok(at(create("empty", "apple"), 30*time.Minute))
	// fresh: empty, created ten minutes ago.
	h.ok(at(create("fresh", "apple"), 110*time.Minute))

	now := now0.Add(2 * time.Hour)
	cut := func(d time.Duration) int64 { return now.Add(-d).UnixMilli() }
	want := []Command{
		{Kind: KindDeleteRoom, Room: "empty", At: now.UnixMilli(), Cutoff: cut(time.Hour)},
		{Kind: KindDeleteRoom, Room: "over", At: now.UnixMilli(), Cutoff: cut(time.Hour)},
		{Kind: KindReclaimSeat, Room: "busy", Player: "bob", At: now.UnixMilli(), Cutoff: cut(time.Hour)},
	}
	if got := h.m.Reclaimable(now, policy, 100); !reflect.DeepEqual(got, want) {
		t.Fatalf("Reclaimable:\n got %+v\nwant %+v", got, want)
	}
	// Rooms are visited in name order, up to the limit.
	if got := h.m.Reclaimable(now, policy, 2); !reflect.DeepEqual(got, []Command{want[0], want[2]}) {
		t.Fatalf("Reclaimable with a limit of 2:\n got %+v\nwant %+v", got, []Command{want[0], want[2]})
	}
	// A day later the paused room goes too; busy, paused for 22 hours,
	// keeps its seats.
	if got := h.m.Reclaimable(now0.Add(24*time.Hour+time.Second), policy, 100); len(got) != 4 || got[3].Room != "paused" || got[3].Kind != KindDeleteRoom {
		t.Fatalf("a day later: %+v", got)
	}
	// Zero durations reclaim nothing of their kind.
	if got := h.m.Reclaimable(now0.Add(48*time.Hour), ReclaimPolicy{}, 100); len(got) != 0 {
		t.Fatalf("with no policy: %+v", got)
	}
	if got := h.m.Reclaimable(now, ReclaimPolicy{SeatIdle: time.Hour}, 100); !reflect.DeepEqual(got, want[2:]) {
		t.Fatalf("seats only:\n got %+v\nwant %+v", got, want[2:])
	}
	// What Reclaimable proposes, the Machine applies.
	for _, c := range want {
		if res := h.ok(c); res.Event == nil {
			t.Fatalf("%+v: no event", c)
		}
	}
	if got := h.m.Reclaimable(now, policy, 100); len(got) != 0 {
		t.Fatalf("after reclaiming: %+v", got)
	}
}

func TestDeleteRoom(t *testing.T) {
	h := newHarness(t)
	h.ok(withID(create("r", "apple"), "c"))
	h.ok(as(join("r", "alice", "Alice"), annToken))
	h.ok(at(withID(as(guess("r", "alice", "p"), annToken), "g"), time.Minute))
	before, _ := h.m.Room("r")

	// A player acted after the cutoff: the room stays.
	h.refused(Command{Kind: KindDeleteRoom, Room: "r", At: at0 + 3600000, Cutoff: at0}, CodePrecondition)
	res := h.ok(Command{Kind: KindDeleteRoom, Room: "r", At: at0 + 3600000, Cutoff: at0 + 60000})
	want := State{Room: "r", Round: 1, Seq: h.index, Prev: before.Seq, Guessed: []string{}, Wrong: []string{}, MaxWrong: DefaultMaxWrong, Status: StatusDeleted, Players: []Player{}}
	if !reflect.DeepEqual(res.State, want) {
		t.Fatalf("deleted state\n got %+v\nwant %+v", res.State, want)
	}
	if ev := res.Event; ev == nil || ev.Kind != EventRoomDeleted || ev.Seq != h.index || ev.Prev != before.Seq || ev.Status != StatusDeleted {
		t.Fatalf("deletion event %+v", res.Event)
	}
	if s, ok := h.m.Room("r"); ok {
		t.Fatalf("deleted room still there: %+v", s)
	}
	if _, err := h.m.EventsSince("r", 0, 0); CodeOf(err) != CodeNotFound {
		t.Fatalf("events of a deleted room: %v", err)
	}
	h.refused(Command{Kind: KindDeleteRoom, Room: "r", At: at0 + 3600000, Cutoff: at0 + 60000}, CodeNotFound)
	// The name is free again, for anyone, and the new room remembers
	// nothing of the old.
	res = h.ok(withID(create("r", "melon"), "c"))
	if res.State.Prev != 0 || res.State.Seq != h.index || res.Duplicate {
		t.Fatalf("room created again: %+v", res)
	}
	h.ok(as(join("r", "alice", "Mallory"), forgedToken))
}

func TestReclaimSeat(t *testing.T) {
	h := newHarness(t)
	h.ok(create("r", "apple"))
	h.ok(as(join("r", "bob", "Bob"), bobToken))
	h.ok(as(guess("r", "bob", "p"), bobToken))
	h.ok(at(as(join("r", "alice", "Alice"), annToken), time.Hour))
	reclaim := Command{Kind: KindReclaimSeat, Room: "r", Player: "bob", At: at0 + 7200000, Cutoff: at0}

	// Bob came back before the command committed: he keeps his seat.
	h.ok(at(as(guess("r", "bob", "l"), bobToken), time.Second))
	h.refused(reclaim, CodePrecondition)
	reclaim.Cutoff = at0 + 1000
	res := h.ok(reclaim)
	if ev := res.Event; ev == nil || ev.Kind != EventSeatReclaimed || ev.Player != "bob" || scores(res.State) != "alice=0" {
		t.Fatalf("reclaimed: event %+v, state %+v", res.Event, res.State)
	}
	h.refused(reclaim, CodeNotFound)
	// Bob's id is free: whoever joins with it next takes it, with a fresh
	// score; his old token is no proof of anything any more.
	h.refused(as(guess("r", "bob", "e"), bobToken), CodePrecondition)
	if res := h.ok(as(join("r", "bob", "Bobby"), anotherToken)); scores(res.State) != "alice=0 bob=0" {
		t.Fatalf("rejoined: %+v", res.State)
	}
	h.refused(as(guess("r", "bob", "e"), bobToken), CodePermission)
}

// TestExhaustWaitRecover is issue 17's exhaustion at the state machine:
// idle rooms fill the cap and creation is refused; once they have been
// idle long enough, the leader's reclamations free the cap and creation
// works again. Likewise idle seats that fill a room.
func TestExhaustWaitRecover(t *testing.T) {
	policy := ReclaimPolicy{RoomIdle: 24 * time.Hour, RoomOverIdle: time.Hour, SeatIdle: time.Hour}
	const rooms, players = 3, 2
	h := newHarness(t)
	for i := range rooms {
		c := create(fmt.Sprintf("r%d", i), "apple")
		c.Limit = rooms
		h.ok(c)
	}
	later := create("later", "apple")
	later.Limit = rooms
	h.refused(later, CodePrecondition)
	for _, c := range h.m.Reclaimable(now0.Add(59*time.Minute), policy, 100) {
		t.Fatalf("reclaimed before the hour: %+v", c)
	}
	for _, c := range h.m.Reclaimable(now0.Add(time.Hour), policy, 100) {
		h.ok(c)
	}
	h.ok(later)

	// A room whose seats idle players fill.
	seats := func(id, token string) Command {
		c := as(join("later", id, id), token)
		c.Limit = players
		return c
	}
	h.ok(seats("alice", annToken))
	h.ok(seats("idle", forgedToken))
	h.refused(seats("bob", bobToken), CodePrecondition)
	h.ok(at(as(guess("later", "alice", "p"), annToken), 2*time.Hour))
	for _, c := range h.m.Reclaimable(now0.Add(2*time.Hour), policy, 100) {
		h.ok(c)
	}
	h.ok(at(seats("bob", bobToken), 2*time.Hour))
}
