package relay

import (
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
	"github.com/hangman/hangman/subjects"
	"github.com/hangman/hangman/wire"
)

// room is one watched room: its sessions, its NATS subscription and the
// latest state seen. Every session of a room has been sent frame (the state
// at sent) and nothing older after it: all sends happen under mu, in seq
// order, so no session ever needs a seq of its own.
type room struct {
	name string

	mu       sync.Mutex
	sessions map[*client]struct{}
	sub      *nats.Subscription
	// subscribed is closed once the NATS server has sub (or confirming it
	// failed): until then, what is published for the room is not ours.
	subscribed chan struct{}
	cursor            // how far the room has been brought
	frame      []byte // latest state frame sent to the sessions (the state at sent), shared by all of them
	sent       uint64 // seq of frame
	fetching   bool
	again      bool // a fetch was asked for while one ran: run once more
	gone       bool // the last session left; a new watcher makes a new room
	// absent says the last read found no such room. The relay then waits
	// for the room to be created (it is subscribed to the room, and the
	// creation is published) instead of reading it every quietAfter: it
	// reads it again only at recheckAt, on the absentRechecks schedule
	// (rechecks counts those done), in case the creation's messages were
	// lost between NATS servers. A zero recheckAt means never.
	absent    bool
	rechecks  int
	recheckAt time.Time
	// held are the room's NATS messages not yet delivered because no node
	// has vouched for their seq (confirm.go), in seq order.
	held []roomMsg
	// spectators is the total of spectators last pushed to the sessions,
	// once spectatorsSent (spectators.go).
	spectators     int
	spectatorsSent bool
	// event is the room's newest event while its state has not come: the
	// nodes publish a change's event and then its state, which the relay
	// sends as one frame (offerNATSStateLocked). eventTimer sends it alone
	// should the state not come within eventWait.
	event      *roomMsg
	eventTimer *time.Timer
	// advanced, made by a waiter (awaitSent), is closed when a newer state
	// goes to the sessions.
	advanced chan struct{}
	// The room's finished rounds travel apart from its states (see
	// history.go): history is the latest history frame sent (historySeq
	// its seq), wantHistory the historySeq the latest state sent names,
	// historyMissed when a state first named one the relay lacks, and
	// pending the newest history NATS brought ahead of the state naming it.
	history       []byte
	historySeq    uint64
	wantHistory   uint64
	historyMissed time.Time
	pending       *roomHistory
	// heard is when a NATS message of the room was last delivered, or a
	// fetch last completed (Unix nanoseconds), for the anti-entropy sweep.
	heard atomic.Int64
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
// shows a missed change); they only decide, and the Relay's offer methods
// act on the decision, so a table of message orders can test the rules
// without NATS.
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

// roomMsg is one state or event of a room as NATS brought it.
type roomMsg struct {
	seqs
	event bool   // an event; a state otherwise
	data  []byte // the payload as NATS brought it
	frame []byte // the frame for the sessions
	// at is when it arrived; refuted says a read that began after it
	// arrived found the cluster had not reached its seq (confirm.go).
	at      time.Time
	refuted bool
}

// watch adds c to the sessions of the named room, subscribing to the room
// on NATS if c is its first watcher, and sends c the cached state at once.
// A cold room is fetched over gRPC. It returns once the NATS server has the
// room's subscription, so every event published after that (the caller's
// own join, the guesses after its ack) reaches c.
func (r *Relay) watch(c *client, name string) {
	r.roomsMu.Lock()
	rm := r.rooms[name]
	fresh := rm == nil
	if fresh {
		rm = &room{name: name, sessions: make(map[*client]struct{}), subscribed: make(chan struct{})}
		sub, err := r.nc.Subscribe(subjects.Room(name), func(m *nats.Msg) { r.onRoomMsg(rm, m) })
		if err != nil {
			r.log.Error("subscribe to room", "room", name, "err", err)
		}
		rm.sub = sub
		r.rooms[name] = rm
	}
	rm.mu.Lock()
	rm.sessions[c] = struct{}{}
	if rm.frame != nil {
		r.queue(c, outItem{kind: outState, key: name, seq: rm.sent, frame: rm.frame})
	}
	if rm.history != nil {
		r.queue(c, historyItem(name, rm.history))
	}
	rm.mu.Unlock()
	r.roomsMu.Unlock()
	if !fresh {
		// The first watcher is confirming the subscription (for at
		// most a second).
		<-rm.subscribed
		return
	}
	r.log.Debug("watching room", "room", name)
	r.fetch(rm)
	// Subscribe only queues the SUB on the connection: until the server
	// has processed it, events published for the room are dropped there,
	// and the fetch above restores the state but not the events. A
	// PING/PONG round trip after the SUB confirms it. While NATS is away
	// there is nothing to wait for: the reconnect re-subscribes and
	// re-fetches every room.
	if r.nc.IsConnected() {
		if err := r.nc.FlushTimeout(time.Second); err != nil {
			r.log.Warn("confirming room subscription", "room", name, "err", err)
		}
	}
	close(rm.subscribed)
}

// unwatch removes c from the named room and drops the room (and its NATS
// subscription) when c was its last session.
func (r *Relay) unwatch(c *client, name string) {
	r.roomsMu.Lock()
	defer r.roomsMu.Unlock()
	rm := r.rooms[name]
	if rm == nil {
		return
	}
	rm.mu.Lock()
	delete(rm.sessions, c)
	empty := len(rm.sessions) == 0
	if empty {
		rm.gone = true
	}
	rm.mu.Unlock()
	if empty {
		delete(r.rooms, name)
		if rm.sub != nil {
			_ = rm.sub.Unsubscribe()
		}
		r.log.Debug("stopped watching room", "room", name)
	}
}

// onRoomMsg handles one NATS message of a watched room: it joins the
// room's held messages in seq order, and every held message whose seq a
// node has vouched for (all of them when NATS is trusted) is delivered.
func (r *Relay) onRoomMsg(rm *room, m *nats.Msg) {
	kind := m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]
	if kind == "history" {
		r.onHistoryMsg(rm, m)
		return
	}
	if kind != "state" && kind != "event" {
		return
	}
	msg := roomMsg{event: kind == "event", at: time.Now(), data: m.Data}
	if err := json.Unmarshal(m.Data, &msg.seqs); err != nil || msg.Seq == 0 {
		r.log.Debug("dropping malformed room message", "subject", m.Subject, "err", err)
		return
	}
	msg.frame = wrapPayload(kind, m.Data)
	rm.mu.Lock()
	if !rm.holdLocked(msg) {
		r.stats.unconfirmed.Add(1)
	}
	gap := r.releaseLocked(rm)
	waiting := len(rm.held) > 0
	rm.mu.Unlock()
	if waiting {
		r.awaitConfirm(rm)
	}
	if gap {
		r.fetch(rm)
	}
}

