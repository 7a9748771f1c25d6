package relay

import (
	"context"
	"encoding/json"
	"log/slog"
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

// roomSet is the rooms this relay's sessions watch: one NATS
// subscription and one feed per room (feed.go), made for the first
// watcher and dropped with the last. It keeps them fresh by reading a
// room over gRPC when it is new, when an event shows a missed change,
// when NATS comes back, and when it has been quiet (antiEntropy).
type roomSet struct {
	nc    *nats.Conn
	nodes *nodes
	// confirm says which seqs the rooms may adopt (confirm.go).
	confirm        *confirmer
	sink           *roomSink
	ctx            context.Context // ends when the relay stops
	spawn          func(func())    // runs a goroutine the relay waits for
	requestTimeout time.Duration   // Config.RequestTimeout
	stats          *counters
	log            *slog.Logger

	mu     sync.Mutex
	byName map[string]*room
}

// get returns the named room if it is watched, or nil.
func (rs *roomSet) get(name string) *room {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.byName[name]
}

// count is how many rooms are watched.
func (rs *roomSet) count() int {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return len(rs.byName)
}

// room is one watched room: its feed (what its sessions have been sent,
// feed.go), its NATS subscription, what is done to keep it fresh, and the
// messages that wait for a node's word. The feed's mu guards all of it.
type room struct {
	roomFeed
	sub *nats.Subscription
	// subscribed is closed once the NATS server has sub (or confirming it
	// failed): until then, what is published for the room is not ours.
	subscribed chan struct{}
	gone       bool // the last session left; a new watcher makes a new room
	// fresh says when the room is to be read over gRPC.
	fresh freshness
	// held are the room's NATS messages not yet delivered because no node
	// has vouched for their seq (confirm.go), in seq order.
	held []roomMsg
	// spectators is the total of spectators last pushed to the sessions,
	// once spectatorsSent (spectators.go).
	spectators     int
	spectatorsSent bool
}

// freshness decides when a room is read over gRPC: one fetch at a time
// (and once more if asked for while it ran), after a quiet spell, and
// on a schedule of rechecks while the room does not exist. It only
// decides; roomSet reads. Guarded by its room's mu but for heard.
type freshness struct {
	fetching bool
	again    bool // a fetch was asked for while one ran: run once more
	// absent says the last read found no such room. The relay then waits
	// for the room to be created (it is subscribed to the room, and the
	// creation is published) instead of reading it every quietAfter: it
	// reads it again only at recheckAt, on the absentRechecks schedule
	// (rechecks counts those done), in case the creation's messages were
	// lost between NATS servers. A zero recheckAt means never.
	absent    bool
	rechecks  int
	recheckAt time.Time
	// heard is when a NATS message of the room was last delivered, or a
	// fetch last completed (Unix nanoseconds), for the anti-entropy sweep.
	heard atomic.Int64
}

// absentRechecks is when a room found absent is read again, each pause
// after the one before (then never: its creation comes over NATS); each
// pause is stretched or shrunk by up to a quarter, so the rooms of many
// watchers who came at once are not read again at once.
var absentRechecks = []time.Duration{5 * time.Second, 20 * time.Second, 80 * time.Second, 320 * time.Second}

// start reports whether a fetch is to start now: not while one runs,
// which then runs once more, since it may have read before what made us
// ask.
func (fr *freshness) start() bool {
	if fr.fetching {
		fr.again = true
		return false
	}
	fr.fetching = true
	return true
}

// more reports, as a fetch ends, whether it is to run once more: it was
// asked for again, and the room is still watched (not gone).
func (fr *freshness) more(gone bool) bool {
	again := fr.again && !gone
	fr.again = false
	fr.fetching = again
	return again
}

// heardNow notes that the room's messages flow, or a read completed.
func (fr *freshness) heardNow() { fr.heard.Store(time.Now().UnixNano()) }

// found notes that a read found the room.
func (fr *freshness) found() { fr.absent, fr.rechecks = false, 0 }

// missing notes that a read found no such room, and when to read it
// again, if ever.
func (fr *freshness) missing(now time.Time) {
	fr.absent, fr.recheckAt = true, time.Time{}
	if fr.rechecks < len(absentRechecks) {
		d := absentRechecks[fr.rechecks]
		fr.recheckAt = now.Add(d*3/4 + rand.N(d/2))
		fr.rechecks++
	}
}

// due reports whether the sweep is to read the room at now: it has been
// quiet for quietAfter or misses a history (missedHistory), or, absent,
// its recheck has come.
func (fr *freshness) due(now time.Time, missedHistory bool) bool {
	if fr.absent {
		return !fr.recheckAt.IsZero() && !now.Before(fr.recheckAt)
	}
	return fr.heard.Load() < now.Add(-quietAfter).UnixNano() || missedHistory
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
func (rs *roomSet) watch(c *client, name string) {
	rs.mu.Lock()
	rm := rs.byName[name]
	fresh := rm == nil
	if fresh {
		rm = &room{roomFeed: newRoomFeed(name, rs.sink), subscribed: make(chan struct{})}
		sub, err := rs.nc.Subscribe(subjects.Room(name), func(m *nats.Msg) { rs.onMsg(rm, m) })
		if err != nil {
			rs.log.Error("subscribe to room", "room", name, "err", err)
		}
		rm.sub = sub
		rs.byName[name] = rm
	}
	rm.mu.Lock()
	rm.addLocked(c)
	rm.mu.Unlock()
	rs.mu.Unlock()
	if !fresh {
		// The first watcher is confirming the subscription (for at
		// most a second).
		<-rm.subscribed
		return
	}
	rs.log.Debug("watching room", "room", name)
	rs.fetch(rm)
	// Subscribe only queues the SUB on the connection: until the server
	// has processed it, events published for the room are dropped there,
	// and the fetch above restores the state but not the events. A
	// PING/PONG round trip after the SUB confirms it. While NATS is away
	// there is nothing to wait for: the reconnect re-subscribes and
	// re-fetches every room.
	if rs.nc.IsConnected() {
		if err := rs.nc.FlushTimeout(time.Second); err != nil {
			rs.log.Warn("confirming room subscription", "room", name, "err", err)
		}
	}
	close(rm.subscribed)
}

// unwatch removes c from the named room and drops the room (and its NATS
// subscription) when c was its last session.
func (rs *roomSet) unwatch(c *client, name string) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rm := rs.byName[name]
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
		delete(rs.byName, name)
		if rm.sub != nil {
			_ = rm.sub.Unsubscribe()
		}
		rs.log.Debug("stopped watching room", "room", name)
	}
}

