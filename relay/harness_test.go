package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/hangman/hangman/internal/harness"
	"github.com/hangman/hangman/internal/natstest"
	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
	"github.com/hangman/hangman/services/api"
	"github.com/hangman/hangman/services/game"
	"github.com/hangman/hangman/subjects"
)

// memReplica is the one stand-in of these tests: an in-memory game.Machine
// behind a mutex that always leads, and publishes what changed to NATS the
// way a leader does.
type memReplica struct {
	mu        sync.Mutex
	m         *game.Machine
	index     uint64
	nc        *nats.Conn
	noStates  atomic.Bool // drop state messages (to make seq gaps)
	noHistory atomic.Bool // drop history messages (as a leader dying between the two would)
	noPublish atomic.Bool // drop everything
}

func (r *memReplica) Propose(_ context.Context, _ string, cmd []byte) (game.Result, uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.index++
	res := r.m.Apply(r.index, cmd)
	// As the nodes' publisher does: the event, then the state, then the
	// history if the change finished a round.
	if res.Event != nil && !r.noPublish.Load() {
		b, _ := json.Marshal(res.Event)
		_ = r.nc.Publish(subjects.RoomEvent(res.Room), b)
		if !r.noStates.Load() {
			b, _ := json.Marshal(res.State)
			_ = r.nc.Publish(subjects.RoomState(res.Room), b)
		}
		if res.History != nil && !r.noHistory.Load() {
			b, _ := json.Marshal(res.History)
			_ = r.nc.Publish(subjects.RoomHistory(res.Room), b)
		}
	}
	return res, r.index, nil
}

// Forward is never called: the in-memory replica always leads.
func (r *memReplica) Forward(ctx context.Context, room string, cmd []byte) (game.Result, uint64, error) {
	return r.Propose(ctx, room, cmd)
}

func (r *memReplica) ReadIndex(context.Context) error  { return nil }
func (r *memReplica) LeaderRead(context.Context) error { return nil }
func (r *memReplica) IsLeader() bool                   { return true }
func (r *memReplica) Read(fn func(m *game.Machine)) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	fn(r.m)
	return r.m.Applied()
}
func (r *memReplica) LeaderChanged() <-chan struct{} { return make(chan struct{}) }
func (r *memReplica) LeaderConn() *grpc.ClientConn   { return nil }

// cluster is a NATS server plus one gRPC game "node" over memReplica.
type cluster struct {
	natsURL  string
	nsrv     *server.Server
	grpcAddr string
	rep      *memReplica
	game     hangmanv1.GameServiceClient
	nc       *nats.Conn
	// health is the node's grpc.health.v1, SERVING (it knows a leader)
	// until a test says otherwise.
	health *health.Server
	// reads counts the GetRoom calls the node served, by consistency.
	reads readCounter
	// relayUser and relayPassword are the NATS credentials of relays,
	// empty when the server has no users.
	relayUser, relayPassword string
	// grpc is the node's gRPC server.
	grpc *grpc.Server
	// members is what the node's ClusterService.Members lists.
	members memberList
}

// memberList is a node's ClusterService that lists the members a test sets
// (none until it does), as serf would gossip them. Its other methods are
// unimplemented.
type memberList struct {
	hangmanv1.UnimplementedClusterServiceServer
	mu sync.Mutex
	ms []*hangmanv1.Member
}

func (l *memberList) set(ms ...*hangmanv1.Member) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ms = ms
}

func (l *memberList) Members(context.Context, *hangmanv1.MembersRequest) (*hangmanv1.MembersResponse, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return &hangmanv1.MembersResponse{Members: l.ms}, nil
}

// serveNode serves the cluster's game, health and members on a gRPC
// server of its own at a fresh address: the same cluster, as a node that
// came back on a new address serves it.
func (cl *cluster) serveNode(t testing.TB, ln net.Listener) *grpc.Server {
	t.Helper()
	gs := grpc.NewServer(grpc.UnaryInterceptor(cl.reads.intercept))
	api.New(cl.rep, harness.Logger()).Register(gs)
	healthpb.RegisterHealthServer(gs, cl.health)
	hangmanv1.RegisterClusterServiceServer(gs, &cl.members)
	go func() { _ = gs.Serve(ln) }()
	t.Cleanup(gs.Stop)
	return gs
}

