package chaos

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hangman/hangman/internal/harness"
	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
)

var flagPauseSoak = flag.Bool("chaos.pause-soak", false, "TestPausedLeaderSoak: pause the leader 10 times (issue 15's acceptance run)")

const (
	// leaderPause is how long the leader is stopped: well past the
	// heartbeat timeout, so the others elect a new leader meanwhile.
	leaderPause = 6 * time.Second
	// readyAfterPause is how soon after SIGCONT every node must be ready.
	readyAfterPause = 5 * time.Second
)

// TestPausedLeaderComesBack is issue 15's second scenario, as separate
// processes: SIGSTOP the leader for 6 s while writes are in flight, then
// SIGCONT; every node, the paused one included, must be ready again
// within 5 s, with no restart. Three times here; TestPausedLeaderSoak does it
// ten times.
func TestPausedLeaderComesBack(t *testing.T) {
	pauseLeaderRepeatedly(t, 3)
}

// TestPausedLeaderSoak is the acceptance run of issue 15's second part:
// `go test ./chaos -run TestPausedLeaderSoak -chaos.pause-soak`.
func TestPausedLeaderSoak(t *testing.T) {
	if !*flagPauseSoak {
		t.Skip("the ten-pause run needs -chaos.pause-soak; TestPausedLeaderComesBack pauses three times")
	}
	pauseLeaderRepeatedly(t, 10)
}

func pauseLeaderRepeatedly(t *testing.T, times int) {
	t.Helper()
	if testing.Short() {
		t.Skip("pauses real processes for several seconds; skipped under -short")
	}
	if err := netnsAvailable(); err != nil {
		t.Skipf("network namespaces unavailable (%v): the lab needs root, iproute2 and iptables", err)
	}
	bin := buildBinary(t)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute+time.Duration(times)*40*time.Second)
	defer cancel()
	lab, err := StartLab(ctx, LabConfig{Binary: bin, Dir: t.TempDir(), Nodes: 3, Log: log})
	if err != nil {
		t.Fatalf("start lab: %v", err)
	}
	defer lab.Close()
	if err := setUpPauseRoom(ctx, lab); err != nil {
		t.Fatal(err)
	}
	pids := lab.pids()
	for i := range times {
		if err := lab.WaitReady(ctx, 30*time.Second); err != nil {
			t.Fatalf("pause %d: cluster not ready before the pause: %v", i+1, err)
		}
		leader, err := lab.WaitLeader(ctx, 10*time.Second)
		if err != nil {
			t.Fatalf("pause %d: %v", i+1, err)
		}
		paused := lab.Nodes[leader]
		took, err := pauseOnce(ctx, lab, paused)
		if err != nil {
			t.Fatalf("pause %d of leader %s: %v", i+1, paused.ID, err)
		}
		t.Logf("pause %d: leader %s stopped for %v; every node ready %v after SIGCONT", i+1, paused.ID, leaderPause, took.Round(time.Millisecond))
		if err := sameState(ctx, lab); err != nil {
			t.Fatalf("pause %d of leader %s: %v", i+1, paused.ID, err)
		}
	}
	if err := lab.crashed(); err != nil {
		t.Fatal(err)
	}
	if now := lab.pids(); fmt.Sprint(now) != fmt.Sprint(pids) {
		t.Fatalf("node processes changed from %v to %v: a node was restarted", pids, now)
	}
}

// sameState waits until every node's game state is at one index and
// fails if their digests differ there. A leader resumed by SIGCONT could
// take one more command under the new leader's term, at an index where
// that leader wrote another, and apply its own (hashicorp/raft#695): the
// replicas' rooms then differ for good, and nothing else here would see
// it. The window is a few microseconds of the leader's raft loop, so the
// pauses here seldom hit it; TestNewTermHeartbeatDeposesTheLeaderBeforeItAppends
// in raftnode recreates it every time.
func sameState(ctx context.Context, lab *Lab) error {
	var diverged []string
	err := harness.Poll(ctx, 15*time.Second, func() error {
		var err error
		_, diverged, err = compareDigests(ctx, lab)
		return err
	})
	if err != nil {
		return fmt.Errorf("comparing the replicas' states: %w", err)
	}
	if len(diverged) > 0 {
		return errors.New(strings.Join(diverged, "; "))
	}
	return nil
}