// onMsg handles one NATS message of a watched room: it joins the
// room's held messages in seq order, and every held message whose seq a
// node has vouched for (all of them when NATS is trusted) is delivered.
func (rs *roomSet) onMsg(rm *room, m *nats.Msg) {
	kind := m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]
	if kind == "history" {
		rs.onHistoryMsg(rm, m)
		return
	}
	if kind != "state" && kind != "event" {
		return
	}
	msg := roomMsg{event: kind == "event", at: time.Now(), data: m.Data}
	if err := json.Unmarshal(m.Data, &msg.seqs); err != nil || msg.Seq == 0 {
		rs.log.Debug("dropping malformed room message", "subject", m.Subject, "err", err)
		return
	}
	msg.frame = wrapPayload(kind, m.Data)
	rm.mu.Lock()
	if !rm.holdLocked(msg) {
		rs.stats.unconfirmed.Add(1)
	}
	gap := rm.releaseLocked(rs.confirm.vouched())
	waiting := len(rm.held) > 0
	rm.mu.Unlock()
	if waiting {
		rs.confirm.await(rm)
	}
	if gap {
		rs.fetch(rm)
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

// releaseLocked delivers, in seq order, the held messages whose seq is at
// most limit (what a node has vouched for), and drops those a read refuted longer than
// confirmPatience ago. It reports whether an event showed a missed change.
func (rm *room) releaseLocked(limit uint64) (gap bool) {
	n := 0
	for ; n < len(rm.held) && rm.held[n].Seq <= limit; n++ {
		m := rm.held[n]
		if m.event {
			gap = rm.offerEventLocked(m) || gap
		} else {
			rm.offerStateLocked(m.seqs, m.frame)
		}
	}
	if n > 0 {
		rm.fresh.heardNow()
		rm.fresh.absent = false
	}
	rm.held = slices.Delete(rm.held, 0, n)
	if len(rm.held) > 0 {
		kept := rm.held[:0]
		for _, m := range rm.held {
			if m.refuted && time.Since(m.at) >= confirmPatience {
				rm.sink.stats.unconfirmed.Add(1)
				rm.sink.log.Debug("dropping a room message no node confirms (a forgery, or NATS without users)", "room", rm.name, "seq", m.Seq, "confirmed", limit)
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
func (rs *roomSet) offerProto(st *hangmanv1.RoomState) {
	if st == nil {
		return
	}
	seq := st.GetSeq()
	rs.confirm.vouch(seq)
	rm := rs.get(st.GetRoom())
	if rm == nil {
		return
	}
	// Messages held for want of a node's word may now have it.
	rm.mu.Lock()
	gap := rm.releaseLocked(rs.confirm.vouched())
	rm.mu.Unlock()
	if gap {
		rs.fetch(rm)
	}
	if rs.nc.IsConnected() && rm.awaitSent(seq, protoWait, rs.ctx.Done()) {
		rs.stats.dupStates.Add(1)
		return
	}
	frame := stateFrame(st)
	rm.mu.Lock()
	rm.offerStateLocked(seqs{Seq: seq, HistorySeq: st.GetHistorySeq()}, frame)
	gap = rm.releaseLocked(rs.confirm.vouched())
	rm.mu.Unlock()
	if gap {
		rs.fetch(rm)
	}
}

// fetch reads the room's state over gRPC (the leader's view, without a
// quorum round: seqs keep it from going backwards) and offers it, retrying
// while the room is watched. One fetch per room runs at a time, however
// many sessions watch it.
func (rs *roomSet) fetch(rm *room) {
	rm.mu.Lock()
	start := !rm.gone && rm.fresh.start()
	rm.mu.Unlock()
	if !start {
		return
	}
	rs.spawn(func() {
		for {
			rs.fetchOnce(rm)
			rm.mu.Lock()
			again := rm.fresh.more(rm.gone)
			rm.mu.Unlock()
			if !again {
				return
			}
		}
	})
}

// fetchOnce reads and offers the room's state, retrying until it succeeds,
// the room does not exist, nobody watches it any more, or the relay stops.
func (rs *roomSet) fetchOnce(rm *room) {
	// Make sure the server has our subscription before reading, so
	// that nothing committed after the read can be missed.
	_ = rs.nc.FlushTimeout(time.Second)
	for attempt := 0; ; attempt++ {
		st, err := rs.read(rm.name)
		if err == nil {
			rm.fresh.heardNow()
			rs.stats.fetches.Add(1)
			rm.mu.Lock()
			rm.fresh.found()
			rm.offerReadLocked(st)
			gap := rm.releaseLocked(rs.confirm.vouched())
			rm.mu.Unlock()
			if gap {
				rs.fetch(rm)
			}
			return
		}
		switch status.Code(err) {
		case codes.NotFound:
			rm.mu.Lock()
			rm.fresh.missing(time.Now())
			rm.mu.Unlock()
			return
		case codes.InvalidArgument:
			return
		}
		rs.log.Warn("fetching room state", "room", rm.name, "err", err)
		select {
		case <-rs.ctx.Done():
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

// read reads a room's state as the leader has it (nodes.getRoom),
// within the request timeout, and vouches for the leader's applied index.
func (rs *roomSet) read(name string) (*hangmanv1.RoomState, error) {
	ctx, cancel := context.WithTimeout(rs.ctx, rs.requestTimeout)
	defer cancel()
	res, err := rs.nodes.getRoom(ctx, name)
	if err != nil {
		return nil, err
	}
	rs.confirm.vouch(max(res.GetAppliedIndex(), res.GetState().GetSeq()))
	return res.GetState(), nil
}

// refetchAll re-reads every watched room, after the NATS connection came
// back and may have missed messages.
func (rs *roomSet) refetchAll() {
	rs.mu.Lock()
	rooms := make([]*room, 0, len(rs.byName))
	for _, rm := range rs.byName {
		rooms = append(rooms, rm)
	}
	rs.mu.Unlock()
	for _, rm := range rooms {
		rs.fetch(rm)
	}
}

// cachedState returns the latest state frame of a watched room, or nil.
func (rs *roomSet) cachedState(name string) []byte {
	rm := rs.get(name)
	if rm == nil {
		return nil
	}
	rm.mu.Lock()
	defer rm.mu.Unlock()
	return rm.frame
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
func (rs *roomSet) antiEntropy() {
	tick := time.NewTicker(quietAfter)
	defer tick.Stop()
	for {
		select {
		case <-rs.ctx.Done():
			return
		case <-tick.C:
		}
		rs.stats.sweeps.Add(1)
		now := time.Now()
		rs.mu.Lock()
		var quiet []*room
		for _, rm := range rs.byName {
			rm.mu.Lock()
			due := rm.fresh.due(now, rm.history.missedAt(now))
			rm.mu.Unlock()
			if due {
				quiet = append(quiet, rm)
			}
		}
		rs.mu.Unlock()
		for _, rm := range quiet {
			rs.fetch(rm)
		}
	}
}
