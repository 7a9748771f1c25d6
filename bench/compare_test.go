package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestCompareOrientsRatios: whatever the metric, a ratio below 1 is a
// regression, and it compares medians.
func TestCompareOrientsRatios(t *testing.T) {
	run := func(rate, p99 float64) *Report {
		return &Report{Mode: "grpc", Duration: 10, CommittedPerSec: rate, AckLatency: Latency{P50: p99 / 2, P99: p99}}
	}
	before := []*Report{run(1000, 20), run(900, 19), run(1100, 21)}
	now := []*Report{run(500, 40), run(400, 40), run(600, 40)}
	ratios := Compare(before, now)
	got := map[string]float64{}
	for _, r := range ratios {
		got[r.Metric.Name] = r.Ratio
	}
	if len(got) != 3 {
		t.Fatalf("compared %v, want the three metrics both sides have", got)
	}
	if got["committed guesses"] != 0.5 || got["guess → ack p99"] != 0.5 || got["guess → ack p50"] != 0.5 {
		t.Fatalf("ratios %v, want 0.5 each: half the rate, twice the latency", got)
	}
	var out bytes.Buffer
	WriteComparison(&out, "before.json", ratios)
	if strings.Count(out.String(), "← regression") != 3 {
		t.Fatalf("comparison does not flag the regressions:\n%s", out.String())
	}
	if better := Compare(now, before); better[0].Ratio != 2 {
		t.Fatalf("the other way round: %v, want 2", better[0].Ratio)
	}
}

func TestBenchArgsDropTheOutput(t *testing.T) {
	for _, tc := range []struct {
		r    Report
		want []string
	}{
		{Report{Args: []string{"--mode", "ws", "--out", "a.json", "--rate", "10"}}, []string{"--mode", "ws", "--rate", "10"}},
		{Report{Args: []string{"-out=a.json", "--mode", "grpc"}}, []string{"--mode", "grpc"}},
		// A report from before Args: its command line.
		{Report{Command: "hangman bench --mode grpc --workers 8 --out x/y.json"}, []string{"--mode", "grpc", "--workers", "8"}},
	} {
		if got := tc.r.BenchArgs(); !slices.Equal(got, tc.want) {
			t.Errorf("%v / %q: args %q, want %q", tc.r.Args, tc.r.Command, got, tc.want)
		}
	}
}

func TestLoadReportRefusesOtherJSON(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.json")
	if err := os.WriteFile(p, []byte(`{"hello":1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadReport(p); err == nil || !strings.Contains(err.Error(), "not a hangman bench report") {
		t.Fatalf("LoadReport: %v", err)
	}
	r := &Report{Mode: "grpc", CommittedPerSec: 5}
	if _, err := r.Save(p); err != nil {
		t.Fatal(err)
	}
	if got, err := LoadReport(p); err != nil || got.CommittedPerSec != 5 {
		t.Fatalf("LoadReport of a saved report: %+v, %v", got, err)
	}
}
