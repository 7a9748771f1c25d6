package raftnode

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hangman/hangman/internal/harness"
	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
)

const (
	guessOK     = `hangman_grpc_requests_total{code="OK",method="/hangman.v1.GameService/Guess"}`
	eventsOut   = `hangman_published_total{kind="event"}`
	statesOut   = `hangman_published_total{kind="state"}`
	commitIndex = `hangman_raft_commit_index`
	appliedOK   = `hangman_apply_seconds_count{result="ok"}`
)

// TestMetricsChangeWhenGuessesCommit scrapes the leader and a follower
// before and after guesses commit, and sees the named series move.
func TestMetricsChangeWhenGuessesCommit(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	li := c.leader()
	fi := (li + 1) % 3

	before := c.metricsOf(li)
	for _, want := range []string{
		`hangman_raft_state{state="leader"}`, `hangman_raft_term`, commitIndex, `hangman_raft_applied_index`,
		eventsOut, statesOut, `hangman_serf_members{status="alive"}`, `hangman_node_ready`,
	} {
		harness.Series(t, before, want)
	}
	if v := harness.Series(t, before, `hangman_raft_state{state="leader"}`); v != 1 {
		t.Fatalf("leader reports raft state leader = %v", v)
	}
	if v := harness.Series(t, before, `hangman_serf_members{status="alive"}`); v != 3 {
		t.Fatalf("serf members alive = %v, want 3", v)
	}
	if v := harness.Series(t, c.metricsOf(fi), `hangman_raft_state{state="follower"}`); v != 1 {
		t.Fatalf("follower reports raft state follower = %v", v)
	}
	followerBefore := harness.Series(t, c.metricsOf(fi), commitIndex)

	ctx := ctxT(t)
	cl := c.client(li)
	if _, err := cl.CreateRoom(ctx, &hangmanv1.CreateRoomRequest{Room: "metrics"}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.JoinRoom(ctx, &hangmanv1.JoinRoomRequest{Room: "metrics", PlayerId: "ann", Name: "Ann", Token: harness.TokenOf("ann")}); err != nil {
		t.Fatal(err)
	}
	const guesses = 3
	for _, l := range "eat"[:guesses] {
		if _, err := cl.Guess(ctx, &hangmanv1.GuessRequest{Room: "metrics", PlayerId: "ann", Letter: string(l), Token: harness.TokenOf("ann")}); err != nil {
			t.Fatal(err)
		}
	}

	after := c.metricsOf(li)
	if d := harness.Series(t, after, guessOK) - before[guessOK]; d != guesses {
		t.Errorf("%s grew by %v, want %d", guessOK, d, guesses)
	}
	if d := harness.Series(t, after, commitIndex) - before[commitIndex]; d < guesses+2 {
		t.Errorf("%s grew by %v, want at least %d (create, join, guesses)", commitIndex, d, guesses+2)
	}
	if d := harness.Series(t, after, appliedOK) - before[appliedOK]; d < guesses+2 {
		t.Errorf("%s grew by %v, want at least %d", appliedOK, d, guesses+2)
	}
	if after[`hangman_grpc_request_seconds_count{method="/hangman.v1.GameService/Guess"}`] < guesses {
		t.Errorf("gRPC latency histogram did not count the guesses")
	}
	// Publishing is asynchronous: poll until the events are out.
	harness.Eventually(t, 10*time.Second, "published events counted", func() error {
		m := c.metricsOf(li)
		if d := m[eventsOut] - before[eventsOut]; d < guesses+2 {
			return fmt.Errorf("%s grew by %v", eventsOut, d)
		}
		if d := m[statesOut] - before[statesOut]; d < guesses+2 {
			return fmt.Errorf("%s grew by %v", statesOut, d)
		}
		return nil
	})
	// The follower applies the same entries.
	harness.Eventually(t, 10*time.Second, "the follower's commit index", func() error {
		if d := c.metricsOf(fi)[commitIndex] - followerBefore; d < guesses+2 {
			return fmt.Errorf("follower's %s grew by %v", commitIndex, d)
		}
		return nil
	})
}

// TestReadinessFollowsTheCluster: a node that loses its cluster (two of
// three nodes die) stops being ready once its leader is gone, and is ready
// again when a quorum is back.
func TestReadinessFollowsTheCluster(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.leader()
	readyz := func(i int) (int, string) {
		resp, err := http.Get("http://" + c.cfgs[i].HTTPAddr + "/readyz")
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	wantReady := func(i, code int) {
		t.Helper()
		harness.Eventually(t, 15*time.Second, fmt.Sprintf("%s /readyz %d", c.cfgs[i].ID, code), func() error {
			if got, body := readyz(i); got != code {
				return fmt.Errorf("got %d %s", got, body)
			}
			return nil
		})
	}
	for i := range 3 {
		wantReady(i, http.StatusOK)
	}
	// The survivor is a follower or the leader; either way it must notice.
	const survivor = 2
	c.kill(0)
	c.kill(1)
	wantReady(survivor, http.StatusServiceUnavailable)
	if v := harness.Series(t, c.metricsOf(survivor), "hangman_node_ready"); v != 0 {
		t.Errorf("hangman_node_ready = %v on a node without a cluster", v)
	}
	if code, body := readyz(survivor); !strings.Contains(body, "reason") {
		t.Errorf("503 body gives no reason: %d %s", code, body)
	}
	if code, _ := http.Get("http://" + c.cfgs[survivor].HTTPAddr + "/healthz"); code == nil || code.StatusCode != http.StatusOK {
		t.Errorf("/healthz must stay 200 while the process runs")
	} else {
		code.Body.Close()
	}

	c.start(1)
	wantReady(survivor, http.StatusOK)
	wantReady(1, http.StatusOK)
	if v := harness.Series(t, c.metricsOf(survivor), "hangman_node_ready"); v != 1 {
		t.Errorf("hangman_node_ready = %v once the cluster is back", v)
	}
}

// TestNoSecretWordInLogs plays a round through a follower (so forwarding
// logs too) with every node logging JSON at debug level, and finds the
// word in no log line written while the round was playing.
func TestNoSecretWordInLogs(t *testing.T) {
	c, logs := newLoggedCluster(t, 3)
	li := c.leader()
	fi := (li + 1) % 3
	ctx := ctxT(t)
	cl := c.client(fi)
	if _, err := cl.CreateRoom(ctx, &hangmanv1.CreateRoomRequest{Room: "hush"}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.JoinRoom(ctx, &hangmanv1.JoinRoomRequest{Room: "hush", PlayerId: "ann", Name: "Ann", Token: harness.TokenOf("ann")}); err != nil {
		t.Fatal(err)
	}
	var playing string // the logs up to the last guess that left the round playing
	var word string
	for _, l := range "etaoinshrdlucmfwypvbgkqjxz" {
		r, err := cl.Guess(ctx, &hangmanv1.GuessRequest{Room: "hush", PlayerId: "ann", Letter: string(l), Token: harness.TokenOf("ann")})
		if err != nil {
			t.Fatal(err)
		}
		if r.GetState().GetStatus() != "playing" {
			word = r.GetState().GetWord()
			break
		}
		playing = logs.String()
	}
	if word == "" {
		t.Fatal("the round did not end with the word revealed")
	}
	lines := strings.Split(strings.TrimSpace(playing), "\n")
	if len(lines) < 20 {
		t.Fatalf("only %d log lines: is debug logging on?", len(lines))
	}
	re := regexp.MustCompile(`(?i)\b` + regexp.QuoteMeta(word) + `\b`)
	for _, line := range lines {
		if re.MatchString(line) {
			t.Errorf("the word %q is in a log line written while its round was playing:\n%s", word, line)
		}
	}
	t.Logf("%d debug log lines checked for %q", len(lines), word)
}
