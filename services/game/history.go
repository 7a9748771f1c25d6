package game

import (
	"fmt"
	"slices"
)

// Bounds of a room's event history.
const (
	// EventHistory is how many of its latest events a room keeps, so that a
	// consumer that missed some (its NATS server died, its connection
	// dropped) can fetch them with EventsSince instead of the whole state.
	//
	// 256 events is several rounds of a room (a round ends within 26
	// guesses; a room has at most MaxPlayers joins): at a lively human
	// pace of a few events a second, a gap of a minute or more, far longer
	// than a NATS reconnect or a leader failover takes. The cost is
	// bounded: an Event is 160 bytes plus its player id, kept in a buffer
	// of historyCap, about 55 KB for a full room; MaxRooms full rooms
	// would hold about 550 MB and write about 400 MB of snapshot (an
	// event is about 160 bytes of JSON; measured: 1,000 full rooms, 56 MB
	// of heap and 40 MB of snapshot). A realistic cluster has far fewer
	// rooms with a full history.
	EventHistory = 256
	// RecentEvents is how many of its latest events a room has republished
	// by a new leader, with its state: enough for a consumer that only
	// missed the last moments before the failover, without republishing
	// EventHistory events of every room at once. Older ones are there for
	// EventsSince.
	RecentEvents = 32
	// MaxEventsPage bounds the events of one EventsSince answer: the whole
	// history in two answers, each well under NATS's 1 MiB payload and
	// gRPC's message limit (an event is at most about 450 bytes of JSON).
	MaxEventsPage = 128
)

// historyCap is the capacity of a full history's buffer: the slack past
// EventHistory lets the window slide for EventHistory/4 events before it is
// moved back to the front, so adding an event costs O(1) amortised and
// allocates nothing once the buffer is full.
const historyCap = EventHistory + EventHistory/4

// history is a room's latest events, oldest first: buf[lo:], at most
// EventHistory of them. Kept contiguous (not a ring) so that snapshots and
// answers slice it without copying or reordering. Each event's Prev is the
// Seq of the one before it, and the last one's Seq is the room's seq:
// commands that change a room always make an event, and every event is
// kept.
type history struct {
	buf []Event
	lo  int
}

// events returns the retained events, oldest first. The slice is the
// history's own: callers copy what leaves the Machine.
func (h *history) events() []Event { return h.buf[h.lo:] }

// add appends ev, forgetting the oldest event beyond EventHistory.
func (h *history) add(ev Event) {
	if len(h.buf)-h.lo == EventHistory {
		h.buf[h.lo] = Event{} // let its strings go
		h.lo++
	}
	if len(h.buf) == cap(h.buf) {
		live := h.buf[h.lo:]
		if cap(h.buf) < historyCap {
			// Still growing, or restored into a buffer without slack.
			grown := make([]Event, len(live), min(max(2*len(live), 8), historyCap))
			copy(grown, live)
			h.buf = grown
		} else {
			n := copy(h.buf, live)
			clear(h.buf[n:])
			h.buf = h.buf[:n]
		}
		h.lo = 0
	}
	h.buf = append(h.buf, ev)
}

// remember keeps ev in the room's history.
func (r *room) remember(ev Event) { r.history.add(ev) }

// restoreHistory checks events read from a snapshot against the
// invariants history keeps (EventsSince relies on them) and makes them
// room r's history. A snapshot may hold fewer events than EventHistory
// (one written when the bound was RecentEvents); the history grows from
// there.
func (r *room) restoreHistory(events []Event) error {
	if len(events) > EventHistory {
		return fmt.Errorf("%d events exceed %d", len(events), EventHistory)
	}
	for i, ev := range events {
		switch {
		case ev.Room != r.name:
			return fmt.Errorf("event %d belongs to room %q", i, clip(ev.Room))
		case ev.Prev >= ev.Seq:
			return fmt.Errorf("event %d: prev %d is not before seq %d", i, ev.Prev, ev.Seq)
		case i > 0 && ev.Prev != events[i-1].Seq:
			return fmt.Errorf("event %d: prev %d does not follow seq %d", i, ev.Prev, events[i-1].Seq)
		}
	}
	if n := len(events); n > 0 && (events[n-1].Seq != r.seq || events[n-1].Prev != r.prev) {
		last := events[n-1]
		return fmt.Errorf("the last event (seq %d, prev %d) is not the room's last change (seq %d, prev %d)", last.Seq, last.Prev, r.seq, r.prev)
	}
	r.history = history{buf: slices.Clip(events)}
	return nil
}

