package chaos

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/anishathalye/porcupine"

	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
)

// Report is what a run did and found.
type Report struct {
	Config Config
	// Faults counts the faults injected by kind.
	Faults map[FaultKind]int

	Guesses, Reads, Acknowledged, Duplicate, UnknownIndex, Pending, Refused int
	// ForeignIndex counts non-duplicate replies whose index names a no-op
	// retry entry rather than the guess's application.
	ForeignIndex                  int
	Attempts, Retries, ReadErrors int64
	Rooms                         int
	// Lost counts acknowledged guesses missing from the final state;
	// Duplicates counts guess events no single request explains (a request
	// applied twice). Both must be 0.
	Lost, Duplicates int
	// Mismatched counts events at an acknowledged index that show another
	// guess than the one acknowledged there.
	Mismatched int
	// Messages observed, order violations, same-seq conflicts, gaps after
	// healing, and rooms whose event chain was seen whole.
	Messages, OrderViolations, Conflicts, GapsAfterHeal, RepeatedStates int
	// LateNATS counts messages a node's NATS subscriber got with a seq
	// below one it had already seen (republished after it missed them);
	// consumers drop them by seq, as DESIGN.md says. NATSBehind counts
	// rooms whose final state a subscriber never got.
	LateNATS, LateNATSStates, NATSBehind int
	Notes                                []string
	CompleteChains                       int
	Converged                            bool
	Verdict                              string
	CheckTook, Elapsed                   time.Duration
	Examples                             []string

	mu       sync.Mutex
	Failures []string

	model   porcupine.Model
	info    porcupine.LinearizationInfo
	history []porcupine.Operation
}

