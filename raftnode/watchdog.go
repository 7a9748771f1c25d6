package raftnode

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// errStalled is what Ready reports while the node has given up leadership
// for a stalled log and has not applied anything since.
var errStalled = errors.New("gave up leadership: could not commit to its own log (stalled disk?); ready again once it applies entries from the cluster")

// stallGuard is the stall watchdog at work on a node (DESIGN.md,
// guarantee 7): it feeds stallWatch what the node looks like, and acts on
// its answers. Raft steps a leader down when it loses its quorum, but not
// when its own disk stalls: its heartbeats go on from other goroutines, so
// followers never elect anyone while every write waits. When writes are in
// flight and nothing has been applied for StallTimeout while this node led
// in one term, it hands leadership over, and if even that cannot happen it
// cuts its raft connections for a while, so that the followers stop
// hearing from it and elect a leader whose disk works. The cut heals by
// itself (stallWatch.cutFor later the node listens again and follows the
// new leader), and the node is ready again as soon as it applies an entry.
// An idle leader writes nothing for this, and a paused process (SIGSTOP)
// is not taken for a stalled disk: stallWatch says how. It is apart from
// Node so that what it reads and acts on is in sight.
type stallGuard struct {
	*stallWatch
	// inflight counts the proposals waiting for raft: every path into
	// raft adds to it.
	inflight inflightCount
	raft     *raft.Raft
	// progress is when the state machine last applied entries (Unix
	// nanoseconds; fsm.progress).
	progress *atomic.Int64
	// layer is raft's network layer, which a leader that cannot give up
	// leadership cuts; nil over an injected transport
	// (Config.raftTransport), which has no layer to cut.
	layer           *cuttableLayer
	stallTimeout    time.Duration
	electionTimeout time.Duration
	// healthChanged mirrors readiness again (Node.updateHealth).
	healthChanged func()
	log           *slog.Logger
}

// newStallGuard returns the watchdog of a node with cfg over r, its state
// machine's progress and its raft layer.
func newStallGuard(r *raft.Raft, progress *atomic.Int64, layer *cuttableLayer, cfg Config, healthChanged func(), log *slog.Logger) *stallGuard {
	return &stallGuard{stallWatch: newStallWatch(cfg.StallTimeout, cfg.cutOffFor()), raft: r, progress: progress, layer: layer,
		stallTimeout: cfg.StallTimeout, electionTimeout: cfg.ElectionTimeout, healthChanged: healthChanged, log: log}
}

// run ticks the watch and acts on its answers until ctx ends.
func (g *stallGuard) run(ctx context.Context) {
	tick := time.NewTicker(g.every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		switch act, term := g.tick(time.Now(), g.sample()); act {
		case stallGiveUp:
			g.giveUpLeadership(term)
		case stallRestore:
			g.log.Warn("restoring the raft transport cut off by the stall watchdog: the node rejoins as a follower", "cut_for", g.cutFor)
			g.layer.restore()
		case stallHealed:
			g.log.Info("the node applies entries again after giving up leadership: ready")
			g.healthChanged()
		case stallWait:
		}
	}
}

// sample reads what the watchdog decides on.
func (g *stallGuard) sample() stallSample {
	return stallSample{
		Leader:        g.raft.State() == raft.Leader,
		Term:          g.raft.CurrentTerm(),
		Inflight:      g.inflight.n.Load(),
		InflightSince: time.Unix(0, g.inflight.since.Load()),
		Progress:      time.Unix(0, g.progress.Load()),
	}
}

// leadsIn reports whether this node leads in term right now.
func (g *stallGuard) leadsIn(term uint64) bool {
	return g.raft.State() == raft.Leader && g.raft.CurrentTerm() == term
}

// giveUpLeadership tries a clean transfer first, then cuts the node off,
// each only while the node still leads in the term the watchdog measured:
// a node that has been deposed meanwhile (the usual end of a pause) is
// left alone.
func (g *stallGuard) giveUpLeadership(term uint64) {
	if !g.leadsIn(term) {
		g.log.Info("stall watchdog: the node no longer leads in the measured term; nothing to give up", "term", term)
		return
	}
	g.log.Error("leader cannot commit to its log; giving up leadership", "stall_timeout", g.stallTimeout, "term", term)
	g.gaveUpLeadership(term, time.Now())
	g.healthChanged()
	transferred := make(chan error, 1)
	go func() { transferred <- g.raft.LeadershipTransfer().Error() }()
	select {
	case err := <-transferred:
		if err == nil {
			return
		}
	case <-time.After(g.electionTimeout * 2):
	}
	if !g.leadsIn(term) {
		g.log.Info("leadership transfer failed, but the node no longer leads: not cutting it off", "term", term)
		return
	}
	if g.layer == nil {
		g.log.Error("leadership transfer failed, and raft's transport has no layer to cut: the node stays unready until it applies entries again", "term", term)
		return
	}
	g.log.Error("leadership transfer failed; cutting this node off raft so the followers elect another leader", "for", g.cutFor)
	g.layer.cutOff()
	g.cut(time.Now())
}

