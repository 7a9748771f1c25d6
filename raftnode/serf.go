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

	roleNode = "hangman-node"
)

// member is what a node knows of another node from serf.
type member struct {
	ID, Raft, GRPC, NATS, Route string
	Expect                      int
	Status                      serf.MemberStatus
	// Since is when Status last changed, for the reap grace period.
	Since time.Time
}

// memberTable caches serf's view keyed by node id, for the hot paths
// (finding the leader's gRPC address) and for reconciliation.
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
			Route: m.Tags[tagRoute], Expect: expect, Status: m.Status, Since: now}
		if old, ok := t.byID[nm.ID]; ok && old.Status == nm.Status {
			nm.Since = old.Since
		}
		t.byID[nm.ID] = nm
	}
}

func (t *memberTable) grpcAddr(id string) string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.byID[id].GRPC
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
// routes, bootstraps when enough nodes are present, announces changes and
// lets the leader reconcile.
func (n *Node) serfLoop(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	bootstrapped := n.hasState()
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
					n.pub.publishMember(m.Name, memberStatus(me.Type))
					n.log.Info("member "+memberStatus(me.Type), "member", m.Name, "addr", net.JoinHostPort(m.Addr.String(), strconv.Itoa(int(m.Port))))
				}
			}
		case <-tick.C:
		}
		n.members.update(n.serf.Members(), time.Now())
		n.nats.setRoutes(n.peerRoutes())
		if !bootstrapped {
			bootstrapped = n.maybeBootstrap()
		}
		n.reconcileNow()
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

// hasState reports whether this node already belongs to a raft cluster.
func (n *Node) hasState() bool {
	return n.raft.LastIndex() > 0 || len(n.raft.GetConfiguration().Configuration().Servers) > 0
}

// maybeBootstrap forms the cluster once BootstrapExpect nodes expecting the
// same number see each other. Every one of them bootstraps with the same
// configuration, so no node is special (as Consul's bootstrap_expect).
func (n *Node) maybeBootstrap() bool {
	if n.cfg.BootstrapExpect == 0 {
		return true
	}
	var servers []raft.Server
	for _, m := range n.members.all() {
		if m.Status != serf.StatusAlive {
			continue
		}
		if m.Expect != n.cfg.BootstrapExpect {
			if m.Expect != 0 {
				n.log.Warn("member expects a different cluster size", "member", m.ID, "expect", m.Expect, "mine", n.cfg.BootstrapExpect)
			}
			continue
		}
		servers = append(servers, raft.Server{ID: raft.ServerID(m.ID), Address: raft.ServerAddress(m.Raft), Suffrage: raft.Voter})
	}
	if len(servers) < n.cfg.BootstrapExpect {
		return false
	}
	if n.hasState() {
		return true
	}
	err := n.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error()
	if err != nil && err != raft.ErrCantBootstrap {
		n.log.Error("bootstrap failed", "err", err)
		return false
	}
	ids := make([]string, len(servers))
	for i, s := range servers {
		ids[i] = string(s.ID)
	}
	n.log.Info("bootstrapped cluster", "servers", ids)
	return true
}
