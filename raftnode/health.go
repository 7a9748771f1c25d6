package raftnode

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
)

// MaxGRPCMessage bounds a gRPC message either way. Requests are a few
// short strings; answers are one room or a page of the lobby.
const MaxGRPCMessage = 4 << 20

// Limits of the gRPC server beyond messages. Headers are not messages:
// without a bound of their own a call could carry 16 MB of metadata (gRPC's
// default) in front of a 64 KiB request. Calls carry a few short headers;
// the server advertises the bound, so gRPC clients refuse to send more
// (Internal, "header list size ... violates the maximum"), and a client
// that sends more anyway has its stream reset, or its connection closed,
// without the headers being kept.
const (
	// DefaultGRPCMaxHeaderBytes bounds the header list of one call, in
	// HTTP/2's measure (names, values and 32 bytes a field); calls carry
	// a few short headers.
	DefaultGRPCMaxHeaderBytes = 16 << 10
	// DefaultGRPCMaxStreams bounds the calls one connection has open at
	// once (a relay's commands for its browsers share its connection).
	DefaultGRPCMaxStreams = 1024
)

// grpcServerOptions are the limits of every gRPC server of a node, the
// header list and stream caps as configured (--grpc-max-header-bytes,
// --grpc-max-streams).
func grpcServerOptions(cfg Config) []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(64 << 10),
		grpc.MaxSendMsgSize(MaxGRPCMessage),
		grpc.MaxHeaderListSize(cfg.GRPCMaxHeaderBytes),
		grpc.MaxConcurrentStreams(cfg.GRPCMaxStreams),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
	}
}

// Ready reports whether the node can serve: it is in a raft configuration
// that has a leader, it can write its log and it is not far behind the
// leader (storageReady), and nothing stands in the way of forming or
// electing in the cluster (formationProblem). It says why not otherwise.
func (n *Node) Ready() error {
	if n.raft.State() == raft.Shutdown {
		return errors.New("raft is shut down")
	}
	if err := n.stall.ready(); err != nil {
		return err
	}
	if err := n.storageReady(); err != nil {
		return err
	}
	if err := n.formationProblem(); err != nil {
		return err
	}
	addr, id := n.raft.LeaderWithID()
	if addr == "" || id == "" {
		return errors.New("no known leader")
	}
	cf := n.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return fmt.Errorf("raft configuration: %w", err)
	}
	for _, s := range cf.Configuration().Servers {
		if s.ID == n.ident.raftID {
			return nil
		}
	}
	return errors.New("not yet in the raft configuration")
}

// updateHealth mirrors readiness into grpc.health.v1 (service "" and the
// game service).
func (n *Node) updateHealth() {
	st := healthpb.HealthCheckResponse_SERVING
	if n.Ready() != nil {
		st = healthpb.HealthCheckResponse_NOT_SERVING
	}
	n.health.SetServingStatus("", st)
	n.health.SetServingStatus("hangman.v1.GameService", st)
}

func (n *Node) startHTTP() error {
	if n.cfg.HTTPAddr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", n.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("http listen on %s: %w", n.cfg.HTTPAddr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "node": n.cfg.ID})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := n.Ready(); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "not ready", "node": n.cfg.ID, "reason": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "node": n.cfg.ID})
	})
	// Prometheus series of this node only (its own registry).
	mux.Handle("GET /metrics", n.metrics.handler())
	n.http = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	n.goRun(func() {
		if err := n.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("http server stopped", "err", err)
		}
	})
	return n.startPprof()
}

// startPprof serves the Go profiler on PprofAddr, if set, for `go tool
// pprof`: plain HTTP on loopback, anywhere else TLS with a node
// certificate required (validate refuses anything else). Profiles are not
// on the HTTP port, which probes and scrapers reach: they show the
// process's memory and goroutines to whoever asks.
func (n *Node) startPprof() error {
	if n.cfg.PprofAddr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", n.cfg.PprofAddr)
	if err != nil {
		return fmt.Errorf("pprof listen on %s: %w", n.cfg.PprofAddr, err)
	}
	host, _, _ := net.SplitHostPort(n.cfg.PprofAddr)
	scheme := "http"
	if !loopbackHost(host) {
		ln, scheme = tls.NewListener(ln, n.cfg.TLS.PeerConfig()), "https"
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	n.pprof = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	n.log.Warn("serving profiles", "url", scheme+"://"+ln.Addr().String()+"/debug/pprof/")
	n.goRun(func() {
		if err := n.pprof.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("pprof server stopped", "err", err)
		}
	})
	return nil
}

// loopbackHost reports whether a listen host is a loopback address (or
// localhost), reachable from this machine only.
func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
