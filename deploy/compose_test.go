package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gorilla/websocket"
	"github.com/nats-io/nats.go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
	"github.com/hangman/hangman/tlsutil"

	"github.com/hangman/hangman/internal/browsertest"
	"github.com/hangman/hangman/internal/harness"
)

// TestCompose runs deploy/compose.yaml with compose.secure.yaml on the local
// Docker engine and plays through it, as an operator following
// deploy/README.md would. One project serves every phase, in order:
//
//   - up: three nodes, two relays and the entry come up and report
//     healthy (the images' own `hangman health` healthchecks), with TLS,
//     the gossip key and NATS users on;
//   - play: a guess through a relay's websocket is committed and seen on
//     NATS through the nodes' published ports, as the nats CLI sees it;
//   - scale: relays 2 -> 4, every relay serves the room;
//   - browser failover: a real Chromium on the public entry plays, its
//     relay is killed, and it reconnects through the entry to another
//     relay with its room and seat intact;
//   - leader kill: `docker kill` of the raft leader; the survivors answer
//     again (the gap is measured), the killed node comes back and catches
//     up;
//   - restart with data: `down` without -v, then `up` with every node on a
//     new address (the test pins the nodes' addresses in a network of its
//     own, and changes them): the cluster elects again and every room is
//     intact;
//   - down -v leaves no container, network or volume.
//
// It logs the timings an operator cares about: build, up to ready, the
// leader-kill gap and a full restart to a leader. The host ports follow
// HANGMAN_PORT_PREFIX, set to a prefix whose ports are free, so the test
// runs beside `hangman dev` and other projects. It skips with -short, and
// where docker, docker-compose or a Docker engine is missing.
func TestCompose(t *testing.T) {
	if testing.Short() {
		t.Skip("TestCompose builds an image and starts containers: skipped with -short")
	}
	dockerBin, composeBin := requireDocker(t)

	budget := 15 * time.Minute
	if dl, ok := t.Deadline(); ok {
		budget = time.Until(dl) - 45*time.Second
	}
	if budget < 4*time.Minute {
		t.Skipf("TestCompose needs about 3 minutes, 4 to be safe; only %v left (run go test with -timeout 30m)", budget.Round(time.Second))
	}
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()

	var timings []string
	timed := func(what string, d time.Duration) {
		timings = append(timings, fmt.Sprintf("%s %.1fs", what, d.Seconds()))
		step(t, "%s: %.1fs", what, d.Seconds())
	}
	defer func() { t.Logf("timings: %s", strings.Join(timings, "; ")) }()

	start := time.Now()
	ctxDir, bin := buildContext(ctx, t)
	timed("go build", time.Since(start))
	project := fmt.Sprintf("hangmantest%d", time.Now().UnixNano()%1_000_000_000)
	image := "hangman:" + project
	step(t, "docker build -t %s", image)
	start = time.Now()
	if out, err := run(ctx, "", nil, dockerBin, "build", "-q", "-f", "Dockerfile", "-t", image, ctxDir); err != nil {
		t.Fatalf("docker build: %v\n%s", err, out)
	}
	timed("docker build", time.Since(start))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if out, err := run(ctx, "", nil, dockerBin, "rmi", "-f", image); err != nil {
			t.Logf("docker rmi %s: %v\n%s", image, err, out)
		}
	})

	p := &composeProject{t: t, docker: dockerBin, compose: composeBin, name: project, image: image,
		certs: makeCerts(ctx, t, bin), prefix: freePortPrefix(t), projectState: &projectState{}}
	p.netFile, p.netPrefix = writeNetFile(t)
	t.Cleanup(p.teardown)

	nodes := []string{"node1", "node2", "node3"}
	step(t, "docker-compose -f compose.yaml -f compose.secure.yaml -p %s up -d (3 nodes, 2 relays, the entry; HANGMAN_PORT_PREFIX=%s)", project, p.prefix)
	start = time.Now()
	p.mustCompose(ctx, "up", "-d", "--scale", "relay=2")
	leader := p.waitLeader(ctx, nodes, "", 2*time.Minute)
	p.waitRelays(ctx, 2)
	p.waitEntry(ctx)
	timed("up to ready (leader, relays and entry answering)", time.Since(start))
	p.waitHealthy(ctx)
	timed("up to healthy in docker ps", time.Since(start))
	step(t, "leader elected: %s", leader)

	const room = "deploytest"
	var (
		lastSeq uint64
		letters []string
	)
	played := func(seq uint64, l ...string) {
		lastSeq = max(lastSeq, seq)
		letters = append(letters, l...)
	}

	if !t.Run("play, and scale the relays 2 to 4", func(t *testing.T) {
		p := p.with(t)
		// The nats CLI's view: every node's NATS is published on the
		// host, with TLS and the read-only watcher user.
		sub := p.natsSub(ctx, nodes, "hangman.room."+room+".state")
		p.createRoom(ctx, nodes, room)
		p.waitRelays(ctx, 2)
		alice := p.dialRelay(ctx, 1)
		alice.join(ctx, room, "alice", "Alice")
		s1 := alice.guess(ctx, room, "alice", "q")
		if st := alice.awaitState(ctx, room, s1); !st.has("q") {
			t.Fatalf("relay 1: state after guessing q does not show it: %+v", st)
		}
		p.checkCommitted(ctx, nodes, room, s1, "q")
		played(s1, "q")
		p.awaitNATSState(ctx, sub, s1, "q")
		step(t, "guess q through relay 1 committed at seq %d and seen on NATS", s1)

		before := p.containers(ctx, "")
		p.mustCompose(ctx, "up", "-d", "--no-recreate", "--no-deps", "--scale", "relay=4", "relay")
		if got := len(p.containers(ctx, "relay")); got != 4 {
			t.Fatalf("after --scale relay=4: %d relay containers", got)
		}
		after := p.containers(ctx, "")
		for _, id := range before {
			if !slices.Contains(after, id) {
				t.Fatalf("scaling the relays replaced container %s (before %v, after %v)", id, before, after)
			}
		}
		p.waitRelays(ctx, 4)
		watchers := []*wsClient{alice}
		for i := 2; i <= 4; i++ {
			w := p.dialRelay(ctx, i)
			w.join(ctx, room, fmt.Sprintf("watcher%d", i), fmt.Sprintf("Watcher %d", i))
			if st := w.awaitState(ctx, room, lastSeq); !st.has("q") {
				t.Fatalf("relay %d serves room %s without the committed guess q: %+v", i, room, st)
			}
			watchers = append(watchers, w)
		}
		s2 := watchers[3].guess(ctx, room, "watcher4", "z")
		for i, w := range watchers {
			if st := w.awaitState(ctx, room, s2); !st.has("z") {
				t.Fatalf("relay %d: state at seq %d lacks the guess z made through relay 4: %+v", i+1, st.Seq, st)
			}
		}
		played(s2, "z")
		step(t, "4 relays serve room %s; guess z through relay 4 reached all (seq %d)", room, s2)
		for _, w := range watchers {
			w.close()
		}
	}) {
		return
	}

	t.Run("browser failover through the entry", func(t *testing.T) {
		p := p.with(t)
		if browsertest.ChromiumPath() == "" {
			t.Skip("Chromium not found (install Debian's chromium, or set HANGMAN_CHROMIUM)")
		}
		entry := p.entryURL()
		b := newBrowser(t, "bob")
		b.Do("open the room's invite link through the entry", chromedp.Navigate(entry+"/#/room/"+room))
		b.WaitJS("connected", connectedJS)
		b.WaitJS("watching the room", `!document.querySelector("#join-form").hidden`)
		b.Do("take a seat", chromedp.SendKeys(chromedp.CSS("#join-name"), "Bob"), chromedp.Click(chromedp.CSS("#join-btn")))
		b.WaitJS("in the game", inGameJS)
		// The relays advertise the entry, and only it: the page's list of
		// relays to reconnect to is the public URL.
		if got, want := b.Text("#relays"), strings.TrimPrefix(entry, "http://"); got != want {
			t.Fatalf("the page's relays %q, want only the entry %s", got, want)
		}
		before := b.relayName()
		b.guess("e")
		seq := p.checkPlayer(ctx, nodes, room, "Bob", "e")

		victim := p.relayContainer(ctx, before)
		step(t, "the browser is on relay %s; docker kill %s", before, victim[:12])
		killed := time.Now()
		if out, err := run(ctx, "", nil, p.docker, "kill", victim); err != nil {
			t.Fatalf("docker kill: %v\n%s", err, out)
		}
		b.WaitJS("reconnected to another relay", fmt.Sprintf(`%s && !document.querySelector("#badge-text").textContent.includes(%s)`, connectedJS, js(before)))
		timed("browser back on another relay after its relay was killed", time.Since(killed))
		b.WaitJS("back in the game", inGameJS)
		b.WaitJS("the earlier guess still shown", `document.querySelector('#keyboard [data-letter="e"]').disabled`)
		b.guess("t")
		seq = max(seq, p.checkPlayer(ctx, nodes, room, "Bob", "e", "t"))
		played(seq, "e", "t")
		step(t, "after the failover bob (same seat) is on %s and his guess t committed", b.relayName())
	})

	t.Run("leader kill", func(t *testing.T) {
		p := p.with(t)
		// A fresh browser-like client through the entry: the relays of
		// the earlier phases may be gone.
		c := p.dialEntry(ctx)
		c.join(ctx, room, "alice", "Alice")
		leader := p.waitLeader(ctx, nodes, "", time.Minute)
		id := p.containers(ctx, leader)
		if len(id) != 1 {
			t.Fatalf("service %s: containers %v", leader, id)
		}
		rest := slices.DeleteFunc(slices.Clone(nodes), func(n string) bool { return n == leader })
		step(t, "docker kill the leader %s", leader)
		killed := time.Now()
		if out, err := run(ctx, "", nil, p.docker, "kill", id[0]); err != nil {
			t.Fatalf("docker kill: %v\n%s", err, out)
		}
		s3 := p.guessUntilAcked(ctx, rest, room, "alice", "j")
		timed("leader kill to the next acknowledged guess", time.Since(killed))
		newLeader := p.waitLeader(ctx, rest, leader, time.Minute)
		step(t, "new leader %s; guess j committed at seq %d", newLeader, s3)
		s4 := c.guess(ctx, room, "alice", "v")
		if st := c.awaitState(ctx, room, s4); !st.has("j") || !st.has("v") {
			t.Fatalf("after the leader was killed: state %+v lacks j or v", st)
		}
		played(s4, "j", "v")
		c.close()

		step(t, "starting %s again", leader)
		p.mustCompose(ctx, "start", leader)
		target := p.leaderApplied(ctx, rest)
		applied := p.waitCaughtUp(ctx, leader, target)
		p.checkCommitted(ctx, []string{leader}, room, s4, letters...)
		step(t, "%s caught up: applied index %d >= %d", leader, applied, target)
	})

	// Needs raft addresses that follow the node ids (issue 14, part 2):
	// the containers come back on new addresses.
	t.Run("restart with data", func(t *testing.T) {
		p := p.with(t)
		step(t, "docker-compose down (the volumes stay), then up with every node on a new address")
		p.mustCompose(ctx, "down", "-t", "10")
		p.generation++
		start := time.Now()
		p.mustCompose(ctx, "up", "-d", "--scale", "relay=2")
		leader := p.waitLeader(ctx, nodes, "", 90*time.Second)
		timed("full restart (up after down) to a leader", time.Since(start))
		p.checkCommitted(ctx, nodes, room, lastSeq, letters...)
		p.checkPlayer(ctx, nodes, room, "Bob")
		p.checkPlayer(ctx, nodes, room, "Alice")
		p.waitRelays(ctx, 2)
		p.waitEntry(ctx)
		c := p.dialEntry(ctx)
		c.join(ctx, room, "alice", "Alice")
		s := c.guess(ctx, room, "alice", "k")
		c.close()
		played(s, "k")
		step(t, "after the restart %s leads, every letter of room %s is there and guess k committed at seq %d", leader, room, s)
	})

	t.Run("down -v leaves nothing", func(t *testing.T) {
		p := p.with(t)
		volumes := p.mountedVolumes(ctx)
		p.mustCompose(ctx, "down", "-v", "--remove-orphans", "-t", "10")
		p.down = true
		for _, what := range [][]string{
			{"ps", "-a", "-q"},
			{"volume", "ls", "-q"},
			{"network", "ls", "-q"},
		} {
			args := append(what, "--filter", "label=com.docker.compose.project="+project)
			out, err := run(ctx, "", nil, dockerBin, args...)
			if err != nil {
				t.Fatalf("docker %v: %v\n%s", args, err, out)
			}
			if strings.TrimSpace(out) != "" {
				t.Errorf("after down, docker %s still lists: %s", strings.Join(what[:len(what)-1], " "), out)
			}
		}
		out, err := run(ctx, "", nil, dockerBin, "volume", "ls", "-q")
		if err != nil {
			t.Fatalf("docker volume ls: %v\n%s", err, out)
		}
		for _, v := range strings.Fields(out) {
			if slices.Contains(volumes, v) {
				t.Errorf("after down, volume %s of the project is left", v)
			}
		}
	})
}

