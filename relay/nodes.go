package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
	"github.com/hangman/hangman/services/gameclient"
	"github.com/hangman/hangman/tlsutil"
)

// nodes is the relay's view of the game nodes: one gRPC connection per
// address and the node that answered last. Any node takes any command
// (followers forward writes to the leader and retry across leader changes
// themselves), so the relay only fails over between nodes.
//
// The addresses are the --grpc seeds, kept for good, and those the
// cluster reports (the follower, follow.go): each game node's gRPC address as the nodes
// gossip it, read over the relay's own gRPC link. So a relay follows a
// cluster whose nodes come back on new addresses, as long as one address
// it knows still reaches a node when another moves.
type nodes struct {
	attempt time.Duration
	creds   credentials.TransportCredentials
	log     *slog.Logger
	// cur is the node that answered last, tried first next time.
	cur atomic.Pointer[nodeConn]

	mu   sync.Mutex
	list []*nodeConn
	// lostAt is when the last node that knew a leader stopped saying
	// so, or the start.
	lostAt time.Time
	// watch starts a node's health watch; nil until start.
	watch func(*nodeConn)
}

// nodeConn is one node address and the relay's connection to it.
type nodeConn struct {
	addr   string
	seed   bool // named by --grpc: never dropped
	cc     *grpc.ClientConn
	client hangmanv1.GameServiceClient
	// stop ends the health watch.
	stop context.CancelFunc
	// name is the node's name as the cluster's members last gave it for
	// this address, "" until they did. Guarded by nodes.mu.
	name string
	// serving is what the node's grpc.health.v1 says of the game service:
	// SERVING while the node knows a raft leader (watchHealth). Guarded
	// by nodes.mu.
	serving bool
}

func dialNodes(addrs []string, attempt time.Duration, creds credentials.TransportCredentials, log *slog.Logger) (*nodes, error) {
	n := &nodes{attempt: attempt, creds: creds, log: log, lostAt: time.Now()}
	for _, a := range addrs {
		nc, err := n.dial(a)
		if err != nil {
			n.close()
			return nil, err
		}
		nc.seed = true
		n.list = append(n.list, nc)
	}
	return n, nil
}

// dial connects to a node address in the background.
func (n *nodes) dial(addr string) (*nodeConn, error) {
	cc, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(n.creds),
		// Come back quickly after a node restarts: the default
		// backoff grows to two minutes.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
			MinConnectTimeout: 2 * time.Second,
		}),
		// Stay connected so /readyz and the first command see a
		// ready connection.
		grpc.WithIdleTimeout(0),
	)
	if err != nil {
		return nil, fmt.Errorf("grpc client for %s: %w", addr, err)
	}
	cc.Connect()
	// Guesses from every browser of this relay share one stream per node.
	return &nodeConn{addr: addr, cc: cc, client: gameclient.New(cc), stop: func() {}}, nil
}

// start watches every node's health, now and as nodes are added, until
// ctx ends; spawn runs a background goroutine the relay waits for.
func (n *nodes) start(ctx context.Context, spawn func(func())) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.watch = func(nc *nodeConn) {
		wctx, stop := context.WithCancel(ctx)
		nc.stop = stop
		spawn(func() { n.watchHealth(wctx, nc) })
	}
	for _, nc := range n.list {
		n.watch(nc)
	}
}

func (n *nodes) close() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, nc := range n.list {
		nc.stop()
		_ = nc.cc.Close()
	}
}

// snapshot returns the current node table; entries are never modified,
// only added and removed.
func (n *nodes) snapshot() []*nodeConn {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.list)
}

// names returns the name the cluster's members give each address, for
// the addresses they named.
func (n *nodes) names() map[string]string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make(map[string]string, len(n.list))
	for _, nc := range n.list {
		if nc.name != "" {
			out[nc.addr] = nc.name
		}
	}
	return out
}

// ready reports whether at least one node connection is up.
func (n *nodes) ready() bool {
	return n.readyCount() > 0
}

// readyCount is how many node connections are up (for the metrics).
func (n *nodes) readyCount() int {
	c := 0
	for _, nc := range n.snapshot() {
		if nc.cc.GetState() == connectivity.Ready {
			c++
		}
	}
	return c
}

// healthRetry is the pause before watching a node's health again after
// the watch failed (the node is down, or answers no health service).
const healthRetry = time.Second

