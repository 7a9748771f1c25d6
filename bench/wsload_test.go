package bench

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gorilla/websocket"
)

// TestClientsDialFromSeveralLoopbackAddresses checks that the clients of a
// run spread over loopback source addresses: one address reaches one relay
// through only the kernel's ephemeral ports, fewer than the websockets a
// relay is measured with.
func TestClientsDialFromSeveralLoopbackAddresses(t *testing.T) {
	var (
		mu   sync.Mutex
		from = map[string]bool{}
	)
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		mu.Lock()
		from[host] = true
		mu.Unlock()
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.WriteJSON(map[string]string{"type": "welcome"})
		_, _, _ = c.ReadMessage()
	}))
	defer srv.Close()
	var frames atomic.Int64
	for i := range loopbackSources + 1 {
		c, err := dialClient(t.Context(), srv.URL, i, &frames)
		if err != nil {
			t.Fatal(err)
		}
		c.conn.Close()
	}
	if len(from) != loopbackSources || !from["127.0.0.1"] || !from["127.0.0.2"] {
		t.Fatalf("clients came from %v, want %d loopback addresses from 127.0.0.1", from, loopbackSources)
	}
}

// TestEnsureFileLimit checks that a limit already high enough is left
// alone, and that one the process may not reach is refused with what to
// do.
func TestEnsureFileLimit(t *testing.T) {
	if err := EnsureFileLimit(16); err != nil {
		t.Fatalf("16 open files: %v", err)
	}
	// Beyond the kernel's fs.nr_open: no process may have that many.
	err := EnsureFileLimit(1 << 40)
	if err == nil || !strings.Contains(err.Error(), "raise it") {
		t.Fatalf("2^40 open files: %v, want an error saying to raise the limit", err)
	}
}