// mountedVolumes lists the volumes, named and anonymous, mounted by the
// project's containers.
func (p *composeProject) mountedVolumes(ctx context.Context) []string {
	p.t.Helper()
	out, err := run(ctx, "", nil, p.docker, "ps", "-a", "-q", "--filter", "label=com.docker.compose.project="+p.name)
	if err != nil {
		p.t.Fatalf("docker ps: %v\n%s", err, out)
	}
	ids := strings.Fields(out)
	if len(ids) == 0 {
		p.t.Fatal("the project has no containers")
	}
	args := append([]string{"inspect", "-f", "{{range .Mounts}}{{if .Name}}{{.Name}} {{end}}{{end}}"}, ids...)
	out, err = run(ctx, "", nil, p.docker, args...)
	if err != nil {
		p.t.Fatalf("docker inspect: %v\n%s", err, out)
	}
	return strings.Fields(out)
}

func step(t *testing.T, format string, args ...any) {
	t.Helper()
	t.Logf("%s  %s", time.Now().UTC().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// requireDocker returns the docker and docker-compose binaries, or skips.
func requireDocker(t *testing.T) (string, string) {
	t.Helper()
	dockerBin, err := exec.LookPath("docker")
	if err != nil {
		t.Skip("TestCompose: no docker client on PATH")
	}
	composeBin, err := exec.LookPath("docker-compose")
	if err != nil {
		t.Skip("TestCompose: no docker-compose on PATH")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if out, err := run(ctx, "", nil, dockerBin, "info", "--format", "{{.ServerVersion}}"); err != nil {
		t.Skipf("TestCompose: no Docker engine answers (docker info: %v: %s)", err, firstLine(out))
	}
	return dockerBin, composeBin
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// run runs a command and returns its combined output.
func run(ctx context.Context, dir string, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	if env != nil {
		cmd.Env = env
	}
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// buildContext builds the static binary into a fresh image build context
// (binary, data/, tmp/) and checks its command line against binaryFlags;
// it returns the context's directory and the binary. It skips when the
// binary does not build yet.
func buildContext(ctx context.Context, t *testing.T) (string, string) {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{"data", "tmp"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(dir, "tmp"), 0o1777); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "hangman")
	step(t, "go build (CGO_ENABLED=0) the hangman binary")
	env := append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	out, err := run(ctx, "..", env, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, ".")
	if err != nil {
		t.Skipf("TestCompose: the hangman binary does not build yet, nothing to deploy:\n%s", out)
	}
	for sub, flags := range binaryFlags {
		out, _ := run(ctx, "", nil, bin, sub, "-h")
		if !strings.Contains(out, "-log-level") {
			t.Fatalf("hangman %s -h does not list flags:\n%s", sub, out)
		}
		for f := range flags {
			if !regexp.MustCompile(`(?m)^\s+--?` + regexp.QuoteMeta(f) + `(\s|$)`).MatchString(out) {
				t.Errorf("hangman %s has no flag --%s, which the deploy files may use (hangman %s -h:\n%s)", sub, f, sub, out)
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	return dir, bin
}

// makeCerts makes the project's PKI with the binary's own `hangman certs`
// into a fresh directory, as deploy/README.md does, and returns it. The
// files are a throwaway of this test, so instead of handing the keys to
// the containers' user (chown 65532, which needs root) they are made
// readable by all.
func makeCerts(ctx context.Context, t *testing.T, bin string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := run(ctx, "", nil, bin, "certs", "--dir", dir, "--nodes", "node1,node2,node3"); err != nil {
		t.Fatalf("hangman certs: %v\n%s", err, out)
	}
	env := readEnvFile(t, filepath.Join(dir, "security.env"))
	if got := slices.Sorted(maps.Keys(env)); !slices.Equal(got, slices.Sorted(slices.Values(securityEnvKeys))) {
		t.Fatalf("security.env of hangman certs holds %v; the manifests (securityEnvKeys) expect %v", got, securityEnvKeys)
	}
	if err := os.WriteFile(filepath.Join(dir, "relay-nats.password"), []byte(env["HANGMAN_NATS_RELAY_PASSWORD"]+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	keys, _ := filepath.Glob(filepath.Join(dir, "*-key.pem"))
	for _, k := range keys {
		if err := os.Chmod(k, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// readEnvFile reads KEY=VALUE lines.
func readEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			out[k] = v
		}
	}
	return out
}

// nodeHostPorts are the host ports of node N for each container port, as
// suffixes of HANGMAN_PORT_PREFIX (see compose.yaml).
var nodeHostPorts = map[int]func(n int) string{
	9001: func(n int) string { return fmt.Sprintf("0%d", n) },
	9101: func(n int) string { return fmt.Sprintf("1%d", n) },
	4222: func(n int) string { return fmt.Sprintf("2%d", n+1) },
}

// freePortPrefix picks a HANGMAN_PORT_PREFIX whose every port is free now,
// from 200..249 (host ports 20000-24999): below the kernel's ephemeral
// range, and below the 25000-31999 where `hangman bench`'s tests start
// their systems (bench_cmd_test.go), which run beside this one in `go test
// ./...`. Checking a port free and binding it are not one step: a bench
// system that took a port between the two would make the project fail to
// start.
func freePortPrefix(t *testing.T) string {
	t.Helper()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 18))
	for range 50 {
		prefix := strconv.Itoa(200 + rng.IntN(50))
		var ports []string
		for _, f := range nodeHostPorts {
			for n := 1; n <= 3; n++ {
				ports = append(ports, f(n))
			}
		}
		for i := 80; i <= 89; i++ {
			ports = append(ports, strconv.Itoa(i))
		}
		free := true
		for _, suffix := range ports {
			ln, err := net.Listen("tcp", "127.0.0.1:"+prefix+suffix)
			if err != nil {
				free = false
				break
			}
			ln.Close()
		}
		if free {
			return prefix
		}
	}
	t.Fatal("no HANGMAN_PORT_PREFIX in 200..249 has all its ports free")
	return ""
}

// composeProject is one running compose project, secured with the files
// in certs, its host ports under prefix, its nodes at the addresses of
// netFile for generation.
type composeProject struct {
	t               *testing.T
	docker, compose string
	name, image     string
	certs, prefix   string
	netFile         string
	netPrefix       string // the subnet's first three octets
	*projectState
}

// projectState is what every view of a project (with) shares.
type projectState struct {
	generation int  // of the nodes' addresses (writeNetFile)
	down       bool // taken down with -v already
	logged     bool // the logs of a failure were dumped already

	mu    sync.Mutex
	conns map[string]*grpc.ClientConn // by host address
}

// with is the project as seen by test t (a subtest): failures go to t,
// and so do the containers' logs when t fails, dumped as t ends: the later
// subtests take the project down, and its containers and their logs with
// it.
func (p *composeProject) with(t *testing.T) *composeProject {
	q := *p
	q.t = t
	t.Cleanup(q.dumpLogs)
	return &q
}

// dumpLogs logs the last lines of every container's log, once, if the
// test failed.
func (p *composeProject) dumpLogs() {
	if !p.t.Failed() || p.logged || p.down {
		return
	}
	p.logged = true
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := p.composeCmd(ctx, "logs", "--no-color", "--timestamps", "--tail", "150")
	if err != nil {
		p.t.Logf("docker-compose logs: %v", err)
	}
	p.t.Logf("docker-compose logs (last 150 lines per container):\n%s", out)
}

// env is the environment of docker-compose: the image under test, the
// port prefix, the certificates and the nodes' addresses.
func (p *composeProject) env() []string {
	env := append(os.Environ(), "HANGMAN_IMAGE="+p.image, "HANGMAN_PORT_PREFIX="+p.prefix, "HANGMAN_CERTS="+p.certs)
	for n := 1; n <= 3; n++ {
		env = append(env, fmt.Sprintf("HANGMAN_TEST_NODE%d_IP=%s.%d", n, p.netPrefix, 10*(p.generation+1)+n))
	}
	return env
}

// writeNetFile writes the test's own override of the project's network:
// a subnet of its own, with the nodes at fixed addresses that the test
// changes between a `down` and the next `up` (generation), so that "a
// cluster restarted on new addresses" happens every time, not by chance,
// and packets to the old addresses stay on the project's own bridge.
// Dynamic addresses (relays, the entry) come from the upper half.
func writeNetFile(t *testing.T) (path, prefix string) {
	t.Helper()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 31))
	prefix = fmt.Sprintf("10.%d.%d", 200+rng.IntN(50), rng.IntN(256))
	var b strings.Builder
	b.WriteString("# The compose test's network (see writeNetFile).\n")
	fmt.Fprintf(&b, "networks:\n  default:\n    ipam:\n      config:\n        - subnet: %s.0/24\n          ip_range: %s.128/25\n", prefix, prefix)
	b.WriteString("services:\n")
	for n := 1; n <= 3; n++ {
		fmt.Fprintf(&b, "  node%d:\n    networks:\n      default:\n        ipv4_address: ${HANGMAN_TEST_NODE%d_IP}\n", n, n)
	}
	path = filepath.Join(t.TempDir(), "net.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, prefix
}

func (p *composeProject) composeCmd(ctx context.Context, args ...string) (string, error) {
	base := []string{"--ansi", "never", "-f", "compose.yaml", "-f", "compose.secure.yaml", "-f", p.netFile, "-p", p.name}
	return run(ctx, "", p.env(), p.compose, append(base, args...)...)
}

func (p *composeProject) mustCompose(ctx context.Context, args ...string) string {
	p.t.Helper()
	out, err := p.composeCmd(ctx, args...)
	if err != nil {
		p.t.Fatalf("docker-compose %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// teardown dumps the logs of a failed run and removes the project.
func (p *composeProject) teardown() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.dumpLogs()
	if p.down {
		return
	}
	if out, err := p.composeCmd(ctx, "down", "-v", "--remove-orphans", "-t", "5"); err != nil {
		p.t.Errorf("cleanup: docker-compose down: %v\n%s", err, out)
	}
}

// hostPort is where service's container port is published on the host;
// index counts the replicas of a scaled service from 1. A node's follow
// from the prefix; relays take theirs from a range in turn, so compose is
// asked.
func (p *composeProject) hostPort(ctx context.Context, service string, index, port int) (string, error) {
	if n, ok := strings.CutPrefix(service, "node"); ok {
		i, err := strconv.Atoi(n)
		if f := nodeHostPorts[port]; f != nil && err == nil {
			return "127.0.0.1:" + p.prefix + f(i), nil
		}
	}
	out, err := p.composeCmd(ctx, "port", "--index="+strconv.Itoa(index), service, strconv.Itoa(port))
	addr := strings.TrimSpace(out)
	if err != nil || !strings.HasPrefix(addr, "127.0.0.1:") || strings.HasSuffix(addr, ":0") {
		return "", fmt.Errorf("docker-compose port %s %d: %v %q", service, port, err, out)
	}
	return addr, nil
}

// poll calls f every interval until it returns nil, failing the test with
// f's last error once timeout passes.
func (p *composeProject) poll(ctx context.Context, what string, timeout time.Duration, f func(ctx context.Context) error) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	var err error
	for {
		if err = f(ctx); err == nil {
			return
		}
		select {
		case <-ctx.Done():
			p.t.Fatalf("%s: not within %v: %v", what, timeout, err)
		case <-tick.C:
		}
	}
}

// conn is a gRPC connection to service's published gRPC port. The port is
// looked up each time: it changes when a container restarts.
func (p *composeProject) conn(ctx context.Context, service string) (*grpc.ClientConn, error) {
	addr, err := p.hostPort(ctx, service, 1, 9001)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		p.conns = map[string]*grpc.ClientConn{}
	}
	if c := p.conns[addr]; c != nil {
		return c, nil
	}
	// As a relay: its client certificate, verifying the node as one.
	b, err := tlsutil.Load(filepath.Join(p.certs, "relay.pem"), filepath.Join(p.certs, "relay-key.pem"), filepath.Join(p.certs, "ca.pem"))
	if err != nil {
		return nil, err
	}
	c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(b.ClientConfig())))
	if err != nil {
		return nil, err
	}
	p.conns[addr] = c
	return c, nil
}

func (p *composeProject) status(ctx context.Context, service string) (*hangmanv1.StatusResponse, error) {
	c, err := p.conn(ctx, service)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	return hangmanv1.NewClusterServiceClient(c).Status(ctx, &hangmanv1.StatusRequest{})
}

// waitLeader waits until every node of nodes names the same leader, one of
// them, other than not; it returns the leader's id (the service name).
func (p *composeProject) waitLeader(ctx context.Context, nodes []string, not string, timeout time.Duration) string {
	p.t.Helper()
	var leader string
	p.poll(ctx, fmt.Sprintf("a leader agreed on by %v", nodes), timeout, func(ctx context.Context) error {
		leader = ""
		for _, n := range nodes {
			st, err := p.status(ctx, n)
			if err != nil {
				return fmt.Errorf("%s: %w", n, err)
			}
			if st.LeaderId == "" || st.LeaderId == not {
				return fmt.Errorf("%s: leader %q (state %s)", n, st.LeaderId, st.State)
			}
			if leader != "" && st.LeaderId != leader {
				return fmt.Errorf("%s says leader %s, another node %s", n, st.LeaderId, leader)
			}
			leader = st.LeaderId
		}
		if !slices.Contains(nodes, leader) {
			return fmt.Errorf("leader %q is not one of %v", leader, nodes)
		}
		return nil
	})
	return leader
}

// retryable reports whether a gRPC error may go away by itself (a leader
// change, a node starting).
func retryable(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted:
		return true
	}
	return false
}

// onAny runs f against the nodes in turn until one succeeds, retrying
// transient errors until timeout.
func (p *composeProject) onAny(ctx context.Context, what string, nodes []string, f func(ctx context.Context, c *grpc.ClientConn) error) {
	p.t.Helper()
	i := 0
	p.poll(ctx, what, time.Minute, func(ctx context.Context) error {
		n := nodes[i%len(nodes)]
		i++
		c, err := p.conn(ctx, n)
		if err != nil {
			return err
		}
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		err = f(actx, c)
		if err != nil && !retryable(err) {
			p.t.Fatalf("%s on %s: %v", what, n, err)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", n, err)
		}
		return nil
	})
}

func (p *composeProject) createRoom(ctx context.Context, nodes []string, room string) {
	p.t.Helper()
	p.onAny(ctx, "CreateRoom "+room, nodes, func(ctx context.Context, c *grpc.ClientConn) error {
		_, err := hangmanv1.NewGameServiceClient(c).CreateRoom(ctx, &hangmanv1.CreateRoomRequest{
			Room: room, MaxWrong: 26, RequestId: "deploy-create-" + room,
		})
		return err
	})
}

// checkCommitted reads the room from each node's own replica until it is
// at seq >= minSeq with every letter guessed.
func (p *composeProject) checkCommitted(ctx context.Context, nodes []string, room string, minSeq uint64, letters ...string) {
	p.t.Helper()
	p.checkReplicas(ctx, nodes, room, fmt.Sprintf("at seq >= %d with %v", minSeq, letters), func(st *hangmanv1.RoomState) error {
		if st.GetSeq() < minSeq {
			return fmt.Errorf("seq %d", st.GetSeq())
		}
		return missingLetters(st, letters)
	})
}

// checkReplicas reads room from each node's own replica (a stale read, so
// it shows what that node has applied) until check passes on it; what
// says what check waits for.
func (p *composeProject) checkReplicas(ctx context.Context, nodes []string, room, what string, check func(*hangmanv1.RoomState) error) {
	p.t.Helper()
	for _, n := range nodes {
		p.poll(ctx, fmt.Sprintf("room %s on %s %s", room, n, what), time.Minute, func(ctx context.Context) error {
			c, err := p.conn(ctx, n)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			resp, err := hangmanv1.NewGameServiceClient(c).GetRoom(ctx, &hangmanv1.GetRoomRequest{
				Room: room, Consistency: hangmanv1.Consistency_CONSISTENCY_STALE,
			})
			if err != nil {
				return err
			}
			return check(resp.GetState())
		})
	}
}

// missingLetters says which of letters st has not had guessed, nil when
// none.
func missingLetters(st *hangmanv1.RoomState, letters []string) error {
	all := append(slices.Clone(st.GetGuessed()), st.GetWrong()...)
	for _, l := range letters {
		if !slices.Contains(all, l) {
			return fmt.Errorf("letter %s missing from guessed %v wrong %v", l, st.GetGuessed(), st.GetWrong())
		}
	}
	return nil
}

// natsSub subscribes to subject through the NATS servers the nodes publish
// on the host, as the nats CLI would.
func (p *composeProject) natsSub(ctx context.Context, nodes []string, subject string) *nats.Subscription {
	p.t.Helper()
	var urls []string
	for _, n := range nodes {
		addr, err := p.hostPort(ctx, n, 1, 4222)
		if err != nil {
			p.t.Fatal(err)
		}
		urls = append(urls, "nats://"+addr)
	}
	// The servers also gossip their in-network addresses, which the host
	// cannot reach: stick to the published ones. With TLS and the
	// read-only watcher user, as an operator's nats CLI.
	env := readEnvFile(p.t, filepath.Join(p.certs, "security.env"))
	nc, err := nats.Connect(strings.Join(urls, ","), nats.IgnoreDiscoveredServers(),
		nats.RetryOnFailedConnect(true), nats.Timeout(5*time.Second),
		nats.RootCAs(filepath.Join(p.certs, "ca.pem")), nats.UserInfo("watcher", env["HANGMAN_NATS_WATCHER_PASSWORD"]))
	if err != nil {
		p.t.Fatalf("nats connect %v: %v", urls, err)
	}
	p.t.Cleanup(nc.Close)
	sub, err := nc.SubscribeSync(subject)
	if err != nil {
		p.t.Fatalf("nats subscribe %s: %v", subject, err)
	}
	if err := nc.FlushTimeout(10 * time.Second); err != nil {
		p.t.Fatalf("nats flush via %v: %v", urls, err)
	}
	return sub
}

// awaitNATSState reads room states from sub until one at seq >= minSeq,
// which must show letters.
func (p *composeProject) awaitNATSState(ctx context.Context, sub *nats.Subscription, minSeq uint64, letters ...string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			p.t.Fatalf("NATS %s: no state at seq >= %d: %v", sub.Subject, minSeq, err)
		}
		var st roomState
		if err := json.Unmarshal(m.Data, &st); err != nil {
			p.t.Fatalf("NATS %s: payload is not a room state: %v: %s", m.Subject, err, m.Data)
		}
		if st.Seq < minSeq {
			continue
		}
		for _, l := range letters {
			if !st.has(l) {
				p.t.Fatalf("NATS %s: state at seq %d lacks %s: %s", m.Subject, st.Seq, l, m.Data)
			}
		}
		if id := m.Header.Get("Nats-Msg-Id"); id != fmt.Sprintf("%s.%d", st.Room, st.Seq) {
			p.t.Errorf("NATS %s: header Nats-Msg-Id %q, want %s.%d", m.Subject, id, st.Room, st.Seq)
		}
		return
	}
}

// leaderApplied is the applied index of the current leader among nodes.
func (p *composeProject) leaderApplied(ctx context.Context, nodes []string) uint64 {
	p.t.Helper()
	var idx uint64
	p.poll(ctx, "the leader's applied index", time.Minute, func(ctx context.Context) error {
		for _, n := range nodes {
			st, err := p.status(ctx, n)
			if err == nil && st.State == "Leader" {
				idx = st.AppliedIndex
				return nil
			}
		}
		return errors.New("no node of " + strings.Join(nodes, ",") + " is leader")
	})
	return idx
}

// waitCaughtUp waits until node has applied at least target.
func (p *composeProject) waitCaughtUp(ctx context.Context, node string, target uint64) uint64 {
	p.t.Helper()
	var applied uint64
	p.poll(ctx, fmt.Sprintf("%s applying index %d", node, target), 2*time.Minute, func(ctx context.Context) error {
		st, err := p.status(ctx, node)
		if err != nil {
			return err
		}
		applied = st.AppliedIndex
		if applied < target {
			return fmt.Errorf("applied %d (state %s, leader %q)", applied, st.State, st.LeaderId)
		}
		return nil
	})
	return applied
}

// containers lists the ids of the project's running containers, of one
// service or ("") of all.
func (p *composeProject) containers(ctx context.Context, service string) []string {
	p.t.Helper()
	args := []string{"ps", "-q", "--no-trunc", "--filter", "label=com.docker.compose.project=" + p.name}
	if service != "" {
		args = append(args, "--filter", "label=com.docker.compose.service="+service)
	}
	out, err := run(ctx, "", nil, p.docker, args...)
	if err != nil {
		p.t.Fatalf("docker ps: %v\n%s", err, out)
	}
	return strings.Fields(out)
}

// waitRelays waits until relays 1..n answer /readyz with 200.
func (p *composeProject) waitRelays(ctx context.Context, n int) {
	p.t.Helper()
	for i := 1; i <= n; i++ {
		p.poll(ctx, fmt.Sprintf("relay %d ready", i), 2*time.Minute, func(ctx context.Context) error {
			addr, err := p.hostPort(ctx, "relay", i, 8080)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/readyz", nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("GET /readyz: %s", resp.Status)
			}
			return nil
		})
	}
}

