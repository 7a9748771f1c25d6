package raftnode

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
	"github.com/hangman/hangman/services/api"
	"github.com/hangman/hangman/services/game"
)

func mustEncode(t *testing.T, room, player, letter string) []byte {
	t.Helper()
	return game.Command{Kind: game.KindGuess, Room: room, Player: player, Letter: letter, RequestID: "stuck-" + letter, TokenHash: game.HashToken(tokenOf(player))}.Encode()
}

// stallingStore is the node's real log store with a switch that makes
// writes hang, as on a disk that stopped answering.
type stallingStore struct {
	raft.LogStore
	mu      sync.Mutex
	stalled bool
	release chan struct{}
}

func (s *stallingStore) stall() {
	s.mu.Lock()
	s.stalled = true
	s.release = make(chan struct{})
	s.mu.Unlock()
}

func (s *stallingStore) unstall() {
	s.mu.Lock()
	if s.stalled {
		s.stalled = false
		close(s.release)
	}
	s.mu.Unlock()
}

func (s *stallingStore) wait() {
	s.mu.Lock()
	stalled, release := s.stalled, s.release
	s.mu.Unlock()
	if stalled {
		<-release
	}
}

func (s *stallingStore) StoreLog(l *raft.Log) error {
	s.wait()
	return s.LogStore.StoreLog(l)
}

func (s *stallingStore) StoreLogs(ls []*raft.Log) error {
	s.wait()
	return s.LogStore.StoreLogs(ls)
}

func TestLeaderWithStalledDiskStepsDown(t *testing.T) {
	stores := make(map[string]*stallingStore)
	var mu sync.Mutex
	c := newTestCluster(t, 3, func(cfg *Config) {
		cfg.StallTimeout = time.Second
		id := cfg.ID
		cfg.wrapLogStore = func(ls raft.LogStore) raft.LogStore {
			s := &stallingStore{LogStore: ls}
			mu.Lock()
			stores[id] = s
			mu.Unlock()
			return s
		}
	})
	old := c.leader()
	setupRoom(t, c, old, "stall")
	mu.Lock()
	s := stores[c.cfgs[old].ID]
	mu.Unlock()
	s.stall()
	t.Cleanup(s.unstall)
	// A write arrives at the stalled leader: it cannot commit, and the
	// caller is told the outcome is unknown when its deadline passes.
	stuck := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _, err := c.nodes[old].Propose(ctx, "stall", mustEncode(t, "stall", "alice", "z"))
		stuck <- err
	}()

	// The stalled leader's heartbeats go on; only the watchdog can make
	// way for a leader whose disk works.
	waitFor(t, 15*time.Second, "another node to lead", func() error {
		for i, n := range c.alive() {
			if i != old && n.IsLeader() {
				return nil
			}
		}
		return fmt.Errorf("no other leader yet")
	})
	if err := c.nodes[old].Ready(); err == nil {
		t.Fatalf("the stalled node still reports ready")
	}
	if err := <-stuck; !errors.Is(err, api.ErrUnknownOutcome) {
		t.Fatalf("write stuck at the stalled leader returned %v, want outcome unknown", err)
	}
	ctx := ctxT(t)
	other := (old + 1) % 3
	if _, err := c.client(other).Guess(ctx, &hangmanv1.GuessRequest{Room: "stall", PlayerId: "alice", Letter: "e", RequestId: "after-stall", Token: tokenOf("alice")}); err != nil {
		t.Fatalf("guess after the stalled leader stepped down: %v", err)
	}
}
