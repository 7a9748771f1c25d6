package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/olahol/melody"

	"github.com/hangman/hangman/internal/profiler"
	"github.com/hangman/hangman/subjects"
	"github.com/hangman/hangman/web"
)

// Relay is one websocket relay. Create it with New, serve with Serve, stop
// with Close (abrupt) or Shutdown (graceful).
//
// Relay is the composition root: each concept it runs is a small type of
// its own (the package doc lists them), which New builds and wires to the
// others. What is left here is their lifetime, the HTTP front and the
// relay's status.
type Relay struct {
	cfg  Config
	log  *slog.Logger
	ctx  context.Context // ends when the relay closes
	stop context.CancelFunc
	// bg runs the goroutines Close waits for (background.go).
	bg        background
	closeOnce sync.Once
	stats     counters

	// The cluster side: NATS, the node links and the follower that keeps
	// them in step with the cluster's addresses (nodes.go, follow.go).
	nc       *nats.Conn
	nodes    *nodes
	follower *follower
	// pprof is the profiler on Config.PprofAddr, nil without one.
	pprof *profiler.Server
	// svc is the relay's NATS micro service (serveStatus).
	svc micro.Service

	// rooms are the rooms the sessions watch, each with its feed
	// (rooms.go, feed.go, history.go); confirm says which of their seqs
	// may be adopted (confirm.go).
	rooms   *roomSet
	confirm *confirmer
	// spectators counts the connections that watch rooms without a seat,
	// here and on the other relays (spectators.go).
	spectators *spectators
	// lobby and cluster are the live views browsers may watch (lobby.go,
	// cluster.go).
	lobby   *lobbyView
	cluster *clusterView
	// peers is the table of the other relays (peers.go), fed by their
	// heartbeats by discovery (discovery.go).
	peers     *peerTable
	discovery *discovery

	// The browser side: the HTTP server and melody, the websockets
	// (sessions.go), what may open one (origins.go) and what each may do
	// (admission.go), the one path of a client frame (dispatch.go), and
	// the write path (outbox.go).
	srv  *http.Server
	page http.Handler
	m    *melody.Melody
	// tooBig is the error frame written before closing a connection that
	// sent an oversized frame; the same bytes for every client.
	tooBig   []byte
	sessions *sessionSet
	origins  origins
	admit    *admission
	frames   *dispatcher
	out      *sender
}

// counters are the relay's statistics, reported on /readyz, by the status
// endpoint and by `nats micro stats hangman-relay`.
type counters struct {
	sessions, framesOut, framesIn               atomic.Int64
	dupStates, dupEvents, gaps, fetches         atomic.Int64
	histories                                   atomic.Int64 // room histories sent to the sessions
	slowDropped, rateLimited, tooBig, badFrames atomic.Int64
	originRefused, connsRefused, commandsFailed atomic.Int64
	addrRefused                                 atomic.Int64
	// sweeps counts the anti-entropy passes; unconfirmed the room
	// messages dropped because no node vouched for their seq.
	sweeps, unconfirmed atomic.Int64
	// superseded counts the frames a newer one replaced while they waited
	// for a slow socket; writes the socket writes (outbox.go).
	superseded, writes atomic.Int64
}

