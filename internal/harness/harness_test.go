package harness

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
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
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("hangman_nats_routes 2\n"))
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	url := "http://" + ln.Addr().String() + "/metrics"
	if v, err := Metric(context.Background(), url, "hangman_nats_routes"); err != nil || v != 2 {
		t.Fatalf("Metric = %v, %v; want 2", v, err)
	}
	if _, err := Metric(context.Background(), url, "missing"); err == nil {
		t.Fatal("Metric of a series the page lacks: no error")
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
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			t.Fatalf("port %d not free: %v", p, err)
		}
		_ = ln.Close()
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
		})
	}
}
