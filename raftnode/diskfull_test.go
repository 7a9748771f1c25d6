package raftnode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/hangman/hangman/internal/harness"
	"github.com/hangman/hangman/internal/testdisk"
	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
)

// readyz asks node i's /readyz and returns the HTTP status and reason.
func (c *testCluster) readyz(i int) (int, string) {
	c.t.Helper()
	resp, err := http.Get("http://" + c.cfgs[i].HTTPAddr + "/readyz")
	if err != nil {
		c.t.Fatalf("readyz: %v", err)
	}
	defer resp.Body.Close()
	var body struct{ Reason string }
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body.Reason
}

// serving asks node i's grpc.health.v1 service.
func (c *testCluster) serving(i int) healthpb.HealthCheckResponse_ServingStatus {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	r, err := healthpb.NewHealthClient(c.dial(i)).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		c.t.Fatalf("health check: %v", err)
	}
	return r.GetStatus()
}

// notReadyBecause waits until node i is unready on /readyz and on
// grpc.health.v1, with a reason containing want.
func (c *testCluster) notReadyBecause(i int, want string) {
	c.t.Helper()
	harness.Eventually(c.t, 20*time.Second, fmt.Sprintf("%s not ready: %s", c.cfgs[i].ID, want), func() error {
		code, reason := c.readyz(i)
		if code != http.StatusServiceUnavailable || !strings.Contains(reason, want) {
			return fmt.Errorf("/readyz %d %q", code, reason)
		}
		if st := c.serving(i); st != healthpb.HealthCheckResponse_NOT_SERVING {
			return fmt.Errorf("grpc health %v", st)
		}
		return nil
	})
}

// readyAgain waits until node i is ready on /readyz and grpc.health.v1.
func (c *testCluster) readyAgain(i int) {
	c.t.Helper()
	harness.Eventually(c.t, 30*time.Second, c.cfgs[i].ID+" ready again", func() error {
		if code, reason := c.readyz(i); code != http.StatusOK {
			return fmt.Errorf("/readyz %d %q", code, reason)
		}
		if st := c.serving(i); st != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("grpc health %v", st)
		}
		return nil
	})
}

// TestFullDiskIsUnavailableAndHealsItself fills the disk of a one-node
// cluster: the write that cannot be persisted is Unavailable, says to
// retry with the same request id and names no server path; the node is
// not ready; once space returns, the same request succeeds and the node
// is ready again, without a restart.
func TestFullDiskIsUnavailableAndHealsItself(t *testing.T) {
	disk := testdisk.Small(t, 2<<20)
	c := newTestCluster(t, 1, func(cfg *Config) { cfg.DataDir = disk })
	c.leader()
	setupRoom(t, c, 0, "full")
	cl := c.client(0)
	free := testdisk.Fill(t, disk)

	// bbolt reuses pages it freed, so some writes may still fit; keep
	// guessing until one does not.
	g := &guesser{cl: cl, room: "full"}
	var failed *hangmanv1.GuessRequest
	var failure error
	for i := 0; failed == nil && i < 2000; i++ {
		// No deadline: the node gives up after api.DefaultTimeout and
		// answers (a client whose own deadline passes first is told only
		// that).
		if req, err := g.guess(context.Background()); err != nil {
			failed, failure = req, err
		}
	}
	if failed == nil {
		t.Fatal("2000 writes fit on a full 2 MiB disk")
	}
	if status.Code(failure) != codes.Unavailable || !strings.Contains(failure.Error(), "same request_id") {
		t.Fatalf("write on a full disk: %v; want Unavailable, retry with the same request id", failure)
	}
	if strings.Contains(failure.Error(), disk) || strings.Contains(failure.Error(), "raft.db") {
		t.Fatalf("the error shows a server path: %v", failure)
	}
	t.Logf("write on a full disk: %v", failure)
	c.notReadyBecause(0, "cannot write its raft log")

	free()
	c.readyAgain(0)
	ctx := ctxT(t)
	if _, err := cl.Guess(ctx, failed); err != nil {
		t.Fatalf("the failed write, retried once space returned: %v", err)
	}
}

// clusterWithASmallFollowerDisk starts three nodes, n2's data dir on a
// 2 MiB tmpfs, and moves leadership off n2. It returns the cluster, the
// small disk, n2's index and the leader's.
func clusterWithASmallFollowerDisk(t *testing.T) (c *testCluster, disk string, full, lead int) {
	t.Helper()
	disk = testdisk.Small(t, 2<<20)
	c = newTestCluster(t, 3, func(cfg *Config) {
		if cfg.ID == "n2" {
			cfg.DataDir = disk
		}
	})
	full = 1 // n2
	if c.leader() == full {
		if err := c.nodes[full].raft.LeadershipTransfer().Error(); err != nil {
			t.Fatalf("move leadership off the small disk: %v", err)
		}
	}
	if lead = c.leader(); lead == full {
		t.Fatal("the node on the small disk still leads")
	}
	return c, disk, full, lead
}

// TestFollowerWithAFullDiskIsNotReadyUntilSpaceReturns fills a follower's
// disk while the leader goes on committing: the follower says why it is
// not ready, and catches up and is ready again once space returns.
func TestFollowerWithAFullDiskIsNotReadyUntilSpaceReturns(t *testing.T) {
	c, disk, full, lead := clusterWithASmallFollowerDisk(t)
	setupRoom(t, c, lead, "lag")
	c.converged()
	free := testdisk.Fill(t, disk)
	g := &guesser{cl: c.client(lead), room: "lag"}
	for c.nodes[full].logStore.WriteHealth() == nil {
		if g.n == 2000 {
			t.Fatal("the follower wrote 2000 entries to a full 2 MiB disk")
		}
		if req, err := g.guess(ctxT(t)); err != nil {
			t.Fatalf("guess %s at the leader: %v", req.GetRequestId(), err)
		}
	}
	if err := c.nodes[full].logStore.WriteHealth(); strings.Contains(err.Error(), disk) {
		t.Fatalf("write health %v: want a reason without the path", err)
	}
	c.notReadyBecause(full, "no space left on device")

	free()
	c.readyAgain(full)
	c.converged()
	t.Logf("%d writes acknowledged before and while the follower's disk was full", g.n)
}