// note records something worth knowing that is no failure.
func (r *Report) note(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

func (r *Report) fail(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	msg := fmt.Sprintf(format, args...)
	if r.Config.Log != nil {
		r.Config.Log.Error("check failed", "failure", msg)
	}
	r.Failures = append(r.Failures, msg)
}

// collect runs the loss, duplicate and ordering checks.
func (r *Report) collect(w *Workload, obs *Observers, finals map[string]*hangmanv1.RoomState) {
	r.Attempts, r.Retries, r.ReadErrors = w.attempts.Load(), w.retries.Load(), w.readErrors.Load()
	r.Reads = int(w.reads.Load())
	r.Rooms = len(finals)
	byRoom := map[string][]*guessRecord{}
	for _, recs := range w.Guesses() {
		for _, g := range recs {
			byRoom[g.Room] = append(byRoom[g.Room], g)
			r.Guesses++
			switch {
			case g.Unknown:
				r.Pending++
			case g.Err != "":
				r.Refused++
			default:
				r.Acknowledged++
				if g.Duplicate {
					r.Duplicate++
				}
				if g.Index == 0 {
					r.UnknownIndex++
				}
				if g.ForeignIndex {
					r.ForeignIndex++
				}
			}
		}
	}
	example := func(format string, args ...any) {
		if len(r.Examples) < 20 {
			r.Examples = append(r.Examples, fmt.Sprintf(format, args...))
		}
	}

	// Guarantee 1: every acknowledged guess is in the final state.
	for room, recs := range byRoom {
		st := finals[room]
		guessed := strings.Join(st.GetGuessed(), "")
		for _, g := range recs {
			if g.Unknown || g.Err != "" {
				continue
			}
			if !strings.Contains(guessed, g.Letter) || g.Index > st.GetSeq() {
				r.Lost++
				example("lost: %s guessed %s in %s (%s, index %d) but the final state has %q at seq %d", g.Player, g.Letter, room, g.RequestID, g.Index, guessed, st.GetSeq())
			}
		}
	}

	// Guarantee 2: attribute every observed guess event to one request.
	for room, recs := range byRoom {
		byIndex := map[uint64]*guessRecord{}
		for _, g := range recs {
			if g.Index != 0 {
				byIndex[g.Index] = g
			}
		}
		used := map[*guessRecord]bool{}
		events := obs.Events(room)
		for _, e := range events {
			if e.EventKind != "guess" {
				continue
			}
			if g, ok := byIndex[e.Seq]; ok {
				used[g] = true
				if g.Player != e.Player || g.Letter != e.Letter || g.Outcome != e.Outcome {
					r.Mismatched++
					example("mismatch: event %s seq %d is %s/%s/%s, the guess acknowledged at that index is %s/%s/%s (%s)",
						room, e.Seq, e.Player, e.Letter, e.Outcome, g.Player, g.Letter, g.Outcome, g.RequestID)
				}
				continue
			}
			// An application whose index the client does not know: a
			// duplicate reply, a node-side retry, or a pending guess.
			i := slices.IndexFunc(recs, func(g *guessRecord) bool {
				return !used[g] && g.Index == 0 && g.Err == "" && g.Player == e.Player && g.Letter == e.Letter &&
					(g.Unknown || g.Outcome == e.Outcome)
			})
			if i < 0 {
				r.Duplicates++
				example("duplicate: event %s seq %d (%s guessed %s, %s) is explained by no request not already applied", room, e.Seq, e.Player, e.Letter, e.Outcome)
				continue
			}
			used[recs[i]] = true
		}
		if chainComplete(events, finals[room].GetSeq()) {
			r.CompleteChains++
		}
	}

	obs.mu.Lock()
	r.Messages, r.OrderViolations, r.Conflicts, r.GapsAfterHeal, r.LateNATS = obs.received, obs.orderViolations, obs.conflicts, obs.gapsAfterHeal, obs.lateNATS
	r.RepeatedStates, r.LateNATSStates = obs.repeatedStates, obs.lateNATSStates
	r.Examples = append(r.Examples, obs.examples...)
	obs.mu.Unlock()

	if r.Lost > 0 {
		r.fail("%d acknowledged guesses lost", r.Lost)
	}
	if r.Duplicates > 0 {
		r.fail("%d guesses applied twice", r.Duplicates)
	}
	if r.Mismatched > 0 {
		r.fail("%d events differ from the guess acknowledged at their index", r.Mismatched)
	}
	if r.OrderViolations > 0 {
		r.fail("%d messages out of seq order on a subscriber or websocket", r.OrderViolations)
	}
	if r.RepeatedStates > 0 {
		r.fail("%d states sent twice on one websocket (relay/PROTOCOL.md: never the same state twice)", r.RepeatedStates)
	}
	if r.Conflicts > 0 {
		r.fail("%d messages with an already seen seq but different contents", r.Conflicts)
	}
	if r.GapsAfterHeal > 0 {
		r.fail("%d event gaps (prev != last seq) after the faults healed", r.GapsAfterHeal)
	}
}

// chainComplete reports whether events link by prev from the room's
// creation up to seq.
func chainComplete(events []seenMsg, seq uint64) bool {
	bySeq := map[uint64]seenMsg{}
	for _, e := range events {
		bySeq[e.Seq] = e
	}
	for seq != 0 {
		e, ok := bySeq[seq]
		if !ok {
			return false
		}
		seq = e.Prev
	}
	return true
}

// Summary renders the run as a table.
func (r *Report) Summary() string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	total := 0
	for _, k := range AllFaults {
		total += r.Faults[k]
	}
	fmt.Fprintf(tw, "chaos run\t%d nodes, %d relays, faults for %v, %v in all\n", r.Config.Nodes, r.Config.Relays, r.Config.Duration, r.Elapsed.Round(time.Second))
	fmt.Fprintf(tw, "fault mechanism\tnetwork namespaces + veth + iptables (Docker networks, TCP proxy: not used)\n")
	fmt.Fprintf(tw, "faults injected\t%d\n", total)
	for _, k := range AllFaults {
		fmt.Fprintf(tw, "  %s\t%d\t%s\n", k, r.Faults[k], faultHelp[k])
	}
	fmt.Fprintf(tw, "operations\t%d (%d guesses, %d linearizable reads; %d guess attempts, %d retries; %d reads failed)\n",
		r.Guesses+r.Reads, r.Guesses, r.Reads, r.Attempts, r.Retries, r.ReadErrors)
	fmt.Fprintf(tw, "rooms\t%d\n", r.Rooms)
	fmt.Fprintf(tw, "acknowledged\t%d (%d duplicate replies to retries; %d without a provable index, of which %d non-duplicate replies whose index is a no-op retry entry)\n",
		r.Acknowledged, r.Duplicate, r.UnknownIndex, r.ForeignIndex)
	fmt.Fprintf(tw, "pending (outcome unknown)\t%d\n", r.Pending)
	fmt.Fprintf(tw, "refused\t%d\n", r.Refused)
	fmt.Fprintf(tw, "lost (must be 0)\t%d\n", r.Lost)
	fmt.Fprintf(tw, "duplicates (must be 0)\t%d\n", r.Duplicates)
	fmt.Fprintf(tw, "mismatched events\t%d\n", r.Mismatched)
	fmt.Fprintf(tw, "messages observed\t%d (event chain seen whole in %d/%d rooms)\n", r.Messages, r.CompleteChains, r.Rooms)
	fmt.Fprintf(tw, "seq order violations\t%d\n", r.OrderViolations)
	fmt.Fprintf(tw, "late NATS redeliveries\t%d (older seq after a newer one, dropped by seq; %d of them states; %d rooms' final state missed by a node's subscriber)\n",
		r.LateNATS, r.LateNATSStates, r.NATSBehind)
	fmt.Fprintf(tw, "states repeated on a websocket\t%d\n", r.RepeatedStates)
	fmt.Fprintf(tw, "same-seq conflicts\t%d\n", r.Conflicts)
	fmt.Fprintf(tw, "gaps after heal\t%d\n", r.GapsAfterHeal)
	fmt.Fprintf(tw, "relays converged in 2s\t%t\n", r.Converged)
	fmt.Fprintf(tw, "checker verdict\t%s (porcupine, %d operations, %v)\n", r.Verdict, len(r.history), r.CheckTook.Round(time.Millisecond))
	verdict := "PASS"
	if len(r.Failures) > 0 {
		verdict = fmt.Sprintf("FAIL (%d)", len(r.Failures))
	}
	fmt.Fprintf(tw, "result\t%s\n", verdict)
	_ = tw.Flush()
	for _, f := range r.Failures {
		fmt.Fprintf(&b, "  failure: %s\n", f)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "  note: %s\n", n)
	}
	for _, e := range r.Examples {
		fmt.Fprintf(&b, "  e.g. %s\n", e)
	}
	return b.String()
}

