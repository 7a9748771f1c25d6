package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Latency summarises a latency distribution in milliseconds.
type Latency struct {
	Samples int     `json:"samples"`
	P50     float64 `json:"p50_ms"`
	P90     float64 `json:"p90_ms"`
	P99     float64 `json:"p99_ms"`
	P999    float64 `json:"p999_ms"`
	Max     float64 `json:"max_ms"`
	// Curve is the latency at the quantiles of CurveQuantiles, for plots.
	Curve []float64 `json:"curve_ms,omitempty"`
}

// CurveQuantiles are the quantiles Latency.Curve is sampled at: evenly on a
// "number of nines" axis, where tail latency lives.
var CurveQuantiles = func() []float64 {
	var qs []float64
	for x := 0.0; x <= 4.0001; x += 0.05 {
		qs = append(qs, 1-math.Pow(10, -x))
	}
	return qs
}()

func summarise(samples []time.Duration) Latency {
	if len(samples) == 0 {
		return Latency{}
	}
	slices.Sort(samples)
	at := func(q float64) float64 {
		i := int(math.Ceil(q*float64(len(samples)))) - 1
		i = max(0, min(i, len(samples)-1))
		return float64(samples[i]) / float64(time.Millisecond)
	}
	l := Latency{Samples: len(samples), P50: at(0.5), P90: at(0.9), P99: at(0.99), P999: at(0.999), Max: at(1)}
	for _, q := range CurveQuantiles {
		l.Curve = append(l.Curve, at(q))
	}
	return l
}

// Report is the outcome of one bench run.
type Report struct {
	Mode     string    `json:"mode"`
	Started  time.Time `json:"started"`
	Duration float64   `json:"duration_s"`
	Nodes    int       `json:"nodes"`
	Relays   int       `json:"relays"`
	Clients  int       `json:"clients,omitempty"`
	Rooms    int       `json:"rooms"`
	Workers  int       `json:"workers,omitempty"`
	// API is how grpc-mode workers send guesses: "stream" (one Guesses
	// stream per node, as relays do) or "unary" (a Guess call each).
	API string `json:"api,omitempty"`
	// TargetRate is the guesses/s asked for (0: as fast as possible).
	TargetRate float64 `json:"target_guesses_per_s"`
	// Attached says the system was already running (bench.Attach): its
	// processes are not the bench's, so the report has no node or relay
	// CPU and memory, and no failover gap.
	Attached bool `json:"attached,omitempty"`

	Committed       int64   `json:"committed_guesses"`
	CommittedPerSec float64 `json:"committed_guesses_per_s"`
	Errors          int64   `json:"errors"`
	// ErrorCodes breaks Errors down by gRPC status or relay error code.
	ErrorCodes map[string]int64 `json:"error_codes,omitempty"`
	// AckLatency is guess sent → acknowledgement received by the guesser.
	AckLatency Latency `json:"ack_latency"`
	// DeliveryLatency is guess sent → its event received, at every
	// watching client (ws mode).
	DeliveryLatency *Latency `json:"delivery_latency,omitempty"`
	// DeliveredPerSec counts frames received by all websocket clients
	// (since relays send a change's state and event as one frame, about
	// one per guess per watcher).
	DeliveredPerSec float64 `json:"ws_delivered_per_s,omitempty"`
	// Disconnects counts the websocket clients whose connection the
	// system closed during the run (ws mode).
	Disconnects int `json:"ws_disconnects"`
	// RawNATSDeliveredPerSec is the same load's messages received by raw
	// NATS subscribers (one per websocket client), for comparison.
	RawNATSDeliveredPerSec float64  `json:"raw_nats_delivered_per_s,omitempty"`
	RawNATSLatency         *Latency `json:"raw_nats_delivery_latency,omitempty"`

	RelayCPUPercent     float64 `json:"relay_cpu_percent,omitempty"`
	RelayIdleKiBPerConn float64 `json:"relay_idle_kib_per_conn,omitempty"`
	// RelayLiveKiBPerConn is the growth of the relays' Go heap and stacks
	// in use per connection: live memory, after a collection where the
	// relays serve a profiler to ask one of (relayLiveBytes).
	RelayLiveKiBPerConn float64 `json:"relay_live_kib_per_conn,omitempty"`
	// RelayStackKiBPerConn is the relays' goroutine stacks in use, all of
	// them, per connection: the part of the live memory that the
	// goroutines each websocket runs on hold.
	RelayStackKiBPerConn float64 `json:"relay_stack_kib_per_conn,omitempty"`
	RelayRSSMiB          float64 `json:"relay_rss_mib,omitempty"`

	// CPU is where the machine's CPU went during the measured run (grpc
	// mode): every process of the system, and the load generator.
	CPU []CPUShare `json:"cpu,omitempty"`

	// FailoverGap is kill of the leader → first acknowledgement of a guess
	// sent after it, when a kill was asked for.
	FailoverGapMS float64 `json:"failover_gap_ms,omitempty"`
	Command       string  `json:"command"`
	// Args are the command's arguments, to run its configuration again
	// (hangman bench --compare).
	Args []string `json:"args,omitempty"`
}

