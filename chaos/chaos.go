package chaos

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hangman/hangman/internal/harness"
	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
)

// Config describes one chaos run.
type Config struct {
	// Binary is the hangman binary to run.
	Binary string
	// Dir receives the nodes' data directories and every process's log.
	Dir    string
	Nodes  int
	Relays int
	// Duration is how long faults are injected; the run takes longer
	// (start-up, healing, checking), and injects every kind at least once
	// whatever the duration.
	Duration time.Duration
	// Hold is how long a partition, a dead node or a dead relay lasts.
	Hold time.Duration
	// Pause is how long a SIGSTOP lasts; it must exceed the election
	// timeout for the pause to matter.
	Pause time.Duration
	// Gap is the calm between two faults, Calm the one before the first.
	Gap, Calm time.Duration
	// Settle is the window rule's margin: a leader change later than
	// Settle after the cluster was whole again, following a fault, is one
	// nobody caused (see leaderMonitor).
	Settle time.Duration
	// ReadyBound is how soon after a fault heals every node's /readyz
	// must answer 200.
	ReadyBound time.Duration
	// RejoinBound is how soon a wiped, corrupt or full node must be a
	// caught-up voter again.
	RejoinBound time.Duration
	// RefuseBound is how long a node on a corrupt log is given to refuse
	// to start.
	RefuseBound time.Duration
	// ReaddressBound is how soon a cluster restarted on new addresses
	// must have a leader.
	ReaddressBound time.Duration
	// PauseLong is pause-leader-long's SIGSTOP; PauseRecover how soon
	// after its SIGCONT every node must be ready.
	PauseLong, PauseRecover time.Duration
	// HogHold is how long cpu-hog's busy loops run.
	HogHold time.Duration
	// Tmpfs is the size of each node's data tmpfs when disk-full is
	// injected.
	Tmpfs string
	// Faults are the kinds injected, each once per cycle; empty means
	// AllFaults.
	Faults []FaultKind
	// Shuffle orders each cycle at random (from Seed); without it every
	// cycle follows the order of Faults, a deterministic round-robin.
	Shuffle bool
	// Seed makes the fault schedule repeatable (the cluster is not).
	Seed     uint64
	Workload WorkloadConfig
	// CheckTimeout bounds the linearizability check.
	CheckTimeout time.Duration
	Log          *slog.Logger
}

