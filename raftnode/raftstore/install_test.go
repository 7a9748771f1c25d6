package raftstore

import (
	"encoding/binary"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/hangman/hangman/internal/harness"
)

// countFSM counts the commands it applied: the least state a snapshot can
// carry.
type countFSM struct {
	mu sync.Mutex
	n  uint64
}

func (f *countFSM) Apply(*raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	return nil
}

func (f *countFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return countSnapshot(f.n), nil
}

func (f *countFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var b [8]byte
	if _, err := io.ReadFull(rc, b[:]); err != nil {
		return err
	}
	f.mu.Lock()
	f.n = binary.BigEndian.Uint64(b[:])
	f.mu.Unlock()
	return nil
}

type countSnapshot uint64

func (s countSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(binary.BigEndian.AppendUint64(nil, uint64(s))); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (countSnapshot) Release() {}

// TestFollowerRestartsAfterASnapshotInstall: a follower that holds the
// start of the log (a wiped node catching up from entry 1) and is then
// sent a snapshot, because the leader compacted its log past what the
// follower has, must drop the entries it had: raft appends the ones after
// the snapshot next, and a log with a hole in it is damage the next start
// refuses (seen in a chaos run: a node wiped, caught up, restarted, and
// refused with "the log jumps from entry 512 to 13894"). The store says
// it holds no gaps (raft.MonotonicLogStore), so raft removes them.
func TestFollowerRestartsAfterASnapshotInstall(t *testing.T) {
	conf := func(id string) *raft.Config {
		c := raft.DefaultConfig()
		c.LocalID = raft.ServerID(id)
		c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout = 50*time.Millisecond, 50*time.Millisecond, 50*time.Millisecond
		c.CommitTimeout = 5 * time.Millisecond
		c.SnapshotThreshold, c.SnapshotInterval = 1<<40, time.Hour // snapshots only when the test asks
		c.Logger = hclog.NewNullLogger()
		return c
	}
	leaderConf := conf("leader")
	leaderConf.TrailingLogs = 10 // the leader keeps little behind its snapshot
	leaderAddr, leaderTrans := raft.NewInmemTransport("leader")
	followerAddr, followerTrans := raft.NewInmemTransport("follower")
	connect := func() {
		leaderTrans.Connect(followerAddr, followerTrans)
		followerTrans.Connect(leaderAddr, leaderTrans)
	}
	connect()
	leaderStore := raft.NewInmemStore()
	leader, err := raft.NewRaft(leaderConf, &countFSM{}, leaderStore, leaderStore, raft.NewInmemSnapshotStore(), leaderTrans)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = leader.Shutdown().Error() })
	if err := leader.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{ID: "leader", Address: leaderAddr}}}).Error(); err != nil {
		t.Fatal(err)
	}
	harness.EventuallyTrue(t, 5*time.Second, "a leader", func() bool { return leader.State() == raft.Leader })
	apply := func(n int) {
		t.Helper()
		for i := range n {
			if err := leader.Apply(fmt.Appendf(nil, "cmd %d", i), time.Second).Error(); err != nil {
				t.Fatal(err)
			}
		}
	}

	dir := t.TempDir()
	store, err := OpenLog(dir, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	follower, err := raft.NewRaft(conf("follower"), &countFSM{}, store, store, raft.NewInmemSnapshotStore(), followerTrans)
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = follower.Shutdown().Error()
			store.Close()
		}
	})
	apply(100)
	if err := leader.AddNonvoter("follower", followerAddr, 0, time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	caughtUp := func() bool { return follower.AppliedIndex() >= leader.AppliedIndex() }
	harness.EventuallyTrue(t, 5*time.Second, "the follower to copy the log from its start", caughtUp)
	if first, err := store.FirstIndex(); err != nil || first != 1 {
		t.Fatalf("the follower's log starts at %d (%v), want 1", first, err)
	}

	// Cut off, the follower falls behind a snapshot that compacts the
	// leader's log past the follower's last entry.
	leaderTrans.DisconnectAll()
	followerTrans.DisconnectAll()
	apply(100)
	if err := leader.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	behind, err := store.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	if first, err := leaderStore.FirstIndex(); err != nil || first <= behind+1 {
		t.Fatalf("the leader's log starts at %d (%v), not past the follower's %d", first, err, behind)
	}
	connect()
	apply(10)
	harness.EventuallyTrue(t, 5*time.Second, "the follower to install the snapshot and catch up", caughtUp)

	if err := follower.Shutdown().Error(); err != nil {
		t.Fatal(err)
	}
	store.Close()
	closed = true
	again, err := OpenLog(dir, testLogger(t))
	if err != nil {
		t.Fatalf("the follower's log after a snapshot install does not open: %v", err)
	}
	defer again.Close()
	if first, err := again.FirstIndex(); err != nil || first <= behind {
		t.Fatalf("the follower's log still starts at %d (%v), at or before its entries from before the snapshot (%d)", first, err, behind)
	}
}

// TestStoreSaysItIsMonotonicThroughItsWrappers: raft asks the store it is
// given, which on a node is Persisting over raft's LogCache over Store.
func TestStoreSaysItIsMonotonicThroughItsWrappers(t *testing.T) {
	store, err := OpenLog(t.TempDir(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	cache, err := raft.NewLogCache(8, store)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		logs raft.LogStore
		want bool
	}{
		{"store", store, true},
		{"as a node wraps it", Persisting{LogStore: cache}, true},
		{"another store", Persisting{LogStore: raft.NewInmemStore()}, false},
	} {
		m, ok := tc.logs.(raft.MonotonicLogStore)
		if got := ok && m.IsMonotonic(); got != tc.want {
			t.Errorf("%s: monotonic %v, want %v", tc.name, got, tc.want)
		}
	}
}