// CPUShare is one process's CPU time over a measured run.
type CPUShare struct {
	Process string `json:"process"`
	// MicrosPerGuess is its CPU time per committed guess, in µs.
	MicrosPerGuess float64 `json:"cpu_us_per_guess"`
	// Cores is its CPU time over the run's wall time.
	Cores float64 `json:"cores"`
}

// WriteText writes the human summary.
func (r *Report) WriteText(w io.Writer) {
	fmt.Fprintf(w, "hangman bench (%s mode): %d nodes, %d relays, %d rooms", r.Mode, r.Nodes, r.Relays, r.Rooms)
	if r.Clients > 0 {
		fmt.Fprintf(w, ", %d websocket clients", r.Clients)
	}
	if r.Workers > 0 {
		fmt.Fprintf(w, ", %d gRPC workers (%s)", r.Workers, r.API)
	}
	fmt.Fprintf(w, ", %.0fs\n  %s\n", r.Duration, r.Command)
	if r.Attached {
		fmt.Fprintf(w, "  (a running system: its processes are not the bench's, so only the load generator's CPU is reported)\n")
	}
	fmt.Fprintln(w)
	target := "as fast as possible"
	if r.TargetRate > 0 {
		target = fmt.Sprintf("target %.0f/s", r.TargetRate)
	}
	fmt.Fprintf(w, "  committed guesses     %10.0f /s   (%d in all, %d errors; %s)\n", r.CommittedPerSec, r.Committed, r.Errors, target)
	if len(r.ErrorCodes) > 0 {
		codes := make([]string, 0, len(r.ErrorCodes))
		for c, n := range r.ErrorCodes {
			codes = append(codes, fmt.Sprintf("%s %d", c, n))
		}
		slices.Sort(codes)
		fmt.Fprintf(w, "  errors by code        %s\n", strings.Join(codes, ", "))
	}
	lat := func(name string, l *Latency) {
		fmt.Fprintf(w, "  %-21s p50 %7.2f ms  p90 %7.2f ms  p99 %7.2f ms  p99.9 %7.2f ms  (%d samples)\n", name, l.P50, l.P90, l.P99, l.P999, l.Samples)
	}
	lat("guess → ack", &r.AckLatency)
	if r.DeliveryLatency != nil {
		lat("guess → every browser", r.DeliveryLatency)
	}
	if r.DeliveredPerSec > 0 {
		fmt.Fprintf(w, "  delivered (websocket) %10.0f msgs/s   (%d websockets closed by the system during the run)\n", r.DeliveredPerSec, r.Disconnects)
	}
	if r.RawNATSDeliveredPerSec > 0 {
		fmt.Fprintf(w, "  delivered (raw NATS)  %10.0f msgs/s   relay/raw = %.2f\n", r.RawNATSDeliveredPerSec, r.DeliveredPerSec/r.RawNATSDeliveredPerSec)
	}
	if r.RawNATSLatency != nil {
		lat("guess → raw NATS sub", r.RawNATSLatency)
	}
	if r.RelayIdleKiBPerConn > 0 {
		fmt.Fprintf(w, "  relay memory          %10.1f KiB per idle connection resident, %.1f KiB live heap+stack (%.1f KiB stacks; %.0f MiB resident in all)\n", r.RelayIdleKiBPerConn, r.RelayLiveKiBPerConn, r.RelayStackKiBPerConn, r.RelayRSSMiB)
	}
	if r.RelayCPUPercent > 0 {
		fmt.Fprintf(w, "  relay CPU             %10.1f %% of one core, all relays, under load\n", r.RelayCPUPercent)
	}
	if len(r.CPU) > 0 {
		var us, cores float64
		fmt.Fprintf(w, "  CPU per guess\n")
		for _, c := range r.CPU {
			fmt.Fprintf(w, "    %-24s %8.1f µs  (%.2f cores)\n", c.Process, c.MicrosPerGuess, c.Cores)
			us, cores = us+c.MicrosPerGuess, cores+c.Cores
		}
		if len(r.CPU) > 1 {
			fmt.Fprintf(w, "    %-24s %8.1f µs  (%.2f cores of the machine's %d)\n", "in all", us, cores, runtime.NumCPU())
		}
	}
	if r.FailoverGapMS > 0 {
		fmt.Fprintf(w, "  failover gap          %10.0f ms (leader killed → next guess acknowledged)\n", r.FailoverGapMS)
	}
}

