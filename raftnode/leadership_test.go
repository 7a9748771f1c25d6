package raftnode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/hangman/hangman/internal/harness"
)

// TestAwaitFutureOutlastsAFutureRaftStrands reproduces what kept a node's
// Close waiting forever for its new-leader goroutine: with BatchApplyCh,
// as the node runs raft, an Apply racing Shutdown can queue its future
// after raft's main loop has gone, and nothing answers it. It checks that
// raft still strands such a future (if a release fixes that, awaitFuture
// may go), and that awaitFuture returns once its context ends.
func TestAwaitFutureOutlastsAFutureRaftStrands(t *testing.T) {
	r := singleRaft(t)
	if err := r.Shutdown().Error(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	// Apply chooses at random between its shutdown channel and the queue,
	// which has room for MaxAppendEntries futures: among 64 Applies, one
	// is queued but for a chance of 2^-64.
	var stranded raft.ApplyFuture
	for range 64 {
		f := r.Apply(leaderMarker, time.Second)
		if fmt.Sprintf("%T", f) == "*raft.logFuture" {
			stranded = f
			break
		}
		if err := awaitFuture(context.Background(), f); !errors.Is(err, raft.ErrRaftShutdown) {
			t.Fatalf("a refused Apply answered %v, want %v", err, raft.ErrRaftShutdown)
		}
	}
	if stranded == nil {
		t.Fatal("no Apply after Shutdown was queued")
	}
	answered := make(chan error, 1)
	go func() { answered <- stranded.Error() }()
	harness.Throughout(t, 300*time.Millisecond, "the queued future staying unanswered", func() error {
		select {
		case err := <-answered:
			return fmt.Errorf("raft answered it (%v): awaitFuture's workaround may go", err)
		default:
			return nil
		}
	})

	ctx, cancel := context.WithCancel(context.Background())
	returned := make(chan error, 1)
	go func() { returned <- awaitFuture(ctx, stranded) }()
	cancel()
	select {
	case err := <-returned:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("awaitFuture returned %v, want its context's end", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("awaitFuture still waits 10 s after its context ended")
	}
}

// TestAwaitFutureAnswersWithTheFuture checks that awaitFuture gives raft's
// answer when there is one (a refusal's is checked above).
func TestAwaitFutureAnswersWithTheFuture(t *testing.T) {
	r := singleRaft(t)
	if err := awaitFuture(context.Background(), r.Apply(leaderMarker, time.Second)); err != nil {
		t.Fatalf("apply on a leader: %v", err)
	}
}

// singleRaft starts a one-server raft in memory, configured as a node's
// is where it matters here (BatchApplyCh), and waits until it leads.
func singleRaft(t *testing.T) *raft.Raft {
	t.Helper()
	cfg := raft.DefaultConfig()
	cfg.LocalID = "solo"
	cfg.BatchApplyCh = true
	cfg.Logger = hclog.NewNullLogger()
	cfg.HeartbeatTimeout = 50 * time.Millisecond
	cfg.ElectionTimeout = 50 * time.Millisecond
	cfg.LeaderLeaseTimeout = 50 * time.Millisecond
	store := raft.NewInmemStore()
	addr, trans := raft.NewInmemTransport("")
	if err := raft.BootstrapCluster(cfg, store, store, raft.NewInmemSnapshotStore(), trans, raft.Configuration{Servers: []raft.Server{{ID: cfg.LocalID, Address: addr}}}); err != nil {
		t.Fatal(err)
	}
	r, err := raft.NewRaft(cfg, nopFSM{}, store, store, raft.NewInmemSnapshotStore(), trans)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Shutdown().Error() })
	harness.EventuallyTrue(t, 10*time.Second, "the single server to lead", func() bool { return r.State() == raft.Leader })
	return r
}

// nopFSM applies nothing; singleRaft's tests look at raft's futures only.
type nopFSM struct{}

func (nopFSM) Apply(*raft.Log) any                 { return nil }
func (nopFSM) Snapshot() (raft.FSMSnapshot, error) { return nil, errors.New("no snapshots") }
func (nopFSM) Restore(rc io.ReadCloser) error      { return rc.Close() }
