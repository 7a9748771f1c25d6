package relay

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"testing"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hangman/hangman/internal/harness"
	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
	"github.com/hangman/hangman/services/api"
	"github.com/hangman/hangman/services/game"
	"github.com/hangman/hangman/subjects"
)

// These tests attack a relay the way an anonymous client could, over the
// websocket and over an unauthenticated NATS connection (dev mode), and
// check that each attack costs the attacker more than the system.

// TestListIsPaginated: a small list request never returns the whole lobby,
// over gRPC or over the websocket, and the pages put together are the
// lobby.
func TestListIsPaginated(t *testing.T) {
	cl := startCluster(t)
	const rooms = 250
	var want []string
	for i := range rooms {
		name := fmt.Sprintf("room-%03d", i)
		cl.createRoom(t, name)
		want = append(want, name)
	}

	t.Run("grpc", func(t *testing.T) {
		ctx := context.Background()
		for _, size := range []uint32{0, 7, 100, 100000} {
			var got []string
			token := ""
			for pages := 0; ; pages++ {
				res, err := cl.game.ListRooms(ctx, &hangmanv1.ListRoomsRequest{PageSize: size, PageToken: token})
				if err != nil {
					t.Fatal(err)
				}
				limit := int(size)
				if size == 0 {
					limit = api.DefaultListPageSize
				}
				if n := len(res.GetRooms()); n > min(limit, api.MaxListPageSize) {
					t.Fatalf("page_size %d: a page of %d rooms", size, n)
				}
				for _, r := range res.GetRooms() {
					got = append(got, r.GetRoom())
				}
				if token = res.GetNextPageToken(); token == "" {
					break
				}
				if pages > rooms {
					t.Fatal("the listing does not end")
				}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("page_size %d: pages put together are %v", size, got)
			}
		}
		_, err := cl.game.ListRooms(ctx, &hangmanv1.ListRoomsRequest{PageToken: "Not A Room!"})
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("bad page token: %v, want InvalidArgument", err)
		}
	})

	t.Run("websocket", func(t *testing.T) {
		tr := startRelay(t, cl, nil)
		c := mustDial(t, tr.url)
		var got []string
		after := ""
		for page := 0; ; page++ {
			id := fmt.Sprintf("l%d", page)
			c.send(map[string]any{"type": "list", "after": after, "id": id})
			f, _ := c.expect("rooms", func(f frame) bool { return f.ID == id })
			if len(f.Rooms) > api.DefaultListPageSize {
				t.Fatalf("a list frame answered with %d rooms (%d bytes)", len(f.Rooms), len(f.raw))
			}
			for _, r := range f.Rooms {
				got = append(got, r.Room)
			}
			if after = f.Next; after == "" {
				break
			}
			if page > rooms {
				t.Fatal("the listing does not end")
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("pages put together are %v", got)
		}
		c.send(`{"type":"list","limit":1000,"id":"big"}`)
		if f, _ := c.expect("rooms", func(f frame) bool { return f.ID == "big" }); len(f.Rooms) > api.MaxListPageSize {
			t.Fatalf("limit 1000 answered with %d rooms", len(f.Rooms))
		}
		c.send(`{"type":"list","after":"Not A Room!","id":"bad"}`)
		c.expectError(CodeBadRequest)
	})
}

// TestUnknownRoomsCostOneLookup: connections that watch rooms that do not
// exist cost one cheap lookup per room, shared by all its watchers, and
// nothing afterwards, however long they stay; the room still shows up
// once created, from NATS (without NATS users, after one read that
// confirms its seq).
func TestUnknownRoomsCostOneLookup(t *testing.T) {
	for _, tc := range []struct {
		name    string
		start   func(testing.TB) *cluster
		confirm int // reads that confirm the creation's seq
	}{
		{"dev", startCluster, 1},
		{"nats users", startTrustedCluster, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := tc.start(t)
			tr := startRelay(t, cl, nil)
			const ghosts, crowd = 20, 20
			var clients []*wsClient
			for i := range ghosts {
				c := mustDial(t, tr.url)
				c.send(fmt.Sprintf(`{"type":"watch","room":"ghost-%d"}`, i))
				c.expect("ack", func(f frame) bool { return f.Op == "watch" })
				clients = append(clients, c)
			}
			for range crowd {
				c := mustDial(t, tr.url)
				c.send(`{"type":"watch","room":"ghost-shared"}`)
				c.expect("ack", func(f frame) bool { return f.Op == "watch" })
			}
			const lookups = ghosts + 1
			harness.EventuallyTrue(t, waitFor, "one lookup per unknown room", func() bool { return cl.reads.count(-1) >= lookups })
			// Let the anti-entropy sweep look at every room twice.
			swept := tr.stats.sweeps.Load()
			harness.EventuallyTrue(t, waitFor, "two sweeps", func() bool { return tr.stats.sweeps.Load() >= swept+2 })
			if n := cl.reads.count(-1); n != lookups {
				t.Errorf("%d watchers of %d unknown rooms made %d GetRoom calls, want %d", ghosts+crowd, ghosts+1, n, lookups)
			}
			if n := cl.reads.count(hangmanv1.Consistency_CONSISTENCY_LINEARIZABLE); n != 0 {
				t.Errorf("%d quorum reads, want none", n)
			}

			// The room appears when it is created, from NATS.
			created := cl.createRoom(t, "ghost-3")
			clients[3].expect("state", stateWith("ghost-3", created.GetSeq()))
			if n := cl.reads.count(-1); n > lookups+tc.confirm {
				t.Errorf("after the creation: %d GetRoom calls, want at most %d", n, lookups+tc.confirm)
			}
		})
	}
}

