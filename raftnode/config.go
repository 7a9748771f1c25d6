package raftnode

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"github.com/hangman/hangman/internal/profiler"
	"github.com/hangman/hangman/raftnode/natsembed"
	"github.com/hangman/hangman/services/game"
	"github.com/hangman/hangman/tlsutil"
)

// Config says how to run one node. Addresses are host:port; an advertise
// address is what other nodes dial, an IP or a DNS name.
type Config struct {
	// ID names the node in raft, serf and NATS; unique in the cluster.
	ID string
	// DataDir holds the raft log, snapshots and serf's snapshot. A node
	// restarted on the same directory rejoins with its state.
	DataDir string

	// Bind addresses.
	GRPCAddr        string
	RaftAddr        string
	SerfAddr        string
	NATSAddr        string
	NATSClusterAddr string
	// HTTPAddr serves /healthz, /readyz and /metrics; empty disables it.
	HTTPAddr string
	// PprofAddr serves the Go profiler (/debug/pprof/) for operators;
	// empty, the default, serves it nowhere. Profiles show a process's
	// memory and goroutines, so it must be a loopback address, unless the
	// node has TLS: it is then served over TLS to node certificates only.
	PprofAddr string
	// Advertise is the IP or DNS name other nodes use to reach this one.
	// Empty means the host of each bind address, which must then not be
	// unspecified.
	Advertise string

	// Join lists serf addresses of other nodes, tried until one answers.
	Join []string
	// BootstrapExpect forms a new cluster once this many nodes (all started
	// with the same value) see each other and every node in sight reports
	// that it has no raft state. 0 means: wait to be added by an existing
	// leader.
	BootstrapExpect int
	// Recover, when set, rewrites this node's raft configuration to these
	// servers before starting (raft.RecoverCluster): the operator's way
	// back when a majority of voters lost their data (recover.go). Read it
	// with ReadPeersFile.
	Recover *Peers

	// Raft timing. Zero values take the defaults below.
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	// SnapshotThreshold is how many log entries trigger a snapshot, and
	// TrailingLogs how many stay behind it for slow followers.
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	TrailingLogs      uint64

	// Membership reconciliation (autopilot).
	// PromoteAfter is how long a non-voter must be alive and caught up
	// before it becomes a voter.
	PromoteAfter time.Duration
	// ReapAfter is how long a voter must be failed before it is removed.
	ReapAfter time.Duration
	// MinQuorum is the fewest voters reaping may leave; 0 means
	// BootstrapExpect (or 3 when that is 0).
	MinQuorum int
	// FastGossip selects memberlist's local-network timing (quick failure
	// detection), for loopback clusters.
	FastGossip bool

	// TLS, when set, secures every link of the node: mutual TLS on the
	// gRPC server and the node's gRPC clients, the raft transport and the
	// NATS routes (node certificates only), and server TLS on the NATS
	// client port. Nil keeps everything plaintext (dev mode, tests).
	TLS *tlsutil.Bundle
	// GossipKey encrypts and authenticates serf gossip (16, 24 or 32
	// bytes); a node without it cannot join. Nil gossips in the clear.
	GossipKey []byte
	// NATSAuth turns on NATS users and permissions when any password is
	// set; the zero value leaves NATS open (dev mode).
	NATSAuth natsembed.Auth

	Logger *slog.Logger

	// StallTimeout is how long a leader may be unable to commit (a stalled
	// disk) before it gives up leadership; 0 means DefaultStallTimeout.
	StallTimeout time.Duration
	// MaxLag is how many entries a node may trail the leader's commit
	// index and still be ready; 0 means DefaultMaxLag.
	MaxLag uint64
	// GRPCMaxHeaderBytes bounds the header list of one gRPC call and
	// GRPCMaxStreams the calls one connection may have open at once; zero
	// takes DefaultGRPCMaxHeaderBytes and DefaultGRPCMaxStreams. Headers
	// are not messages: without a bound of their own a call could carry
	// 16 MB of metadata (gRPC's default) in front of a 64 KiB request.
	// The server advertises both, so gRPC clients refuse to exceed them,
	// and a client that does anyway has its stream reset or its
	// connection closed without the headers being kept.
	GRPCMaxHeaderBytes, GRPCMaxStreams uint32

	// MaxRooms caps the rooms of the cluster and MaxPlayers the players of
	// a room: the node stamps them on the creations and joins it proposes
	// (game.Command.Limit). Zero takes the default; at most game.MaxRooms
	// and game.MaxPlayers.
	MaxRooms, MaxPlayers int
	// RoomIdle, RoomOverIdle and SeatIdle say when the leader reclaims a
	// room in play, a room whose round is over or that has no players,
	// and the seat of a player who stopped playing while others went on
	// (game.ReclaimPolicy). Zero takes the default; a negative value
	// never reclaims that kind.
	RoomIdle, RoomOverIdle, SeatIdle time.Duration
	// ReclaimInterval is how often the leader looks for what to reclaim;
	// zero takes the default.
	ReclaimInterval time.Duration

	// AuditEvery, when not 0, makes the node log a digest of its whole
	// game state ("state audit", with index and digest) at every log
	// index that is a multiple of it: every replica digests the same
	// indexes, so comparing the nodes' logs shows whether their states
	// ever differed, sessions and histories included, which the public
	// room states do not show. Each audit serialises every room, so keep
	// it in the thousands. AuditDir, if set, also receives each audited
	// state as audit-INDEX-DIGEST.json, to diff a mismatch; put it
	// outside DataDir, so that it outlives a lost disk.
	AuditEvery uint64
	AuditDir   string

	// wrapLogStore, if set, wraps the raft log store (tests inject faults).
	wrapLogStore func(raft.LogStore) raft.LogStore
	// raftTransport, if set, carries raft's RPCs in place of the TCP (or
	// TLS) transport on RaftAddr, which is then neither checked nor
	// listened on; the node advertises the transport's LocalAddr as its
	// raft address. Tests give a raft.InmemTransport, so that consensus
	// runs without sockets and its faults are the test's to make
	// (Disconnect) rather than the kernel's. The node's own rules where
	// RPCs arrive (raftTransport: refused votes, no pipelining) still
	// wrap it. What it skips is what only TCP has: raft dials the address
	// in its configuration rather than the one the member table gossips
	// now (identity.ServerAddr), which is fine because an in-memory
	// address never changes; the stall watchdog cannot cut the node off
	// (it still gives up leadership by transfer, and readiness); and the
	// fast failover, which probes the leader's raft port, does not run,
	// so a lost leader is replaced after raft's heartbeat timeout.
	raftTransport baseTransport
	// raftStores, if set, are raft's log, stable store and snapshots in
	// place of the bbolt log and snapshot files in DataDir/raft, for
	// tests that keep consensus off the disk. The raft server id file is
	// still written there (loadRaftID).
	raftStores *raftStores
}

