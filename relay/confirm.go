package relay

import (
	"math"
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
//     (onRoomMsg), while the confirmer reads one room from the leader: the
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

// vouch records that a node vouched for every seq up to seq.
func (r *Relay) vouch(seq uint64) {
	for {
		cur := r.confirmed.Load()
		if seq <= cur || r.confirmed.CompareAndSwap(cur, seq) {
			return
		}
	}
}

// vouched is the highest seq a room message may have to be delivered at
// once: any, when NATS is trusted.
func (r *Relay) vouched() uint64 {
	if r.trustNATS {
		return math.MaxUint64
	}
	return r.confirmed.Load()
}

// awaitConfirm has the confirmer look at rm's held messages.
func (r *Relay) awaitConfirm(rm *room) {
	r.heldMu.Lock()
	r.heldRooms[rm] = struct{}{}
	r.heldMu.Unlock()
	select {
	case r.confirmKick <- struct{}{}:
	default:
	}
}

// confirmLoop runs confirmation rounds while messages wait for one,
// pausing (longer and longer, up to a second) while rounds fail, and looks
// again once refuted messages are due to be dropped.
func (r *Relay) confirmLoop() {
	pause := 10 * time.Millisecond
	var expire <-chan time.Time
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-r.confirmKick:
		case <-expire:
		}
		for {
			more, failed := r.confirmRound()
			if !more {
				break
			}
			if !failed {
				pause = 10 * time.Millisecond
				continue
			}
			pause = min(2*pause, time.Second)
			select {
			case <-r.ctx.Done():
				return
			case <-time.After(pause):
			}
		}
		expire = nil
		r.heldMu.Lock()
		if len(r.heldRooms) > 0 {
			expire = time.After(confirmPatience)
		}
		r.heldMu.Unlock()
	}
}

// confirmRound reads, from the leader, the room whose waiting message has
// the highest seq (among rooms the relay has a state of, if any: a room
// that does not exist has no applied index to give), vouches for the
// leader's applied index, delivers what it covers and refutes what it
// should have covered; with nothing left to confirm it only drops what is
// due. more says messages still wait for a round; failed says the read
// failed.
func (r *Relay) confirmRound() (more, failed bool) {
	r.heldMu.Lock()
	rooms := make([]*room, 0, len(r.heldRooms))
	for rm := range r.heldRooms {
		rooms = append(rooms, rm)
	}
	r.heldMu.Unlock()

	var (
		target    *room
		best      uint64
		bestKnown bool
		limit     = r.vouched()
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
		st, err = r.readRoom(target.name)
		switch {
		case err == nil:
			r.offerProto(st)
		case status.Code(err) != codes.NotFound:
			r.log.Debug("confirming room messages", "room", target.name, "err", err)
			return true, true
		}
	}
	// A read that succeeded vouched for the leader's applied index; one
	// that found no such room refutes only that room's messages.
	limit = r.vouched()
	for _, rm := range rooms {
		rm.mu.Lock()
		for i := range rm.held {
			m := &rm.held[i]
			if target != nil && m.Seq > limit && m.at.Before(start) && (err == nil || rm == target) {
				m.refuted = true
			}
		}
		gap := r.releaseLocked(rm)
		for _, m := range rm.held {
			more = more || !m.refuted
		}
		rm.mu.Unlock()
		r.heldMu.Lock()
		rm.mu.Lock()
		// A message may have come in since the pass: keep the room if so.
		if len(rm.held) == 0 {
			delete(r.heldRooms, rm)
		}
		rm.mu.Unlock()
		r.heldMu.Unlock()
		if gap {
			r.fetch(rm)
		}
	}
	return more, false
}
