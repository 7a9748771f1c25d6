package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hangman/hangman/internal/harness"
	"github.com/hangman/hangman/internal/proc"
)

// system is the whole game on loopback: three game nodes (from `hangman dev
// --relays 0` when the binary supports it, three `hangman node` processes
// otherwise) and relays started one process each, so that a test can kill
// one for real.
type system struct {
	t      *testing.T
	bin    string
	dir    string
	nats   []string
	grpc   []string
	relays []*relayProc
	procs  []*proc.Proc
}

type relayProc struct {
	name string
	url  string
	p    *proc.Proc
}

// newSystem is a system with nothing started yet; every process it starts
// is stopped when the test ends.
func newSystem(t *testing.T) *system {
	s := &system{t: t, bin: harness.Binary(t), dir: t.TempDir()}
	t.Cleanup(s.stop)
	return s
}

func startSystem(t *testing.T, relays int) *system {
	t.Helper()
	s := newSystem(t)
	if s.devHasRelaysFlag() {
		s.startDev()
	} else {
		s.startNodes()
	}
	ports := harness.FreePorts(t, relays)
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
			case <-p.Done():
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
	p := harness.FreePorts(s.t, 18)
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
func (s *system) spawn(name string, lines chan<- string, args ...string) *proc.Proc {
	s.t.Helper()
	p, err := proc.Start(proc.Spec{Name: name, Path: s.bin, Args: args, Lines: lines, OwnGroup: true})
	if err != nil {
		s.t.Fatal(err)
	}
	s.procs = append(s.procs, p)
	return p
}

// kill ends a relay with SIGKILL: no goodbye to its browsers.
func (s *system) kill(r *relayProc) {
	s.t.Helper()
	if err := r.p.Kill(); err != nil {
		s.t.Fatal(err)
	}
}

// stop asks every process to stop (SIGTERM), and kills what is still
// running after a grace period.
func (s *system) stop() {
	proc.StopAll(15*time.Second, s.procs...)
	if s.t.Failed() {
		for _, p := range s.procs {
			s.t.Logf("--- last output of %s:\n%s", p.Name(), p.Tail())
		}
	}
}

// waitReady waits until url answers 200 OK.
func (s *system) waitReady(url string) {
	s.t.Helper()
	if err := harness.WaitHTTP(context.Background(), url, 60*time.Second, nil); err != nil {
		s.t.Fatal(err)
	}
}
