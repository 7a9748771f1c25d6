package relay

import (
	"log/slog"
	"math"
	"sync"
	"time"

	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
)

// roomSink is where every room's feed sends: the sessions' outboxes (the
// relay's sender; a test's recorder), and the counters and log its
// decisions feed; and how long an event waits for its state
// (defaultEventWait). The rooms of a relay share one.
type roomSink struct {
	queue     func(c *client, it outItem)
	stats     *counters
	log       *slog.Logger
	eventWait time.Duration
}

// roomFeed is what a watched room's sessions have been sent, and the rules
// for what they are sent next: each state once and in seq order, a change's
// event in the same frame as its state, the finished rounds apart
// (history.go), and a new watcher the latest of each. It reads no NATS and
// calls no node: its room (rooms.go) hands it what arrived and fetches
// when it reports a gap, so a table of message orders tests it alone.
//
// Every session of the room has been sent frame (the state at sent) and
// nothing older after it: all sends happen under mu, in seq order, so no
// session ever needs a seq of its own.
type roomFeed struct {
	name string
	sink *roomSink
	// mu guards the feed and the rest of its room (rooms.go).
	mu       sync.Mutex
	sessions map[*client]struct{}
	cursor          // how far the room has been brought
	frame    []byte // latest state frame sent to the sessions (the state at sent), shared by all of them
	sent     uint64 // seq of frame
	// event is the room's newest event while its state has not come: the
	// nodes publish a change's event and then its state, which the feed
	// sends as one frame (offerStateLocked). eventTimer sends it alone
	// should the state not come within the sink's eventWait.
	event      *roomMsg
	eventTimer *time.Timer
	// advanced, made by a waiter (awaitSent), is closed when a newer state
	// goes to the sessions.
	advanced chan struct{}
	// history is how far the sessions have been brought in the room's
	// finished rounds (history.go).
	history historyCursor
}

func newRoomFeed(name string, sink *roomSink) roomFeed {
	return roomFeed{name: name, sink: sink, sessions: make(map[*client]struct{})}
}

// seqs is the part of a state, event or history payload the relay reads.
type seqs struct {
	Seq  uint64 `json:"seq"`
	Prev uint64 `json:"prev"`
	// HistorySeq is a state's: the seq of the history it goes with.
	HistorySeq uint64 `json:"historySeq"`
}

// cursor is how far a room's sessions have been brought: the seq of the
// latest state sent and of the last event forwarded. Its two methods are
// the relay's whole seq logic (what is news, what is a duplicate, what
// shows a missed change); they only decide, and the feed's offer methods
// act on the decision.
type cursor struct {
	seq      uint64 // seq of the latest state sent
	eventSeq uint64 // seq of the last event forwarded
}

// offerState reports whether a state at seq is news, and if so moves the
// cursor to it. A state at or below the latest one (a duplicate, or an
// older state overtaken by a newer one) is not.
func (c *cursor) offerState(seq uint64) (news bool) {
	if seq <= c.seq {
		return false
	}
	c.seq = seq
	return true
}

// offerEvent reports whether an event is news, forwarded once (moving the
// cursor), and whether it shows that something was missed: it is newer
// than the latest state and follows a seq the relay never saw (prev is not
// that state's seq). The room's state must then be fetched.
func (c *cursor) offerEvent(s seqs) (news, gap bool) {
	if s.Seq <= c.eventSeq {
		return false, false
	}
	c.eventSeq = s.Seq
	return true, s.Seq > c.seq && s.Prev != c.seq
}

// addLocked adds c to the sessions and sends it the latest state and
// history, if the feed has them.
func (f *roomFeed) addLocked(c *client) {
	f.sessions[c] = struct{}{}
	if f.frame != nil {
		f.sink.queue(c, outItem{kind: outState, key: f.name, seq: f.sent, frame: f.frame})
	}
	if h := f.history.frame; h != nil {
		f.sink.queue(c, historyItem(f.name, h))
	}
}

// defaultEventWait is how long an event waits for its state before it is
// sent alone. A node publishes the two back to back, so this only matters
// when the state was lost (the next event then shows a gap, and the state
// is fetched), or when the state lags by more on a starved machine. A
// state never waits: the nodes publish it after its event.
const defaultEventWait = 50 * time.Millisecond

