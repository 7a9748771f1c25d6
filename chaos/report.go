package chaos

import (
	"context"
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
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
)

// Report is what a run did and found.
type Report struct {
	Config Config
	// Faults counts the faults injected by kind; Did lists what each
	// injection did, FaultFailures what each kind's expectation missed.
	Faults        map[FaultKind]int
	Did           []string
	FaultFailures map[FaultKind][]string

	// Writes by kind, and how they ended.
	Creates, Joins, Guesses, NewRounds, Rechecks            int
	Reads                                                   int
	Acknowledged, Duplicate, UnknownIndex, Pending, Refused int
	// RefusedBy counts definite refusals by the rule they cite.
	RefusedBy map[refusal]int
	// ForeignIndex counts non-duplicate replies whose index names a no-op
	// retry entry rather than the guess's application.
	ForeignIndex                  int
	Attempts, Retries, ReadErrors int64
	RechecksDropped, RechecksLate int64
	Rooms                         int
	// Lost counts acknowledged writes missing from the final state;
	// Duplicates counts events no single request explains (a request
	// applied twice). Both must be 0.
	Lost, Duplicates int
	// RefusedThenApplied counts request ids refused with a definite error
	// that took effect anyway: applied on a recheck, an observed event
	// only they explain, or a final state only they explain (a seat). It
	// must be 0 (DESIGN.md guarantee 2).
	RefusedThenApplied int
	// RefusalChanged counts rechecks refused by another rule than the
	// first refusal: a retry must get the same answer.
	RefusalChanged int
	// Mismatched counts events at an acknowledged index that show another
	// guess than the one acknowledged there.
	Mismatched int
	// DivergentReplicas counts rooms whose state differs between nodes
	// once every node has applied everything (read on each node with
	// CONSISTENCY_STALE after the heal). It must be 0.
	DivergentReplicas int
	// DigestsDiverged counts nodes whose whole game state (its digest,
	// StatusResponse.state_digest) differs from the first node's at the
	// end, at the same state index. Audits counts the log indexes whose
	// state two nodes digested during the run (state audits, audit.go),
	// AuditsDiverged those whose digests differ. Both must be 0.
	DigestsDiverged, Audits, AuditsDiverged int
	// NodesUnready counts nodes whose /readyz did not answer 200 within
	// ReadyBound after a fault healed (summed over faults and the final
	// heal). It must be 0.
	NodesUnready int
	// InternalErrors counts attempts that failed with code Internal;
	// PathLeaks those whose message named a server path. Both must be 0:
	// an unknown outcome is Unavailable, and paths stay on the server.
	InternalErrors, PathLeaks int
	// ClassConflicts lists rounds whose states disagreed about a letter.
	ClassConflicts []string
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

	leaders leaderCounts
	// stateIndex is the state index the nodes' digests were compared at.
	stateIndex uint64
	model      porcupine.Model
	info       porcupine.LinearizationInfo
	history    []porcupine.Operation
}