// New connects to NATS and the game nodes (reconnecting in the background
// if they are not up yet) and returns a relay ready to Serve.
func New(ctx context.Context, cfg Config) (*Relay, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	r := &Relay{
		cfg:      cfg,
		log:      cfg.Logger.With("relay", cfg.Name),
		sessions: newSessionSet(cfg.MaxConns),
		peers:    newPeerTable(cfg.PublicURL),
		admit:    newAdmission(cfg),
		origins:  origins{public: cfg.PublicURL, allowed: cfg.AllowedOrigins},
	}
	r.out = &sender{sendBuffer: cfg.SendBuffer, writeTimeout: cfg.WriteTimeout, stats: &r.stats, log: r.log}
	// The relay's lifetime is Close's business, not the caller's: a
	// cancelled ctx would otherwise stop fetches under live sessions.
	r.ctx, r.stop = context.WithCancel(context.WithoutCancel(ctx))
	// fail undoes what New has done when it fails with err: the relay's
	// context, NATS, the goroutines and the node links, whichever it has.
	fail := func(err error) (*Relay, error) {
		r.stop()
		if r.nc != nil {
			r.nc.Close()
		}
		_ = r.pprof.Close()
		r.bg.close()
		if r.nodes != nil {
			r.nodes.close()
		}
		return nil, err
	}
	if cfg.PprofAddr != "" {
		if r.pprof, err = profiler.Start(cfg.PprofAddr, nil, r.log, r.bg.run); err != nil {
			return fail(err)
		}
	}
	r.rooms = &roomSet{
		sink:           &roomSink{queue: r.out.queue, stats: &r.stats, log: r.log, eventWait: cfg.eventWait},
		ctx:            r.ctx,
		spawn:          r.bg.run,
		requestTimeout: cfg.RequestTimeout,
		stats:          &r.stats,
		log:            r.log,
		byName:         make(map[string]*room),
	}
	r.spectators = newSpectators(r.rooms, r.out)
	r.confirm = newConfirmer(cfg.NATSPassword != "", r.log, r.rooms.read, r.rooms.offerProto, r.rooms.fetch)
	r.rooms.confirm = r.confirm

	r.nc, err = nats.Connect(strings.Join(cfg.NATSURLs, ","),
		nats.Name("hangman-relay "+cfg.Name), natsAuth(cfg),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.ConnectHandler(func(*nats.Conn) { r.log.Info("connected to NATS") }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { r.log.Warn("disconnected from NATS", "err", err) }),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			r.log.Info("reconnected to NATS", "url", nc.ConnectedUrlRedacted())
			// Messages may have been missed while away.
			r.rooms.refetchAll()
		}),
	)
	if err != nil {
		return fail(fmt.Errorf("connect to NATS %v: %w", cfg.NATSURLs, err))
	}
	r.nodes, err = dialNodes(cfg.GRPCAddrs, cfg.AttemptTimeout, grpcCreds(cfg.TLS), r.log)
	if err != nil {
		return fail(err)
	}
	r.rooms.nc, r.rooms.nodes = r.nc, r.nodes
	r.follower = newFollower(r.nodes)
	r.cluster = newClusterView(r)
	r.discovery = &discovery{
		nc:          r.nc,
		log:         r.log,
		name:        cfg.Name,
		interval:    cfg.HeartbeatInterval,
		origins:     r.origins,
		peers:       r.peers,
		report:      r.heartbeat,
		spectators:  r.spectators,
		cluster:     r.cluster,
		tell:        func(it outItem) { r.sessions.each(func(c *client) { r.out.queue(c, it) }) },
		announceNow: make(chan struct{}, 1),
	}
	if err := r.serveStatus(); err != nil {
		return fail(err)
	}
	if err := r.discovery.start(r.ctx, r.bg.run); err != nil {
		return fail(err)
	}
	if err := r.startCluster(); err != nil {
		return fail(fmt.Errorf("cluster view: %w", err))
	}
	r.lobby = newLobbyView(r.out)
	if err := r.lobby.subscribe(r.nc); err != nil {
		return fail(fmt.Errorf("live lobby: %w", err))
	}
	r.nodes.start(r.ctx, r.bg.run)
	r.bg.run(func() { r.follower.run(r.ctx) })
	r.bg.run(r.rooms.antiEntropy)
	if !r.confirm.trusted {
		r.log.Warn("NATS without users: anyone may publish room messages, so each seq waits for a node to vouch for it; set --nats-password in production")
		r.bg.run(func() { r.confirm.loop(r.ctx) })
	}

	r.frames = newDispatcher(cfg, &r.stats, r.out)
	r.frames.start(r.ctx, r.bg.run)
	r.m = melody.New()
	r.tooBig = errFrame(CodeFrameTooLarge, fmt.Sprintf("frame exceeds the limit of %d bytes; closing", cfg.MaxFrameBytes), "")
	r.m.Config.MaxMessageSize = cfg.MaxFrameBytes
	// Only the close frame the outbox hands over goes through melody's
	// queue; everything else the relay writes itself (outbox.go).
	r.m.Config.MessageBufferSize = 1
	r.m.Config.WriteWait = cfg.WriteTimeout
	r.m.Config.PongWait = cfg.IdleTimeout
	r.m.Config.PingPeriod = cfg.IdleTimeout * 9 / 10
	r.m.Upgrader.CheckOrigin = func(*http.Request) bool { return true } // checked before, with a JSON answer
	// Idle connections dominate a relay's memory. Each websocket reads
	// through a small buffer of its own (browser frames are small; larger
	// ones are read through it), so net/http's 4 KiB connection buffers can
	// be freed once serveWS hands the connection over, and write buffers
	// are borrowed from a pool only while writing.
	r.m.Upgrader.ReadBufferSize = wsReadBuffer
	r.m.Upgrader.WriteBufferSize = 1024
	r.m.Upgrader.WriteBufferPool = &sync.Pool{}
	r.m.Upgrader.Error = func(w http.ResponseWriter, _ *http.Request, code int, reason error) {
		httpError(w, code, CodeNotWebsocket, "websocket handshake failed: "+reason.Error())
	}
	r.m.HandleConnect(r.onConnect)
	r.m.HandleDisconnect(r.onDisconnect)
	r.m.HandleMessage(func(s *melody.Session, data []byte) { r.frames.onMessage(r.ctx, s, data) })
	r.m.HandleMessageBinary(func(s *melody.Session, _ []byte) {
		r.stats.badFrames.Add(1)
		r.out.send(clientOf(s), errFrame(CodeBinary, "frames must be JSON text, not binary", ""))
	})
	r.m.HandleError(r.onError)

	r.page = http.FileServerFS(web.FS)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /ws", r.serveWS)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", r.serveReady)
	mux.HandleFunc("GET /relays", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, relaysFrame{Type: "relays", Relays: r.peers.urls()})
	})
	mux.Handle("GET /metrics", metricsHandler(r.newMetrics()))
	mux.HandleFunc("GET /cluster", r.serveCluster)
	mux.HandleFunc("GET /", r.servePage)
	r.srv = &http.Server{
		Handler:           withDev(mux, cfg.DevHandler),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(r.log.Handler(), slog.LevelWarn),
	}
	r.log.Info("relay ready", "public_url", cfg.PublicURL, "nats", cfg.NATSURLs, "grpc", cfg.GRPCAddrs)
	return r, nil
}

