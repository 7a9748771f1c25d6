// Package natsembed is the nats-server embedded in every game node: its
// options, its routes (which follow the cluster's membership: the node
// hands it the route URLs of the live peers) and its users with their
// permissions, so that only nodes can publish a room's state and nobody
// reads another user's answers (DESIGN.md, guarantee 8).
//
// It knows nothing of raft or the game: raftnode composes it.
package natsembed

import (
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hangman/hangman/tlsutil"
	natsserver "github.com/nats-io/nats-server/v2/server"
)

// ClusterName names the NATS cluster the embedded servers form.
const ClusterName = "hangman"

// Server is the nats-server embedded in a node. Its routes follow serf:
// whenever the set of live nodes changes, the route list is reloaded, so
// the embedded servers form one NATS cluster without a separate seed list.
type Server struct {
	srv *natsserver.Server
	log *slog.Logger

	// auth adds the route credentials to each route URL.
	auth Auth

	mu     sync.Mutex
	opts   natsserver.Options
	routes []string
}

// Options configure an embedded server.
type Options struct {
	// Name is the server's name: the node's id.
	Name string
	// Host and Port are where clients connect, ClusterHost and
	// ClusterPort where the other nodes' servers route to, and
	// ClusterAdvertise the host:port they are told.
	Host             string
	Port             int
	ClusterHost      string
	ClusterPort      int
	ClusterAdvertise string
	// TLS, when set, secures clients (server certificate) and routes
	// (node certificates both ways).
	TLS *tlsutil.Bundle
	// Auth turns users on.
	Auth Auth
}

// Start starts the server and waits until it takes connections.
func Start(o Options, log *slog.Logger) (*Server, error) {
	opts := natsserver.Options{
		ServerName: o.Name,
		Host:       o.Host,
		Port:       o.Port,
		NoSigs:     true,
		// Payloads are room states: small. 1 MiB is NATS's default.
		MaxPayload: 1 << 20,
		Cluster: natsserver.ClusterOpts{
			Name:      ClusterName,
			Host:      o.ClusterHost,
			Port:      o.ClusterPort,
			Advertise: o.ClusterAdvertise,
		},
	}
	secureNATS(&opts, o.Auth, o.TLS)
	srv, err := natsserver.NewServer(&opts)
	if err != nil {
		return nil, fmt.Errorf("nats server: %w", err)
	}
	nlog := log.With("component", "nats")
	srv.SetLoggerV2(logger{nlog}, false, false, false)
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("nats server on %s did not start within 10s", net.JoinHostPort(o.Host, strconv.Itoa(o.Port)))
	}
	return &Server{srv: srv, log: nlog, opts: opts, auth: o.Auth}, nil
}

// NATS is the server itself, for what only it knows (its counters, and
// in-process connections).
func (s *Server) NATS() *natsserver.Server { return s.srv }

// ClientURL is the URL NATS clients use to reach this server.
func (s *Server) ClientURL() string { return s.srv.ClientURL() }

// SetRoutes points the server at the route URLs of the other nodes.
func (s *Server) SetRoutes(routes []string) {
	slices.Sort(routes)
	s.mu.Lock()
	defer s.mu.Unlock()
	if slices.Equal(routes, s.routes) {
		return
	}
	urls := make([]*url.URL, 0, len(routes))
	for _, r := range routes {
		u, err := url.Parse(r)
		if err != nil {
			s.log.Warn("ignoring bad route", "route", r, "err", err)
			continue
		}
		urls = append(urls, s.auth.routeURL(u))
	}
	opts := s.opts
	opts.Routes = urls
	if err := s.srv.ReloadOptions(&opts); err != nil {
		s.log.Warn("reload nats routes", "routes", routes, "err", err)
		return
	}
	s.opts = opts
	s.routes = routes
	s.log.Debug("nats routes", "routes", routes)
}

// Remotes returns the IDs of the other NATS servers this one has a route
// to. It counts servers, not route connections: with route pooling each
// remote is reached over several connections, which open one by one for a
// while after start, so a connection count would rise with nothing new
// reachable. A restarted server comes back under a new ID.
func (s *Server) Remotes() map[string]bool {
	rz, err := s.srv.Routez(nil)
	if err != nil {
		s.log.Warn("nats routez", "err", err)
		return nil
	}
	ids := make(map[string]bool, len(rz.Routes))
	for _, r := range rz.Routes {
		ids[r.RemoteID] = true
	}
	return ids
}

// Shutdown stops the server and waits until it has.
func (s *Server) Shutdown() {
	s.srv.Shutdown()
	s.srv.WaitForShutdown()
}

// logger routes the server's log lines to slog.
type logger struct{ log *slog.Logger }

func (n logger) Noticef(format string, v ...any) { n.log.Info(fmt.Sprintf(format, v...)) }
func (n logger) Warnf(format string, v ...any)   { n.log.Warn(fmt.Sprintf(format, v...)) }
func (n logger) Fatalf(format string, v ...any)  { n.log.Error(fmt.Sprintf(format, v...)) }
func (n logger) Errorf(format string, v ...any)  { n.log.Error(fmt.Sprintf(format, v...)) }
func (n logger) Debugf(format string, v ...any)  { n.log.Debug(fmt.Sprintf(format, v...)) }
func (n logger) Tracef(format string, v ...any)  { n.log.Debug(fmt.Sprintf(format, v...)) }
