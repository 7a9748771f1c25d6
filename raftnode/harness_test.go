package raftnode

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/hangman/hangman/internal/harness"
	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
	"github.com/hangman/hangman/raftnode/raftstore"
	"github.com/hangman/hangman/services/game"
	"github.com/hangman/hangman/services/gameclient"
)

// testCluster runs real nodes in this process: real raft over TCP with a
// log on disk (in memory, when newInmemCluster made it), real serf gossip
// on loopback, real embedded NATS servers, real gRPC. Killing a node
// closes everything it has, without leaving.
type testCluster struct {
	t     *testing.T
	mu    sync.Mutex
	cfgs  []Config
	nodes []*Node
}

// newTestCluster starts size nodes that bootstrap together.
func newTestCluster(t *testing.T, size int, tweak func(*Config)) *testCluster {
	t.Helper()
	c := &testCluster{t: t}
	ports := harness.FreePorts(t, 6*size)
	dir := t.TempDir()
	var joins []string
	for i := range size {
		p := ports[6*i:]
		addr := func(k int) string { return "127.0.0.1:" + strconv.Itoa(p[k]) }
		cfg := Config{
			ID:              fmt.Sprintf("n%d", i+1),
			DataDir:         filepath.Join(dir, fmt.Sprintf("n%d", i+1)),
			GRPCAddr:        addr(0),
			RaftAddr:        addr(1),
			SerfAddr:        addr(2),
			NATSAddr:        addr(3),
			NATSClusterAddr: addr(4),
			HTTPAddr:        addr(5),
			BootstrapExpect: size,
			FastGossip:      true,
			PromoteAfter:    200 * time.Millisecond,
			ReapAfter:       time.Hour,
			Logger:          harness.Logger().With("n", i+1),
		}
		joins = append(joins, cfg.SerfAddr)
		c.cfgs = append(c.cfgs, cfg)
	}
	for i := range c.cfgs {
		c.cfgs[i].Join = joins
		if tweak != nil {
			tweak(&c.cfgs[i])
		}
	}
	c.nodes = make([]*Node, size)
	for i := range c.cfgs {
		c.start(i)
	}
	t.Cleanup(func() {
		for i := range c.nodes {
			c.kill(i)
		}
	})
	return c
}

// newLoggedCluster starts size nodes that log everything, at debug level
// and as JSON, into logs: for tests that look for what must never be
// logged.
func newLoggedCluster(t *testing.T, size int) (c *testCluster, logs *harness.SyncBuffer) {
	t.Helper()
	logs = new(harness.SyncBuffer)
	c = newTestCluster(t, size, func(cfg *Config) {
		cfg.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})).With("n", cfg.ID)
	})
	return c, logs
}

func (c *testCluster) start(i int) *Node {
	c.t.Helper()
	n, err := Start(context.Background(), c.cfgs[i])
	if err != nil {
		c.t.Fatalf("start node %s: %v", c.cfgs[i].ID, err)
	}
	c.mu.Lock()
	c.nodes[i] = n
	c.mu.Unlock()
	return n
}

func (c *testCluster) kill(i int) {
	c.mu.Lock()
	n := c.nodes[i]
	c.nodes[i] = nil
	c.mu.Unlock()
	if n != nil {
		if err := n.Close(); err != nil {
			c.t.Logf("close %s: %v", n.ID(), err)
		}
	}
}

func (c *testCluster) alive() []*Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*Node
	for _, n := range c.nodes {
		if n != nil {
			out = append(out, n)
		}
	}
	return out
}

// leader waits until every live node agrees on one leader and returns its
// index in c.nodes.
func (c *testCluster) leader() int {
	c.t.Helper()
	var idx int
	harness.Eventually(c.t, 15*time.Second, "an agreed leader", func() error {
		var leader raft.ServerID
		for _, n := range c.alive() {
			_, id := n.raft.LeaderWithID()
			if id == "" {
				return fmt.Errorf("%s knows no leader", n.ID())
			}
			if leader != "" && id != leader {
				return fmt.Errorf("leaders disagree: %s vs %s", leader, id)
			}
			leader = id
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		for i, n := range c.nodes {
			if n != nil && n.ident.raftID == leader && n.IsLeader() && n.readyTerm.Load() == n.raft.CurrentTerm() {
				idx = i
				return nil
			}
		}
		return fmt.Errorf("leader %q is not a ready live node", leader)
	})
	return idx
}

// dial connects to node i's gRPC server for the rest of the test.
func (c *testCluster) dial(i int) *grpc.ClientConn {
	c.t.Helper()
	conn, err := grpc.NewClient(c.cfgs[i].GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		c.t.Fatalf("dial %s: %v", c.cfgs[i].GRPCAddr, err)
	}
	c.t.Cleanup(func() { conn.Close() })
	return conn
}

// client is a unary GameService client of node i.
func (c *testCluster) client(i int) hangmanv1.GameServiceClient {
	c.t.Helper()
	return hangmanv1.NewGameServiceClient(c.dial(i))
}

// streamClient is the client relays use on node i, which sends guesses
// over one Guesses stream.
func (c *testCluster) streamClient(i int) hangmanv1.GameServiceClient {
	c.t.Helper()
	return gameclient.New(c.dial(i))
}

func (c *testCluster) clusterClient(i int) hangmanv1.ClusterServiceClient {
	c.t.Helper()
	return hangmanv1.NewClusterServiceClient(c.dial(i))
}

// metricsOf scrapes node i's /metrics.
func (c *testCluster) metricsOf(i int) map[string]float64 {
	c.t.Helper()
	return harness.MustScrape(c.t, "http://"+c.cfgs[i].HTTPAddr+"/metrics")
}

// snapshotOf returns the serialised state machine of a node.
func snapshotOf(t *testing.T, n *Node) string {
	t.Helper()
	var s string
	n.Read(func(m *game.Machine) {
		var b strings.Builder
		if err := m.Snapshot(&b); err != nil {
			t.Fatalf("snapshot %s: %v", n.ID(), err)
		}
		s = b.String()
	})
	return s
}

// roomsOf returns the public state of every room of a node, as JSON.
func roomsOf(t *testing.T, n *Node) string {
	t.Helper()
	var states []game.State
	n.Read(func(m *game.Machine) { states = m.States() })
	b, err := json.Marshal(states)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// converged waits until every live node has applied the same state.
func (c *testCluster) converged() string {
	c.t.Helper()
	var state string
	harness.Eventually(c.t, 15*time.Second, "replicas to converge", func() error {
		nodes := c.alive()
		first := snapshotOf(c.t, nodes[0])
		for _, n := range nodes[1:] {
			if s := snapshotOf(c.t, n); s != first {
				return fmt.Errorf("%s differs from %s", n.ID(), nodes[0].ID())
			}
		}
		state = first
		return nil
	})
	return state
}

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// lastIndexInDir opens a stopped node's raft log and reports its last index.
func lastIndexInDir(dataDir string) (uint64, error) {
	s, err := raftstore.OpenLog(filepath.Join(dataDir, "raft"), slog.New(slog.DiscardHandler))
	if err != nil {
		return 0, err
	}
	defer s.Close()
	return s.LastIndex()
}
