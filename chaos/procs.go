package chaos

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
)

// proc is one child process of the harness (a node or a relay) that can be
// killed, paused and started again with the same arguments.
type proc struct {
	name string
	argv []string
	log  string // file receiving stdout and stderr, appended across restarts

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	paused bool
}

func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return fmt.Errorf("%s already running", p.name)
	}
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open log of %s: %w", p.name, err)
	}
	fmt.Fprintf(f, "=== chaos: start %s at %s: %s\n", p.name, time.Now().UTC().Format(time.RFC3339Nano), strings.Join(p.argv, " "))
	cmd := exec.Command(p.argv[0], p.argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	// Own process group: a ^C on the test does not reach the children
	// before the harness has recorded what it needs; Close stops them. If
	// the test process dies (a go test timeout), the kernel kills them.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		_ = f.Close()
		close(done)
	}()
	p.cmd, p.done, p.paused = cmd, done, false
	return nil
}

// signal sends sig to the running process (and not to a later incarnation).
func (p *proc) signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return fmt.Errorf("%s is not running", p.name)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal %v to %s: %w", sig, p.name, err)
	}
	switch sig {
	case syscall.SIGSTOP:
		p.paused = true
	case syscall.SIGCONT:
		p.paused = false
	}
	return nil
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s (pid %d) did not die within 10s of SIGKILL", p.name, cmd.Process.Pid)
	}
	p.mu.Lock()
	p.cmd, p.paused = nil, false
	p.mu.Unlock()
	return nil
}

// stop asks the process to shut down cleanly (SIGTERM), then kills it.
func (p *proc) stop(grace time.Duration) {
	p.mu.Lock()
	cmd, done, paused := p.cmd, p.done, p.paused
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	if paused {
		_ = cmd.Process.Signal(syscall.SIGCONT)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		p.mu.Lock()
		p.cmd = nil
		p.mu.Unlock()
	case <-time.After(grace):
		_ = p.kill()
	}
}

// running reports whether the process was started and has not exited.
func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// crashed reports whether the process exited without being told to, and
// its state then.
func (p *proc) crashed() (bool, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false, ""
	}
	select {
	case <-p.done:
		return true, p.cmd.ProcessState.String()
	default:
		return false, ""
	}
}

