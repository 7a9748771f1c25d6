package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/hangman/hangman/internal/harness"
	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
)

// proc is one child process of the harness (a node or a relay) that can be
// killed, paused and started again with the same arguments.
//
// It is not the shared launcher (internal/proc) on purpose: a proc is a
// sequence of incarnations, restarted with changed arguments (a node moved
// to a new address), wrapped in `ip netns exec`, paused with SIGSTOP, and
// its output goes to one log file across restarts whose current
// incarnation's part is found by a start marker, for crash reports. The
// launcher runs one command once, which is what the bench and e2e need;
// giving it incarnations would hand all of them this machinery.
type proc struct {
	name string
	argv []string
	log  string // file receiving stdout and stderr, appended across restarts

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	paused bool
}

func (p *proc) start() error { return p.startWith() }

// startWith starts the process with extra arguments after its own, for
// this incarnation only.
func (p *proc) startWith(extra ...string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return fmt.Errorf("%s already running", p.name)
	}
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open log of %s: %w", p.name, err)
	}
	argv := append(append([]string(nil), p.argv...), extra...)
	fmt.Fprintf(f, "%s %s at %s: %s\n", startMarker, p.name, time.Now().UTC().Format(time.RFC3339Nano), strings.Join(argv, " "))
	cmd := exec.Command(argv[0], argv[1:]...)
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

// startMarker begins the line a start writes to the process's log; what
// follows the last one is the current incarnation's output.
const startMarker = "=== chaos: start"

// setArgv changes the arguments of the next start.
func (p *proc) setArgv(argv []string) {
	p.mu.Lock()
	p.argv = argv
	p.mu.Unlock()
}

// pid is the running incarnation's process id, 0 when none runs.
func (p *proc) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// waitExit waits up to timeout for the running incarnation to exit on its
// own, and then forgets it (so that start may run again). It returns the
// exit state, or nil if the process still runs.
func (p *proc) waitExit(timeout time.Duration) *os.ProcessState {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return nil
	}
	select {
	case <-done:
	case <-time.After(timeout):
		return nil
	}
	p.mu.Lock()
	if p.cmd == cmd {
		p.cmd, p.paused = nil, false
	}
	p.mu.Unlock()
	return cmd.ProcessState
}

// currentLog returns what the current (or last) incarnation wrote.
func (p *proc) currentLog() string {
	data, err := os.ReadFile(p.log)
	if err != nil {
		return err.Error()
	}
	text := string(data)
	if i := strings.LastIndex(text, startMarker); i >= 0 {
		text = text[i:]
	}
	return text
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
	lines := strings.Split(strings.TrimRight(p.currentLog(), "\n"), "\n")
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
	Dir  string
	Proc *proc
	// index is the node's place in Lab.Nodes and in the network.
	index int
	ip    atomic.Pointer[string]
	conn  atomic.Pointer[grpc.ClientConn]
}

// IP is the node's current address (readdress-all changes it).
func (n *Node) IP() string { return *n.ip.Load() }

// setIP points the node, and the harness's client of it, at ip. Calls in
// flight on the old client fail (Canceled), which the workload retries.
func (n *Node) setIP(ip string) error {
	conn, err := grpc.NewClient(net.JoinHostPort(ip, strconv.Itoa(portGRPC)), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("grpc client for %s: %w", n.ID, err)
	}
	n.ip.Store(&ip)
	if old := n.conn.Swap(conn); old != nil {
		_ = old.Close()
	}
	return nil
}

// GRPCAddr is where the harness reaches the node's gRPC services.
func (n *Node) GRPCAddr() string { return net.JoinHostPort(n.IP(), strconv.Itoa(portGRPC)) }

// RaftAddr is the node's raft address, as its raft configuration names it.
func (n *Node) RaftAddr() string { return net.JoinHostPort(n.IP(), strconv.Itoa(portRaft)) }

// NATSURL is the node's embedded NATS client URL.
func (n *Node) NATSURL() string {
	return "nats://" + net.JoinHostPort(n.IP(), strconv.Itoa(portNATS))
}

func (n *Node) httpURL() string {
	return "http://" + net.JoinHostPort(n.IP(), strconv.Itoa(portHTTP))
}

// Game returns a GameService client for this node.
func (n *Node) Game() hangmanv1.GameServiceClient {
	return hangmanv1.NewGameServiceClient(n.conn.Load())
}

// Cluster returns a ClusterService client for this node.
func (n *Node) Cluster() hangmanv1.ClusterServiceClient {
	return hangmanv1.NewClusterServiceClient(n.conn.Load())
}