// Save writes the report as JSON to path and the latency plot as SVG next
// to it (same name, .svg).
func (r *Report) Save(path string) (svgPath string, err error) {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", fmt.Errorf("encode report: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return "", fmt.Errorf("write report: %w", err)
	}
	svgPath = strings.TrimSuffix(path, ".json") + ".svg"
	if err := os.WriteFile(svgPath, []byte(r.plot()), 0o644); err != nil {
		return "", fmt.Errorf("write plot: %w", err)
	}
	return svgPath, nil
}

// plot draws the latency curves (ms against quantile, on a "nines" axis).
func (r *Report) plot() string {
	type series struct {
		name  string
		color string
		l     *Latency
	}
	all := []series{{"guess → ack", "#1f77b4", &r.AckLatency}}
	if r.DeliveryLatency != nil {
		all = append(all, series{"guess → every browser (websocket)", "#d62728", r.DeliveryLatency})
	}
	if r.RawNATSLatency != nil {
		all = append(all, series{"guess → raw NATS subscriber", "#2ca02c", r.RawNATSLatency})
	}
	maxMS := 1.0
	for _, s := range all {
		for _, v := range s.l.Curve {
			maxMS = max(maxMS, v)
		}
	}
	const w, h, left, bottom, top, right = 720.0, 420.0, 60.0, 50.0, 40.0, 20.0
	x := func(i int) float64 { return left + (w-left-right)*float64(i)/float64(len(CurveQuantiles)-1) }
	y := func(ms float64) float64 { return h - bottom - (h-bottom-top)*ms/maxMS }
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="12">`+"\n", w, h)
	fmt.Fprintf(&sb, `<rect width="100%%" height="100%%" fill="white"/><text x="%.0f" y="22" font-size="15">hangman bench: latency by percentile (%s mode, %.0f guesses/s committed)</text>`+"\n", left, r.Mode, r.CommittedPerSec)
	fmt.Fprintf(&sb, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="black"/><line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="black"/>`+"\n",
		left, h-bottom, w-right, h-bottom, left, top, left, h-bottom)
	for _, tick := range []struct {
		label string
		i     int
	}{{"0%", 0}, {"90%", 20}, {"99%", 40}, {"99.9%", 60}, {"99.99%", 80}} {
		fmt.Fprintf(&sb, `<text x="%.0f" y="%.0f" text-anchor="middle">%s</text>`+"\n", x(tick.i), h-bottom+18, tick.label)
	}
	for k := 0; k <= 4; k++ {
		ms := maxMS * float64(k) / 4
		fmt.Fprintf(&sb, `<text x="%.0f" y="%.0f" text-anchor="end">%.1f ms</text><line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="#ddd"/>`+"\n",
			left-6, y(ms)+4, ms, left, y(ms), w-right, y(ms))
	}
	for k, s := range all {
		var pts []string
		for i, v := range s.l.Curve {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(i), y(v)))
		}
		fmt.Fprintf(&sb, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", s.color, strings.Join(pts, " "))
		fmt.Fprintf(&sb, `<text x="%.0f" y="%.0f" fill="%s">%s (p99 %.2f ms)</text>`+"\n", left+10, top+16+16*float64(k), s.color, s.name, s.l.P99)
	}
	fmt.Fprintf(&sb, `<text x="%.0f" y="%.0f" text-anchor="middle">percentile</text></svg>`+"\n", (w+left)/2, h-12)
	return sb.String()
}