// maxHeld bounds the messages a room holds while their seqs wait for a
// node's word; past it the highest seq goes, the likeliest forgery.
const maxHeld = 64

// holdLocked inserts m among the held messages, after those of the same
// seq (a state is published before its event). It reports false when the
// room held too many and one was dropped.
func (rm *room) holdLocked(m roomMsg) bool {
	i := sort.Search(len(rm.held), func(i int) bool { return rm.held[i].Seq > m.Seq })
	rm.held = slices.Insert(rm.held, i, m)
	if len(rm.held) > maxHeld {
		rm.held = rm.held[:maxHeld]
		return false
	}
	return true
}

// releaseLocked delivers, in seq order, the held messages whose seq a node
// has vouched for, and drops those a read refuted longer than
// confirmPatience ago. It reports whether an event showed a missed change.
func (r *Relay) releaseLocked(rm *room) (gap bool) {
	limit := r.vouched()
	n := 0
	for ; n < len(rm.held) && rm.held[n].Seq <= limit; n++ {
		m := rm.held[n]
		if m.event {
			gap = r.offerEventLocked(rm, m) || gap
		} else {
			r.offerStateLocked(rm, m.seqs, m.frame)
		}
	}
	if n > 0 {
		rm.heard.Store(time.Now().UnixNano())
		rm.absent = false
	}
	rm.held = slices.Delete(rm.held, 0, n)
	if len(rm.held) > 0 {
		kept := rm.held[:0]
		for _, m := range rm.held {
			if m.refuted && time.Since(m.at) >= confirmPatience {
				r.stats.unconfirmed.Add(1)
				r.log.Debug("dropping a room message no node confirms (a forgery, or NATS without users)", "room", rm.name, "seq", m.Seq, "confirmed", limit)
				continue
			}
			kept = append(kept, m)
		}
		rm.held = kept
	}
	if rm.gone {
		rm.held = nil
	}
	return gap
}

