// Package devcluster runs the whole hangman system in one process: game
// nodes (raftnode) that bootstrap together and relays in front of them, on
// loopback ports, with chaos controls under /dev/ on those relays. It is
// what `hangman dev` runs, and what tests use when they want a real
// cluster without child processes; `hangman dev` itself only parses flags.
package devcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/hangman/hangman/raftnode"
	"github.com/hangman/hangman/relay"
)

// Dev-mode ports: node i (1-based) listens on base+i, relay j on 8080+j.
// Everything stays on loopback.
const (
	devGRPCBase        = 9000
	devRaftBase        = 7000
	devSerfBase        = 7100
	devNATSBase        = 4221
	devNATSClusterBase = 6221
	devHTTPBase        = 9100
	devRelayBase       = 8080
)

// Options sizes a dev system.
type Options struct {
	// DataDir holds every node's data, one directory per node; it must be
	// given (hangman dev makes a temporary one).
	DataDir string
	// Nodes (1-9) and Relays (0-9) say how many of each run.
	Nodes, Relays int
	// PortOffset (0-50000) is added to every port, so that several dev
	// systems (a developer's and the tests') run side by side.
	PortOffset int
	// Logger receives the nodes' and relays' logs.
	Logger *slog.Logger
}

// Validate says what is wrong with the sizes and ports of opts, in the
// words of hangman dev's flags, so the command can refuse them before it
// makes a data directory.
func (o Options) Validate() error {
	if o.Nodes < 1 || o.Nodes > 9 {
		return fmt.Errorf("--nodes %d: want 1-9", o.Nodes)
	}
	if o.Relays < 0 || o.Relays > 9 {
		return fmt.Errorf("--relays %d: want 0-9", o.Relays)
	}
	if o.PortOffset < 0 || o.PortOffset > 50000 {
		return fmt.Errorf("--port-offset %d: want 0-50000", o.PortOffset)
	}
	return nil
}

// System is a running dev system. Its chaos controls (controls.go)
// stop and start nodes and relays while it runs: a stopped one is nil in
// nodes or relays, and starts again from its config in nodeCfgs or
// relayCfgs.
type System struct {
	opts       Options
	controls   *controls
	ctx        context.Context
	nodeCfgs   []raftnode.Config
	relayCfgs  []relay.Config
	relayAddrs []string
	relayURLs  []string
	natsURLs   []string
	grpcAddrs  []string

	mu     sync.Mutex // guards nodes, relays and closed
	nodes  []*raftnode.Node
	relays []*relay.Relay
	closed bool
}

func devAddr(base, i, offset int) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(base+i+offset))
}

// Start starts opts.Nodes game nodes and waits until they form a cluster
// whose NATS servers are meshed, then starts opts.Relays relays in front of
// them. Ports: node i (1-based) listens on base+i+PortOffset, relay j on
// 8080+j+PortOffset, all on 127.0.0.1. The system runs until Close; ctx
// bounds the start and is the context of every node and relay.
func Start(ctx context.Context, opts Options) (*System, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("dev system: %w", err)
	}
	if opts.DataDir == "" || opts.Logger == nil {
		return nil, errors.New("dev system: Options needs a DataDir and a Logger")
	}
	sys := &System{opts: opts, ctx: ctx}
	var joins []string
	for i := 1; i <= opts.Nodes; i++ {
		joins = append(joins, devAddr(devSerfBase, i, opts.PortOffset))
		sys.grpcAddrs = append(sys.grpcAddrs, devAddr(devGRPCBase, i, opts.PortOffset))
		sys.natsURLs = append(sys.natsURLs, "nats://"+devAddr(devNATSBase, i, opts.PortOffset))
	}
	for i := 1; i <= opts.Nodes; i++ {
		id := "node" + strconv.Itoa(i)
		cfg := raftnode.Config{
			ID:              id,
			DataDir:         filepath.Join(opts.DataDir, id),
			GRPCAddr:        devAddr(devGRPCBase, i, opts.PortOffset),
			RaftAddr:        devAddr(devRaftBase, i, opts.PortOffset),
			SerfAddr:        devAddr(devSerfBase, i, opts.PortOffset),
			NATSAddr:        devAddr(devNATSBase, i, opts.PortOffset),
			NATSClusterAddr: devAddr(devNATSClusterBase, i, opts.PortOffset),
			HTTPAddr:        devAddr(devHTTPBase, i, opts.PortOffset),
			Join:            joins,
			BootstrapExpect: opts.Nodes,
			FastGossip:      true,
			Logger:          opts.Logger,
		}
		sys.nodeCfgs = append(sys.nodeCfgs, cfg)
		n, err := raftnode.Start(ctx, cfg)
		if err != nil {
			sys.Close()
			return nil, fmt.Errorf("start %s: %w", id, err)
		}
		sys.nodes = append(sys.nodes, n)
	}
	if err := waitMeshed(ctx, sys.nodes, devMeshTimeout); err != nil {
		sys.Close()
		return nil, err
	}
	var origins []string
	for j := range opts.Relays {
		port := strconv.Itoa(devRelayBase + j + opts.PortOffset)
		sys.relayURLs = append(sys.relayURLs, "http://127.0.0.1:"+port)
		origins = append(origins, "http://127.0.0.1:"+port, "http://localhost:"+port)
	}
	// The chaos controls, on every relay of this process and nowhere else.
	sys.controls = newControls(sys)
	for j := range opts.Relays {
		sys.relayAddrs = append(sys.relayAddrs, devAddr(devRelayBase, j, opts.PortOffset))
		sys.relayCfgs = append(sys.relayCfgs, relay.Config{
			Name:           "relay-" + strconv.Itoa(j+1),
			PublicURL:      sys.relayURLs[j],
			NATSURLs:       sys.natsURLs,
			GRPCAddrs:      sys.grpcAddrs,
			AllowedOrigins: origins,
			// Every browser and load generator of dev is on loopback.
			MaxConnsPerAddr: -1,
			Logger:          opts.Logger,
			DevHandler:      sys.controls,
		})
		sys.mu.Lock()
		r, err := sys.serveRelayLocked(j)
		if err == nil {
			sys.relays = append(sys.relays, r)
		}
		sys.mu.Unlock()
		if err != nil {
			sys.Close()
			return nil, fmt.Errorf("relay %d: %w", j+1, err)
		}
	}
	return sys, nil
}