// Serve serves the page, /ws, /healthz and /readyz on ln until Close.
func (r *Relay) Serve(ln net.Listener) error {
	err := r.srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("relay serve: %w", err)
}

// Close stops the relay at once, like a crash as the browsers see it: every
// websocket drops without a close frame, so they fail over to another relay.
func (r *Relay) Close() error {
	r.closeOnce.Do(func() {
		_, conns := r.sessions.close()
		_ = r.srv.Close()
		for _, c := range conns {
			_ = c.Close()
		}
		r.sessions.wait()
		_ = r.m.Close()
		r.stop()
		if r.svc != nil {
			_ = r.svc.Stop()
		}
		r.nc.Close()
		_ = r.pprof.Close()
		r.bg.close()
		r.nodes.close()
		r.log.Info("relay closed")
	})
	return nil
}

// Shutdown stops the relay gracefully: it refuses new websockets, tells
// every browser to go elsewhere (close 1001) and waits until they left or
// ctx ends, then closes.
func (r *Relay) Shutdown(ctx context.Context) error {
	clients, _ := r.sessions.close()
	bye := websocket.FormatCloseMessage(websocket.CloseGoingAway, "relay shutting down; reconnect to another relay")
	for _, c := range clients {
		r.out.queue(c, outItem{kind: outClose, frame: bye})
	}
	done := make(chan struct{})
	go func() { r.sessions.wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("relay shutdown: %w", ctx.Err())
	}
	_ = r.Close()
	return err
}

func (r *Relay) servePage(w http.ResponseWriter, req *http.Request) {
	h := w.Header()
	// Defence in depth against XSS: only our own scripts run, and the
	// page may open websockets to the other relays.
	// It may also fetch from the relays it knows and the origins allowed
	// here (the cluster view's development controls talk to whichever
	// relay the page is connected to).
	connect := "'self' ws: wss:"
	for _, u := range append(r.peers.urls(), r.cfg.AllowedOrigins...) {
		if safeOrigin(u) {
			connect += " " + originOf(u)
		}
	}
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src "+connect+"; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
	r.page.ServeHTTP(w, req)
}

