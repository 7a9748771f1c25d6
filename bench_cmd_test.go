package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hangman/hangman/bench"
	"github.com/hangman/hangman/internal/harness"
	"github.com/hangman/hangman/internal/proc"
	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
)

// TestBenchMeasuresARealSystem runs `hangman bench` as a user would, in
// both modes, briefly and small, and checks that its report holds what
// the performance issue asks of it: committed guesses, latencies at every
// watching client, deliveries against raw NATS, relay memory, CPU per
// guess, the failover gap, and a plot beside the JSON.
func TestBenchMeasuresARealSystem(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the hangman binary and starts a system of processes")
	}
	bin := harness.Binary(t)
	// A running system for the bench to attach to, as it would to
	// hangman dev or a compose project.
	var (
		running     *bench.System
		runningLogs string // the attached system's log file
	)
	onFreePorts(t, "start a system to attach to", func(base int) error {
		logs, err := os.CreateTemp(t.TempDir(), "children-*.log")
		if err != nil {
			return err
		}
		runningLogs = logs.Name()
		// Open while the system runs: its logs after the start are read
		// too (a failed attached run, the intruder below).
		t.Cleanup(func() { _ = logs.Close() })
		running, err = bench.StartSystem(t.Context(), bench.SystemConfig{Binary: bin, Dir: t.TempDir(), Nodes: 1, Relays: 1, BasePort: base, Log: logs})
		if err != nil {
			b, _ := os.ReadFile(logs.Name())
			return fmt.Errorf("%w; their logs:\n%s", err, b)
		}
		return nil
	})
	t.Cleanup(running.Close)
	// The attached ws run goes twice to the same system: a second run, with
	// tokens of its own, must not meet the first run's seats.
	attachedWS := []string{"--mode", "ws", "--clients", "20", "--rooms", "2", "--rate", "20",
		"--grpc", strings.Join(running.GRPCAddrs, ","), "--relay-urls", strings.Join(running.RelayURLs, ","), "--nats", strings.Join(running.NATSURLs, ",")}
	checkAttachedWS := func(t *testing.T, r *bench.Report) {
		if !r.Attached || r.Nodes != 1 || r.Relays != 1 {
			t.Errorf("attached %v, %d nodes, %d relays; want an attached run on 1 node and 1 relay", r.Attached, r.Nodes, r.Relays)
		}
		if d := r.DeliveryLatency; d == nil || d.Samples <= int(r.Committed) || r.RawNATSDeliveredPerSec <= 0 {
			t.Errorf("delivery latency %+v, raw NATS %.0f/s: want both measured", d, r.RawNATSDeliveredPerSec)
		}
		// The relay's process is not the bench's: what it uses is
		// not the bench's to report.
		if r.RelayIdleKiBPerConn != 0 || r.RelayLiveKiBPerConn != 0 || r.RelayCPUPercent != 0 {
			t.Errorf("relay memory %.1f/%.1f KiB, CPU %.1f%% reported for a relay the bench did not start", r.RelayIdleKiBPerConn, r.RelayLiveKiBPerConn, r.RelayCPUPercent)
		}
	}
	tests := []struct {
		name  string
		args  []string
		check func(t *testing.T, r *bench.Report)
	}{
		// One worker per room: four to a room, on a fast machine, would
		// be a flood the leader refuses (game.PressureAt).
		{"grpc with a leader kill", []string{"--mode", "grpc", "--workers", "16", "--rooms", "16", "--kill-leader-at", "1s"},
			func(t *testing.T, r *bench.Report) {
				if r.API != "stream" || r.Nodes != 3 {
					t.Errorf("api %q, %d nodes; want stream, 3", r.API, r.Nodes)
				}
				if r.FailoverGapMS <= 0 || r.FailoverGapMS >= 2500 {
					t.Errorf("failover gap %.0f ms, want one within the run", r.FailoverGapMS)
				}
				for code := range r.ErrorCodes {
					if code != "Unavailable" {
						t.Errorf("errors %v: only guesses caught on the killed leader may fail", r.ErrorCodes)
					}
				}
				if len(r.CPU) < 3 {
					t.Errorf("CPU shares %+v: want the surviving nodes, the relays and the load generator", r.CPU)
				}
			}},
		{"ws", []string{"--mode", "ws", "--nodes", "1", "--clients", "40", "--rooms", "4", "--rate", "40"},
			func(t *testing.T, r *bench.Report) {
				if r.Errors != 0 {
					t.Errorf("%d errors: %v", r.Errors, r.ErrorCodes)
				}
				if d := r.DeliveryLatency; d == nil || d.Samples <= int(r.Committed) || d.P50 <= 0 {
					t.Errorf("delivery latency %+v: want a sample at every watching client", d)
				}
				if r.DeliveredPerSec <= 0 || r.RawNATSDeliveredPerSec <= 0 || r.RawNATSLatency == nil {
					t.Errorf("delivered %.0f/s, raw NATS %.0f/s: want both measured", r.DeliveredPerSec, r.RawNATSDeliveredPerSec)
				}
				if r.RelayIdleKiBPerConn <= 0 || r.RelayCPUPercent <= 0 {
					t.Errorf("relay memory %.1f KiB per connection, CPU %.1f%%: want both measured", r.RelayIdleKiBPerConn, r.RelayCPUPercent)
				}
			}},
		{"ws attached to a running system", attachedWS, checkAttachedWS},
		{"ws attached to the same system again (fresh tokens, its own players)", attachedWS, checkAttachedWS},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "report.json")
			args := append([]string{"bench", "--duration", "2500ms", "--warmup", "500ms", "--out", out}, tt.args...)
			if !slices.Contains(args, "--grpc") {
				onFreePorts(t, "hangman bench", func(base int) error {
					a := append(slices.Clone(args), "--base-port", strconv.Itoa(base), "--child-logs")
					if b, err := exec.Command(bin, a...).CombinedOutput(); err != nil {
						return fmt.Errorf("hangman %s: %w\n%s", strings.Join(a, " "), err, b)
					}
					return nil
				})
			} else if b, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
				// The attached system is not the bench's: its logs say
				// what it was doing.
				logs, _ := os.ReadFile(runningLogs)
				t.Fatalf("hangman %s: %v\n%s\nthe attached system's logs:\n%s", strings.Join(args, " "), err, b, logs)
			}
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			var r bench.Report
			if err := json.Unmarshal(b, &r); err != nil {
				t.Fatalf("report: %v", err)
			}
			if r.Committed == 0 || r.CommittedPerSec <= 0 || r.AckLatency.Samples == 0 || r.AckLatency.P50 <= 0 {
				t.Fatalf("report %s: want committed guesses and their latencies", b)
			}
			svg, err := os.ReadFile(strings.TrimSuffix(out, ".json") + ".svg")
			if err != nil || !strings.Contains(string(svg), "<polyline") {
				t.Fatalf("no latency plot beside the report: %v", err)
			}
			tt.check(t, &r)
		})
	}

	// A node of another system, as a second bench whose own nodes could
	// not take their ports would leave running, gossips to this system's
	// node: it is let in neither serf nor raft (the system gossips with a
	// key of its own), so the system keeps its one voter.
	t.Run("another system's node is kept out", func(t *testing.T) {
		host, grpcPort, err := net.SplitHostPort(running.GRPCAddrs[0])
		if err != nil {
			t.Fatal(err)
		}
		port, _ := strconv.Atoi(grpcPort)
		serf := net.JoinHostPort(host, strconv.Itoa(port+2)) // StartSystem's layout
		ports := harness.FreePorts(t, 6)
		addr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[i]) }
		intruder, err := proc.Start(proc.Spec{Name: "intruder", Path: bin, Args: []string{"node", "--id", "intruder", "--data-dir", t.TempDir(),
			"--grpc-addr", addr(0), "--raft-addr", addr(1), "--serf-addr", addr(2), "--nats-addr", addr(3), "--nats-cluster-addr", addr(4), "--http-addr", addr(5),
			"--join", serf, "--log-level", "warn"}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { intruder.Stop(5 * time.Second) })
		members := func() []*hangmanv1.Member {
			resp, err := running.Cluster[0].Members(t.Context(), &hangmanv1.MembersRequest{})
			if err != nil {
				t.Fatal(err)
			}
			return resp.GetMembers()
		}
		harness.EventuallyTrue(t, 30*time.Second, "the intruder refused, or let in", func() bool {
			logs, _ := os.ReadFile(runningLogs)
			return strings.Contains(string(logs), "remote state is not encrypted") || len(members()) > 1
		})
		if ms := members(); len(ms) != 1 {
			t.Fatalf("the system has %d members, want its own node alone: %v\nintruder: %s", len(ms), ms, intruder.Tail())
		}
	})
}

