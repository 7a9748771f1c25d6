package raftnode

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hangman/hangman/services/game"
)

// The leader's sweeper gives back idle rooms and seats (DESIGN.md,
// guarantee 11). Time enters the replicated state only through commands:
// every command carries its proposer's clock, the state machine keeps the
// latest time of each room and seat, and the leader, comparing those with
// its own clock, proposes a delete_room or reclaim_seat command for what
// has been idle too long (game.Machine.Reclaimable). Each carries a cutoff
// that applying it checks again, so a player who acts while the command is
// on its way keeps their room and seat, and replicas never read a clock.
// Only a leader that has applied everything earlier leaders committed
// (readyTerm) sweeps: it judges idleness on the whole state.
//
// The same sweeper ends the turns of timed rooms that ran out: every
// turnInterval it proposes a turn_timeout, naming the turn's number, for
// each turn whose deadline (in the state, from the time of the command
// that began the turn) has passed (game.Machine.TurnTimeouts). A new
// leader finds the deadlines in the state it applied; a timeout that an
// old leader proposed and a new one proposes again names the same turn,
// so the second is refused: a leader change neither skips nor doubles a
// turn.

// reclaimBatch bounds the commands of one sweep round. A sweep that finds
// this many goes round again at once, so a burst of idle rooms (a flood of
// creations an hour ago) is cleared in seconds, a round at a time.
const reclaimBatch = 1024

// reclaimInflight bounds the reclamations proposed at once; the batcher
// packs them into entries.
const reclaimInflight = 256

// turnInterval is how often the leader looks for turns that ran out: a
// turn lasts at most this much longer than its room's turn length, and
// the next begins when the timeout is proposed.
const turnInterval = 250 * time.Millisecond

// reclaimed counts what this node, leading, reclaimed, and the turns it
// timed out.
type reclaimed struct {
	rooms, seats, turns atomic.Uint64
}

// policy returns the node's reclamation policy.
func (n *Node) policy() game.ReclaimPolicy {
	d := func(v time.Duration) time.Duration { return max(v, 0) }
	return game.ReclaimPolicy{RoomIdle: d(n.cfg.RoomIdle), RoomOverIdle: d(n.cfg.RoomOverIdle), SeatIdle: d(n.cfg.SeatIdle)}
}

// reclaimLoop sweeps for idle rooms and seats every ReclaimInterval, and
// for turns that ran out every turnInterval, while this node leads.
func (n *Node) reclaimLoop(ctx context.Context) {
	tick := time.NewTicker(n.cfg.ReclaimInterval)
	defer tick.Stop()
	turns := time.NewTicker(turnInterval)
	defer turns.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			n.sweep(ctx, time.Now())
		case <-turns.C:
			n.sweepTurns(ctx, time.Now())
		}
	}
}

// readyLeader reports whether this node leads and has applied everything
// earlier leaders committed: whether it may judge the state as a whole.
func (n *Node) readyLeader() bool {
	return n.raft.State() == raft.Leader && n.readyTerm.Load() == n.raft.CurrentTerm()
}

// sweepTurns proposes the timeout of every turn that ran out at now, if
// this node is a ready leader, and returns how many were applied.
func (n *Node) sweepTurns(ctx context.Context, now time.Time) int {
	if !n.readyLeader() {
		return 0
	}
	var cmds []game.Command
	n.Read(func(m *game.Machine) { cmds = m.TurnTimeouts(now, reclaimBatch) })
	applied := n.proposeOwn(ctx, cmds, func(game.Command) { n.reclaimed.turns.Add(1) })
	if applied > 0 {
		n.log.Debug("timed out turns", "turns", applied)
	}
	return applied
}

// sweep proposes the reclamation of what is idle at now, if this node is a
// ready leader, round after round while rounds come back full. It returns
// how many rooms and seats it reclaimed, and whether it led to the end.
func (n *Node) sweep(ctx context.Context, now time.Time) (rooms, seats int, led bool) {
	policy := n.policy()
	for ctx.Err() == nil {
		if led = n.readyLeader(); !led {
			break
		}
		var cmds []game.Command
		n.Read(func(m *game.Machine) { cmds = m.Reclaimable(now, policy, reclaimBatch) })
		r, s := n.reclaim(ctx, cmds)
		rooms, seats = rooms+r, seats+s
		if len(cmds) < reclaimBatch || r+s == 0 {
			break
		}
	}
	if rooms+seats > 0 {
		n.log.Info("reclaimed idle rooms and seats", "rooms", rooms, "seats", seats)
	}
	return rooms, seats, led
}

