package raftnode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/hangman/hangman/raftnode/natsembed"
	"github.com/hangman/hangman/raftnode/publish"
	"github.com/hangman/hangman/raftnode/raftstore"
)

// Node is one running game node. Create it with Start; stop it with Close.
type Node struct {
	cfg Config
	log *slog.Logger

	fsm       *fsm
	raft      *raft.Raft
	batcher   *batcher   // packs proposals into entries while leading
	forwarder *forwarder // carries writes to the leader while following
	logStore  raftStorage
	transport *raftTransport
	// ident is this node's raft server id and how it finds other servers
	// (identity.go).
	ident     *identity
	raftLayer *cuttableLayer

	// membership is this node's serf agent (serf.go); members is what it
	// knows of the other nodes.
	membership *membership
	members    *memberTable
	// autopilot reconciles serf's view into the raft configuration while
	// this node leads (autopilot.go).
	autopilot *autopilot
	// formation forms the cluster when it may, and says why this node
	// cannot serve yet as far as forming the cluster goes (formation.go).
	formation *formation

	nats *natsembed.Server
	pub  *publish.Publisher

	// grpc is the gRPC server every client and peer reaches, with
	// grpc.health.v1 (grpcserver.go).
	grpc *grpcServer
	// ops is the operator port (probes, metrics) and profiler (health.go).
	ops   *opsServer
	conns *connPool

	// metrics are the node's own Prometheus series (metrics.go).
	metrics *nodeMetrics

	// leaderChanged wakes the waiters for a leadership change.
	leaderChanged *leaderSignal
	// readyTerm is the term in which this node, as leader, has applied
	// everything committed by earlier leaders (a barrier); linearizable
	// reads wait for it.
	readyTerm atomic.Uint64

	// stall is the stall watchdog (watchdog.go): it counts the proposals
	// in flight, and says whether this node gave up leadership because it
	// could not commit, and so is unready.
	stall *stallGuard
	// lag is how far this node trails the leader (lag.go).
	lag *leaderLag
	// sweeper proposes, while this node leads, the reclamation of idle
	// rooms and seats and the timeouts of turns (reclaim.go).
	sweeper *sweeper

	grpcAdvertise string
	raftAdvertise string

	stop   context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool
}

// Start starts a node and returns once its servers listen; joining and
// forming the cluster go on in the background.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("node config: %w", err)
	}
	n := &Node{
		cfg:           cfg,
		log:           cfg.Logger.With("node", cfg.ID),
		leaderChanged: newLeaderSignal(),
		members:       newMemberTable(),
	}
	var err error
	if n.grpcAdvertise, err = cfg.advertised(cfg.GRPCAddr); err != nil {
		return nil, fmt.Errorf("grpc: %w", err)
	}
	if cfg.raftTransport != nil {
		n.raftAdvertise = string(cfg.raftTransport.LocalAddr())
	} else if n.raftAdvertise, err = cfg.advertised(cfg.RaftAddr); err != nil {
		return nil, fmt.Errorf("raft: %w", err)
	}
	n.ident = &identity{addr: raft.ServerAddress(n.raftAdvertise), members: n.members, log: n.log}
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	n.stop = stop
	if err := n.start(runCtx); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

