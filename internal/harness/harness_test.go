package harness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
)

func TestParseMetrics(t *testing.T) {
	for _, tt := range []struct {
		name, page string
		want       map[string]float64
		err        string
	}{
		{name: "series with and without labels", page: "# HELP x what\n# TYPE x gauge\nx 3\ny{a=\"1\",b=\"two words\"} 2.5e+06\n\n", want: map[string]float64{"x": 3, `y{a="1",b="two words"}`: 2.5e6}},
		{name: "no value", page: "x\n", err: "has no value"},
		{name: "bad value", page: "x three\n", err: "invalid syntax"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseMetrics(strings.NewReader(tt.page))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ParseMetrics = %v, %v; want an error with %q", got, err, tt.err)
				}
				return
			}
			if err != nil || len(got) != len(tt.want) {
				t.Fatalf("ParseMetrics = %v, %v; want %v", got, err, tt.want)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s = %v, want %v", k, got[k], v)
				}
			}
		})
	}
}

func TestMetricReadsOneSeriesOfAPage(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("hangman_nats_routes 2\n"))
	})
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	url := "http://" + ln.Addr().String() + "/metrics"
	if v, err := Metric(context.Background(), url, "hangman_nats_routes"); err != nil || v != 2 {
		t.Fatalf("Metric = %v, %v; want 2", v, err)
	}
	if _, err := Metric(context.Background(), url, "missing"); err == nil {
		t.Fatal("Metric of a series the page lacks: no error")
	}
	if m := MustScrape(t, url); m["hangman_nats_routes"] != 2 {
		t.Fatalf("MustScrape = %v, want hangman_nats_routes 2", m)
	}
	if failed := run(func(tb TB) { MustScrape(tb, url+"-not-there") }); failed == "" {
		t.Fatal("MustScrape of a page that is not there did not fail")
	}
}

func TestPollWaitsForTheConditionOrSaysWhy(t *testing.T) {
	start := time.Now()
	calls := 0
	if err := Poll(context.Background(), 10*time.Second, func() error {
		if calls++; calls < 3 {
			return errors.New("not yet")
		}
		return nil
	}); err != nil || calls != 3 {
		t.Fatalf("Poll = %v after %d calls; want nil after 3", err, calls)
	}
	err := Poll(context.Background(), 50*time.Millisecond, func() error { return errors.New("still down") })
	if err == nil || !strings.Contains(err.Error(), "still down") || time.Since(start) > 5*time.Second {
		t.Fatalf("Poll of a condition that never holds = %v", err)
	}
}

func TestFreePortsAreDistinctAndFree(t *testing.T) {
	ports := FreePorts(t, 20)
	seen := map[int]bool{}
	for _, p := range ports {
		if seen[p] {
			t.Fatalf("port %d twice in %v", p, ports)
		}
		seen[p] = true
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("port %d not free: %v", p, err)
		}
		_ = ln.Close()
		// Serf gossips over UDP on the port it listens on for TCP.
		udp, err := net.ListenPacket("udp", addr)
		if err != nil {
			t.Fatalf("port %d not free for UDP: %v", p, err)
		}
		_ = udp.Close()
	}
}

// fatalTB is a TB whose Fatalf records the failure and ends the calling
// goroutine, as testing's does; run calls a helper on such a goroutine.
type fatalTB struct{ failed string }

