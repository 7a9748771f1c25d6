package raftnode

import (
	"strings"
	"testing"
	"time"
)

// TestRaftTimeoutsAreConfigurable checks the failover target's knobs: the
// defaults are tuned for a LAN (well under the second a leader kill may
// cost), a node's configured timeouts are the ones its raft runs with,
// and a lease longer than the heartbeat is refused.
func TestRaftTimeoutsAreConfigurable(t *testing.T) {
	var def Config
	def.setDefaults()
	if def.HeartbeatTimeout > 500*time.Millisecond || def.ElectionTimeout > 500*time.Millisecond {
		t.Errorf("default heartbeat %v, election %v: want LAN timeouts, at most 500ms", def.HeartbeatTimeout, def.ElectionTimeout)
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
