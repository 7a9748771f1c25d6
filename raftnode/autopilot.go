package raftnode

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	"github.com/hashicorp/serf/serf"

	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
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

// reconcileNow asks the reconcile loop to run soon.
func (n *Node) reconcileNow() {
	select {
	case n.reconcileCh <- struct{}{}:
	default:
	}
}

func (n *Node) reconcileLoop(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-n.reconcileCh:
		}
		if n.raft.State() == raft.Leader && n.readyTerm.Load() == n.raft.CurrentTerm() {
			n.reconcile(ctx)
		}
	}
}

func (n *Node) reconcile(ctx context.Context) {
	cf := n.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		n.log.Warn("reconcile: read configuration", "err", err)
		return
	}
	servers := cf.Configuration().Servers
	if n.removeSuperseded(ctx, servers) {
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
	members := n.members.all()
	for _, m := range members {
		s, ok := inConfig[m.RaftID]
		switch {
		case m.Status == serf.StatusAlive && !ok:
			// Gossip alone is not proof: only a node that answers over
			// gRPC (with a node certificate, when TLS is on) is added.
			if _, err := n.statusOf(ctx, m); err != nil {
				n.log.Debug("not adding a member that does not answer", "member", m.ID, "err", err)
				continue
			}
			n.log.Info("adding non-voter", "member", m.ID, "raft_id", m.RaftID, "raft", m.Raft)
			if err := n.raft.AddNonvoter(m.RaftID, raft.ServerAddress(m.Raft), 0, 5*time.Second).Error(); err != nil {
				n.log.Warn("add non-voter", "member", m.ID, "err", err)
			}
			return
		case m.Status == serf.StatusAlive && s.Suffrage == raft.Nonvoter:
			if now.Sub(m.Since) >= n.cfg.PromoteAfter && !n.olderIncarnationIn(servers, m) && n.caughtUp(ctx, m) {
				n.log.Info("promoting to voter", "member", m.ID, "raft_id", m.RaftID)
				if err := n.raft.AddVoter(s.ID, s.Address, 0, 5*time.Second).Error(); err != nil {
					n.log.Warn("promote", "member", m.ID, "err", err)
				}
				return
			}
		case ok && (m.Status == serf.StatusFailed || m.Status == serf.StatusLeft) && m.RaftID != n.ident.raftID:
			if now.Sub(m.Since) >= n.cfg.ReapAfter && n.canRemove(s, voters, members) {
				n.log.Warn("removing dead server", "member", m.ID, "raft_id", s.ID, "status", m.Status.String(), "for", now.Sub(m.Since).Round(time.Second))
				if err := n.raft.RemoveServer(s.ID, 0, 5*time.Second).Error(); err != nil {
					n.log.Warn("remove server", "member", m.ID, "err", err)
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
func (n *Node) removeSuperseded(ctx context.Context, servers []raft.Server) bool {
	for _, s := range servers {
		if s.ID == n.ident.raftID {
			continue
		}
		m, ok := n.members.superseded(s.ID)
		if !ok {
			continue
		}
		if _, err := n.statusOf(ctx, m); err != nil {
			n.log.Debug("not removing a server superseded only in gossip", "raft_id", s.ID, "member", m.ID, "err", err)
			continue
		}
		n.log.Warn("removing a raft server whose node came back without its data, as a new server",
			"raft_id", s.ID, "suffrage", s.Suffrage.String(), "member", m.ID, "new_raft_id", m.RaftID)
		if err := n.raft.RemoveServer(s.ID, 0, 5*time.Second).Error(); err != nil {
			n.log.Warn("remove superseded server", "raft_id", s.ID, "err", err)
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
func (n *Node) olderIncarnationIn(servers []raft.Server, m member) bool {
	for _, s := range servers {
		if s.ID != m.RaftID && n.members.nodeOf(s.ID) == m.ID {
			return true
		}
	}
	return false
}

// canRemove applies the reaping limits to removing s.
func (n *Node) canRemove(s raft.Server, voters int, members []member) bool {
	if s.Suffrage != raft.Voter {
		return true
	}
	remaining := voters - 1
	if remaining < n.cfg.MinQuorum {
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
func (n *Node) caughtUp(ctx context.Context, m member) bool {
	want := n.raft.CommitIndex()
	st, err := n.statusOf(ctx, m)
	if err != nil {
		n.log.Debug("status of non-voter", "member", m.ID, "err", err)
		return false
	}
	return st.GetTerm() == n.raft.CurrentTerm() && st.GetLastLogIndex()+maxPromoteLag >= want
}

// statusOf asks a member for its raft status over gRPC.
func (n *Node) statusOf(ctx context.Context, m member) (*hangmanv1.StatusResponse, error) {
	if m.GRPC == "" {
		return nil, fmt.Errorf("member %s gossips no gRPC address", m.ID)
	}
	conn, err := n.conns.get(m.GRPC)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	st, err := hangmanv1.NewClusterServiceClient(conn).Status(ctx, &hangmanv1.StatusRequest{})
	if err != nil {
		return nil, fmt.Errorf("status of %s: %w", m.ID, err)
	}
	if st.GetNodeId() != m.ID {
		return nil, fmt.Errorf("member %s answers as %q", m.ID, st.GetNodeId())
	}
	// (A node from before raft ids were per data dir answers none, and
	// its raft id is its node id.)
	if st.GetRaftId() != string(m.RaftID) && (st.GetRaftId() != "" || string(m.RaftID) != m.ID) {
		return nil, fmt.Errorf("member %s gossips raft server id %s but answers as %q", m.ID, m.RaftID, st.GetRaftId())
	}
	return st, nil
}