// Defaults. The raft timeouts have headroom for a machine whose CPUs are
// saturated by other processes, where a node may not run for several
// hundred milliseconds (DESIGN.md, guarantee 7: a busy machine does not
// cause leader changes): a follower calls an election after a second
// without its leader (pre-vote is on, so one starved follower alone
// cannot depose anyone), and the leader's lease is as long, so a leader
// that was itself starved does not take its own late bookkeeping for a
// lost quorum. These are Consul's production values. A leader whose
// process died is still replaced within a second: the followers find its
// raft port closed long before the heartbeat timeout (failover.go).
const (
	DefaultHeartbeatTimeout   = time.Second
	DefaultElectionTimeout    = time.Second
	DefaultLeaderLeaseTimeout = time.Second
	DefaultCommitTimeout      = 5 * time.Millisecond
	DefaultSnapshotThreshold  = 8192
	DefaultSnapshotInterval   = 30 * time.Second
	DefaultTrailingLogs       = 10240
	DefaultPromoteAfter       = 2 * time.Second
	DefaultReapAfter          = 30 * time.Second
	DefaultStallTimeout       = 5 * time.Second
	// DefaultMaxLag is a few seconds of writes at full load: a follower
	// that keeps up trails by a handful of entries.
	DefaultMaxLag = 1000
	// DefaultMaxRooms and DefaultMaxPlayers are the largest caps the
	// state machine is sized (and its snapshots bounded) for.
	DefaultMaxRooms   = game.MaxRooms
	DefaultMaxPlayers = game.MaxPlayers
	// DefaultRoomIdle lets a game in play pause for a day (players go to
	// sleep mid-round and come back); DefaultRoomOverIdle frees sooner
	// a room where nobody is in the middle of anything: its round is over
	// and nobody started the next for an hour, or nobody ever joined.
	// DefaultSeatIdle frees the seat of a player who has not guessed for
	// an hour while the others played on: they left, and their seat may
	// be what a newcomer to a full room needs. A table where everybody
	// pauses keeps its seats until the room itself goes.
	DefaultRoomIdle     = 24 * time.Hour
	DefaultRoomOverIdle = time.Hour
	DefaultSeatIdle     = time.Hour
	// DefaultReclaimInterval is a small fraction of the shortest default
	// idle time: a room or seat outlives its idle time by at most this.
	DefaultReclaimInterval = 30 * time.Second
)

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.HeartbeatTimeout, DefaultHeartbeatTimeout)
	def(&c.ElectionTimeout, DefaultElectionTimeout)
	def(&c.LeaderLeaseTimeout, DefaultLeaderLeaseTimeout)
	def(&c.CommitTimeout, DefaultCommitTimeout)
	def(&c.SnapshotInterval, DefaultSnapshotInterval)
	def(&c.PromoteAfter, DefaultPromoteAfter)
	def(&c.ReapAfter, DefaultReapAfter)
	def(&c.StallTimeout, DefaultStallTimeout)
	def(&c.RoomIdle, DefaultRoomIdle)
	def(&c.RoomOverIdle, DefaultRoomOverIdle)
	def(&c.SeatIdle, DefaultSeatIdle)
	def(&c.ReclaimInterval, DefaultReclaimInterval)
	if c.MaxRooms == 0 {
		c.MaxRooms = DefaultMaxRooms
	}
	if c.MaxPlayers == 0 {
		c.MaxPlayers = DefaultMaxPlayers
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = DefaultSnapshotThreshold
	}
	if c.MaxLag == 0 {
		c.MaxLag = DefaultMaxLag
	}
	if c.GRPCMaxHeaderBytes == 0 {
		c.GRPCMaxHeaderBytes = DefaultGRPCMaxHeaderBytes
	}
	if c.GRPCMaxStreams == 0 {
		c.GRPCMaxStreams = DefaultGRPCMaxStreams
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = DefaultTrailingLogs
	}
	if c.MinQuorum == 0 {
		c.MinQuorum = c.BootstrapExpect
		if c.MinQuorum == 0 {
			c.MinQuorum = 3
		}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

func (c *Config) validate() error {
	var errs []error
	if c.ID == "" {
		errs = append(errs, errors.New("node id is required"))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data dir is required"))
	}
	addrs := map[string]string{"grpc": c.GRPCAddr, "raft": c.RaftAddr, "serf": c.SerfAddr, "nats": c.NATSAddr, "nats cluster": c.NATSClusterAddr}
	if c.raftTransport != nil {
		delete(addrs, "raft")
	}
	for name, addr := range addrs {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			errs = append(errs, fmt.Errorf("%s address %q: %w", name, addr, err))
		}
	}
	if c.BootstrapExpect < 0 {
		errs = append(errs, fmt.Errorf("bootstrap-expect %d must not be negative", c.BootstrapExpect))
	}
	if c.TLS != nil && !c.TLS.IsNode() {
		errs = append(errs, fmt.Errorf("TLS certificate is not a node certificate (it lacks the %s name): issue it with `hangman certs`", tlsutil.NodeName))
	}
	if k := len(c.GossipKey); k != 0 && k != 16 && k != 24 && k != 32 {
		errs = append(errs, fmt.Errorf("gossip key is %d bytes; want 16, 24 or 32", k))
	}
	if err := c.NATSAuth.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.MaxRooms < 1 || c.MaxRooms > game.MaxRooms {
		errs = append(errs, fmt.Errorf("max rooms %d must be between 1 and %d", c.MaxRooms, game.MaxRooms))
	}
	if c.MaxPlayers < 1 || c.MaxPlayers > game.MaxPlayers {
		errs = append(errs, fmt.Errorf("max players %d must be between 1 and %d", c.MaxPlayers, game.MaxPlayers))
	}
	if c.PprofAddr != "" {
		if err := profiler.CheckAddr(c.PprofAddr, c.TLS != nil); errors.Is(err, profiler.ErrNotLoopback) {
			errs = append(errs, fmt.Errorf("%w: serve profiles on loopback, or give the node TLS (then only node certificates get them)", err))
		} else if err != nil {
			errs = append(errs, err)
		}
	}
	if c.AuditDir != "" && c.AuditEvery == 0 {
		errs = append(errs, fmt.Errorf("audit dir %q is set but audit-every is 0: nothing would be audited", c.AuditDir))
	}
	if c.LeaderLeaseTimeout > c.HeartbeatTimeout {
		errs = append(errs, fmt.Errorf("leader lease timeout %v must not exceed the heartbeat timeout %v", c.LeaderLeaseTimeout, c.HeartbeatTimeout))
	}
	return errors.Join(errs...)
}

