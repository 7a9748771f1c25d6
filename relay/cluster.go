package relay

import (
	"cmp"
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc/connectivity"

	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
	"github.com/hangman/hangman/subjects"
	"github.com/hangman/hangman/wire"
)

// The cluster view: what the page's Cluster tab shows, live. A relay
// already talks to every part of the system, so it is the natural place to
// assemble it:
//
//   - each game node's role, term and indexes, from ClusterService.Status
//     polled over the relay's own gRPC connections (about once a second,
//     only while a browser watches);
//   - leader changes and membership events the leader announces on NATS
//     (hangman.cluster.leader, hangman.cluster.member);
//   - the relays and their session counts, from hangman.relay.heartbeat.
//
// Browsers ask for it with {"type":"cluster","watch":true} and are sent a
// "cluster" frame at once and whenever it changes (see PROTOCOL.md).

const (
	// clusterPoll is how often node statuses are read while watched.
	clusterPoll = time.Second
	// clusterEventsKept is how many recent events a cluster frame carries.
	clusterEventsKept = 40
	typeCluster       = "cluster"
)

// clusterFrame is the "cluster" frame: the whole view, so a client only
// ever needs the latest one.
type clusterFrame struct {
	Type string `json:"type"`
	// Relay names the relay that assembled the view.
	Relay string `json:"relay"`
	// Leader is the id of the node that leads in the highest term seen,
	// "" while there is none; Term is that term.
	Leader string         `json:"leader"`
	Term   uint64         `json:"term"`
	Nodes  []clusterNode  `json:"nodes"`
	Relays []clusterRelay `json:"relayList"`
	// Events are the most recent first-hand events, oldest first.
	Events []clusterEvent `json:"events"`
}

// clusterNode is one game node as its last Status answer showed it.
type clusterNode struct {
	// ID is the node's id: as it answered, or, while it does not, as
	// the members name its address or as it last answered; "" if none.
	ID   string `json:"id"`
	Addr string `json:"addr"` // gRPC address the relay polls
	// Role is leader, follower, candidate or shutdown as raft says, or
	// unreachable when the node did not answer.
	Role         string `json:"role"`
	Leader       string `json:"leader"` // the leader this node knows
	Term         uint64 `json:"term"`
	CommitIndex  uint64 `json:"commitIndex"`
	AppliedIndex uint64 `json:"appliedIndex"`
	LastLogIndex uint64 `json:"lastLogIndex"`
	// Healthy is true when the node answered and knows a leader: it can
	// serve (what its /readyz reports).
	Healthy bool   `json:"healthy"`
	Error   string `json:"error,omitempty"`
}

// clusterRelay is one relay and its open sessions.
type clusterRelay struct {
	Name     string `json:"name"`
	URL      string `json:"url"`
	Sessions int64  `json:"sessions"`
	Self     bool   `json:"self,omitempty"`
}

// clusterEvent is one line of the events feed. Kind is leader (Node leads
// in Term), member (serf saw Node join, leave or fail: Status), node (this
// relay lost or regained Node: Status down/up) or relay (Relay appeared or
// went silent: Status join/leave).
type clusterEvent struct {
	Kind   string    `json:"kind"`
	Node   string    `json:"node,omitempty"`
	Relay  string    `json:"relay,omitempty"`
	Status string    `json:"status,omitempty"`
	Term   uint64    `json:"term,omitempty"`
	At     time.Time `json:"at"`
}

// clusterView assembles and pushes the cluster frame.
type clusterView struct {
	r       *Relay
	started time.Time
	kick    chan struct{}

	mu       sync.Mutex
	watchers viewWatchers
	nodes    map[string]clusterNode // by address, as the node table has them
	events   []clusterEvent
	lastTerm uint64
	last     []byte    // the frame last pushed
	polledAt time.Time // when the last poll ended
}

func newClusterView(r *Relay) *clusterView {
	cv := &clusterView{
		r:       r,
		started: time.Now(),
		kick:    make(chan struct{}, 1),
		nodes:   make(map[string]clusterNode),
	}
	cv.watchers = newViewWatchers(&cv.mu)
	for _, nc := range r.nodes.snapshot() {
		cv.nodes[nc.addr] = clusterNode{Addr: nc.addr, Role: "unknown"}
	}
	return cv
}

// startCluster subscribes to the cluster announcements and starts the
// poll loop. The relays come from the relay's peer table (discovery.go).
func (r *Relay) startCluster() error {
	if _, err := r.nc.Subscribe(subjects.Cluster, r.cluster.onAnnouncement); err != nil {
		return err
	}
	r.bg.run(r.cluster.loop)
	return nil
}

func (cv *clusterView) watcherCount() int {
	if cv == nil {
		return 0
	}
	cv.mu.Lock()
	defer cv.mu.Unlock()
	return cv.watchers.countLocked()
}

