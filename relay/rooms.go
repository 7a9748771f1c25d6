package relay

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
	"github.com/hangman/hangman/services/api"
)

// room is one watched room: its sessions, its NATS subscription and the
// latest state seen. Every session of a room has been sent frame (the state
// at seq) and nothing older after it: all sends happen under mu, in seq
// order, so no session ever needs a seq of its own.
type room struct {
	name string

	mu       sync.Mutex
	sessions map[*client]struct{}
	sub      *nats.Subscription
	// subscribed is closed once the NATS server has sub (or confirming it
	// failed): until then, what is published for the room is not ours.
	subscribed chan struct{}
	seq        uint64 // seq of frame
	frame      []byte // latest state frame, shared by all sessions
	eventSeq   uint64 // seq of the last event forwarded
	fetching   bool
	again      bool // a fetch was asked for while one ran: run once more
	gone       bool // the last session left; a new watcher makes a new room
	// heard is when NATS last delivered a message of the room, or a fetch
	// last completed (Unix nanoseconds), for the anti-entropy sweep.
	heard atomic.Int64
}

// seqs is the part of a state or event payload the relay reads.
type seqs struct {
	Seq  uint64 `json:"seq"`
	Prev uint64 `json:"prev"`
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
		sub, err := r.nc.Subscribe("hangman.room."+name+".*", func(m *nats.Msg) { r.onRoomMsg(rm, m) })
		if err != nil {
			r.log.Error("subscribe to room", "room", name, "err", err)
		}
		rm.sub = sub
		r.rooms[name] = rm
	}
	rm.mu.Lock()
	rm.sessions[c] = struct{}{}
	if rm.frame != nil {
		r.send(c, rm.frame)
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

// onRoomMsg handles one NATS message of a watched room.
func (r *Relay) onRoomMsg(rm *room, m *nats.Msg) {
	rm.heard.Store(time.Now().UnixNano())
	kind := m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]
	var s seqs
	if err := json.Unmarshal(m.Data, &s); err != nil || s.Seq == 0 {
		r.log.Warn("dropping malformed room message", "subject", m.Subject, "err", err)
		return
	}
	switch kind {
	case "state":
		r.offerState(rm, s.Seq, wrapPayload("state", m.Data))
	case "event":
		r.offerEvent(rm, s, wrapPayload("event", m.Data))
	}
}

// offerState makes frame (the state at seq) the room's latest and sends it
// to every session of the room, unless the room already has it or newer.
func (r *Relay) offerState(rm *room, seq uint64, frame []byte) bool {
	rm.mu.Lock()
	defer rm.mu.Unlock()
	if seq <= rm.seq {
		r.stats.dupStates.Add(1)
		return false
	}
	rm.seq, rm.frame = seq, frame
	for c := range rm.sessions {
		r.send(c, frame)
	}
	return true
}

// offerEvent forwards an event once, and fetches the room's state when the
// event shows that something was missed: it follows a seq the relay never
// saw (prev is not the latest known seq).
func (r *Relay) offerEvent(rm *room, s seqs, frame []byte) {
	rm.mu.Lock()
	if s.Seq <= rm.eventSeq {
		rm.mu.Unlock()
		r.stats.dupEvents.Add(1)
		return
	}
	rm.eventSeq = s.Seq
	gap := s.Seq > rm.seq && s.Prev != rm.seq
	for c := range rm.sessions {
		r.send(c, frame)
	}
	rm.mu.Unlock()
	if gap {
		r.stats.gaps.Add(1)
		r.log.Debug("seq gap, fetching state", "room", rm.name, "seq", s.Seq, "prev", s.Prev)
		r.fetch(rm)
	}
}

// offerProto offers a state that came back from a gRPC call to the named
// room, if the room is watched here.
func (r *Relay) offerProto(st *hangmanv1.RoomState) {
	if st == nil {
		return
	}
	r.roomsMu.Lock()
	rm := r.rooms[st.GetRoom()]
	r.roomsMu.Unlock()
	if rm == nil {
		return
	}
	// Usually NATS has brought this state already: skip building a frame
	// that offerState would drop.
	rm.mu.Lock()
	stale := st.GetSeq() <= rm.seq
	rm.mu.Unlock()
	if stale {
		r.stats.dupStates.Add(1)
		return
	}
	r.offerState(rm, st.GetSeq(), stateFrame(st))
}

// fetch reads the room's state over gRPC (linearizable, falling back to the
// leader's view) and offers it, retrying while the room is watched. One
// fetch per room runs at a time.
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

// fetchOnce reads and offers the room's state, retrying until it succeeds,
// the room does not exist, nobody watches it any more, or the relay stops.
func (r *Relay) fetchOnce(rm *room) {
	// Make sure the server has our subscription before reading, so
	// that nothing committed after the read can be missed.
	_ = r.nc.FlushTimeout(time.Second)
	for attempt := 0; ; attempt++ {
		st, err := r.getRoom(rm.name)
		if err == nil {
			rm.heard.Store(time.Now().UnixNano())
			r.stats.fetches.Add(1)
			r.offerState(rm, st.GetSeq(), stateFrame(st))
			return
		}
		if status.Code(err) == codes.NotFound || status.Code(err) == codes.InvalidArgument {
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

func (r *Relay) getRoom(name string) (*hangmanv1.RoomState, error) {
	ctx, cancel := context.WithTimeout(r.ctx, r.cfg.RequestTimeout)
	defer cancel()
	var st *hangmanv1.RoomState
	_, err := r.nodes.call(ctx, "get_room", func(ctx context.Context, c hangmanv1.GameServiceClient) error {
		res, err := c.GetRoom(ctx, &hangmanv1.GetRoomRequest{Room: name, Consistency: hangmanv1.Consistency_CONSISTENCY_LINEARIZABLE})
		if status.Code(err) == codes.Unavailable || status.Code(err) == codes.FailedPrecondition {
			// No quorum confirmation right now: the leader's view is
			// still better than nothing, and seqs keep it from
			// going backwards.
			res, err = c.GetRoom(ctx, &hangmanv1.GetRoomRequest{Room: name, Consistency: hangmanv1.Consistency_CONSISTENCY_LEADER})
		}
		if err != nil {
			return err
		}
		st = res.GetState()
		return nil
	})
	return st, err
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
// on NATS (game.State), so the page sees one shape whatever the source.
func stateFrame(p *hangmanv1.RoomState) []byte {
	s := api.StateFromProto(p)
	return wrapPayload("state", s.AppendJSON(nil))
}

// quietAfter is how long a watched room may go without a message before
// the relay reads its state over gRPC.
const quietAfter = time.Second

// antiEntropy bounds how stale a watched room can be, whatever happened on
// NATS: every room that has been quiet for quietAfter is read over gRPC and
// offered like any state (seqs keep it from going backwards). A room whose
// messages flow is never read; an idle room costs one read per second per
// relay. Without it a relay whose server missed a room's last changes (a
// NATS route lost and back, an interest not yet propagated) would show
// them only at the room's next change.
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
		cutoff := time.Now().Add(-quietAfter).UnixNano()
		r.roomsMu.Lock()
		var quiet []*room
		for _, rm := range r.rooms {
			if rm.heard.Load() < cutoff {
				quiet = append(quiet, rm)
			}
		}
		r.roomsMu.Unlock()
		for _, rm := range quiet {
			r.fetch(rm)
		}
	}
}
