package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/hangman/hangman/internal/harness"
)

// FaultKind names one kind of fault the harness injects.
type FaultKind string

// The faults of the harness. Partitions cut TCP and UDP both ways between
// two groups of nodes; clients and relays still reach every node, as a
// client on the far side of a real partition would reach the minority.
const (
	FaultKillLeader        FaultKind = "kill-leader"
	FaultKillFollower      FaultKind = "kill-follower"
	FaultPartitionLeader   FaultKind = "partition-leader"
	FaultPartitionMinority FaultKind = "partition-minority"
	// FaultPartitionSplit splits the nodes in two halves (2/3 with five
	// nodes, 1/2 with three) with the leader on the minority side.
	FaultPartitionSplit  FaultKind = "partition-split"
	FaultNATSRoutes      FaultKind = "nats-route-loss"
	FaultKillRelay       FaultKind = "kill-relay"
	FaultPauseLeader     FaultKind = "pause-leader"
	FaultPauseFollower   FaultKind = "pause-follower"
	FaultWipeDisk        FaultKind = "wipe-disk"
	FaultWipeMajority    FaultKind = "wipe-majority"
	FaultCorruptEntry    FaultKind = "corrupt-entry"
	FaultDiskFull        FaultKind = "disk-full"
	FaultReaddressAll    FaultKind = "readdress-all"
	FaultReaddressRoll   FaultKind = "readdress-rolling"
	FaultCPUHog          FaultKind = "cpu-hog"
	FaultPauseLeaderLong FaultKind = "pause-leader-long"
)

// faultInfo is what the summary says of a kind: what the harness does, and
// what must hold.
type faultInfo struct {
	does, expect string
}

// faults describes every kind, for the summary.
var faults = map[FaultKind]faultInfo{
	FaultKillLeader:        {"kill -9 the leader, restart it on its data", "a new leader; nothing acknowledged lost"},
	FaultKillFollower:      {"kill -9 a follower, restart it on its data", "it catches up; nothing acknowledged lost"},
	FaultPartitionLeader:   {"isolate the leader from the other nodes", "the majority elects; the old leader acknowledges nothing"},
	FaultPartitionMinority: {"isolate a minority of followers", "the majority goes on; the minority catches up"},
	FaultPartitionSplit:    {"split in two, leader on the minority side", "the majority elects; the minority acknowledges nothing"},
	FaultNATSRoutes:        {"reset every NATS route between nodes", "relays converge once routes are back"},
	FaultKillRelay:         {"kill -9 a relay, restart it", "nothing lost; its browsers converge"},
	FaultPauseLeader:       {"SIGSTOP the leader past the election timeout", "a new leader; the old one steps down on SIGCONT"},
	FaultPauseFollower:     {"SIGSTOP a follower past the election timeout", "it catches up on SIGCONT; no disruption"},
	FaultWipeDisk: {"kill -9 a node, delete its data dir, restart it",
		"it rejoins as a new member (absent or non-voter before it votes again) and catches up; nothing acknowledged lost"},
	FaultWipeMajority: {"kill every node (the leader last), wipe a majority, restart the wiped ones alone, then operator recovery (" + recoverFlag + " PEERS.json) of the intact ones",
		"the wiped majority elects nobody, acknowledges no write and is not ready; after recovery every node is back and nothing acknowledged is lost"},
	FaultCorruptEntry: {"stop a follower, flip bytes in a committed entry of its " + raftStoreName + ", restart it; then wipe it and let it rejoin",
		"the node refuses to start: exits non-zero without a panic, naming " + raftStoreName + " and the entry's index, never ready"},
	FaultDiskFull: {"fill the leader's data tmpfs, hold, free it",
		"writes there fail Unavailable (never Internal, no server path); once it cannot persist or falls behind it is not ready; it recovers without a restart"},
	FaultReaddressAll: {"stop every node, give each a new IP, restart all on the same data",
		"a leader within seconds; every room intact"},
	FaultReaddressRoll: {"move the nodes to new IPs one at a time (stop, new IP, restart on the same data), the relays left running on the IPs they were started with",
		"every node and relay ready within seconds of each move; each relay follows the nodes to their new addresses; every room intact"},
	FaultCPUHog: {"busy loops at 4x the core count in processes outside the cluster, at normal priority",
		"zero leader changes during the hog and the settle time after it"},
	FaultPauseLeaderLong: {"SIGSTOP the leader for PauseLong (6 s) under writes, SIGCONT",
		"every node ready within 5 s of SIGCONT, without a restart"},
}

