package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/hangman/hangman/internal/harness"
	"github.com/hangman/hangman/internal/proc"
	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
	"github.com/hangman/hangman/tlsutil"
)

// member is one child process of the system under test, before and
// while it runs.
type member struct {
	name string
	args []string
	env  []string
	http string // health address
	p    *proc.Proc
}

// System is the system under test: a cluster of game nodes and relays that
// the bench started as child processes on loopback (StartSystem), or one
// that was already running (Attach).
type System struct {
	bin     string
	dir     string
	log     io.Writer
	cleanup func()
	nodes   []*member
	relays  []*member
	conns   []*grpc.ClientConn
	Cluster []hangmanv1.ClusterServiceClient
	// GRPCAddrs, NATSURLs and RelayURLs say where the parts listen.
	GRPCAddrs []string
	NATSURLs  []string
	RelayURLs []string
	// PprofURLs are the started nodes' profilers, so that a run can be
	// profiled where its cost is (empty when attached).
	PprofURLs []string
	// RelayPprofURLs are the started relays' profilers (empty when
	// attached, or when the binary's relays have none: an older build
	// under --compare).
	RelayPprofURLs []string
}

// SystemConfig sizes the system.
type SystemConfig struct {
	// Binary is the hangman executable to run.
	Binary string
	// Dir holds the nodes' data; it should be on the disk being measured.
	Dir           string
	Nodes, Relays int
	// BasePort: node i uses BasePort+10*i+{0..6}; relay j BasePort+100+j,
	// and its profiler BasePort+150+j. A system holds at most MaxNodes
	// nodes and MaxRelays relays, so it stays within 200 ports.
	BasePort int
	// RelayArgs are extra flags for every relay (limits).
	RelayArgs []string
	// Log receives the children's output; nil discards it.
	Log io.Writer
	// Cleanup, if set, runs once Close has stopped every process (it
	// removes a temporary Dir).
	Cleanup func()
}

// The most nodes and relays StartSystem starts, so that a system's ports
// stay within BasePort..BasePort+199.
const (
	MaxNodes  = 10
	MaxRelays = 50
)

// ErrPortInUse is StartSystem's refusal of a base port some of whose
// ports another process holds.
var ErrPortInUse = errors.New("in use")