// cluster handles {"type":"cluster","watch":bool}: watching (the
// default) sends the view at once and on every change; watch:false stops.
func (c *client) cluster(in *inbound) {
	r := c.r
	watch := in.Watch == nil || *in.Watch
	cv := r.cluster
	c.ack(ackFrame{ID: in.ID, Op: typeCluster})
	if !watch {
		cv.mu.Lock()
		cv.watchers.removeLocked(c)
		cv.mu.Unlock()
		return
	}
	cv.mu.Lock()
	cv.watchers.addLocked(c)
	first := cv.watchers.countLocked() == 1
	frame := cv.frameLocked()
	cv.mu.Unlock()
	r.out.queue(c, outItem{kind: outView, key: viewCluster, frame: frame})
	if first {
		cv.poke() // statuses are only polled while watched: refresh now
	}
}

func (cv *clusterView) poke() {
	select {
	case cv.kick <- struct{}{}:
	default:
	}
}

// loop polls node statuses while someone watches, expires silent relays
// and pushes the view when it changed.
func (cv *clusterView) loop() {
	t := time.NewTicker(clusterPoll)
	defer t.Stop()
	for {
		select {
		case <-cv.r.ctx.Done():
			return
		case <-t.C:
		case <-cv.kick:
		}
		cv.r.discovery.expire()
		if cv.watcherCount() > 0 {
			cv.poll(cv.r.ctx)
		}
		cv.push()
	}
}

// poll asks every node for its status, all at once, each within a bound.
// A node address the relay no longer follows leaves the view.
func (cv *clusterView) poll(ctx context.Context) {
	list := cv.r.nodes.snapshot()
	names := cv.r.nodes.names()
	results := make([]clusterNode, len(list))
	var wg sync.WaitGroup
	for i, nc := range list {
		wg.Go(func() {
			cc := nc.cc
			cn := clusterNode{Addr: nc.addr, Role: "unreachable"}
			actx, cancel := context.WithTimeout(ctx, 800*time.Millisecond)
			defer cancel()
			st, err := hangmanv1.NewClusterServiceClient(cc).Status(actx, &hangmanv1.StatusRequest{})
			if err != nil {
				if cc.GetState() != connectivity.Ready {
					cn.Error = "not connected: " + strings.ToLower(cc.GetState().String())
				} else {
					cn.Error = clipString(err.Error(), 160)
				}
				results[i] = cn
				return
			}
			cn.ID = st.GetNodeId()
			cn.Role = strings.ToLower(st.GetState())
			cn.Leader = st.GetLeaderId()
			cn.Term = st.GetTerm()
			cn.CommitIndex = st.GetCommitIndex()
			cn.AppliedIndex = st.GetAppliedIndex()
			cn.LastLogIndex = st.GetLastLogIndex()
			cn.Healthy = cn.Leader != "" && cn.Role != "shutdown"
			results[i] = cn
		})
	}
	wg.Wait()
	now := time.Now().UTC()
	cv.mu.Lock()
	defer cv.mu.Unlock()
	cv.polledAt = now
	nodes := make(map[string]clusterNode, len(results))
	for _, cn := range results {
		old, known := cv.nodes[cn.Addr]
		if cn.ID == "" {
			// A node that did not answer goes by the name the members
			// give its address, or by the one it last answered with.
			cn.ID = cmp.Or(names[cn.Addr], old.ID)
		}
		name := cn.ID
		if name == "" {
			name = cn.Addr
		}
		wasUp, isUp := old.Role != "unreachable" && old.Role != "unknown", cn.Role != "unreachable"
		if known && old.Role != "unknown" && wasUp != isUp {
			status := "down"
			if isUp {
				status = "up"
			}
			cv.addEventLocked(clusterEvent{Kind: "node", Node: name, Status: status, At: now})
		}
		nodes[cn.Addr] = cn
	}
	cv.nodes = nodes
	if leader, term := cv.leaderLocked(); leader != "" && term > cv.lastTerm {
		cv.lastTerm = term
		cv.addEventLocked(clusterEvent{Kind: "leader", Node: leader, Term: term, At: now})
	}
}

// leaderLocked is the leader of the highest term any reachable node is
// in, as a node that says it leads reports it.
func (cv *clusterView) leaderLocked() (string, uint64) {
	var leader string
	var term uint64
	for _, n := range cv.nodes {
		if n.Role == "leader" && n.Term >= term {
			leader, term = n.ID, n.Term
		}
	}
	return leader, term
}

// onAnnouncement takes hangman.cluster.leader and hangman.cluster.member,
// and has the node table follow the members (follow.go).
func (cv *clusterView) onAnnouncement(m *nats.Msg) {
	var ev clusterEvent
	switch m.Subject {
	case subjects.ClusterLeader:
		var msg wire.LeaderChange
		if json.Unmarshal(m.Data, &msg) != nil || !validName(msg.Leader) {
			return
		}
		ev = clusterEvent{Kind: "leader", Node: msg.Leader, Term: msg.Term, At: msg.At}
	case subjects.ClusterMember:
		var msg wire.MemberChange
		if json.Unmarshal(m.Data, &msg) != nil || !validName(msg.Node) || !validName(msg.Status) {
			return
		}
		ev = clusterEvent{Kind: "member", Node: msg.Node, Status: msg.Status, At: msg.At}
	default:
		return
	}
	if ev.At.IsZero() {
		ev.At = time.Now().UTC()
	}
	cv.mu.Lock()
	switch {
	case ev.Kind == "member":
		cv.addEventLocked(ev)
	case ev.Term > cv.lastTerm:
		cv.lastTerm = ev.Term
		cv.addEventLocked(ev)
	}
	cv.mu.Unlock()
	cv.poke()
	// A node may have come back on a new address: ask where they are.
	cv.r.follower.poke()
}

