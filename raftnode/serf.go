package raftnode

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
	"github.com/hashicorp/serf/serf"
)

// Serf tags every node gossips about itself. They are how nodes find each
// other's raft, gRPC and NATS addresses without any other configuration.
const (
	tagRole   = "role"
	tagID     = "id"
	tagRaft   = "raft"
	tagGRPC   = "grpc"
	tagNATS   = "nats"
	tagRoute  = "route"
	tagExpect = "expect"
	// tagRaftID is the node's raft server id (identity.go); a node that
	// gossips none is from before raft ids were per data dir, and its raft
	// id is its node id.
	tagRaftID = "raft-id"

	roleNode = "hangman-node"
)

// member is what a node knows of another node from serf.
type member struct {
	ID, Raft, GRPC, NATS, Route string
	// RaftID is the member's raft server id.
	RaftID raft.ServerID
	Expect int
	Status serf.MemberStatus
	// Since is when Status or RaftID last changed, for the reap grace
	// period and the promotion delay.
	Since time.Time
}

// memberTable caches serf's view keyed by node id, for the hot paths
// (finding the leader's gRPC address) and for reconciliation. It is the
// one place that maps raft server ids to nodes.
type memberTable struct {
	mu   sync.RWMutex
	byID map[string]member
}

func newMemberTable() *memberTable { return &memberTable{byID: make(map[string]member)} }

func (t *memberTable) update(ms []serf.Member, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, m := range ms {
		if m.Tags[tagRole] != roleNode {
			continue
		}
		expect, _ := strconv.Atoi(m.Tags[tagExpect])
		nm := member{ID: m.Tags[tagID], Raft: m.Tags[tagRaft], GRPC: m.Tags[tagGRPC], NATS: m.Tags[tagNATS],
			Route: m.Tags[tagRoute], RaftID: raft.ServerID(m.Tags[tagRaftID]), Expect: expect, Status: m.Status, Since: now}
		if nm.RaftID == "" {
			nm.RaftID = raft.ServerID(nm.ID)
		}
		if old, ok := t.byID[nm.ID]; ok && old.Status == nm.Status && old.RaftID == nm.RaftID {
			nm.Since = old.Since
		}
		t.byID[nm.ID] = nm
	}
}

// get returns the member with node id id.
func (t *memberTable) get(id string) (member, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	m, ok := t.byID[id]
	return m, ok
}

// byRaftID returns the member that gossips raft server id rid.
func (t *memberTable) byRaftID(rid raft.ServerID) (member, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if m, ok := t.byID[nodeOfRaftID(rid)]; ok && m.RaftID == rid {
		return m, true
	}
	for _, m := range t.byID {
		if m.RaftID == rid {
			return m, true
		}
	}
	return member{}, false
}

// nodeOf returns the node id of raft server id rid: the member gossiping
// it, or what the id itself says for an incarnation no member gossips
// any more.
func (t *memberTable) nodeOf(rid raft.ServerID) string {
	if m, ok := t.byRaftID(rid); ok {
		return m.ID
	}
	return nodeOfRaftID(rid)
}

// superseded reports whether raft server rid is provably gone for good:
// no member gossips it, and its node is alive under another raft id, so
// the node came back without the data dir rid lived in. It returns that
// node.
func (t *memberTable) superseded(rid raft.ServerID) (member, bool) {
	if _, ok := t.byRaftID(rid); ok {
		return member{}, false
	}
	m, ok := t.get(nodeOfRaftID(rid))
	if !ok || m.Status != serf.StatusAlive || m.RaftID == rid {
		return member{}, false
	}
	return m, true
}

func (t *memberTable) all() []member {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]member, 0, len(t.byID))
	for _, m := range t.byID {
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b member) int {
		if a.ID < b.ID {
			return -1
		}
		if a.ID > b.ID {
			return 1
		}
		return 0
	})
	return out
}

