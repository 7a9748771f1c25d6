package raftnode

import (
	"strings"
	"testing"
	"time"
)

// TestRaftTimeoutsAreConfigurable checks the knobs of guarantee 7: the
// defaults leave a starved machine headroom (a follower waits a second
// for its leader, and the leader's lease is no shorter, so its own late
// bookkeeping is not taken for a lost quorum) while a crashed leader is
// still found and replaced in well under a second (failover.go); a
// node's configured timeouts are the ones its raft runs with; and a lease
// longer than the heartbeat is refused.
func TestRaftTimeoutsAreConfigurable(t *testing.T) {
	var def Config
	def.setDefaults()
	if def.HeartbeatTimeout < time.Second || def.ElectionTimeout < def.HeartbeatTimeout || def.LeaderLeaseTimeout < def.HeartbeatTimeout {
		t.Errorf("default heartbeat %v, election %v, lease %v: want at least a second each, for a starved machine", def.HeartbeatTimeout, def.ElectionTimeout, def.LeaderLeaseTimeout)
	}
	// A crashed leader's first successor stands within suspect+every+probe,
	// the second (if the first could not) a stagger later: both within a
	// second.
	if suspect, every, probe, stagger := crashTiming(def.HeartbeatTimeout); suspect+every+probe > 400*time.Millisecond || suspect+every+probe+stagger >= time.Second {
		t.Errorf("a crashed leader is probed after %v every %v (%v to answer), its successors %v apart: want the first to stand within 400ms and the second within a second", suspect, every, probe, stagger)
	}

	c := newTestCluster(t, 1, func(cfg *Config) {
		cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = 700*time.Millisecond, 900*time.Millisecond, 600*time.Millisecond
	})
	c.leader()
	rc := c.nodes[0].raft.ReloadableConfig()
	if rc.HeartbeatTimeout != 700*time.Millisecond || rc.ElectionTimeout != 900*time.Millisecond {
		t.Errorf("raft runs with heartbeat %v, election %v; configured 700ms, 900ms", rc.HeartbeatTimeout, rc.ElectionTimeout)
	}

	bad := c.cfgs[0]
	bad.HeartbeatTimeout, bad.LeaderLeaseTimeout = 200*time.Millisecond, 400*time.Millisecond
	if err := bad.validate(); err == nil || !strings.Contains(err.Error(), "leader lease timeout") {
		t.Errorf("lease 400ms over heartbeat 200ms: %v, want it refused", err)
	}
}
