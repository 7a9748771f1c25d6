package devcluster

// Chaos controls of `hangman dev`: stop and restart a game node or a relay,
// hand leadership over, and watch the game carry on in the page's cluster
// view. They exist only in this file's controls, which only Start
// creates and hands to its own relays (relay.Config.DevHandler); `hangman
// node` and `hangman relay` have no path to it, and their /dev/ is a 404.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
	"github.com/hangman/hangman/raftnode"
	"github.com/hangman/hangman/relay"
)

// controls serves /dev/ on every relay of a dev system.
type controls struct {
	sys *System
	mux *http.ServeMux
	// origins are the dev relays' origins (loopback names folded): the
	// only pages allowed to send the controls a request.
	origins map[string]bool
	// ops runs one control at a time: stopping a node takes a moment and
	// two at once would only confuse the picture.
	ops sync.Mutex
}

func newControls(sys *System) *controls {
	d := &controls{sys: sys, mux: http.NewServeMux(), origins: make(map[string]bool)}
	for _, u := range sys.relayURLs {
		if o, ok := loopbackOrigin(u); ok {
			d.origins[o] = true
		}
	}
	d.mux.HandleFunc("GET /dev/state", d.serveState)
	d.mux.HandleFunc("POST /dev/nodes/{id}/{action}", d.serveNode)
	d.mux.HandleFunc("POST /dev/relays/{name}/{action}", d.serveRelay)
	d.mux.HandleFunc("POST /dev/leader/transfer", d.serveTransfer)
	d.mux.HandleFunc("/dev/", func(w http.ResponseWriter, _ *http.Request) {
		devJSON(w, http.StatusNotFound, map[string]string{"error": "no such development control"})
	})
	return d
}

// ServeHTTP refuses what does not come from the dev system's own pages,
// then dispatches.
//
// Requests must be addressed to a loopback host (a DNS-rebinding page
// names its own host) and, when they come from a browser, from the page of
// one of the dev relays: browsers always send Origin on POST, and a
// cross-site form or fetch names its own origin. Tools like curl send no
// Origin and are let through: they run on this machine anyway.
func (d *controls) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if !isLoopbackHost(req.Host) {
		devJSON(w, http.StatusForbidden, map[string]string{"error": "development controls answer on loopback addresses only"})
		return
	}
	origin := req.Header.Get("Origin")
	if origin != "" {
		o, ok := loopbackOrigin(origin)
		if !ok || !d.origins[o] {
			devJSON(w, http.StatusForbidden, map[string]string{"error": "origin not allowed to use the development controls"})
			return
		}
		// The page may be served by another dev relay than this one.
		w.Header().Set("Access-Control-Allow-Origin", origin)
		w.Header().Set("Vary", "Origin")
	} else if req.Method != http.MethodGet && req.Header.Get("Sec-Fetch-Site") == "cross-site" {
		devJSON(w, http.StatusForbidden, map[string]string{"error": "cross-site request refused"})
		return
	}
	d.mux.ServeHTTP(w, req)
}

// devState is the answer of GET /dev/state: what runs and what is stopped.
type devState struct {
	Nodes  []devNodeState  `json:"nodes"`
	Relays []devRelayState `json:"relays"`
}

type devNodeState struct {
	ID      string `json:"id"`
	GRPC    string `json:"grpc"`
	HTTP    string `json:"http"`
	Running bool   `json:"running"`
}

type devRelayState struct {
	Name    string `json:"name"`
	URL     string `json:"url"`
	Running bool   `json:"running"`
}

func (d *controls) serveState(w http.ResponseWriter, _ *http.Request) {
	devJSON(w, http.StatusOK, d.sys.state())
}

func (s *System) state() devState {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := devState{Nodes: []devNodeState{}, Relays: []devRelayState{}}
	for i, cfg := range s.nodeCfgs {
		st.Nodes = append(st.Nodes, devNodeState{ID: cfg.ID, GRPC: cfg.GRPCAddr, HTTP: "http://" + cfg.HTTPAddr, Running: s.nodes[i] != nil})
	}
	for j, cfg := range s.relayCfgs {
		st.Relays = append(st.Relays, devRelayState{Name: cfg.Name, URL: cfg.PublicURL, Running: s.relays[j] != nil})
	}
	return st
}