func newReport(cfg Config) *Report {
	return &Report{Config: cfg, Faults: map[FaultKind]int{}, FaultFailures: map[FaultKind][]string{}, RefusedBy: map[refusal]int{}}
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

// faultFailed records that a fault's expectation failed.
func (r *Report) faultFailed(kind FaultKind, msg string) {
	r.mu.Lock()
	r.FaultFailures[kind] = append(r.FaultFailures[kind], msg)
	r.mu.Unlock()
	r.fail("%s: %s", kind, msg)
}

// did records what one injection did.
func (r *Report) did(kind FaultKind, what string) {
	r.mu.Lock()
	r.Did = append(r.Did, fmt.Sprintf("%s: %s", kind, what))
	r.mu.Unlock()
}

// request is every record of one request id: the original write and its
// rechecks.
type request struct {
	id       string
	original *opRecord
	rechecks []*opRecord
}

// status says how a request ended: "applied" if any answer applied it,
// "refused" if its first definite answer refused it, else "pending".
func (q *request) status() string {
	if q.original.Err != "" {
		return "refused"
	}
	if q.original.applied() {
		return "applied"
	}
	for _, c := range q.rechecks {
		if c.applied() {
			return "applied"
		}
	}
	return "pending"
}

// eventKey is what an event and the write behind it share.
func eventKey(kind, player, letter string) string {
	switch kind {
	case opGuess:
		return "g/" + player + "/" + letter
	case "player_joined", opJoin:
		return "j/" + player
	case "round_started", opNewRound:
		return "n/" + player
	case "room_created", opCreate:
		return "c"
	}
	return ""
}

// collect runs the loss, duplicate, refusal and ordering checks.
func (r *Report) collect(w *Workload, obs *Observers, finals map[string]*hangmanv1.RoomState, classes *letterClasses) {
	r.Attempts, r.Retries, r.ReadErrors = w.attempts.Load(), w.retries.Load(), w.readErrors.Load()
	r.Reads = int(w.reads.Load())
	r.RechecksDropped, r.RechecksLate = w.rechecksDropped.Load(), w.rechecksLate.Load()
	r.Rooms = len(finals)
	r.ClassConflicts = classes.Conflicts()
	w.mu.Lock()
	r.InternalErrors, r.PathLeaks = w.errs[codes.Internal], w.leakCount
	internals, leaks := append([]string(nil), w.internals...), append([]string(nil), w.leaks...)
	w.mu.Unlock()
	example := func(format string, args ...any) {
		if len(r.Examples) < 30 {
			r.Examples = append(r.Examples, fmt.Sprintf(format, args...))
		}
	}
	for _, m := range internals {
		example("Internal: %s", m)
	}
	for _, m := range leaks {
		example("server path in an error: %s", m)
	}
	rta := map[string]bool{} // refused-then-applied request ids, by room/id
	for room, recs := range w.Records() {
		reqs := map[string]*request{}
		var order []*request
		for _, g := range recs {
			r.count(g)
			q := reqs[g.RequestID]
			if q == nil {
				q = &request{id: g.RequestID}
				reqs[g.RequestID] = q
				order = append(order, q)
			}
			if g.Recheck {
				q.rechecks = append(q.rechecks, g)
			} else {
				q.original = g
			}
		}
		for _, q := range order {
			if q.original == nil {
				continue
			}
			for _, c := range q.rechecks {
				switch {
				case q.original.Err == "":
				case c.applied():
					rta[room+"/"+q.id] = true
					example("refused then applied: %s %s [%s] was refused (%s), its recheck on another node applied it", room, q.original.Kind, q.id, q.original.Err)
				case c.Err != "" && c.Refusal != q.original.Refusal:
					r.RefusalChanged++
					example("refusal changed: %s %s [%s] refused %q, then on recheck %q", room, q.original.Kind, q.id, q.original.Err, c.Err)
				}
			}
		}
		st := finals[room]
		r.checkLost(room, order, st, example)
		r.attribute(room, order, obs.Events(room), rta, example)
		// A seat only refused joins could have given.
		for _, p := range st.GetPlayers() {
			var joins []*request
			for _, q := range order {
				if q.original != nil && q.original.Kind == opJoin && q.original.Player == p.GetId() {
					joins = append(joins, q)
				}
			}
			if len(joins) > 0 && !slices.ContainsFunc(joins, func(q *request) bool { return q.status() != "refused" }) {
				for _, q := range joins {
					if !rta[room+"/"+q.id] {
						rta[room+"/"+q.id] = true
						example("refused then applied: %s's final state seats %s, whose every join was refused (%s: %s)", room, p.GetId(), q.id, q.original.Err)
						break
					}
				}
			}
		}
		if chainComplete(obs.Events(room), st.GetSeq()) {
			r.CompleteChains++
		}
	}
	r.RefusedThenApplied = len(rta)

	obs.mu.Lock()
	r.Messages, r.OrderViolations, r.Conflicts, r.GapsAfterHeal, r.LateNATS = obs.received, obs.orderViolations, obs.conflicts, obs.gapsAfterHeal, obs.lateNATS
	r.RepeatedStates, r.LateNATSStates = obs.repeatedStates, obs.lateNATSStates
	r.Examples = append(r.Examples, obs.examples...)
	obs.mu.Unlock()
	r.Examples = append(r.Examples, r.leaders.Examples...)

	checks := []struct {
		n    int
		what string
	}{
		{r.Lost, "acknowledged writes lost"},
		{r.Duplicates, "events no single request explains (a request applied twice)"},
		{r.RefusedThenApplied, "requests refused with a definite error took effect anyway (DESIGN.md guarantee 2)"},
		{r.RefusalChanged, "refused requests got another answer when sent again"},
		{r.Mismatched, "events differ from the write acknowledged at their index"},
		{r.InternalErrors, "attempts failed with code Internal (an unknown outcome is Unavailable)"},
		{r.PathLeaks, "errors named a server path"},
		{len(r.ClassConflicts), "rounds whose states disagreed about a letter of the word"},
		{r.leaders.Outside, "leader changes outside injected faults"},
		{r.leaders.Strict, "leader changes under cpu-hog"},
		{r.OrderViolations, "messages out of seq order on a subscriber or websocket"},
		{r.RepeatedStates, "states sent twice on one websocket (relay/PROTOCOL.md: never the same state twice)"},
		{r.Conflicts, "messages with an already seen seq but different contents"},
		{r.GapsAfterHeal, "event gaps (prev != last seq) after the faults healed"},
	}
	for _, c := range checks {
		if c.n > 0 {
			r.fail("%d %s", c.n, c.what)
		}
	}
	if n := r.leaders.StrictByKind[FaultCPUHog]; n > 0 {
		r.mu.Lock()
		r.FaultFailures[FaultCPUHog] = append(r.FaultFailures[FaultCPUHog], fmt.Sprintf("%d leader changes during the hog or %v after it", n, r.Config.Settle))
		r.mu.Unlock()
	}
}

// count adds one write to the totals.
func (r *Report) count(g *opRecord) {
	switch g.Kind {
	case opCreate:
		r.Creates++
	case opJoin:
		r.Joins++
	case opGuess:
		r.Guesses++
	case opNewRound:
		r.NewRounds++
	}
	if g.Recheck {
		r.Rechecks++
		return
	}
	switch {
	case g.Unknown:
		r.Pending++
	case g.Err != "":
		r.Refused++
		r.RefusedBy[g.Refusal]++
	default:
		r.Acknowledged++
		if g.Duplicate {
			r.Duplicate++
		}
		if g.Kind == opGuess && g.Index == 0 {
			r.UnknownIndex++
		}
		if g.ForeignIndex {
			r.ForeignIndex++
		}
	}
}

// checkLost checks DESIGN.md guarantee 1 against a room's final state:
// every acknowledged join seated its player, every acknowledged guess of
// the final round is among its letters, and there were at least as many
// rounds as acknowledged new rounds.
func (r *Report) checkLost(room string, reqs []*request, st *hangmanv1.RoomState, example func(string, ...any)) {
	if st == nil {
		lost := 0
		for _, q := range reqs {
			if q.status() == "applied" {
				lost++
			}
		}
		// A room whose creation's outcome stayed unknown may never have
		// been made: nothing is lost then.
		if lost > 0 {
			r.Lost += lost
			example("lost: room %s is gone with its %d acknowledged writes", room, lost)
		}
		return
	}
	seated := map[string]bool{}
	for _, p := range st.GetPlayers() {
		seated[p.GetId()] = true
	}
	guessed := strings.Join(st.GetGuessed(), "")
	rounds := 0
	for _, q := range reqs {
		g := q.original
		if g == nil || q.status() != "applied" || g.Recheck {
			continue
		}
		switch g.Kind {
		case opJoin:
			if g.applied() && !seated[g.Player] {
				r.Lost++
				example("lost: %s joined %s [%s] but the final state does not seat them", g.Player, room, g.RequestID)
			}
		case opNewRound:
			if g.applied() {
				rounds++
			}
		case opGuess:
			if g.applied() && g.ReplyRound == st.GetRound() && (!strings.Contains(guessed, g.Letter) || g.Index > st.GetSeq()) {
				r.Lost++
				example("lost: %s guessed %s in %s round %d [%s] (index %d) but the final state has %q at seq %d", g.Player, g.Letter, room, g.ReplyRound, g.RequestID, g.Index, guessed, st.GetSeq())
			}
		}
	}
	if uint64(rounds) > st.GetRound()-1 {
		r.Lost += rounds - int(st.GetRound()-1)
		example("lost: %d new rounds of %s acknowledged, the final state is in round %d", rounds, room, st.GetRound())
	}
}

// attribute explains every observed event of a room by one request: first
// by the index an acknowledged reply proved, then by an acknowledged
// request whose index is unknown, a pending one, and last a refused one,
// which makes that request refused-then-applied. An event nothing explains
// is a duplicate.
func (r *Report) attribute(room string, reqs []*request, events []seenMsg, rta map[string]bool, example func(string, ...any)) {
	byKey := map[string][]*request{}
	byIndex := map[uint64]*request{}
	for _, q := range reqs {
		if q.original == nil {
			continue
		}
		g := q.original
		byKey[eventKey(g.Kind, g.Player, g.Letter)] = append(byKey[eventKey(g.Kind, g.Player, g.Letter)], q)
		if g.Index != 0 {
			byIndex[g.Index] = q
		}
	}
	used := map[*request]bool{}
	var rest []seenMsg
	for _, e := range events {
		q, ok := byIndex[e.Seq]
		if !ok {
			rest = append(rest, e)
			continue
		}
		used[q] = true
		g := q.original
		if eventKey(e.EventKind, e.Player, e.Letter) != eventKey(g.Kind, g.Player, g.Letter) || g.Outcome != e.Outcome {
			r.Mismatched++
			example("mismatch: event %s seq %d is %s %s/%s/%s, the write acknowledged at that index is %s %s/%s/%s [%s]",
				room, e.Seq, e.EventKind, e.Player, e.Letter, e.Outcome, g.Kind, g.Player, g.Letter, g.Outcome, g.RequestID)
		}
	}
	for _, e := range rest {
		key := eventKey(e.EventKind, e.Player, e.Letter)
		if key == "" {
			continue
		}
		cands := byKey[key]
		pick := func(ok func(q *request) bool) *request {
			for _, q := range cands {
				if !used[q] && ok(q) {
					return q
				}
			}
			return nil
		}
		q := pick(func(q *request) bool {
			return q.status() == "applied" && q.original.Index == 0 && (q.original.Kind != opGuess || !q.original.applied() || q.original.Outcome == e.Outcome)
		})
		if q == nil {
			q = pick(func(q *request) bool { return q.status() == "pending" })
		}
		if q == nil {
			q = pick(func(q *request) bool { return q.status() == "refused" })
			if q != nil {
				rta[room+"/"+q.id] = true
				example("refused then applied: event %s seq %d (%s %s %s) is explained only by [%s], refused: %s", room, e.Seq, e.EventKind, e.Player, e.Letter, q.id, q.original.Err)
			}
		}
		if q == nil {
			r.Duplicates++
			example("duplicate: event %s seq %d (%s %s %s %s) is explained by no request not already applied", room, e.Seq, e.EventKind, e.Player, e.Letter, e.Outcome)
			continue
		}
		used[q] = true
	}
}

// checkReplicas compares every room on every node, read locally
// (CONSISTENCY_STALE) once all nodes have applied the same index, and then
// the digests of the nodes' whole game states, which cover what the rooms'
// public states do not show (the answers each room remembers, its
// history).
func (r *Report) checkReplicas(ctx context.Context, lab *Lab, rooms []string) {
	retry := func(what string, check func() error) {
		var last error
		for attempt := 0; attempt < 10 && ctx.Err() == nil; attempt++ {
			if last = check(); last == nil {
				return
			}
			select {
			case <-ctx.Done():
			case <-time.After(500 * time.Millisecond):
			}
		}
		r.fail("%s not comparable: %v", what, last)
	}
	retry("replicas", func() error {
		divergent, examples, err := compareReplicas(ctx, lab, rooms)
		if err != nil {
			return err
		}
		r.DivergentReplicas = divergent
		r.Examples = append(r.Examples, examples...)
		if divergent > 0 {
			r.fail("%d rooms differ between nodes after the heal", divergent)
		}
		return nil
	})
	retry("replicas' state digests", func() error {
		index, diverged, err := compareDigests(ctx, lab)
		if err != nil {
			return err
		}
		r.stateIndex = index
		for _, d := range diverged {
			r.DigestsDiverged++
			r.fail("%s", d)
		}
		return nil
	})
}

// compareDigests asks every node for the digest of its whole game state
// and returns the state index they share and, for each node whose digest
// differs from the first node's, "replicas diverged: ...". It fails when
// the nodes' states are not at the same index.
func compareDigests(ctx context.Context, lab *Lab) (uint64, []string, error) {
	sts := make([]*hangmanv1.StatusResponse, len(lab.Nodes))
	for i, n := range lab.Nodes {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := n.Cluster().Status(sctx, &hangmanv1.StatusRequest{StateDigest: true})
		cancel()
		if err != nil {
			return 0, nil, fmt.Errorf("%s state digest: %w", n.ID, err)
		}
		if st.GetStateDigest() == "" {
			return 0, nil, fmt.Errorf("%s gave no state digest", n.ID)
		}
		if i > 0 && st.GetStateIndex() != sts[0].GetStateIndex() {
			return 0, nil, fmt.Errorf("%s state at index %d, %s at %d", n.ID, st.GetStateIndex(), lab.Nodes[0].ID, sts[0].GetStateIndex())
		}
		sts[i] = st
	}
	var diverged []string
	for i, st := range sts[1:] {
		if st.GetStateDigest() != sts[0].GetStateDigest() {
			diverged = append(diverged, fmt.Sprintf("replicas diverged: whole state at index %d digest %s on %s, %s on %s",
				st.GetStateIndex(), short(sts[0].GetStateDigest()), lab.Nodes[0].ID, short(st.GetStateDigest()), lab.Nodes[i+1].ID))
		}
	}
	return sts[0].GetStateIndex(), diverged, nil
}

// compareReplicas reads every room on every node and counts the rooms
// whose states differ. It fails when the nodes' game states are not at the
// same index, before or after the reads. That is the index the state
// machine itself applied (StatusResponse.state_index), not raft's applied
// index, which counts entries raft has handed to the state machine and
// runs ahead of it while a restarted node replays its log: a soak read a
// node's rooms 1,700 entries behind the others at one raft applied index.
func compareReplicas(ctx context.Context, lab *Lab, rooms []string) (int, []string, error) {
	applied := func() (uint64, error) {
		var idx uint64
		for i, n := range lab.Nodes {
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			st, err := n.Cluster().Status(sctx, &hangmanv1.StatusRequest{StateDigest: true})
			cancel()
			if err != nil {
				return 0, fmt.Errorf("%s state index: %w", n.ID, err)
			}
			if i > 0 && st.GetStateIndex() != idx {
				return 0, fmt.Errorf("%s state at index %d, others %d", n.ID, st.GetStateIndex(), idx)
			}
			idx = st.GetStateIndex()
		}
		return idx, nil
	}
	before, err := applied()
	if err != nil {
		return 0, nil, err
	}
	all := map[string]bool{}
	for _, room := range rooms {
		all[room] = true
	}
	stale := hangmanv1.Consistency_CONSISTENCY_STALE
	views := make([]map[string]string, len(lab.Nodes))
	for _, n := range lab.Nodes {
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		rooms, err := allRooms(lctx, n.Game(), stale)
		cancel()
		if err != nil {
			return 0, nil, fmt.Errorf("%s: list rooms: %w", n.ID, err)
		}
		for _, s := range rooms {
			all[s.GetRoom()] = true
		}
	}
	for i, n := range lab.Nodes {
		views[i] = map[string]string{}
		for room := range all {
			gctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			resp, err := n.Game().GetRoom(gctx, &hangmanv1.GetRoomRequest{Room: room, Consistency: stale})
			cancel()
			switch {
			case status.Code(err) == codes.NotFound:
				views[i][room] = "(missing)"
			case err != nil:
				return 0, nil, fmt.Errorf("%s: read %s: %w", n.ID, room, err)
			default:
				views[i][room] = canonicalState(resp.GetState())
			}
		}
	}
	after, err := applied()
	if err != nil {
		return 0, nil, err
	}
	if after != before {
		return 0, nil, fmt.Errorf("state index moved from %d to %d while reading", before, after)
	}
	var divergent int
	var examples []string
	for room := range all {
		for i := 1; i < len(views); i++ {
			if views[i][room] != views[0][room] {
				divergent++
				if len(examples) < 5 {
					examples = append(examples, fmt.Sprintf("divergent: room %s is %s on %s but %s on %s", room, views[0][room], lab.Nodes[0].ID, views[i][room], lab.Nodes[i].ID))
				}
				break
			}
		}
	}
	return divergent, examples, nil
}

// canonicalState renders every field of a public room state.
func canonicalState(st *hangmanv1.RoomState) string {
	var players []string
	for _, p := range st.GetPlayers() {
		players = append(players, fmt.Sprintf("%s:%s:%d", p.GetId(), p.GetName(), p.GetScore()))
	}
	last := ""
	if lg := st.GetLastGuess(); lg != nil {
		last = lg.GetPlayer() + "/" + lg.GetLetter() + "/" + lg.GetOutcome()
	}
	return fmt.Sprintf("round %d seq %d prev %d %s %q guessed=%s wrong=%s left %d/%d word %q players [%s] last %s",
		st.GetRound(), st.GetSeq(), st.GetPrev(), st.GetStatus(), st.GetMasked(), strings.Join(st.GetGuessed(), ""),
		strings.Join(st.GetWrong(), ""), st.GetWrongLeft(), st.GetMaxWrong(), st.GetWord(), strings.Join(players, " "), last)
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
	fmt.Fprintf(tw, "fault mechanism\tnetwork namespaces + veth + iptables; kill -9, SIGSTOP, wiped and corrupted files, a tmpfs filled, new IPs, busy loops\n")
	fmt.Fprintf(tw, "faults injected\t%d\n", total)
	for _, k := range AllFaults {
		verdict := "-"
		if r.Faults[k] > 0 {
			verdict = "ok"
			if n := len(r.FaultFailures[k]); n > 0 {
				verdict = fmt.Sprintf("FAILED %d", n)
			}
		}
		fmt.Fprintf(tw, "  %s\t%d\t%s\t%s. Expect: %s\n", k, r.Faults[k], verdict, faults[k].does, faults[k].expect)
	}
	fmt.Fprintf(tw, "operations\t%d (%d creates, %d joins, %d guesses, %d new rounds, %d rechecks of refusals, %d linearizable reads; %d attempts, %d retries; %d reads failed)\n",
		r.Creates+r.Joins+r.Guesses+r.NewRounds+r.Reads, r.Creates, r.Joins, r.Guesses, r.NewRounds, r.Rechecks, r.Reads, r.Attempts, r.Retries, r.ReadErrors)
	fmt.Fprintf(tw, "rooms\t%d\n", r.Rooms)
	fmt.Fprintf(tw, "acknowledged\t%d (%d duplicate replies to retries; %d guesses without a provable index, %d of them replies whose index is a no-op retry entry)\n",
		r.Acknowledged, r.Duplicate, r.UnknownIndex, r.ForeignIndex)
	fmt.Fprintf(tw, "refused\t%d (%s)\n", r.Refused, r.refusals())
	fmt.Fprintf(tw, "pending (outcome unknown)\t%d\n", r.Pending)
	fmt.Fprintf(tw, "refused-then-applied (must be 0)\t%d\n", r.RefusedThenApplied)
	fmt.Fprintf(tw, "refusal changed on retry (must be 0)\t%d (%d refusals not rechecked: queue full; %d: reached too late)\n", r.RefusalChanged, r.RechecksDropped, r.RechecksLate)
	fmt.Fprintf(tw, "lost (must be 0)\t%d\n", r.Lost)
	fmt.Fprintf(tw, "duplicates (must be 0)\t%d\n", r.Duplicates)
	fmt.Fprintf(tw, "mismatched events\t%d\n", r.Mismatched)
	fmt.Fprintf(tw, "divergent replicas (must be 0)\t%d rooms\n", r.DivergentReplicas)
	fmt.Fprintf(tw, "whole-state digests diverged at the end (must be 0)\t%d nodes (at state index %d)\n", r.DigestsDiverged, r.stateIndex)
	fmt.Fprintf(tw, "state audits diverged (must be 0)\t%d of %d indexes audited by two or more nodes (every %d)\n", r.AuditsDiverged, r.Audits, auditEvery)
	fmt.Fprintf(tw, "nodes unready after heal (must be 0)\t%d (bound %v after each heal)\n", r.NodesUnready, r.Config.ReadyBound)
	fmt.Fprintf(tw, "leader changes outside injected faults (must be 0)\t%d (of %d term rises; window: from a fault's start to %v after the cluster is whole again)\n",
		r.leaders.Outside, r.leaders.Total, r.Config.Settle)
	fmt.Fprintf(tw, "leader changes under cpu-hog (must be 0)\t%d\n", r.leaders.Strict)
	fmt.Fprintf(tw, "Internal errors / server paths in errors\t%d / %d\n", r.InternalErrors, r.PathLeaks)
	fmt.Fprintf(tw, "messages observed\t%d (event chain seen whole in %d/%d rooms)\n", r.Messages, r.CompleteChains, r.Rooms)
	fmt.Fprintf(tw, "seq order violations\t%d\n", r.OrderViolations)
	fmt.Fprintf(tw, "late NATS redeliveries\t%d (older seq after a newer one, dropped by seq; %d of them states; %d rooms' final state missed by a node's subscriber)\n",
		r.LateNATS, r.LateNATSStates, r.NATSBehind)
	fmt.Fprintf(tw, "states repeated on a websocket\t%d\n", r.RepeatedStates)
	fmt.Fprintf(tw, "same-seq conflicts\t%d\n", r.Conflicts)
	fmt.Fprintf(tw, "gaps after heal\t%d\n", r.GapsAfterHeal)
	fmt.Fprintf(tw, "relays converged in 2s\t%t\n", r.Converged)
	fmt.Fprintf(tw, "linearizable (checker verdict)\t%s (porcupine, %d operations, %v)\n", r.Verdict, len(r.history), r.CheckTook.Round(time.Millisecond))
	verdict := "PASS"
	if len(r.Failures) > 0 {
		verdict = fmt.Sprintf("FAIL (%d)", len(r.Failures))
	}
	fmt.Fprintf(tw, "result\t%s\n", verdict)
	_ = tw.Flush()
	for _, d := range r.Did {
		fmt.Fprintf(&b, "  did: %s\n", d)
	}
	for _, f := range r.Failures {
		fmt.Fprintf(&b, "  failure: %s\n", f)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "  note: %s\n", n)
	}
	for _, c := range r.ClassConflicts {
		fmt.Fprintf(&b, "  conflict: %s\n", c)
	}
	for _, e := range r.Examples {
		fmt.Fprintf(&b, "  e.g. %s\n", e)
	}
	return b.String()
}

// refusals lists the refusals by rule.
func (r *Report) refusals() string {
	var parts []string
	for _, k := range []refusal{refNotJoined, refRoundOver, refRoundPlaying, refRoomFull, refNoRoom, refExists, refOther} {
		if n := r.RefusedBy[k]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, n))
		}
	}
	return strings.Join(parts, ", ")
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

// SaveArtifacts writes the history (JSON), porcupine's visualization (HTML),
// the processes' logs and, when replicas diverged, the nodes' audited
// states under dir, and returns the paths written.
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
		// The states the nodes audited, to diff where they diverged: a
		// few hundred megabytes, kept only when they did.
		if src := filepath.Join(logsDir, "audit"); (r.AuditsDiverged > 0 || r.DigestsDiverged > 0) && dirExists(src) {
			dst := base + "-audit"
			if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
				return paths, fmt.Errorf("copy audited states: %w", err)
			}
			paths = append(paths, dst)
		}
	}
	return paths, nil
}

func dirExists(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}