// TestForgedSeqDoesNotFreezeRoom: without NATS users anyone may publish on
// a room's subjects. A state and an event with a seq far beyond the
// cluster's must not reach a browser nor make the relay drop the real
// ones that follow.
func TestForgedSeqDoesNotFreezeRoom(t *testing.T) {
	cl := startCluster(t)
	cl.createRoom(t, "target")
	tr := startRelay(t, cl, nil)
	c := mustDial(t, tr.url)
	c.send(`{"type":"watch","room":"target"}`)
	c.expect("ack", func(f frame) bool { return f.Op == "watch" })
	c.expect("state", func(f frame) bool { return f.state.Room == "target" })

	attacker, err := nats.Connect(cl.natsURL, nats.Name("attacker"))
	if err != nil {
		t.Fatal(err)
	}
	defer attacker.Close()
	const forged = 999999
	fake := game.State{Room: "target", Round: 9, Seq: forged, Masked: "pwned", Status: game.StatusPlaying}
	b, _ := json.Marshal(fake)
	if err := attacker.Publish("hangman.room.target.state", b); err != nil {
		t.Fatal(err)
	}
	ev, _ := json.Marshal(game.Event{Seq: forged, Prev: forged - 1, Room: "target", Kind: game.EventGuess, Round: 9, Player: "mallory", Letter: "z"})
	if err := attacker.Publish("hangman.room.target.event", ev); err != nil {
		t.Fatal(err)
	}
	if err := attacker.Flush(); err != nil {
		t.Fatal(err)
	}

	// A real change after the forgery reaches the browser.
	res, err := cl.game.JoinRoom(context.Background(), &hangmanv1.JoinRoomRequest{Room: "target", PlayerId: "ann", Name: "Ann"})
	if err != nil {
		t.Fatal(err)
	}
	real := res.GetState().GetSeq()
	c.expect("state", func(f frame) bool { return f.state.Room == "target" && f.state.Seq == real })
	c.expect("event", func(f frame) bool { return f.event.Seq == real })
	for _, f := range c.seen {
		if (f.state != nil && f.state.Seq == forged) || (f.event != nil && f.event.Seq == forged) {
			t.Fatalf("the forged message reached the browser: %s", f.raw)
		}
	}
	harness.EventuallyTrue(t, waitFor, "the 2 forged messages dropped", func() bool { return tr.stats.unconfirmed.Load() == 2 })
	for _, f := range c.seen {
		if (f.state != nil && f.state.Seq == forged) || (f.event != nil && f.event.Seq == forged) {
			t.Fatalf("the forged message reached the browser: %s", f.raw)
		}
	}
}

// TestHeartbeatsNeitherWidenOriginsNorRedirect: a heartbeat anyone can
// publish (dev mode) names a relay at https://evil.example. The relay must
// neither accept websockets from that origin nor tell its browsers to go
// there; a relay its configuration names is still a failover target.
func TestHeartbeatsNeitherWidenOriginsNorRedirect(t *testing.T) {
	cl := startCluster(t)
	const trusted = "http://other-relay.example:8080"
	tr := startRelay(t, cl, func(c *Config) { c.AllowedOrigins = []string{trusted} })
	c := mustDial(t, tr.url)

	attacker, err := nats.Connect(cl.natsURL, nats.Name("attacker"))
	if err != nil {
		t.Fatal(err)
	}
	defer attacker.Close()
	for _, hb := range []heartbeat{
		{Name: "evil", URL: "https://evil.example"},
		// From the same connection, so it arrives after the evil one.
		{Name: "other", URL: trusted},
	} {
		b, _ := json.Marshal(hb)
		if err := attacker.Publish(subjects.RelayHeartbeat, b); err != nil {
			t.Fatal(err)
		}
	}
	f, _ := c.expect("relays", func(f frame) bool { return slices.Contains(f.Relays, trusted) })
	if slices.Contains(f.Relays, "https://evil.example") {
		t.Errorf("browsers are sent to a relay a heartbeat named: %v", f.Relays)
	}
	if _, body := httpGet(t, tr.url+"/relays", nil); json.Valid(body) && slices.Contains(decodeRelays(t, body), "https://evil.example") {
		t.Errorf("/relays lists a URL a heartbeat named: %s", body)
	}
	if _, resp, err := dial(t, tr.url, http.Header{"Origin": {"https://evil.example"}}); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("a page at the heartbeat's origin may open a websocket: err %v", err)
	}
	if _, resp, err := dial(t, tr.url, http.Header{"Origin": {trusted}}); err != nil {
		t.Errorf("a page at a configured origin is refused: %v %v", err, resp)
	}
}

