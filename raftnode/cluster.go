package raftnode

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
)

// clusterService implements hangmanv1.ClusterServiceServer: the operator's
// window on raft and serf.
type clusterService struct {
	hangmanv1.UnimplementedClusterServiceServer
	node *Node
	// digests bounds the state digests Status computes.
	digests digestLimiter
}

func (c *clusterService) register(s grpc.ServiceRegistrar) {
	hangmanv1.RegisterClusterServiceServer(s, c)
}

// Status reports this node's view of raft, and the digest of its game
// state when asked.
func (c *clusterService) Status(_ context.Context, req *hangmanv1.StatusRequest) (*hangmanv1.StatusResponse, error) {
	st := c.node.Status()
	if req.GetStateDigest() {
		_, index := c.node.fsm.waitApplied()
		digest, applied, ok, err := c.digests.get(time.Now(), index, c.node.fsm.digest)
		switch {
		case err != nil:
			c.node.log.Error("state digest failed", "err", err)
			return nil, status.Error(codes.Internal, "state digest failed")
		case !ok:
			return nil, status.Errorf(codes.ResourceExhausted, "a state digest is computed at most once every %v while the state changes: ask again", digestEvery)
		}
		st.StateDigest, st.StateIndex = digest, applied
	}
	return st, nil
}

// Status reports this node's raft state, leader, term and indexes, and
// what a peer deciding whether to form a cluster needs: whether this node
// has raft state, and its configuration. Ids are node ids, but for raft_id
// and the configuration's server ids.
func (n *Node) Status() *hangmanv1.StatusResponse {
	addr, id := n.raft.LeaderWithID()
	st := &hangmanv1.StatusResponse{
		NodeId:        n.cfg.ID,
		RaftId:        string(n.ident.raftID),
		State:         n.raft.State().String(),
		LeaderAddress: string(addr),
		Term:          n.raft.CurrentTerm(),
		CommitIndex:   n.raft.CommitIndex(),
		AppliedIndex:  n.raft.AppliedIndex(),
		LastLogIndex:  n.raft.LastIndex(),
		HasState:      hasState(n.raft),
	}
	if id != "" {
		st.LeaderId = n.members.nodeOf(id)
		if m, ok := n.members.byRaftID(id); ok {
			st.LeaderGrpcAddress = m.GRPC
		}
	}
	st.Configuration = n.raftServers(n.raft.GetConfiguration().Configuration(), id)
	return st
}

// raftServers describes a raft configuration for the API.
func (n *Node) raftServers(c raft.Configuration, leader raft.ServerID) []*hangmanv1.RaftServer {
	out := make([]*hangmanv1.RaftServer, 0, len(c.Servers))
	for _, s := range c.Servers {
		// The address raft dials now, which the stored one may not be
		// (autopilot.go).
		addr, err := n.ident.ServerAddr(s.ID)
		if err != nil {
			addr = s.Address
		}
		out = append(out, &hangmanv1.RaftServer{
			Id: string(s.ID), NodeId: n.members.nodeOf(s.ID), Address: string(addr), Suffrage: s.Suffrage.String(), Leader: s.ID == leader,
		})
	}
	return out
}

// Members lists serf members.
func (c *clusterService) Members(context.Context, *hangmanv1.MembersRequest) (*hangmanv1.MembersResponse, error) {
	ms := c.node.membership.serf.Members()
	out := &hangmanv1.MembersResponse{Members: make([]*hangmanv1.Member, 0, len(ms))}
	for _, m := range ms {
		pm := &hangmanv1.Member{Name: m.Name, Address: m.Addr.String(), Status: m.Status.String(), Tags: m.Tags}
		if m.Tags[tagRole] == roleNode {
			pm.GrpcAddress = m.Tags[tagGRPC]
		}
		out.Members = append(out.Members, pm)
	}
	slices.SortFunc(out.Members, func(a, b *hangmanv1.Member) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// RaftConfiguration lists the servers of the latest configuration.
func (c *clusterService) RaftConfiguration(context.Context, *hangmanv1.RaftConfigurationRequest) (*hangmanv1.RaftConfigurationResponse, error) {
	f := c.node.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, status.Errorf(codes.Unavailable, "read raft configuration: %v", err)
	}
	_, leader := c.node.raft.LeaderWithID()
	return &hangmanv1.RaftConfigurationResponse{Index: f.Index(), Servers: c.node.raftServers(f.Configuration(), leader)}, nil
}

// TransferLeadership hands leadership over; a follower passes the request
// to the leader.
func (c *clusterService) TransferLeadership(ctx context.Context, req *hangmanv1.TransferLeadershipRequest) (*hangmanv1.TransferLeadershipResponse, error) {
	n := c.node
	if n.raft.State() != raft.Leader {
		conn := n.LeaderConn()
		if conn == nil {
			return nil, status.Error(codes.Unavailable, "no known leader to transfer leadership from")
		}
		return hangmanv1.NewClusterServiceClient(conn).TransferLeadership(ctx, req)
	}
	var f raft.Future
	if target := req.GetTargetId(); target != "" {
		if target == n.cfg.ID || target == string(n.ident.raftID) {
			return nil, status.Errorf(codes.InvalidArgument, "node %q already leads", target)
		}
		var to *raft.Server
		for _, s := range n.raft.GetConfiguration().Configuration().Servers {
			if s.Suffrage == raft.Voter && (string(s.ID) == target || n.members.nodeOf(s.ID) == target) {
				to = &s
			}
		}
		if to == nil {
			return nil, status.Errorf(codes.NotFound, "no voter %q in the raft configuration", target)
		}
		addr, err := n.ident.ServerAddr(to.ID)
		if err != nil {
			addr = to.Address
		}
		f = n.raft.LeadershipTransferToServer(to.ID, addr)
	} else {
		f = n.raft.LeadershipTransfer()
	}
	if err := f.Error(); err != nil {
		return nil, status.Errorf(codes.Unavailable, "leadership transfer: %v", err)
	}
	// The transfer is done when the target has started its election; wait
	// (briefly) until this node hears who won, to name the new leader.
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	for {
		changed := n.LeaderChanged()
		if _, id := n.raft.LeaderWithID(); id != "" && id != n.ident.raftID {
			return &hangmanv1.TransferLeadershipResponse{LeaderId: n.members.nodeOf(id), Term: n.raft.CurrentTerm()}, nil
		}
		select {
		case <-ctx.Done():
			return &hangmanv1.TransferLeadershipResponse{Term: n.raft.CurrentTerm()}, nil
		case <-changed:
		}
	}
}
