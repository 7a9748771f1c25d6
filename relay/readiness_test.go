package relay

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/hangman/hangman/internal/harness"
	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
)

// readyz reads a relay's /readyz.
func readyz(t *testing.T, tr *testRelay) (int, readyStatus) {
	t.Helper()
	code, body := httpGet(t, tr.url+"/readyz", nil)
	var st readyStatus
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("/readyz body %s: %v", body, err)
	}
	return code, st
}

// waitReadyz waits until /readyz answers code with state and leader.
func waitReadyz(t *testing.T, tr *testRelay, what string, code int, state string, leader bool) {
	t.Helper()
	var got readyStatus
	var gotCode int
	harness.EventuallyTrue(t, waitFor, what, func() bool {
		gotCode, got = readyz(t, tr)
		return gotCode == code && got.State == state && got.Leader == leader && got.Ready == (code == http.StatusOK)
	})
}

const leaderSeries = "hangman_relay_leader_known"

// TestReadinessTellsNoLeader: a relay whose nodes know no raft leader says
// so in /readyz's body and a metric, and stays ready, since every relay
// sees the same cluster; once another relay has reported a leader for a
// while, it is cut off and stops being ready, until its node knows the
// leader again.
func TestReadinessTellsNoLeader(t *testing.T) {
	cl := startCluster(t)
	tr := startRelay(t, cl, nil)
	waitReadyz(t, tr, "ready with a leader", http.StatusOK, StateReady, true)
	m := tr.scrape(t)
	if harness.Series(t, m, leaderSeries) != 1 || harness.Series(t, m, readySeries) != 1 {
		t.Fatalf("with a leader: %s=%v %s=%v, want 1 and 1", leaderSeries, m[leaderSeries], readySeries, m[readySeries])
	}

	// The node loses its leader (an election): still ready, but says so.
	service := hangmanv1.GameService_ServiceDesc.ServiceName
	cl.health.SetServingStatus(service, healthpb.HealthCheckResponse_NOT_SERVING)
	waitReadyz(t, tr, "no_leader, still ready", http.StatusOK, StateNoLeader, false)
	m = tr.scrape(t)
	if harness.Series(t, m, leaderSeries) != 0 || harness.Series(t, m, readySeries) != 1 {
		t.Fatalf("no leader: %s=%v %s=%v, want 0 and 1", leaderSeries, m[leaderSeries], readySeries, m[readySeries])
	}

	// Another relay, on a node that does know the leader: this one is
	// now the odd one out, and drains.
	other := startCluster(t)
	peer := startRelay(t, cl, func(c *Config) { c.GRPCAddrs = []string{other.grpcAddr} })
	waitReadyz(t, peer, "the other relay ready", http.StatusOK, StateReady, true)
	waitReadyz(t, tr, "cut off from the leader the other relay sees", http.StatusServiceUnavailable, StateNoLeader, false)
	if v := harness.Series(t, tr.scrape(t), readySeries); v != 0 {
		t.Fatalf("cut off: %s=%v, want 0", readySeries, v)
	}

	cl.health.SetServingStatus(service, healthpb.HealthCheckResponse_SERVING)
	waitReadyz(t, tr, "ready again", http.StatusOK, StateReady, true)
}

// TestRelaysBehindOnePublicURL: relays that share the public URL of a load
// balancer still find each other (by name), and tell their browsers that
// one URL to reconnect to, once.
func TestRelaysBehindOnePublicURL(t *testing.T) {
	cl := startCluster(t)
	const public = "https://play.example"
	shared := func(c *Config) { c.PublicURL = public }
	a := startRelay(t, cl, shared)
	b := startRelay(t, cl, shared)
	harness.EventuallyTrue(t, waitFor, "each relay hears the other", func() bool {
		return harness.Series(t, a.scrape(t), "hangman_relay_peers") == 1 && harness.Series(t, b.scrape(t), "hangman_relay_peers") == 1
	})
	for _, tr := range []*testRelay{a, b} {
		c, _, err := dial(t, tr.url, nil)
		if err != nil {
			t.Fatal(err)
		}
		f, _ := c.expect("welcome", nil)
		if !slices.Equal(f.Relays, []string{public}) {
			t.Fatalf("welcome %s, want relays [%s]", f.raw, public)
		}
		var view clusterFrame
		_, body := httpGet(t, tr.url+"/cluster", nil)
		if err := json.Unmarshal(body, &view); err != nil {
			t.Fatal(err)
		}
		if len(view.Relays) != 2 || view.Relays[0].URL != public || view.Relays[1].URL != public {
			t.Fatalf("cluster view relays %+v, want both relays at %s", view.Relays, public)
		}
		// A page served through the public entry may open websockets.
		if _, resp, err := dial(t, tr.url, http.Header{"Origin": {public}}); err != nil {
			t.Fatalf("websocket from the public origin: %v %v", err, resp)
		}
	}
}
