package raftnode

import (
	"context"
	"log/slog"
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

// sweeper is the leader's proposer of its own commands over time: it
// gives back idle rooms and seats, and ends the turns that ran out. It is
// a type of its own so that what it depends on is in sight: the replica it
// reads and proposes through, whether this node may judge the state as a
// whole, the policy, and its counts, which the metrics read.
type sweeper struct {
	replica stateReplica
	// ready reports whether this node leads and has applied everything
	// earlier leaders committed (Node.readyLeader).
	ready  func() bool
	policy game.ReclaimPolicy
	every  time.Duration // between sweeps for idle rooms and seats
	log    *slog.Logger
	// rooms, seats and turns count what this node, leading, reclaimed
	// and the turns it timed out.
	rooms, seats, turns atomic.Uint64
}

// stateReplica is what the sweeper needs of the node: to read the state
// and to propose commands as any caller does (api.Replica's part).
type stateReplica interface {
	Propose(ctx context.Context, room string, cmd []byte) (game.Result, uint64, error)
	Read(fn func(m *game.Machine)) uint64
}

// newSweeper returns the sweeper of a node with cfg, proposing through
// replica while ready.
func newSweeper(replica stateReplica, ready func() bool, cfg Config, log *slog.Logger) *sweeper {
	return &sweeper{replica: replica, ready: ready, policy: reclaimPolicy(cfg), every: cfg.ReclaimInterval, log: log}
}

// reclaimPolicy is the reclamation policy of cfg.
func reclaimPolicy(cfg Config) game.ReclaimPolicy {
	d := func(v time.Duration) time.Duration { return max(v, 0) }
	return game.ReclaimPolicy{RoomIdle: d(cfg.RoomIdle), RoomOverIdle: d(cfg.RoomOverIdle), SeatIdle: d(cfg.SeatIdle)}
}

// run sweeps for idle rooms and seats every ReclaimInterval, and for turns
// that ran out every turnInterval, while this node leads.
func (w *sweeper) run(ctx context.Context) {
	tick := time.NewTicker(w.every)
	defer tick.Stop()
	turns := time.NewTicker(turnInterval)
	defer turns.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			w.sweep(ctx, time.Now())
		case <-turns.C:
			w.sweepTurns(ctx, time.Now())
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
func (w *sweeper) sweepTurns(ctx context.Context, now time.Time) int {
	if !w.ready() {
		return 0
	}
	var cmds []game.Command
	w.replica.Read(func(m *game.Machine) { cmds = m.TurnTimeouts(now, reclaimBatch) })
	applied := w.proposeOwn(ctx, cmds, func(game.Command) { w.turns.Add(1) })
	if applied > 0 {
		w.log.Debug("timed out turns", "turns", applied)
	}
	return applied
}

// sweep proposes the reclamation of what is idle at now, if this node is a
// ready leader, round after round while rounds come back full. It returns
// how many rooms and seats it reclaimed, and whether it led to the end.
func (w *sweeper) sweep(ctx context.Context, now time.Time) (rooms, seats int, led bool) {
	for ctx.Err() == nil {
		if led = w.ready(); !led {
			break
		}
		var cmds []game.Command
		w.replica.Read(func(m *game.Machine) { cmds = m.Reclaimable(now, w.policy, reclaimBatch) })
		r, s := w.reclaim(ctx, cmds)
		rooms, seats = rooms+r, seats+s
		if len(cmds) < reclaimBatch || r+s == 0 {
			break
		}
	}
	if rooms+seats > 0 {
		w.log.Info("reclaimed idle rooms and seats", "rooms", rooms, "seats", seats)
	}
	return rooms, seats, led
}

// reclaim proposes cmds and counts those applied. A refused one is no
// error: its player came back, or another sweep was first.
func (w *sweeper) reclaim(ctx context.Context, cmds []game.Command) (rooms, seats int) {
	var mu sync.Mutex
	w.proposeOwn(ctx, cmds, func(c game.Command) {
		mu.Lock()
		defer mu.Unlock()
		if c.Kind == game.KindDeleteRoom {
			rooms++
			w.rooms.Add(1)
		} else {
			seats++
			w.seats.Add(1)
		}
	})
	return rooms, seats
}

// proposeOwn proposes the leader's own commands cmds, at most
// reclaimInflight at once, calls applied (from any goroutine) for each one
// applied, and returns how many were. A refused one is no error: what it
// was for changed while it was on its way, or another copy came first.
func (w *sweeper) proposeOwn(ctx context.Context, cmds []game.Command, applied func(game.Command)) int {
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
			res, _, err := w.replica.Propose(ctx, c.Room, c.Encode())
			if err != nil || res.Err != nil || res.Event == nil {
				w.log.Debug("leader's command not applied", "kind", c.Kind, "room", c.Room, "player", c.Player, "err", err, "refused", res.Err)
				return
			}
			count.Add(1)
			applied(c)
		}()
	}
	wg.Wait()
	return int(count.Load())
}

// register adds the series of reclamation to reg: each idle time as
// configured, and what this node reclaimed and timed out.
func (w *sweeper) register(reg *prometheus.Registry) {
	for what, d := range map[string]time.Duration{"room": w.policy.RoomIdle, "room_over": w.policy.RoomOverIdle, "seat": w.policy.SeatIdle} {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "hangman_reclaim_idle_seconds",
			Help:        "How long a room in play (room), a finished or empty room (room_over) or a seat (seat) may stay idle before the leader reclaims it (--room-idle, --room-over-idle, --seat-idle); 0: never.",
			ConstLabels: prometheus.Labels{"what": what},
		}, func() float64 { return d.Seconds() }))
	}
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "hangman_turn_timeouts_total", Help: "Turns of timed rooms that ran out and that this node, leading, passed to the next player.",
	}, func() float64 { return float64(w.turns.Load()) }))
	for what, v := range map[string]*atomic.Uint64{"room": &w.rooms, "seat": &w.seats} {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "hangman_reclaimed_total", Help: "Idle rooms and seats this node, leading, reclaimed, by what.", ConstLabels: prometheus.Labels{"what": what},
		}, func() float64 { return float64(v.Load()) }))
	}
}