// StartSystem starts the nodes and relays and waits until all are ready.
// It first checks that every port the system needs is free: a node started
// on a port another system holds would exit, but its peers would join
// that system's gossip, and the bench would take the other system's node
// for its own, leaving that cluster with voters it cannot reach.
func StartSystem(ctx context.Context, cfg SystemConfig) (*System, error) {
	if cfg.Nodes < 1 || cfg.Nodes > MaxNodes || cfg.Relays < 0 || cfg.Relays > MaxRelays {
		return nil, fmt.Errorf("start a system of %d nodes and %d relays: want 1 to %d nodes and 0 to %d relays", cfg.Nodes, cfg.Relays, MaxNodes, MaxRelays)
	}
	port := func(i, k int) string { return "127.0.0.1:" + strconv.Itoa(cfg.BasePort+10*i+k) }
	relayPort := func(j, k int) string { return "127.0.0.1:" + strconv.Itoa(cfg.BasePort+100+50*k+j) }
	var tcp, udp []string
	for i := range cfg.Nodes {
		for k := range 7 {
			tcp = append(tcp, port(i, k))
		}
		udp = append(udp, port(i, 2)) // serf gossips over UDP too
	}
	for j := range cfg.Relays {
		tcp = append(tcp, relayPort(j, 0), relayPort(j, 1))
	}
	if err := portsFree(tcp, udp); err != nil {
		return nil, fmt.Errorf("base port %d: %w", cfg.BasePort, err)
	}
	// The nodes gossip with a key of their own, so that they can never
	// join another system's gossip, nor let one in: a node started on a
	// port another system took after the check above exits, but its peers
	// would otherwise join that system and become voters it cannot reach.
	key, err := tlsutil.NewGossipKey()
	if err != nil {
		return nil, fmt.Errorf("gossip key: %w", err)
	}
	gossipKey := "HANGMAN_GOSSIP_KEY=" + key
	s := &System{bin: cfg.Binary, dir: cfg.Dir, log: cfg.Log, cleanup: cfg.Cleanup}
	if s.log == nil {
		s.log = io.Discard
	}
	var joins []string
	for i := range cfg.Nodes {
		joins = append(joins, port(i, 2))
		s.GRPCAddrs = append(s.GRPCAddrs, port(i, 0))
		s.NATSURLs = append(s.NATSURLs, "nats://"+port(i, 3))
		s.PprofURLs = append(s.PprofURLs, "http://"+port(i, 6)+"/debug/pprof/")
	}
	for i := range cfg.Nodes {
		id := "bench" + strconv.Itoa(i+1)
		p := &member{name: id, http: port(i, 5), args: []string{"node",
			"--id", id, "--data-dir", filepath.Join(cfg.Dir, id),
			"--grpc-addr", port(i, 0), "--raft-addr", port(i, 1), "--serf-addr", port(i, 2),
			"--nats-addr", port(i, 3), "--nats-cluster-addr", port(i, 4), "--http-addr", port(i, 5),
			"--pprof-addr", port(i, 6),
			"--join", strings.Join(joins, ","), "--bootstrap-expect", strconv.Itoa(cfg.Nodes),
			"--log-level", "warn"}, env: []string{gossipKey}}
		s.nodes = append(s.nodes, p)
		if err := s.start(p); err != nil {
			s.Close()
			return nil, err
		}
	}
	profiled := cfg.Relays > 0 && relayTakes(cfg.Binary, "pprof-addr")
	for j := range cfg.Relays {
		addr := relayPort(j, 0)
		url := "http://" + addr
		s.RelayURLs = append(s.RelayURLs, url)
		args := append([]string{"relay", "--listen", addr, "--name", "bench-relay-" + strconv.Itoa(j+1),
			"--public-url", url, "--nats", strings.Join(s.NATSURLs, ","), "--grpc", strings.Join(s.GRPCAddrs, ","),
			"--log-level", "warn"}, cfg.RelayArgs...)
		if profiled {
			pprof := relayPort(j, 1)
			args = append(args, "--pprof-addr", pprof)
			s.RelayPprofURLs = append(s.RelayPprofURLs, "http://"+pprof+"/debug/pprof/")
		}
		p := &member{name: "relay" + strconv.Itoa(j+1), http: addr, args: args}
		s.relays = append(s.relays, p)
		if err := s.start(p); err != nil {
			s.Close()
			return nil, err
		}
	}
	if err := s.dial(); err != nil {
		s.Close()
		return nil, err
	}
	for _, m := range append(append([]*member(nil), s.nodes...), s.relays...) {
		if err := m.p.WaitHTTP(ctx, "http://"+m.http+"/readyz", 30*time.Second); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// portsFree checks that every tcp and udp address can be listened on now,
// or names the first that cannot, wrapping ErrPortInUse.
func portsFree(tcp, udp []string) error {
	for _, a := range tcp {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			return fmt.Errorf("port %s (tcp) is %w: another system may run there; choose another base port: %v", a, ErrPortInUse, err)
		}
		_ = ln.Close()
	}
	for _, a := range udp {
		pc, err := net.ListenPacket("udp", a)
		if err != nil {
			return fmt.Errorf("port %s (udp) is %w: another system may run there; choose another base port: %v", a, ErrPortInUse, err)
		}
		_ = pc.Close()
	}
	return nil
}

// relayTakes reports whether bin's relay command knows flag, so that a
// build from before the flag still runs as the baseline of --compare.
func relayTakes(bin, flag string) bool {
	out, _ := exec.Command(bin, "relay", "-h").CombinedOutput()
	// The flag package lists each flag as "  -name type" or, for a bool,
	// "  -name" alone on its line.
	return bytes.Contains(out, []byte("\n  -"+flag+" ")) || bytes.Contains(out, []byte("\n  -"+flag+"\n"))
}

// Attach measures a system that is already running (hangman dev, a compose
// project, a cluster): guesses go to the gRPC addresses, browsers to the
// relay URLs, raw NATS subscribers to the NATS URLs. Its processes are not
// the bench's, so it can neither kill a node nor read what the processes
// use; it waits until every relay is ready and a node leads.
func Attach(ctx context.Context, grpcAddrs, natsURLs, relayURLs []string, timeout time.Duration) (*System, error) {
	if len(grpcAddrs) == 0 {
		return nil, errors.New("attach: no gRPC address of a node")
	}
	s := &System{GRPCAddrs: grpcAddrs, NATSURLs: natsURLs, RelayURLs: relayURLs, log: io.Discard}
	if err := s.dial(); err != nil {
		s.Close()
		return nil, err
	}
	deadline := time.Now().Add(timeout)
	for _, u := range relayURLs {
		if err := harness.WaitHTTP(ctx, strings.TrimSuffix(u, "/")+"/readyz", time.Until(deadline), nil); err != nil {
			s.Close()
			return nil, err
		}
	}
	if err := harness.Poll(ctx, time.Until(deadline), func() error {
		_, err := s.Leader(ctx)
		return err
	}); err != nil {
		s.Close()
		return nil, fmt.Errorf("attach: %w at %s", err, strings.Join(grpcAddrs, ", "))
	}
	return s, nil
}

// Started reports whether the bench started the system itself, and so can
// kill its nodes and read its processes' CPU and memory.
func (s *System) Started() bool { return len(s.nodes) > 0 }

// dial opens a connection to every node.
func (s *System) dial() error {
	for _, addr := range s.GRPCAddrs {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return fmt.Errorf("dial %s: %w", addr, err)
		}
		s.conns = append(s.conns, conn)
		s.Cluster = append(s.Cluster, hangmanv1.NewClusterServiceClient(conn))
	}
	return nil
}

