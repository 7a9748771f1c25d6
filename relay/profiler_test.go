package relay

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/hangman/hangman/internal/harness"
)

// TestProfilerOnlyWhereAsked: a relay serves the Go profiler on the
// loopback address it is given and nowhere else (not on the port browsers
// reach), and refuses, before it starts, an address others could reach.
func TestProfilerOnlyWhereAsked(t *testing.T) {
	cl := startCluster(t)
	addr := "127.0.0.1:" + strconv.Itoa(harness.FreePorts(t, 1)[0])
	tr := startRelay(t, cl, func(c *Config) { c.PprofAddr = addr })

	get := func(u string) (int, string) {
		t.Helper()
		resp, err := http.Get(u)
		if err != nil {
			t.Fatalf("GET %s: %v", u, err)
		}
		defer resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Content-Type")
	}
	if code, _ := get("http://" + addr + "/debug/pprof/cmdline"); code != http.StatusOK {
		t.Fatalf("GET /debug/pprof/cmdline on %s: %d, want 200", addr, code)
	}
	if code, ctype := get(tr.url + "/debug/pprof/cmdline"); code == http.StatusOK && !strings.HasPrefix(ctype, "text/html") {
		t.Fatalf("the browsers' port answered /debug/pprof/cmdline (%d, %s): profiles must stay on their own address", code, ctype)
	}

	for _, open := range []string{"0.0.0.0:6060", "[::]:6060", ":6060"} {
		_, err := New(t.Context(), Config{NATSURLs: []string{cl.natsURL}, GRPCAddrs: []string{cl.grpcAddr}, PprofAddr: open})
		if err == nil || !strings.Contains(err.Error(), "loopback") {
			t.Errorf("PprofAddr %q: %v, want a refusal saying loopback", open, err)
		}
	}
}