// reclaim proposes cmds and counts those applied. A refused one is no
// error: its player came back, or another sweep was first.
func (n *Node) reclaim(ctx context.Context, cmds []game.Command) (rooms, seats int) {
	var mu sync.Mutex
	n.proposeOwn(ctx, cmds, func(c game.Command) {
		mu.Lock()
		defer mu.Unlock()
		if c.Kind == game.KindDeleteRoom {
			rooms++
			n.reclaimed.rooms.Add(1)
		} else {
			seats++
			n.reclaimed.seats.Add(1)
		}
	})
	return rooms, seats
}

// proposeOwn proposes the leader's own commands cmds, at most
// reclaimInflight at once, calls applied (from any goroutine) for each one
// applied, and returns how many were. A refused one is no error: what it
// was for changed while it was on its way, or another copy came first.
func (n *Node) proposeOwn(ctx context.Context, cmds []game.Command, applied func(game.Command)) int {
	var (
		wg    sync.WaitGroup
		slots = make(chan struct{}, reclaimInflight)
		count atomic.Int64
	)
	for _, c := range cmds {
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			res, _, err := n.Propose(ctx, c.Room, c.Encode())
			if err != nil || res.Err != nil || res.Event == nil {
				n.log.Debug("leader's command not applied", "kind", c.Kind, "room", c.Room, "player", c.Player, "err", err, "refused", res.Err)
				return
			}
			count.Add(1)
			applied(c)
		}()
	}
	wg.Wait()
	return int(count.Load())
}

// registerReclaimMetrics adds the series of the caps and of reclamation to
// reg: each cap and idle time as configured (the gRPC and lag caps too, so
// that every cap of a node is a flag with a metric), what the state holds against
// the caps, and what this node reclaimed.
func (n *Node) registerReclaimMetrics(reg *prometheus.Registry) {
	gauge := func(name, help string, labels prometheus.Labels, f func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: labels}, f))
	}
	counts := func() (rooms, seats int) {
		n.Read(func(m *game.Machine) { rooms, seats = m.Counts() })
		return rooms, seats
	}
	gauge("hangman_rooms", "Rooms in this node's replica of the state; creation is refused at hangman_rooms_limit.", nil, func() float64 {
		r, _ := counts()
		return float64(r)
	})
	gauge("hangman_rooms_limit", "The most rooms the cluster may hold, as this node proposes (--max-rooms).", nil, func() float64 { return float64(n.cfg.MaxRooms) })
	gauge("hangman_seats", "Players seated in all rooms of this node's replica; a room refuses joins at hangman_room_players_limit.", nil, func() float64 {
		_, s := counts()
		return float64(s)
	})
	gauge("hangman_room_players_limit", "The most players of a room, as this node proposes (--max-players).", nil, func() float64 { return float64(n.cfg.MaxPlayers) })
	gauge("hangman_raft_max_lag_entries", "How many entries this node may trail the leader's commit index and still be ready (--max-lag); see hangman_raft_lag_entries.", nil, func() float64 { return float64(n.cfg.MaxLag) })
	gauge("hangman_grpc_header_list_limit_bytes", "The largest header list one gRPC call may carry (--grpc-max-header-bytes).", nil, func() float64 { return float64(n.cfg.GRPCMaxHeaderBytes) })
	gauge("hangman_grpc_streams_limit", "The most gRPC calls one connection may have open at once (--grpc-max-streams).", nil, func() float64 { return float64(n.cfg.GRPCMaxStreams) })
	p := n.policy()
	for what, d := range map[string]time.Duration{"room": p.RoomIdle, "room_over": p.RoomOverIdle, "seat": p.SeatIdle} {
		gauge("hangman_reclaim_idle_seconds", "How long a room in play (room), a finished or empty room (room_over) or a seat (seat) may stay idle before the leader reclaims it (--room-idle, --room-over-idle, --seat-idle); 0: never.",
			prometheus.Labels{"what": what}, func() float64 { return d.Seconds() })
	}
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "hangman_turn_timeouts_total", Help: "Turns of timed rooms that ran out and that this node, leading, passed to the next player.",
	}, func() float64 { return float64(n.reclaimed.turns.Load()) }))
	for what, v := range map[string]*atomic.Uint64{"room": &n.reclaimed.rooms, "seat": &n.reclaimed.seats} {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "hangman_reclaimed_total", Help: "Idle rooms and seats this node, leading, reclaimed, by what.", ConstLabels: prometheus.Labels{"what": what},
		}, func() float64 { return float64(v.Load()) }))
	}
}