// devMeshTimeout bounds how long Start waits for its cluster to form.
const devMeshTimeout = 30 * time.Second

// waitMeshed waits until every node knows the leader and its embedded NATS
// server has a route to every other node's. The relays start only then:
// until the NATS mesh is whole, what the leader publishes does not reach a
// relay subscribed on another node's server, and a quick player's first
// moves would be missing from every feed (routes follow serf, and on a
// busy machine they can take a second to open).
func waitMeshed(ctx context.Context, nodes []*raftnode.Node, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var why error
		for _, n := range nodes {
			if err := n.Ready(); err != nil {
				why = fmt.Errorf("%s: %w", n.ID(), err)
				break
			}
			if got := n.NATSServer().NumRemotes(); got < len(nodes)-1 {
				why = fmt.Errorf("%s: NATS routes to %d of the %d other nodes", n.ID(), got, len(nodes)-1)
				break
			}
		}
		if why == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the cluster did not form within %v: %w", timeout, why)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// GRPCAddrs are the nodes' gRPC addresses, in node order.
func (s *System) GRPCAddrs() []string { return append([]string(nil), s.grpcAddrs...) }

// NATSURLs are the nodes' embedded NATS client URLs, in node order.
func (s *System) NATSURLs() []string { return append([]string(nil), s.natsURLs...) }

// RelayURLs are the relays' URLs, where browsers play.
func (s *System) RelayURLs() []string { return append([]string(nil), s.relayURLs...) }

// Controls is the handler of the chaos controls under /dev/, which every
// relay of this system already serves; it is exposed for a server of the
// caller's own.
func (s *System) Controls() http.Handler { return s.controls }

// PrintURLs writes where everything listens and how to watch it, as
// hangman dev prints it on start.
func (s *System) PrintURLs(w io.Writer) {
	fmt.Fprintf(w, "hangman dev: %d game nodes, %d relays (data in %s)\n\n", len(s.nodes), len(s.relays), s.opts.DataDir)
	for _, u := range s.relayURLs {
		fmt.Fprintf(w, "  play      %s\n", u)
	}
	if len(s.relayURLs) > 0 {
		fmt.Fprintf(w, "  cluster   %s/#/cluster   (live view, with chaos controls)\n", s.relayURLs[0])
	}
	for i, n := range s.nodes {
		fmt.Fprintf(w, "  %-9s grpc %s   nats %s   http http://%s\n", n.ID(), s.grpcAddrs[i], s.natsURLs[i], devAddr(devHTTPBase, i+1, s.opts.PortOffset))
	}
	fmt.Fprintf(w, "\n  watch     nats sub 'hangman.>'%s\n", natsServerFlag(s.natsURLs[0]))
	fmt.Fprintf(w, "  inspect   grpcurl -plaintext %s list\n\nCtrl-C stops everything.\n", s.grpcAddrs[0])
}

func natsServerFlag(url string) string {
	if url == "nats://127.0.0.1:4222" {
		return ""
	}
	return " --server " + url
}

// Close stops relays first, telling browsers to go (close 1001), then the
// nodes.
func (s *System) Close() {
	s.mu.Lock()
	s.closed = true
	relays, nodes := s.relays, s.nodes
	s.relays, s.nodes = make([]*relay.Relay, len(relays)), make([]*raftnode.Node, len(nodes))
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, r := range relays {
		if r != nil {
			if err := r.Shutdown(ctx); err != nil {
				_ = r.Close()
			}
		}
	}
	for _, n := range nodes {
		if n != nil {
			_ = n.Close()
		}
	}
}
