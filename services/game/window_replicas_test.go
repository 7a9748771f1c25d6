package game

import (
	"bytes"
	"reflect"
	"testing"
)

// TestPropertyReplicasAgreeBeyondSessionWindow applies one long log to
// three replicas, the way the nodes do: one builds every state (a leader,
// ApplyEntry), one builds none (a follower, ApplyEntryQuiet), and one is
// restored again and again from a snapshot of the first (a node that
// restarted or had a snapshot installed). The rooms never go away and
// take many times SessionWindow requests, a fifth of the entries replaying
// a request from about a window ago, so that answers are forgotten, and
// replayed requests met, on every side of a window's edge. The replicas
// must answer every entry alike and hold the same state throughout: the
// chaos suite once saw two nodes answer one replayed request differently,
// and this rules out the state machine as its cause.
func TestPropertyReplicasAgreeBeyondSessionWindow(t *testing.T) {
	seed := testSeed(t)
	g := newGen(seed, 7)
	leader, follower, restarted := New(), New(), New()
	g.leader = leader
	var (
		log      [][]byte
		requests = map[string]int{} // requests with an id, by room
	)
	steps := uint64(propertySteps(40000))
	for i := uint64(1); i <= steps; i++ {
		var e []byte
		if len(log) > 2*SessionWindow && g.r.IntN(5) == 0 {
			e = log[len(log)-SessionWindow+200-g.r.IntN(400)]
		} else {
			e = g.entry()
			// Nothing deletes a room (a reclamation takes its answers
			// with it), and commands come one to an entry, so that the
			// windows fill.
			c, err := DecodeCommand(e)
			if IsBatch(e) || err == nil && c.Kind == KindDeleteRoom {
				continue
			}
			if err == nil && c.RequestID != "" {
				requests[c.Room]++
			}
		}
		log = append(log, e)
		got := leader.ApplyEntry(i, e)
		quiet := follower.ApplyEntryQuiet(i, e)
		again := restarted.ApplyEntryQuiet(i, e)
		if want := withoutStates(got); !reflect.DeepEqual(quiet, want) || !reflect.DeepEqual(again, want) {
			t.Fatalf("entry %d %q: the leader answered\n%+v\nthe follower\n%+v\nthe restored replica\n%+v", i, e, want, quiet, again)
		}
		if i%997 == 0 || i == steps {
			snap := snapshotBytes(t, leader)
			if !bytes.Equal(snap, snapshotBytes(t, follower)) || !bytes.Equal(snap, snapshotBytes(t, restarted)) {
				t.Fatalf("entry %d: the replicas' states differ", i)
			}
			restarted = restored(t, snap)
		}
	}
	most := 0
	for _, n := range requests {
		most = max(most, n)
	}
	if want := 2 * SessionWindow; most < want && !raceEnabled {
		t.Fatalf("the busiest room took %d requests, want at least %d: no window filled", most, want)
	}
}