// relayJoined records that a relay appeared, unless this one is starting
// (relays found then were there before it).
func (cv *clusterView) relayJoined(name string) {
	now := time.Now()
	if now.Sub(cv.started) <= 3*cv.r.cfg.HeartbeatInterval {
		cv.poke()
		return
	}
	cv.mu.Lock()
	cv.addEventLocked(clusterEvent{Kind: "relay", Relay: name, Status: "join", At: now.UTC()})
	cv.mu.Unlock()
	cv.poke()
}

// relaysLeft records that relays went silent.
func (cv *clusterView) relaysLeft(names []string) {
	now := time.Now().UTC()
	cv.mu.Lock()
	defer cv.mu.Unlock()
	for _, name := range names {
		cv.addEventLocked(clusterEvent{Kind: "relay", Relay: name, Status: "leave", At: now})
	}
}

func (cv *clusterView) addEventLocked(e clusterEvent) {
	cv.events = append(cv.events, e)
	if len(cv.events) > clusterEventsKept {
		cv.events = slices.Delete(cv.events, 0, len(cv.events)-clusterEventsKept)
	}
	attrs := []any{"kind", e.Kind}
	if e.Node != "" {
		attrs = append(attrs, "node", e.Node)
	}
	if e.Relay != "" {
		attrs = append(attrs, "peer", e.Relay)
	}
	if e.Status != "" {
		attrs = append(attrs, "status", e.Status)
	}
	if e.Term != 0 {
		attrs = append(attrs, "term", e.Term)
	}
	cv.r.log.Info("cluster event", attrs...)
}

// frameLocked encodes the current view.
func (cv *clusterView) frameLocked() []byte {
	r := cv.r
	f := clusterFrame{Type: typeCluster, Relay: r.cfg.Name, Nodes: slices.Collect(maps.Values(cv.nodes)), Events: slices.Clone(cv.events)}
	f.Leader, f.Term = cv.leaderLocked()
	for _, n := range cv.nodes {
		f.Term = max(f.Term, n.Term)
	}
	slices.SortFunc(f.Nodes, func(a, b clusterNode) int {
		return strings.Compare(a.ID+"\x00"+a.Addr, b.ID+"\x00"+b.Addr)
	})
	f.Relays = append(f.Relays, clusterRelay{Name: r.cfg.Name, URL: r.cfg.PublicURL, Sessions: r.stats.sessions.Load(), Self: true})
	for name, p := range r.peers.snapshot() {
		f.Relays = append(f.Relays, clusterRelay{Name: name, URL: p.url, Sessions: p.sessions})
	}
	slices.SortFunc(f.Relays, func(a, b clusterRelay) int { return strings.Compare(a.Name+a.URL, b.Name+b.URL) })
	if f.Events == nil {
		f.Events = []clusterEvent{}
	}
	return encode(f)
}

// push sends the view to every watcher if it changed since the last push.
func (cv *clusterView) push() {
	cv.mu.Lock()
	defer cv.mu.Unlock()
	if cv.watchers.countLocked() == 0 {
		cv.last = nil
		return
	}
	frame := cv.frameLocked()
	if string(frame) == string(cv.last) {
		return
	}
	cv.last = frame
	cv.watchers.eachLocked(func(c *client) {
		cv.r.out.queue(c, outItem{kind: outView, key: viewCluster, frame: frame})
	})
}

// serveCluster answers GET /cluster with a freshly polled view, for
// operators and scripts (curl …/cluster | jq).
func (r *Relay) serveCluster(w http.ResponseWriter, req *http.Request) {
	r.discovery.expire()
	r.cluster.mu.Lock()
	fresh := time.Since(r.cluster.polledAt) < clusterPoll/2
	r.cluster.mu.Unlock()
	if !fresh {
		// At most a couple of polls a second, however often it is asked.
		r.cluster.poll(req.Context())
	}
	r.cluster.mu.Lock()
	frame := r.cluster.frameLocked()
	r.cluster.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(append(frame, '\n'))
}

// withDev sends everything under /dev/ to dev, the development controls
// only `hangman dev` gives its relays, and answers 404 there, whatever the
// method, when there are none.
func withDev(mux http.Handler, dev http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != "/dev" && !strings.HasPrefix(req.URL.Path, "/dev/") {
			mux.ServeHTTP(w, req)
			return
		}
		if dev == nil {
			httpError(w, http.StatusNotFound, "not_found", "no such endpoint")
			return
		}
		dev.ServeHTTP(w, req)
	})
}

// validName accepts the short printable names nodes and relays go by, so
// nothing odd reaches the page from a stray publisher.
func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}
