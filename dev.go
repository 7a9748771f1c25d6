package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
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

// runDev runs the whole system in one process: game nodes that bootstrap
// together and relays in front of them, on loopback.
func runDev(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("hangman dev", flag.ContinueOnError)
	var (
		dataDir       string
		nodes, relays int
		offset        int
	)
	fs.StringVar(&dataDir, "data-dir", "", "data directory (default: a fresh temporary directory, removed on exit)")
	fs.IntVar(&nodes, "nodes", 3, "number of game nodes (1-9)")
	fs.IntVar(&relays, "relays", 2, "number of relays (0-9)")
	fs.IntVar(&offset, "port-offset", 0, "added to every port, to run several dev systems side by side")
	logger := logFlags(fs, "warn")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if nodes < 1 || nodes > 9 {
		return fmt.Errorf("--nodes %d: want 1-9", nodes)
	}
	if relays < 0 || relays > 9 {
		return fmt.Errorf("--relays %d: want 0-9", relays)
	}
	if offset < 0 || offset > 50000 {
		return fmt.Errorf("--port-offset %d: want 0-50000", offset)
	}
	log, err := logger()
	if err != nil {
		return err
	}
	if dataDir == "" {
		if dataDir, err = os.MkdirTemp("", "hangman-dev-"); err != nil {
			return fmt.Errorf("temporary data dir: %w", err)
		}
		defer os.RemoveAll(dataDir)
	}
	sys, err := startDev(ctx, devOptions{DataDir: dataDir, Nodes: nodes, Relays: relays, PortOffset: offset, Logger: log})
	if err != nil {
		return err
	}
	defer sys.Close()
	sys.printURLs(os.Stdout)
	<-ctx.Done()
	fmt.Fprintln(os.Stdout, "stopping…")
	return nil
}

// devOptions sizes a dev system.
type devOptions struct {
	DataDir       string
	Nodes, Relays int
	PortOffset    int
	Logger        *slog.Logger
}

// devSystem is a running dev system. Its chaos controls (dev_chaos.go)
// stop and start nodes and relays while it runs: a stopped one is nil in
// nodes or relays, and starts again from its config in nodeCfgs or
// relayCfgs.
type devSystem struct {
	opts       devOptions
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

func startDev(ctx context.Context, opts devOptions) (*devSystem, error) {
	sys := &devSystem{opts: opts, ctx: ctx}
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
	dev := newDevControl(sys)
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
			DevHandler:      dev,
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

// devMeshTimeout bounds how long startDev waits for its cluster to form.
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

func (s *devSystem) printURLs(w *os.File) {
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
func (s *devSystem) Close() {
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