func (n *Node) startSerf() error {
	host, port, err := splitPort(n.cfg.SerfAddr)
	if err != nil {
		return fmt.Errorf("serf address: %w", err)
	}
	adv, err := n.cfg.advertised(n.cfg.SerfAddr)
	if err != nil {
		return fmt.Errorf("serf: %w", err)
	}
	advHost, advPort, _ := splitPort(adv)
	// Gossip needs an IP; raft, gRPC and NATS keep the name (if it is one)
	// and resolve it at every dial.
	if advHost, err = resolveIP(advHost); err != nil {
		return fmt.Errorf("serf advertise address: %w", err)
	}
	route, err := n.cfg.advertised(n.cfg.NATSClusterAddr)
	if err != nil {
		return fmt.Errorf("nats cluster: %w", err)
	}

	sc := serf.DefaultConfig()
	sc.NodeName = n.cfg.ID
	if n.cfg.FastGossip {
		sc.MemberlistConfig = memberlist.DefaultLocalConfig()
	} else {
		sc.MemberlistConfig = memberlist.DefaultLANConfig()
	}
	sc.MemberlistConfig.BindAddr = host
	sc.MemberlistConfig.BindPort = port
	sc.MemberlistConfig.AdvertiseAddr = advHost
	sc.MemberlistConfig.AdvertisePort = advPort
	sc.MemberlistConfig.Logger = newStdLogger(n.log, "memberlist")
	if len(n.cfg.GossipKey) > 0 {
		// Encrypted, authenticated gossip: messages without the key
		// (a stranger's, or plaintext) are dropped, so such a node
		// never becomes a member.
		sc.MemberlistConfig.SecretKey = n.cfg.GossipKey
		sc.MemberlistConfig.GossipVerifyIncoming = true
		sc.MemberlistConfig.GossipVerifyOutgoing = true
	}
	sc.Logger = newStdLogger(n.log, "serf")
	sc.SnapshotPath = filepath.Join(n.cfg.DataDir, "serf", "local.snapshot")
	sc.RejoinAfterLeave = true
	sc.Tags = map[string]string{
		tagRole:   roleNode,
		tagID:     n.cfg.ID,
		tagRaft:   n.raftAdvertise,
		tagGRPC:   n.grpcAdvertise,
		tagNATS:   n.nats.ClientURL(),
		tagRoute:  "nats-route://" + route,
		tagExpect: strconv.Itoa(n.cfg.BootstrapExpect),
		tagRaftID: string(n.ident.raftID),
	}
	n.serfEv = make(chan serf.Event, 256)
	sc.EventCh = n.serfEv
	if err := mkdirFor(sc.SnapshotPath); err != nil {
		return err
	}
	n.serf, err = serf.Create(sc)
	if err != nil {
		return fmt.Errorf("start serf on %s: %w", n.cfg.SerfAddr, err)
	}
	n.members.update(n.serf.Members(), time.Now())
	return nil
}

// joinLoop joins the configured peers, retrying (names may not resolve
// until their containers start) until one join succeeds.
func (n *Node) joinLoop(ctx context.Context) {
	if len(n.cfg.Join) == 0 {
		return
	}
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		var addrs []string
		for _, a := range n.cfg.Join {
			if a != n.cfg.SerfAddr {
				addrs = append(addrs, a)
			}
		}
		joined, err := n.serf.Join(addrs, true)
		if joined > 0 {
			n.log.Info("joined cluster", "contacted", joined)
			return
		}
		n.log.Debug("join failed, retrying", "peers", addrs, "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// serfLoop reacts to membership: refreshes the member table and NATS
// routes, announces changes and lets the leader reconcile (and, on its own
// goroutine, forms the cluster or says why it cannot: formation.go).
func (n *Node) serfLoop(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	n.goRun(func() { n.formation.run(ctx) })
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-n.serfEv:
			me, ok := ev.(serf.MemberEvent)
			if !ok {
				continue
			}
			for _, m := range me.Members {
				if m.Name != n.cfg.ID {
					n.pub.PublishMember(m.Name, memberStatus(me.Type))
					n.log.Info("member "+memberStatus(me.Type), "member", m.Name, "addr", net.JoinHostPort(m.Addr.String(), strconv.Itoa(int(m.Port))))
				}
			}
		case <-tick.C:
		}
		n.members.update(n.serf.Members(), time.Now())
		n.nats.SetRoutes(n.peerRoutes())
		n.autopilot.now()
	}
}

func memberStatus(t serf.EventType) string {
	switch t {
	case serf.EventMemberJoin:
		return "join"
	case serf.EventMemberLeave:
		return "leave"
	case serf.EventMemberFailed:
		return "fail"
	case serf.EventMemberUpdate:
		return "update"
	case serf.EventMemberReap:
		return "reap"
	default:
		return t.String()
	}
}

func (n *Node) peerRoutes() []string {
	var routes []string
	for _, m := range n.members.all() {
		if m.ID != n.cfg.ID && m.Status == serf.StatusAlive && m.Route != "" {
			routes = append(routes, m.Route)
		}
	}
	return routes
}