func (*fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.failed = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// run calls helper with a fatalTB and returns what it failed with, "" if
// nothing.
func run(helper func(TB)) string {
	f := &fatalTB{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		helper(f)
	}()
	<-done
	return f.failed
}

func TestEventuallyTrueWaitsOrFailsNamingTheCondition(t *testing.T) {
	calls := 0
	if failed := run(func(tb TB) {
		EventuallyTrue(tb, 10*time.Second, "three calls", func() bool { calls++; return calls >= 3 })
	}); failed != "" || calls != 3 {
		t.Fatalf("EventuallyTrue failed with %q after %d calls; want success after 3", failed, calls)
	}
	failed := run(func(tb TB) { EventuallyTrue(tb, 50*time.Millisecond, "the impossible", func() bool { return false }) })
	if !strings.Contains(failed, "the impossible") {
		t.Fatalf("EventuallyTrue of a condition that never holds failed with %q, want it named", failed)
	}
}

func TestThroughoutWatchesForTheWholeTimeAndStopsAtAViolation(t *testing.T) {
	calls := 0
	start := time.Now()
	if failed := run(func(tb TB) {
		Throughout(tb, 100*time.Millisecond, "quiet", func() error { calls++; return nil })
	}); failed != "" || time.Since(start) < 100*time.Millisecond || calls < 2 {
		t.Fatalf("Throughout of a condition that holds: failed %q after %v and %d calls", failed, time.Since(start), calls)
	}
	calls = 0
	failed := run(func(tb TB) {
		Throughout(tb, 10*time.Second, "quiet", func() error {
			if calls++; calls == 3 {
				return errors.New("a noise")
			}
			return nil
		})
	})
	if !strings.Contains(failed, "quiet: a noise") || calls != 3 {
		t.Fatalf("Throughout failed with %q after %d calls; want the third call's error", failed, calls)
	}
}

func TestSeriesNamesTheSeriesOfTheSameMetric(t *testing.T) {
	m := map[string]float64{`x{a="1"}`: 1, `x{a="2"}`: 2, "y": 3}
	if failed := run(func(tb TB) {
		if v := Series(tb, m, `x{a="2"}`); v != 2 {
			tb.Fatalf("Series = %v, want 2", v)
		}
	}); failed != "" {
		t.Fatal(failed)
	}
	failed := run(func(tb TB) { Series(tb, m, `x{a="3"}`) })
	if !strings.Contains(failed, `[x{a="1"} x{a="2"}]`) || strings.Contains(failed, "y") {
		t.Fatalf("Series of a missing series failed with %q, want the x series listed", failed)
	}
}

func TestSyncBufferTakesWritesFromManyGoroutines(t *testing.T) {
	var b SyncBuffer
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				_, _ = b.Write([]byte("ab"))
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if got := b.String(); len(got) != 8*100*2 || strings.Count(got, "ab") != 800 {
		t.Fatalf("the buffer holds %d bytes, %d whole writes; want 1600 and 800", len(got), strings.Count(got, "ab"))
	}
}

// statusClient answers Status as scripted; the rest of ClusterService is
// not asked by Leader.
type statusClient struct {
	hangmanv1.ClusterServiceClient
	state string
	term  uint64
	err   error
}

func (c statusClient) Status(context.Context, *hangmanv1.StatusRequest, ...grpc.CallOption) (*hangmanv1.StatusResponse, error) {
	if c.err != nil {
		return nil, c.err
	}
	return &hangmanv1.StatusResponse{State: c.state, Term: c.term}, nil
}

func TestLeaderIsTheOneWithTheHighestTerm(t *testing.T) {
	down := statusClient{err: errors.New("unavailable")}
	for _, tt := range []struct {
		name  string
		nodes []hangmanv1.ClusterServiceClient
		want  int
	}{
		{"one leader", []hangmanv1.ClusterServiceClient{statusClient{state: "Follower", term: 4}, statusClient{state: "Leader", term: 4}, down}, 1},
		{"a deposed leader does not know yet", []hangmanv1.ClusterServiceClient{statusClient{state: "Leader", term: 3}, nil, statusClient{state: "Leader", term: 5}}, 2},
		{"nobody leads", []hangmanv1.ClusterServiceClient{statusClient{state: "Candidate", term: 6}, down, nil}, -1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Leader(context.Background(), tt.nodes)
			if got != tt.want || (tt.want < 0) != errors.Is(err, ErrNoLeader) {
				t.Fatalf("Leader = %d, %v; want %d", got, err, tt.want)
			}
			// Without a leader, the error says what the nodes answered.
			if tt.want < 0 && (!strings.Contains(err.Error(), "Candidate in term 6") || !strings.Contains(err.Error(), "unavailable")) {
				t.Fatalf("Leader's error %q does not say what each node answered", err)
			}
		})
	}
}