// inflightCount counts the proposals waiting for raft on this node, and
// when the count last rose from zero: what the stall watchdog reads to
// tell a leader whose writes make no progress from one with nothing to
// write. Every path into raft (Propose, and the leader's end of
// forwarding) counts through add.
type inflightCount struct {
	n     atomic.Int64
	since atomic.Int64 // Unix nanoseconds
}

// add counts k more proposals, started at now; the returned func takes
// them off again once they are answered.
func (c *inflightCount) add(k int, now time.Time) (done func()) {
	if c.n.Add(int64(k)) == int64(k) {
		c.since.Store(now.UnixNano())
	}
	return func() { c.n.Add(-int64(k)) }
}

// stallAction is what stallWatch.tick asks the node to do.
type stallAction int

const (
	// stallWait: nothing to do.
	stallWait stallAction = iota
	// stallGiveUp: hand leadership over, if the node still leads in the
	// returned term.
	stallGiveUp
	// stallRestore: the cut-off has lasted long enough; listen again.
	stallRestore
	// stallHealed: the node applied entries since it gave up; it is ready.
	stallHealed
)

// stallSample is what the watchdog reads from the node at a tick.
type stallSample struct {
	Leader bool
	Term   uint64
	// Inflight counts writes waiting for raft; InflightSince is when the
	// count last rose from zero.
	Inflight      int64
	InflightSince time.Time
	// Progress is when the state machine last applied entries.
	Progress time.Time
}

// stallWatch is the watchdog's decision, apart from the node so that tests
// drive it with their own clock and readings. It is told the time and
// what the node looks like at every tick and answers what to do.
//
// A measurement belongs to one term: it starts when the watchdog first
// sees this node lead with writes in flight in that term, and is dropped
// when the node stops leading, the writes drain or the term changes. The
// writes count as stalled once timeout has passed since the latest of
// that start, the last apply and the moment the writes started.
//
// A tick that arrives much later than scheduled (more than two periods
// after the previous one) means the process itself was not running, as
// under SIGSTOP: the clock moved on while nothing could be applied, so
// the measurement starts again from that tick instead of firing. By the
// next tick raft has noticed whether the node was deposed meanwhile.
type stallWatch struct {
	timeout time.Duration // writes see no apply this long: stalled
	every   time.Duration // the tick period
	cutFor  time.Duration // how long a cut-off lasts

	mu       sync.Mutex
	lastTick time.Time
	term     uint64    // term being measured; 0: none
	since    time.Time // start of the measurement
	gaveUp   uint64    // term in which the node gave up leadership; 0: none, or healed
	gaveUpAt time.Time
	cutAt    time.Time // when the transport was cut; zero while it is not
}

// newStallWatch returns a watch that ticks four times per timeout and
// keeps a cut-off for cutFor.
func newStallWatch(timeout, cutFor time.Duration) *stallWatch {
	return &stallWatch{timeout: timeout, every: timeout / 4, cutFor: cutFor}
}

// tick decides what the node should do at now, given s. The term comes
// with stallGiveUp: the node must still lead in it to act.
func (w *stallWatch) tick(now time.Time, s stallSample) (stallAction, uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	late := !w.lastTick.IsZero() && now.Sub(w.lastTick) > 2*w.every
	w.lastTick = now
	if !w.cutAt.IsZero() {
		w.term = 0
		if now.Sub(w.cutAt) < w.cutFor {
			return stallWait, 0
		}
		w.cutAt = time.Time{}
		return stallRestore, 0
	}
	if w.gaveUp != 0 && s.Progress.After(w.gaveUpAt) {
		w.gaveUp, w.gaveUpAt = 0, time.Time{}
		return stallHealed, 0
	}
	if !s.Leader || s.Inflight == 0 || s.Term == w.gaveUp {
		w.term = 0
		return stallWait, 0
	}
	if late || s.Term != w.term {
		w.term, w.since = s.Term, now
		return stallWait, 0
	}
	start := w.since
	for _, t := range []time.Time{s.Progress, s.InflightSince} {
		if t.After(start) {
			start = t
		}
	}
	if now.Sub(start) < w.timeout {
		return stallWait, 0
	}
	w.term = 0
	return stallGiveUp, s.Term
}

// gaveUpLeadership records that the node gave up leadership in term at
// now: it is unready until it applies an entry after now.
func (w *stallWatch) gaveUpLeadership(term uint64, now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.gaveUp, w.gaveUpAt = term, now
}

// cut records that the transport was cut off at now.
func (w *stallWatch) cut(now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.cutAt = now
}

// ready returns errStalled while the node has given up leadership and not
// applied anything since.
func (w *stallWatch) ready() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.gaveUp != 0 {
		return errStalled
	}
	return nil
}
