package raftnode

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
)

// lagPollInterval is how often a follower asks the leader for its commit
// index, and how often readiness is mirrored into grpc.health.v1 on top of
// the leadership changes that update it at once.
const lagPollInterval = time.Second

// watchLag keeps n.leaderCommit, the leader's commit index, fresh. A
// follower cannot read it from its own raft: raft caps a follower's commit
// index at its own last entry, so a follower that cannot append (a full
// disk) would look caught up. So a follower asks the leader
// (ClusterService.Status) once per lagPollInterval; a leader reads its
// own. It also re-mirrors readiness into grpc.health.v1, which changes
// with the disk and the lag, not only with leadership.
func (n *Node) watchLag(ctx context.Context) {
	tick := time.NewTicker(lagPollInterval)
	defer tick.Stop()
	for {
		n.sampleLeaderCommit(ctx)
		n.updateHealth()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (n *Node) sampleLeaderCommit(ctx context.Context) {
	if n.raft.State() == raft.Leader {
		n.noteLeaderCommit(n.raft.CommitIndex())
		return
	}
	conn := n.LeaderConn()
	if conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, lagPollInterval)
	defer cancel()
	st, err := hangmanv1.NewClusterServiceClient(conn).Status(ctx, &hangmanv1.StatusRequest{})
	if err != nil {
		n.log.Debug("ask the leader for its commit index", "err", err)
		return
	}
	n.noteLeaderCommit(st.GetCommitIndex())
}

// noteLeaderCommit records a leader's commit index. Commit indexes only
// grow, whoever leads (a new leader's may trail its predecessor's until it
// commits in its own term): keep the highest seen.
func (n *Node) noteLeaderCommit(index uint64) {
	for {
		old := n.leaderCommit.Load()
		if index <= old || n.leaderCommit.CompareAndSwap(old, index) {
			return
		}
	}
}

// lag is how many entries this node's applied index trails the leader's
// commit index as last sampled.
func (n *Node) lag() uint64 {
	lc, applied := n.leaderCommit.Load(), n.raft.AppliedIndex()
	if lc > applied {
		return lc - applied
	}
	return 0
}

// storageReady says why the node must not count as ready on account of
// its storage: it cannot write its log, or it trails the leader by more
// than MaxLag entries (it would serve stale reads and, if elected, make
// everyone wait while it catches up).
func (n *Node) storageReady() error {
	if err := n.logStore.WriteHealth(); err != nil {
		return err
	}
	if l := n.lag(); l > n.cfg.MaxLag {
		return fmt.Errorf("%d entries behind the leader's commit index %d (at most %d allowed)", l, n.leaderCommit.Load(), n.cfg.MaxLag)
	}
	return nil
}