// Run starts a lab, plays the workload while injecting faults for
// cfg.Duration, heals everything and checks the result. The error is for
// a harness that could not do its job; what the checks found is in the
// Report, whose Failures are empty when every guarantee held.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	log := cfg.Log
	rep := newReport(cfg)
	started := time.Now()
	defer func() { rep.Elapsed = time.Since(started) }()
	kinds := cfg.Faults
	if len(kinds) == 0 {
		kinds = AllFaults
	}
	lc := LabConfig{Binary: cfg.Binary, Dir: cfg.Dir, Nodes: cfg.Nodes, Relays: cfg.Relays, Log: log}
	if slices.Contains(kinds, FaultDiskFull) {
		lc.Tmpfs = cfg.Tmpfs
	}
	lab, err := StartLab(ctx, lc)
	if err != nil {
		return nil, err
	}
	defer lab.Close()
	log.Info("lab ready", "nodes", len(lab.Nodes), "relays", len(lab.Relays), "dir", cfg.Dir)

	// The NATS mesh as it is when whole: after the faults, the check that
	// no event is lost while healthy starts only once it is whole again.
	routes, err := natsRoutes(ctx, lab, nil, 30*time.Second)
	if err != nil {
		return nil, fmt.Errorf("NATS routes at start: %w", err)
	}

	classes := newLetterClasses()
	mon := newLeaderMonitor()
	obs := newObservers(log, classes, mon)
	defer obs.close()
	for _, n := range lab.Nodes {
		if err := obs.subscribeNATS(n.ID, n.NATSURL()); err != nil {
			return nil, err
		}
	}

	hist := newHistory()
	w := newWorkload(lab, hist, classes, log, cfg.Workload)
	obsCtx, stopObs := context.WithCancel(ctx)
	defer stopObs()
	soft, stopSoft := context.WithCancel(ctx)
	defer stopSoft()
	hard, stopHard := context.WithCancel(ctx)
	defer stopHard()

	monDone := make(chan struct{})
	go func() {
		defer close(monDone)
		mon.run(obsCtx, lab)
	}()
	defer func() { stopObs(); <-monDone }()

	// Watch every room through every relay as soon as it exists.
	go func() {
		for obsCtx.Err() == nil {
			for _, room := range w.Rooms() {
				for _, r := range lab.Relays {
					obs.watchRelay(obsCtx, r, room)
				}
			}
			select {
			case <-obsCtx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()

	workDone := make(chan error, 1)
	go func() { workDone <- w.Run(soft, hard) }()

	inj := &injector{lab: lab, rnd: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x5eed)), cfg: cfg, rep: rep, obs: obs, errCounts: w.errCounts}
	inj.sleep(ctx, cfg.Calm)
	deadline := time.Now().Add(cfg.Duration)
	// At least one whole cycle runs, whatever the duration, so that every
	// kind of fault is injected at least once.
	var cycle []FaultKind
	for cycles := 0; (cycles == 0 || len(cycle) > 0 && cycles == 1 || time.Now().Before(deadline)) && ctx.Err() == nil; {
		if len(cycle) == 0 {
			cycles++
			cycle = append(cycle, kinds...)
			if cfg.Shuffle {
				inj.rnd.Shuffle(len(cycle), func(i, j int) { cycle[i], cycle[j] = cycle[j], cycle[i] })
			}
		}
		kind := cycle[0]
		cycle = cycle[1:]
		strict := kind == FaultCPUHog
		if strict {
			// No election the last fault caused may fall in its window.
			inj.sleep(ctx, time.Until(mon.quietSince(cfg.Settle)))
		}
		win := mon.open(kind, strict)
		log.Info("fault begins", "kind", kind)
		what, err := inj.inject(ctx, kind)
		rep.Faults[kind]++
		rep.did(kind, what)
		log.Info("fault healed", "kind", kind, "did", what, "err", err)
		if err != nil {
			rep.fail("injecting %q: %v", kind, err)
			_ = inj.healAll()
		}
		if !rep.settle(ctx, inj, fmt.Sprintf("after %s (%s)", kind, what)) {
			break
		}
		mon.whole(win)
		inj.sleep(ctx, cfg.Gap)
	}

	// Heal, let the cluster settle under load, then stop the clients.
	win := mon.open("final heal", false)
	if err := inj.healAll(); err != nil && lab.crashed() == nil {
		rep.fail("healing: %v", err)
	}
	rep.settle(ctx, inj, "after healing")
	mon.whole(win)
	for _, r := range lab.Relays {
		if err := harness.WaitHTTP(ctx, r.URL()+"/readyz", 30*time.Second, nil); err != nil {
			rep.fail("relay %s after healing: %v", r.Name, err)
		}
	}
	if _, err := natsRoutes(ctx, lab, routes, 30*time.Second); err != nil && lab.crashed() == nil {
		rep.fail("after healing: %v", err)
	}
	obs.markHealed()
	inj.sleep(ctx, 3*time.Second)
	stopSoft()
	select {
	case err := <-workDone:
		if err != nil {
			rep.fail("workload: %v", err)
		}
	case <-time.After(15 * time.Second):
		stopHard()
		if err := <-workDone; err != nil {
			rep.fail("workload: %v", err)
		}
	}
	stopHard()

	// Final state of every room, read linearizably through the leader; the
	// reads enter the history, after every other operation.
	finals, err := finalStates(ctx, lab, w)
	if err != nil {
		rep.fail("final reads: %v", err)
		return rep, nil
	}
	rep.convergence(ctx, obs, finals)
	rep.checkReplicas(ctx, lab, w.Rooms())
	rep.checkAudits(lab, rep.stateIndex)
	stopObs()
	<-monDone
	rep.leaders = mon.classify(cfg.Settle)

	rep.collect(w, obs, finals, classes)
	rep.checkLinearizable(hist, classes, cfg.CheckTimeout)
	return rep, nil
}

// settle checks that every node is ready within ReadyBound of a heal, then
// waits for the cluster to converge, restarting nodes a fault left broken
// for good. It reports false when the cluster cannot be brought back.
func (r *Report) settle(ctx context.Context, inj *injector, when string) bool {
	cfg := r.Config
	if unready := inj.lab.notReady(ctx, cfg.ReadyBound); len(unready) > 0 {
		r.NodesUnready += len(unready)
		r.fail("%s: not ready within %v: %s", when, cfg.ReadyBound, strings.Join(unready, "; "))
	}
	err := inj.lab.WaitReady(ctx, cfg.ReadyBound)
	if err == nil {
		return true
	}
	restarted := inj.restore(ctx)
	r.fail("%s: %v (restarted %v to go on)", when, err, restarted)
	if err := inj.lab.WaitReady(ctx, 2*cfg.ReadyBound); err != nil {
		r.fail("%s, even after restarting %v: %v", when, restarted, err)
		return false
	}
	return true
}

