package relay

import (
	"context"
	"net"
	"slices"
	"strconv"
	"strings"
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
		n.adopt(gameNodes(resp.GetMembers()))
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

// member is a game node as the cluster lists it: where it serves gRPC,
// and its name ("" when it gave none a page could show).
type member struct {
	addr, name string
}

// gameNodes are the game nodes among members, by gRPC address: those
// alive, and those failed (down for now, likely back at the same
// address). A member that left or is leaving is not followed.
func gameNodes(ms []*hangmanv1.Member) []member {
	var out []member
	for _, m := range ms {
		switch m.GetStatus() {
		case "alive", "failed":
		default:
			continue
		}
		a := m.GetGrpcAddress()
		if !validNodeAddr(a) {
			continue
		}
		name := m.GetName()
		if !validName(name) {
			name = ""
		}
		out = append(out, member{addr: a, name: name})
	}
	slices.SortStableFunc(out, func(a, b member) int { return strings.Compare(a.addr, b.addr) })
	out = slices.CompactFunc(out, func(a, b member) bool { return a.addr == b.addr })
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

// adopt makes the node table the seeds plus ms: it dials the new
// addresses, drops the others, and takes the names the cluster gives
// them (the cluster view shows a node that has not answered it under that
// name). A dropped connection stays open for one more attempt's time, so
// that calls on it end as they would have.
func (n *nodes) adopt(ms []member) {
	want := make(map[string]string, len(ms))
	for _, m := range ms {
		want[m.addr] = m.name
	}
	n.mu.Lock()
	before := n.anyServingLocked()
	have := make(map[string]bool, len(n.list))
	var keep, gone []*nodeConn
	for _, nc := range n.list {
		have[nc.addr] = true
		name, listed := want[nc.addr]
		if !listed || name != "" {
			nc.name = name // a seed the cluster no longer lists has none
		}
		if nc.seed || listed {
			keep = append(keep, nc)
		} else {
			gone = append(gone, nc)
		}
	}
	for _, m := range ms {
		if have[m.addr] {
			continue
		}
		nc, err := n.dial(m.addr)
		if err != nil {
			n.log.Warn("cannot follow a node's address", "node", m.addr, "err", err)
			continue
		}
		nc.name = m.name
		keep = append(keep, nc)
		if n.watch != nil {
			n.watch(nc)
		}
		n.log.Info("following a node address the cluster lists", "node", m.addr, "name", m.name)
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
