package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// system is the whole game on loopback: three game nodes (from `hangman dev
// --relays 0` when the binary supports it, three `hangman node` processes
// otherwise) and relays started one process each, so that a test can kill
// one for real.
type system struct {
	t       *testing.T
	bin     string
	dir     string
	nats    []string
	grpc    []string
	relays  []*relayProc
	procs   []*proc
	logsMu  sync.Mutex
	logTail map[string]*tail
}

type relayProc struct {
	name string
	url  string
	p    *proc
}

// proc is one child process; done closes when it has exited.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// tail keeps the last lines of a process's output for failure reports.
type tail struct {
	mu    sync.Mutex
	lines []string
}

func (l *tail) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, s)
	if len(l.lines) > 40 {
		l.lines = l.lines[len(l.lines)-40:]
	}
}

func (l *tail) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test directory")
		}
		dir = parent
	}
}

// buildBinary builds the hangman command once per test binary, or uses
// HANGMAN_E2E_BINARY when set (CI may build it once for every suite).
func buildBinary(t *testing.T) string {
	t.Helper()
	if b := os.Getenv("HANGMAN_E2E_BINARY"); b != "" {
		return b
	}
	out := filepath.Join(t.TempDir(), "hangman")
	cmd := exec.Command("go", "build", "-o", out, ".")
	cmd.Dir = moduleRoot(t)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	return out
}

func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var lns []net.Listener
	var ports []int
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		_ = ln.Close()
	}
	return ports
}

func startSystem(t *testing.T, relays int) *system {
	t.Helper()
	s := &system{t: t, bin: buildBinary(t), dir: t.TempDir(), logTail: map[string]*tail{}}
	t.Cleanup(s.stop)
	if s.devHasRelaysFlag() {
		s.startDev()
	} else {
		s.startNodes()
	}
	ports := freePorts(t, relays)
	// Relays trust only the origins they are configured with, the other
	// relays' among them: browsers may fail over to those.
	var origins []string
	for _, p := range ports {
		origins = append(origins, fmt.Sprintf("http://127.0.0.1:%d", p))
	}
	for i, p := range ports {
		s.startRelay(fmt.Sprintf("e2e-relay-%d", i+1), p, "", origins)
	}
	for _, r := range s.relays {
		s.waitReady(r.url + "/readyz")
	}
	return s
}

// devHasRelaysFlag reports whether `hangman dev` can leave the relays out.
func (s *system) devHasRelaysFlag() bool {
	out, _ := exec.Command(s.bin, "dev", "-h").CombinedOutput()
	return strings.Contains(string(out), "-relays")
}

// nodeLine is how `hangman dev` prints a node's addresses.
var nodeLine = regexp.MustCompile(`\bgrpc (\S+)\s+nats (\S+)`)

// startDev runs `hangman dev --relays 0` on a random --port-offset (so it
// runs beside a developer's own dev system and the repository's other
// tests) and reads the nodes' addresses from what it prints.
func (s *system) startDev() {
	s.t.Helper()
attempt:
	for try := 0; ; try++ {
		offset := 5000 + rand.IntN(10000)
		if v := os.Getenv("HANGMAN_E2E_PORT_OFFSET"); v != "" {
			offset, _ = strconv.Atoi(v)
		}
		lines := make(chan string, 64)
		p := s.spawn(fmt.Sprintf("dev+%d", offset), lines, "dev",
			"--data-dir", filepath.Join(s.dir, fmt.Sprintf("data-%d", try)),
			"--relays", "0",
			"--port-offset", strconv.Itoa(offset))
		var nats, grpc []string
		timeout := time.After(60 * time.Second)
	read:
		for {
			select {
			case l := <-lines:
				if m := nodeLine.FindStringSubmatch(l); m != nil {
					grpc, nats = append(grpc, m[1]), append(nats, m[2])
				} else if len(grpc) > 0 {
					break read // the node lines are printed together
				}
			case <-p.done:
				if try < 3 {
					s.t.Logf("hangman dev on port offset %d exited early (port taken?); trying another", offset)
					continue attempt
				}
				s.t.Fatal("hangman dev exited before printing its nodes")
			case <-timeout:
				s.t.Fatal("hangman dev printed no node addresses within 60s")
			}
		}
		s.nats, s.grpc = nats, grpc
		s.t.Logf("hangman dev --relays 0 --port-offset %d: nodes %v, NATS %v", offset, grpc, nats)
		return
	}
}