// serveWS applies the connection limits and hands the connection to melody.
func (r *Relay) serveWS(w http.ResponseWriter, req *http.Request) {
	if origin := req.Header.Get("Origin"); !r.origins.allows(origin, req.Host) {
		r.stats.originRefused.Add(1)
		r.log.Warn("refused websocket from foreign origin", "origin", origin, "remote", req.RemoteAddr)
		httpError(w, http.StatusForbidden, CodeOriginForbidden, fmt.Sprintf("origin %q may not open a websocket on this relay", clipString(origin, 100)))
		return
	}
	if !r.sessions.reserve() {
		r.stats.connsRefused.Add(1)
		w.Header().Set("Retry-After", "5")
		httpError(w, http.StatusServiceUnavailable, CodeTooManyConns, fmt.Sprintf("this relay has reached its limit of %d connections; try another relay", r.cfg.MaxConns))
		return
	}
	addr, capped := trustedProxies(r.cfg.TrustedProxies).clientAddr(req)
	lims, ok := r.admit.acquire(addr, capped)
	if !ok {
		r.sessions.unreserve()
		r.stats.addrRefused.Add(1)
		r.log.Debug("refused websocket: too many from one address", "addr", addr)
		w.Header().Set("Retry-After", "5")
		httpError(w, http.StatusTooManyRequests, CodeTooManyFromAddr, fmt.Sprintf("your address holds this relay's limit of %d connections; close some first", r.cfg.MaxConnsPerAddr))
		return
	}
	release := func() {
		r.sessions.unreserve()
		r.admit.release(addr)
	}
	if !r.sessions.startHandler() {
		release()
		httpError(w, http.StatusServiceUnavailable, CodeShuttingDown, "this relay is shutting down; try another relay")
		return
	}

	c := &client{
		r:       r,
		out:     outbox{held: true}, // until its welcome (onConnect)
		gate:    newFrameGate(r.cfg),
		release: release,
		addr:    addr,
		lims:    lims,
	}
	// The session runs on a goroutine of its own, and this handler returns
	// as soon as the connection is hijacked (or the upgrade has failed and
	// answered): net/http then drops its per-connection state (buffers,
	// the serving goroutine's grown stack), which would otherwise stay
	// alive for as long as the websocket does.
	hijacked := make(chan struct{})
	hw := &hijackWriter{ResponseWriter: w, wrap: func(nc net.Conn) net.Conn {
		defer close(hijacked)
		tc := &trackedConn{Conn: nc, tooBig: r.tooBig}
		c.conn = tc
		if r.sessions.track(tc) {
			_ = tc.Close()
		}
		return tc
	}}
	ended := make(chan struct{})
	go r.session(hw, req, c, ended)
	select {
	case <-hijacked:
	case <-ended:
	}
}

// session upgrades the connection and serves the websocket until it ends,
// then closes ended. It is a method, not a closure, so that the request
// and the response writer die with their last use instead of living in a
// closure for as long as the connection does.
func (r *Relay) session(w http.ResponseWriter, req *http.Request, c *client, ended chan<- struct{}) {
	defer close(ended)
	defer r.sessions.handlerDone()
	defer c.release()
	err := r.m.HandleRequestWithKeys(w, req, map[string]any{clientKey: c})
	if c.conn != nil {
		_ = c.conn.Close()
		r.sessions.untrack(c.conn)
	}
	if err != nil && !errors.Is(err, melody.ErrClosed) {
		r.log.Debug("websocket ended", "err", err)
	}
}

// serveStatus registers the relay as the NATS micro service
// ServiceName, whose stats and status endpoint (subjects.RelayStatus, no
// queue group: a request with several replies reaches all of them)
// answer the relay's status.
func (r *Relay) serveStatus() error {
	svc, err := micro.AddService(r.nc, micro.Config{
		Name:        ServiceName,
		Version:     "1.0.0",
		Description: "hangman websocket relay",
		Metadata:    map[string]string{"name": r.cfg.Name, "public_url": r.cfg.PublicURL},
		StatsHandler: func(*micro.Endpoint) any {
			return r.status()
		},
	})
	if err != nil {
		return fmt.Errorf("register NATS micro service: %w", err)
	}
	r.svc = svc
	err = svc.AddEndpoint("status", micro.HandlerFunc(func(req micro.Request) {
		_ = req.RespondJSON(r.status())
	}), micro.WithEndpointSubject(subjects.RelayStatus), micro.WithEndpointQueueGroupDisabled())
	if err != nil {
		return fmt.Errorf("add status endpoint: %w", err)
	}
	return nil
}

// heartbeat is what this relay's heartbeat says of it now.
func (r *Relay) heartbeat() heartbeat {
	return heartbeat{Name: r.cfg.Name, URL: r.cfg.PublicURL, Sessions: r.stats.sessions.Load(),
		Leader: r.nodes.leaderKnown(), Spectators: r.spectators.announced(), At: time.Now().UTC()}
}

