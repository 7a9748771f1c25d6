package relay

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/hangman/hangman/internal/harness"
	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
)

// scrape reads the relay's /metrics.
func (tr *testRelay) scrape(t *testing.T) map[string]float64 {
	t.Helper()
	return harness.MustScrape(t, tr.url+"/metrics")
}

const (
	connsSeries  = "hangman_relay_connections"
	roomsSeries  = "hangman_relay_rooms"
	outSeries    = "hangman_relay_messages_out_total"
	inSeries     = "hangman_relay_messages_in_total"
	limitSeries  = "hangman_relay_rate_limited_total"
	readySeries  = "hangman_relay_ready"
	slowSeries   = `hangman_relay_dropped_total{reason="slow_reader"}`
	originSeries = `hangman_relay_refused_total{reason="origin"}`
)

// TestMetricsFollowSessionsAndBroadcasts: the relay's series move when a
// session joins a room and a change is broadcast to it.
func TestMetricsFollowSessionsAndBroadcasts(t *testing.T) {
	cl := startCluster(t)
	cl.createRoom(t, "alpha")
	tr := startRelay(t, cl, nil)
	before := tr.scrape(t)
	for _, k := range []string{connsSeries, roomsSeries, outSeries, inSeries, limitSeries, readySeries, slowSeries, originSeries} {
		harness.Series(t, before, k)
	}
	if before[connsSeries] != 0 || before[roomsSeries] != 0 {
		t.Fatalf("fresh relay reports %v connections, %v rooms", before[connsSeries], before[roomsSeries])
	}

	a := mustDial(t, tr.url)
	join(a, "alpha", "pa", "Ann")
	joined := tr.scrape(t)
	if joined[connsSeries] != 1 || joined[roomsSeries] != 1 {
		t.Fatalf("after a join: %v connections, %v rooms; want 1 and 1", joined[connsSeries], joined[roomsSeries])
	}
	if joined[inSeries] <= before[inSeries] || joined[outSeries] <= before[outSeries] {
		t.Fatalf("frames in/out did not grow with the join: %v→%v in, %v→%v out", before[inSeries], joined[inSeries], before[outSeries], joined[outSeries])
	}

	// A change made elsewhere is broadcast to the session: its state,
	// carrying its event, in one frame.
	if _, err := cl.game.JoinRoom(t.Context(), &hangmanv1.JoinRoomRequest{Room: "alpha", PlayerId: "pb", Name: "Bob", Token: harness.TokenOf("pb")}); err != nil {
		t.Fatal(err)
	}
	a.expect("event", func(f frame) bool { return f.event.Player == "pb" })
	harness.EventuallyTrue(t, waitFor, "messages out to count the broadcast", func() bool {
		return tr.scrape(t)[outSeries] >= joined[outSeries]+1
	})

	// Leaving empties the room and the connection count.
	_ = a.conn.Close()
	harness.EventuallyTrue(t, waitFor, "connections and rooms back to 0", func() bool {
		m := tr.scrape(t)
		return m[connsSeries] == 0 && m[roomsSeries] == 0
	})
}

// TestMetricsAreOwnedByEachRelay: two relays in one process report their
// own values, not a shared global registry's.
func TestMetricsAreOwnedByEachRelay(t *testing.T) {
	cl := startCluster(t)
	one := startRelay(t, cl, nil)
	two := startRelay(t, cl, nil)
	mustDial(t, one.url)
	mustDial(t, one.url)
	if got := one.scrape(t)[connsSeries]; got != 2 {
		t.Fatalf("relay one: %v connections, want 2", got)
	}
	if got := two.scrape(t)[connsSeries]; got != 0 {
		t.Fatalf("relay two: %v connections, want 0", got)
	}
}

// TestNoDevEndpointsOnARelay: a relay started the normal way (no
// DevHandler, as `hangman relay` starts it) has no development controls,
// whatever the method.
func TestNoDevEndpointsOnARelay(t *testing.T) {
	cl := startCluster(t)
	tr := startRelay(t, cl, nil)
	for _, c := range []struct{ method, path string }{
		{"GET", "/dev/state"},
		{"POST", "/dev/nodes/node1/stop"},
		{"POST", "/dev/nodes/node1/start"},
		{"POST", "/dev/relays/relay-1/stop"},
		{"POST", "/dev/leader/transfer"},
		{"OPTIONS", "/dev/state"},
	} {
		req, _ := http.NewRequest(c.method, tr.url+c.path, nil)
		req.Header.Set("Origin", tr.url)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s %s = %d, want 404", c.method, c.path, resp.StatusCode)
		}
	}
}

// TestDevHandlerMountedOnlyWhenSet: the hook serves /dev/ when given.
func TestDevHandlerMountedOnlyWhenSet(t *testing.T) {
	cl := startCluster(t)
	tr := startRelay(t, cl, func(c *Config) {
		c.DevHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "dev %s", r.URL.Path)
		})
	})
	if code, body := httpGet(t, tr.url+"/dev/state", nil); code != http.StatusOK || string(body) != "dev /dev/state" {
		t.Fatalf("GET /dev/state = %d %q", code, body)
	}
}