// crashReport returns what the last incarnation of the process left in
// its log: its panic and first frames, or else its last n lines.
func (p *proc) crashReport(n int) string {
	data, err := os.ReadFile(p.log)
	if err != nil {
		return err.Error()
	}
	text := string(data)
	if i := strings.LastIndex(text, "=== chaos: start"); i >= 0 {
		text = text[i:]
	}
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "panic: ") || strings.HasPrefix(l, "fatal error: ") {
			return strings.Join(lines[i:min(len(lines), i+6)], "\n")
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Node is one game node process in its own namespace.
type Node struct {
	ID   string
	IP   string
	Dir  string
	Proc *proc
	conn *grpc.ClientConn
}

// GRPCAddr is where the harness reaches the node's gRPC services.
func (n *Node) GRPCAddr() string { return net.JoinHostPort(n.IP, strconv.Itoa(portGRPC)) }

// NATSURL is the node's embedded NATS client URL.
func (n *Node) NATSURL() string {
	return "nats://" + net.JoinHostPort(n.IP, strconv.Itoa(portNATS))
}

func (n *Node) httpURL() string {
	return "http://" + net.JoinHostPort(n.IP, strconv.Itoa(portHTTP))
}

// Game returns a GameService client for this node.
func (n *Node) Game() hangmanv1.GameServiceClient { return hangmanv1.NewGameServiceClient(n.conn) }

// Cluster returns a ClusterService client for this node.
func (n *Node) Cluster() hangmanv1.ClusterServiceClient {
	return hangmanv1.NewClusterServiceClient(n.conn)
}

// Relay is one relay process on loopback in the harness's namespace.
type Relay struct {
	Name string
	Addr string
	Proc *proc
}

// URL is the relay's public URL.
func (r *Relay) URL() string { return "http://" + r.Addr }

// Lab is a running cluster: nodes in namespaces, relays on loopback.
type Lab struct {
	Nodes  []*Node
	Relays []*Relay
	Dir    string
	net    *network
	log    *slog.Logger
}

// LabConfig sizes a Lab.
type LabConfig struct {
	Binary string
	Dir    string
	Nodes  int
	Relays int
	Log    *slog.Logger
}

// StartLab creates the network, starts every node and relay and waits until
// all of them are ready.
func StartLab(ctx context.Context, cfg LabConfig) (*Lab, error) {
	nw, err := newNetwork(cfg.Nodes)
	if err != nil {
		return nil, fmt.Errorf("network: %w", err)
	}
	lab := &Lab{Dir: cfg.Dir, net: nw, log: cfg.Log}
	var joins []string
	for _, nd := range nw.nodes {
		joins = append(joins, net.JoinHostPort(nd.ip, strconv.Itoa(portSerf)))
	}
	for i, nd := range nw.nodes {
		id := fmt.Sprintf("n%d", i+1)
		dir := filepath.Join(cfg.Dir, id)
		addr := func(port int) string { return net.JoinHostPort(nd.ip, strconv.Itoa(port)) }
		var others []string
		for j, a := range joins {
			if j != i {
				others = append(others, a)
			}
		}
		argv := []string{"ip", "netns", "exec", nd.ns, cfg.Binary, "node",
			"--id", id, "--data-dir", dir,
			"--grpc-addr", addr(portGRPC), "--raft-addr", addr(portRaft), "--serf-addr", addr(portSerf),
			"--nats-addr", addr(portNATS), "--nats-cluster-addr", addr(portNATSCluster), "--http-addr", addr(portHTTP),
			"--join", strings.Join(others, ","), "--bootstrap-expect", strconv.Itoa(cfg.Nodes),
			"--log-format", "json"}
		conn, err := grpc.NewClient(addr(portGRPC), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			lab.Close()
			return nil, fmt.Errorf("grpc client for %s: %w", id, err)
		}
		n := &Node{ID: id, IP: nd.ip, Dir: dir, conn: conn,
			Proc: &proc{name: id, argv: argv, log: filepath.Join(cfg.Dir, id+".log")}}
		lab.Nodes = append(lab.Nodes, n)
		if err := n.Proc.start(); err != nil {
			lab.Close()
			return nil, err
		}
	}
	if err := lab.WaitReady(ctx, 60*time.Second); err != nil {
		lab.Close()
		return nil, err
	}
	var natsURLs, grpcAddrs []string
	for _, n := range lab.Nodes {
		natsURLs = append(natsURLs, n.NATSURL())
		grpcAddrs = append(grpcAddrs, n.GRPCAddr())
	}
	for i := range cfg.Relays {
		addr, err := freeLoopbackAddr()
		if err != nil {
			lab.Close()
			return nil, err
		}
		name := fmt.Sprintf("r%d", i+1)
		r := &Relay{Name: name, Addr: addr}
		r.Proc = &proc{name: name, log: filepath.Join(cfg.Dir, name+".log"), argv: []string{cfg.Binary, "relay",
			"--listen", addr, "--nats", strings.Join(natsURLs, ","), "--grpc", strings.Join(grpcAddrs, ","),
			"--name", name, "--public-url", r.URL(), "--log-format", "json"}}
		lab.Relays = append(lab.Relays, r)
		if err := r.Proc.start(); err != nil {
			lab.Close()
			return nil, err
		}
	}
	for _, r := range lab.Relays {
		if err := waitHTTP(ctx, r.URL()+"/readyz", 30*time.Second); err != nil {
			lab.Close()
			return nil, fmt.Errorf("relay %s not ready: %w", r.Name, err)
		}
	}
	return lab, nil
}

// freeLoopbackAddr returns a loopback address with a port free right now.
func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr, nil
}