func (n *Node) start(ctx context.Context) error {
	if err := os.MkdirAll(n.cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	n.fsm = newFSM()
	n.fsm.self = []byte(n.cfg.ID)
	if n.cfg.AuditEvery > 0 {
		if n.cfg.AuditDir != "" {
			if err := os.MkdirAll(n.cfg.AuditDir, 0o750); err != nil {
				return fmt.Errorf("audit dir: %w", err)
			}
		}
		n.fsm.audit = &stateAudit{every: n.cfg.AuditEvery, dir: n.cfg.AuditDir, log: n.log}
	}
	n.conns = newConnPool(n.grpcClientCreds())

	var err error
	natsOpts, err := n.natsOptions()
	if err != nil {
		return err
	}
	if n.nats, err = natsembed.Start(natsOpts, n.log); err != nil {
		return err
	}
	if n.pub, err = publish.New(n.nats.NATS(), n.cfg.ID, n.log, natsembed.ClientOption(n.cfg.TLS, natsembed.UserNode, n.cfg.NATSAuth.NodePassword)); err != nil {
		return err
	}
	n.fsm.onChange, n.fsm.publishing = n.pub.EnqueueChanges, n.pub.Leading
	if err := n.addEventsEndpoint(n.pub.Service()); err != nil {
		return err
	}
	if err := n.startRaft(ctx); err != nil {
		return err
	}
	n.lag = &leaderLag{raft: n.raft, leaderConn: n.LeaderConn, log: n.log}
	n.stall = newStallGuard(n.raft, &n.fsm.progress, n.raftLayer, n.cfg, n.updateHealth, n.log)
	n.sweeper = newSweeper(n, n.readyLeader, n.cfg, n.log)
	n.autopilot = newAutopilot(n.raft, n.members, n.conns, n.ident.raftID, n.readyLeader, n.cfg, n.log)
	n.formation = newFormation(n.raft, n.members, n.conns, n.ident.raftID, n.cfg, n.log)
	route, err := n.cfg.advertised(n.cfg.NATSClusterAddr)
	if err != nil {
		return fmt.Errorf("nats cluster: %w", err)
	}
	tags := nodeTags{raft: n.raftAdvertise, grpc: n.grpcAdvertise, nats: n.nats.ClientURL(), route: route, raftID: n.ident.raftID}
	if n.membership, err = startMembership(n.cfg, tags, n.members, n.log); err != nil {
		return err
	}
	n.metrics = newNodeMetrics(n)
	game, err := n.startGRPC()
	if err != nil {
		return err
	}
	if err := n.addGameEndpoints(ctx, n.pub.Service(), n.pub.Conn(), game); err != nil {
		return err
	}
	n.ops = &opsServer{}
	if err := n.ops.start(n.cfg, n.Ready, n.metrics.handler(), n.log, n.goRun); err != nil {
		return err
	}
	n.goRun(func() { n.pub.Run(ctx) })
	n.goRun(func() { n.watchLeadership(ctx) })
	n.goRun(func() { n.republishOnReconnect(ctx) })
	n.goRun(func() { n.stall.run(ctx) })
	n.goRun(func() { n.watchLag(ctx) })
	if n.raftLayer != nil {
		// The fast failover reads TCP (the leader's raft port, the
		// connections it closed); over an injected transport there is
		// none, and raft's heartbeat timeout replaces a lost leader.
		crash := &failover{raft: n.raft, ident: n.ident, logs: n.logStore, transport: n.transport, layer: n.raftLayer,
			heartbeat: n.cfg.HeartbeatTimeout, log: n.log}
		n.goRun(func() { crash.run(ctx) })
	}
	n.goRun(func() { n.formation.run(ctx) })
	n.goRun(func() {
		n.membership.run(ctx, n.pub.PublishMember, func(routes []string) {
			n.nats.SetRoutes(routes)
			n.autopilot.now()
		})
	})
	n.goRun(func() { n.membership.joinLoop(ctx) })
	n.goRun(func() { n.autopilot.run(ctx) })
	n.goRun(func() { n.sweeper.run(ctx) })
	n.log.Info("node started", "raft_id", n.ident.raftID, "grpc", n.grpcAdvertise, "raft", n.raftAdvertise, "serf", n.cfg.SerfAddr,
		"nats", n.nats.ClientURL(), "bootstrap_expect", n.cfg.BootstrapExpect)
	return nil
}

// natsOptions are the embedded NATS server's options, from the node's.
func (n *Node) natsOptions() (natsembed.Options, error) {
	o := natsembed.Options{Name: n.cfg.ID, TLS: n.cfg.TLS, Auth: n.cfg.NATSAuth}
	var err error
	if o.Host, o.Port, err = splitPort(n.cfg.NATSAddr); err != nil {
		return o, fmt.Errorf("nats address: %w", err)
	}
	if o.ClusterHost, o.ClusterPort, err = splitPort(n.cfg.NATSClusterAddr); err != nil {
		return o, fmt.Errorf("nats cluster address: %w", err)
	}
	if o.ClusterAdvertise, err = n.cfg.advertised(n.cfg.NATSClusterAddr); err != nil {
		return o, fmt.Errorf("nats cluster: %w", err)
	}
	return o, nil
}

func (n *Node) goRun(f func()) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f()
	}()
}