// wsClient is a browser of one relay, speaking relay/PROTOCOL.md.
type wsClient struct {
	t      *testing.T
	relay  int
	c      *websocket.Conn
	frames chan wsFrame
	done   chan struct{}
	nextID int
	states map[string]roomState // latest state per room
}

type wsFrame struct {
	Type      string          `json:"type"`
	ID        string          `json:"id"`
	Op        string          `json:"op"`
	Room      string          `json:"room"`
	Outcome   string          `json:"outcome"`
	Seq       uint64          `json:"seq"`
	Code      string          `json:"code"`
	Message   string          `json:"message"`
	Relay     string          `json:"relay"`
	Data      json.RawMessage `json:"data"`
	Duplicate bool            `json:"duplicate"`
}

type roomState struct {
	Room    string   `json:"room"`
	Seq     uint64   `json:"seq"`
	Masked  string   `json:"masked"`
	Guessed []string `json:"guessed"`
	Wrong   []string `json:"wrong"`
	Status  string   `json:"status"`
	Players []struct {
		ID string `json:"id"`
	} `json:"players"`
}

func (s roomState) has(letter string) bool {
	return slices.Contains(s.Guessed, letter) || slices.Contains(s.Wrong, letter)
}

// dialRelay opens a websocket to relay replica i and reads its welcome.
func (p *composeProject) dialRelay(ctx context.Context, i int) *wsClient {
	p.t.Helper()
	addr, err := p.hostPort(ctx, "relay", i, 8080)
	if err != nil {
		p.t.Fatal(err)
	}
	return p.dialAddr(ctx, i, addr)
}