// TestBenchCompare runs an earlier report's configuration again, with the
// build that made it as the baseline, and prints the ratios.
func TestBenchCompare(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the hangman binary and starts systems of processes")
	}
	bin := harness.Binary(t)
	report := filepath.Join(t.TempDir(), "before.json")
	onFreePorts(t, "hangman bench", func(base int) error {
		a := []string{"bench", "--mode", "grpc", "--nodes", "1", "--relays", "0", "--workers", "8", "--rooms", "4", "--duration", "1500ms", "--warmup", "300ms", "--base-port", strconv.Itoa(base), "--out", report}
		if b, err := exec.Command(bin, a...).CombinedOutput(); err != nil {
			return fmt.Errorf("hangman %s: %w\n%s", strings.Join(a, " "), err, b)
		}
		return nil
	})
	out, err := exec.Command(bin, "bench", "--compare", report, "--baseline", bin, "--rounds", "1").Output()
	if err != nil {
		t.Fatalf("hangman bench --compare: %v\n%s", err, out)
	}
	for _, want := range []string{"current build against " + report, "committed guesses", "guess → ack p99", "ratio"} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("comparison lacks %q:\n%s", want, out)
		}
	}
}

// TestBenchFlags checks that flags which cannot go together are refused
// with a message that names them, before anything starts.
func TestBenchFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--grpc", "127.0.0.1:1", "--nodes", "3"}, "--nodes"},
		{[]string{"--grpc", "127.0.0.1:1", "--mode", "grpc", "--kill-leader-at", "1s", "--data-dir", "x"}, "--data-dir, --kill-leader-at"},
		{[]string{"--relay-urls", "http://127.0.0.1:1"}, "give its nodes with --grpc"},
		{[]string{"--grpc", "127.0.0.1:1", "--mode", "ws"}, "--relay-urls"},
		{[]string{"--grpc", "127.0.0.1:1", "--relay-urls", "127.0.0.1:8080"}, `"127.0.0.1:8080" is not a relay's`},
		{[]string{"--mode", "tcp"}, `--mode "tcp"`},
		{[]string{"--compare", "r.json", "--clients", "5"}, "--clients: with --compare the configuration is the report's"},
		{[]string{"--baseline", "/bin/true"}, "go with --compare"},
		{[]string{"--compare", "r.json", "--rounds", "0"}, "--rounds 0"},
		{[]string{"--compare", "r.json", "--baseline", "/nonexistent/hangman"}, "not an executable"},
		{[]string{"--compare", "/nonexistent/r.json"}, "--compare: read report"},
	}
	for _, tt := range tests {
		err := runBench(t.Context(), tt.args)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("hangman bench %s: %v, want an error naming %s", strings.Join(tt.args, " "), err, tt.want)
		}
	}
}

// onFreePorts runs start with base ports for a system of processes until it
// succeeds, or fails for a reason other than a port taken (refused before
// the start, or a node or relay exiting at once) four times. A system of
// this test may hold ports meanwhile (the one the bench attaches to): the
// bench refuses them rather than start a node beside it. The ports lie below the kernel's
// ephemeral range (32768 up), where the outgoing connections of the tests
// running beside this one take theirs, and above the ranges of e2e's
// systems and of the deploy test's compose projects (20000-24999).
func onFreePorts(t *testing.T, what string, start func(base int) error) {
	t.Helper()
	for try := 1; ; try++ {
		base := 25000 + 200*rand.IntN(35)
		err := start(base)
		if err == nil {
			return
		}
		taken := strings.Contains(err.Error(), harness.ErrExited.Error()) || strings.Contains(err.Error(), bench.ErrPortInUse.Error()+": another system")
		if try == 4 || !taken {
			t.Fatalf("%s: %v", what, err)
		}
		t.Logf("%s on base port %d: %v; trying other ports", what, base, err)
	}
}
