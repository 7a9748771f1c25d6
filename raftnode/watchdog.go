package raftnode

import (
	"context"
	"errors"
	"time"

	"github.com/hashicorp/raft"
)

// errStalled is what Ready reports once the node has stepped down for a
// stalled log.
var errStalled = errors.New("stepped down: could not commit to its own log (stalled disk?); restart the node")

// watchStall makes a leader that cannot make progress give way (DESIGN.md,
// guarantee 7). Raft steps a leader down when it loses its quorum, but not
// when its own disk stalls: its heartbeats go on from other goroutines, so
// followers never elect anyone while every write waits. When writes are in
// flight and nothing has been applied for StallTimeout, this node hands
// leadership over, and if even that cannot happen it cuts its raft
// connections, so that the followers stop hearing from it and elect a
// leader whose disk works. Either way the node stays unready until it is
// restarted. An idle leader writes nothing for this.
func (n *Node) watchStall(ctx context.Context) {
	tick := time.NewTicker(n.cfg.StallTimeout / 4)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if n.raft.State() != raft.Leader || n.stalled.Load() || n.inflight.Load() == 0 {
			continue
		}
		last := max(n.fsm.progress.Load(), n.inflightSince.Load())
		if time.Since(time.Unix(0, last)) >= n.cfg.StallTimeout {
			n.giveUpLeadership()
		}
	}
}

// giveUpLeadership tries a clean transfer first, then cuts the node off.
func (n *Node) giveUpLeadership() {
	n.log.Error("leader cannot commit to its log; giving up leadership", "stall_timeout", n.cfg.StallTimeout)
	n.stalled.Store(true)
	transferred := make(chan error, 1)
	go func() { transferred <- n.raft.LeadershipTransfer().Error() }()
	select {
	case err := <-transferred:
		if err == nil {
			return
		}
	case <-time.After(n.cfg.ElectionTimeout * 2):
	}
	n.log.Error("leadership transfer failed; cutting this node off raft so the followers elect another leader")
	n.raftLayer.cutOff()
}
