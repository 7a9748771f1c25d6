package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/hangman/hangman/bench"
	"github.com/hangman/hangman/relay"
)

// runBench starts a system of separate processes, or attaches to a running
// one, and measures it.
func runBench(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("hangman bench", flag.ContinueOnError)
	var (
		mode              string
		nodes, relays     int
		clients, rooms    int
		workers           int
		rate              float64
		duration, warmup  time.Duration
		killAt            time.Duration
		out, dataDir      string
		basePort          int
		noRaw, leaderOnly bool
		unary             bool
		childLogs         bool
		cpuProfile        string
		attach            attachFlags
		cmp               compareFlags
	)
	fs.StringVar(&mode, "mode", "ws", "ws: websocket clients through relays; grpc: raw commit throughput")
	fs.IntVar(&nodes, "nodes", 3, "game nodes to start")
	fs.IntVar(&relays, "relays", 2, "relays to start")
	fs.IntVar(&clients, "clients", 1000, "websocket clients (ws mode)")
	fs.IntVar(&rooms, "rooms", 100, "rooms; in ws mode one player per room guesses, the other clients watch. A room sent over about 185 writes a second for 30 s is flooded, and the leader refuses its busiest players (game.PressureAt)")
	fs.IntVar(&workers, "workers", 256, "concurrent gRPC guessers (grpc mode)")
	fs.Float64Var(&rate, "rate", 0, "guesses per second over all guessers (0: ws mode 1000, grpc mode as fast as possible)")
	fs.DurationVar(&duration, "duration", 20*time.Second, "measured time")
	fs.DurationVar(&warmup, "warmup", 3*time.Second, "load before measuring")
	fs.DurationVar(&killAt, "kill-leader-at", 0, "kill -9 the leader this far into the measured time (0: never) and report the failover gap")
	fs.StringVar(&out, "out", "bench-report.json", "where to write the JSON report (the SVG plot goes next to it)")
	fs.StringVar(&dataDir, "data-dir", "", "where the nodes keep their logs (default: a temporary directory on the same disk as the system temp dir)")
	fs.IntVar(&basePort, "base-port", 31000, "first of the 200 ports of the system under test; refused if any it needs is taken")
	fs.BoolVar(&noRaw, "no-raw-nats", false, "ws mode: skip the raw NATS comparison run")
	fs.BoolVar(&leaderOnly, "leader-only", false, "grpc mode: send every guess to the leader instead of spreading them over all nodes")
	fs.BoolVar(&unary, "unary", false, "grpc mode: send each guess as its own Guess call instead of over one Guesses stream per node, as relays do")
	fs.BoolVar(&childLogs, "child-logs", false, "show the nodes' and relays' logs")
	fs.StringVar(&cpuProfile, "cpuprofile", "", "write the load generator's own CPU profile here (the nodes it starts serve theirs at the /debug/pprof/ URLs it prints)")
	fs.StringVar(&attach.grpc, "grpc", "", "measure a running system instead of starting one: its nodes' gRPC addresses, comma-separated (hangman dev: 127.0.0.1:9001,127.0.0.1:9002,127.0.0.1:9003)")
	fs.StringVar(&attach.nats, "nats", "", "with --grpc: NATS URLs for the raw NATS comparison, comma-separated (none: skip it)")
	fs.StringVar(&attach.relays, "relay-urls", "", "with --grpc: the relays' URLs, comma-separated (ws mode)")
	fs.StringVar(&cmp.report, "compare", "", "run the configuration of this earlier report (its JSON) against the current build, interleaved, and print ratios: below 1 is a regression")
	fs.StringVar(&cmp.baseline, "baseline", "", "with --compare: the hangman binary of the earlier build, run interleaved with this one (without it, this build's runs are compared with the report's own figures)")
	fs.IntVar(&cmp.rounds, "rounds", 3, "with --compare: runs of each build")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := cmp.check(fs); err != nil {
		return err
	}
	if cmp.report != "" {
		return runCompare(ctx, cmp)
	}
	if err := attach.check(fs); err != nil {
		return err
	}
	if attach.grpc != "" {
		nodes, relays = len(splitList(attach.grpc)), len(splitList(attach.relays))
	}
	if mode != "ws" && mode != "grpc" {
		return fmt.Errorf("--mode %q: want ws or grpc", mode)
	}
	if rooms < 1 || clients < rooms && mode == "ws" || workers < 1 || nodes < 1 || relays < 0 {
		return fmt.Errorf("need at least 1 room, 1 node, 1 worker, and (ws mode) a client per room")
	}
	if mode == "ws" && relays < 1 {
		if attach.grpc != "" {
			return fmt.Errorf("ws mode needs the running system's relays: give their URLs with --relay-urls")
		}
		return fmt.Errorf("ws mode needs at least one relay")
	}
	// The load generator shares the machine with what it measures: what
	// it spends collecting garbage is taken from the system under test.
	setGCPercent(slog.Default())
	var (
		sys *bench.System
		err error
	)
	if mode == "ws" {
		// A socket a client here, and one a client in the relays started
		// below, which inherit the limit; and a margin for the rest.
		if err := bench.EnsureFileLimit(uint64(clients) + 4096); err != nil {
			return err
		}
	}
	if attach.grpc != "" {
		fmt.Fprintf(os.Stderr, "attaching to %d nodes and %d relays…\n", nodes, relays)
		sys, err = bench.Attach(ctx, splitList(attach.grpc), splitList(attach.nats), splitList(attach.relays), 30*time.Second)
		noRaw = noRaw || attach.nats == ""
	} else {
		sys, err = startSystem(ctx, nodes, relays, basePort, dataDir, childLogs)
	}
	if err != nil {
		return err
	}
	defer sys.Close()

	if cpuProfile != "" {
		stop, err := startCPUProfile(cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	var rep *bench.Report
	switch mode {
	case "grpc":
		fmt.Fprintf(os.Stderr, "driving %d gRPC guessers for %v (after %v warm-up)…\n", workers, duration, warmup)
		rep, err = bench.RunGRPC(ctx, sys, bench.GRPCConfig{Workers: workers, Rooms: rooms, Rate: rate, Duration: duration, Warmup: warmup, KillLeaderAt: killAt, LeaderOnly: leaderOnly, Unary: unary})
	case "ws":
		if rate == 0 {
			rate = 1000
		}
		if perGuesser := rate / float64(rooms); attach.grpc != "" && perGuesser > relay.DefaultMessageRate {
			fmt.Fprintf(os.Stderr, "note: each guesser sends %.0f frames/s; a relay with the default limits allows %d (--message-rate), so some guesses may be refused as rate_limited\n", perGuesser, relay.DefaultMessageRate)
		}
		if attach.grpc != "" && rooms > relay.DefaultAddrJoin.Burst {
			fmt.Fprintf(os.Stderr, "note: the %d guessers join from this one address; a relay with the default limits seats %d at once from one address, then %g a minute (--addr-join-burst, --addr-join-rate), so some joins may be refused as rate_limited\n", rooms, relay.DefaultAddrJoin.Burst, relay.DefaultAddrJoin.Rate*60)
		}
		fmt.Fprintf(os.Stderr, "driving %d websocket clients in %d rooms at %.0f guesses/s for %v…\n", clients, rooms, rate, duration)
		rep, err = bench.RunWS(ctx, sys, bench.WSConfig{Clients: clients, Rooms: rooms, Rate: rate, Duration: duration, Warmup: warmup, KillLeaderAt: killAt, RawNATS: !noRaw})
	}
	if err != nil {
		return err
	}
	rep.Started = time.Now().UTC()
	rep.Command = "hangman bench " + strings.Join(args, " ")
	rep.Args = args
	rep.WriteText(os.Stdout)
	if out != "" {
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return err
		}
		svg, err := rep.Save(out)
		if err != nil {
			return err
		}
		fmt.Printf("\n  report %s\n  plot   %s\n", out, svg)
	}
	return nil
}

// compareFlags ask for a comparison with an earlier report.
type compareFlags struct {
	report, baseline string
	rounds           int
}

// check refuses comparison flags without --compare, and with --compare any
// flag that would change the configuration, which is the report's.
func (c compareFlags) check(fs *flag.FlagSet) error {
	var others []string
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "compare", "baseline", "rounds":
		default:
			others = append(others, "--"+f.Name)
		}
	})
	switch {
	case c.report == "" && (c.baseline != "" || c.rounds != 3):
		return fmt.Errorf("--baseline and --rounds go with --compare")
	case c.report == "":
		return nil
	case len(others) > 0:
		return fmt.Errorf("%s: with --compare the configuration is the report's; run the comparison with --compare, --baseline and --rounds only", strings.Join(others, ", "))
	case c.rounds < 1 || c.rounds > 20:
		return fmt.Errorf("--rounds %d: want 1-20", c.rounds)
	}
	if c.baseline != "" {
		if st, err := os.Stat(c.baseline); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			return fmt.Errorf("--baseline %q: not an executable hangman binary", c.baseline)
		}
	}
	return nil
}

