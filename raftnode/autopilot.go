package raftnode

import (
	"context"
	"log/slog"
	"time"

	"github.com/hashicorp/raft"
	"github.com/hashicorp/serf/serf"
)

// The leader reconciles serf's view of the cluster into the raft
// configuration, conservatively, as Consul's autopilot does:
//
//   - a raft server whose node is alive under a new raft id (the node came
//     back without its data dir, identity.go) is removed at once: it can
//     never answer again, and while it stays its old id could be
//     mistaken for the new server at the same address;
//   - a live node missing from the configuration joins as a non-voter;
//   - a non-voter is promoted once it has been alive for PromoteAfter, its
//     log has caught up with where the leader's commit index was, and no
//     older incarnation of its node is left in the configuration;
//   - a voter that serf reports failed (or that left) is removed only after
//     ReapAfter, only one at a time, never leaving fewer than MinQuorum
//     voters and never when the remaining voters could not form a quorum.
//
// A single serf "failed" event therefore never removes a voter, and a
// voter that lost its disk rejoins as a new server (non-voter, caught up,
// then voter) rather than as itself with a forgotten term and vote.
//
// A server that came back on a new address keeps its stored one: raft
// dials every server at the address its node gossips now
// (identity.ServerAddr), and rewriting the configuration for an address
// races, in hashicorp/raft 1.8, with the replicator of that very server
// (startStopReplication writes its peer while updateLastAppended reads it
// unlocked), which the race detector caught.

// maxPromoteLag is how many entries a non-voter may trail the leader's
// commit index and still count as caught up.
const maxPromoteLag = 256

// autopilot is the leader's reconciliation of serf's view into the raft
// configuration (as above), apart from Node so that what it reads and
// changes is in sight: raft, the member table, the peers it asks over
// gRPC, and the limits it keeps to.
type autopilot struct {
	raft    *raft.Raft
	members *memberTable
	peers   *connPool
	// self is this node's raft server id.
	self raft.ServerID
	// ready reports whether this node leads and has applied everything
	// earlier leaders committed (Node.readyLeader): only then does it
	// reconcile.
	ready func() bool
	// promoteAfter, reapAfter and minQuorum are Config's PromoteAfter,
	// ReapAfter and MinQuorum.
	promoteAfter, reapAfter time.Duration
	minQuorum               int
	log                     *slog.Logger
	// kick asks the loop for a pass.
	kick chan struct{}
}

// newAutopilot returns the autopilot of a node with cfg whose raft server
// id is self.
func newAutopilot(r *raft.Raft, members *memberTable, peers *connPool, self raft.ServerID, ready func() bool, cfg Config, log *slog.Logger) *autopilot {
	return &autopilot{raft: r, members: members, peers: peers, self: self, ready: ready,
		promoteAfter: cfg.PromoteAfter, reapAfter: cfg.ReapAfter, minQuorum: cfg.MinQuorum, log: log, kick: make(chan struct{}, 1)}
}

// now asks the reconcile loop to run soon.
func (a *autopilot) now() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// run reconciles every second, and when asked (now), while this node is a
// ready leader.
func (a *autopilot) run(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-a.kick:
		}
		if a.ready() {
			a.reconcile(ctx)
		}
	}
}