// waitHTTP polls url until it answers 200 or timeout passes.
func waitHTTP(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s: %s", url, resp.Status)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// WaitReady waits until every running node is ready, they agree on one
// leader, and every node has applied what the leader had committed.
func (l *Lab) WaitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		if err := l.crashed(); err != nil {
			return err
		}
		last = l.converged(ctx)
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster not converged within %v: %w", timeout, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// ErrCrashed marks a process that exited on its own: waiting longer will
// not bring it back.
var ErrCrashed = errors.New("process exited on its own")

// crashed reports the first node or relay that exited on its own.
func (l *Lab) crashed() error {
	procs := make([]*proc, 0, len(l.Nodes)+len(l.Relays))
	for _, n := range l.Nodes {
		procs = append(procs, n.Proc)
	}
	for _, r := range l.Relays {
		procs = append(procs, r.Proc)
	}
	for _, p := range procs {
		if dead, state := p.crashed(); dead {
			return fmt.Errorf("%s: %w (%s):\n%s", p.name, ErrCrashed, state, p.crashReport(12))
		}
	}
	return nil
}

func (l *Lab) converged(ctx context.Context) error {
	status := func(n *Node) (*hangmanv1.StatusResponse, error) {
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		st, err := n.Cluster().Status(sctx, &hangmanv1.StatusRequest{})
		if err != nil {
			return nil, fmt.Errorf("%s status: %w", n.ID, err)
		}
		return st, nil
	}
	var leader string
	var commit uint64
	for _, n := range l.Nodes {
		if !n.Proc.running() {
			continue
		}
		if err := waitHTTP(ctx, n.httpURL()+"/readyz", time.Second); err != nil {
			return fmt.Errorf("%s: %w", n.ID, err)
		}
		st, err := status(n)
		if err != nil {
			return err
		}
		if st.GetLeaderId() == "" || (leader != "" && st.GetLeaderId() != leader) {
			return fmt.Errorf("%s sees leader %q, others %q", n.ID, st.GetLeaderId(), leader)
		}
		leader = st.GetLeaderId()
		if st.GetState() == "Leader" {
			commit = st.GetCommitIndex()
		}
	}
	if commit == 0 {
		return errors.New("no running node reports itself leader")
	}
	// Asked after the leader answered: under load the leader's commit
	// index moves on, but every node must have caught up with the value
	// read before.
	for _, n := range l.Nodes {
		if !n.Proc.running() {
			continue
		}
		st, err := status(n)
		if err != nil {
			return err
		}
		if st.GetAppliedIndex() < commit {
			return fmt.Errorf("%s applied %d < leader commit %d", n.ID, st.GetAppliedIndex(), commit)
		}
	}
	return nil
}

// Leader returns the index of the node that leads: of the running nodes
// that say they lead, the one with the highest term (a deposed leader may
// not know it yet).
func (l *Lab) Leader(ctx context.Context) (int, error) {
	best, term := -1, uint64(0)
	for i, n := range l.Nodes {
		if !n.Proc.running() {
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		st, err := n.Cluster().Status(sctx, &hangmanv1.StatusRequest{})
		cancel()
		if err == nil && st.GetState() == "Leader" && st.GetTerm() >= term {
			best, term = i, st.GetTerm()
		}
	}
	if best < 0 {
		return -1, errors.New("no node reports itself leader")
	}
	return best, nil
}

// WaitLeader waits up to timeout for a node that says it leads, as after a
// healed fault the others may still be electing one.
func (l *Lab) WaitLeader(ctx context.Context, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	for {
		i, err := l.Leader(ctx)
		if err == nil || time.Now().After(deadline) {
			if err != nil {
				err = fmt.Errorf("after %v: %w", timeout, err)
			}
			return i, err
		}
		select {
		case <-ctx.Done():
			return -1, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Close stops every process and removes the network.
func (l *Lab) Close() {
	var wg sync.WaitGroup
	for _, r := range l.Relays {
		wg.Go(func() { r.Proc.stop(5 * time.Second) })
	}
	for _, n := range l.Nodes {
		wg.Go(func() { n.Proc.stop(5 * time.Second) })
	}
	wg.Wait()
	for _, n := range l.Nodes {
		if n.conn != nil {
			_ = n.conn.Close()
		}
	}
	if l.net != nil {
		l.net.close()
	}
}
