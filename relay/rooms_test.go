package relay

import (
	"fmt"
	"strings"
	"testing"
)

// msg is a state ("s") or an event ("e") of a room as a test writes it.
type msg struct {
	kind      string
	seq, prev uint64
}

func (m msg) String() string { return fmt.Sprintf("%s%d/%d", m.kind, m.seq, m.prev) }

func state(seq uint64) msg       { return msg{"s", seq, 0} }
func event(seq, prev uint64) msg { return msg{"e", seq, prev} }

// TestCursorDecidesEachMessage plays orders in which a room's states and
// events reach a relay through the cursor, the relay's seq rules: each
// message is sent on ("send"), dropped as a duplicate or overtaken
// ("drop"), or sent on and shown to follow a change the relay missed, so
// the room's state must be fetched ("gap").
func TestCursorDecidesEachMessage(t *testing.T) {
	tests := []struct {
		name string
		msgs []msg
		want string // one decision per message
	}{
		{"in order", []msg{state(1), event(1, 0), state(4), event(4, 1), state(9), event(9, 4)},
			"send send send send send send"},
		{"the creation's event first in a cold room", []msg{event(1, 0), state(1)},
			"send send"},
		{"a duplicate state", []msg{state(4), state(4)},
			"send drop"},
		{"a duplicate event", []msg{state(4), event(4, 1), event(4, 1)},
			"send send drop"},
		{"an older state after a newer one", []msg{state(9), state(4)},
			"send drop"},
		{"an older event after a newer one", []msg{state(9), event(9, 4), event(4, 1)},
			"send send drop"},
		{"an event whose prev was missed", []msg{state(4), event(4, 1), event(9, 7)},
			"send send gap"},
		{"an event after its own state was missed", []msg{state(4), event(9, 4)},
			"send send"},
		{"an event of a cold room that follows others", []msg{event(9, 7)},
			"gap"},
		{"the fetched state after a gap, then on in order", []msg{state(4), event(9, 7), state(9), event(12, 9)},
			"send gap send send"},
		{"a fetch that read an older state changes nothing", []msg{state(9), event(9, 4), state(4), event(12, 9)},
			"send send drop send"},
		{"an event older than the latest state is sent, with no fetch", []msg{state(12), event(9, 7)},
			"send send"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c cursor
			got := make([]string, len(tc.msgs))
			for i, m := range tc.msgs {
				if m.kind == "s" {
					got[i] = decision(c.offerState(m.seq), false)
				} else {
					got[i] = decision(c.offerEvent(seqs{Seq: m.seq, Prev: m.prev}))
				}
			}
			if g := strings.Join(got, " "); g != tc.want {
				t.Errorf("messages %v: got %s, want %s", tc.msgs, g, tc.want)
			}
		})
	}
}

func decision(news, gap bool) string {
	switch {
	case gap:
		return "gap"
	case news:
		return "send"
	default:
		return "drop"
	}
}

// TestHeldMessagesKeepSeqOrder checks holdLocked: whatever order a room's
// messages arrive in while they wait for a node's word, they are held in
// seq order, a state before the event of its seq when it came first, and
// past maxHeld the highest seq goes.
func TestHeldMessagesKeepSeqOrder(t *testing.T) {
	many := make([]msg, maxHeld+1)
	for i := range many {
		many[i] = state(uint64(maxHeld + 1 - i)) // newest first
	}
	var manyWant []string
	for i := range maxHeld {
		manyWant = append(manyWant, state(uint64(i+1)).String())
	}
	tests := []struct {
		name    string
		arrived []msg
		want    string
		dropped int
	}{
		{"in order", []msg{state(1), event(1, 0), state(4), event(4, 1)}, "s1/0 e1/0 s4/0 e4/1", 0},
		{"newer first", []msg{state(4), event(4, 1), state(1), event(1, 0)}, "s1/0 e1/0 s4/0 e4/1", 0},
		{"a duplicate sits after its twin", []msg{event(4, 1), state(2), event(4, 1)}, "s2/0 e4/1 e4/1", 0},
		{"over the bound, the highest goes", many, strings.Join(manyWant, " "), 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var rm room
			dropped := 0
			for _, m := range tc.arrived {
				if !rm.holdLocked(roomMsg{seqs: seqs{Seq: m.seq, Prev: m.prev}, event: m.kind == "e"}) {
					dropped++
				}
			}
			got := make([]string, len(rm.held))
			for i, h := range rm.held {
				kind := "s"
				if h.event {
					kind = "e"
				}
				got[i] = msg{kind, h.Seq, h.Prev}.String()
			}
			if g := strings.Join(got, " "); g != tc.want || dropped != tc.dropped {
				t.Errorf("held %s (%d dropped), want %s (%d dropped)", g, dropped, tc.want, tc.dropped)
			}
		})
	}
}
