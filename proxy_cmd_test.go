package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hangman/hangman/internal/harness"
)

// fakeRelay is an HTTP server standing for a relay: /readyz answers as
// told, / names the relay, and /hold keeps the connection open (a
// websocket, as the proxy sees it) until the relay stops.
type fakeRelay struct {
	name  string
	addr  string
	ready atomic.Bool
	srv   *http.Server

	mu   sync.Mutex
	held []net.Conn // hijacked by /hold, which http.Server.Close leaves open
}

func startFakeRelay(t *testing.T, name string) *fakeRelay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeRelay{name: name, addr: ln.Addr().String()}
	f.ready.Store(true)
	mux := http.NewServeMux()
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !f.ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	mux.HandleFunc("/hold", func(w http.ResponseWriter, r *http.Request) {
		c, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		f.mu.Lock()
		f.held = append(f.held, c)
		f.mu.Unlock()
		_, _ = rw.WriteString("HTTP/1.1 101 Switching Protocols\r\n\r\n" + name + "\n")
		_ = rw.Flush()
		_, _ = io.Copy(io.Discard, c) // until the proxy or the relay closes it
		_ = c.Close()
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s", name, r.Host)
	})
	f.srv = &http.Server{Handler: mux}
	go func() { _ = f.srv.Serve(ln) }()
	t.Cleanup(f.stop)
	return f
}

// stop kills the relay and every connection it holds, as `docker kill`
// would.
func (f *fakeRelay) stop() {
	_ = f.srv.Close()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.held {
		_ = c.Close()
	}
}

// startTestProxy runs a proxy in front of relays, whose addresses a fake
// resolver gives as a DNS name of the relays would.
func startTestProxy(t *testing.T, relays func() []*fakeRelay) (string, *proxy) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := proxyConfig{checkPath: "/readyz", interval: 50 * time.Millisecond, dialTimeout: time.Second,
		resolve: func(context.Context) ([]string, error) {
			var out []string
			for _, r := range relays() {
				out = append(out, r.addr)
			}
			if len(out) == 0 {
				return nil, &net.DNSError{Err: "no such host", Name: "relay", IsNotFound: true}
			}
			return out, nil
		}}
	p := newProxy(cfg, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("proxy serve: %v", err)
		}
	})
	return ln.Addr().String(), p
}

// waitIdle waits until the proxy holds no connection to any relay.
func waitIdle(t *testing.T, p *proxy) {
	t.Helper()
	harness.Eventually(t, 10*time.Second, "the proxy to close its connections", func() error {
		p.mu.Lock()
		defer p.mu.Unlock()
		open := 0
		for _, b := range p.backends {
			open += b.conns
		}
		if open != 0 {
			return fmt.Errorf("the proxy still counts %d open connections", open)
		}
		return nil
	})
}

// get fetches / through the proxy on a fresh connection and returns the
// status and body.
func get(t *testing.T, addr string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + addr + "/")
	if err != nil {
		t.Fatalf("GET through the proxy: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitServed waits until requests through the proxy reach exactly the
// relays named in want (and, when want is empty, are refused with 503).
func waitServed(t *testing.T, addr string, want ...string) {
	t.Helper()
	harness.Eventually(t, 10*time.Second, fmt.Sprintf("requests through the proxy to reach exactly %v", want), func() error {
		seen := map[string]bool{}
		bad := ""
		for range 4 * max(1, len(want)) {
			code, body := get(t, addr)
			switch {
			case len(want) == 0 && code != http.StatusServiceUnavailable:
				bad = fmt.Sprintf("answered %d %q with no relay ready", code, body)
			case len(want) > 0 && code != http.StatusOK:
				bad = fmt.Sprintf("answered %d %q", code, body)
			case code == http.StatusOK:
				name, _, _ := strings.Cut(body, " ")
				seen[name] = true
			}
		}
		ok := bad == "" && len(seen) == len(want)
		for _, w := range want {
			ok = ok && seen[w]
		}
		if !ok {
			return fmt.Errorf("they reached %v (%s)", seen, bad)
		}
		return nil
	})
}

// TestProxySpreadsOverReadyRelays: the proxy gives connections to every
// ready relay, passes the browser's Host through untouched, leaves out a
// relay that is not ready or dead, answers 503 with none, and takes in a
// relay that appears.
func TestProxySpreadsOverReadyRelays(t *testing.T) {
	a, b := startFakeRelay(t, "a"), startFakeRelay(t, "b")
	var mu sync.Mutex
	relays := []*fakeRelay{a, b}
	addr, _ := startTestProxy(t, func() []*fakeRelay {
		mu.Lock()
		defer mu.Unlock()
		return relays
	})
	waitServed(t, addr, "a", "b")
	if _, body := get(t, addr); !strings.HasSuffix(body, " "+addr) {
		t.Fatalf("the relay saw Host %q, want the proxy's public address %s", body, addr)
	}

	a.ready.Store(false)
	waitServed(t, addr, "b")
	b.stop()
	waitServed(t, addr)
	a.ready.Store(true)
	waitServed(t, addr, "a")

	c := startFakeRelay(t, "c")
	mu.Lock()
	relays = []*fakeRelay{a, b, c}
	mu.Unlock()
	waitServed(t, addr, "a", "c")
}

// TestProxyDropsConnectionsOfADeadRelay: a long-lived connection (a
// websocket) through the proxy closes when its relay dies, and the next
// one lands on a live relay, even before a check has noticed the death.
func TestProxyDropsConnectionsOfADeadRelay(t *testing.T) {
	a, b := startFakeRelay(t, "a"), startFakeRelay(t, "b")
	addr, p := startTestProxy(t, func() []*fakeRelay { return []*fakeRelay{a, b} })
	waitServed(t, addr, "a", "b")
	waitIdle(t, p)

	hold := func() (net.Conn, string) {
		t.Helper()
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, "GET /hold HTTP/1.1\r\nHost: entry\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(c)
		var name string
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("reading the held connection's greeting: %v", err)
			}
			if line = strings.TrimSpace(line); line == "a" || line == "b" {
				name = line
				break
			}
		}
		return c, name
	}
	// Least connections: two held connections take one relay each.
	c1, n1 := hold()
	c2, n2 := hold()
	if n1 == n2 {
		t.Fatalf("both held connections went to relay %s; want one each", n1)
	}
	victim, survivor := a, b
	conn := c1
	if n1 == "b" {
		victim, survivor = b, a
	}
	_ = c2
	victim.stop()
	if _, err := io.ReadAll(conn); err != nil && !isClosedErr(err) {
		t.Fatalf("held connection to the dead relay: %v, want it closed", err)
	}
	// At once, before any check: the dial to the dead relay fails over.
	for range 3 {
		if code, body := get(t, addr); code != http.StatusOK || !strings.HasPrefix(body, survivor.name+" ") {
			t.Fatalf("after %s died: %d %q, want %s", victim.name, code, body, survivor.name)
		}
	}
}

func isClosedErr(err error) bool {
	return err == io.EOF || strings.Contains(err.Error(), "reset by peer") || strings.Contains(err.Error(), "closed")
}
