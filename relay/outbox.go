package relay

import (
	"log/slog"
	"slices"
	"sync"
	"time"
)

// The write path. Every frame for a browser goes through its session's
// outbox, which a writer goroutine empties while there is something in it
// (an idle connection costs no goroutine of its own), writing all the
// frames waiting at that moment with one write(2).
//
// A slow browser is served, not dropped: while frames wait, a newer state
// of a room takes the place of the older one, and a newer cluster view or
// relay list the place of the older one; a room's events wait in order up
// to maxEventsWaiting, then the oldest are dropped (the state says where
// the room is, which is what the page shows). So what waits for a slow socket is
// bounded by what it watches, not by how far behind it is, and when it
// reads again the first state it gets is the latest. Only frames nothing
// supersedes (answers to its own commands, lobby lines) count against
// Config.SendBuffer; a client that lets that many pile up is dropped, and
// one whose socket takes nothing for Config.WriteTimeout is dead and closed.
//
// melody (v1.1.4) cannot do this itself: Session.Write queues one message
// into a channel that its write loop drains with one WriteMessage (one
// write(2), one deadline) per message, and a full channel drops the
// client; it has no batched write and no way to replace a queued message.
// So the relay writes its frames itself, straight to the connection under
// the websocket (trackedConn), as already-framed bytes, every frame
// waiting in one write; melody's write loop
// is left with pings and close frames. Both go through trackedConn's write
// lock, and each of melody's frames is one Write (control frames are
// small), so frames never interleave.

// outKind says what may supersede a waiting frame.
type outKind uint8

const (
	// outPlain frames are always delivered, in order: answers, lobby
	// lines.
	outPlain outKind = iota
	// outWelcome is a session's first frame: it goes ahead of whatever a
	// new session was sent before it, and releases the session's writer.
	outWelcome
	// outState is a room's state; a newer state of the room supersedes it.
	outState
	// outEvent is a room's event sent on its own; a newer state of the
	// room supersedes it.
	outEvent
	// outView is a whole view (the cluster view, the relay list) named by
	// key; the next one of the same key supersedes it.
	outView
	// outHistory is a room's finished rounds (history.go); the room's next
	// history supersedes it, and it goes after the room's state waiting.
	outHistory
	// outClose closes the websocket once the frames before it are written.
	outClose
)

// outItem is one frame waiting in an outbox. frame is shared by every
// session it goes to and never modified.
type outItem struct {
	kind  outKind
	key   string // the room (outState, outEvent, outHistory) or the view (outView)
	seq   uint64 // outState, outEvent
	frame []byte // the frame's payload; outClose: the close message
	// event is, for a state that carries its change's event, that event's
	// own frame: should the state be superseded, the event still goes.
	event []byte
}

// Keys of the outView frames.
const (
	viewCluster = "cluster"
	viewRelays  = "relays"
)

// outbox is one session's frames waiting for its socket.
type outbox struct {
	mu      sync.Mutex
	items   []outItem
	plain   int  // outPlain frames among items
	writing bool // a writer goroutine runs
	closed  bool // nothing more is written
	// held keeps a new session's writer from starting before its welcome
	// is queued: a session becomes visible to the relay-wide tellings
	// (the relay list, the cluster view) before its welcome is built, so
	// that it misses none of them, and what they send it must not leave
	// first.
	held bool
}

// maxEventsWaiting bounds the events of one room waiting in an outbox: a
// browser that far behind misses the oldest (the states it gets say where
// the room is). 64 is the whole send buffer the relay had before states
// superseded each other, so a reader that kept up then, a busy browser or
// a harness on a loaded machine pausing for a few hundred milliseconds,
// still gets every event; it costs a slow session at most some 16 KiB per
// room it watches.
const maxEventsWaiting = 64

// push queues it. superseded counts the frames it made stale; full says
// the frames nothing supersedes exceed limit (it was not queued); start
// says a writer must be started.
//
// A state replaces the older states of its room waiting, and goes last, so
// a browser gets a room's events in order and then its latest state; the
// room's history, if it waits, goes right after that state, as it went
// after the state replaced (a history follows the state naming it). An
// event that came in a superseded state's frame stays, on its own: events
// are dropped only past maxEventsWaiting.
func (o *outbox) push(it outItem, limit int) (superseded int, full, start bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return 0, false, false
	}
	switch it.kind {
	case outWelcome:
		o.items = slices.Insert(o.items, 0, it)
		o.held = false
		return 0, false, o.startWriter()
	case outPlain:
		if o.plain >= limit {
			return 0, true, false
		}
		o.plain++
	case outState, outView, outHistory:
		events, replaced := 0, false
		kept := o.items[:0]
		for _, q := range o.items {
			switch {
			case q.key != it.key || q.kind != it.kind && q.kind != outEvent:
			case q.kind == outEvent:
				events++
			case q.seq > it.seq:
				// A newer state waits already (a room watched again).
				return 1, false, false
			default:
				superseded++
				replaced = true
				if q.event != nil {
					kept = append(kept, outItem{kind: outEvent, key: q.key, seq: q.seq, frame: q.event})
					events++
				}
				continue
			}
			kept = append(kept, q)
		}
		clear(o.items[len(kept):])
		o.items = kept
		if it.event != nil {
			events++
		}
		if it.kind == outState && events > maxEventsWaiting {
			superseded += o.dropEvents(it.key, events-maxEventsWaiting)
		}
		if it.kind == outState && replaced {
			// The room's history, sent after the state it followed,
			// follows that state's replacement.
			if h, ok := o.takeHistory(it.key); ok {
				o.items = append(o.items, it, h)
				return superseded, false, o.startWriter()
			}
		}
	}
	o.items = append(o.items, it)
	return superseded, false, o.startWriter()
}

