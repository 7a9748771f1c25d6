package devcluster

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hangman/hangman/internal/harness"
)

func devRequest(t *testing.T, method, url string, hdr map[string]string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// TestDevControlsRefuseForeignPages: the chaos controls answer the dev
// relays' own pages (and local tools), never another site's page nor a
// DNS-rebound host name; and they do stop and start a node.
func TestDevControlsRefuseForeignPages(t *testing.T) {
	sys := startTestDev(t)
	r1, r2 := sys.relayURLs[0], sys.relayURLs[1]

	code, body, _ := devRequest(t, "GET", r1+"/dev/state", nil)
	var st devState
	if code != http.StatusOK || json.Unmarshal([]byte(body), &st) != nil || len(st.Nodes) != 3 || len(st.Relays) != 2 {
		t.Fatalf("GET /dev/state = %d %s", code, body)
	}

	for name, hdr := range map[string]map[string]string{
		"a foreign page":          {"Origin": "http://evil.example"},
		"a foreign loopback port": {"Origin": "http://127.0.0.1:1"},
		"a rebound host name":     {"Host": "evil.example:8080", "Origin": "http://evil.example:8080"},
		"a cross-site fetch":      {"Sec-Fetch-Site": "cross-site"},
	} {
		if code, body, _ := devRequest(t, "POST", r1+"/dev/nodes/node1/stop", hdr); code != http.StatusForbidden {
			t.Errorf("%s: POST stop = %d %s, want 403", name, code, body)
		}
	}
	if sys.state().Nodes[0].Running != true {
		t.Fatal("a refused request stopped node1")
	}

	// The page of relay 2 may use relay 1's controls (after its own relay
	// was stopped, the page talks to the one it failed over to).
	code, body, h := devRequest(t, "POST", r1+"/dev/nodes/node1/stop", map[string]string{"Origin": strings.Replace(r2, "127.0.0.1", "localhost", 1)})
	if code != http.StatusOK || h.Get("Access-Control-Allow-Origin") == "" {
		t.Fatalf("POST stop from relay 2's page = %d %s (CORS %q)", code, body, h.Get("Access-Control-Allow-Origin"))
	}
	if code, _, _ := devRequest(t, "POST", r1+"/dev/nodes/node1/stop", nil); code != http.StatusConflict {
		t.Errorf("stopping a stopped node = %d, want 409", code)
	}
	if code, _, _ := devRequest(t, "POST", r1+"/dev/nodes/nope/stop", nil); code != http.StatusNotFound {
		t.Errorf("stopping an unknown node = %d, want 404", code)
	}
	if code, body, _ := devRequest(t, "POST", r1+"/dev/nodes/node1/start", map[string]string{"Origin": r1}); code != http.StatusOK {
		t.Fatalf("POST start = %d %s", code, body)
	}
	harness.Eventually(t, 20*time.Second, "restarted node1 to be ready", func() error {
		sys.mu.Lock()
		defer sys.mu.Unlock()
		if sys.nodes[0] == nil {
			return errors.New("not running")
		}
		return sys.nodes[0].Ready()
	})

	// The last running relay cannot be stopped: the page would be lost.
	if code, body, _ := devRequest(t, "POST", r1+"/dev/relays/relay-2/stop", map[string]string{"Origin": r1}); code != http.StatusOK {
		t.Fatalf("stop relay-2 = %d %s", code, body)
	}
	if code, _, _ := devRequest(t, "POST", r1+"/dev/relays/relay-1/stop", map[string]string{"Origin": r1}); code != http.StatusConflict {
		t.Errorf("stopping the last relay = %d, want 409", code)
	}
	if code, body, _ := devRequest(t, "POST", r1+"/dev/relays/relay-2/start", map[string]string{"Origin": r1}); code != http.StatusOK {
		t.Fatalf("start relay-2 = %d %s", code, body)
	}
	if code, _, _ := devRequest(t, "GET", r2+"/readyz", nil); code != http.StatusOK && code != http.StatusServiceUnavailable {
		t.Fatalf("restarted relay-2 does not answer: %d", code)
	}
}