// eventWait is how long an event waits for its state before it is sent
// alone. A node publishes the two back to back, so this only matters when
// the state was lost (the next event then shows a gap, and the state is
// fetched). A state never waits: the nodes publish it after its event.
const eventWait = 50 * time.Millisecond

// offerStateLocked makes frame (the state at s.Seq) the room's latest and
// sends it to every session of the room, unless the room already has it or
// newer.
func (r *Relay) offerStateLocked(rm *room, s seqs, frame []byte) {
	seq := s.Seq
	if !rm.offerState(seq) {
		r.stats.dupStates.Add(1)
		return
	}
	defer r.wantHistoryLocked(rm, s.HistorySeq)
	it := outItem{kind: outState, key: rm.name, seq: seq, frame: frame}
	if ev := rm.event; ev != nil && ev.Seq == seq {
		rm.event = nil
		rm.eventTimer.Stop()
		it.frame, it.event = withEvent(frame, ev.data), ev.frame
	} else {
		r.flushEventLocked(rm, seq)
	}
	r.sendStateLocked(rm, it, frame)
}

// offerEventLocked forwards an event once, and reports whether it shows
// that something was missed (cursor.offerEvent). The caller then fetches
// the room's state. An event ahead of the room's state waits for its state
// (offerStateLocked), to go in the same frame: one frame per change per
// session. One whose state went out already goes alone.
func (r *Relay) offerEventLocked(rm *room, m roomMsg) (gap bool) {
	news, gap := rm.offerEvent(m.seqs)
	if !news {
		r.stats.dupEvents.Add(1)
		return false
	}
	if gap {
		r.stats.gaps.Add(1)
		r.log.Debug("seq gap, fetching state", "room", rm.name, "seq", m.Seq, "prev", m.Prev)
	}
	r.flushEventLocked(rm, m.Seq)
	if m.Seq <= rm.sent {
		r.fanOutLocked(rm, outItem{kind: outEvent, key: rm.name, seq: m.Seq, frame: m.frame})
		return gap
	}
	rm.event = &m
	if rm.eventTimer == nil {
		rm.eventTimer = time.AfterFunc(eventWait, func() {
			rm.mu.Lock()
			defer rm.mu.Unlock()
			r.flushEventLocked(rm, math.MaxUint64)
		})
	} else {
		rm.eventTimer.Reset(eventWait)
	}
	return gap
}

// flushEventLocked sends the waiting event, if any, alone, if it is older
// than seq (math.MaxUint64: whatever its seq).
func (r *Relay) flushEventLocked(rm *room, seq uint64) {
	ev := rm.event
	if ev == nil || ev.Seq >= seq && seq != math.MaxUint64 {
		return
	}
	rm.event = nil
	rm.eventTimer.Stop()
	r.fanOutLocked(rm, outItem{kind: outEvent, key: rm.name, seq: ev.Seq, frame: ev.frame})
}

// sendStateLocked sends a state to every session and makes plain, its
// frame without an event (old news to a new watcher), the one a new
// watcher gets, unless a newer state went out already.
func (r *Relay) sendStateLocked(rm *room, it outItem, plain []byte) {
	if it.seq <= rm.sent {
		return
	}
	rm.sent, rm.frame = it.seq, plain
	if rm.advanced != nil {
		close(rm.advanced)
		rm.advanced = nil
	}
	r.fanOutLocked(rm, it)
}

