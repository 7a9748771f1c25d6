package raftnode

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/hashicorp/raft"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/hangman/hangman/internal/harness"
	"github.com/hangman/hangman/internal/natstest"
	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
	"github.com/hangman/hangman/raftnode/natsembed"
	"github.com/hangman/hangman/relay"
	"github.com/hangman/hangman/services/game"
	"github.com/hangman/hangman/subjects"
	"github.com/hangman/hangman/tlsutil"
)

// These tests run a fully secured cluster (mutual TLS on every link,
// encrypted gossip, NATS users) with real certificates made by tlsutil,
// real TCP and real servers, and check that nothing gets in where it does
// not belong while the legitimate parts keep working.

// testPKI is the security material of one test cluster.
type testPKI struct {
	ca   *tlsutil.CA
	key  []byte
	auth natsembed.Auth
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	ca, err := tlsutil.NewCA("hangman test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &testPKI{ca: ca, key: randomKey(t), auth: natsembed.Auth{NodePassword: "node-pw", RelayPassword: "relay-pw", WatcherPassword: "watcher-pw"}}
}

func randomKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, tlsutil.GossipKeySize)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

// foreignBundle is a certificate for leaf from a CA of its own, not the
// cluster's: what an intruder presents.
func foreignBundle(t *testing.T, leaf tlsutil.Leaf) *tlsutil.Bundle {
	t.Helper()
	ca, err := tlsutil.NewCA("another CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ca.Bundle(leaf)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (p *testPKI) bundle(t *testing.T, leaf tlsutil.Leaf) *tlsutil.Bundle {
	t.Helper()
	b, err := p.ca.Bundle(leaf)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// secure is the newTestCluster tweak that turns every protection on.
func (p *testPKI) secure(t *testing.T) func(*Config) {
	t.Helper()
	return func(c *Config) {
		c.TLS = p.bundle(t, tlsutil.NodeLeaf(c.ID))
		c.GossipKey = p.key
		c.NATSAuth = p.auth
	}
}

// addNodeWith starts one more node like the cluster's first, changed by
// tweak, that waits to be added (no bootstrap).
func (c *testCluster) addNodeWith(id string, tweak func(*Config)) *Node {
	c.t.Helper()
	ports := harness.FreePorts(c.t, 6)
	addr := func(k int) string { return fmt.Sprintf("127.0.0.1:%d", ports[k]) }
	cfg := c.cfgs[0]
	cfg.ID = id
	cfg.DataDir = filepath.Join(filepath.Dir(c.cfgs[0].DataDir), id)
	cfg.GRPCAddr, cfg.RaftAddr, cfg.SerfAddr = addr(0), addr(1), addr(2)
	cfg.NATSAddr, cfg.NATSClusterAddr, cfg.HTTPAddr = addr(3), addr(4), addr(5)
	cfg.BootstrapExpect = 0
	cfg.Logger = harness.Logger().With("n", id)
	tweak(&cfg)
	c.mu.Lock()
	c.cfgs = append(c.cfgs, cfg)
	c.nodes = append(c.nodes, nil)
	i := len(c.nodes) - 1
	c.mu.Unlock()
	return c.start(i)
}

func dialGRPC(t *testing.T, addr string, creds credentials.TransportCredentials) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatalf("grpc client for %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// TestSecureCluster runs one secured cluster for every check, to keep the
// (shared, small) machine's load down.
func TestSecureCluster(t *testing.T) {
	pki := newTestPKI(t)
	c := newTestCluster(t, 3, pki.secure(t))
	li := c.leader()
	c.waitClusterRoutes() // routes authenticate (password and node certificates both ways)
	follower := (li + 1) % 3
	nodeCreds := credentials.NewTLS(c.nodes[follower].cfg.TLS.ClientConfig())

	t.Run("writes work over mutual TLS, forwarded from a follower", func(t *testing.T) {
		g := hangmanv1.NewGameServiceClient(dialGRPC(t, c.cfgs[follower].GRPCAddr, nodeCreds))
		ctx := ctxT(t)
		if _, err := g.CreateRoom(ctx, &hangmanv1.CreateRoomRequest{Room: "secure", MaxWrong: 26}); err != nil {
			t.Fatalf("create room through a follower over TLS: %v", err)
		}
		if _, err := g.JoinRoom(ctx, &hangmanv1.JoinRoomRequest{Room: "secure", PlayerId: "ann", Name: "Ann", Token: harness.TokenOf("ann")}); err != nil {
			t.Fatalf("join: %v", err)
		}
		if _, err := g.Guess(ctx, &hangmanv1.GuessRequest{Room: "secure", PlayerId: "ann", Letter: "e", Token: harness.TokenOf("ann")}); err != nil {
			t.Fatalf("guess: %v", err)
		}
		c.converged()
	})

	t.Run("gRPC refuses clients without a valid certificate", func(t *testing.T) {
		addr := c.cfgs[li].GRPCAddr
		foreign := foreignBundle(t, tlsutil.RelayLeaf("intruder"))
		// Trusting the right CA but presenting nothing.
		noCert := &tls.Config{RootCAs: pki.roots(t), ServerName: tlsutil.NodeName, MinVersion: tls.VersionTLS12}
		// Presenting a certificate from another CA.
		foreignCert := &tls.Config{RootCAs: pki.roots(t), ServerName: tlsutil.NodeName, Certificates: []tls.Certificate{foreign.Cert}, MinVersion: tls.VersionTLS12}
		for name, creds := range map[string]credentials.TransportCredentials{
			"plaintext":            insecure.NewCredentials(),
			"TLS without a cert":   credentials.NewTLS(noCert),
			"cert from another CA": credentials.NewTLS(foreignCert),
		} {
			g := hangmanv1.NewGameServiceClient(dialGRPC(t, addr, creds))
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := g.ListRooms(ctx, &hangmanv1.ListRoomsRequest{})
			cancel()
			if status.Code(err) != codes.Unavailable {
				t.Errorf("%s: ListRooms = %v, want Unavailable (handshake refused)", name, err)
				continue
			}
			t.Logf("%s: refused: %v", name, err)
		}
		// A relay's certificate from the cluster CA is a valid client.
		relayCreds := credentials.NewTLS(pki.bundle(t, tlsutil.RelayLeaf("relay")).ClientConfig())
		g := hangmanv1.NewGameServiceClient(dialGRPC(t, addr, relayCreds))
		if _, err := g.ListRooms(ctxT(t), &hangmanv1.ListRoomsRequest{}); err != nil {
			t.Fatalf("relay certificate refused: %v", err)
		}
		// but it may not move leadership: that is for nodes.
		cc := hangmanv1.NewClusterServiceClient(dialGRPC(t, addr, relayCreds))
		if _, err := cc.TransferLeadership(ctxT(t), &hangmanv1.TransferLeadershipRequest{}); status.Code(err) != codes.PermissionDenied {
			t.Fatalf("relay TransferLeadership = %v, want PermissionDenied", err)
		}
		if _, err := cc.Status(ctxT(t), &hangmanv1.StatusRequest{}); err != nil {
			t.Fatalf("relay Status: %v", err)
		}
		// nor append commands of its own making (a chosen secret word,
		// here) past the game service.
		cmd := game.Command{Kind: game.KindCreateRoom, Room: "rigged", Word: "zebra", RequestID: "rig"}.Encode()
		rc := hangmanv1.NewReplicaServiceClient(dialGRPC(t, addr, relayCreds))
		if _, err := rc.Propose(ctxT(t), &hangmanv1.ProposeRequest{Proposals: []*hangmanv1.Proposal{{Room: "rigged", Command: cmd}}}); status.Code(err) != codes.PermissionDenied {
			t.Fatalf("relay ReplicaService.Propose = %v, want PermissionDenied", err)
		}
		if _, err := g.GetRoom(ctxT(t), &hangmanv1.GetRoomRequest{Room: "rigged", Consistency: hangmanv1.Consistency_CONSISTENCY_LINEARIZABLE}); status.Code(err) != codes.NotFound {
			t.Fatalf("GetRoom of the rigged room = %v, want NotFound", err)
		}
	})

	t.Run("raft transport refuses non-node certificates", func(t *testing.T) {
		foreign := foreignBundle(t, tlsutil.NodeLeaf("intruder"))
		relayB := pki.bundle(t, tlsutil.RelayLeaf("relay"))
		for name, cert := range map[string]tls.Certificate{
			"node cert from another CA":  foreign.Cert,
			"relay cert from cluster CA": relayB.Cert,
		} {
			err := raftHandshake(c.cfgs[li].RaftAddr, cert)
			if err == nil {
				t.Errorf("%s: raft port accepted the connection", name)
				continue
			}
			t.Logf("%s: refused: %v", name, err)
		}
		if err := raftHandshake(c.cfgs[li].RaftAddr, pki.bundle(t, tlsutil.NodeLeaf("n9")).Cert); err != nil {
			t.Fatalf("a node certificate of the cluster CA was refused: %v", err)
		}
	})

	t.Run("NATS users have only their permissions", func(t *testing.T) {
		url := c.nodes[li].NATSURL()
		roots := &tls.Config{RootCAs: pki.roots(t), ServerName: tlsutil.NodeName, MinVersion: tls.VersionTLS12}
		if nc, err := nats.Connect(url, nats.Secure(roots.Clone())); err == nil {
			nc.Close()
			t.Fatal("anonymous NATS connection accepted with users configured")
		} else if !strings.Contains(strings.ToLower(err.Error()), "authorization") {
			t.Fatalf("anonymous connection: %v, want an authorization violation", err)
		}
		connect := func(user, pw string) (*nats.Conn, <-chan error) {
			t.Helper()
			return natstest.Connect(t, url, nats.Secure(roots.Clone()), nats.UserInfo(user, pw), nats.CustomInboxPrefix(natsembed.InboxOf(user)))
		}
		const subject = "hangman.room.x.state"
		watcherSub, _ := connect(natsembed.UserWatcher, pki.auth.WatcherPassword)
		got := make(chan *nats.Msg, 16)
		if _, err := watcherSub.ChanSubscribe(subject, got); err != nil {
			t.Fatal(err)
		}
		if _, err := watcherSub.ChanSubscribe(subjects.RelayHeartbeat, got); err != nil {
			t.Fatal(err)
		}
		if err := watcherSub.Flush(); err != nil {
			t.Fatal(err)
		}

		for _, u := range []struct{ user, pw string }{{natsembed.UserWatcher, pki.auth.WatcherPassword}, {natsembed.UserRelay, pki.auth.RelayPassword}} {
			nc, errs := connect(u.user, u.pw)
			if err := nc.Publish(subject, []byte(`{"forged":"`+u.user+`"}`)); err != nil {
				t.Fatalf("%s publish: %v", u.user, err)
			}
			if err := natstest.Refused(nc, errs, subject); err != nil {
				t.Fatalf("%s publishing %s: %v", u.user, subject, err)
			}
		}
		// The node user may publish there; its message must be the first
		// the subscriber sees, so neither forgery reached it (both were
		// refused, on the same server, before it was sent).
		nodeNC, _ := connect(natsembed.UserNode, pki.auth.NodePassword)
		if err := nodeNC.Publish(subject, []byte(`{"real":true}`)); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-got:
			if string(m.Data) != `{"real":true}` {
				t.Fatalf("subscriber got %s on %s, want the node's message", m.Data, m.Subject)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the node user's message never arrived")
		}
		// The relay may publish its heartbeat.
		relayNC, relayErrs := connect(natsembed.UserRelay, pki.auth.RelayPassword)
		if err := relayNC.Publish(subjects.RelayHeartbeat, []byte(`{"name":"probe"}`)); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-got:
			if m.Subject != subjects.RelayHeartbeat {
				t.Fatalf("got %s, want the relay heartbeat", m.Subject)
			}
		case err := <-relayErrs:
			t.Fatalf("relay heartbeat refused: %v", err)
		case <-time.After(5 * time.Second):
			t.Fatal("the relay heartbeat never arrived")
		}
		// The watcher can list the services, as `nats micro ls` does.
		watcher, _ := connect(natsembed.UserWatcher, pki.auth.WatcherPassword)
		if m, err := watcher.Request("$SRV.PING.hangman-node", nil, 5*time.Second); err != nil {
			t.Fatalf("watcher micro ping: %v", err)
		} else if !strings.Contains(string(m.Data), "hangman-node") {
			t.Fatalf("micro ping answer %s", m.Data)
		}
	})

	t.Run("relay works end to end with TLS and the relay user", func(t *testing.T) {
		relayEndToEnd(t, c, pki)
	})

	t.Run("strangers cannot join", func(t *testing.T) {
		noKey := c.addNodeWith("nokey", func(cfg *Config) {
			cfg.TLS = pki.bundle(t, tlsutil.NodeLeaf(cfg.ID))
			cfg.GossipKey = nil
		})
		wrongKey := c.addNodeWith("wrongkey", func(cfg *Config) {
			cfg.TLS = pki.bundle(t, tlsutil.NodeLeaf(cfg.ID))
			cfg.GossipKey = randomKey(t)
		})
		wrongCA := c.addNodeWith("wrongca", func(cfg *Config) {
			cfg.TLS = foreignBundle(t, tlsutil.NodeLeaf(cfg.ID))
		})
		good := c.addNodeWith("good", pki.secure(t))
		members := []*Node{c.nodes[0], c.nodes[1], c.nodes[2], good}
		keptOut := func() error {
			for _, n := range members {
				for _, m := range n.membership.serf.Members() {
					if m.Name == "nokey" || m.Name == "wrongkey" {
						return fmt.Errorf("%s has %s as a serf member (%s)", n.ID(), m.Name, m.Status)
					}
				}
			}
			for _, r := range []*Node{noKey, wrongKey} {
				if k := r.membership.serf.NumNodes(); k != 1 {
					return fmt.Errorf("%s sees %d serf members", r.ID(), k)
				}
			}
			for _, s := range configurationOf(members) {
				switch nodeOfRaftID(s.ID) {
				case "nokey", "wrongkey":
					return fmt.Errorf("%s is in the raft configuration", s.ID)
				case "wrongca":
					if s.Suffrage == raft.Voter {
						return errors.New("wrongca became a voter")
					}
				}
			}
			for _, r := range []*Node{noKey, wrongKey, wrongCA} {
				if idx := r.raft.LastIndex(); idx != 0 {
					return fmt.Errorf("%s received raft entries up to %d", r.ID(), idx)
				}
				if rooms := roomsOf(t, r); rooms != "null" && rooms != "[]" {
					return fmt.Errorf("%s has game state %s", r.ID(), rooms)
				}
				if k := r.nats.NATS().NumRoutes(); k != 0 {
					return fmt.Errorf("%s has %d NATS routes", r.ID(), k)
				}
			}
			return nil
		}
		// The node with the right key and certificate joins: the window in
		// which the strangers are watched is not empty.
		harness.Eventually(t, 20*time.Second, "the legitimate node to become a voter", func() error {
			if err := keptOut(); err != nil {
				t.Fatal(err)
			}
			if s := suffrageIn(members, "good"); s != raft.Voter {
				return fmt.Errorf("it is %v", s)
			}
			return nil
		})
		harness.Eventually(t, 10*time.Second, "the good node to catch up", func() error {
			if snapshotOf(t, good) != snapshotOf(t, c.nodes[li]) {
				return errors.New("state differs")
			}
			return nil
		})
		// And for a while longer, whatever the gossip and retry timers do.
		harness.Throughout(t, 3*time.Second, "strangers kept out", keptOut)
	})
}

// configurationOf returns the raft configuration as the current leader
// among nodes sees it (nil while there is none).
func configurationOf(nodes []*Node) []raft.Server {
	for _, n := range nodes {
		if n.IsLeader() {
			return n.raft.GetConfiguration().Configuration().Servers
		}
	}
	return nil
}

// suffrageIn is node id's suffrage in the leader's configuration, or -1.
func suffrageIn(nodes []*Node, id string) raft.ServerSuffrage {
	for _, s := range configurationOf(nodes) {
		if nodeOfRaftID(s.ID) == id {
			return s.Suffrage
		}
	}
	return -1
}

// roots is the pool of the cluster CA alone, for clients that only verify
// servers (the watcher, as the nats CLI with --tlsca).
func (p *testPKI) roots(t *testing.T) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(p.ca.CertPEM) {
		t.Fatal("CA PEM does not parse")
	}
	return pool
}

// raftHandshake opens a TLS connection to a raft port presenting cert, not
// verifying the server (this is about what the server accepts), and
// reports whether the server refused it: with TLS 1.3 the server's verdict
// on the client certificate arrives with the first read.
func raftHandshake(addr string, cert tls.Certificate) error {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{
		InsecureSkipVerify: true, //nolint:gosec // the client's verification is not under test
		Certificates:       []tls.Certificate{cert},
		MinVersion:         tls.VersionTLS13,
	})
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(time.Second))
	_, err = conn.Read(make([]byte, 1))
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		// The server kept the connection: it accepted the certificate
		// and waits for an RPC.
		return nil
	}
	if err == nil {
		return errors.New("raft server sent data unprompted")
	}
	return err
}