func (n *Node) startRaft(ctx context.Context) error {
	rc := raft.DefaultConfig()
	rc.HeartbeatTimeout = n.cfg.HeartbeatTimeout
	rc.ElectionTimeout = n.cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = n.cfg.LeaderLeaseTimeout
	// Pre-vote (raft's default, spelled out): a follower that was starved
	// or cut off asks before it calls an election, and the others refuse
	// while they still hear from the leader, so it deposes no one.
	rc.PreVoteDisabled = false
	rc.CommitTimeout = n.cfg.CommitTimeout
	rc.SnapshotThreshold = n.cfg.SnapshotThreshold
	rc.SnapshotInterval = n.cfg.SnapshotInterval
	rc.TrailingLogs = n.cfg.TrailingLogs
	rc.BatchApplyCh = true
	rc.MaxAppendEntries = 512
	rc.Logger = newHCLog(n.log, "raft")
	notify := make(chan bool, 16)
	rc.NotifyCh = notify

	dir := filepath.Join(n.cfg.DataDir, "raft")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("raft dir: %w", err)
	}
	snaps, err := n.openRaftStores(dir)
	if err != nil {
		return err
	}
	if n.ident.raftID, err = loadRaftID(dir, n.cfg.ID, n.logStore, n.logStore, n.log); err != nil {
		return err
	}
	rc.LocalID = n.ident.raftID
	if err := n.recoverCluster(rc, dir, n.logStore, n.logStore, snaps); err != nil {
		return err
	}
	base := n.cfg.raftTransport
	if base == nil {
		nt, err := n.newRaftTransport(advertiseAddr(n.raftAdvertise), &raft.NetworkTransportConfig{
			MaxPool: 5, Timeout: 5 * time.Second, Logger: newHCLog(n.log, "raft-net"),
			ServerAddressProvider: n.ident,
		})
		if err != nil {
			return fmt.Errorf("raft transport on %s: %w", n.cfg.RaftAddr, err)
		}
		base = nt
	}
	n.transport = newRaftTransportGuard(base, n.ident)
	var logs raft.LogStore = n.logStore
	if n.cfg.wrapLogStore != nil {
		logs = n.cfg.wrapLogStore(logs)
	}
	// Recent entries stay in memory for replication to followers.
	if logs, err = raft.NewLogCache(1024, logs); err != nil {
		return fmt.Errorf("raft log cache: %w", err)
	}
	logs = raftstore.Persisting{LogStore: logs}
	n.raft, err = raft.NewRaft(rc, n.fsm, logs, n.logStore, snaps, n.transport)
	if err != nil {
		return fmt.Errorf("start raft: %w", err)
	}
	n.ident.raft.Store(n.raft)
	n.batcher = newBatcher(n.raft, n.fsm.self, n.admit)
	n.forwarder = newForwarder(n.raft, n.leaderChanged, n.LeaderConn)
	n.goRun(func() { n.batcher.run(ctx) })
	n.goRun(func() { n.forwarder.run(ctx) })
	n.goRun(func() { n.notifyLoop(ctx, notify) })
	return nil
}

// raftStorage is what the node keeps raft's log and stable store (term
// and vote) in, and what it reads of it besides: whether writes fail,
// which readiness and the metrics report. raftstore.Store is the one a
// node runs on; tests may give another (Config.raftStores).
type raftStorage interface {
	raft.LogStore
	raft.StableStore
	WriteHealth() error
	WriteErrors() uint64
	Close() error
}

// raftStores are raft's storage when a test gives it (Config.raftStores).
// The node closes the log store when it closes, as it does its own.
type raftStores struct {
	log   raftStorage
	snaps raft.SnapshotStore
}

// openRaftStores sets n.logStore and returns raft's snapshot store: the
// ones the config gives, else the durable ones in dir, checked before use
// (raftstore.Open).
func (n *Node) openRaftStores(dir string) (raft.SnapshotStore, error) {
	if s := n.cfg.raftStores; s != nil {
		n.logStore = s.log
		return s.snaps, nil
	}
	logs, snaps, err := raftstore.Open(dir, n.log, newHCLog(n.log, "snapshots"))
	if err != nil {
		return nil, err
	}
	n.logStore = logs
	return snaps, nil
}

// ID returns the node's id.
func (n *Node) ID() string { return n.cfg.ID }

// GRPCAddr returns the address the node's gRPC server is advertised at.
func (n *Node) GRPCAddr() string { return n.grpcAdvertise }

// NATSURL returns the client URL of the node's embedded NATS server.
func (n *Node) NATSURL() string { return n.nats.ClientURL() }

// NATSServer returns the embedded NATS server, for in-process clients.
func (n *Node) NATSServer() *natsserver.Server { return n.nats.NATS() }

// Raft exposes the raft instance for tests and diagnostics.
func (n *Node) Raft() *raft.Raft { return n.raft }

// Close stops the node as a crash would look to its peers: it does not
// leave serf or the raft configuration, so a restart on the same data dir
// rejoins as the same member.
func (n *Node) Close() error {
	if !n.closed.CompareAndSwap(false, true) {
		return nil
	}
	if n.stop != nil {
		n.stop()
	}
	var errs []error
	if n.ops != nil {
		n.ops.close()
	}
	if n.grpc != nil {
		n.grpc.srv.Stop()
	}
	if n.membership != nil {
		errs = append(errs, n.membership.serf.Shutdown())
	}
	if n.raft != nil {
		errs = append(errs, n.raft.Shutdown().Error())
	}
	if n.transport != nil {
		errs = append(errs, n.transport.Close())
	}
	if n.pub != nil {
		n.pub.Close()
	}
	if n.nats != nil {
		n.nats.Shutdown()
	}
	n.wg.Wait()
	if n.logStore != nil {
		errs = append(errs, n.logStore.Close())
	}
	if n.conns != nil {
		n.conns.close()
	}
	n.log.Info("node stopped")
	return errors.Join(errs...)
}
