package raftnode

import (
	"context"
	"fmt"
	"log/slog"
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

// membership is this node's serf agent: it gossips the node's addresses
// in its tags, keeps the member table up to date, joins the configured
// peers, and tells the node when membership may have changed. It is apart
// from Node so that what serf touches is in sight.
type membership struct {
	serf    *serf.Serf
	events  chan serf.Event
	members *memberTable
	// self is this node's id, addr its serf address, and join the serf
	// addresses it joins (Config's ID, SerfAddr and Join).
	self string
	addr string
	join []string
	log  *slog.Logger
}

// nodeTags are what a node gossips about itself beside its configuration
// (its id and the cluster size it expects to form): the advertised
// addresses of its raft, gRPC and NATS (client URL, cluster route), and
// its raft server id.
type nodeTags struct {
	raft, grpc, nats, route string
	raftID                  raft.ServerID
}

// deadNodeReclaimTime is how long after a node is found dead its name may
// be taken by one at another address: at once (0 would mean never). The
// failure detector has already waited out its suspicion timeout, and the
// newcomer's claim comes in its next push/pull (pushPullInterval).
const deadNodeReclaimTime = time.Nanosecond

// pushPullInterval is how often a node exchanges its whole member list
// with another (memberlist's defaults: 15 s local, 30 s LAN).
const pushPullInterval = 2 * time.Second

// startMembership starts the serf agent of a node with cfg, gossiping
// tags, and fills members with what serf knows at once.
func startMembership(cfg Config, tags nodeTags, members *memberTable, log *slog.Logger) (*membership, error) {
	host, port, err := splitPort(cfg.SerfAddr)
	if err != nil {
		return nil, fmt.Errorf("serf address: %w", err)
	}
	adv, err := cfg.advertised(cfg.SerfAddr)
	if err != nil {
		return nil, fmt.Errorf("serf: %w", err)
	}
	advHost, advPort, _ := splitPort(adv)
	// Gossip needs an IP; raft, gRPC and NATS keep the name (if it is one)
	// and resolve it at every dial.
	if advHost, err = resolveIP(advHost); err != nil {
		return nil, fmt.Errorf("serf advertise address: %w", err)
	}

	sc := serf.DefaultConfig()
	sc.NodeName = cfg.ID
	if cfg.FastGossip {
		sc.MemberlistConfig = memberlist.DefaultLocalConfig()
	} else {
		sc.MemberlistConfig = memberlist.DefaultLANConfig()
	}
	sc.MemberlistConfig.BindAddr = host
	sc.MemberlistConfig.BindPort = port
	sc.MemberlistConfig.AdvertiseAddr = advHost
	sc.MemberlistConfig.AdvertisePort = advPort
	sc.MemberlistConfig.Logger = newStdLogger(log, "memberlist")
	if len(cfg.GossipKey) > 0 {
		// Encrypted, authenticated gossip: messages without the key
		// (a stranger's, or plaintext) are dropped, so such a node
		// never becomes a member.
		sc.MemberlistConfig.SecretKey = cfg.GossipKey
		sc.MemberlistConfig.GossipVerifyIncoming = true
		sc.MemberlistConfig.GossipVerifyOutgoing = true
	}
	// A node's name is its identity and its address may change: a node
	// that crashed and came back at once on a new IP (a container or pod
	// recreated) is still gossiped at its old address, as alive, until
	// the others find it dead. serf's name-conflict resolution would then
	// ask the members, find the newcomer a minority of one and make it
	// quit gossip for good; memberlist alone keeps refusing the new
	// address only until the old incarnation is dead, then hands the name
	// over (DeadNodeReclaimTime), which is what an address change needs.
	// Two live processes given one id (an operator's mistake) no longer
	// make one of them quit: memberlist keeps the one it knew, and logs
	// the conflict as an error at every exchange.
	sc.EnableNameConflictResolution = false
	sc.MemberlistConfig.DeadNodeReclaimTime = deadNodeReclaimTime
	// The others gossip to the name's old address only, so the newcomer's
	// claim reaches them in its own push/pull: a short interval makes the
	// move take seconds, not half a minute, and a game cluster's handful
	// of members makes each exchange small.
	sc.MemberlistConfig.PushPullInterval = pushPullInterval
	sc.Logger = newStdLogger(log, "serf")
	sc.SnapshotPath = filepath.Join(cfg.DataDir, "serf", "local.snapshot")
	sc.RejoinAfterLeave = true
	sc.Tags = map[string]string{
		tagRole:   roleNode,
		tagID:     cfg.ID,
		tagRaft:   tags.raft,
		tagGRPC:   tags.grpc,
		tagNATS:   tags.nats,
		tagRoute:  "nats-route://" + tags.route,
		tagExpect: strconv.Itoa(cfg.BootstrapExpect),
		tagRaftID: string(tags.raftID),
	}
	m := &membership{events: make(chan serf.Event, 256), members: members, self: cfg.ID, addr: cfg.SerfAddr, join: cfg.Join, log: log}
	sc.EventCh = m.events
	if err := mkdirFor(sc.SnapshotPath); err != nil {
		return nil, err
	}
	if m.serf, err = serf.Create(sc); err != nil {
		return nil, fmt.Errorf("start serf on %s: %w", cfg.SerfAddr, err)
	}
	members.update(m.serf.Members(), time.Now())
	return m, nil
}

// joinLoop joins the configured peers, retrying (names may not resolve
// until their containers start) until one join succeeds.
func (m *membership) joinLoop(ctx context.Context) {
	if len(m.join) == 0 {
		return
	}
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		var addrs []string
		for _, a := range m.join {
			if a != m.addr {
				addrs = append(addrs, a)
			}
		}
		joined, err := m.serf.Join(addrs, true)
		if joined > 0 {
			m.log.Info("joined cluster", "contacted", joined)
			return
		}
		m.log.Debug("join failed, retrying", "peers", addrs, "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// run reacts to membership: it calls announce with every other member's
// join, leave, failure, update and reap, and, at each event and every
// second, refreshes the member table and calls changed with the NATS
// routes of the live peers.
func (m *membership) run(ctx context.Context, announce func(member, status string), changed func(routes []string)) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-m.events:
			me, ok := ev.(serf.MemberEvent)
			if !ok {
				continue
			}
			for _, sm := range me.Members {
				if sm.Name != m.self {
					announce(sm.Name, memberStatus(me.Type))
					m.log.Info("member "+memberStatus(me.Type), "member", sm.Name, "addr", net.JoinHostPort(sm.Addr.String(), strconv.Itoa(int(sm.Port))))
				}
			}
		case <-tick.C:
		}
		m.members.update(m.serf.Members(), time.Now())
		changed(m.peerRoutes())
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

// peerRoutes are the NATS routes of the live members other than this
// node.
func (m *membership) peerRoutes() []string {
	var routes []string
	for _, mb := range m.members.all() {
		if mb.ID != m.self && mb.Status == serf.StatusAlive && mb.Route != "" {
			routes = append(routes, mb.Route)
		}
	}
	return routes
}
