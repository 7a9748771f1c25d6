package raftnode

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/hangman/hangman/internal/profiler"
	"github.com/hashicorp/raft"
)

// Ready reports whether the node can serve: it is in a raft configuration
// that has a leader, it can write its log and it is not far behind the
// leader (storageReady), and nothing stands in the way of forming or
// electing in the cluster (formation.problem). It says why not otherwise.
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
	if err := n.formation.problem(); err != nil {
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

// updateHealth mirrors readiness into grpc.health.v1.
func (n *Node) updateHealth() { n.grpc.setReady(n.Ready()) }

// opsServer is a node's operator port and profiler: /healthz, /readyz and
// /metrics on HTTPAddr, for probes and scrapers, and the Go profiler on
// PprofAddr, apart because profiles show the process's memory and
// goroutines to whoever asks. Neither runs without an HTTPAddr.
type opsServer struct {
	http  *http.Server
	pprof *profiler.Server
}

// start serves the operator port and the profiler of a node with cfg:
// ready says whether the node can serve and why not, metrics serves its
// series, and goRun runs each server on one of the node's goroutines.
// What it started stays in o for close, even when it fails.
func (o *opsServer) start(cfg Config, ready func() error, metrics http.Handler, log *slog.Logger, goRun func(func())) error {
	if cfg.HTTPAddr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("http listen on %s: %w", cfg.HTTPAddr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "node": cfg.ID})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := ready(); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "not ready", "node": cfg.ID, "reason": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "node": cfg.ID})
	})
	// Prometheus series of this node only (its own registry).
	mux.Handle("GET /metrics", metrics)
	o.http = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	goRun(func() {
		if err := o.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server stopped", "err", err)
		}
	})
	return o.startPprof(cfg, log, goRun)
}

// startPprof serves the Go profiler on PprofAddr, if set: plain HTTP on
// loopback, anywhere else TLS with a node certificate required (validate
// refuses anything else).
func (o *opsServer) startPprof(cfg Config, log *slog.Logger, goRun func(func())) error {
	if cfg.PprofAddr == "" {
		return nil
	}
	var tlsConf *tls.Config
	if cfg.TLS != nil {
		tlsConf = cfg.TLS.PeerConfig()
	}
	p, err := profiler.Start(cfg.PprofAddr, tlsConf, log, goRun)
	if err != nil {
		return err
	}
	o.pprof = p
	return nil
}

// close stops both servers, at once.
func (o *opsServer) close() {
	if o.http != nil {
		_ = o.http.Close()
	}
	_ = o.pprof.Close()
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
