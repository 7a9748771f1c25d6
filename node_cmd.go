package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/hangman/hangman/raftnode"
)

// busyGCPercent is the garbage collector's target of a node, and of the
// load generator, unless GOGC says otherwise. A node's live heap is small
// (the rooms, the raft log cache, buffers) while every command allocates as
// it passes through gRPC, raft, the state machine and the publisher, so at
// Go's default of 100 the collector runs constantly under load: a fifth of
// a busy leader's CPU. Letting the heap grow to five times what is live
// before collecting costs tens of megabytes and buys that CPU back. (Relays
// keep the default: their memory per connection is what they are judged
// by.)
const busyGCPercent = 400

// setGCPercent applies busyGCPercent unless the operator set GOGC.
func setGCPercent(log *slog.Logger) {
	if os.Getenv("GOGC") != "" {
		return
	}
	debug.SetGCPercent(busyGCPercent)
	log.Debug("garbage collector target set", "gogc", busyGCPercent)
}

// runNode runs one game node until ctx ends.
func runNode(ctx context.Context, args []string) error {
	host, _ := os.Hostname()
	fs := flag.NewFlagSet("hangman node", flag.ContinueOnError)
	var (
		cfg                  raftnode.Config
		join                 string
		advertise            string
		heartbeat, election  time.Duration
		reapAfter, promoteAt time.Duration
		sec                  securityFlags
		recoverPeers         string
		idle                 [3]time.Duration // room, room over, seat
	)
	fs.StringVar(&cfg.ID, "id", host, "node id, unique in the cluster")
	fs.StringVar(&cfg.DataDir, "data-dir", "data", "directory for the raft log, snapshots and serf state")
	fs.StringVar(&cfg.GRPCAddr, "grpc-addr", "0.0.0.0:9001", "gRPC listen address (game and cluster services)")
	fs.StringVar(&cfg.RaftAddr, "raft-addr", "0.0.0.0:7001", "raft transport listen address")
	fs.StringVar(&cfg.SerfAddr, "serf-addr", "0.0.0.0:7946", "serf gossip listen address (TCP and UDP)")
	fs.StringVar(&cfg.NATSAddr, "nats-addr", "0.0.0.0:4222", "embedded NATS client listen address")
	fs.StringVar(&cfg.NATSClusterAddr, "nats-cluster-addr", "0.0.0.0:6222", "embedded NATS route listen address")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", "0.0.0.0:9101", "HTTP address for /healthz and /readyz (empty: off)")
	fs.StringVar(&cfg.PprofAddr, "pprof-addr", "", "address serving the Go profiler at /debug/pprof/ (empty: off); a loopback address, or any with --tls-* (then served over TLS to node certificates only)")
	fs.StringVar(&advertise, "advertise", "", "DNS name or IP other nodes reach this node at; a name is resolved at every dial, so the node is found again on a new IP (default: the bind host, or this host's first non-loopback IP)")
	fs.StringVar(&join, "join", "", "comma-separated serf addresses of other nodes, retried until one answers")
	fs.IntVar(&cfg.BootstrapExpect, "bootstrap-expect", 0, "form a new cluster once this many nodes see each other and none has raft state (0: wait to be added)")
	fs.StringVar(&recoverPeers, "recover", "", "peers file, or the JSON itself ([{\"id\": \"node1\"}, ...]): before starting, rewrite this node's raft configuration to the listed servers, once; the operator's way back when a majority of voters lost their data (see the README). A node without raft state ignores it")
	fs.DurationVar(&heartbeat, "raft-heartbeat-timeout", raftnode.DefaultHeartbeatTimeout, "raft heartbeat timeout")
	fs.DurationVar(&election, "raft-election-timeout", raftnode.DefaultElectionTimeout, "raft election timeout")
	fs.DurationVar(&promoteAt, "promote-after", raftnode.DefaultPromoteAfter, "how long a new node must be healthy before it becomes a voter")
	fs.DurationVar(&reapAfter, "reap-after", raftnode.DefaultReapAfter, "how long a voter must be failed before it is removed")
	fs.DurationVar(&cfg.StallTimeout, "stall-timeout", raftnode.DefaultStallTimeout, "how long a leader may fail to commit pending writes (a stalled disk) before it gives up leadership")
	fs.IntVar(&cfg.MaxRooms, "max-rooms", raftnode.DefaultMaxRooms, fmt.Sprintf("most rooms the cluster holds; creation past it is refused (at most %d)", raftnode.DefaultMaxRooms))
	fs.IntVar(&cfg.MaxPlayers, "max-players", raftnode.DefaultMaxPlayers, fmt.Sprintf("most players of one room; joining past it is refused (at most %d)", raftnode.DefaultMaxPlayers))
	fs.Uint64Var(&cfg.MaxLag, "max-lag", raftnode.DefaultMaxLag, "how many entries this node may trail the leader's commit index and still be ready")
	grpcHeader := fs.Uint("grpc-max-header-bytes", raftnode.DefaultGRPCMaxHeaderBytes, "largest header list (metadata) one gRPC call may carry; more is refused without being kept")
	grpcStreams := fs.Uint("grpc-max-streams", raftnode.DefaultGRPCMaxStreams, "most gRPC calls one connection may have open at once")
	fs.DurationVar(&idle[0], "room-idle", raftnode.DefaultRoomIdle, "how long a room in play may go without a command before the leader deletes it (0: never)")
	fs.DurationVar(&idle[1], "room-over-idle", raftnode.DefaultRoomOverIdle, "the same for a room whose round is over or that has no players (0: never)")
	fs.DurationVar(&idle[2], "seat-idle", raftnode.DefaultSeatIdle, "how long a player may not act while others in the room do before the leader frees their seat (0: never)")
	fs.Uint64Var(&cfg.AuditEvery, "audit-every", 0, "log a digest of the whole game state (\"state audit\") at every log index that is a multiple of this, the same indexes on every node, to check that replicas agree (0: off)")
	fs.StringVar(&cfg.AuditDir, "audit-dir", "", "with --audit-every, also write each audited state to DIR/audit-INDEX-DIGEST.json; keep it outside --data-dir")
	sec.register(fs)
	fs.StringVar(&cfg.NATSAuth.NodePassword, "nats-node-password", "", "NATS password of the \"node\" user (publishes hangman.>; also authenticates routes); setting any NATS password turns NATS users on")
	fs.StringVar(&cfg.NATSAuth.RelayPassword, "nats-relay-password", "", "NATS password of the \"relay\" user (subscribes to rooms, may not publish their state); empty: no such user")
	fs.StringVar(&cfg.NATSAuth.WatcherPassword, "nats-watcher-password", "", "NATS password of the read-only \"watcher\" user for the nats CLI; empty: no such user")
	fs.StringVar(&cfg.NATSAuth.PlayerPassword, "nats-player-password", "", "NATS password of the \"player\" user, who may call the game API (hangman.api.*) from the nats CLI; empty: no such user")
	logger := logFlags(fs, "info")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log, err := logger()
	if err != nil {
		return err
	}
	cfg.Logger = log
	if cfg.Recover, err = readRecover(recoverPeers); err != nil {
		return err
	}
	if cfg.TLS, cfg.GossipKey, err = sec.load(); err != nil {
		return err
	}
	if cfg.TLS == nil || cfg.GossipKey == nil || !cfg.NATSAuth.Enabled() {
		log.Warn("running without full security: set --tls-cert/--tls-key/--tls-ca, --gossip-key and the NATS passwords in production (see `hangman certs`)",
			"tls", cfg.TLS != nil, "gossip_key", cfg.GossipKey != nil, "nats_users", cfg.NATSAuth.Enabled())
	}
	if cfg.GRPCMaxHeaderBytes, err = flagUint32("grpc-max-header-bytes", *grpcHeader); err != nil {
		return err
	}
	if cfg.GRPCMaxStreams, err = flagUint32("grpc-max-streams", *grpcStreams); err != nil {
		return err
	}
	cfg.Join = splitList(join)
	cfg.HeartbeatTimeout, cfg.ElectionTimeout = heartbeat, election
	cfg.LeaderLeaseTimeout = min(raftnode.DefaultLeaderLeaseTimeout, heartbeat)
	cfg.PromoteAfter, cfg.ReapAfter = promoteAt, reapAfter
	// 0 on the command line means never, which the config spells negative
	// (its zero takes the default).
	for i, d := range []*time.Duration{&cfg.RoomIdle, &cfg.RoomOverIdle, &cfg.SeatIdle} {
		if *d = idle[i]; *d == 0 {
			*d = -1
		}
	}
	if cfg.Advertise, err = resolveAdvertise(ctx, advertise, cfg.GRPCAddr); err != nil {
		return err
	}
	setGCPercent(log)
	node, err := raftnode.Start(ctx, cfg)
	if err != nil {
		return err
	}
	<-ctx.Done()
	log.Info("shutting down")
	return node.Close()
}

