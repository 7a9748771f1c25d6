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

// reclaimBatch bounds the commands of one sweep round. A sweep that finds
// this many goes round again at once, so a burst of idle rooms (a flood of
// creations an hour ago) is cleared in seconds, a round at a time.
const reclaimBatch = 1024

// reclaimInflight bounds the reclamations proposed at once; the batcher
// packs them into entries.
const reclaimInflight = 256

// reclaimed counts what this node, leading, reclaimed.
type reclaimed struct {
	rooms, seats atomic.Uint64
}

// policy returns the node's reclamation policy.
func (n *Node) policy() game.ReclaimPolicy {
	d := func(v time.Duration) time.Duration { return max(v, 0) }
	return game.ReclaimPolicy{RoomIdle: d(n.cfg.RoomIdle), RoomOverIdle: d(n.cfg.RoomOverIdle), SeatIdle: d(n.cfg.SeatIdle)}
}

// reclaimLoop sweeps every ReclaimInterval while this node leads.
func (n *Node) reclaimLoop(ctx context.Context) {
	tick := time.NewTicker(n.cfg.ReclaimInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		n.sweep(ctx, time.Now())
	}
}

// sweep proposes the reclamation of what is idle at now, if this node is a
// ready leader, round after round while rounds come back full. It returns
// how many rooms and seats it reclaimed, and whether it led to the end.
func (n *Node) sweep(ctx context.Context, now time.Time) (rooms, seats int, led bool) {
	policy := n.policy()
	for ctx.Err() == nil {
		if led = n.raft.State() == raft.Leader && n.readyTerm.Load() == n.raft.CurrentTerm(); !led {
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
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		slots = make(chan struct{}, reclaimInflight)
	)
	for _, c := range cmds {
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			res, _, err := n.Propose(ctx, c.Room, c.Encode())
			if err != nil || res.Err != nil || res.Event == nil {
				n.log.Debug("reclamation not applied", "kind", c.Kind, "room", c.Room, "player", c.Player, "err", err, "refused", res.Err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if c.Kind == game.KindDeleteRoom {
				rooms++
				n.reclaimed.rooms.Add(1)
			} else {
				seats++
				n.reclaimed.seats.Add(1)
			}
		}()
	}
	wg.Wait()
	return rooms, seats
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
	for what, v := range map[string]*atomic.Uint64{"room": &n.reclaimed.rooms, "seat": &n.reclaimed.seats} {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "hangman_reclaimed_total", Help: "Idle rooms and seats this node, leading, reclaimed, by what.", ConstLabels: prometheus.Labels{"what": what},
		}, func() float64 { return float64(v.Load()) }))
	}
}