// dialEntry opens a websocket through the public entry, as the page does.
func (p *composeProject) dialEntry(ctx context.Context) *wsClient {
	p.t.Helper()
	return p.dialAddr(ctx, 0, strings.TrimPrefix(p.entryURL(), "http://"))
}

// dialAddr opens a websocket to addr (relay i, 0 for the entry) and reads
// its welcome.
func (p *composeProject) dialAddr(ctx context.Context, i int, addr string) *wsClient {
	p.t.Helper()
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	h := http.Header{"Origin": {"http://" + addr}}
	c, resp, err := websocket.DefaultDialer.DialContext(dctx, "ws://"+addr+"/ws", h)
	if err != nil {
		body := ""
		if resp != nil {
			body = resp.Status
		}
		p.t.Fatalf("relay %d: websocket to %s: %v %s", i, addr, err, body)
	}
	w := &wsClient{t: p.t, relay: i, c: c, frames: make(chan wsFrame, 256), done: make(chan struct{}), states: map[string]roomState{}}
	go w.read()
	p.t.Cleanup(w.close)
	f := w.await(ctx, "welcome", func(f wsFrame) bool { return f.Type == "welcome" })
	step(p.t, "relay %d (%s) at %s says welcome", i, f.Relay, addr)
	return w
}

func (w *wsClient) read() {
	defer close(w.frames)
	for {
		_, data, err := w.c.ReadMessage()
		if err != nil {
			return
		}
		var f wsFrame
		if err := json.Unmarshal(data, &f); err != nil {
			w.t.Errorf("relay %d sent a frame that is not JSON: %q", w.relay, data)
			continue
		}
		select {
		case w.frames <- f:
		case <-w.done:
			return
		}
	}
}