// RecentEvents returns the last RecentEvents events of a room, oldest
// first: what a new leader republishes.
func (m *Machine) RecentEvents(name string) []Event {
	r := m.rooms[name]
	if r == nil {
		return nil
	}
	evs := r.history.events()
	return slices.Clone(evs[max(len(evs)-RecentEvents, 0):])
}

// EventPage is one answer of EventsSince.
type EventPage struct {
	// Events are the room's events after the asked seq, oldest first, at
	// most the asked limit. They are copies, the Machine's own are not
	// shared.
	Events []Event
	// Seq is the room's latest seq on this Machine. A replica answers up
	// to what it has applied, so Seq may be below a seq the caller has
	// already seen elsewhere; asking again later, or another replica,
	// gets the rest.
	Seq uint64
	// More is true when the answer stopped at the limit: ask again with
	// since set to the last event's Seq.
	More bool
}

// TooOldError says that the events after Since are no longer all
// retained: the room's history starts later. The consumer must fetch the
// room's state instead, then follow the events after its seq.
type TooOldError struct {
	Room  string
	Since uint64
	// Oldest is the smallest since the history can answer: the seq just
	// before its oldest event.
	Oldest uint64
}

// Error says what happened and what to do.
func (e *TooOldError) Error() string {
	return fmt.Sprintf("events of room %q after seq %d are no longer kept (the history of %d events starts after seq %d); fetch the room's state instead",
		e.Room, e.Since, EventHistory, e.Oldest)
}

// EventsSince returns the events of room name with a seq after since,
// oldest first, at most limit of them (limit < 1 or above MaxEventsPage
// means MaxEventsPage). It is how a consumer that noticed a gap (an
// event's prev is not the last seq it saw) fetches what it missed.
//
// Answers:
//   - since 0 on a room whose history still starts at its creation: every
//     event; since equal to the room's seq: no events;
//   - since past the room's seq: no events either, not an error: a
//     replica that lags the one whose event the caller saw knows nothing
//     newer yet, and the answer's Seq says how far it has got;
//   - since older than the history: a *TooOldError;
//   - an invalid room name: an *Error with CodeInvalid; an unknown room:
//     an *Error with CodeNotFound.
//
// Events never change once committed, so any replica's answer is true,
// though perhaps not the latest.
func (m *Machine) EventsSince(name string, since uint64, limit int) (EventPage, error) {
	if !ValidRoom(name) {
		return EventPage{}, roomNameError(name)
	}
	r := m.rooms[name]
	if r == nil {
		return EventPage{}, errorf(CodeNotFound, "room %q does not exist", name)
	}
	page := EventPage{Seq: r.seq}
	if since >= r.seq {
		return page, nil
	}
	evs := r.history.events()
	// The first event after since; there is one, since the last event's
	// Seq is the room's seq.
	i, _ := slices.BinarySearchFunc(evs, since+1, func(ev Event, seq uint64) int {
		switch {
		case ev.Seq < seq:
			return -1
		case ev.Seq > seq:
			return 1
		}
		return 0
	})
	// Events are chained by Prev, so only before the oldest can some be
	// missing: there, nothing is lost if the oldest directly follows since.
	if i == len(evs) || i == 0 && evs[0].Prev > since {
		oldest := r.seq
		if len(evs) > 0 {
			oldest = evs[0].Prev
		}
		return EventPage{}, &TooOldError{Room: name, Since: since, Oldest: oldest}
	}
	if limit < 1 || limit > MaxEventsPage {
		limit = MaxEventsPage
	}
	end := min(i+limit, len(evs))
	page.Events = slices.Clone(evs[i:end])
	page.More = end < len(evs)
	return page, nil
}
