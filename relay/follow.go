package relay

import (
	"context"
	"net"
	"slices"
	"strconv"
	"time"

	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
)

// Following the cluster's addresses (issues 14 and 15). The --grpc seeds
// name the nodes as they were when the relay started; nodes may come back
// on new addresses (new containers, pods, a moved host). So the relay asks
// a node it reaches for the members' gRPC addresses (ClusterService.Members,
// over its own, authenticated, gRPC link), every nodeRefresh and at once
// when the leader announces a leader or membership change on NATS. It
// dials the addresses it did not know, and drops the ones the cluster no
// longer lists but for the seeds. The NATS announcement is only a nudge:
// addresses come from the nodes alone.

const (
	// nodeRefresh is how often the relay asks where the nodes are.
	nodeRefresh = 5 * time.Second
	// maxFollowed bounds the addresses a relay adopts from the cluster.
	maxFollowed = 64
	// maxAddrLen bounds one adopted address.
	maxAddrLen = 255
)

// follower keeps the node table in step with the cluster's addresses:
// it asks a node for the members every nodeRefresh, and at once when
// poked (the leader announced a change on NATS), and has the table adopt
// their addresses.
type follower struct {
	nodes *nodes
	kick  chan struct{}
}

func newFollower(n *nodes) *follower {
	return &follower{nodes: n, kick: make(chan struct{}, 1)}
}

// poke asks the follower to read the members now.
func (f *follower) poke() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// run keeps the node table in step with the cluster until ctx ends.
func (f *follower) run(ctx context.Context) {
	t := time.NewTicker(nodeRefresh)
	defer t.Stop()
	for {
		f.refresh(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-f.kick:
		}
	}
}

// refresh reads the members from one node, those that know a leader
// first (a node cut off from the others may hold an outdated view), and
// has the table adopt their addresses. It changes nothing when no node
// answers.
func (f *follower) refresh(ctx context.Context) {
	n := f.nodes
	for _, nc := range n.servingFirst() {
		actx, cancel := context.WithTimeout(ctx, n.attempt)
		resp, err := hangmanv1.NewClusterServiceClient(nc.cc).Members(actx, &hangmanv1.MembersRequest{})
		cancel()
		if err != nil {
			n.log.Debug("node did not list the members", "node", nc.addr, "err", err)
			continue
		}
		n.adopt(memberAddrs(resp.GetMembers()))
		return
	}
}

// servingFirst returns the node table, the nodes that know a leader
// first.
func (n *nodes) servingFirst() []*nodeConn {
	n.mu.Lock()
	defer n.mu.Unlock()
	list := slices.Clone(n.list)
	slices.SortStableFunc(list, func(a, b *nodeConn) int {
		return boolRank(b.serving) - boolRank(a.serving)
	})
	return list
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}

// memberAddrs are the gRPC addresses of the game nodes among members:
// those alive, and those failed (down for now, likely back at the same
// address). A member that left or is leaving is not followed.
func memberAddrs(ms []*hangmanv1.Member) []string {
	var out []string
	for _, m := range ms {
		switch m.GetStatus() {
		case "alive", "failed":
		default:
			continue
		}
		if a := m.GetGrpcAddress(); validNodeAddr(a) {
			out = append(out, a)
		}
	}
	slices.Sort(out)
	out = slices.Compact(out)
	if len(out) > maxFollowed {
		out = out[:maxFollowed]
	}
	return out
}

// validNodeAddr accepts host:port with a host and a numeric port.
func validNodeAddr(a string) bool {
	if len(a) > maxAddrLen {
		return false
	}
	host, port, err := net.SplitHostPort(a)
	if err != nil || host == "" {
		return false
	}
	p, err := strconv.ParseUint(port, 10, 16)
	return err == nil && p > 0
}

// adopt makes the node table the seeds plus addrs: it dials the new
// addresses and drops the others. A dropped connection stays open for
// one more attempt's time, so that calls on it end as they would have.
func (n *nodes) adopt(addrs []string) {
	want := make(map[string]bool, len(addrs))
	for _, a := range addrs {
		want[a] = true
	}
	n.mu.Lock()
	before := n.anyServingLocked()
	have := make(map[string]bool, len(n.list))
	var keep, gone []*nodeConn
	for _, nc := range n.list {
		have[nc.addr] = true
		if nc.seed || want[nc.addr] {
			keep = append(keep, nc)
		} else {
			gone = append(gone, nc)
		}
	}
	for _, a := range addrs {
		if have[a] {
			continue
		}
		nc, err := n.dial(a)
		if err != nil {
			n.log.Warn("cannot follow a node's address", "node", a, "err", err)
			continue
		}
		keep = append(keep, nc)
		if n.watch != nil {
			n.watch(nc)
		}
		n.log.Info("following a node address the cluster lists", "node", a)
	}
	n.list = keep
	if before && !n.anyServingLocked() {
		n.lostAt = time.Now()
	}
	n.mu.Unlock()
	for _, nc := range gone {
		n.log.Info("dropping a node address the cluster no longer lists", "node", nc.addr)
		nc.stop()
		time.AfterFunc(n.attempt, func() { _ = nc.cc.Close() })
	}
}
