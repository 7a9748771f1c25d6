package relay

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/hangman/hangman/subjects"
)

// Discovery names. Relays announce themselves on subjects.RelayHeartbeat;
// every relay answers subjects.RelayStatus with its status (no queue
// group: a request with several replies reaches all of them).
const (
	// ServiceName is the NATS micro service every relay registers as.
	ServiceName = subjects.RelayService
)

// heartbeat is the payload of subjects.RelayHeartbeat. Relays are told apart by
// Name: behind a load balancer they all share one URL, the public entry.
type heartbeat struct {
	Name string `json:"name"`
	// URL is the relay's public URL, "" when it has none.
	URL      string `json:"url"`
	Sessions int64  `json:"sessions"`
	// Leader says the relay reaches a game node that knows a raft leader
	// (see readiness).
	Leader bool `json:"leader"`
	// Spectators counts, per room, the connections on the relay that
	// watch the room without a seat (spectators.go); rooms without any
	// are left out.
	Spectators map[string]int `json:"spectators,omitempty"`
	At         time.Time      `json:"at"`
}

// peer is another relay as its last heartbeat showed it. The relay keeps
// one table of them (Relay.peers), fed by the heartbeats alone: browsers'
// failover list, readiness and the cluster view all read it.
type peer struct {
	url      string
	leader   bool
	sessions int64
	seen     time.Time
}

// startDiscovery registers the relay as a NATS micro service, subscribes to
// heartbeats and starts announcing itself.
func (r *Relay) startDiscovery() error {
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
	r.hbSub, err = r.nc.Subscribe(subjects.RelayHeartbeat, r.onHeartbeat)
	if err != nil {
		return fmt.Errorf("subscribe to %s: %w", subjects.RelayHeartbeat, err)
	}
	r.goBG(r.heartbeatLoop)
	r.goBG(r.antiEntropy)
	return nil
}

// heartbeatLoop announces the relay every HeartbeatInterval, at once to a
// newcomer, and early (at most every spectatorAnnounceGap) when its
// spectator counts changed, so other relays' totals follow quickly.
func (r *Relay) heartbeatLoop() {
	t := time.NewTicker(r.cfg.HeartbeatInterval)
	defer t.Stop()
	var soon <-chan time.Time // armed while changed counts wait to be announced
	last := time.Now()
	announce := func() {
		r.announce()
		last, soon = time.Now(), nil
	}
	announce()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
			announce()
			r.expirePeers()
		case <-r.announceNow:
			announce()
		case <-r.spectators.changed:
			if soon == nil {
				soon = time.After(max(0, spectatorAnnounceGap-time.Since(last)))
			}
		case <-soon:
			announce()
		}
	}
}

func (r *Relay) announce() {
	b, _ := json.Marshal(heartbeat{Name: r.cfg.Name, URL: r.cfg.PublicURL, Sessions: r.stats.sessions.Load(),
		Leader: r.nodes.leaderKnown(), Spectators: r.spectators.announced(), At: time.Now().UTC()})
	_ = r.nc.Publish(subjects.RelayHeartbeat, b)
}

// maxPeers bounds the relays a relay follows: heartbeats with ever new
// names cannot grow its memory.
const maxPeers = 256

// validHeartbeat decodes a heartbeat of another relay, or says no: its own
// (NATS echoes them), a nameless one, or one with a URL that is not
// http(s). A URL the configuration does not name (trustedURL) is dropped:
// whoever can publish a heartbeat (anyone, on NATS without users) must not
// be able to send browsers elsewhere.
func (r *Relay) validHeartbeat(data []byte) (heartbeat, bool) {
	var hb heartbeat
	if err := json.Unmarshal(data, &hb); err != nil || !validName(hb.Name) || hb.Name == r.cfg.Name {
		return hb, false
	}
	if hb.URL != "" && !safeOrigin(hb.URL) {
		return hb, false
	}
	if hb.URL != "" && !r.trustedURL(hb.URL) {
		hb.URL = ""
	}
	if !validSpectators(hb.Spectators) {
		hb.Spectators = nil
	}
	return hb, true
}

// trustedURL reports whether rawURL may be given to browsers as a relay to
// fail over to: its origin is this relay's public URL's or one of
// --allowed-origins (never through "*"). Configuration names failover
// targets; heartbeats only say which of them are alive.
func (r *Relay) trustedURL(rawURL string) bool {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return false
	}
	o := normOrigin(u.Scheme, u.Host)
	if sameOrigin(r.cfg.PublicURL, o) {
		return true
	}
	for _, a := range r.cfg.AllowedOrigins {
		if a != "*" && sameOrigin(a, o) {
			return true
		}
	}
	return false
}