func (d *controls) serveNode(w http.ResponseWriter, req *http.Request) {
	id, action := req.PathValue("id"), req.PathValue("action")
	d.ops.Lock()
	defer d.ops.Unlock()
	var err error
	switch action {
	case "stop":
		err = d.sys.stopNode(id)
	case "start":
		err = d.sys.startNode(id)
	default:
		devJSON(w, http.StatusNotFound, map[string]string{"error": "action must be stop or start"})
		return
	}
	d.answer(w, err)
}

func (d *controls) serveRelay(w http.ResponseWriter, req *http.Request) {
	name, action := req.PathValue("name"), req.PathValue("action")
	d.ops.Lock()
	defer d.ops.Unlock()
	var err error
	switch action {
	case "stop":
		var r *relay.Relay
		if r, err = d.sys.stopRelay(name); err == nil {
			// Answer first: the relay may be the one serving this
			// request, and closing it ends this connection too.
			d.answer(w, nil)
			_ = http.NewResponseController(w).Flush()
			s := d.sys
			s.opts.Logger.Warn("dev: stopping relay", "relay", name)
			if err := r.Close(); err != nil {
				s.opts.Logger.Warn("dev: stop relay", "relay", name, "err", err)
			}
			return
		}
	case "start":
		err = d.sys.startRelay(name)
	default:
		devJSON(w, http.StatusNotFound, map[string]string{"error": "action must be stop or start"})
		return
	}
	d.answer(w, err)
}

// serveTransfer hands leadership to ?to=<node id>, or to any voter.
func (d *controls) serveTransfer(w http.ResponseWriter, req *http.Request) {
	d.ops.Lock()
	defer d.ops.Unlock()
	ctx, cancel := context.WithTimeout(req.Context(), 10*time.Second)
	defer cancel()
	res, err := d.sys.transferLeadership(ctx, req.URL.Query().Get("to"))
	if err != nil {
		d.answer(w, err)
		return
	}
	devJSON(w, http.StatusOK, map[string]any{"leader": res.GetLeaderId(), "term": res.GetTerm(), "state": d.sys.state()})
}

// errDevNotFound and errDevConflict pick the answer's status.
var (
	errDevNotFound = errors.New("not found")
	errDevConflict = errors.New("conflict")
)

func (d *controls) answer(w http.ResponseWriter, err error) {
	switch {
	case err == nil:
		devJSON(w, http.StatusOK, map[string]any{"ok": true, "state": d.sys.state()})
	case errors.Is(err, errDevNotFound):
		devJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
	case errors.Is(err, errDevConflict):
		devJSON(w, http.StatusConflict, map[string]string{"error": err.Error()})
	default:
		devJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
	}
}