// watchHealth follows a node's grpc.health.v1 status of the game service
// until ctx ends. A node serves it while it knows a raft leader (what its
// /readyz says), so the relay learns of elections and lost quorums as they
// happen, without polling.
func (n *nodes) watchHealth(ctx context.Context, nc *nodeConn) {
	client := healthpb.NewHealthClient(nc.cc)
	req := &healthpb.HealthCheckRequest{Service: hangmanv1.GameService_ServiceDesc.ServiceName}
	for ctx.Err() == nil {
		stream, err := client.Watch(ctx, req, grpc.WaitForReady(true))
		for err == nil {
			var resp *healthpb.HealthCheckResponse
			if resp, err = stream.Recv(); err == nil {
				n.setServing(nc, resp.GetStatus() == healthpb.HealthCheckResponse_SERVING)
			}
		}
		n.setServing(nc, false)
		if ctx.Err() == nil {
			n.log.Debug("node health watch ended; watching again", "node", nc.addr, "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(healthRetry):
		}
	}
}

func (n *nodes) setServing(nc *nodeConn, serving bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	before := n.anyServingLocked()
	nc.serving = serving
	if before && !n.anyServingLocked() {
		n.lostAt = time.Now()
	}
}

func (n *nodes) anyServingLocked() bool {
	return slices.ContainsFunc(n.list, func(nc *nodeConn) bool { return nc.serving })
}

// leaderKnown reports whether a node this relay reaches knows a raft
// leader: commands can commit.
func (n *nodes) leaderKnown() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.anyServingLocked()
}

// leaderLostFor is how long no node this relay reaches has known a leader
// (zero while one does).
func (n *nodes) leaderLostFor() time.Duration {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.anyServingLocked() {
		return 0
	}
	return time.Since(n.lostAt)
}

// states reports each node connection's state, for /readyz.
func (n *nodes) states() map[string]string {
	list := n.snapshot()
	out := make(map[string]string, len(list))
	for _, nc := range list {
		out[nc.addr] = nc.cc.GetState().String()
	}
	return out
}

// call runs f against one node after another until one answers, a node
// gives a final answer, or ctx ends. The node that answered is tried first
// next time. f must be safe to repeat: writes carry a request id. Each
// round over the nodes reads the node table afresh, so a call that spans
// a move of the cluster reaches its new addresses.
//
// retried reports that an earlier attempt failed in a way that may have
// applied the command (it timed out, or its node became unreachable), so a
// "duplicate" in the final answer may be the relay's own retry rather than
// the client's.
func (n *nodes) call(ctx context.Context, op string, f func(context.Context, hangmanv1.GameServiceClient) error) (retried bool, err error) {
	for attempt := 0; ; {
		list := n.snapshot()
		start := max(0, slices.Index(list, n.cur.Load()))
		for k := range list {
			nc := list[(start+k)%len(list)]
			actx, cancel := context.WithTimeout(ctx, n.attempt)
			err = f(actx, nc.client)
			cancel()
			if err == nil {
				n.cur.Store(nc)
				return attempt > 0, nil
			}
			attempt++
			if ctx.Err() != nil || !retryable(err) {
				return attempt > 1, err
			}
			n.log.Debug("node failed, trying the next", "op", op, "node", nc.addr, "err", err)
		}
		// Every node failed once: the cluster is electing or restarting.
		// Wait a little before the next round.
		pause := time.Duration(min(attempt, 10)) * 50 * time.Millisecond
		select {
		case <-ctx.Done():
			return true, err
		case <-time.After(pause):
		}
	}
}

// getRoom reads a room's state as the leader has it: no quorum round, so
// it costs the cluster one map lookup.
func (n *nodes) getRoom(ctx context.Context, name string) (*hangmanv1.GetRoomResponse, error) {
	var res *hangmanv1.GetRoomResponse
	_, err := n.call(ctx, "get_room", func(ctx context.Context, g hangmanv1.GameServiceClient) (err error) {
		res, err = g.GetRoom(ctx, &hangmanv1.GetRoomRequest{Room: name, Consistency: hangmanv1.Consistency_CONSISTENCY_LEADER})
		return err
	})
	return res, err
}

// retryable reports whether another node may succeed where one failed:
// unreachable, no leader in time, or one attempt's own deadline.
func retryable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted:
		return true
	}
	return false
}

// grpcCreds are the relay's gRPC transport credentials: its client
// certificate, verifying each node as a cluster node, or plaintext.
func grpcCreds(b *tlsutil.Bundle) credentials.TransportCredentials {
	if b == nil {
		return insecure.NewCredentials()
	}
	return credentials.NewTLS(b.ClientConfig())
}

// natsAuth is the relay's NATS connect option: user, password and TLS as
// configured; with none it changes nothing.
func natsAuth(cfg Config) nats.Option {
	return func(o *nats.Options) error {
		if cfg.NATSUser != "" || cfg.NATSPassword != "" {
			o.User, o.Password = cfg.NATSUser, cfg.NATSPassword
		}
		if cfg.TLS != nil {
			o.Secure = true
			o.TLSConfig = cfg.TLS.ClientConfig()
		}
		return nil
	}
}