// readCounter counts GetRoom calls by consistency, as a gRPC interceptor.
type readCounter struct {
	mu sync.Mutex
	n  map[hangmanv1.Consistency]int
}

func (rc *readCounter) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if g, ok := req.(*hangmanv1.GetRoomRequest); ok {
		rc.mu.Lock()
		if rc.n == nil {
			rc.n = make(map[hangmanv1.Consistency]int)
		}
		rc.n[g.GetConsistency()]++
		rc.mu.Unlock()
	}
	return h(ctx, req)
}

// count returns the GetRoom calls at consistency c, or at any when c is -1.
func (rc *readCounter) count(c hangmanv1.Consistency) int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	total := 0
	for k, v := range rc.n {
		if c == -1 || k == c {
			total += v
		}
	}
	return total
}

// startCluster starts a cluster whose NATS server has no users, as in
// `hangman dev`: anyone may publish anything, so relays confirm seqs.
func startCluster(t testing.TB) *cluster {
	t.Helper()
	return startClusterWith(t, nil)
}

// Passwords of the NATS users of startTrustedCluster.
const (
	testNodePassword  = "node-pw"
	testRelayPassword = "relay-pw"
)

// startTrustedCluster starts a cluster whose NATS server has users, as a
// production cluster's: only the "node" user (the test's publisher) may
// publish room messages, and relays authenticate as "relay", so they take
// what NATS brings as it comes.
func startTrustedCluster(t testing.TB) *cluster {
	t.Helper()
	cl := startClusterWith(t, []*server.User{
		{Username: "node", Password: testNodePassword},
		{Username: "relay", Password: testRelayPassword, Permissions: &server.Permissions{
			Publish:  &server.SubjectPermission{Allow: []string{"hangman.relay.>"}},
			Response: &server.ResponsePermission{MaxMsgs: 1},
		}},
	})
	cl.relayUser, cl.relayPassword = "relay", testRelayPassword
	return cl
}

func startClusterWith(t testing.TB, users []*server.User) *cluster {
	t.Helper()
	ns := natstest.Server(t, server.Options{Users: users})
	opts := []nats.Option{}
	if users != nil {
		opts = append(opts, nats.UserInfo("node", testNodePassword))
	}
	nc, _ := natstest.Connect(t, ns.ClientURL(), opts...)
	rep := &memReplica{m: game.New(), nc: nc}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &cluster{natsURL: ns.ClientURL(), nsrv: ns, grpcAddr: ln.Addr().String(), rep: rep, nc: nc, health: health.NewServer()}
	cl.health.SetServingStatus(hangmanv1.GameService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	cl.grpc = cl.serveNode(t, ln)
	cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecureCreds()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	cl.game = hangmanv1.NewGameServiceClient(cc)
	return cl
}

// createRoom makes a room through the game service, as another relay would.
func (cl *cluster) createRoom(t testing.TB, room string) *hangmanv1.RoomState {
	t.Helper()
	res, err := cl.game.CreateRoom(context.Background(), &hangmanv1.CreateRoomRequest{Room: room})
	if err != nil {
		t.Fatalf("create room %s: %v", room, err)
	}
	return res.GetState()
}

type testRelay struct {
	*Relay
	url  string // http://127.0.0.1:port
	addr string
}

func startRelay(t testing.TB, cl *cluster, mod func(*Config)) *testRelay {
	t.Helper()
	return startRelayOn(t, cl, listen(t), mod)
}

// listen opens the listener of a relay to start later, so that relays
// started before it can be configured with its URL.
func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	return ln
}

// urlOf is the URL of a relay serving on ln.
func urlOf(ln net.Listener) string { return "http://" + ln.Addr().String() }

func startRelayOn(t testing.TB, cl *cluster, ln net.Listener, mod func(*Config)) *testRelay {
	t.Helper()
	u := urlOf(ln)
	cfg := Config{Name: "test-" + ln.Addr().String(), PublicURL: u, NATSURLs: []string{cl.natsURL}, GRPCAddrs: []string{cl.grpcAddr}, Logger: harness.Logger(), HeartbeatInterval: 200 * time.Millisecond,
		NATSUser: cl.relayUser, NATSPassword: cl.relayPassword}
	if mod != nil {
		mod(&cfg)
	}
	r, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = r.Serve(ln) }()
	t.Cleanup(func() { _ = r.Close() })
	return &testRelay{Relay: r, url: u, addr: ln.Addr().String()}
}

