package bench

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSummariseTakesNearestRankPercentiles(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	var samples []time.Duration
	for i := 1000; i >= 1; i-- { // 1..1000 ms, unsorted
		samples = append(samples, ms(i))
	}
	tests := []struct {
		name    string
		samples []time.Duration
		want    Latency
	}{
		{"none", nil, Latency{}},
		{"one", []time.Duration{ms(7)}, Latency{Samples: 1, P50: 7, P90: 7, P99: 7, P999: 7, Max: 7}},
		{"thousand", samples, Latency{Samples: 1000, P50: 500, P90: 900, P99: 990, P999: 999, Max: 1000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := summarise(tt.samples)
			if len(tt.samples) > 0 && len(got.Curve) != len(CurveQuantiles) {
				t.Fatalf("curve has %d points, want %d", len(got.Curve), len(CurveQuantiles))
			}
			if len(got.Curve) > 0 && (got.Curve[0] > got.P50 || got.Curve[len(got.Curve)-1] != got.Max) {
				t.Fatalf("curve %v does not run from the minimum to the maximum", got.Curve)
			}
			got.Curve = nil
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("summarise = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestCPUSharesPerCommittedGuess(t *testing.T) {
	clock := cpuClock{sys: &System{nodes: []*member{{name: "n1"}, {name: "n2"}}, relays: []*member{{name: "r1"}}}, leader: 1}
	before := cpuReading{"n1 (follower)": time.Second, "n2 (leader)": 2 * time.Second, "relays": 0, "load generator": time.Second}
	after := cpuReading{"n1 (follower)": 2 * time.Second, "n2 (leader)": 4 * time.Second, "relays": 100 * time.Millisecond}
	got := clock.shares(before, after, 10*time.Second, 100_000)
	want := []CPUShare{
		{Process: "n1 (follower)", MicrosPerGuess: 10, Cores: 0.1},
		{Process: "n2 (leader)", MicrosPerGuess: 20, Cores: 0.2},
		{Process: "relays", MicrosPerGuess: 1, Cores: 0.01},
		// The load generator is missing from the second reading: left out.
	}
	if len(got) != len(want) {
		t.Fatalf("shares = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i].Process != want[i].Process || math.Abs(got[i].MicrosPerGuess-want[i].MicrosPerGuess) > 1e-9 || math.Abs(got[i].Cores-want[i].Cores) > 1e-9 {
			t.Fatalf("share %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if s := clock.shares(before, after, 10*time.Second, 0); s != nil {
		t.Fatalf("shares of a run that committed nothing = %+v, want none", s)
	}
}

// TestCPUOfAnAttachedSystem checks that a system the bench did not start
// is read for nothing but the load generator: its processes are not the
// bench's, and may be one process for all (hangman dev).
func TestCPUOfAnAttachedSystem(t *testing.T) {
	clock := cpuClock{sys: &System{GRPCAddrs: []string{"127.0.0.1:9001"}, RelayURLs: []string{"http://127.0.0.1:8080"}}, leader: -1}
	if got := clock.labels(); !slices.Equal(got, []string{"load generator"}) {
		t.Errorf("labels = %v, want only the load generator", got)
	}
	if got := clock.read(); len(got) != 1 {
		t.Errorf("reading = %v, want only the load generator's CPU", got)
	}
}

func TestReportSavesJSONAndPlotAndSummary(t *testing.T) {
	lat := summarise([]time.Duration{time.Millisecond, 2 * time.Millisecond, 40 * time.Millisecond})
	rep := &Report{
		Mode: "grpc", Duration: 10, Nodes: 3, Relays: 2, Rooms: 128, Workers: 512, API: "stream",
		Committed: 100_000, CommittedPerSec: 10_000, Errors: 2, ErrorCodes: map[string]int64{"Unavailable": 2},
		AckLatency: lat, FailoverGapMS: 600, Command: "hangman bench --mode grpc",
		CPU: []CPUShare{{Process: "n1 (leader)", MicrosPerGuess: 60, Cores: 0.6}, {Process: "load generator", MicrosPerGuess: 40, Cores: 0.4}},
	}
	path := filepath.Join(t.TempDir(), "run.json")
	svgPath, err := rep.Save(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("report is not JSON: %v", err)
	}
	if !reflect.DeepEqual(&back, rep) {
		t.Fatalf("report does not round-trip:\n got %+v\nwant %+v", back, *rep)
	}
	svg, err := os.ReadFile(svgPath)
	if err != nil {
		t.Fatal(err)
	}
	if svgPath != strings.TrimSuffix(path, ".json")+".svg" || !strings.HasPrefix(string(svg), "<svg") || !strings.Contains(string(svg), "<polyline") {
		t.Fatalf("plot %s is not an SVG latency curve:\n%s", svgPath, svg)
	}
	var text strings.Builder
	rep.WriteText(&text)
	for _, want := range []string{"10000 /s", "Unavailable 2", "p99", "n1 (leader)", "100.0 µs", "failover gap", "600 ms"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, text.String())
		}
	}
}
