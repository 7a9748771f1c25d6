package raftnode

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"

	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
)

// lagPollInterval is how often a follower asks the leader for its commit
// index, and how often readiness is mirrored into grpc.health.v1 on top of
// the leadership changes that update it at once.
const lagPollInterval = time.Second

// watchLag keeps the leader's commit index as this node knows it fresh
// (leaderLag.sample), once per lagPollInterval, and re-mirrors readiness
// into grpc.health.v1 as often, since readiness changes with the disk and
// the lag, not only with leadership.
func (n *Node) watchLag(ctx context.Context) {
	tick := time.NewTicker(lagPollInterval)
	defer tick.Stop()
	for {
		n.lag.sample(ctx)
		n.updateHealth()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// leaderLag is how far this node trails the leader: the leader's commit
// index as last sampled, against this node's applied index. A follower
// cannot read the leader's commit index from its own raft: raft caps a
// follower's commit index at its own last entry, so a follower that
// cannot append (a full disk) would look caught up. So a follower asks the
// leader (ClusterService.Status); a leader reads its own.
type leaderLag struct {
	raft *raft.Raft
	// leaderConn returns a connection to the leader, nil when this node
	// leads or none is known (Node.LeaderConn).
	leaderConn func() *grpc.ClientConn
	// commit is the leader's commit index as last sampled.
	commit atomic.Uint64
	log    *slog.Logger
}

// sample asks the leader for its commit index, or reads its own when
// leading, and notes it.
func (l *leaderLag) sample(ctx context.Context) {
	if l.raft.State() == raft.Leader {
		l.note(l.raft.CommitIndex())
		return
	}
	conn := l.leaderConn()
	if conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, lagPollInterval)
	defer cancel()
	st, err := hangmanv1.NewClusterServiceClient(conn).Status(ctx, &hangmanv1.StatusRequest{})
	if err != nil {
		l.log.Debug("ask the leader for its commit index", "err", err)
		return
	}
	l.note(st.GetCommitIndex())
}

// note records a leader's commit index. Commit indexes only grow, whoever
// leads (a new leader's may trail its predecessor's until it commits in
// its own term): keep the highest seen.
func (l *leaderLag) note(index uint64) {
	for {
		old := l.commit.Load()
		if index <= old || l.commit.CompareAndSwap(old, index) {
			return
		}
	}
}

// entries is how many entries this node's applied index trails the
// leader's commit index as last sampled.
func (l *leaderLag) entries() uint64 {
	lc, applied := l.commit.Load(), l.raft.AppliedIndex()
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
	if l := n.lag.entries(); l > n.cfg.MaxLag {
		return fmt.Errorf("%d entries behind the leader's commit index %d (at most %d allowed)", l, n.lag.commit.Load(), n.cfg.MaxLag)
	}
	return nil
}