// reconcile makes the first change to the raft configuration that is due,
// by the rules above, if any: one per pass.
func (a *autopilot) reconcile(ctx context.Context) {
	cf := a.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		a.log.Warn("reconcile: read configuration", "err", err)
		return
	}
	servers := cf.Configuration().Servers
	if a.removeSuperseded(ctx, servers) {
		return // one change per pass: the configuration just moved
	}
	inConfig := make(map[raft.ServerID]raft.Server, len(servers))
	voters := 0
	for _, s := range servers {
		inConfig[s.ID] = s
		if s.Suffrage == raft.Voter {
			voters++
		}
	}
	now := time.Now()
	members := a.members.all()
	for _, m := range members {
		s, ok := inConfig[m.RaftID]
		switch {
		case m.Status == serf.StatusAlive && !ok:
			// Gossip alone is not proof: only a node that answers over
			// gRPC (with a node certificate, when TLS is on) is added.
			if _, err := a.peers.status(ctx, m); err != nil {
				a.log.Debug("not adding a member that does not answer", "member", m.ID, "err", err)
				continue
			}
			a.log.Info("adding non-voter", "member", m.ID, "raft_id", m.RaftID, "raft", m.Raft)
			if err := a.raft.AddNonvoter(m.RaftID, raft.ServerAddress(m.Raft), 0, 5*time.Second).Error(); err != nil {
				a.log.Warn("add non-voter", "member", m.ID, "err", err)
			}
			return
		case m.Status == serf.StatusAlive && s.Suffrage == raft.Nonvoter:
			if now.Sub(m.Since) >= a.promoteAfter && !a.olderIncarnationIn(servers, m) && a.caughtUp(ctx, m) {
				a.log.Info("promoting to voter", "member", m.ID, "raft_id", m.RaftID)
				if err := a.raft.AddVoter(s.ID, s.Address, 0, 5*time.Second).Error(); err != nil {
					a.log.Warn("promote", "member", m.ID, "err", err)
				}
				return
			}
		case ok && (m.Status == serf.StatusFailed || m.Status == serf.StatusLeft) && m.RaftID != a.self:
			if now.Sub(m.Since) >= a.reapAfter && a.canRemove(s, voters, members) {
				a.log.Warn("removing dead server", "member", m.ID, "raft_id", s.ID, "status", m.Status.String(), "for", now.Sub(m.Since).Round(time.Second))
				if err := a.raft.RemoveServer(s.ID, 0, 5*time.Second).Error(); err != nil {
					a.log.Warn("remove server", "member", m.ID, "err", err)
				}
				return
			}
		}
	}
}

// removeSuperseded removes one server of the configuration whose node
// answers, over gRPC, as a different raft server: that incarnation's data
// dir is gone, and with it every vote it could cast, so removing it costs
// no availability (for an odd number of voters the quorum size does not
// change), and it is removed without the grace period and quorum floor
// that protect servers that may come back. It reports whether it changed
// the configuration.
func (a *autopilot) removeSuperseded(ctx context.Context, servers []raft.Server) bool {
	for _, s := range servers {
		if s.ID == a.self {
			continue
		}
		m, ok := a.members.superseded(s.ID)
		if !ok {
			continue
		}
		if _, err := a.peers.status(ctx, m); err != nil {
			a.log.Debug("not removing a server superseded only in gossip", "raft_id", s.ID, "member", m.ID, "err", err)
			continue
		}
		a.log.Warn("removing a raft server whose node came back without its data, as a new server",
			"raft_id", s.ID, "suffrage", s.Suffrage.String(), "member", m.ID, "new_raft_id", m.RaftID)
		if err := a.raft.RemoveServer(s.ID, 0, 5*time.Second).Error(); err != nil {
			a.log.Warn("remove superseded server", "raft_id", s.ID, "err", err)
		}
		return true
	}
	return false
}

// olderIncarnationIn reports whether servers still hold another raft
// server of m's node. A new incarnation becomes a voter only after the old
// one's removal has committed (raft takes one configuration change at a
// time, each committed before the next): that is what makes its votes
// safe, see raftTransport.
func (a *autopilot) olderIncarnationIn(servers []raft.Server, m member) bool {
	for _, s := range servers {
		if s.ID != m.RaftID && a.members.nodeOf(s.ID) == m.ID {
			return true
		}
	}
	return false
}

// canRemove applies the reaping limits to removing s.
func (a *autopilot) canRemove(s raft.Server, voters int, members []member) bool {
	if s.Suffrage != raft.Voter {
		return true
	}
	remaining := voters - 1
	if remaining < a.minQuorum {
		return false
	}
	healthy := 0
	for _, m := range members {
		if m.Status == serf.StatusAlive {
			healthy++
		}
	}
	return healthy >= remaining/2+1
}

// caughtUp asks a non-voter over gRPC how far its log is, and compares it
// with the leader's commit index.
func (a *autopilot) caughtUp(ctx context.Context, m member) bool {
	want := a.raft.CommitIndex()
	st, err := a.peers.status(ctx, m)
	if err != nil {
		a.log.Debug("status of non-voter", "member", m.ID, "err", err)
		return false
	}
	return st.GetTerm() == a.raft.CurrentTerm() && st.GetLastLogIndex()+maxPromoteLag >= want
}
