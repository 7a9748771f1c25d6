package raftnode

import (
	"testing"
	"time"
)

// TestDigestLimiter: a client asking for the state digest in a loop gets
// the last one again while the state is unchanged, and a new one at most
// once every digestEvery while it changes.
func TestDigestLimiter(t *testing.T) {
	var l digestLimiter
	computed := 0
	compute := func() (string, uint64, error) { computed++; return "d", uint64(computed), nil }
	t0 := time.Unix(1000, 0)
	steps := []struct {
		after    time.Duration
		key      uint64
		ok       bool
		computed int
	}{
		{0, 10, true, 1},                     // the first is computed
		{time.Millisecond, 10, true, 1},      // unchanged: the same again
		{2 * time.Millisecond, 11, false, 1}, // changed, too soon: refused
		{digestEvery, 11, true, 2},           // changed, a period later
		{digestEvery + time.Millisecond, 11, true, 2},
	}
	for i, s := range steps {
		_, idx, ok, err := l.get(t0.Add(s.after), s.key, compute)
		if err != nil || ok != s.ok || computed != s.computed || (ok && idx != uint64(computed)) {
			t.Fatalf("step %d: ok %v (index %d), %d computed, err %v; want ok %v, %d computed", i, ok, idx, computed, err, s.ok, s.computed)
		}
	}
}
