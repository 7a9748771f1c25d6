package raftnode

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"

	"github.com/hangman/hangman/internal/harness"
)

// suffrage returns the suffrage of node id's current raft server in the
// leader's configuration, or "" if it is not in it.
func (c *testCluster) suffrage(id string) string {
	c.t.Helper()
	l := c.nodes[c.leader()]
	m, ok := l.members.get(id)
	if !ok {
		return ""
	}
	for _, s := range l.raft.GetConfiguration().Configuration().Servers {
		if s.ID == m.RaftID {
			return s.Suffrage.String()
		}
	}
	return ""
}

// addNode starts one more node like the others that waits to be added
// (see addNodeWith) and returns its index in c.nodes.
func (c *testCluster) addNode(id string) int {
	c.t.Helper()
	n := c.addNodeWith(id, func(*Config) {})
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, m := range c.nodes {
		if m == n {
			return i
		}
	}
	c.t.Fatalf("added node %s is not in the cluster", id)
	return -1
}

func TestNewNodeJoinsAsNonVoterAndIsPromoted(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.leader()
	setupRoom(t, c, 0, "growing")
	i := c.addNode("n4")
	harness.Eventually(t, 15*time.Second, "n4 to become a voter", func() error {
		if s := c.suffrage("n4"); s != raft.Voter.String() {
			return fmt.Errorf("n4 is %q", s)
		}
		return nil
	})
	c.converged()
	if got := snapshotOf(t, c.nodes[i]); got != snapshotOf(t, c.nodes[0]) {
		t.Fatalf("new voter's state differs")
	}
}

// failureFoundWithin bounds how long the members of a cluster of n take
// to find a killed one failed, with FastGossip's timing (memberlist's
// local configuration). A member that fails a probe is suspected, and
// declared failed when the suspicion times out: after the minimum timeout
// once another member has confirmed it, and after SuspicionMaxTimeoutMult
// times that when no confirmation comes in time, which on a loaded machine
// happens. Probes themselves slow down, up to AwarenessMaxMultiplier
// times, while a member finds itself unhealthy (late to answer). The
// bound is the longest suspicion after the slowest first probe; the
// member table and the autopilot each add a pass of a second, which the
// callers' slack covers.
func failureFoundWithin(n int) time.Duration {
	mc := memberlist.DefaultLocalConfig()
	scale := max(1, math.Log10(float64(n)))
	suspicion := time.Duration(float64(mc.SuspicionMult)*scale*float64(mc.ProbeInterval)) * time.Duration(mc.SuspicionMaxTimeoutMult)
	firstProbe := time.Duration(mc.AwarenessMaxMultiplier) * (mc.ProbeInterval + mc.ProbeTimeout)
	return firstProbe + suspicion
}

func TestDeadVoterIsReapedOnlyAboveMinimumQuorum(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.ReapAfter = 500 * time.Millisecond })
	c.leader()
	i := c.addNode("n4")
	harness.Eventually(t, 15*time.Second, "n4 to become a voter", func() error {
		if s := c.suffrage("n4"); s != raft.Voter.String() {
			return fmt.Errorf("n4 is %q", s)
		}
		return nil
	})
	// Four voters, minimum three: the dead n4 is removed after the grace.
	c.kill(i)
	harness.Eventually(t, failureFoundWithin(4)+c.cfgs[0].ReapAfter+3*time.Second, "dead n4 to be removed", func() error {
		if s := c.suffrage("n4"); s != "" {
			return fmt.Errorf("n4 still %q", s)
		}
		return nil
	})
	// Three voters, minimum three: a dead follower stays a voter, however
	// long it is dead, so the cluster never shrinks below its quorum size.
	leader := c.leader()
	victim := (leader + 1) % 3
	c.kill(victim)
	dead := c.cfgs[victim].ID
	harness.Throughout(t, 3*time.Second, dead+" kept as a voter", func() error {
		if s := c.suffrage(dead); s != raft.Voter.String() {
			return fmt.Errorf("%s was removed (suffrage %q) although that leaves fewer than 3 voters", dead, s)
		}
		return nil
	})
}
