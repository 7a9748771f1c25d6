package raftnode

import (
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// natsClusterName names the NATS cluster the embedded servers form.
const natsClusterName = "hangman"

// natsServer is the nats-server embedded in a node. Its routes follow serf:
// whenever the set of live nodes changes, the route list is reloaded, so
// the embedded servers form one NATS cluster without a separate seed list.
type natsServer struct {
	srv *natsserver.Server
	log *slog.Logger

	// auth adds the route credentials to each route URL.
	auth NATSAuth

	mu     sync.Mutex
	opts   natsserver.Options
	routes []string
}

func startNATS(cfg Config, log *slog.Logger) (*natsServer, error) {
	host, port, err := splitPort(cfg.NATSAddr)
	if err != nil {
		return nil, fmt.Errorf("nats address: %w", err)
	}
	chost, cport, err := splitPort(cfg.NATSClusterAddr)
	if err != nil {
		return nil, fmt.Errorf("nats cluster address: %w", err)
	}
	adv, err := cfg.advertised(cfg.NATSClusterAddr)
	if err != nil {
		return nil, fmt.Errorf("nats cluster: %w", err)
	}
	opts := natsserver.Options{
		ServerName: cfg.ID,
		Host:       host,
		Port:       port,
		NoSigs:     true,
		// Payloads are room states: small. 1 MiB is NATS's default.
		MaxPayload: 1 << 20,
		Cluster: natsserver.ClusterOpts{
			Name:      natsClusterName,
			Host:      chost,
			Port:      cport,
			Advertise: adv,
		},
	}
	secureNATS(&opts, cfg)
	srv, err := natsserver.NewServer(&opts)
	if err != nil {
		return nil, fmt.Errorf("nats server: %w", err)
	}
	nlog := log.With("component", "nats")
	srv.SetLoggerV2(natsLogger{nlog}, false, false, false)
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("nats server on %s did not start within 10s", cfg.NATSAddr)
	}
	return &natsServer{srv: srv, log: nlog, opts: opts, auth: cfg.NATSAuth}, nil
}

// ClientURL is the URL NATS clients use to reach this server.
func (s *natsServer) ClientURL() string { return s.srv.ClientURL() }

// setRoutes points the server at the route URLs of the other nodes.
func (s *natsServer) setRoutes(routes []string) {
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

// remotes returns the IDs of the other NATS servers this one has a route
// to. It counts servers, not route connections: with route pooling each
// remote is reached over several connections, which open one by one for a
// while after start, so a connection count would rise with nothing new
// reachable. A restarted server comes back under a new ID.
func (s *natsServer) remotes() map[string]bool {
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

func (s *natsServer) shutdown() {
	s.srv.Shutdown()
	s.srv.WaitForShutdown()
}

func splitPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("port %q: %w", p, err)
	}
	return host, port, nil
}
