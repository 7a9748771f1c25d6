package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"syscall"
	"time"
)

// FaultKind names one kind of fault the harness injects.
type FaultKind string

// The faults of the issue. Partitions cut TCP and UDP both ways between two
// groups of nodes; clients and relays still reach every node, as a client
// on the far side of a real partition would reach the minority.
const (
	FaultKillLeader        FaultKind = "kill-leader"
	FaultKillFollower      FaultKind = "kill-follower"
	FaultPartitionLeader   FaultKind = "partition-leader"
	FaultPartitionMinority FaultKind = "partition-minority"
	// FaultPartitionSplit splits the nodes in two halves (2/3 with five
	// nodes, 1/2 with three) with the leader on the minority side.
	FaultPartitionSplit FaultKind = "partition-split"
	FaultNATSRoutes     FaultKind = "nats-route-loss"
	FaultKillRelay      FaultKind = "kill-relay"
	FaultPauseLeader    FaultKind = "pause-leader"
	FaultPauseFollower  FaultKind = "pause-follower"
)

// faultHelp describes each kind for the summary.
var faultHelp = map[FaultKind]string{
	FaultKillLeader:        "kill -9 the leader, restart it on its data",
	FaultKillFollower:      "kill -9 a follower, restart it on its data",
	FaultPartitionLeader:   "isolate the leader from the other nodes",
	FaultPartitionMinority: "isolate a minority of followers",
	FaultPartitionSplit:    "split in two, leader on the minority side",
	FaultNATSRoutes:        "reset every NATS route between nodes",
	FaultKillRelay:         "kill -9 a relay, restart it",
	FaultPauseLeader:       "SIGSTOP the leader past the election timeout",
	FaultPauseFollower:     "SIGSTOP a follower past the election timeout",
}

// ParseFaults turns a comma-separated list of kinds (or "all") into kinds.
func ParseFaults(s string) ([]FaultKind, error) {
	if s == "" || s == "all" {
		return AllFaults, nil
	}
	var out []FaultKind
	for _, f := range strings.Split(s, ",") {
		k := FaultKind(strings.TrimSpace(f))
		if _, ok := faultHelp[k]; !ok {
			return nil, fmt.Errorf("unknown fault %q (known: %v)", k, AllFaults)
		}
		out = append(out, k)
	}
	return out, nil
}

// AllFaults lists every fault kind, in the order the summary prints them.
var AllFaults = []FaultKind{
	FaultKillLeader, FaultKillFollower,
	FaultPartitionLeader, FaultPartitionMinority, FaultPartitionSplit,
	FaultNATSRoutes, FaultKillRelay,
	FaultPauseLeader, FaultPauseFollower,
}

// injector applies faults to a lab and undoes them.
type injector struct {
	lab  *Lab
	rnd  *rand.Rand
	hold time.Duration
	// pause is how long a SIGSTOP lasts: longer than the election timeout.
	pause time.Duration
}

// inject applies one fault, holds it, and heals it. It returns a short
// description of what it did.
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
	others := func(group []int) []int {
		var out []int
		for i := range n {
			if !slices.Contains(group, i) {
				out = append(out, i)
			}
		}
		return out
	}
	names := func(group []int) string {
		var s []string
		for _, i := range group {
			s = append(s, lab.Nodes[i].ID)
		}
		return fmt.Sprint(s)
	}
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
		f.sleep(ctx, f.hold)
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
		if err := lab.net.isolate(group, others(group)); err != nil {
			return "", err
		}
		f.sleep(ctx, f.hold)
		return fmt.Sprintf("isolated %s from %s", names(group), names(others(group))), lab.net.heal()
	case FaultNATSRoutes:
		if err := lab.net.cutRoutes(); err != nil {
			return "", err
		}
		f.sleep(ctx, f.hold)
		return "reset every NATS route", lab.net.heal()
	case FaultKillRelay:
		r := lab.Relays[f.rnd.IntN(len(lab.Relays))]
		if err := r.Proc.kill(); err != nil {
			return "", err
		}
		f.sleep(ctx, f.hold)
		if err := r.Proc.start(); err != nil {
			return "", err
		}
		return "killed and restarted relay " + r.Name, waitHTTP(ctx, r.URL()+"/readyz", 30*time.Second)
	case FaultPauseLeader, FaultPauseFollower:
		victim := leader
		if kind == FaultPauseFollower {
			victim = followers[0]
		}
		node := lab.Nodes[victim]
		if err := node.Proc.signal(syscall.SIGSTOP); err != nil {
			return "", err
		}
		f.sleep(ctx, f.pause)
		return fmt.Sprintf("paused %s for %v", node.ID, f.pause), node.Proc.signal(syscall.SIGCONT)
	}
	return "", fmt.Errorf("unknown fault %q", kind)
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

// sleep paces the fault schedule (it synchronises nothing).
func (f *injector) sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
