package profiler

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
)

func TestCheckAddr(t *testing.T) {
	for _, tc := range []struct {
		addr    string
		secure  bool
		wantErr error // nil: accepted; errAny: any refusal
	}{
		{"127.0.0.1:6060", false, nil},
		{"[::1]:6060", false, nil},
		{"localhost:6060", false, nil},
		{"0.0.0.0:6060", false, ErrNotLoopback},
		{"10.1.2.3:6060", false, ErrNotLoopback},
		{":6060", false, ErrNotLoopback},
		{"0.0.0.0:6060", true, nil},
		{"6060", false, errAny},
	} {
		err := CheckAddr(tc.addr, tc.secure)
		switch {
		case tc.wantErr == nil && err != nil:
			t.Errorf("CheckAddr(%q, %v) = %v, want accepted", tc.addr, tc.secure, err)
		case tc.wantErr != nil && err == nil:
			t.Errorf("CheckAddr(%q, %v) accepted it, want a refusal", tc.addr, tc.secure)
		case tc.wantErr == ErrNotLoopback && !errors.Is(err, ErrNotLoopback):
			t.Errorf("CheckAddr(%q, %v) = %v, want ErrNotLoopback", tc.addr, tc.secure, err)
		case err != nil && !strings.Contains(err.Error(), tc.addr):
			t.Errorf("CheckAddr(%q, %v) = %v: the refusal should name the address", tc.addr, tc.secure, err)
		}
	}
}

var errAny = errors.New("any refusal")

// TestStartServesOnLoopbackAndStops serves profiles on a loopback port,
// answers an index and a named profile there, and stops answering once
// closed.
func TestStartServesOnLoopbackAndStops(t *testing.T) {
	var wg sync.WaitGroup
	s, err := Start("127.0.0.1:0", nil, slog.New(slog.DiscardHandler), func(f func()) { wg.Go(f) })
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s.URL, "http://127.0.0.1:") {
		t.Fatalf("URL %q, want plain HTTP on loopback", s.URL)
	}
	for _, path := range []string{"", "cmdline", "heap?gc=1", "goroutine?debug=1"} {
		resp, err := http.Get(s.URL + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK || len(body) == 0 {
			t.Fatalf("GET %s: %d, %d bytes; want 200 and a profile", path, resp.StatusCode, len(body))
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if resp, err := http.Get(s.URL); err == nil {
		_ = resp.Body.Close()
		t.Fatalf("GET after Close: %d, want the connection refused", resp.StatusCode)
	}
}

// TestStartRefusesAnOpenAddressWithoutTLS: a non-loopback address without
// TLS is refused before anything listens, whatever CheckAddr was told.
func TestStartRefusesAnOpenAddressWithoutTLS(t *testing.T) {
	ran := false
	_, err := Start("0.0.0.0:0", nil, slog.New(slog.DiscardHandler), func(func()) { ran = true })
	if !errors.Is(err, ErrNotLoopback) {
		t.Fatalf("Start on 0.0.0.0 without TLS: %v, want ErrNotLoopback", err)
	}
	if ran {
		t.Fatal("a server was started for a refused address")
	}
	var nilServer *Server
	if err := nilServer.Close(); err != nil {
		t.Fatalf("closing a nil Server: %v", err)
	}
}
