package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// Comparing runs. On a machine the system shares with its load generator
// (and with whatever else runs there), two runs an hour apart differ by
// more than most changes do; so a comparison runs the earlier build's
// configuration again, against the current build, in one sitting, the
// runs of the two interleaved, and reports ratios oriented so that a
// regression is always a ratio below 1.

// Metric is one figure of a report that comparisons follow.
type Metric struct {
	Name string
	Unit string
	// Higher says more is better (a rate); otherwise less is (a latency,
	// a cost).
	Higher bool
	// Of reads the figure from a report; 0 means the report has none.
	Of func(*Report) float64
}

// Metrics are the figures compared, in the order printed.
var Metrics = []Metric{
	{"committed guesses", "/s", true, func(r *Report) float64 { return r.CommittedPerSec }},
	{"guess → ack p50", "ms", false, func(r *Report) float64 { return r.AckLatency.P50 }},
	{"guess → ack p99", "ms", false, func(r *Report) float64 { return r.AckLatency.P99 }},
	{"guess → every browser p50", "ms", false, func(r *Report) float64 { return latOf(r.DeliveryLatency).P50 }},
	{"guess → every browser p99", "ms", false, func(r *Report) float64 { return latOf(r.DeliveryLatency).P99 }},
	{"guesses delivered to browsers", "/s", true, func(r *Report) float64 {
		if r.Duration <= 0 {
			return 0
		}
		return float64(latOf(r.DeliveryLatency).Samples) / r.Duration
	}},
	{"relay CPU per guess delivered", "µs", false, func(r *Report) float64 {
		if r.Duration <= 0 || latOf(r.DeliveryLatency).Samples == 0 {
			return 0
		}
		return r.RelayCPUPercent / 100 * r.Duration * 1e6 / float64(latOf(r.DeliveryLatency).Samples)
	}},
	{"relay memory per idle connection", "KiB", false, func(r *Report) float64 { return r.RelayIdleKiBPerConn }},
	{"relay live heap+stack per connection", "KiB", false, func(r *Report) float64 { return r.RelayLiveKiBPerConn }},
	{"CPU per committed guess, all processes", "µs", false, func(r *Report) float64 {
		var us float64
		for _, c := range r.CPU {
			us += c.MicrosPerGuess
		}
		return us
	}},
	{"failover gap", "ms", false, func(r *Report) float64 { return r.FailoverGapMS }},
}

func latOf(l *Latency) Latency {
	if l == nil {
		return Latency{}
	}
	return *l
}

// Ratio compares one metric over two sets of runs.
type Ratio struct {
	Metric Metric
	// Base and New are the medians of the earlier and the current runs.
	Base, New float64
	// Ratio is New/Base for a rate and Base/New for a cost: below 1 is
	// a regression.
	Ratio float64
	// Spread is how far the runs of each side ranged, as the largest
	// (max-min)/median of the two: a ratio within it is noise.
	Spread float64
}

// Compare computes the ratio of every metric both sets of runs report.
func Compare(base, cur []*Report) []Ratio {
	var out []Ratio
	for _, m := range Metrics {
		b, bs, okB := median(base, m.Of)
		n, ns, okN := median(cur, m.Of)
		if !okB || !okN {
			continue
		}
		r := Ratio{Metric: m, Base: b, New: n, Spread: max(bs, ns)}
		if m.Higher {
			r.Ratio = n / b
		} else {
			r.Ratio = b / n
		}
		out = append(out, r)
	}
	return out
}

// median is the median of a metric over runs, with its spread; false if
// any run lacks it.
func median(runs []*Report, of func(*Report) float64) (med, spread float64, ok bool) {
	if len(runs) == 0 {
		return 0, 0, false
	}
	vs := make([]float64, len(runs))
	for i, r := range runs {
		if vs[i] = of(r); vs[i] <= 0 {
			return 0, 0, false
		}
	}
	slices.Sort(vs)
	med = vs[len(vs)/2]
	if len(vs)%2 == 0 {
		med = (vs[len(vs)/2-1] + vs[len(vs)/2]) / 2
	}
	return med, (vs[len(vs)-1] - vs[0]) / med, true
}

// WriteComparison prints the ratios, the worst first.
func WriteComparison(w io.Writer, baseName string, ratios []Ratio) {
	sorted := slices.Clone(ratios)
	slices.SortStableFunc(sorted, func(a, b Ratio) int {
		switch {
		case a.Ratio < b.Ratio:
			return -1
		case a.Ratio > b.Ratio:
			return 1
		}
		return 0
	})
	fmt.Fprintf(w, "current build against %s (ratio < 1: a regression; spread: how far runs of one side ranged)\n", baseName)
	fmt.Fprintf(w, "  %-40s %12s %12s %7s %8s\n", "", "before", "now", "ratio", "spread")
	for _, r := range sorted {
		flag := ""
		if r.Ratio < 1-max(r.Spread, 0.05) {
			flag = "  ← regression"
		}
		fmt.Fprintf(w, "  %-40s %12s %12s %7.2f %7.0f%%%s\n", r.Metric.Name, figure(r.Base, r.Metric.Unit), figure(r.New, r.Metric.Unit), r.Ratio, r.Spread*100, flag)
	}
}

func figure(v float64, unit string) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f %s", v, unit)
	case v >= 1:
		return fmt.Sprintf("%.2f %s", v, unit)
	}
	return fmt.Sprintf("%.3f %s", v, unit)
}

// LoadReport reads a report written by Report.Save.
func LoadReport(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read report: %w", err)
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("report %s: %w", path, err)
	}
	if r.Mode == "" {
		return nil, fmt.Errorf("report %s: not a hangman bench report (no mode)", path)
	}
	return &r, nil
}

// BenchArgs are the `hangman bench` arguments a report was made with,
// without --out (and its value): what runs its configuration again.
func (r *Report) BenchArgs() []string {
	args := r.Args
	if args == nil {
		// Reports from before Args: the command line, which holds no
		// quoted arguments (flags, numbers, addresses, paths).
		args = strings.Fields(strings.TrimPrefix(r.Command, "hangman bench"))
	}
	var out []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		name := strings.TrimLeft(a, "-")
		switch {
		case name == "out":
			i++ // its value
			continue
		case strings.HasPrefix(name, "out="):
			continue
		}
		out = append(out, a)
	}
	return out
}
