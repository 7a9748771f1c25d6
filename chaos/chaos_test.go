package chaos

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hangman/hangman/internal/harness"
)

var (
	flagDuration = flag.Duration("chaos.duration", 0, "TestChaos: how long to inject faults (the soak; 0 skips it)")
	flagNodes    = flag.Int("chaos.nodes", 3, "TestChaos: game nodes (3 or 5)")
	flagSeed     = flag.Uint64("chaos.seed", 0, "fault schedule seed (0: from the clock)")
	flagVerbose  = flag.Bool("chaos.debug", false, "log the harness at debug level")
	flagFaults   = flag.String("chaos.faults", "all", "comma-separated fault kinds to inject, or all: "+faultNames())
	flagBinary   = flag.String("chaos.binary", "", "run this hangman binary instead of building the module's")
)

// faultNames lists every fault kind for the flag's help.
func faultNames() string {
	names := make([]string, len(AllFaults))
	for i, k := range AllFaults {
		names[i] = string(k)
	}
	return strings.Join(names, ", ")
}

// TestChaosShort is the CI run: three nodes, two relays, one deterministic
// round-robin over every kind of fault (about three minutes).
func TestChaosShort(t *testing.T) {
	runChaos(t, 3, 0, false, 1*time.Second, 8*time.Second,
		WorkloadConfig{Slots: 3, RoomLife: 15 * time.Second, Players: 4, Readers: 2, Pace: 20 * time.Millisecond, Timeout: 2 * time.Second,
			RecheckShare: 0.25, RecheckAfter: 1500 * time.Millisecond})
}

// TestChaos is the soak: `go test ./chaos -run '^TestChaos$'
// -chaos.duration=10m` (what `task chaos DURATION=10m` runs): every kind
// once per cycle in a random order, calm gaps long enough for the leader
// change count to mean something, and minute-long hogs.
func TestChaos(t *testing.T) {
	if *flagDuration == 0 {
		t.Skip("the soak runs with -chaos.duration (task chaos DURATION=10m); TestChaosShort is the short run")
	}
	runChaos(t, *flagNodes, *flagDuration, true, 5*time.Second, 30*time.Second,
		WorkloadConfig{Slots: 4, RoomLife: 20 * time.Second, Players: 4, Readers: 2, Pace: 20 * time.Millisecond, Timeout: 2 * time.Second,
			RecheckShare: 0.25, RecheckAfter: 2 * time.Second})
}

func runChaos(t *testing.T, nodes int, d time.Duration, shuffle bool, gap, hog time.Duration, wl WorkloadConfig) {
	t.Helper()
	if testing.Short() {
		t.Skip("chaos runs real processes for a minute or more; skipped under -short")
	}
	if err := netnsAvailable(); err != nil {
		t.Skipf("network namespaces unavailable (%v): the chaos harness needs root, iproute2 and iptables", err)
	}
	t.Log("fault mechanism: network namespaces + veth + iptables (cuts TCP and UDP); " +
		"Docker networks and the TCP-proxy variant are not implemented: skipped")
	faults, err := ParseFaults(*flagFaults)
	if err != nil {
		t.Fatal(err)
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	level := slog.LevelInfo
	if *flagVerbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	seed := *flagSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun the schedule with -chaos.seed=%d)", seed, seed)
	ctx, cancel := context.WithTimeout(context.Background(), d+8*time.Minute)
	defer cancel()
	cfg := Config{
		Binary: bin, Dir: dir, Nodes: nodes, Relays: 2, Duration: d,
		Hold: 3500 * time.Millisecond, Pause: 3500 * time.Millisecond, Gap: gap, Calm: 5 * time.Second,
		Settle: 2 * time.Second, ReadyBound: 15 * time.Second, RejoinBound: 20 * time.Second, RefuseBound: 10 * time.Second, ReaddressBound: 10 * time.Second,
		PauseLong: 6 * time.Second, PauseRecover: 5 * time.Second, HogHold: hog, Tmpfs: "256m",
		Shuffle: shuffle, Seed: seed, Workload: wl, Faults: faults, CheckTimeout: 2 * time.Minute, Log: log,
	}
	rep, err := Run(ctx, cfg)
	if err != nil {
		paths, _ := (&Report{Config: cfg}).SaveArtifacts(artifactsDir(t), dir)
		t.Fatalf("chaos harness: %v\nartifacts: %s", err, strings.Join(paths, ", "))
	}
	t.Log("\n" + rep.Summary())
	if len(rep.Failures) > 0 {
		paths, aerr := rep.SaveArtifacts(artifactsDir(t), dir)
		if aerr != nil {
			t.Errorf("saving artifacts: %v", aerr)
		}
		t.Fatalf("chaos run failed: %s\nartifacts: %s", strings.Join(rep.Failures, "; "), strings.Join(paths, ", "))
	}
	path, err := rep.SaveSummary(artifactsDir(t))
	if err != nil {
		t.Errorf("saving the summary: %v", err)
	}
	t.Logf("summary saved to %s", path)
}

// buildBinary is the hangman binary under test: -chaos.binary, or one
// built once per test process.
func buildBinary(t *testing.T) string {
	t.Helper()
	if *flagBinary != "" {
		return *flagBinary
	}
	return harness.Binary(t)
}

// TestMain removes the hangman binary the tests built once and shared.
func TestMain(m *testing.M) { harness.Main(m) }

// artifactsDir is $HANGMAN_ARTIFACTS, or artifacts/ at the module root.
func artifactsDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("HANGMAN_ARTIFACTS"); d != "" {
		return d
	}
	root, err := harness.ModuleRoot()
	if err != nil {
		t.Fatalf("module root: %v", err)
	}
	return filepath.Join(root, "artifacts")
}
