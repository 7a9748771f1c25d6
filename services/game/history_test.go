package game

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// historyMachine returns a Machine with two interleaved rooms, so neither
// room's seqs are consecutive: "small" with its whole history (5 events),
// and "big" with more events than EventHistory. It also returns the events
// each room's commands produced, as Apply reported them.
func historyMachine(t *testing.T) (*Machine, map[string][]Event) {
	t.Helper()
	h := newHarness(t)
	seen := map[string][]Event{}
	ok := func(c Command) {
		t.Helper()
		if res := h.ok(c); res.Event != nil {
			seen[c.Room] = append(seen[c.Room], *res.Event)
		}
	}
	ok(create("small", "apple"))
	ok(create("big", "banana"))
	ok(join("small", "p1", "Ann"))
	ok(join("big", "p1", "Ann"))
	ok(guess("small", "p1", "e"))
	h.refused(guess("small", "p1", "e!"), CodeInvalid) // an index without an event
	ok(guess("small", "p1", "z"))
	ok(join("small", "p2", "Bob"))
	// Renames are events too: enough of them to push the first events of
	// "big" out of its history.
	for i := range EventHistory + 40 {
		ok(join("big", "p1", fmt.Sprintf("Ann %d", i)))
	}
	return h.m, seen
}

// seqs lists the seqs of events, for readable failures.
func seqs(evs []Event) []uint64 {
	out := make([]uint64, len(evs))
	for i, ev := range evs {
		out[i] = ev.Seq
	}
	return out
}

func TestEventsSince(t *testing.T) {
	m, seen := historyMachine(t)
	small, big := seen["small"], seen["big"]
	if len(small) != 5 || len(big) != EventHistory+42 {
		t.Fatalf("setup: %d and %d events", len(small), len(big))
	}
	smallSeq, bigSeq := small[4].Seq, big[len(big)-1].Seq
	kept := big[len(big)-EventHistory:] // what "big" still holds
	oldest := kept[0].Prev
	tests := []struct {
		name  string
		room  string
		since uint64
		limit int
		want  []Event
		more  bool
		seq   uint64
		code  Code   // a refusal with this code
		old   uint64 // a *TooOldError with this Oldest (0: none expected)
	}{
		{name: "since 0, whole history kept", room: "small", since: 0, want: small, seq: smallSeq},
		{name: "since an event in the middle", room: "small", since: small[1].Seq, want: small[2:], seq: smallSeq},
		{name: "since a seq between two of the room's", room: "small", since: small[2].Seq + 1, want: small[3:], seq: smallSeq},
		{name: "since the first event", room: "small", since: small[0].Seq, want: small[1:], seq: smallSeq},
		{name: "since the last seq", room: "small", since: smallSeq, seq: smallSeq},
		{name: "since beyond the last seq", room: "small", since: smallSeq + 100, seq: smallSeq},
		{name: "limit stops early", room: "small", since: 0, limit: 2, want: small[:2], more: true, seq: smallSeq},
		{name: "limit exactly the rest", room: "small", since: small[1].Seq, limit: 3, want: small[2:], seq: smallSeq},
		{name: "negative limit is the page size", room: "small", since: 0, limit: -1, want: small, seq: smallSeq},
		{name: "since 0, history truncated", room: "big", since: 0, old: oldest},
		{name: "since just before the history", room: "big", since: oldest - 1, old: oldest},
		{name: "since exactly where the history starts", room: "big", since: oldest, want: kept[:MaxEventsPage], more: true, seq: bigSeq},
		{name: "since in a truncated history", room: "big", since: kept[200].Seq, want: kept[201:], seq: bigSeq},
		{name: "limit above the page size", room: "big", since: oldest, limit: MaxEventsPage + 1, want: kept[:MaxEventsPage], more: true, seq: bigSeq},
		{name: "unknown room", room: "nope", code: CodeNotFound},
		{name: "invalid room name", room: "No.pe", code: CodeInvalid},
		{name: "empty room name", room: "", code: CodeInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page, err := m.EventsSince(tt.room, tt.since, tt.limit)
			var tooOld *TooOldError
			switch {
			case tt.code != 0:
				if CodeOf(err) != tt.code {
					t.Fatalf("error %v, want code %v", err, tt.code)
				}
				return
			case tt.old != 0:
				if !errors.As(err, &tooOld) {
					t.Fatalf("error %v (page %v), want a *TooOldError", err, seqs(page.Events))
				}
				want := &TooOldError{Room: tt.room, Since: tt.since, Oldest: tt.old}
				if !reflect.DeepEqual(tooOld, want) {
					t.Fatalf("error %+v, want %+v", tooOld, want)
				}
				if !strings.Contains(err.Error(), "fetch the room's state") {
					t.Fatalf("error %q does not say what to do", err)
				}
				return
			case err != nil:
				t.Fatalf("error %v", err)
			}
			if !reflect.DeepEqual(page.Events, tt.want) {
				t.Fatalf("events %v, want %v", seqs(page.Events), seqs(tt.want))
			}
			if page.More != tt.more || page.Seq != tt.seq {
				t.Fatalf("more %v seq %d, want %v %d", page.More, page.Seq, tt.more, tt.seq)
			}
		})
	}
}