func (w *wsClient) close() {
	select {
	case <-w.done:
	default:
		close(w.done)
		w.c.Close()
	}
}

func (w *wsClient) send(v any) {
	w.t.Helper()
	b, _ := json.Marshal(v)
	w.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := w.c.WriteMessage(websocket.TextMessage, b); err != nil {
		w.t.Fatalf("relay %d: write %s: %v", w.relay, b, err)
	}
}

// await reads frames until match accepts one, keeping room states seen on
// the way. It fails the test after 30s or when the socket closes.
func (w *wsClient) await(ctx context.Context, what string, match func(wsFrame) bool) wsFrame {
	w.t.Helper()
	timer := time.NewTimer(30 * time.Second)
	defer timer.Stop()
	for {
		select {
		case f, ok := <-w.frames:
			if !ok {
				w.t.Fatalf("relay %d: websocket closed while waiting for %s", w.relay, what)
			}
			if f.Type == "state" {
				var st roomState
				if err := json.Unmarshal(f.Data, &st); err != nil {
					w.t.Fatalf("relay %d: state frame data: %v: %s", w.relay, err, f.Data)
				}
				if st.Seq >= w.states[st.Room].Seq {
					w.states[st.Room] = st
				}
			}
			if match(f) {
				return f
			}
		case <-timer.C:
			w.t.Fatalf("relay %d: no %s within 30s", w.relay, what)
		case <-ctx.Done():
			w.t.Fatalf("relay %d: waiting for %s: %v", w.relay, what, ctx.Err())
		}
	}
}