// finalStates reads every room on the leader, retrying through any late
// hiccup, and records the reads in the history. A room the leader does not
// know is in the map as nil: it was lost.
func finalStates(ctx context.Context, lab *Lab, w *Workload) (map[string]*hangmanv1.RoomState, error) {
	client := w.hist.newClient()
	out := map[string]*hangmanv1.RoomState{}
	for _, room := range w.Rooms() {
		var errs []error
		for attempt := 0; attempt < 20; attempt++ {
			leader, err := lab.Leader(ctx)
			if err == nil {
				st, rerr := w.read(ctx, client, room, leader)
				if rerr == nil || status.Code(rerr) == codes.NotFound {
					out[room] = st
					break
				}
				err = rerr
			}
			errs = append(errs, err)
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(250 * time.Millisecond):
			}
		}
		if _, ok := out[room]; !ok {
			return nil, fmt.Errorf("room %s: %w", room, errors.Join(errs...))
		}
	}
	return out, nil
}

// convergence checks that every relay (and every node's NATS server) shows
// each room at the leader's seq within 2 s of the last write.
func (r *Report) convergence(ctx context.Context, obs *Observers, finals map[string]*hangmanv1.RoomState) {
	const within = 2 * time.Second
	deadline := time.Now().Add(within)
	for {
		var behind, natsBehind []string
		for room, st := range finals {
			if st == nil {
				continue // lost, which collect reports
			}
			latest := obs.Latest(room)
			for _, name := range r.observerNames() {
				seq, ok := latest[name]
				switch {
				case ok && seq == st.GetSeq():
					continue
				case !strings.HasPrefix(name, "relay-"):
					natsBehind = append(natsBehind, fmt.Sprintf("%s %s %d/%d", name, room, seq, st.GetSeq()))
				case !ok:
					behind = append(behind, fmt.Sprintf("%s never showed %s", name, room))
				default:
					behind = append(behind, fmt.Sprintf("%s shows %s at seq %d, leader %d", name, room, seq, st.GetSeq()))
				}
			}
		}
		r.NATSBehind = len(natsBehind)
		if len(behind) == 0 {
			r.Converged = true
			if len(natsBehind) > 0 {
				r.note("rooms whose last state a node's NATS subscriber never got (no later change, no leader change to republish): %s", clipList(natsBehind, 10))
			}
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			r.fail("relays not converged %v after the last write: %s", within, clipList(behind, 10))
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func clipList(items []string, n int) string {
	if len(items) > n {
		items = append(items[:n:n], fmt.Sprintf("… and %d more", len(items)-n))
	}
	return strings.Join(items, "; ")
}

func (r *Report) observerNames() []string {
	var out []string
	for i := range r.Config.Relays {
		out = append(out, fmt.Sprintf("relay-r%d", i+1))
	}
	for i := range r.Config.Nodes {
		out = append(out, fmt.Sprintf("nats-n%d", i+1))
	}
	return out
}

// checkLinearizable runs porcupine over the history with the room model.
func (r *Report) checkLinearizable(hist *History, classes *letterClasses, timeout time.Duration) {
	r.model = newModel(classes)
	r.history = hist.Operations()
	start := time.Now()
	res, info := porcupine.CheckOperationsVerbose(r.model, r.history, timeout)
	r.CheckTook = time.Since(start)
	r.info = info
	switch res {
	case porcupine.Ok:
		r.Verdict = "linearizable"
	case porcupine.Illegal:
		r.Verdict = "NOT linearizable"
		// Name the rooms whose histories fail, to start reading there.
		var bad []string
		for _, part := range r.model.Partition(r.history) {
			if porcupine.CheckOperationsTimeout(r.model, part, timeout) == porcupine.Illegal {
				bad = append(bad, part[0].Input.(Input).Room)
			}
		}
		r.fail("porcupine: the history is not linearizable (rooms %s; see the visualization)", strings.Join(bad, ", "))
	default:
		r.Verdict = fmt.Sprintf("unknown (check timed out after %v)", timeout)
		r.fail("porcupine could not decide within %v", timeout)
	}
}

// natsRoutes reads every node's NATS route count from its /metrics. With
// want set, it waits until each node has at least as many routes as want
// says (the mesh is whole again); without, until each has at least one.
func natsRoutes(ctx context.Context, lab *Lab, want map[string]int, timeout time.Duration) (map[string]int, error) {
	deadline := time.Now().Add(timeout)
	for {
		got := map[string]int{}
		var short []string
		for _, n := range lab.Nodes {
			r, err := harness.Metric(ctx, n.httpURL()+"/metrics", "hangman_nats_routes")
			if err != nil {
				short = append(short, fmt.Sprintf("%s: %v", n.ID, err))
				continue
			}
			got[n.ID] = int(r)
			if need := max(1, want[n.ID]); int(r) < need {
				short = append(short, fmt.Sprintf("%s has %d routes, wants %d", n.ID, int(r), need))
			}
		}
		if len(short) == 0 {
			return got, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("NATS mesh not whole after %v: %s", timeout, strings.Join(short, "; "))
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