// setUpPauseRoom makes the room the writers guess in.
func setUpPauseRoom(ctx context.Context, lab *Lab) error {
	leader, err := lab.WaitLeader(ctx, 10*time.Second)
	if err != nil {
		return err
	}
	g := lab.Nodes[leader].Game()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := g.CreateRoom(cctx, &hangmanv1.CreateRoomRequest{Room: "pause", MaxWrong: 26, RequestId: "create-pause"}); err != nil {
		return fmt.Errorf("create room: %w", err)
	}
	if _, err := g.JoinRoom(cctx, &hangmanv1.JoinRoomRequest{Room: "pause", PlayerId: "p", Name: "p", RequestId: "join-pause", Token: tokenOf("p")}); err != nil {
		return fmt.Errorf("join room: %w", err)
	}
	return nil
}

// pauseOnce stops node for leaderPause while every node takes writes, and
// returns how long after SIGCONT every node was ready.
func pauseOnce(ctx context.Context, lab *Lab, node *Node) (time.Duration, error) {
	wctx, stopWriters := context.WithCancel(ctx)
	acked, wait := writeToAll(wctx, lab)
	defer func() {
		stopWriters()
		wait()
	}()
	// The pause must catch writes in flight: wait until they flow.
	if err := harness.Poll(ctx, 10*time.Second, func() error {
		if acked.Load() < 10 {
			return errors.New("fewer than 10 writes acknowledged")
		}
		return nil
	}); err != nil {
		return 0, fmt.Errorf("writes before the pause: %w", err)
	}
	sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	before, err := node.Cluster().Status(sctx, &hangmanv1.StatusRequest{})
	cancel()
	if err != nil {
		return 0, fmt.Errorf("status of the leader: %w", err)
	}
	if err := node.Proc.signal(syscall.SIGSTOP); err != nil {
		return 0, err
	}
	// Holding the pause is the fault itself.
	time.Sleep(leaderPause)
	if err := node.Proc.signal(syscall.SIGCONT); err != nil {
		return 0, err
	}
	resumed := time.Now()
	err = harness.Poll(ctx, readyAfterPause, func() error { return rejoined(ctx, lab, before.GetTerm()) })
	took := time.Since(resumed)
	if err != nil {
		return took, fmt.Errorf("not every node ready within %v of SIGCONT: %w", readyAfterPause, err)
	}
	return took, nil
}

// rejoined checks that every node is ready, has moved past term (so the
// others elected a leader during the pause, and the paused node knows it)
// and names the same leader.
func rejoined(ctx context.Context, lab *Lab, term uint64) error {
	leader := ""
	for _, n := range lab.Nodes {
		if err := harness.WaitHTTP(ctx, n.httpURL()+"/readyz", 500*time.Millisecond, nil); err != nil {
			return fmt.Errorf("%s: %w", n.ID, err)
		}
		sctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		st, err := n.Cluster().Status(sctx, &hangmanv1.StatusRequest{})
		cancel()
		switch {
		case err != nil:
			return fmt.Errorf("%s status: %w", n.ID, err)
		case st.GetTerm() <= term:
			return fmt.Errorf("%s is in term %d, the paused leader's: no election seen", n.ID, st.GetTerm())
		case st.GetLeaderId() == "" || leader != "" && st.GetLeaderId() != leader:
			return fmt.Errorf("%s sees leader %q, another node %q", n.ID, st.GetLeaderId(), leader)
		}
		leader = st.GetLeaderId()
	}
	return nil
}

// writeToAll guesses in the pause room through every node, one call at a
// time per node with a one-second deadline, until ctx ends. It counts the
// guesses that went through the log: applied, or refused by the rules
// (FailedPrecondition: the round is over); wait returns once every writer
// stopped.
func writeToAll(ctx context.Context, lab *Lab) (acked *atomic.Int64, wait func()) {
	acked = new(atomic.Int64)
	var wg sync.WaitGroup
	for i, n := range lab.Nodes {
		g := n.Game()
		wg.Go(func() {
			for k := 0; ctx.Err() == nil; k++ {
				cctx, cancel := context.WithTimeout(ctx, time.Second)
				// Most guesses are refused once the round is over; a
				// refusal is a log entry all the same.
				_, err := g.Guess(cctx, &hangmanv1.GuessRequest{Room: "pause", PlayerId: "p", Token: tokenOf("p"),
					Letter: string(rune('a' + (i*7+k)%26)), RequestId: fmt.Sprintf("pause-%d-%d-%d", i, time.Now().UnixNano(), k)})
				cancel()
				if err == nil || status.Code(err) == codes.FailedPrecondition {
					acked.Add(1)
				}
			}
		})
	}
	return acked, wg.Wait
}

// pids returns the process id of every node, to tell a restart.
func (l *Lab) pids() []int {
	var out []int
	for _, n := range l.Nodes {
		n.Proc.mu.Lock()
		if n.Proc.cmd != nil {
			out = append(out, n.Proc.cmd.Process.Pid)
		}
		n.Proc.mu.Unlock()
	}
	return out
}
