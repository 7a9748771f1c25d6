package relay

import (
	"cmp"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/hangman/hangman/services/game"
)

// Spectators are the connections that watch a room without a seat (a
// `watch`, not a `join`). Everyone in the room is shown how many there are,
// over all relays, in a "spectators" frame.
//
// The count is kept where the sockets are and summed over the relay
// heartbeats, not replicated through raft. Watching is a property of one
// websocket on one relay: it starts and ends with the socket and no game
// rule reads it. As replicated commands, every spectator coming or going
// would be a log entry written to a quorum's disks, and a relay that dies
// would leave its spectators counted until something proposed their
// departure, which nothing could do reliably. Counted per relay, each
// relay's own count is exact; it rides in the heartbeat every relay already
// publishes (hangman.relay.heartbeat, field `spectators`), and a relay that
// goes silent drops out of the sum with its peer entry after three
// heartbeats. The total is eventually consistent: a spectator on another
// relay shows within spectatorAnnounceGap plus a NATS hop, since a relay
// whose counts changed announces early.
//
// On a NATS without users anyone may publish a heartbeat, so a forged one
// can inflate a room's count (never past maxSpectatorCount per relay name,
// for at most maxSpectatedRooms rooms); it can do nothing else.
type spectators struct {
	mu    sync.Mutex
	local map[string]int            // room -> spectators on this relay
	peers map[string]map[string]int // relay name -> room -> spectators there

	// pushMu orders the frames sent to sessions, so that a session never
	// receives an older total after a newer one (each room keeps the total
	// last pushed to it: room.spectators).
	pushMu sync.Mutex

	// changed wakes the heartbeat loop to announce new local counts.
	changed chan struct{}

	// rooms are the watched rooms, whose sessions are sent the totals
	// through out.
	rooms *roomSet
	out   *sender
}

const (
	// spectatorAnnounceGap is the least time between two heartbeats sent
	// early because this relay's spectator counts changed: many
	// spectators arriving at once make one announcement, not many.
	spectatorAnnounceGap = 250 * time.Millisecond
	// maxSpectatedRooms bounds the rooms a heartbeat reports (the most
	// watched first); a heartbeat with more has its counts ignored.
	maxSpectatedRooms = 1024
	// maxSpectatorCount bounds one relay's count for one room; a relay
	// cannot hold more websockets than this anyway.
	maxSpectatorCount = 1 << 20
	typeSpectators    = "spectators"
)

// spectatorsFrame tells a room's sessions how many spectators watch it.
type spectatorsFrame struct {
	Type  string `json:"type"`
	Room  string `json:"room"`
	Count int    `json:"count"`
}

func newSpectators(rooms *roomSet, out *sender) *spectators {
	return &spectators{
		local:   make(map[string]int),
		peers:   make(map[string]map[string]int),
		changed: make(chan struct{}, 1),
		rooms:   rooms,
		out:     out,
	}
}

// total is the room's spectators on this relay and on every live peer.
func (s *spectators) total(room string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.local[room]
	for _, counts := range s.peers {
		n += counts[room]
	}
	return n
}

// announced is this relay's counts for its heartbeat: the rooms with
// spectators here, at most maxSpectatedRooms of them (the most watched).
func (s *spectators) announced() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.local) == 0 {
		return nil
	}
	if len(s.local) <= maxSpectatedRooms {
		return maps.Clone(s.local)
	}
	rooms := slices.SortedFunc(maps.Keys(s.local), func(a, b string) int {
		return cmp.Or(cmp.Compare(s.local[b], s.local[a]), cmp.Compare(a, b))
	})
	out := make(map[string]int, maxSpectatedRooms)
	for _, room := range rooms[:maxSpectatedRooms] {
		out[room] = s.local[room]
	}
	return out
}

// setPeer records a peer's counts from its heartbeat (nil: none, or the
// peer went silent) and pushes the totals that changed.
func (s *spectators) setPeer(name string, counts map[string]int) {
	s.push(s.recordPeer(name, counts)...)
}

// recordPeer records a peer's counts and returns the rooms whose total
// changed.
func (s *spectators) recordPeer(name string, counts map[string]int) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.peers[name]
	var changed []string
	for room, n := range counts {
		if old[room] != n {
			changed = append(changed, room)
		}
	}
	for room := range old {
		if _, ok := counts[room]; !ok {
			changed = append(changed, room)
		}
	}
	if len(counts) == 0 {
		delete(s.peers, name)
	} else {
		s.peers[name] = counts
	}
	return changed
}

// validSpectators reports whether a heartbeat's counts are well formed:
// few enough rooms, valid room names, counts in range.
func validSpectators(counts map[string]int) bool {
	if len(counts) > maxSpectatedRooms {
		return false
	}
	for room, n := range counts {
		if !game.ValidRoom(room) || n < 1 || n > maxSpectatorCount {
			return false
		}
	}
	return true
}

// spectate counts c as a spectator of room, which it watches, and tells
// the room's sessions and the other relays.
func (c *client) spectate(room string) {
	c.stopSpectating()
	c.spectating = room
	c.r.spectators.add(room, 1)
}

// stopSpectating ends c's count as a spectator, if it was one: it left
// the room, took a seat in it, or its connection ended.
func (c *client) stopSpectating() {
	if room := c.spectating; room != "" {
		c.spectating = ""
		c.r.spectators.add(room, -1)
	}
}

// add changes the count of a room's spectators on this relay by n, pushes
// the room's new total here and has the change announced to the other
// relays soon.
func (s *spectators) add(room string, n int) {
	s.mu.Lock()
	if s.local[room] += n; s.local[room] <= 0 {
		delete(s.local, room)
	}
	s.mu.Unlock()
	s.push(room)
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// push sends each room's total to its sessions on this relay, if it
// differs from the total they were last sent.
func (s *spectators) push(rooms ...string) {
	s.pushMu.Lock()
	defer s.pushMu.Unlock()
	for _, name := range rooms {
		rm := s.rooms.get(name)
		if rm == nil {
			continue
		}
		n := s.total(name)
		rm.mu.Lock()
		if !rm.spectatorsSent || rm.spectators != n {
			rm.spectators, rm.spectatorsSent = n, true
			frame := encode(spectatorsFrame{Type: typeSpectators, Room: name, Count: n})
			for sc := range rm.sessions {
				s.out.send(sc, frame)
			}
		}
		rm.mu.Unlock()
	}
}

// sendTo sends c, which has just started watching room, the room's
// current total.
func (s *spectators) sendTo(c *client, room string) {
	s.pushMu.Lock()
	defer s.pushMu.Unlock()
	s.out.send(c, encode(spectatorsFrame{Type: typeSpectators, Room: room, Count: s.total(room)}))
}