// startWriter reports whether a writer must be started for what was just
// queued: none runs yet, and the session's welcome is not still to come.
func (o *outbox) startWriter() bool {
	if o.writing || o.held {
		return false
	}
	o.writing = true
	return true
}

// takeHistory removes the history of room waiting, if one does.
func (o *outbox) takeHistory(room string) (outItem, bool) {
	for i, q := range o.items {
		if q.kind == outHistory && q.key == room {
			o.items = slices.Delete(o.items, i, i+1)
			return q, true
		}
	}
	return outItem{}, false
}

// dropEvents drops the n oldest events of room waiting on their own.
func (o *outbox) dropEvents(room string, n int) int {
	kept := o.items[:0]
	dropped := 0
	for _, q := range o.items {
		if dropped < n && q.kind == outEvent && q.key == room {
			dropped++
			continue
		}
		kept = append(kept, q)
	}
	clear(o.items[len(kept):])
	o.items = kept
	return dropped
}

// take hands the writer every waiting frame, or reports that there are
// none and the writer ends (its memory with it: an idle session keeps no
// buffer).
func (o *outbox) take(batch []outItem) ([]outItem, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed || len(o.items) == 0 {
		o.writing = false
		o.items = nil
		return batch, false
	}
	batch = append(batch, o.items...)
	clear(o.items)
	o.items, o.plain = o.items[:0], 0
	return batch, true
}

// close drops what waits and refuses what comes.
func (o *outbox) close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.closed = true
	o.items, o.plain = nil, 0
}

// sender is the write path's half shared by every session: the bound on
// the frames nothing supersedes, the write deadline, and the counters and
// log the writes feed. Each session's outbox is its own (client.out);
// rooms, views and sessions queue into them through here.
type sender struct {
	sendBuffer   int           // Config.SendBuffer
	writeTimeout time.Duration // Config.WriteTimeout
	stats        *counters
	log          *slog.Logger
}

// queue puts it in c's outbox, starting its writer if none runs, and drops
// c if the frames nothing supersedes overflowed.
func (s *sender) queue(c *client, it outItem) {
	if c == nil || c.sess == nil || c.conn == nil {
		return
	}
	superseded, full, start := c.out.push(it, s.sendBuffer)
	if full {
		if c.dropped.CompareAndSwap(false, true) {
			s.stats.slowDropped.Add(1)
			s.log.Info("dropping a client that does not read its answers", "remote", c.conn.RemoteAddr(), "waiting", s.sendBuffer)
			c.out.close()
			_ = c.conn.Close()
		}
		return
	}
	s.stats.framesOut.Add(1)
	if superseded > 0 {
		s.stats.superseded.Add(int64(superseded))
	}
	if start {
		go s.writeOut(c)
	}
}

// send queues a frame that nothing supersedes.
func (s *sender) send(c *client, frame []byte) {
	s.queue(c, outItem{frame: frame})
}

// writeScratch is a writer's working memory, kept in writeScratchPool
// between writers: a writer runs per burst, not per connection, and its
// buffers are borrowed for the burst only.
type writeScratch struct {
	batch []outItem
	buf   []byte // the frames of one write, framed
}

// maxKeptScratch bounds the buffer a scratch keeps in the pool: the rare
// huge batch does not pin its memory.
const maxKeptScratch = 256 << 10

var writeScratchPool = sync.Pool{New: func() any { return new(writeScratch) }}

// writeOut is c's writer: it writes what waits in c's outbox, all of it in
// one write, until the outbox is empty. Frames are copied into one buffer
// rather than written as a vector of the shared frames: they are small,
// and one plain write costs less than a writev of twice as many pieces.
func (s *sender) writeOut(c *client) {
	w := writeScratchPool.Get().(*writeScratch)
	defer func() {
		if cap(w.buf) > maxKeptScratch {
			w.buf = nil
		}
		writeScratchPool.Put(w)
	}()
	for {
		var more bool
		if w.batch, more = c.out.take(w.batch[:0]); !more {
			return
		}
		w.buf = w.buf[:0]
		for _, it := range w.batch {
			if it.kind == outClose {
				if s.writeFrames(c, w.buf) {
					// After the frames before it, through melody, which
					// ends the session once it is written.
					_ = c.sess.CloseWithMsg(it.frame)
				}
				c.out.close()
				clear(w.batch)
				return
			}
			w.buf = append(appendFrameHeader(w.buf, len(it.frame)), it.frame...)
		}
		clear(w.batch)
		if !s.writeFrames(c, w.buf) {
			c.out.close()
			return
		}
	}
}

// writeFrames writes framed frames in one write; false if the connection
// failed, which it then closes.
func (s *sender) writeFrames(c *client, b []byte) bool {
	if len(b) == 0 {
		return true
	}
	s.stats.writes.Add(1)
	if err := c.conn.writeFrames(b, s.writeTimeout); err != nil {
		s.log.Debug("websocket write failed; closing", "remote", c.conn.RemoteAddr(), "err", err)
		_ = c.conn.Close()
		return false
	}
	return true
}

// appendFrameHeader appends the header of one unmasked, final
// server-to-client text frame of n bytes.
func appendFrameHeader(b []byte, n int) []byte {
	switch {
	case n < 126:
		return append(b, 0x81, byte(n))
	case n <= 0xffff:
		return append(b, 0x81, 126, byte(n>>8), byte(n))
	default:
		return append(b, 0x81, 127, 0, 0, 0, 0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}