// ParseFaults turns a comma-separated list of kinds (or "all") into kinds.
func ParseFaults(s string) ([]FaultKind, error) {
	if s == "" || s == "all" {
		return AllFaults, nil
	}
	var out []FaultKind
	for _, f := range strings.Split(s, ",") {
		k := FaultKind(strings.TrimSpace(f))
		if _, ok := faults[k]; !ok {
			return nil, fmt.Errorf("unknown fault %q (known: %v)", k, AllFaults)
		}
		out = append(out, k)
	}
	return out, nil
}

// AllFaults lists every fault kind, in the order the summary prints them
// and the short run injects them.
var AllFaults = []FaultKind{
	FaultKillLeader, FaultKillFollower,
	FaultPartitionLeader, FaultPartitionMinority, FaultPartitionSplit,
	FaultNATSRoutes, FaultKillRelay,
	FaultPauseLeader, FaultPauseFollower,
	FaultWipeDisk, FaultCorruptEntry, FaultDiskFull,
	FaultCPUHog, FaultPauseLeaderLong,
	FaultReaddressRoll, FaultReaddressAll, FaultWipeMajority,
}

// injector applies faults to a lab, checks what each must keep, and undoes
// them.
type injector struct {
	lab *Lab
	rnd *rand.Rand
	cfg Config
	rep *Report
	obs *Observers
	// errCounts returns how many client attempts so far failed Internal
	// and how many named a server path.
	errCounts func() (internal, leaks int)
	// gen is the nodes' address generation; probes numbers probe writes.
	gen, probes int
}

// expect records that kind's expectation failed.
func (f *injector) expect(kind FaultKind, format string, args ...any) {
	f.rep.faultFailed(kind, fmt.Sprintf(format, args...))
}