// noLeaderTimeout is how long a request waits with no leader known before
// the node answers it Unavailable (api.WithNoLeaderTimeout): one election
// timeout, about what an election takes once the followers have noticed
// the old leader is gone.
func (c *Config) noLeaderTimeout() time.Duration { return c.ElectionTimeout }

// cutOffFor is how long the stall watchdog keeps a node cut off raft: long
// enough for the followers to notice the silence (raft looks at random
// intervals of one to two heartbeat timeouts, so up to three may pass)
// and to hold an election or two.
func (c *Config) cutOffFor() time.Duration { return 3*c.HeartbeatTimeout + 2*c.ElectionTimeout }

// advertised returns the address others should dial for a bind address:
// the advertise host with the bind port, or the bind address itself. The
// host may be a DNS name (a compose service, a Kubernetes pod's stable
// name): raft and gRPC resolve it at every dial, so a node that comes back
// on a new IP under the same name is found again.
func (c *Config) advertised(bind string) (string, error) {
	host, port, err := net.SplitHostPort(bind)
	if err != nil {
		return "", err
	}
	if c.Advertise != "" {
		host = c.Advertise
	}
	if ip := net.ParseIP(host); ip != nil {
		if ip.IsUnspecified() {
			return "", fmt.Errorf("bind address %s is unspecified: set an advertise address", bind)
		}
		return net.JoinHostPort(host, port), nil
	}
	if host == "" {
		return "", fmt.Errorf("bind address %s is unspecified: set an advertise address", bind)
	}
	if !isDNSName(host) {
		return "", fmt.Errorf("advertise host %q is neither an IP address nor a DNS name", host)
	}
	return net.JoinHostPort(host, port), nil
}

// isDNSName reports whether s is a syntactically valid host name: dot-
// separated labels of letters, digits, '-' and '_' (container runtimes
// allow it in service names), none empty or starting or ending with '-'.
func isDNSName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}