// readRecover reads --recover: nothing, a peers file, or the JSON list
// itself (for containers without a shell to put a file in place).
func readRecover(v string) (*raftnode.Peers, error) {
	switch {
	case v == "":
		return nil, nil
	case strings.HasPrefix(strings.TrimSpace(v), "["):
		return raftnode.ParsePeers("--recover", []byte(v))
	default:
		return raftnode.ReadPeersFile(v)
	}
}

// resolveAdvertise checks --advertise: an IP is taken as is, and a name is
// kept (peers resolve it at every dial) once it resolves, retried for a
// while since a container's own name may resolve late. Without
// --advertise and with an unspecified bind host it picks this host's
// first private IP.
func resolveAdvertise(ctx context.Context, advertise, bind string) (string, error) {
	if advertise == "" {
		host, _, err := net.SplitHostPort(bind)
		if err != nil {
			return "", fmt.Errorf("bind address %q: %w", bind, err)
		}
		if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
			return "", nil
		}
		return firstPrivateIP()
	}
	if ip := net.ParseIP(advertise); ip != nil {
		return ip.String(), nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		ips, err := net.DefaultResolver.LookupIP(ctx, "ip4", advertise)
		if err == nil && len(ips) > 0 {
			return advertise, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("resolve advertise host %q: %w", advertise, err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func firstPrivateIP() (string, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return "", fmt.Errorf("list interface addresses: %w", err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && ipn.IP.To4() != nil {
			return ipn.IP.String(), nil
		}
	}
	return "", fmt.Errorf("no non-loopback IPv4 address found: set --advertise")
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// flagUint32 checks a cap given as a flag: at least 1 (a cap of 0 would
// refuse everything, and 0 in the config means the default) and within
// the 32 bits gRPC takes.
func flagUint32(name string, v uint) (uint32, error) {
	if v < 1 || v > math.MaxUint32 {
		return 0, fmt.Errorf("--%s %d must be between 1 and %d", name, v, uint64(math.MaxUint32))
	}
	return uint32(v), nil
}