// fanOutLocked queues one frame, built once, for every session of the
// room.
func (r *Relay) fanOutLocked(rm *room, it outItem) {
	for c := range rm.sessions {
		r.queue(c, it)
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

// protoWait is how long a command's answer waits for NATS to bring the
// state it reports (see offerProto).
const protoWait = 20 * time.Millisecond

// offerProto offers a state that came back from a gRPC call to the named
// room, if the room is watched here. A node said so: its seq is vouched
// for.
//
// The same change is on its way over NATS, as an event and a state that
// leave as one frame (offerStateLocked). Offered at once, this state
// would usually overtake them and every watcher would get two frames, so
// it waits up to protoWait for NATS to bring the room to its seq, and is
// offered only if NATS did not: either way the state is queued before the
// caller's ack.
func (r *Relay) offerProto(st *hangmanv1.RoomState) {
	if st == nil {
		return
	}
	seq := st.GetSeq()
	r.vouch(seq)
	r.roomsMu.Lock()
	rm := r.rooms[st.GetRoom()]
	r.roomsMu.Unlock()
	if rm == nil {
		return
	}
	// Messages held for want of a node's word may now have it.
	rm.mu.Lock()
	gap := r.releaseLocked(rm)
	rm.mu.Unlock()
	if gap {
		r.fetch(rm)
	}
	if r.nc.IsConnected() && r.awaitSent(rm, seq, protoWait) {
		r.stats.dupStates.Add(1)
		return
	}
	frame := stateFrame(st)
	rm.mu.Lock()
	r.offerStateLocked(rm, seqs{Seq: seq, HistorySeq: st.GetHistorySeq()}, frame)
	gap = r.releaseLocked(rm)
	rm.mu.Unlock()
	if gap {
		r.fetch(rm)
	}
}

// awaitSent waits up to d for the room's sessions to be sent a state at
// seq or newer, and reports whether they were.
func (r *Relay) awaitSent(rm *room, seq uint64, d time.Duration) bool {
	var timeout <-chan time.Time
	for {
		rm.mu.Lock()
		if rm.sent >= seq {
			rm.mu.Unlock()
			return true
		}
		if rm.advanced == nil {
			rm.advanced = make(chan struct{})
		}
		ch := rm.advanced
		rm.mu.Unlock()
		if timeout == nil {
			t := time.NewTimer(d)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-ch:
		case <-timeout:
			return false
		case <-r.ctx.Done():
			return false
		}
	}
}

// fetch reads the room's state over gRPC (the leader's view, without a
// quorum round: seqs keep it from going backwards) and offers it, retrying
// while the room is watched. One fetch per room runs at a time, however
// many sessions watch it.
func (r *Relay) fetch(rm *room) {
	rm.mu.Lock()
	if rm.gone {
		rm.mu.Unlock()
		return
	}
	if rm.fetching {
		// The running fetch may have read before what made us ask.
		rm.again = true
		rm.mu.Unlock()
		return
	}
	rm.fetching = true
	rm.mu.Unlock()
	r.goBG(func() {
		for {
			r.fetchOnce(rm)
			rm.mu.Lock()
			again := rm.again && !rm.gone
			rm.again = false
			rm.fetching = again
			rm.mu.Unlock()
			if !again {
				return
			}
		}
	})
}

// absentRechecks is when a room found absent is read again, each pause
// after the one before (then never: its creation comes over NATS); each
// pause is stretched or shrunk by up to a quarter, so the rooms of many
// watchers who came at once are not read again at once.
var absentRechecks = []time.Duration{5 * time.Second, 20 * time.Second, 80 * time.Second, 320 * time.Second}

// fetchOnce reads and offers the room's state, retrying until it succeeds,
// the room does not exist, nobody watches it any more, or the relay stops.
func (r *Relay) fetchOnce(rm *room) {
	// Make sure the server has our subscription before reading, so
	// that nothing committed after the read can be missed.
	_ = r.nc.FlushTimeout(time.Second)
	for attempt := 0; ; attempt++ {
		st, err := r.readRoom(rm.name)
		if err == nil {
			rm.heard.Store(time.Now().UnixNano())
			r.stats.fetches.Add(1)
			rm.mu.Lock()
			rm.absent, rm.rechecks = false, 0
			r.offerStateLocked(rm, seqs{Seq: st.GetSeq(), HistorySeq: st.GetHistorySeq()}, stateFrame(st))
			r.offerReadHistoryLocked(rm, st)
			gap := r.releaseLocked(rm)
			rm.mu.Unlock()
			if gap {
				r.fetch(rm)
			}
			return
		}
		switch status.Code(err) {
		case codes.NotFound:
			rm.mu.Lock()
			rm.absent, rm.recheckAt = true, time.Time{}
			if rm.rechecks < len(absentRechecks) {
				d := absentRechecks[rm.rechecks]
				rm.recheckAt = time.Now().Add(d*3/4 + rand.N(d/2))
				rm.rechecks++
			}
			rm.mu.Unlock()
			return
		case codes.InvalidArgument:
			return
		}
		r.log.Warn("fetching room state", "room", rm.name, "err", err)
		select {
		case <-r.ctx.Done():
			return
		case <-time.After(time.Duration(min(attempt+1, 10)) * 200 * time.Millisecond):
		}
		rm.mu.Lock()
		gone := rm.gone
		rm.mu.Unlock()
		if gone {
			return
		}
	}
}

// readRoom reads a room's state as the leader has it: no quorum round, so
// it costs the cluster one map lookup. The leader's applied index is
// vouched for.
func (r *Relay) readRoom(name string) (*hangmanv1.RoomState, error) {
	ctx, cancel := context.WithTimeout(r.ctx, r.cfg.RequestTimeout)
	defer cancel()
	var res *hangmanv1.GetRoomResponse
	_, err := r.nodes.call(ctx, "get_room", func(ctx context.Context, c hangmanv1.GameServiceClient) (err error) {
		res, err = c.GetRoom(ctx, &hangmanv1.GetRoomRequest{Room: name, Consistency: hangmanv1.Consistency_CONSISTENCY_LEADER})
		return err
	})
	if err != nil {
		return nil, err
	}
	r.vouch(max(res.GetAppliedIndex(), res.GetState().GetSeq()))
	return res.GetState(), nil
}

// refetchAll re-reads every watched room, after the NATS connection came
// back and may have missed messages.
func (r *Relay) refetchAll() {
	r.roomsMu.Lock()
	rooms := make([]*room, 0, len(r.rooms))
	for _, rm := range r.rooms {
		rooms = append(rooms, rm)
	}
	r.roomsMu.Unlock()
	for _, rm := range rooms {
		r.fetch(rm)
	}
}

// stateFrame encodes a state read over gRPC exactly as the nodes publish it
// on NATS (game.State, without its history, which goes in its own frame),
// so the page sees one shape whatever the source.
func stateFrame(p *hangmanv1.RoomState) []byte {
	s := wire.StateFromProto(p)
	s.History = nil
	return wrapPayload("state", s.AppendJSON(nil))
}

// quietAfter is how long a watched room may go without a message before
// the relay reads its state over gRPC.
const quietAfter = time.Second

// antiEntropy bounds how stale a watched room can be, whatever happened on
// NATS: every room that has been quiet for quietAfter is read over gRPC and
// offered like any state (seqs keep it from going backwards). A room whose
// messages flow is never read; an idle room costs one leader read (no
// quorum round) per second per relay; a room that does not exist is read
// only on the absentRechecks schedule. Without it a relay whose server
// missed a room's last changes (a NATS route lost and back, an interest
// not yet propagated) would show them only at the room's next change.
func (r *Relay) antiEntropy() {
	tick := time.NewTicker(quietAfter)
	defer tick.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-tick.C:
		}
		r.stats.sweeps.Add(1)
		now := time.Now()
		cutoff := now.Add(-quietAfter).UnixNano()
		r.roomsMu.Lock()
		var quiet []*room
		for _, rm := range r.rooms {
			rm.mu.Lock()
			due := rm.heard.Load() < cutoff || rm.missedHistoryLocked(now)
			if rm.absent {
				due = !rm.recheckAt.IsZero() && !now.Before(rm.recheckAt)
			}
			rm.mu.Unlock()
			if due {
				quiet = append(quiet, rm)
			}
		}
		r.roomsMu.Unlock()
		for _, rm := range quiet {
			r.fetch(rm)
		}
	}
}
