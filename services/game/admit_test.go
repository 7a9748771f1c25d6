package game

import (
	"fmt"
	"maps"
	"testing"
	"time"
)

// leader proposes c as a leader does: only if the machine admits it.
func (h *harness) leader(c Command) (Result, error) {
	if err := h.m.Admit(c); err != nil {
		return Result{}, err
	}
	return h.apply(c), nil
}

// strangerToken is the token of the i-th client without a seat.
func strangerToken(i int) string { return fmt.Sprintf("stranger-%06d-abcdefghijkl", i) }

// TestAdmitKeepsAFloodToItsSender: one seat floods its room from many
// connections, then strangers flood it from many tokens. Once the room is
// under pressure the leader proposes neither flood further, so the room
// never fills (SessionCap) and another seat's guesses still go in; what is
// not admitted is refused as busy, unremembered, and admitted again once
// the flood has aged.
func TestAdmitKeepsAFloodToItsSender(t *testing.T) {
	h := newHarness(t)
	h.ok(withID(create("r", "apple"), "create"))
	h.ok(withID(as(join("r", "p1", "Ann"), annToken), "ann-join"))
	h.ok(withID(as(join("r", "p2", "Bob"), bobToken), "bob-join"))
	young := func() int { return h.m.rooms["r"].sessions.young(at0, roomRetention) }

	// Ann's flood: re-joins, each a request the room remembers.
	var sent int
	for {
		c := withID(as(join("r", "p1", "Ann"), annToken), fmt.Sprintf("ann-%d", sent))
		res, err := h.leader(c)
		if err != nil {
			checkRefused(t, Result{Err: err}, CodeBusy)
			break
		}
		if res.Err != nil {
			t.Fatalf("Ann's request %d: %v", sent, res.Err)
		}
		sent++
		if sent > SessionCap {
			t.Fatalf("Ann sent %d requests, all admitted", sent)
		}
	}
	if young() != PressureAt {
		t.Fatalf("Ann's flood stopped at %d young answers, want %d (PressureAt)", young(), PressureAt)
	}

	// Bob plays on, up to his share.
	for i := range SeatShare - 1 {
		if _, err := h.leader(withID(as(guess("r", "p2", string(rune('a'+i%26))), bobToken), fmt.Sprintf("bob-%d", i))); err != nil {
			t.Fatalf("Bob's guess %d during Ann's flood: %v", i, err)
		}
	}
	if _, err := h.leader(withID(as(guess("r", "p2", "z"), bobToken), "bob-over")); CodeOf(err) != CodeBusy {
		t.Fatalf("Bob's guess beyond his share: %v, want busy", err)
	}

	// Strangers: guesses as a player they have no seat for, each refused
	// and remembered, until those without a seat had their share.
	var strangers int
	for ; ; strangers++ {
		c := withID(as(guess("r", "p9", "e"), strangerToken(strangers)), "s")
		res, err := h.leader(c)
		if err != nil {
			checkRefused(t, Result{Err: err}, CodeBusy)
			break
		}
		if res.Err == nil {
			t.Fatalf("a stranger's guess was applied")
		}
		if strangers > SessionCap {
			t.Fatal("every stranger admitted")
		}
	}
	// The create's answer, in the empty scope, counts among them.
	if strangers != OutsiderShare-1 {
		t.Fatalf("%d strangers admitted under pressure, want %d (OutsiderShare less the create)", strangers, OutsiderShare-1)
	}
	if young() >= SessionCap {
		t.Fatalf("the room filled up: %d young answers", young())
	}

	// Unremembered requests and other rooms are not the flood's business.
	if _, err := h.leader(as(guess("r", "p1", "q"), annToken)); err != nil {
		t.Fatalf("a request without an id: %v", err)
	}
	if _, err := h.leader(withID(as(join("elsewhere", "p1", "Ann"), annToken), "x")); err != nil {
		t.Fatalf("a request to a room that does not exist: %v", err)
	}

	// Aged, the flood no longer presses: Ann is admitted again.
	later := at(withID(as(join("r", "p1", "Ann"), annToken), "ann-later"), SessionMinAge+time.Second)
	if _, err := h.leader(later); err != nil {
		t.Fatalf("Ann %v after her flood: %v", SessionMinAge, err)
	}
	checkScopeCounts(t, h.m)
}

// checkScopeCounts fails unless every window's count of answers per
// scope is what its answers say.
func checkScopeCounts(tb testing.TB, m *Machine) {
	tb.Helper()
	check := func(what string, got map[string]int, keys []string) {
		tb.Helper()
		want := map[string]int{}
		for _, k := range keys {
			want[k]++
		}
		if len(got) == 0 && len(want) == 0 {
			return
		}
		if !maps.Equal(got, want) {
			tb.Fatalf("%s counts %v answers per scope, but holds %v", what, got, want)
		}
	}
	for name, r := range m.rooms {
		var keys []string
		for _, e := range r.sessions.order {
			keys = append(keys, e.key.scope)
		}
		check("room "+name, r.sessions.scopes, keys)
	}
	var keys []string
	for _, e := range m.missing.order {
		keys = append(keys, e.key.scope)
	}
	check("the missing rooms' table", m.missing.scopes, keys)
}