// frame is a server frame as the tests read it.
type frame struct {
	Type      string          `json:"type"`
	ID        string          `json:"id"`
	Op        string          `json:"op"`
	Code      string          `json:"code"`
	Message   string          `json:"message"`
	Outcome   string          `json:"outcome"`
	Duplicate bool            `json:"duplicate"`
	Relay     string          `json:"relay"`
	Relays    []string        `json:"relays"`
	Data      json.RawMessage `json:"data"`
	// Event is the change a state frame carries with it.
	Event json.RawMessage `json:"event"`
	Rooms []roomSummary   `json:"rooms"`
	Next  string          `json:"next"`
	Seq   uint64          `json:"seq"`
	Token string          `json:"token"`
	Room  string          `json:"room"`
	// Count is a spectators frame's total.
	Count int `json:"count"`
	// RetryAfterMs is set on rate-limited creations and joins.
	RetryAfterMs int64 `json:"retryAfterMs"`
	raw          []byte
	state        *game.State
	event        *game.Event
	history      *game.History
	// carried says this event came in its state's frame: the test client
	// hands such a frame over as the state and then the event, so tests
	// read changes the same whether or not the relay joined them.
	carried bool
}

// wsClient is a test browser: it reads every frame into a channel.
type wsClient struct {
	t      testing.TB
	conn   *websocket.Conn
	frames chan frame
	done   chan struct{}
	err    error // read error, valid after done
	seen   []frame
	taken  []bool
	wmu    sync.Mutex
	// token is the player's, once join has joined.
	token string
}

func dial(t testing.TB, base string, hdr http.Header) (*wsClient, *http.Response, error) {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	conn, resp, err := d.Dial(strings.Replace(base, "http://", "ws://", 1)+"/ws", hdr)
	if err != nil {
		return nil, resp, err
	}
	c := &wsClient{t: t, conn: conn, frames: make(chan frame, 4096), done: make(chan struct{})}
	go c.readLoop()
	t.Cleanup(func() { _ = conn.Close() })
	return c, resp, nil
}

// refusedUpgrade dials base with hdr and fails unless the relay refuses
// the websocket with status and an error body with code and a message.
func refusedUpgrade(t testing.TB, base string, hdr http.Header, status int, code string) {
	t.Helper()
	_, resp, err := dial(t, base, hdr)
	if err == nil || resp == nil || resp.StatusCode != status {
		t.Fatalf("dial %s: err %v resp %v, want status %d", base, err, resp, status)
	}
	var ef errorFrame
	_ = json.NewDecoder(resp.Body).Decode(&ef)
	if ef.Type != "error" || ef.Code != code || ef.Message == "" {
		t.Fatalf("refusal body %+v, want an error with code %s and a message", ef, code)
	}
}

// waitAccepted waits until the relay at base accepts a websocket dialled
// with hdr, which it then closes; what names the wait.
func waitAccepted(t testing.TB, base string, hdr http.Header, what string) {
	t.Helper()
	harness.EventuallyTrue(t, waitFor, what, func() bool {
		c, _, err := dial(t, base, hdr)
		if err == nil {
			_ = c.conn.Close()
		}
		return err == nil
	})
}

func mustDial(t testing.TB, base string) *wsClient {
	t.Helper()
	c, _, err := dial(t, base, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", base, err)
	}
	c.expect("welcome", nil)
	return c
}

func (c *wsClient) readLoop() {
	defer close(c.done)
	for {
		_, b, err := c.conn.ReadMessage()
		if err != nil {
			c.err = err
			return
		}
		var f frame
		if err := json.Unmarshal(b, &f); err != nil {
			c.err = fmt.Errorf("server sent a frame that is not JSON: %q: %w", b, err)
			return
		}
		f.raw = b
		switch f.Type {
		case "state":
			f.state = new(game.State)
			if err := json.Unmarshal(f.Data, f.state); err != nil {
				c.err = fmt.Errorf("bad state %s: %w", f.Data, err)
				return
			}
			if f.Event != nil {
				ev := frame{Type: "event", Data: f.Event, raw: b, event: new(game.Event), carried: true}
				if err := json.Unmarshal(f.Event, ev.event); err != nil || ev.event.Seq != f.state.Seq {
					c.err = fmt.Errorf("bad event %s in state %s: %v", f.Event, f.Data, err)
					return
				}
				if !c.push(f) {
					return
				}
				f = ev
			}
		case "event":
			f.event = new(game.Event)
			if err := json.Unmarshal(f.Data, f.event); err != nil {
				c.err = fmt.Errorf("bad event %s: %w", f.Data, err)
				return
			}
		case "history":
			f.history = new(game.History)
			if err := json.Unmarshal(f.Data, f.history); err != nil || f.history.Seq == 0 {
				c.err = fmt.Errorf("bad history %s: %v", f.Data, err)
				return
			}
		}
		if !c.push(f) {
			return
		}
	}
}

