// Package profiler serves the Go profiler (net/http/pprof) for operators,
// on an address of its own: apart from the ports that probes, scrapers and
// browsers reach, because profiles show a process's memory and goroutines
// to whoever asks. It serves on loopback in plain HTTP, or on any address
// over TLS with the caller's configuration (which decides whose
// certificates get in). Nodes and relays both use it, so the rule about
// where profiles may be served lives here once.
package profiler

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"time"
)

// ErrNotLoopback is CheckAddr's refusal of an address anyone on the
// network could reach, when no TLS protects it.
var ErrNotLoopback = errors.New("not a loopback address")

// CheckAddr says whether addr, a host:port, may serve profiles: its host
// must be loopback (or localhost), unless secure says the caller serves it
// over TLS. Callers check it with the rest of their configuration, so that
// a wrong address is refused before anything starts.
func CheckAddr(addr string, secure bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("pprof address %q: %w", addr, err)
	}
	if !secure && !Loopback(host) {
		return fmt.Errorf("pprof address %q: %w", addr, ErrNotLoopback)
	}
	return nil
}

// Loopback reports whether a listen host is a loopback address (or
// localhost), reachable from this machine only.
func Loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// Server is a running profiler; Close stops it.
type Server struct {
	srv *http.Server
	// URL is where the profiles are, /debug/pprof/ on the bound address.
	URL string
}

// Start listens on addr and serves /debug/pprof/ there until Close: plain
// HTTP on a loopback address, anywhere else TLS with tlsConf, which must
// then be set (CheckAddr with secure false refuses such an addr first).
// goRun runs the serving goroutine on the caller's group, so that the
// caller's shutdown waits for it.
func Start(addr string, tlsConf *tls.Config, log *slog.Logger, goRun func(func())) (*Server, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("pprof address %q: %w", addr, err)
	}
	secure := !Loopback(host)
	if secure && tlsConf == nil {
		return nil, fmt.Errorf("pprof address %q: %w, and no TLS to serve it with", addr, ErrNotLoopback)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("pprof listen on %s: %w", addr, err)
	}
	scheme := "http"
	if secure {
		ln, scheme = tls.NewListener(ln, tlsConf), "https"
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	s := &Server{
		srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second},
		URL: scheme + "://" + ln.Addr().String() + "/debug/pprof/",
	}
	log.Warn("serving profiles", "url", s.URL)
	goRun(func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("pprof server stopped", "err", err)
		}
	})
	return s, nil
}

// Close stops serving at once; a nil Server is already stopped.
func (s *Server) Close() error {
	if s == nil {
		return nil
	}
	return s.srv.Close()
}