// runCompare runs the configuration of an earlier report with the current
// build (and, given --baseline, with the earlier build, the two
// interleaved: before, now, now, before, …, so drift in the machine's load
// falls on both alike), each run a `hangman bench` of its own, and prints
// the ratios of the medians.
func runCompare(ctx context.Context, c compareFlags) error {
	rep, err := bench.LoadReport(c.report)
	if err != nil {
		return fmt.Errorf("--compare: %w", err)
	}
	args := rep.BenchArgs()
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the hangman binary: %w", err)
	}
	dir, err := os.MkdirTemp("", "hangman-compare-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	run := func(bin, side string, round int) (*bench.Report, error) {
		out := filepath.Join(dir, fmt.Sprintf("%s-%d.json", side, round))
		cmd := exec.CommandContext(ctx, bin, append(append([]string{"bench"}, args...), "--out", out)...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		fmt.Fprintf(os.Stderr, "\n== round %d of %d, %s: %s bench %s\n", round, c.rounds, side, bin, strings.Join(args, " "))
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("%s build, round %d: %w", side, round, err)
		}
		return bench.LoadReport(out)
	}
	var before, now []*bench.Report
	for round := 1; round <= c.rounds; round++ {
		sides := []string{"before", "now"}
		if round%2 == 0 {
			sides = []string{"now", "before"}
		}
		for _, side := range sides {
			var r *bench.Report
			switch {
			case side == "now":
				if r, err = run(self, side, round); err != nil {
					return err
				}
				now = append(now, r)
			case c.baseline != "":
				if r, err = run(c.baseline, side, round); err != nil {
					return err
				}
				before = append(before, r)
			}
		}
	}
	name := fmt.Sprintf("%s (%d runs of %s, interleaved)", c.report, c.rounds, c.baseline)
	if c.baseline == "" {
		before, name = []*bench.Report{rep}, c.report+" (its own figures)"
	}
	fmt.Println()
	fmt.Printf("hangman bench %s\n", strings.Join(args, " "))
	bench.WriteComparison(os.Stdout, name, bench.Compare(before, now))
	return nil
}

