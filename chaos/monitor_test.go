package chaos

import (
	"testing"
	"time"
)

// The window rule: a term rise from a fault's start to Settle after the
// cluster was whole again is the fault's; under cpu-hog none is allowed;
// anything else is spurious.
func TestLeaderWindowRule(t *testing.T) {
	t0 := time.Now()
	s := func(d int) time.Time { return t0.Add(time.Duration(d) * time.Second) }
	settle := 2 * time.Second
	m := newLeaderMonitor()
	m.windows = []*faultWindow{
		{Kind: FaultKillLeader, Start: s(10), Whole: s(15)},
		{Kind: FaultCPUHog, Start: s(30), Whole: s(40), Strict: true},
		{Kind: FaultPauseLeader, Start: s(50)}, // never whole again
	}
	for i, at := range []int{5, 10, 16, 17, 18, 35, 41, 43, 60} {
		m.changes = append(m.changes, leaderChange{At: s(at), Term: uint64(i + 2)})
	}
	got := m.classify(settle)
	// 5 and 18, 43 outside; 10, 16, 17 (whole+settle is inclusive) and 60
	// injected; 35 and 41 under the hog.
	if got.Total != 9 || got.Outside != 3 || got.Injected != 4 || got.Strict != 2 || got.StrictByKind[FaultCPUHog] != 2 {
		t.Fatalf("classify: %+v", got)
	}
}

// Only rises count, and not the first term seen.
func TestLeaderMonitorObserve(t *testing.T) {
	m := newLeaderMonitor()
	for _, term := range []uint64{4, 4, 3, 5, 5, 7, 6} {
		m.observe(term, "n1", "test")
	}
	if len(m.changes) != 2 || m.changes[0].Term != 5 || m.changes[1].Term != 7 {
		t.Fatalf("changes %+v, want rises to 5 and 7", m.changes)
	}
	m.observeMessage([]byte(`{"leader":"n2","term":9,"at":"2026-01-01T00:00:00Z"}`), "nats")
	if len(m.changes) != 3 || m.changes[2].Leader != "n2" {
		t.Fatalf("a leader message: %+v", m.changes)
	}
}