func decodeRelays(t *testing.T, body []byte) []string {
	t.Helper()
	var f relaysFrame
	if err := json.Unmarshal(body, &f); err != nil {
		t.Fatalf("/relays: %v: %s", err, body)
	}
	return f.Relays
}

// TestConnectionsCappedPerAddress: one client address cannot hold every
// connection of a relay. Under the default limits the connection after
// the per-address cap is refused before the upgrade, and one more is
// accepted once a connection of that address closes.
func TestConnectionsCappedPerAddress(t *testing.T) {
	cl := startCluster(t)
	tr := startRelay(t, cl, nil)
	var held []*wsClient
	for range DefaultMaxConnsPerAddr {
		c, _, err := dial(t, tr.url, nil)
		if err != nil {
			t.Fatalf("connection %d of the address refused: %v", len(held)+1, err)
		}
		held = append(held, c)
	}
	refusedUpgrade(t, tr.url, nil, http.StatusTooManyRequests, CodeTooManyFromAddr)
	_ = held[0].conn.Close()
	waitAccepted(t, tr.url, nil, "a slot of the address freed")
}

// TestForwardedForOnlyFromTrustedProxies: X-Forwarded-For names the client
// only when a configured proxy sent it, and then only the part that proxy
// wrote; a client cannot dodge the per-address cap by writing one. IPv6
// clients count by /64.
func TestForwardedForOnlyFromTrustedProxies(t *testing.T) {
	cl := startCluster(t)
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	type conn struct {
		xff    string // "" sends none
		refuse bool
	}
	for _, tc := range []struct {
		name    string
		proxies []netip.Prefix
		conns   []conn
	}{
		{"no proxy configured: the header is ignored", nil, []conn{
			{"203.0.113.1", false}, {"203.0.113.2", false}, {"203.0.113.3", true}, {"", true},
		}},
		{"behind a trusted proxy: per client", loopback, []conn{
			{"203.0.113.1", false}, {"203.0.113.1", false}, {"203.0.113.1", true},
			{"203.0.113.2", false},
			// What the client wrote, left of what the proxy appended,
			// is not read.
			{"198.51.100.7, 203.0.113.1", true},
			// Proxies that are trusted are skipped.
			{"203.0.113.2, 127.0.0.9", false}, {"203.0.113.2", true},
		}},
		{"a trusted proxy that does not say counts against nobody", loopback, []conn{
			{"", false}, {"", false}, {"", false}, {"", false},
		}},
		{"IPv6 clients count by /64", loopback, []conn{
			{"2001:db8::1", false}, {"[2001:db8::2]:443", false}, {"2001:db8::3", true},
			{"2001:db8:0:1::1", false},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := startRelay(t, cl, func(c *Config) { c.MaxConnsPerAddr = 2; c.TrustedProxies = tc.proxies })
			for i, cn := range tc.conns {
				hdr := http.Header{}
				if cn.xff != "" {
					hdr.Set("X-Forwarded-For", cn.xff)
				}
				c, resp, err := dial(t, tr.url, hdr)
				switch {
				case cn.refuse && (err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests):
					t.Errorf("connection %d (X-Forwarded-For %q): err %v, want 429", i, cn.xff, err)
				case !cn.refuse && err != nil:
					t.Errorf("connection %d (X-Forwarded-For %q) refused: %v", i, cn.xff, err)
				}
				if c != nil {
					c.expect("welcome", nil)
				}
			}
		})
	}
}

// TestNoProfilesOnARelay: a relay serves no Go profiles, on any path a
// profiler would ask.
func TestNoProfilesOnARelay(t *testing.T) {
	cl := startCluster(t)
	tr := startRelay(t, cl, nil)
	for _, p := range []string{"/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/goroutine?debug=2", "/debug/pprof/cmdline"} {
		if code, _ := httpGet(t, tr.url+p, nil); code != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", p, code)
		}
	}
}
