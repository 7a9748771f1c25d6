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
}

func (c *clusterService) register(s grpc.ServiceRegistrar) {
	hangmanv1.RegisterClusterServiceServer(s, c)
}

// Status reports this node's view of raft.
func (c *clusterService) Status(context.Context, *hangmanv1.StatusRequest) (*hangmanv1.StatusResponse, error) {
	return c.node.Status(), nil
}

// Status reports this node's raft state, leader, term and indexes.
func (n *Node) Status() *hangmanv1.StatusResponse {
	addr, id := n.raft.LeaderWithID()
	return &hangmanv1.StatusResponse{
		NodeId:            n.cfg.ID,
		State:             n.raft.State().String(),
		LeaderId:          string(id),
		LeaderAddress:     string(addr),
		LeaderGrpcAddress: n.members.grpcAddr(string(id)),
		Term:              n.raft.CurrentTerm(),
		CommitIndex:       n.raft.CommitIndex(),
		AppliedIndex:      n.raft.AppliedIndex(),
		LastLogIndex:      n.raft.LastIndex(),
	}
}

// Members lists serf members.
func (c *clusterService) Members(context.Context, *hangmanv1.MembersRequest) (*hangmanv1.MembersResponse, error) {
	ms := c.node.serf.Members()
	out := &hangmanv1.MembersResponse{Members: make([]*hangmanv1.Member, 0, len(ms))}
	for _, m := range ms {
		out.Members = append(out.Members, &hangmanv1.Member{
			Name: m.Name, Address: m.Addr.String(), Status: m.Status.String(), Tags: m.Tags,
		})
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
	out := &hangmanv1.RaftConfigurationResponse{Index: f.Index()}
	for _, s := range f.Configuration().Servers {
		out.Servers = append(out.Servers, &hangmanv1.RaftServer{
			Id: string(s.ID), Address: string(s.Address), Suffrage: s.Suffrage.String(), Leader: s.ID == leader,
		})
	}
	return out, nil
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
		if target == n.cfg.ID {
			return nil, status.Errorf(codes.InvalidArgument, "node %q already leads", target)
		}
		var addr raft.ServerAddress
		for _, s := range n.raft.GetConfiguration().Configuration().Servers {
			if string(s.ID) == target && s.Suffrage == raft.Voter {
				addr = s.Address
			}
		}
		if addr == "" {
			return nil, status.Errorf(codes.NotFound, "no voter %q in the raft configuration", target)
		}
		f = n.raft.LeadershipTransferToServer(raft.ServerID(target), addr)
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
		if _, id := n.raft.LeaderWithID(); id != "" && string(id) != n.cfg.ID {
			return &hangmanv1.TransferLeadershipResponse{LeaderId: string(id), Term: n.raft.CurrentTerm()}, nil
		}
		select {
		case <-ctx.Done():
			return &hangmanv1.TransferLeadershipResponse{Term: n.raft.CurrentTerm()}, nil
		case <-changed:
		}
	}
}