// push hands f to the test, or says (false, and in c.err) that the test
// has fallen too far behind to take it.
func (c *wsClient) push(f frame) bool {
	select {
	case c.frames <- f:
		return true
	default:
		c.err = errors.New("test client buffer full")
		return false
	}
}

// guess sends a guess as the joined player, with its token.
func (c *wsClient) guess(letter, id string) {
	c.t.Helper()
	c.send(map[string]any{"type": "guess", "letter": letter, "id": id, "token": c.token})
}

func (c *wsClient) send(v any) {
	c.t.Helper()
	var b []byte
	switch v := v.(type) {
	case string:
		b = []byte(v)
	case []byte:
		b = v
	default:
		b, _ = json.Marshal(v)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.conn.WriteMessage(websocket.TextMessage, b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

const waitFor = 10 * time.Second

// expect returns the first frame not yet taken by an earlier expect that
// has type typ and satisfies ok (nil: any), waiting for it with a deadline.
// Frames before it stay available to later expects; they are returned as
// well, in order, so a test can check what came first.
func (c *wsClient) expect(typ string, ok func(frame) bool) (frame, []frame) {
	c.t.Helper()
	return c.expectFrame(fmt.Sprintf("%q", typ), func(f frame) bool { return f.Type == typ && (ok == nil || ok(f)) })
}

// answer waits for the answer to the command with id id: its ack or its
// error.
func (c *wsClient) answer(id string) frame {
	c.t.Helper()
	f, _ := c.expectFrame("answer to "+id, func(f frame) bool { return (f.Type == "ack" || f.Type == "error") && f.ID == id })
	return f
}

// expectFrame is expect with any condition, described by what.
func (c *wsClient) expectFrame(what string, match func(frame) bool) (frame, []frame) {
	c.t.Helper()
	timeout := time.After(waitFor)
	ended := false
	for {
		var before []frame
		for i, f := range c.seen {
			if c.taken[i] {
				continue
			}
			if match(f) {
				c.taken[i] = true
				return f, before
			}
			before = append(before, f)
		}
		if ended {
			c.t.Fatalf("connection ended (%v) before a %s frame; unmatched %s", c.err, what, describe(before))
		}
		select {
		case f := <-c.frames:
			c.seen = append(c.seen, f)
			c.taken = append(c.taken, false)
		case <-c.done:
			for {
				select {
				case f := <-c.frames:
					c.seen = append(c.seen, f)
					c.taken = append(c.taken, false)
					continue
				default:
				}
				break
			}
			ended = true
		case <-timeout:
			c.t.Fatalf("no %s frame within %v; unmatched %s", what, waitFor, describe(before))
		}
	}
}

// expectError waits for an error frame with the given code.
func (c *wsClient) expectError(code string) frame {
	c.t.Helper()
	f, _ := c.expect("error", func(f frame) bool { return f.Code == code })
	if f.Message == "" {
		c.t.Errorf("error frame %s has no message", f.raw)
	}
	return f
}

// waitClosed waits for the connection to end and returns the read error.
func (c *wsClient) waitClosed() error {
	c.t.Helper()
	select {
	case <-c.done:
		return c.err
	case <-time.After(waitFor):
		c.t.Fatal("connection still open")
		return nil
	}
}

func describe(fs []frame) string {
	var b strings.Builder
	for i, f := range fs {
		if i == 8 {
			fmt.Fprintf(&b, " …(%d more)", len(fs)-i)
			break
		}
		b.Write(clipBytes(f.raw, 160))
		b.WriteByte(' ')
	}
	return b.String()
}

func clipBytes(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

func httpGet(t testing.TB, u string, hdr http.Header) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func insecureCreds() credentials.TransportCredentials { return insecure.NewCredentials() }

var serverConnzOpts = server.ConnzOptions{Subscriptions: true, Limit: 1000}