// onHeartbeat follows another relay: its URL (a failover target), whether
// it sees a leader, and its sessions.
func (r *Relay) onHeartbeat(m *nats.Msg) {
	hb, ok := r.validHeartbeat(m.Data)
	if !ok {
		return
	}
	r.peersMu.Lock()
	old, known := r.peers[hb.Name]
	if !known && len(r.peers) >= maxPeers {
		r.peersMu.Unlock()
		return
	}
	r.peers[hb.Name] = peer{url: hb.URL, leader: hb.Leader, sessions: hb.Sessions, seen: time.Now()}
	r.peersMu.Unlock()
	r.pushSpectators(r.spectators.setPeer(hb.Name, hb.Spectators)...)
	if known && old.url != hb.URL {
		r.relaysChanged()
	}
	if !known {
		if hb.URL == "" && strings.Contains(string(m.Data), `"url":"http`) {
			r.log.Warn("relay heartbeat names a URL that --allowed-origins does not: not a failover target", "relay", hb.Name)
		}
		r.log.Info("discovered relay", "relay", hb.Name, "url", hb.URL)
		// Answer a newcomer at once so it knows us without waiting for
		// our next tick.
		select {
		case r.announceNow <- struct{}{}:
		default:
		}
		r.relaysChanged()
		r.cluster.relayJoined(hb.Name)
	}
}

// expirePeers forgets the relays silent for three heartbeat intervals.
func (r *Relay) expirePeers() {
	deadline := time.Now().Add(-3 * r.cfg.HeartbeatInterval)
	var gone []string
	r.peersMu.Lock()
	for name, p := range r.peers {
		if p.seen.Before(deadline) {
			delete(r.peers, name)
			gone = append(gone, name)
			r.log.Info("relay went silent", "relay", name, "url", p.url)
		}
	}
	r.peersMu.Unlock()
	for _, name := range gone {
		r.pushSpectators(r.spectators.setPeer(name, nil)...)
	}
	if len(gone) > 0 {
		r.relaysChanged()
		r.cluster.relaysLeft(gone)
	}
}

// relayURLs lists the URLs browsers may reconnect to: this relay's first,
// then the others' sorted, each once. Relays behind one public entry share
// its URL, so there the list is that one URL.
func (r *Relay) relayURLs() []string {
	r.peersMu.Lock()
	others := make([]string, 0, len(r.peers))
	for _, p := range r.peers {
		if p.url != "" && p.url != r.cfg.PublicURL {
			others = append(others, p.url)
		}
	}
	r.peersMu.Unlock()
	slices.Sort(others)
	others = slices.Compact(others)
	if r.cfg.PublicURL == "" {
		return others
	}
	return append([]string{r.cfg.PublicURL}, others...)
}

// peerSeesLeader reports whether another live relay reaches a node that
// knows a raft leader.
func (r *Relay) peerSeesLeader() bool {
	r.peersMu.Lock()
	defer r.peersMu.Unlock()
	for _, p := range r.peers {
		if p.leader {
			return true
		}
	}
	return false
}

// relaysChanged tells every browser of this relay the new relay list, if
// it changed. It scans all sessions, which is fine for an event this rare.
func (r *Relay) relaysChanged() {
	urls := r.relayURLs()
	r.peersMu.Lock()
	same := r.sentRelays != nil && slices.Equal(urls, r.sentRelays)
	r.sentRelays = urls
	r.peersMu.Unlock()
	if same {
		return
	}
	frame := encode(relaysFrame{Type: "relays", Relays: urls})
	r.clientsMu.Lock()
	defer r.clientsMu.Unlock()
	for c := range r.clients {
		r.queue(c, outItem{kind: outView, key: viewRelays, frame: frame})
	}
}

// originAllowed reports whether a browser page at origin may open a
// websocket here: the relay's own origin (same host as the request, or its
// public URL) or a configured origin. Only configuration says: what
// relays announce on NATS never widens it.
func (r *Relay) originAllowed(origin, host string) bool {
	if origin == "" {
		return true // not a browser; browsers always send Origin
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	o := normOrigin(u.Scheme, u.Host)
	if strings.EqualFold(u.Host, host) || o == normOrigin(u.Scheme, host) {
		return true
	}
	for _, a := range r.cfg.AllowedOrigins {
		if a == "*" || sameOrigin(a, o) {
			return true
		}
	}
	return sameOrigin(r.cfg.PublicURL, o)
}

func sameOrigin(rawURL, norm string) bool {
	u, err := url.Parse(strings.TrimSpace(rawURL))
	if err != nil || u.Host == "" {
		return false
	}
	return normOrigin(u.Scheme, u.Host) == norm
}

// normOrigin lower-cases an origin and folds the loopback names together,
// so a page on http://localhost:8080 may fail over to 127.0.0.1:8081.
func normOrigin(scheme, host string) string {
	h, port := host, ""
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.HasSuffix(host, "]") {
		h, port = host[:i], host[i+1:]
	}
	h = strings.ToLower(strings.Trim(h, "[]"))
	switch h {
	case "localhost", "127.0.0.1", "::1":
		h = "loopback"
	}
	if port == "" {
		switch scheme {
		case "http", "ws":
			port = "80"
		case "https", "wss":
			port = "443"
		}
	}
	return strings.ToLower(scheme) + "://" + h + ":" + port
}