// command sends a command frame and waits for its ack, resending it with
// the same id (which the protocol makes safe) on an unavailable or timeout
// error, as a browser does across a failover.
func (w *wsClient) command(ctx context.Context, frame map[string]any) wsFrame {
	w.t.Helper()
	w.nextID++
	id := fmt.Sprintf("%s-%d-%d", frame["type"], w.relay, w.nextID)
	frame["id"] = id
	deadline := time.Now().Add(time.Minute)
	for {
		w.send(frame)
		f := w.await(ctx, fmt.Sprintf("the reply to %v", frame), func(f wsFrame) bool {
			return f.ID == id && (f.Type == "ack" || f.Type == "error")
		})
		if f.Type == "ack" {
			return f
		}
		if (f.Code == "unavailable" || f.Code == "timeout") && time.Now().Before(deadline) {
			w.t.Logf("relay %d: %v: %s (%s); sending it again", w.relay, frame, f.Code, f.Message)
			continue
		}
		w.t.Fatalf("relay %d: %v refused: %s: %s", w.relay, frame, f.Code, f.Message)
	}
}

func (w *wsClient) join(ctx context.Context, room, player, name string) {
	w.t.Helper()
	w.command(ctx, map[string]any{"type": "join", "room": room, "playerId": player, "name": name, "token": harness.TokenOf(player)})
}

// guess guesses a letter and returns the seq that committed it.
func (w *wsClient) guess(ctx context.Context, room, player, letter string) uint64 {
	w.t.Helper()
	f := w.command(ctx, map[string]any{"type": "guess", "room": room, "playerId": player, "letter": letter, "token": harness.TokenOf(player)})
	if f.Seq == 0 {
		w.t.Fatalf("relay %d: guess ack without seq: %+v", w.relay, f)
	}
	return f.Seq
}

// awaitState waits for room's state at seq >= minSeq.
func (w *wsClient) awaitState(ctx context.Context, room string, minSeq uint64) roomState {
	w.t.Helper()
	if st, ok := w.states[room]; ok && st.Seq >= minSeq {
		return st
	}
	w.await(ctx, fmt.Sprintf("state of %s at seq >= %d", room, minSeq), func(f wsFrame) bool {
		if f.Type != "state" {
			return false
		}
		st := w.states[room]
		return st.Room == room && st.Seq >= minSeq
	})
	return w.states[room]
}