// attachFlags name a running system for the bench to measure.
type attachFlags struct{ grpc, nats, relays string }

// check refuses attach flags without the nodes, flags that only make sense
// for a system the bench starts itself, and relay URLs that are not URLs.
func (a attachFlags) check(fs *flag.FlagSet) error {
	if a.grpc == "" {
		if a.nats != "" || a.relays != "" {
			return fmt.Errorf("--nats and --relay-urls describe a running system: give its nodes with --grpc too")
		}
		return nil
	}
	var own []string
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "nodes", "relays", "data-dir", "base-port", "child-logs", "kill-leader-at":
			own = append(own, "--"+f.Name)
		}
	})
	if len(own) > 0 {
		return fmt.Errorf("%s: only for a system the bench starts, not one it attaches to with --grpc", strings.Join(own, ", "))
	}
	for _, u := range splitList(a.relays) {
		if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return fmt.Errorf("--relay-urls: %q is not a relay's http:// or https:// URL", u)
		}
	}
	return nil
}

// startSystem starts nodes and relays as child processes of this binary,
// their data in dataDir (a temporary directory, removed with them, if "").
// The relays' limits are raised so that the load is the bench's to choose.
func startSystem(ctx context.Context, nodes, relays, basePort int, dataDir string, childLogs bool) (*bench.System, error) {
	bin, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the hangman binary: %w", err)
	}
	cleanup := func() {}
	if dataDir == "" {
		if dataDir, err = os.MkdirTemp("", "hangman-bench-"); err != nil {
			return nil, err
		}
		cleanup = func() { os.RemoveAll(dataDir) }
	}
	scfg := bench.SystemConfig{Binary: bin, Dir: dataDir, Nodes: nodes, Relays: relays, BasePort: basePort,
		RelayArgs: []string{"--max-conns", "100000", "--max-conns-per-addr", "0", "--message-rate", "1000", "--message-burst", "1000",
			// Every guesser joins from this one address.
			"--addr-join-rate", "1000", "--addr-join-burst", "100000"}, Cleanup: cleanup}
	if childLogs {
		scfg.Log = os.Stderr
	}
	fmt.Fprintf(os.Stderr, "starting %d nodes and %d relays…\n", nodes, relays)
	sys, err := bench.StartSystem(ctx, scfg)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "the nodes' profilers: %s\n", strings.Join(sys.PprofURLs, " "))
	if len(sys.RelayPprofURLs) > 0 {
		fmt.Fprintf(os.Stderr, "the relays' profilers: %s\n", strings.Join(sys.RelayPprofURLs, " "))
	}
	return sys, nil
}

// startCPUProfile profiles this process into path until the returned stop
// is called: the load generator shares the machine with what it measures,
// so what it costs is part of any result.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