// relayEndToEnd runs a real relay against the secured cluster: gRPC with
// its client certificate, NATS over TLS as the relay user, and a websocket
// player who creates a room, joins, guesses and receives the event that
// came through NATS.
func relayEndToEnd(t *testing.T, c *testCluster, pki *testPKI) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	public := "http://" + ln.Addr().String()
	var natsURLs, grpcAddrs []string
	for i, n := range c.alive() {
		natsURLs = append(natsURLs, n.NATSURL())
		grpcAddrs = append(grpcAddrs, c.cfgs[i].GRPCAddr)
	}
	r, err := relay.New(context.Background(), relay.Config{
		Name:         "secure-relay",
		PublicURL:    public,
		NATSURLs:     natsURLs,
		GRPCAddrs:    grpcAddrs,
		TLS:          pki.bundle(t, tlsutil.RelayLeaf("relay")),
		NATSUser:     natsembed.UserRelay,
		NATSPassword: pki.auth.RelayPassword,
		Logger:       harness.Logger(),
	})
	if err != nil {
		_ = ln.Close()
		t.Fatalf("relay: %v", err)
	}
	go func() { _ = r.Serve(ln) }()
	t.Cleanup(func() { _ = r.Close() })
	harness.Eventually(t, 15*time.Second, "the relay to be ready", func() error {
		resp, err := http.Get(public + "/readyz")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz %d", resp.StatusCode)
		}
		return nil
	})
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+ln.Addr().String()+"/ws", http.Header{"Origin": {public}})
	if err != nil {
		t.Fatalf("websocket: %v", err)
	}
	defer ws.Close()
	frames := make(chan map[string]any, 64)
	var once sync.Once
	go func() {
		defer once.Do(func() { close(frames) })
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				return
			}
			var f map[string]any
			if json.Unmarshal(data, &f) == nil {
				frames <- f
			}
		}
	}()
	await := func(what string, match func(map[string]any) bool) map[string]any {
		t.Helper()
		timeout := time.After(15 * time.Second)
		for {
			select {
			case f, ok := <-frames:
				if !ok {
					t.Fatalf("websocket closed waiting for %s", what)
				}
				if f["type"] == "error" {
					t.Fatalf("error frame waiting for %s: %v", what, f)
				}
				if match(f) {
					return f
				}
			case <-timeout:
				t.Fatalf("no %s within 15s", what)
			}
		}
	}
	send := func(v map[string]any) {
		t.Helper()
		if err := ws.WriteJSON(v); err != nil {
			t.Fatal(err)
		}
	}
	ack := func(id string) func(map[string]any) bool {
		return func(f map[string]any) bool { return f["type"] == "ack" && f["id"] == id }
	}
	send(map[string]any{"type": "create", "room": "relayed", "maxWrong": 26, "id": "c1"})
	await("create ack", ack("c1"))
	send(map[string]any{"type": "join", "room": "relayed", "playerId": "bea", "name": "Bea", "id": "j1", "token": harness.TokenOf("bea")})
	await("join ack", ack("j1"))
	// Events reach a relay only over NATS. The relay's subscription to the
	// room reaches the leader's NATS server over a route a moment after the
	// join, so an event published before then is not delivered: guess
	// again until one arrives.
	deadline := time.After(15 * time.Second)
	for i, letter := range "etaoinshrdlucmfwypvbgkqjxz" {
		id := fmt.Sprintf("g%d", i)
		send(map[string]any{"type": "guess", "letter": string(letter), "id": id, "token": harness.TokenOf("bea")})
		for acked := false; !acked; {
			select {
			case f, ok := <-frames:
				if !ok {
					t.Fatal("websocket closed while guessing")
				}
				// A change's event comes in its state frame, or alone.
				d, _ := f["data"].(map[string]any)
				if f["type"] == "state" {
					d, _ = f["event"].(map[string]any)
				}
				switch {
				case (f["type"] == "event" || f["type"] == "state") && d["kind"] == "guess" && d["player"] == "bea":
					return
				case f["type"] == "error":
					t.Fatalf("guess %s refused: %v", string(letter), f)
				case f["type"] == "ack" && f["id"] == id:
					acked = true
				}
			case <-deadline:
				t.Fatal("no guess event reached the relay over NATS within 15s")
			}
		}
	}
	t.Fatal("26 guesses and no event over NATS")
}

