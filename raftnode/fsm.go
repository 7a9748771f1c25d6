package raftnode

import (
	"bytes"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/hangman/hangman/raftnode/publish"
	"github.com/hangman/hangman/services/game"
)

// fsm adapts game.Machine to raft. It applies committed entries in batches
// (raft.BatchingFSM) and, while the node publishes, hands every change to
// onChange while holding its lock, so the publisher sees changes in log
// order.
type fsm struct {
	mu      sync.RWMutex
	machine *game.Machine
	// lastIndex is the index of the last entry raft handed over, whatever
	// its type: what linearizable reads wait for.
	lastIndex uint64
	// applied is closed and replaced after every batch, to wake readers
	// waiting for an index.
	applied chan struct{}
	// onChange, if set, receives each change made by a batch (called with
	// mu held; it must not block) while publishing says so.
	onChange   func([]publish.Change)
	publishing func() bool
	// self is this node's id. The entries it proposes carry it in
	// raft.Log.Extensions (see newBatcher): only their results reach a
	// caller, so only for them, or while publishing, are the rooms'
	// public states built.
	self []byte
	// progress is when the last batch was applied (Unix nanoseconds), for
	// the leader's stall watchdog. It never feeds the game state.
	progress atomic.Int64
	// audit, if set, digests the state at fixed indexes (audit.go).
	audit *stateAudit
}

// applyResult is what Raft.Apply's future returns on the proposing node:
// one result per command of the entry.
type applyResult struct {
	results []game.Result
	index   uint64
}

var _ raft.BatchingFSM = (*fsm)(nil)

func newFSM() *fsm {
	return &fsm{machine: game.New(), applied: make(chan struct{})}
}

// Apply applies one entry; raft calls ApplyBatch instead, this satisfies
// the raft.FSM interface.
func (f *fsm) Apply(l *raft.Log) any {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch applies a batch of committed entries under one lock.
func (f *fsm) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	var changes []publish.Change
	f.mu.Lock()
	// Publishing starts only under mu (becomeLeader), so it cannot start
	// in the middle of a batch.
	publishing := f.onChange != nil && f.publishing != nil && f.publishing()
	var audits []audited
	for i, l := range logs {
		if f.audit != nil {
			// The state as it is stands for every index before this entry.
			audits = f.audit.collect(f.machine, l.Index-1, audits)
		}
		f.lastIndex = max(f.lastIndex, l.Index)
		if l.Type != raft.LogCommand || isMarker(l.Data) {
			continue
		}
		if f.audit != nil {
			f.audit.feed(l.Index, l.Data)
		}
		var results []game.Result
		if publishing || bytes.Equal(l.Extensions, f.self) {
			results = f.machine.ApplyEntry(l.Index, l.Data)
		} else {
			// Another node's entry on a node that does not publish:
			// nobody reads these results' states.
			results = f.machine.ApplyEntryQuiet(l.Index, l.Data)
		}
		out[i] = &applyResult{results: results, index: l.Index}
		if !publishing {
			continue
		}
		for _, res := range results {
			if res.Event != nil {
				changes = append(changes, publish.Change{State: res.State, Event: *res.Event, History: res.History})
			}
		}
	}
	if len(changes) > 0 {
		f.onChange(changes)
	}
	if f.audit != nil {
		audits = f.audit.collect(f.machine, f.lastIndex, audits)
	}
	close(f.applied)
	f.applied = make(chan struct{})
	f.mu.Unlock()
	f.progress.Store(time.Now().UnixNano())
	if len(audits) > 0 {
		f.audit.emit(audits)
	}
	return out
}

// waitApplied returns a channel closed at the next applied batch, and the
// index applied now.
func (f *fsm) waitApplied() (<-chan struct{}, uint64) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.applied, f.lastIndex
}

// leaderMarker is the entry a new leader commits before serving
// linearizable reads. Raft's own no-op and barrier entries never reach the
// FSM, so a read index pointing at one could never be waited for; after
// this marker, every entry the leader appends reaches the FSM. Game
// commands start with a version byte of 1 or more, so the two never mix.
var leaderMarker = []byte{0}

func isMarker(data []byte) bool { return len(data) == 1 && data[0] == 0 }

// Snapshot serialises the state under the read lock; raft persists the
// bytes while applying goes on.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var buf bytes.Buffer
	if err := f.machine.Snapshot(&buf); err != nil {
		return nil, fmt.Errorf("snapshot game state: %w", err)
	}
	return snapshot(buf.Bytes()), nil
}

// Restore replaces the state with a snapshot.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	m := game.New()
	if err := m.Restore(rc); err != nil {
		return fmt.Errorf("restore game state: %w", err)
	}
	f.mu.Lock()
	f.machine = m
	f.lastIndex = m.Applied()
	if f.audit != nil {
		f.audit.restored()
	}
	close(f.applied)
	f.applied = make(chan struct{})
	f.mu.Unlock()
	return nil
}

type snapshot []byte

func (s snapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	return sink.Close()
}

func (s snapshot) Release() {}