// historyFile is the JSON shape of a saved history.
type historyFile struct {
	Failures   []string         `json:"failures"`
	Operations []historyOp      `json:"operations"`
	Faults     map[string]int   `json:"faults"`
	Config     map[string]any   `json:"config"`
	Extra      map[string]int64 `json:"counters"`
}

type historyOp struct {
	Client int    `json:"client"`
	Input  Input  `json:"input"`
	Output Output `json:"output"`
	Call   int64  `json:"call"`
	Return int64  `json:"return"`
}

// SaveSummary writes the summary table under dir and returns its path, so
// that a passing run leaves its numbers too.
func (r *Report) SaveSummary(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("artifacts dir: %w", err)
	}
	path := filepath.Join(dir, "chaos-"+time.Now().UTC().Format("20060102-150405")+"-summary.txt")
	if err := os.WriteFile(path, []byte(r.Summary()), 0o644); err != nil {
		return "", fmt.Errorf("write summary: %w", err)
	}
	return path, nil
}

// SaveArtifacts writes the history (JSON), porcupine's visualization (HTML)
// and the processes' logs under dir, and returns the paths written.
func (r *Report) SaveArtifacts(dir, logsDir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("artifacts dir: %w", err)
	}
	stamp := time.Now().UTC().Format("20060102-150405")
	base := filepath.Join(dir, "chaos-"+stamp)
	var paths []string

	hf := historyFile{Failures: r.Failures, Faults: map[string]int{}, Extra: map[string]int64{"attempts": r.Attempts, "retries": r.Retries},
		Config: map[string]any{"nodes": r.Config.Nodes, "relays": r.Config.Relays, "duration": r.Config.Duration.String(), "seed": r.Config.Seed}}
	for k, v := range r.Faults {
		hf.Faults[string(k)] = v
	}
	for _, op := range r.history {
		hf.Operations = append(hf.Operations, historyOp{Client: op.ClientId, Input: op.Input.(Input), Output: op.Output.(Output), Call: op.Call, Return: op.Return})
	}
	data, err := json.MarshalIndent(hf, "", " ")
	if err != nil {
		return nil, fmt.Errorf("encode history: %w", err)
	}
	if err := os.WriteFile(base+"-history.json", data, 0o644); err != nil {
		return nil, fmt.Errorf("write history: %w", err)
	}
	paths = append(paths, base+"-history.json")
	if r.model.Step != nil {
		if err := porcupine.VisualizePath(r.model, r.info, base+"-porcupine.html"); err != nil {
			return paths, fmt.Errorf("write visualization: %w", err)
		}
		paths = append(paths, base+"-porcupine.html")
	}
	if err := os.WriteFile(base+"-summary.txt", []byte(r.Summary()), 0o644); err != nil {
		return paths, fmt.Errorf("write summary: %w", err)
	}
	paths = append(paths, base+"-summary.txt")
	if logsDir != "" {
		logs, _ := filepath.Glob(filepath.Join(logsDir, "*.log"))
		if len(logs) > 0 {
			dst := base + "-logs"
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return paths, fmt.Errorf("logs dir: %w", err)
			}
			for _, l := range logs {
				b, err := os.ReadFile(l)
				if err != nil {
					return paths, fmt.Errorf("read log: %w", err)
				}
				if err := os.WriteFile(filepath.Join(dst, filepath.Base(l)), b, 0o644); err != nil {
					return paths, fmt.Errorf("copy log: %w", err)
				}
			}
			paths = append(paths, dst)
		}
	}
	return paths, nil
}
