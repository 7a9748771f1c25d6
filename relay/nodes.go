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
// address and the index of the one that answered last. Any node takes any
// command (followers forward writes to the leader and retry across leader
// changes themselves), so the relay only fails over between nodes.
type nodes struct {
	addrs   []string
	conns   []*grpc.ClientConn
	clients []hangmanv1.GameServiceClient
	cur     atomic.Uint32
	attempt time.Duration
	log     *slog.Logger

	// What each node's grpc.health.v1 says of the game service: SERVING
	// while the node knows a raft leader (watchHealth).
	mu      sync.Mutex
	serving []bool
	// lostAt is when the last node that knew a leader stopped saying
	// so, or the start.
	lostAt time.Time
}

func dialNodes(addrs []string, attempt time.Duration, creds credentials.TransportCredentials, log *slog.Logger) (*nodes, error) {
	n := &nodes{addrs: addrs, attempt: attempt, log: log, serving: make([]bool, len(addrs)), lostAt: time.Now()}
	for _, a := range addrs {
		cc, err := grpc.NewClient(a,
			grpc.WithTransportCredentials(creds),
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
			n.close()
			return nil, fmt.Errorf("grpc client for %s: %w", a, err)
		}
		cc.Connect()
		n.conns = append(n.conns, cc)
		// Guesses from every browser of this relay share one stream per
		// node.
		n.clients = append(n.clients, gameclient.New(cc))
	}
	return n, nil
}

func (n *nodes) close() {
	for _, c := range n.conns {
		_ = c.Close()
	}
}

// ready reports whether at least one node connection is up.
func (n *nodes) ready() bool {
	for _, c := range n.conns {
		if c.GetState() == connectivity.Ready {
			return true
		}
	}
	return false
}

// healthRetry is the pause before watching a node's health again after
// the watch failed (the node is down, or answers no health service).
const healthRetry = time.Second

// watchHealth follows node i's grpc.health.v1 status of the game service
// until ctx ends. A node serves it while it knows a raft leader (what its
// /readyz says), so the relay learns of elections and lost quorums as they
// happen, without polling.
func (n *nodes) watchHealth(ctx context.Context, i int) {
	client := healthpb.NewHealthClient(n.conns[i])
	req := &healthpb.HealthCheckRequest{Service: hangmanv1.GameService_ServiceDesc.ServiceName}
	for ctx.Err() == nil {
		stream, err := client.Watch(ctx, req, grpc.WaitForReady(true))
		for err == nil {
			var resp *healthpb.HealthCheckResponse
			if resp, err = stream.Recv(); err == nil {
				n.setServing(i, resp.GetStatus() == healthpb.HealthCheckResponse_SERVING)
			}
		}
		n.setServing(i, false)
		if ctx.Err() == nil {
			n.log.Debug("node health watch ended; watching again", "node", n.addrs[i], "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(healthRetry):
		}
	}
}

func (n *nodes) setServing(i int, serving bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	before := slices.Contains(n.serving, true)
	n.serving[i] = serving
	if before && !slices.Contains(n.serving, true) {
		n.lostAt = time.Now()
	}
}

// leaderKnown reports whether a node this relay reaches knows a raft
// leader: commands can commit.
func (n *nodes) leaderKnown() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Contains(n.serving, true)
}

// leaderLostFor is how long no node this relay reaches has known a leader
// (zero while one does).
func (n *nodes) leaderLostFor() time.Duration {
	n.mu.Lock()
	defer n.mu.Unlock()
	if slices.Contains(n.serving, true) {
		return 0
	}
	return time.Since(n.lostAt)
}

// states reports each node connection's state, for /readyz.
func (n *nodes) states() map[string]string {
	out := make(map[string]string, len(n.conns))
	for i, c := range n.conns {
		out[n.addrs[i]] = c.GetState().String()
	}
	return out
}

// call runs f against one node after another until one answers, a node
// gives a final answer, or ctx ends. The node that answered is tried first
// next time. f must be safe to repeat: writes carry a request id.
//
// retried reports that an earlier attempt failed in a way that may have
// applied the command (it timed out, or its node became unreachable), so a
// "duplicate" in the final answer may be the relay's own retry rather than
// the client's.
func (n *nodes) call(ctx context.Context, op string, f func(context.Context, hangmanv1.GameServiceClient) error) (retried bool, err error) {
	start := int(n.cur.Load())
	for attempt := 0; ; attempt++ {
		i := (start + attempt) % len(n.clients)
		actx, cancel := context.WithTimeout(ctx, n.attempt)
		err = f(actx, n.clients[i])
		cancel()
		if err == nil {
			n.cur.Store(uint32(i))
			return attempt > 0, nil
		}
		if ctx.Err() != nil || !retryable(err) {
			return attempt > 0, err
		}
		n.log.Debug("node failed, trying the next", "op", op, "node", n.addrs[i], "err", err)
		if (attempt+1)%len(n.clients) == 0 {
			// Every node failed once: the cluster is electing or
			// restarting. Wait a little before the next round.
			pause := time.Duration(min(attempt+1, 10)) * 50 * time.Millisecond
			select {
			case <-ctx.Done():
				return true, err
			case <-time.After(pause):
			}
		}
	}
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