// status asks the node for its raft status, within a second.
func (n *Node) status(ctx context.Context) (*hangmanv1.StatusResponse, error) {
	sctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	st, err := n.Cluster().Status(sctx, &hangmanv1.StatusRequest{})
	if err != nil {
		return nil, fmt.Errorf("%s status: %w", n.ID, err)
	}
	return st, nil
}

// readyz asks the node's /readyz once: nil when it answers 200, else why
// not (the body carries the node's reason).
func (n *Node) readyz(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.httpURL()+"/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
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
	binary string
	// dataRoot holds every node's data directory; with tmpfs set, each of
	// those is a tmpfs of that size (for the disk-full fault).
	dataRoot string
	tmpfs    string
	net      *network
	log      *slog.Logger
}

// LabConfig sizes a Lab.
type LabConfig struct {
	Binary string
	Dir    string
	Nodes  int
	Relays int
	// Tmpfs, when set, is the size (as mount's size= option) of a tmpfs
	// mounted as each node's data directory, so that a disk can fill.
	Tmpfs string
	Log   *slog.Logger
}

// StartLab creates the network, starts every node and relay and waits until
// all of them are ready.
func StartLab(ctx context.Context, cfg LabConfig) (*Lab, error) {
	nw, err := newNetwork(cfg.Nodes)
	if err != nil {
		return nil, fmt.Errorf("network: %w", err)
	}
	// The pid in the name lets sweepStale tell a dead run's mounts.
	root := filepath.Join(cfg.Dir, nw.tag+"data")
	lab := &Lab{Dir: cfg.Dir, binary: cfg.Binary, dataRoot: root, tmpfs: cfg.Tmpfs, net: nw, log: cfg.Log}
	for i := range nw.nodes {
		id := fmt.Sprintf("n%d", i+1)
		n := &Node{ID: id, Dir: filepath.Join(root, id), index: i,
			Proc: &proc{name: id, log: filepath.Join(cfg.Dir, id+".log")}}
		lab.Nodes = append(lab.Nodes, n)
		if err := n.setIP(nw.nodes[i].ip); err != nil {
			lab.Close()
			return nil, err
		}
		if err := lab.mountData(n); err != nil {
			lab.Close()
			return nil, err
		}
	}
	for _, n := range lab.Nodes {
		n.Proc.setArgv(lab.nodeArgv(n))
		if err := n.Proc.start(); err != nil {
			lab.Close()
			return nil, err
		}
	}
	if err := lab.WaitReady(ctx, 60*time.Second); err != nil {
		lab.Close()
		return nil, err
	}
	for i := range cfg.Relays {
		addr, err := harness.FreeAddr()
		if err != nil {
			lab.Close()
			return nil, err
		}
		name := fmt.Sprintf("r%d", i+1)
		r := &Relay{Name: name, Addr: addr, Proc: &proc{name: name, log: filepath.Join(cfg.Dir, name+".log")}}
		r.Proc.setArgv(lab.relayArgv(r))
		lab.Relays = append(lab.Relays, r)
		if err := r.Proc.start(); err != nil {
			lab.Close()
			return nil, err
		}
	}
	for _, r := range lab.Relays {
		if err := harness.WaitHTTP(ctx, r.URL()+"/readyz", 30*time.Second, nil); err != nil {
			lab.Close()
			return nil, fmt.Errorf("relay %s not ready: %w", r.Name, err)
		}
	}
	return lab, nil
}

// nodeArgv is how node n is started: in its namespace, on its current
// address, joining the others at theirs.
func (l *Lab) nodeArgv(n *Node) []string {
	addr := func(port int) string { return net.JoinHostPort(n.IP(), strconv.Itoa(port)) }
	var others []string
	for _, o := range l.Nodes {
		if o != n {
			others = append(others, net.JoinHostPort(o.IP(), strconv.Itoa(portSerf)))
		}
	}
	return []string{"ip", "netns", "exec", l.net.nodes[n.index].ns, l.binary, "node",
		"--id", n.ID, "--data-dir", n.Dir,
		"--grpc-addr", addr(portGRPC), "--raft-addr", addr(portRaft), "--serf-addr", addr(portSerf),
		"--nats-addr", addr(portNATS), "--nats-cluster-addr", addr(portNATSCluster), "--http-addr", addr(portHTTP),
		"--join", strings.Join(others, ","), "--bootstrap-expect", strconv.Itoa(len(l.Nodes)),
		"--audit-every", strconv.Itoa(auditEvery), "--audit-dir", auditDir(l.Dir, n.ID),
		"--log-format", "json"}
}