// offerStateLocked makes frame (the state at s.Seq) the room's latest and
// sends it to every session of the room, unless the room already has it or
// newer.
func (f *roomFeed) offerStateLocked(s seqs, frame []byte) {
	seq := s.Seq
	if !f.offerState(seq) {
		f.sink.stats.dupStates.Add(1)
		return
	}
	defer f.wantHistoryLocked(s.HistorySeq)
	it := outItem{kind: outState, key: f.name, seq: seq, frame: frame}
	if ev := f.event; ev != nil && ev.Seq == seq {
		f.event = nil
		f.eventTimer.Stop()
		it.frame, it.event = withEvent(frame, ev.data), ev.frame
	} else {
		f.flushEventLocked(seq)
	}
	f.sendStateLocked(it, frame)
}

// offerReadLocked offers a state read over gRPC, with the history the
// read carries.
func (f *roomFeed) offerReadLocked(st *hangmanv1.RoomState) {
	f.offerStateLocked(seqs{Seq: st.GetSeq(), HistorySeq: st.GetHistorySeq()}, stateFrame(st))
	f.offerReadHistoryLocked(st)
}

// offerEventLocked forwards an event once, and reports whether it shows
// that something was missed (cursor.offerEvent). The caller then fetches
// the room's state. An event ahead of the room's state waits for its state
// (offerStateLocked), to go in the same frame: one frame per change per
// session. One whose state went out already goes alone.
func (f *roomFeed) offerEventLocked(m roomMsg) (gap bool) {
	news, gap := f.offerEvent(m.seqs)
	if !news {
		f.sink.stats.dupEvents.Add(1)
		return false
	}
	if gap {
		f.sink.stats.gaps.Add(1)
		f.sink.log.Debug("seq gap, fetching state", "room", f.name, "seq", m.Seq, "prev", m.Prev)
	}
	f.flushEventLocked(m.Seq)
	if m.Seq <= f.sent {
		f.fanOutLocked(outItem{kind: outEvent, key: f.name, seq: m.Seq, frame: m.frame})
		return gap
	}
	f.event = &m
	if f.eventTimer == nil {
		f.eventTimer = time.AfterFunc(f.sink.eventWait, func() {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.flushEventLocked(math.MaxUint64)
		})
	} else {
		f.eventTimer.Reset(f.sink.eventWait)
	}
	return gap
}

// flushEventLocked sends the waiting event, if any, alone, if it is older
// than seq (math.MaxUint64: whatever its seq).
func (f *roomFeed) flushEventLocked(seq uint64) {
	ev := f.event
	if ev == nil || ev.Seq >= seq && seq != math.MaxUint64 {
		return
	}
	f.event = nil
	f.eventTimer.Stop()
	f.fanOutLocked(outItem{kind: outEvent, key: f.name, seq: ev.Seq, frame: ev.frame})
}

// sendStateLocked sends a state to every session and makes plain, its
// frame without an event (old news to a new watcher), the one a new
// watcher gets, unless a newer state went out already.
func (f *roomFeed) sendStateLocked(it outItem, plain []byte) {
	if it.seq <= f.sent {
		return
	}
	f.sent, f.frame = it.seq, plain
	if f.advanced != nil {
		close(f.advanced)
		f.advanced = nil
	}
	f.fanOutLocked(it)
}

// fanOutLocked queues one frame, built once, for every session of the
// room.
func (f *roomFeed) fanOutLocked(it outItem) {
	for c := range f.sessions {
		f.sink.queue(c, it)
	}
}

// awaitSent waits up to d, or until done is closed, for the sessions to be
// sent a state at seq or newer, and reports whether they were.
func (f *roomFeed) awaitSent(seq uint64, d time.Duration, done <-chan struct{}) bool {
	var timeout <-chan time.Time
	for {
		f.mu.Lock()
		if f.sent >= seq {
			f.mu.Unlock()
			return true
		}
		if f.advanced == nil {
			f.advanced = make(chan struct{})
		}
		ch := f.advanced
		f.mu.Unlock()
		if timeout == nil {
			t := time.NewTimer(d)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-ch:
		case <-timeout:
			return false
		case <-done:
			return false
		}
	}
}

// eventKey joins an event to its state's frame.
const eventKey = `,"event":`

// withEvent returns the state frame {"type":"state","data":<state>} with
// the event of the same change added: {…,"event":<event>}.
func withEvent(stateFrame, event []byte) []byte {
	b := make([]byte, 0, len(stateFrame)+len(eventKey)+len(event))
	b = append(b, stateFrame[:len(stateFrame)-1]...)
	b = append(b, eventKey...)
	b = append(b, event...)
	return append(b, '}')
}
