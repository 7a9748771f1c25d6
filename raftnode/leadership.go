package raftnode

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// leaderSignal wakes everyone waiting for a leadership change: a channel
// that each change closes and replaces. Raft tells one reader of each
// change (NotifyCh, observers); through this, any number of waiters
// (LeaderRead, forwarding, TransferLeadership) wait on a channel of their
// own choosing, with their own deadline, and none misses a change that
// happens between reading the state and waiting.
type leaderSignal struct {
	mu sync.Mutex
	ch chan struct{}
}

func newLeaderSignal() *leaderSignal { return &leaderSignal{ch: make(chan struct{})} }

// next returns a channel closed at the next change: read it before
// looking at the state, then wait on it.
func (s *leaderSignal) next() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ch
}

// signal wakes every waiter.
func (s *leaderSignal) signal() {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.ch)
	s.ch = make(chan struct{})
}

// observe registers an observer of r that passes on, into a channel of
// buf, the observations whose Data is a T, dropping them when the channel
// is full (raft must never block on an observer); stop deregisters it.
func observe[T any](r *raft.Raft, buf int) (obs <-chan raft.Observation, stop func()) {
	ch := make(chan raft.Observation, buf)
	observer := raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(T)
		return ok
	})
	r.RegisterObserver(observer)
	return ch, func() { r.DeregisterObserver(observer) }
}

// notifyLoop consumes raft's NotifyCh (which must never block) and wakes
// everyone waiting for a leadership change.
func (n *Node) notifyLoop(ctx context.Context, ch <-chan bool) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-ch:
			n.leaderChanged.signal()
		}
	}
}

// watchLeadership follows who leads. Every change wakes waiters; when this
// node gains leadership it commits a marker entry (so it has applied
// everything earlier leaders committed), then republishes every room so consumers that
// missed the old leader's last messages converge.
func (n *Node) watchLeadership(ctx context.Context) {
	obs, stop := observe[raft.LeaderObservation](n.raft, 16)
	defer stop()
	var lastLeader raft.ServerID
	for {
		select {
		case <-ctx.Done():
			return
		case o := <-obs:
			lo := o.Data.(raft.LeaderObservation)
			n.leaderChanged.signal()
			if lo.LeaderID == lastLeader {
				continue
			}
			lastLeader = lo.LeaderID
			n.log.Info("leader changed", "leader", n.members.nodeOf(lo.LeaderID), "raft_id", lo.LeaderID, "term", n.raft.CurrentTerm())
			n.updateHealth()
			if lo.LeaderID == n.ident.raftID {
				n.goRun(func() { n.becomeLeader(ctx) })
			} else {
				n.pub.SetLeader(false)
			}
		}
	}
}

// becomeLeader runs once per term in which this node leads.
func (n *Node) becomeLeader(ctx context.Context) {
	term := n.raft.CurrentTerm()
	for n.raft.State() == raft.Leader && n.raft.CurrentTerm() == term && ctx.Err() == nil {
		// Committing an entry of its own term settles everything earlier
		// leaders committed, and once it is applied here so is all of that.
		if err := awaitFuture(ctx, n.raft.Apply(leaderMarker, 5*time.Second)); err != nil {
			if ctx.Err() == nil {
				n.log.Warn("leader marker failed", "term", term, "err", err)
			}
			continue
		}
		break
	}
	if n.raft.State() != raft.Leader || n.raft.CurrentTerm() != term {
		return
	}
	n.readyTerm.Store(term)
	n.leaderChanged.signal()
	// Start publishing and republish under the FSM lock, so the republished
	// states sit in the queue exactly where the log is.
	n.fsm.mu.RLock()
	n.pub.SetLeader(true)
	n.pub.EnqueueRepublish(n.fsm.machine, term)
	n.fsm.mu.RUnlock()
	n.log.Info("leading", "term", term, "applied", n.raft.AppliedIndex())
	n.autopilot.now()
}

// republishOnReconnect republishes every room when what this node
// publishes may have been lost on the way, while it leads:
//
//   - its publisher's connection to NATS came back (messages published
//     while it was down may not have reached anyone);
//   - its NATS server gained a route to a server it had none to in the
//     last sample (the embedded servers form a full mesh, so a server cut
//     off from this one missed everything this node published meanwhile,
//     and its subscribers, relays among them, would otherwise wait for the
//     room's next change to catch up).
//
// Consumers drop repeats by seq, so republishing is always safe.
func (n *Node) republishOnReconnect(ctx context.Context) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	remotes := n.nats.Remotes()
	for {
		why := ""
		select {
		case <-ctx.Done():
			return
		case <-n.pub.Reconnected():
			why = "publisher reconnected to NATS"
		case <-tick.C:
			now := n.nats.Remotes()
			for id := range now {
				if !remotes[id] {
					why = "NATS route restored"
					break
				}
			}
			remotes = now
		}
		if why == "" {
			continue
		}
		n.fsm.mu.RLock()
		if n.pub.Leading() {
			n.log.Info("republishing every room", "why", why)
			n.pub.EnqueueRepublish(n.fsm.machine, n.raft.CurrentTerm())
		}
		n.fsm.mu.RUnlock()
	}
}

// awaitFuture waits for f's answer, or for ctx to end. hashicorp/raft
// answers apply and verify futures only from its main loop, and queues
// them in buffered channels (applies with BatchApplyCh): a call racing
// Shutdown may queue its future after that loop has gone, and nothing
// ever answers it (those futures have no shutdown channel). Waiting on
// such a future with f.Error() alone kept a node's Close waiting forever
// for its new-leader goroutine. The goroutine that waits for a stranded
// future outlives the call; there is one per future raft strands, at
// shutdown.
func awaitFuture(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("waiting for raft: %w", ctx.Err())
	}
}