// relayArgv is how relay r is started: pointed at the nodes' current
// addresses, and with no cap on the websockets of one address. The
// observers stand for browsers, one websocket per relay and room, but all
// connect from loopback: a soak makes more rooms than the cap a browser's
// address gets, and the relay would refuse the newest rooms' observers for
// good (TestObserversOutnumberAddressCap).
func (l *Lab) relayArgv(r *Relay) []string {
	var natsURLs, grpcAddrs []string
	for _, n := range l.Nodes {
		natsURLs = append(natsURLs, n.NATSURL())
		grpcAddrs = append(grpcAddrs, n.GRPCAddr())
	}
	return []string{l.binary, "relay",
		"--listen", r.Addr, "--nats", strings.Join(natsURLs, ","), "--grpc", strings.Join(grpcAddrs, ","),
		"--max-conns-per-addr", "0",
		"--name", r.Name, "--public-url", r.URL(), "--log-format", "json"}
}

// mountData creates the node's data directory, on a tmpfs of its own when
// the lab has a size for one.
func (l *Lab) mountData(n *Node) error {
	if err := os.MkdirAll(n.Dir, 0o750); err != nil {
		return fmt.Errorf("data dir of %s: %w", n.ID, err)
	}
	if l.tmpfs == "" {
		return nil
	}
	if err := syscall.Mount("tmpfs", n.Dir, "tmpfs", 0, "size="+l.tmpfs+",mode=0750"); err != nil {
		return fmt.Errorf("mount a %s tmpfs on %s: %w", l.tmpfs, n.Dir, err)
	}
	return nil
}

// wipe deletes everything in the node's data directory (the directory
// itself stays: it may be a mount point), as a lost disk would.
func (n *Node) wipe() error {
	entries, err := os.ReadDir(n.Dir)
	if err != nil {
		return fmt.Errorf("wipe %s: %w", n.ID, err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(n.Dir, e.Name())); err != nil {
			return fmt.Errorf("wipe %s: %w", n.ID, err)
		}
	}
	return nil
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

// notReady polls every running node's /readyz until all of them answer
// 200 or bound passes, and returns those that did not, with their reasons.
func (l *Lab) notReady(ctx context.Context, bound time.Duration) []string {
	deadline := time.Now().Add(bound)
	for {
		var out []string
		for _, n := range l.Nodes {
			if !n.Proc.running() {
				continue
			}
			if err := n.readyz(ctx); err != nil {
				out = append(out, fmt.Sprintf("%s (%v)", n.ID, err))
			}
		}
		if len(out) == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return out
		}
		select {
		case <-ctx.Done():
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
	var leader string
	var commit uint64
	for _, n := range l.Nodes {
		if !n.Proc.running() {
			continue
		}
		if err := n.readyz(ctx); err != nil {
			return fmt.Errorf("%s: %w", n.ID, err)
		}
		st, err := n.status(ctx)
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
		st, err := n.status(ctx)
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
	clients := make([]hangmanv1.ClusterServiceClient, len(l.Nodes))
	for i, n := range l.Nodes {
		if n.Proc.running() {
			clients[i] = n.Cluster()
		}
	}
	return harness.Leader(ctx, clients)
}

// WaitLeader waits up to timeout for a node that says it leads, as after a
// healed fault the others may still be electing one.
func (l *Lab) WaitLeader(ctx context.Context, timeout time.Duration) (int, error) {
	i := -1
	err := harness.Poll(ctx, timeout, func() error {
		var err error
		i, err = l.Leader(ctx)
		return err
	})
	return i, err
}

// stopAll stops every relay and node at once, each given 5 s to exit
// before it is killed.
func (l *Lab) stopAll() {
	var wg sync.WaitGroup
	for _, r := range l.Relays {
		wg.Go(func() { r.Proc.stop(5 * time.Second) })
	}
	for _, n := range l.Nodes {
		wg.Go(func() { n.Proc.stop(5 * time.Second) })
	}
	wg.Wait()
}

// Close stops every process, unmounts the data tmpfs and removes the
// network.
func (l *Lab) Close() {
	l.stopAll()
	for _, n := range l.Nodes {
		if c := n.conn.Load(); c != nil {
			_ = c.Close()
		}
		if l.tmpfs != "" {
			_ = syscall.Unmount(n.Dir, syscall.MNT_DETACH)
		}
	}
	if l.net != nil {
		l.net.close()
	}
}
