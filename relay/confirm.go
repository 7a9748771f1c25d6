package relay

import (
	"context"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
)

// A room's messages on NATS order everything a relay shows: a state is
// dropped when one with a higher seq has been seen. Whoever can publish on
// hangman.room.<room>.state can therefore freeze a room on every relay with
// one message of seq 999999. With NATS users (production) only the nodes
// may publish there, and the relay trusts what NATS brings. Without them
// (hangman dev, a cluster started without NATS passwords) anyone may, so
// the relay adopts no seq beyond what a node has vouched for over gRPC, its
// own authenticated link to the cluster:
//
//   - every gRPC answer vouches for the seqs it carries, and a leader read
//     for the leader's applied index (vouch);
//   - a message whose seq is beyond that waits, held in its room
//     (roomSet.onMsg), while the confirmer reads one room from the leader: the
//     leader publishes only what it has applied, so a real message that
//     arrived before the read began has a seq at most the read's applied
//     index, and is then delivered;
//   - a message the read does not cover is refuted, and dropped once it has
//     waited confirmPatience (a new leader may take a moment to apply what
//     the old one published); messages with lower seqs flow past it.
//
// The confirmer runs one read at a time, for all rooms at once, so the cost
// is at most one leader read per round trip per relay, and only while
// messages wait. Forged messages with seqs the cluster has reached are
// still possible without NATS users: turn them on for anything but
// development.

// confirmPatience is how long a refuted message waits before it is dropped.
const confirmPatience = 2 * time.Second

// confirmer says which room seqs the relay may adopt, and confirms with
// the leader the seqs of the messages that wait (see above). It reads the
// rooms through its read, offer and fetch, the room set's (rooms.go), so
// it holds no room table of its own: only the rooms with messages held.
type confirmer struct {
	// trusted says only the nodes may publish room messages (the relay
	// authenticates to NATS, so NATS runs with users): every seq is
	// vouched for, and the confirmer never runs.
	trusted bool
	// confirmed is the highest seq a node has vouched for.
	confirmed atomic.Uint64
	log       *slog.Logger
	// read reads a room from the leader, vouching for its applied index;
	// offer offers a state a node gave to its room; fetch reads a room
	// whose released messages showed a missed change.
	read  func(name string) (*hangmanv1.RoomState, error)
	offer func(*hangmanv1.RoomState)
	fetch func(*room)

	mu   sync.Mutex
	held map[*room]struct{} // rooms with held messages
	kick chan struct{}
}

func newConfirmer(trusted bool, log *slog.Logger, read func(string) (*hangmanv1.RoomState, error), offer func(*hangmanv1.RoomState), fetch func(*room)) *confirmer {
	return &confirmer{trusted: trusted, log: log, read: read, offer: offer, fetch: fetch, held: make(map[*room]struct{}), kick: make(chan struct{}, 1)}
}

// vouch records that a node vouched for every seq up to seq.
func (cf *confirmer) vouch(seq uint64) {
	for {
		cur := cf.confirmed.Load()
		if seq <= cur || cf.confirmed.CompareAndSwap(cur, seq) {
			return
		}
	}
}

// vouched is the highest seq a room message may have to be delivered at
// once: any, when NATS is trusted.
func (cf *confirmer) vouched() uint64 {
	if cf.trusted {
		return math.MaxUint64
	}
	return cf.confirmed.Load()
}

// await has the confirmer look at rm's held messages.
func (cf *confirmer) await(rm *room) {
	cf.mu.Lock()
	cf.held[rm] = struct{}{}
	cf.mu.Unlock()
	select {
	case cf.kick <- struct{}{}:
	default:
	}
}

// loop runs confirmation rounds while messages wait for one, until ctx
// ends, pausing (longer and longer, up to a second) while rounds fail, and
// looks again once refuted messages are due to be dropped.
func (cf *confirmer) loop(ctx context.Context) {
	pause := 10 * time.Millisecond
	var expire <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-cf.kick:
		case <-expire:
		}
		for {
			more, failed := cf.round()
			if !more {
				break
			}
			if !failed {
				pause = 10 * time.Millisecond
				continue
			}
			pause = min(2*pause, time.Second)
			select {
			case <-ctx.Done():
				return
			case <-time.After(pause):
			}
		}
		expire = nil
		cf.mu.Lock()
		if len(cf.held) > 0 {
			expire = time.After(confirmPatience)
		}
		cf.mu.Unlock()
	}
}

// round reads, from the leader, the room whose waiting message has the
// highest seq (among rooms the relay has a state of, if any: a room that
// does not exist has no applied index to give), vouches for the leader's
// applied index, delivers what it covers and refutes what it should have
// covered; with nothing left to confirm it only drops what is due. more
// says messages still wait for a round; failed says the read failed.
func (cf *confirmer) round() (more, failed bool) {
	cf.mu.Lock()
	rooms := make([]*room, 0, len(cf.held))
	for rm := range cf.held {
		rooms = append(rooms, rm)
	}
	cf.mu.Unlock()

	var (
		target    *room
		best      uint64
		bestKnown bool
		limit     = cf.vouched()
	)
	for _, rm := range rooms {
		rm.mu.Lock()
		known := rm.seq > 0
		for _, m := range rm.held {
			if m.refuted || m.Seq <= limit {
				continue
			}
			if target == nil || (known && !bestKnown) || (known == bestKnown && m.Seq > best) {
				target, best, bestKnown = rm, m.Seq, known
			}
		}
		rm.mu.Unlock()
	}

	start := time.Now()
	var err error
	if target != nil {
		var st *hangmanv1.RoomState
		st, err = cf.read(target.name)
		switch {
		case err == nil:
			cf.offer(st)
		case status.Code(err) != codes.NotFound:
			cf.log.Debug("confirming room messages", "room", target.name, "err", err)
			return true, true
		}
	}
	// A read that succeeded vouched for the leader's applied index; one
	// that found no such room refutes only that room's messages.
	limit = cf.vouched()
	for _, rm := range rooms {
		rm.mu.Lock()
		for i := range rm.held {
			m := &rm.held[i]
			if target != nil && m.Seq > limit && m.at.Before(start) && (err == nil || rm == target) {
				m.refuted = true
			}
		}
		gap := rm.releaseLocked(cf.vouched())
		for _, m := range rm.held {
			more = more || !m.refuted
		}
		rm.mu.Unlock()
		cf.mu.Lock()
		rm.mu.Lock()
		// A message may have come in since the pass: keep the room if so.
		if len(rm.held) == 0 {
			delete(cf.held, rm)
		}
		rm.mu.Unlock()
		cf.mu.Unlock()
		if gap {
			cf.fetch(rm)
		}
	}
	return more, false
}
