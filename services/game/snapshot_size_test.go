package game

import (
	"fmt"
	"strings"
	"testing"
)

// TestMaxSnapshotSizeHoldsTheLargestState builds the largest room the
// rules allow (longest names, every player with a token, a full session
// window of the longest refusals each in a scope of its own, all young
// enough to be kept up to SessionCap, a full event
// history) and the largest table of refusals
// of missing rooms, and checks that MaxRooms such rooms and that table fit
// in MaxSnapshotSize: Restore must never refuse a state the cluster can
// reach.
func TestMaxSnapshotSizeHoldsTheLargestState(t *testing.T) {
	room := strings.Repeat("r", MaxRoomLen)
	id := func(prefix string, i int) string { return fmt.Sprintf("%s%0*d", prefix, MaxPlayerIDLen-len(prefix), i) }
	// '<' and '>' are the characters JSON spells longest (\u003c).
	names := [2]string{strings.Repeat("<", MaxNameLen), strings.Repeat(">", MaxNameLen)}

	h := newHarness(t)
	h.ok(create(room, strings.Repeat("q", MaxWordLen)))
	for i := range MaxPlayers {
		h.ok(as(join(room, id("p", i), names[0]), id("t", i)))
	}
	// Answers stamped with the longest time, all young: SessionCap of them.
	longest := func(c Command) Command { c.At = maxAt; return c }
	for i := range SessionCap {
		checkRefused(t, h.apply(longest(withID(as(guess(room, id("x", i), "a"), id("t", i)), id("q", i)))), CodePrecondition)
	}
	for i := range EventHistory {
		h.ok(as(join(room, id("p", i%MaxPlayers), names[(i/MaxPlayers+1)%2]), id("t", i%MaxPlayers)))
	}
	roomSize := len(roomsBytes(t, h.m))

	m := New()
	for i := range MissingRoomCap {
		checkRefused(t, m.ApplyCommand(uint64(i+1), longest(withID(as(guess(room, id("x", i), "a"), id("t", i)), id("q", i)))), CodeNotFound)
	}
	missingSize := len(snapshotBytes(t, m))

	total := int64(MaxRooms)*int64(roomSize) + int64(missingSize)
	t.Logf("largest room %d bytes, missing rooms' refusals %d bytes: at most %d bytes of %d", roomSize, missingSize, total, int64(MaxSnapshotSize))
	if total > MaxSnapshotSize {
		t.Fatalf("the largest state takes %d bytes, more than MaxSnapshotSize (%d)", total, int64(MaxSnapshotSize))
	}
}