// startNodes runs three `hangman node` processes on free ports.
func (s *system) startNodes() {
	p := freePorts(s.t, 18)
	var serf []string
	for i := 0; i < 3; i++ {
		serf = append(serf, fmt.Sprintf("127.0.0.1:%d", p[6*i+2]))
	}
	for i := 0; i < 3; i++ {
		q := p[6*i:]
		grpc := fmt.Sprintf("127.0.0.1:%d", q[0])
		natsAddr := fmt.Sprintf("127.0.0.1:%d", q[3])
		s.grpc = append(s.grpc, grpc)
		s.nats = append(s.nats, "nats://"+natsAddr)
		s.spawn(fmt.Sprintf("node%d", i+1), nil, "node",
			"--id", fmt.Sprintf("n%d", i+1),
			"--data-dir", filepath.Join(s.dir, fmt.Sprintf("n%d", i+1)),
			"--grpc-addr", grpc,
			"--raft-addr", fmt.Sprintf("127.0.0.1:%d", q[1]),
			"--serf-addr", serf[i],
			"--nats-addr", natsAddr,
			"--nats-cluster-addr", fmt.Sprintf("127.0.0.1:%d", q[4]),
			"--http-addr", fmt.Sprintf("127.0.0.1:%d", q[5]),
			"--join", strings.Join(serf, ","),
			"--bootstrap-expect", "3",
		)
	}
}

// startRelay starts a relay on port that browsers reach at public (its
// own URL when public is ""), accepting pages from origins.
func (s *system) startRelay(name string, port int, public string, origins []string) {
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	if public == "" {
		public = url
	}
	p := s.spawn(name, nil, "relay",
		"--listen", fmt.Sprintf("127.0.0.1:%d", port),
		"--name", name,
		"--public-url", public,
		"--allowed-origins", strings.Join(origins, ","),
		"--nats", strings.Join(s.nats, ","),
		"--grpc", strings.Join(s.grpc, ","),
	)
	s.relays = append(s.relays, &relayProc{name: name, url: url, p: p})
}

// startEntry starts `hangman proxy` on port in front of the relay at
// relayAddr (host:port), as deploy/compose.yaml's entry, and returns its
// URL once a relay answers through it.
func (s *system) startEntry(port int, relayAddr string) string {
	s.t.Helper()
	s.spawn("entry", nil, "proxy",
		"--listen", fmt.Sprintf("127.0.0.1:%d", port),
		"--to", relayAddr,
		"--check-interval", "200ms",
	)
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	s.waitReady(url + "/readyz")
	return url
}

// spawn starts the binary with args; its output is kept for failure
// reports and, if lines is not nil, copied there as long as it has room.
func (s *system) spawn(name string, lines chan<- string, args ...string) *proc {
	s.t.Helper()
	cmd := exec.Command(s.bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	lt := &tail{}
	s.logsMu.Lock()
	s.logTail[name] = lt
	s.logsMu.Unlock()
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			lt.add(sc.Text())
			if lines != nil {
				select {
				case lines <- sc.Text():
				default:
				}
			}
		}
	}()
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); _ = pw.Close(); close(p.done) }()
	s.procs = append(s.procs, p)
	return p
}

// kill ends a relay with SIGKILL: no goodbye to its browsers.
func (s *system) kill(r *relayProc) {
	s.t.Helper()
	if err := r.p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		s.t.Fatalf("kill %s: %v", r.name, err)
	}
	<-r.p.done
}

// stop asks every process to stop (SIGTERM), and kills what is still
// running after a grace period.
func (s *system) stop() {
	for _, p := range s.procs {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	deadline := time.Now().Add(15 * time.Second)
	for _, p := range s.procs {
		select {
		case <-p.done:
		case <-time.After(time.Until(deadline)):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	if s.t.Failed() {
		s.logsMu.Lock()
		defer s.logsMu.Unlock()
		for name, lt := range s.logTail {
			s.t.Logf("--- last output of %s:\n%s", name, lt)
		}
	}
}

func (s *system) waitReady(url string) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-ctx.Done():
			s.t.Fatalf("%s not ready within 60s (last error %v)", url, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
