package relay

import (
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hangman/hangman/services/game"
	"github.com/hangman/hangman/subjects"
)

// The live lobby: one subscription to hangman.lobby per relay, whatever
// its number of browsers, and the lines it brings pushed to the browsers
// that watch the lobby ({"type":"lobby","watch":true}). Lines are dropped
// unless newer (by seq) than the room's last one, so a new leader's
// republish of every room reaches no browser twice; those left are sent
// together, a few times a second at most, in frames
// {"type":"lobby","rooms":[<line>…]}, each line exactly its NATS payload.
const (
	typeLobby = "lobby"
	// lobbyFlush is how long lines wait to be sent together: a burst of
	// changes (a republish of every room) costs each browser a few
	// frames, not one per room.
	lobbyFlush = 100 * time.Millisecond
	// lobbyFrameRooms bounds the lines of one frame; with the relay's
	// send buffer this lets a burst of the cluster's most rooms through.
	lobbyFrameRooms = 256
	// lobbyTombstone is how long the seq of a deleted room is kept, to
	// drop an older line of it that arrives late.
	lobbyTombstone = 10 * time.Minute
)

// lobbyView tracks the rooms' latest lobby lines and who watches them.
type lobbyView struct {
	out *sender

	mu       sync.Mutex
	watchers viewWatchers
	seen     map[string]lobbySeen // latest seq of every room heard of
	pending  map[string][]byte    // lines not yet sent, by room
	order    []string             // rooms of pending, in arrival order
	armed    bool                 // a flush is scheduled
	pruned   time.Time
}

type lobbySeen struct {
	seq     uint64
	deleted time.Time // when a deleted room's line came; zero otherwise
}

func newLobbyView(out *sender) *lobbyView {
	lv := &lobbyView{out: out, seen: make(map[string]lobbySeen), pending: make(map[string][]byte)}
	lv.watchers = newViewWatchers(&lv.mu)
	return lv
}

// subscribe subscribes to hangman.lobby, and waits until the server has
// the subscription (a PING/PONG round trip, as for rooms): lines published
// once the relay has started are then never dropped for want of it.
func (lv *lobbyView) subscribe(nc *nats.Conn) error {
	if _, err := nc.Subscribe(subjects.Lobby, lv.onLine); err != nil {
		return err
	}
	if nc.IsConnected() {
		if err := nc.FlushTimeout(time.Second); err != nil {
			return fmt.Errorf("confirm the lobby subscription: %w", err)
		}
	}
	return nil
}

// onLine takes one line from NATS: a well-formed line newer than the
// room's last is kept for the watchers.
func (lv *lobbyView) onLine(m *nats.Msg) {
	var line game.Summary
	if err := json.Unmarshal(m.Data, &line); err != nil || !game.ValidRoom(line.Room) || line.Seq == 0 {
		return // not a line a node publishes
	}
	now := time.Now()
	lv.mu.Lock()
	defer lv.mu.Unlock()
	if s, ok := lv.seen[line.Room]; ok && line.Seq <= s.seq {
		return
	}
	s := lobbySeen{seq: line.Seq}
	if line.Status == game.StatusDeleted {
		s.deleted = now
	}
	lv.seen[line.Room] = s
	if now.Sub(lv.pruned) > lobbyTombstone {
		lv.pruned = now
		for room, s := range lv.seen {
			if !s.deleted.IsZero() && now.Sub(s.deleted) > lobbyTombstone {
				delete(lv.seen, room)
			}
		}
	}
	if lv.watchers.countLocked() == 0 {
		return
	}
	if _, ok := lv.pending[line.Room]; !ok {
		lv.order = append(lv.order, line.Room)
	}
	lv.pending[line.Room] = m.Data
	if !lv.armed {
		lv.armed = true
		time.AfterFunc(lobbyFlush, lv.flush)
	}
}

// flush sends the pending lines to every watcher.
func (lv *lobbyView) flush() {
	lv.mu.Lock()
	defer lv.mu.Unlock()
	lv.armed = false
	for len(lv.order) > 0 {
		n := min(len(lv.order), lobbyFrameRooms)
		f := struct {
			Type  string            `json:"type"`
			Rooms []json.RawMessage `json:"rooms"`
		}{Type: typeLobby, Rooms: make([]json.RawMessage, n)}
		for i, room := range lv.order[:n] {
			f.Rooms[i] = lv.pending[room]
			delete(lv.pending, room)
		}
		lv.order = lv.order[n:]
		frame := encode(f)
		lv.watchers.eachLocked(func(c *client) { lv.out.send(c, frame) })
	}
	lv.order = nil
}

// lobby handles {"type":"lobby","watch":bool}: watching (the
// default) pushes every change of the lobby from now on; the page asks for
// the list itself ("list") to start from. watch:false stops.
func (c *client) lobby(in *inbound) {
	lv := c.r.lobby
	lv.mu.Lock()
	if in.Watch == nil || *in.Watch {
		lv.watchers.addLocked(c)
	} else {
		lv.watchers.removeLocked(c)
	}
	lv.mu.Unlock()
	c.ack(ackFrame{ID: in.ID, Op: typeLobby})
}