// Readiness states of a relay, the "state" of /readyz.
const (
	// StateReady: connected to NATS and to a game node that knows a raft
	// leader; commands commit.
	StateReady = "ready"
	// StateNoLeader: connected, but no node this relay reaches knows a
	// leader (an election, or a lost quorum). Pages load, rooms show their
	// last state, and commands wait up to --request-timeout for a leader.
	// The relay stays ready (200): every relay sees the same cluster, so
	// draining them all would only take the page away from every browser
	// and turn a one-second election into a fleet-wide flap. Only when
	// another relay has reported a leader for a while (the partition case:
	// this relay reaches only nodes cut off from the leader) is this relay
	// not ready (503), so the load balancer sends its browsers elsewhere.
	StateNoLeader = "no_leader"
	// StateUnavailable: NATS or every game node is unreachable; 503.
	StateUnavailable = "unavailable"
)

// readyStatus is the body of /readyz and of the status endpoint.
type readyStatus struct {
	Ready bool `json:"ready"`
	// State is StateReady, StateNoLeader or StateUnavailable.
	State string `json:"state"`
	// Leader says a game node this relay reaches knows a raft leader.
	Leader   bool              `json:"leader"`
	Relay    string            `json:"relay"`
	URL      string            `json:"url,omitempty"`
	NATS     string            `json:"nats"`
	Nodes    map[string]string `json:"nodes"`
	Sessions int64             `json:"sessions"`
	Rooms    int               `json:"rooms"`
	Relays   []string          `json:"relays"`
	Counters map[string]int64  `json:"counters"`
}

func (r *Relay) status() readyStatus {
	ready, state, leader := r.readiness()
	return readyStatus{
		Ready:    ready,
		State:    state,
		Leader:   leader,
		Relay:    r.cfg.Name,
		URL:      r.cfg.PublicURL,
		NATS:     r.nc.Status().String(),
		Nodes:    r.nodes.states(),
		Sessions: r.stats.sessions.Load(),
		Rooms:    r.rooms.count(),
		Relays:   r.peers.urls(),
		Counters: map[string]int64{
			"frames_out":      r.stats.framesOut.Load(),
			"frames_in":       r.stats.framesIn.Load(),
			"dup_states":      r.stats.dupStates.Load(),
			"dup_events":      r.stats.dupEvents.Load(),
			"seq_gaps":        r.stats.gaps.Load(),
			"state_fetches":   r.stats.fetches.Load(),
			"histories":       r.stats.histories.Load(),
			"slow_dropped":    r.stats.slowDropped.Load(),
			"superseded":      r.stats.superseded.Load(),
			"socket_writes":   r.stats.writes.Load(),
			"rate_limited":    r.stats.rateLimited.Load(),
			"too_big":         r.stats.tooBig.Load(),
			"bad_frames":      r.stats.badFrames.Load(),
			"origin_refused":  r.stats.originRefused.Load(),
			"conns_refused":   r.stats.connsRefused.Load(),
			"addr_refused":    r.stats.addrRefused.Load(),
			"unconfirmed":     r.stats.unconfirmed.Load(),
			"commands_failed": r.stats.commandsFailed.Load(),
		},
	}
}

// readiness decides /readyz: whether the relay is ready, its state and
// whether it reaches a node that knows a leader (see StateNoLeader).
func (r *Relay) readiness() (ready bool, state string, leader bool) {
	leader = r.nodes.leaderKnown()
	switch {
	case !r.nc.IsConnected() || !r.nodes.ready():
		return false, StateUnavailable, leader
	case leader:
		return true, StateReady, true
	}
	// A leader others see for three heartbeats and this relay does not is
	// this relay's problem; a leader nobody sees is the cluster's.
	cutOff := r.nodes.leaderLostFor() > 3*r.cfg.HeartbeatInterval && r.peers.seesLeader()
	return !cutOff, StateNoLeader, false
}

// serveReady answers 200 when the relay can do its job (see readiness),
// 503 otherwise, with the details.
func (r *Relay) serveReady(w http.ResponseWriter, _ *http.Request) {
	st := r.status()
	code := http.StatusOK
	if !st.Ready {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, st)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// httpError refuses a request before the upgrade with the same error shape
// as the websocket's error frames.
func httpError(w http.ResponseWriter, code int, errCode, msg string) {
	writeJSON(w, code, errorFrame{Type: "error", Code: errCode, Message: msg})
}

func clipString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
