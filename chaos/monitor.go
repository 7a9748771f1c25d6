package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/hangman/hangman/wire"
)

// leaderMonitor watches raft terms over the whole run, to count leader
// changes nobody caused (DESIGN.md guarantee 7: a busy machine does not
// cause leader changes).
//
// A leader change is a rise of the highest term any node reports: raft
// starts every election, won or not, by raising the candidate's term, so
// this counts failed elections too (with pre-vote, a node that merely
// suspects the leader raises nothing). Terms come from two sources: every
// node's Status, polled every 100 ms, and every hangman.cluster.leader
// message any node's NATS server delivers.
//
// The window rule: a change belongs to an injected fault if it happens
// between the fault's start and Settle after the cluster was whole again
// (every node ready, one leader, all caught up) once the fault healed;
// every other change is "outside injected faults" and must not happen. The
// cpu-hog fault opens no such window: zero changes is its expectation,
// during the hog and Settle after it.
type leaderMonitor struct {
	mu      sync.Mutex
	maxTerm uint64
	changes []leaderChange
	windows []*faultWindow
}

// leaderChange is one observed rise of the term.
type leaderChange struct {
	At     time.Time
	Term   uint64
	Leader string
	Source string
}

// faultWindow is the time a fault may legitimately cause elections.
type faultWindow struct {
	Kind  FaultKind
	Start time.Time
	// Whole is when the cluster was whole again; zero while it is not.
	Whole time.Time
	// Strict marks a fault under which no election may happen at all.
	Strict bool
}

func newLeaderMonitor() *leaderMonitor { return &leaderMonitor{} }

// observe takes one term seen on a node (leader may be empty).
func (m *leaderMonitor) observe(term uint64, leader, source string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if term <= m.maxTerm {
		return
	}
	if m.maxTerm != 0 {
		m.changes = append(m.changes, leaderChange{At: time.Now(), Term: term, Leader: leader, Source: source})
	}
	m.maxTerm = term
}

// open starts a fault's window.
func (m *leaderMonitor) open(kind FaultKind, strict bool) *faultWindow {
	w := &faultWindow{Kind: kind, Start: time.Now(), Strict: strict}
	m.mu.Lock()
	m.windows = append(m.windows, w)
	m.mu.Unlock()
	return w
}

// whole marks the cluster whole again after w's fault.
func (m *leaderMonitor) whole(w *faultWindow) {
	m.mu.Lock()
	if w.Whole.IsZero() {
		w.Whole = time.Now()
	}
	m.mu.Unlock()
}

// quietSince returns when the last window's settle time ends: a strict
// fault started then sees no election caused by the one before.
func (m *leaderMonitor) quietSince(settle time.Duration) time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	var t time.Time
	for _, w := range m.windows {
		if w.Whole.IsZero() {
			return time.Now().Add(settle)
		}
		if e := w.Whole.Add(settle); e.After(t) {
			t = e
		}
	}
	return t
}

// leaderCounts is what classify found.
type leaderCounts struct {
	Total, Injected, Outside, Strict int
	// StrictByKind counts the changes under each strict kind.
	StrictByKind map[FaultKind]int
	Examples     []string
}

// classify applies the window rule to every change seen.
func (m *leaderMonitor) classify(settle time.Duration) leaderCounts {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := leaderCounts{Total: len(m.changes), StrictByKind: map[FaultKind]int{}}
	in := func(w *faultWindow, t time.Time) bool {
		return !t.Before(w.Start) && (w.Whole.IsZero() || !t.After(w.Whole.Add(settle)))
	}
	for _, ch := range m.changes {
		var lenient, strict *faultWindow
		for _, w := range m.windows {
			if !in(w, ch.At) {
				continue
			}
			if w.Strict {
				strict = w
			} else {
				lenient = w
			}
		}
		desc := fmt.Sprintf("term %d (leader %q, seen by %s) at %s", ch.Term, ch.Leader, ch.Source, ch.At.UTC().Format("15:04:05.000"))
		switch {
		case lenient != nil:
			c.Injected++
		case strict != nil:
			c.Strict++
			c.StrictByKind[strict.Kind]++
			if len(c.Examples) < 10 {
				c.Examples = append(c.Examples, fmt.Sprintf("leader change under %s: %s", strict.Kind, desc))
			}
		default:
			c.Outside++
			if len(c.Examples) < 10 {
				c.Examples = append(c.Examples, "leader change outside injected faults: "+desc)
			}
		}
	}
	return c
}

// run polls every node's Status until ctx ends.
func (m *leaderMonitor) run(ctx context.Context, lab *Lab) {
	var wg sync.WaitGroup
	for _, n := range lab.Nodes {
		wg.Go(func() {
			for ctx.Err() == nil {
				if n.Proc.running() {
					if st, err := n.status(ctx); err == nil {
						m.observe(st.GetTerm(), st.GetLeaderId(), "status of "+n.ID)
					}
				}
				select {
				case <-ctx.Done():
				case <-time.After(100 * time.Millisecond):
				}
			}
		})
	}
	wg.Wait()
}

// observeMessage takes one hangman.cluster.leader message.
func (m *leaderMonitor) observeMessage(data []byte, source string) {
	var lm wire.LeaderChange
	if json.Unmarshal(data, &lm) == nil {
		m.observe(lm.Term, lm.Leader, source)
	}
}