// TestEventsSincePagesThroughHistory follows the cursor an answer gives
// (the last event's seq) and gets every kept event once, in order, as
// applying produced it.
func TestEventsSincePagesThroughHistory(t *testing.T) {
	m, seen := historyMachine(t)
	kept := seen["big"][len(seen["big"])-EventHistory:]
	var got []Event
	since, answers := kept[0].Prev, 0
	for {
		page, err := m.EventsSince("big", since, 100)
		if err != nil {
			t.Fatal(err)
		}
		answers++
		got = append(got, page.Events...)
		if !page.More {
			break
		}
		since = page.Events[len(page.Events)-1].Seq
	}
	if answers != 3 {
		t.Fatalf("%d answers for %d events of at most 100", answers, EventHistory)
	}
	if !reflect.DeepEqual(got, kept) {
		t.Fatalf("paged events %v, want %v", seqs(got), seqs(kept))
	}
}

func TestEventsSinceCopies(t *testing.T) {
	m, _ := historyMachine(t)
	page, err := m.EventsSince("small", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	page.Events[0].Kind = "changed"
	if again, _ := m.EventsSince("small", 0, 0); again.Events[0].Kind != EventRoomCreated {
		t.Fatal("EventsSince shares its events with the machine")
	}
}

func TestRecentEventsAreTheLatestOfTheHistory(t *testing.T) {
	m, seen := historyMachine(t)
	big := seen["big"]
	if got, want := m.RecentEvents("big"), big[len(big)-RecentEvents:]; !reflect.DeepEqual(got, want) {
		t.Fatalf("RecentEvents %v, want %v", seqs(got), seqs(want))
	}
	if got := m.RecentEvents("small"); !reflect.DeepEqual(got, seen["small"]) {
		t.Fatalf("RecentEvents %v, want all of %v", seqs(got), seqs(seen["small"]))
	}
}

// TestHistoryBounded: however many events a room has made, it keeps the
// last EventHistory, chained, in a buffer that stops growing; adding to a
// full history allocates nothing.
func TestHistoryBounded(t *testing.T) {
	var h history
	var prev uint64
	add := func() {
		seq := prev + 3
		h.add(Event{Seq: seq, Prev: prev, Room: "r", Kind: EventGuess})
		prev = seq
	}
	for n := 1; n <= 5*EventHistory; n++ {
		add()
		evs := h.events()
		if want := min(n, EventHistory); len(evs) != want {
			t.Fatalf("after %d events: %d kept, want %d", n, len(evs), want)
		}
		if evs[len(evs)-1].Seq != prev {
			t.Fatalf("after %d events: last seq %d, want %d", n, evs[len(evs)-1].Seq, prev)
		}
		for i := 1; i < len(evs); i++ {
			if evs[i].Prev != evs[i-1].Seq {
				t.Fatalf("after %d events: event %d does not follow the one before", n, i)
			}
		}
		if cap(h.buf) > historyCap {
			t.Fatalf("after %d events: buffer of %d", n, cap(h.buf))
		}
	}
	if allocs := testing.AllocsPerRun(1000, add); allocs != 0 {
		t.Fatalf("adding to a full history allocates %v times", allocs)
	}
}

// TestRestoreHistoryOfTheOldBound: snapshots written when a room kept only
// RecentEvents events restore, and their history grows to EventHistory
// from there; the history survives a round trip.
func TestRestoreHistoryOfTheOldBound(t *testing.T) {
	h := newHarness(t)
	h.ok(create("den", "ox"))
	for i := range EventHistory + 10 {
		h.ok(join("den", "p1", fmt.Sprintf("Ann %d", i)))
	}
	f := decodeSnapshot(t, snapshotBytes(t, h.m))
	f.Rooms[0].Events = f.Rooms[0].Events[len(f.Rooms[0].Events)-RecentEvents:]
	old := mustJSON(t, f)

	m := restored(t, []byte(old))
	if _, err := m.EventsSince("den", 0, 0); !errors.As(err, new(*TooOldError)) {
		t.Fatalf("since 0 on a restored history of %d: %v", RecentEvents, err)
	}
	oldest := f.Rooms[0].Events[0].Prev
	if page, err := m.EventsSince("den", oldest, 0); err != nil || len(page.Events) != RecentEvents {
		t.Fatalf("restored history: %d events, %v", len(page.Events), err)
	}
	h.m = m
	for i := range EventHistory {
		h.ok(join("den", "p1", fmt.Sprintf("Bob %d", i)))
		page, err := m.EventsSince("den", 0, 0)
		var tooOld *TooOldError
		if !errors.As(err, &tooOld) {
			t.Fatalf("since 0: %v %v", seqs(page.Events), err)
		}
		evs := m.rooms["den"].history.events()
		if want := min(RecentEvents+i+1, EventHistory); len(evs) != want {
			t.Fatalf("after %d more events: %d kept, want %d", i+1, len(evs), want)
		}
	}
	if again := restored(t, snapshotBytes(t, m)); !reflect.DeepEqual(again.rooms["den"].history.events(), m.rooms["den"].history.events()) {
		t.Fatal("history differs after a round trip")
	}
}