// devJSON answers with a JSON body of known length, so an answer flushed
// just before its relay closes (stopping the relay serving the request)
// reaches the page whole.
func devJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":"encoding the answer failed"}`)
	}
	b = append(b, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

func (s *System) nodeIndex(id string) (int, error) {
	for i, cfg := range s.nodeCfgs {
		if cfg.ID == id {
			return i, nil
		}
	}
	return 0, fmt.Errorf("node %q: %w", id, errDevNotFound)
}

func (s *System) relayIndex(name string) (int, error) {
	for j, cfg := range s.relayCfgs {
		if cfg.Name == name {
			return j, nil
		}
	}
	return 0, fmt.Errorf("relay %q: %w", name, errDevNotFound)
}

// stopNode closes a node as a crash looks to its peers (it does not leave).
func (s *System) stopNode(id string) error {
	s.mu.Lock()
	i, err := s.nodeIndex(id)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	n := s.nodes[i]
	if n == nil {
		s.mu.Unlock()
		return fmt.Errorf("node %s is already stopped: %w", id, errDevConflict)
	}
	s.nodes[i] = nil
	s.mu.Unlock()
	s.opts.Logger.Warn("dev: stopping node", "node", id)
	if err := n.Close(); err != nil {
		return fmt.Errorf("stop %s: %w", id, err)
	}
	return nil
}

// startNode starts a stopped node again on its own data and ports; it
// rejoins as the same member and catches up.
func (s *System) startNode(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, err := s.nodeIndex(id)
	if err != nil {
		return err
	}
	if s.nodes[i] != nil {
		return fmt.Errorf("node %s is already running: %w", id, errDevConflict)
	}
	if s.closed {
		return fmt.Errorf("the dev system is stopping: %w", errDevConflict)
	}
	s.opts.Logger.Warn("dev: starting node", "node", id)
	n, err := raftnode.Start(s.ctx, s.nodeCfgs[i])
	if err != nil {
		return fmt.Errorf("start %s: %w", id, err)
	}
	s.nodes[i] = n
	return nil
}

// stopRelay takes a relay out of the system and returns it for the caller
// to close abruptly (its browsers then fail over to another). The last
// running relay is kept: the page would have nowhere to go.
func (s *System) stopRelay(name string) (*relay.Relay, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, err := s.relayIndex(name)
	if err != nil {
		return nil, err
	}
	r := s.relays[j]
	if r == nil {
		return nil, fmt.Errorf("relay %s is already stopped: %w", name, errDevConflict)
	}
	running := 0
	for _, o := range s.relays {
		if o != nil {
			running++
		}
	}
	if running == 1 {
		return nil, fmt.Errorf("relay %s is the last one running; the page would have nowhere to go: %w", name, errDevConflict)
	}
	s.relays[j] = nil
	return r, nil
}

// startRelay starts a stopped relay again on its own port.
func (s *System) startRelay(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, err := s.relayIndex(name)
	if err != nil {
		return err
	}
	if s.relays[j] != nil {
		return fmt.Errorf("relay %s is already running: %w", name, errDevConflict)
	}
	if s.closed {
		return fmt.Errorf("the dev system is stopping: %w", errDevConflict)
	}
	s.opts.Logger.Warn("dev: starting relay", "relay", name)
	r, err := s.serveRelayLocked(j)
	if err != nil {
		return err
	}
	s.relays[j] = r
	return nil
}

// serveRelayLocked creates relay j on its address and serves it.
func (s *System) serveRelayLocked(j int) (*relay.Relay, error) {
	cfg := s.relayCfgs[j]
	ln, err := net.Listen("tcp", s.relayAddrs[j])
	if err != nil {
		return nil, fmt.Errorf("%s listen on %s: %w", cfg.Name, s.relayAddrs[j], err)
	}
	r, err := relay.New(s.ctx, cfg)
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("start %s: %w", cfg.Name, err)
	}
	go func() {
		if err := r.Serve(ln); err != nil {
			s.opts.Logger.Error("relay stopped", "relay", cfg.Name, "err", err)
		}
	}()
	return r, nil
}

// transferLeadership asks the cluster, through any running node's
// ClusterService, to hand leadership to target (any voter when empty).
func (s *System) transferLeadership(ctx context.Context, target string) (*hangmanv1.TransferLeadershipResponse, error) {
	s.mu.Lock()
	var addrs []string
	for i, n := range s.nodes {
		if n != nil {
			addrs = append(addrs, s.nodeCfgs[i].GRPCAddr)
		}
	}
	s.mu.Unlock()
	if target != "" {
		if _, err := s.nodeIndex(target); err != nil {
			return nil, err
		}
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("no node is running: %w", errDevConflict)
	}
	var last error
	for _, a := range addrs {
		conn, err := grpc.NewClient(a, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			last = err
			continue
		}
		res, err := hangmanv1.NewClusterServiceClient(conn).TransferLeadership(ctx, &hangmanv1.TransferLeadershipRequest{TargetId: target})
		_ = conn.Close()
		if err == nil {
			s.opts.Logger.Warn("dev: leadership transferred", "leader", res.GetLeaderId(), "term", res.GetTerm())
			return res, nil
		}
		last = fmt.Errorf("via %s: %s", a, status.Convert(err).Message())
	}
	return nil, fmt.Errorf("transfer leadership: %w", last)
}

// loopbackOrigin folds an http origin on a loopback host to one spelling
// (http://loopback:port), so localhost and 127.0.0.1 pages are the same.
func loopbackOrigin(raw string) (string, bool) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || !isLoopbackHost(u.Host) {
		return "", false
	}
	return u.Scheme + "://loopback:" + u.Port(), true
}

// isLoopbackHost reports whether a Host header names this machine.
func isLoopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