func (s *System) start(m *member) error {
	p, err := proc.Start(proc.Spec{Name: m.name, Path: s.bin, Args: m.args, Env: m.env, Output: s.log})
	if err != nil {
		return err
	}
	m.p = p
	return nil
}

// Leader returns the index of the node that leads, asking every node.
func (s *System) Leader(ctx context.Context) (int, error) {
	return harness.Leader(ctx, s.Cluster)
}

// KillLeader sends SIGKILL to the leader's process and returns its index.
func (s *System) KillLeader(ctx context.Context) (int, error) {
	if !s.Started() {
		return -1, errors.New("the bench did not start this system's nodes: it cannot kill one")
	}
	i, err := s.Leader(ctx)
	if err != nil {
		return -1, err
	}
	if err := s.nodes[i].p.Kill(); err != nil {
		return -1, err
	}
	return i, nil
}

// RelayPIDs returns the relay processes' ids, for CPU and memory readings.
func (s *System) RelayPIDs() []int {
	var out []int
	for _, m := range s.relays {
		out = append(out, m.p.Pid())
	}
	return out
}

// Close stops every process the bench started (SIGTERM, then SIGKILL
// after 5 s), then runs the configured Cleanup.
func (s *System) Close() {
	for _, c := range s.conns {
		_ = c.Close()
	}
	var started []*proc.Proc
	for _, m := range append(append([]*member(nil), s.relays...), s.nodes...) {
		if m.p != nil {
			started = append(started, m.p)
		}
	}
	proc.StopAll(5*time.Second, started...)
	if s.cleanup != nil {
		s.cleanup()
	}
}

// procStat reads a process's CPU time (user+system) and resident memory.
func procStat(pid int) (cpu time.Duration, rss int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("read stat of %d: %w", pid, err)
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	if len(f) < 22 {
		return 0, 0, fmt.Errorf("short stat of %d", pid)
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	pages, _ := strconv.ParseInt(f[21], 10, 64)
	const hz = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / hz, pages * int64(os.Getpagesize()), nil
}

// cpuClock reads the CPU time every process of a run has used so far: the
// nodes by name, the relays together, and the load generator itself.
// Everything shares one machine, so where the CPU goes is as much a
// result as the throughput it buys.
type cpuClock struct {
	sys    *System
	leader int
}

// cpuReading is CPU time used so far, by process.
type cpuReading map[string]time.Duration

// labels are the processes of a reading in report order.
func (c cpuClock) labels() []string {
	var out []string
	for i, p := range c.sys.nodes {
		role := "follower"
		if i == c.leader {
			role = "leader"
		}
		out = append(out, p.name+" ("+role+")")
	}
	if len(c.sys.relays) > 0 {
		out = append(out, "relays")
	}
	return append(out, "load generator")
}

func (c cpuClock) read() cpuReading {
	r := cpuReading{}
	labels := c.labels()
	for i, p := range c.sys.nodes {
		if cpu, _, err := procStat(p.p.Pid()); err == nil {
			r[labels[i]] = cpu
		}
	}
	if len(c.sys.relays) > 0 {
		r["relays"] = relayCPU(c.sys)
	}
	if cpu, _, err := procStat(os.Getpid()); err == nil {
		r["load generator"] = cpu
	}
	return r
}

// shares turns two readings, elapsed apart, into each process's CPU per
// committed guess; a process missing from either reading (killed) is left
// out.
func (c cpuClock) shares(before, after cpuReading, elapsed time.Duration, committed int64) []CPUShare {
	if committed == 0 || elapsed <= 0 {
		return nil
	}
	var out []CPUShare
	for _, l := range c.labels() {
		b, ok1 := before[l]
		a, ok2 := after[l]
		if !ok1 || !ok2 {
			continue
		}
		used := a - b
		out = append(out, CPUShare{Process: l, MicrosPerGuess: float64(used.Microseconds()) / float64(committed), Cores: used.Seconds() / elapsed.Seconds()})
	}
	return out
}