// inject applies one fault, holds it, and heals it. It returns a short
// description of what it did; an error means the harness could not do it.
func (f *injector) inject(ctx context.Context, kind FaultKind) (string, error) {
	lab := f.lab
	// The last fault's healing may have left an election under way; the
	// cluster must have a leader again within a few election timeouts.
	leader, err := lab.WaitLeader(ctx, 10*time.Second)
	if err != nil {
		return "", err
	}
	n := len(lab.Nodes)
	followers := make([]int, 0, n-1)
	for i := range n {
		if i != leader {
			followers = append(followers, i)
		}
	}
	f.rnd.Shuffle(len(followers), func(i, j int) { followers[i], followers[j] = followers[j], followers[i] })
	switch kind {
	case FaultKillLeader, FaultKillFollower:
		victim := leader
		if kind == FaultKillFollower {
			victim = followers[0]
		}
		node := lab.Nodes[victim]
		if err := node.Proc.kill(); err != nil {
			return "", err
		}
		f.sleep(ctx, f.cfg.Hold)
		return "killed and restarted " + node.ID, node.Proc.start()
	case FaultPartitionLeader, FaultPartitionMinority, FaultPartitionSplit:
		var group []int
		switch kind {
		case FaultPartitionLeader:
			group = []int{leader}
		case FaultPartitionMinority:
			group = followers[:(n-1)/2]
		case FaultPartitionSplit:
			group = append([]int{leader}, followers[:n/2-1]...)
		}
		rest := f.others(group)
		if err := lab.net.isolate(group, rest); err != nil {
			return "", err
		}
		f.sleep(ctx, f.cfg.Hold)
		return fmt.Sprintf("isolated %s from %s", f.names(group), f.names(rest)), lab.net.heal()
	case FaultNATSRoutes:
		if err := lab.net.cutRoutes(); err != nil {
			return "", err
		}
		f.sleep(ctx, f.cfg.Hold)
		return "reset every NATS route", lab.net.heal()
	case FaultKillRelay:
		r := lab.Relays[f.rnd.IntN(len(lab.Relays))]
		if err := r.Proc.kill(); err != nil {
			return "", err
		}
		f.sleep(ctx, f.cfg.Hold)
		// A relay starts with where the nodes are now, as an operator's
		// stable names would give it; a running relay follows the nodes
		// when they move (readdress-rolling), but a restarted one knows
		// only its flags, and the lab's are IPs.
		r.Proc.setArgv(lab.relayArgv(r))
		if err := r.Proc.start(); err != nil {
			return "", err
		}
		return "killed and restarted relay " + r.Name, harness.WaitHTTP(ctx, r.URL()+"/readyz", 30*time.Second, nil)
	case FaultPauseLeader, FaultPauseFollower:
		victim := leader
		if kind == FaultPauseFollower {
			victim = followers[0]
		}
		node := lab.Nodes[victim]
		if err := node.Proc.signal(syscall.SIGSTOP); err != nil {
			return "", err
		}
		f.sleep(ctx, f.cfg.Pause)
		return fmt.Sprintf("paused %s for %v", node.ID, f.cfg.Pause), node.Proc.signal(syscall.SIGCONT)
	case FaultWipeDisk:
		victim := followers[0]
		if f.rnd.IntN(2) == 0 {
			victim = leader
		}
		return f.wipeDisk(ctx, lab.Nodes[victim])
	case FaultWipeMajority:
		return f.wipeMajority(ctx, leader, followers)
	case FaultCorruptEntry:
		return f.corruptEntry(ctx, lab.Nodes[followers[0]])
	case FaultDiskFull:
		return f.diskFull(ctx, lab.Nodes[leader])
	case FaultReaddressAll:
		return f.readdressAll(ctx)
	case FaultReaddressRoll:
		return f.readdressRolling(ctx)
	case FaultCPUHog:
		return f.cpuHog(ctx)
	case FaultPauseLeaderLong:
		return f.pauseLeaderLong(ctx, lab.Nodes[leader])
	}
	return "", fmt.Errorf("unknown fault %q", kind)
}

// others returns the nodes not in group.
func (f *injector) others(group []int) []int {
	var out []int
	for i := range f.lab.Nodes {
		if !slices.Contains(group, i) {
			out = append(out, i)
		}
	}
	return out
}

// names returns the ids of the nodes in group.
func (f *injector) names(group []int) string {
	var s []string
	for _, i := range group {
		s = append(s, f.lab.Nodes[i].ID)
	}
	return fmt.Sprint(s)
}

// healAll undoes whatever a failed injection may have left behind.
func (f *injector) healAll() error {
	err := f.lab.net.heal()
	for _, n := range f.lab.Nodes {
		if n.Proc.running() {
			_ = n.Proc.signal(syscall.SIGCONT)
		} else if serr := n.Proc.start(); serr != nil {
			err = serr
		}
	}
	for _, r := range f.lab.Relays {
		if !r.Proc.running() {
			if serr := r.Proc.start(); serr != nil {
				err = serr
			}
		}
	}
	return err
}

// restore restarts the nodes that are not ready or stuck far behind the
// leader (kill -9 and start on their data), so that a node a fault left
// broken for good does not end the run; what it restarted is a failure the
// caller has recorded.
func (f *injector) restore(ctx context.Context) []string {
	_, commit := f.configuration(ctx)
	var restarted []string
	for _, n := range f.lab.Nodes {
		if n.Proc.running() && n.readyz(ctx) == nil {
			if st, err := n.status(ctx); err == nil && st.GetAppliedIndex()+1000 >= commit {
				continue
			}
		}
		_ = n.Proc.kill()
		if err := n.Proc.start(); err == nil {
			restarted = append(restarted, n.ID)
		}
	}
	return restarted
}

// sleep paces the fault schedule (it synchronises nothing).
func (f *injector) sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