// TestFollowerFarBehindIsNotReady holds a follower's log writes (a slow
// disk) while the leader commits more than MaxLag entries: the follower
// keeps its leader but is not ready, and is ready again once it caught up.
func TestFollowerFarBehindIsNotReady(t *testing.T) {
	c, store := newStallingCluster(t, 3, func(cfg *Config) { cfg.MaxLag = 5 })
	lead := c.leader()
	slow := (lead + 1) % 3
	setupRoom(t, c, lead, "slow")
	c.converged()
	s := store(slow)
	s.stall()
	t.Cleanup(s.unstall)
	g := &guesser{cl: c.client(lead), room: "slow"}
	for range 20 {
		if req, err := g.guess(ctxT(t)); err != nil {
			t.Fatalf("guess %s: %v", req.GetRequestId(), err)
		}
	}
	c.notReadyBecause(slow, "entries behind the leader")
	s.unstall()
	c.readyAgain(slow)
}

// guesser makes alice's guesses in a room created with MaxWrong 26: a
// round ends within 26 distinct letters, and then it starts the next.
type guesser struct {
	cl   hangmanv1.GameServiceClient
	room string
	n    int
}

// guess makes the next guess and returns its request and error.
func (g *guesser) guess(ctx context.Context) (*hangmanv1.GuessRequest, error) {
	req := &hangmanv1.GuessRequest{Room: g.room, PlayerId: "alice", Letter: string(rune('a' + g.n%26)), RequestId: fmt.Sprintf("%s-%d", g.room, g.n), Token: harness.TokenOf("alice")}
	r, err := g.cl.Guess(ctx, req)
	if err != nil {
		return req, err
	}
	g.n++
	if r.GetState().GetStatus() != "playing" {
		_, err = g.cl.NewRound(ctx, &hangmanv1.NewRoundRequest{Room: g.room, PlayerId: "alice", Token: harness.TokenOf("alice")})
	}
	return req, err
}

// TestFollowerWithAFullDiskCatchesUpUnderLoad keeps writing, from several
// clients, while a follower's disk is full and after space returns: the
// follower must be replicated to again and catch up without any restart.
// Writes that go on while the follower refuses appends are what wedged
// the leader's pipelined replication to it for good (hashicorp/raft#612):
// a failed append ended the pipeline's decoder while its sender was
// already parked on the next send, so the leader kept heartbeating the
// follower (no election) and never sent it an entry again; restarting the
// follower did not help, only restarting the leader did.
func TestFollowerWithAFullDiskCatchesUpUnderLoad(t *testing.T) {
	c, disk, full, lead := clusterWithASmallFollowerDisk(t)
	rooms := []string{"load1", "load2", "load3", "load4"}
	for _, room := range rooms {
		setupRoom(t, c, lead, room)
	}
	c.converged()

	ctx, stop := context.WithCancel(context.Background())
	var (
		wg    sync.WaitGroup
		acked atomic.Int64
		errs  = make(chan error, len(rooms))
	)
	for _, room := range rooms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g := &guesser{cl: c.client(lead), room: room}
			for ctx.Err() == nil {
				req, err := g.guess(ctx)
				if err != nil && ctx.Err() == nil {
					errs <- fmt.Errorf("guess %s at the leader: %w", req.GetRequestId(), err)
					return
				}
				acked.Add(1)
			}
		}()
	}
	defer func() {
		stop()
		wg.Wait()
	}()
	writing := func(what string, n int64) {
		t.Helper()
		want := acked.Load() + n
		harness.Eventually(t, 30*time.Second, what, func() error {
			select {
			case err := <-errs:
				t.Fatal(err)
			default:
			}
			if got := acked.Load(); got < want {
				return fmt.Errorf("%d of %d writes", got, want)
			}
			return nil
		})
	}

	// The wedge needs a send racing the end of the pipeline's decoder:
	// several rounds make a run that would wedge very likely to.
	const rounds = 8
	for round := 1; round <= rounds; round++ {
		free := testdisk.Fill(t, disk)
		harness.Eventually(t, 30*time.Second, fmt.Sprintf("round %d: the follower's appends to fail", round), func() error {
			if c.nodes[full].logStore.WriteHealth() == nil {
				return errors.New("its log is still writable")
			}
			return nil
		})
		writing(fmt.Sprintf("round %d: writes while the follower cannot append", round), 500)
		free()
		writing(fmt.Sprintf("round %d: writes after space returned", round), 200)
		harness.Eventually(t, 20*time.Second, fmt.Sprintf("round %d: the follower to be replicated to and catch up", round), func() error {
			if err := c.nodes[full].logStore.WriteHealth(); err != nil {
				return err
			}
			leaderCommit, applied := c.nodes[lead].raft.CommitIndex(), c.nodes[full].raft.AppliedIndex()
			if applied+100 < leaderCommit {
				return fmt.Errorf("applied %d, leader committed %d", applied, leaderCommit)
			}
			return nil
		})
	}
	stop()
	wg.Wait()
	c.readyAgain(full)
	c.converged()
	t.Logf("%d writes acknowledged; the follower caught up after each of %d full disks", acked.Load(), rounds)
}