// TestNATSRoutesNeedCredentials: with NATS users on (here without TLS),
// the embedded servers route to each other with the route credentials,
// and a foreign nats-server that knows the route port but not them never
// joins the NATS cluster.
func TestNATSRoutesNeedCredentials(t *testing.T) {
	auth := natsembed.Auth{NodePassword: "node-pw", RelayPassword: "relay-pw", WatcherPassword: "watcher-pw"}
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.NATSAuth = auth })
	c.leader()
	c.waitClusterRoutes()

	route, err := url.Parse("nats-route://" + c.cfgs[0].NATSClusterAddr)
	if err != nil {
		t.Fatal(err)
	}
	foreign := natstest.Server(t, natsserver.Options{
		ServerName: "foreign",
		Cluster:    natsserver.ClusterOpts{Name: natsembed.ClusterName, Host: "127.0.0.1", Port: -1},
		Routes:     []*url.URL{route},
	})
	// The foreign server keeps dialling the route port, so it may hold a
	// connection for the moment before the node refuses its credentials;
	// what must never happen is that a node accepts the route, or that a
	// message published in the cluster reaches the foreign server.
	fc, err := nats.Connect(foreign.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Close()
	leak, err := fc.SubscribeSync("hangman.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := fc.Flush(); err != nil {
		t.Fatal(err)
	}
	pub, err := nats.Connect(c.nodes[0].NATSURL(), nats.UserInfo(natsembed.UserNode, auth.NodePassword))
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	harness.Throughout(t, 2*time.Second, "foreign server kept out of the NATS cluster", func() error {
		if err := pub.Publish("hangman.probe", []byte("cluster only")); err != nil {
			return err
		}
		if n, _, _ := leak.Pending(); n > 0 {
			return fmt.Errorf("%d messages published in the cluster reached the foreign server", n)
		}
		for _, n := range c.alive() {
			rz, err := n.nats.NATS().Routez(nil)
			if err != nil {
				return err
			}
			for _, r := range rz.Routes {
				if r.RemoteName == "foreign" {
					return fmt.Errorf("%s routes to the foreign server", n.ID())
				}
			}
		}
		return nil
	})
	// The same users work without TLS: the watcher reads, and cannot write.
	nc, err := nats.Connect(c.nodes[0].NATSURL(), nats.UserInfo(natsembed.UserWatcher, auth.WatcherPassword), nats.CustomInboxPrefix(natsembed.InboxWatcher))
	if err != nil {
		t.Fatalf("watcher without TLS: %v", err)
	}
	defer nc.Close()
	if _, err := nc.Request("$SRV.PING.hangman-node", nil, 5*time.Second); err != nil {
		t.Fatalf("watcher micro ping: %v", err)
	}
}
