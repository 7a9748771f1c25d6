package relay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/hangman/hangman/internal/harness"
	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
	"github.com/hangman/hangman/services/game"
)

func join(c *wsClient, room, player, name string) frame {
	c.t.Helper()
	c.send(map[string]any{"type": "join", "room": room, "playerId": player, "name": name, "id": "join-" + player, "token": harness.TokenOf(player)})
	f, _ := c.expect("ack", func(f frame) bool { return f.Op == "join" })
	c.token = harness.TokenOf(player)
	return f
}

func stateWith(room string, seq uint64) func(frame) bool {
	return func(f frame) bool { return f.state != nil && f.state.Room == room && f.state.Seq >= seq }
}

// roomSubs counts the relay's room subscriptions as the NATS server sees
// them: the relay subscribes on NATS only to rooms its browsers watch.
func roomSubs(cl *cluster, tr *testRelay) int {
	connz, err := cl.nsrv.Connz(&serverConnzOpts)
	if err != nil {
		return -1
	}
	n := 0
	for _, c := range connz.Conns {
		if !strings.HasPrefix(c.Name, "hangman-relay "+tr.cfg.Name) {
			continue
		}
		for _, s := range c.Subs {
			if strings.HasPrefix(s, "hangman.room.") {
				n++
			}
		}
	}
	return n
}

func TestSubscribesOnlyToWatchedRooms(t *testing.T) {
	cl := startCluster(t)
	cl.createRoom(t, "alpha")
	cl.createRoom(t, "beta")
	cl.createRoom(t, "gamma") // nobody watches it
	tr := startRelay(t, cl, nil)
	harness.EventuallyTrue(t, waitFor, "no room subscription before anyone joins", func() bool { return roomSubs(cl, tr) == 0 })

	a1 := mustDial(t, tr.url)
	join(a1, "alpha", "p1", "one")
	harness.EventuallyTrue(t, waitFor, "one subscription", func() bool { return roomSubs(cl, tr) == 1 })
	a2 := mustDial(t, tr.url)
	join(a2, "alpha", "p2", "two")
	b := mustDial(t, tr.url)
	join(b, "beta", "p3", "three")
	harness.EventuallyTrue(t, waitFor, "two subscriptions", func() bool { return roomSubs(cl, tr) == 2 })

	// The last session of a room leaving drops the subscription: leave by
	// message for one, by disconnecting for the others.
	b.send(`{"type":"leave"}`)
	b.expect("ack", func(f frame) bool { return f.Op == "leave" })
	harness.EventuallyTrue(t, waitFor, "beta unsubscribed", func() bool { return roomSubs(cl, tr) == 1 })
	_ = a1.conn.Close()
	a2.send(`{"type":"ping"}`)
	a2.expect("pong", nil)
	if n := roomSubs(cl, tr); n != 1 {
		t.Fatalf("alpha still has a watcher, got %d subscriptions", n)
	}
	_ = a2.conn.Close()
	harness.EventuallyTrue(t, waitFor, "no subscriptions left", func() bool { return roomSubs(cl, tr) == 0 })
	harness.EventuallyTrue(t, waitFor, "rooms forgotten", func() bool {
		tr.rooms.mu.Lock()
		defer tr.rooms.mu.Unlock()
		return len(tr.rooms.byName) == 0
	})
}

func TestFramesReachOnlyTheirRoom(t *testing.T) {
	cl := startCluster(t)
	cl.createRoom(t, "alpha")
	cl.createRoom(t, "beta")
	tr := startRelay(t, cl, nil)
	a := mustDial(t, tr.url)
	join(a, "alpha", "pa", "Ann")
	b := mustDial(t, tr.url)
	join(b, "beta", "pb", "Bob")
	lobby := mustDial(t, tr.url)

	a.guess("e", "g1")
	ack, _ := a.expect("ack", func(f frame) bool { return f.ID == "g1" })
	if ack.Outcome == "" || ack.Seq == 0 {
		t.Fatalf("guess ack lacks outcome or seq: %s", ack.raw)
	}
	a.expect("state", stateWith("alpha", ack.Seq))
	a.expect("event", func(f frame) bool { return f.event.Seq == ack.Seq && f.event.Kind == game.EventGuess })

	// Then something in beta, which b must see; it must never have seen
	// anything of alpha.
	b.guess("a", "g2")
	bAck, _ := b.expect("ack", func(f frame) bool { return f.ID == "g2" })
	b.expect("state", stateWith("beta", bAck.Seq))
	for _, f := range b.seen {
		if bytes.Contains(f.raw, []byte(`"alpha"`)) {
			t.Fatalf("beta's session got a frame of alpha: %s", f.raw)
		}
	}
	// The lobby session watches nothing and gets nothing.
	lobby.send(`{"type":"ping","id":"x"}`)
	lobby.expect("pong", nil)
	for _, f := range lobby.seen {
		if f.Type == "state" || f.Type == "event" {
			t.Fatalf("lobby session got %s", f.raw)
		}
	}
}

// TestGuessReachesWatchersAsOneFrame: the nodes publish a change as an
// event and a state; a watcher gets both in one frame, and the guesser gets
// the state before its ack. A relay that also hears of the change over
// gRPC (the guesser's, from the answer; without NATS users, every relay,
// from the reads that vouch for seqs) sends that state at once should NATS
// lag behind by more than protoWait, and the event follows alone; so the
// one-frame rule is checked where only NATS tells: a watcher on another
// relay, with NATS users.
func TestGuessReachesWatchersAsOneFrame(t *testing.T) {
	for _, trusted := range []bool{true, false} {
		t.Run(fmt.Sprintf("nats_users=%v", trusted), func(t *testing.T) {
			cl := startCluster(t)
			// The rule is what is tested, not how long an event waits
			// for its state: on a starved machine (the chaos suite's
			// busy loops run beside this test) the state can lag past
			// the default wait, and the event rightly goes alone.
			patient := func(cfg *Config) { cfg.eventWait = time.Minute }
			if trusted {
				cl = startTrustedCluster(t)
			} else {
				patient = nil
			}
			cl.createRoom(t, "alpha")
			a := mustDial(t, startRelay(t, cl, patient).url)
			joined := join(a, "alpha", "pa", "Ann")
			w := mustDial(t, startRelay(t, cl, patient).url)
			w.send(`{"type":"watch","room":"alpha","id":"w"}`)
			w.expect("ack", func(f frame) bool { return f.Op == "watch" })
			// A new watcher's room is read over gRPC; a read still in
			// flight when the first guess commits brings that guess's
			// state ahead of NATS, and its event rightly goes alone.
			// The rule is about changes after the watcher has the room.
			w.expect("state", stateWith("alpha", joined.Seq))
			for i, letter := range []string{"e", "t", "a"} {
				id := fmt.Sprintf("g%d", i)
				a.guess(letter, id)
				ack, before := a.expect("ack", func(f frame) bool { return f.ID == id })
				if !slices.ContainsFunc(before, func(f frame) bool { return f.state != nil && f.state.Seq == ack.Seq }) {
					t.Fatalf("guess %s acknowledged (seq %d) before its state", letter, ack.Seq)
				}
				a.expect("event", func(f frame) bool { return f.event.Seq == ack.Seq })
				ev, _ := w.expect("event", func(f frame) bool { return f.event.Seq == ack.Seq })
				if trusted && !ev.carried || ev.event.Kind != game.EventGuess {
					t.Fatalf("guess %s reached a watcher as %s: want one state frame carrying the event", letter, ev.raw)
				}
			}
		})
	}
}

// TestChangeIsOneFrame: the nodes publish a change's event and then its
// state, and the relay sends the two in one frame. A state never waits
// for an event (its own came first, or is lost); an event whose state
// went out first, or never comes, goes alone.
func TestChangeIsOneFrame(t *testing.T) {
	cl := startTrustedCluster(t)
	cl.createRoom(t, "alpha")
	tr := startRelay(t, cl, nil)
	w := mustDial(t, tr.url)
	w.send(`{"type":"watch","room":"alpha","id":"w"}`)
	w.expect("ack", func(f frame) bool { return f.Op == "watch" })
	pub := func(kind string, seq uint64) {
		var b []byte
		if kind == "state" {
			b, _ = json.Marshal(game.State{Room: "alpha", Seq: seq, Prev: seq - 1, Status: game.StatusPlaying, Guessed: []string{}, Wrong: []string{}, Players: []game.Player{}})
		} else {
			b, _ = json.Marshal(game.Event{Room: "alpha", Seq: seq, Prev: seq - 1, Kind: game.EventGuess, Status: game.StatusPlaying})
		}
		if err := cl.nc.Publish("hangman.room.alpha."+kind, b); err != nil {
			t.Fatal(err)
		}
	}
	// One change at a time: a change still waiting when the next comes
	// is superseded by it, its event then going alone.
	for _, tc := range []struct {
		order   []string
		carried bool
	}{
		{[]string{"event", "state"}, true},
		{[]string{"state", "event"}, false},
		{[]string{"state"}, false}, // its event is lost
		{[]string{"event"}, false}, // its state is lost
	} {
		seq := uint64(1000 + 10*len(w.seen))
		for _, kind := range tc.order {
			pub(kind, seq)
		}
		if slices.Contains(tc.order, "state") {
			w.expect("state", stateWith("alpha", seq))
		}
		if slices.Contains(tc.order, "event") {
			ev, _ := w.expect("event", func(f frame) bool { return f.event.Seq == seq })
			if ev.carried != tc.carried {
				t.Fatalf("%v: event carried by its state %v, want %v", tc.order, ev.carried, tc.carried)
			}
		}
	}
}

func TestJoiningGetsCachedStateAtOnce(t *testing.T) {
	cl := startCluster(t)
	cl.createRoom(t, "alpha")
	tr := startRelay(t, cl, nil)
	a := mustDial(t, tr.url)
	j := join(a, "alpha", "pa", "Ann")
	a.expect("state", stateWith("alpha", j.Seq))

	// The second browser is sent the cached state before its own join has
	// gone through the cluster.
	b := mustDial(t, tr.url)
	b.send(`{"type":"join","room":"alpha","playerId":"pb","name":"Bob","id":"j"}`)
	st, skipped := b.expect("state", stateWith("alpha", 1))
	for _, f := range skipped {
		if f.Type == "ack" {
			t.Fatalf("ack came before the cached state: %s", f.raw)
		}
	}
	if st.state.Seq < j.Seq {
		t.Fatalf("cached state seq %d older than the first join %d", st.state.Seq, j.Seq)
	}
}

func TestColdCacheFetchedOverGRPC(t *testing.T) {
	cl := startCluster(t)
	created := cl.createRoom(t, "alpha")
	// Nothing will be published from now on: only gRPC can tell the relay.
	cl.rep.noPublish.Store(true)
	tr := startRelay(t, cl, nil)
	s := mustDial(t, tr.url)
	s.send(`{"type":"watch","room":"alpha","id":"w"}`)
	s.expect("ack", func(f frame) bool { return f.Op == "watch" })
	f, _ := s.expect("state", stateWith("alpha", created.GetSeq()))
	if f.state.Masked == "" || f.state.Status != game.StatusPlaying || f.state.Word != "" {
		t.Fatalf("fetched state is not the public state of a fresh room: %s", f.Data)
	}
	if tr.stats.fetches.Load() == 0 {
		t.Fatal("no fetch counted")
	}
}

func TestDedupeBySeq(t *testing.T) {
	cl := startTrustedCluster(t)
	cl.createRoom(t, "alpha")
	tr := startRelay(t, cl, nil)
	a := mustDial(t, tr.url)
	join(a, "alpha", "pa", "Ann")
	a.expect("state", stateWith("alpha", 1))

	pub := func(seq uint64, masked string) {
		b, _ := json.Marshal(game.State{Room: "alpha", Seq: seq, Prev: seq - 1, Masked: masked, Status: game.StatusPlaying, Guessed: []string{}, Wrong: []string{}, Players: []game.Player{}})
		if err := cl.nc.Publish("hangman.room.alpha.state", b); err != nil {
			t.Fatal(err)
		}
	}
	pub(1000, "new")
	pub(500, "older") // must never reach the browser
	pub(1000, "dup")  // a republished state: dropped
	pub(1001, "newest")
	// "new" may be superseded by "newest" before it is written.
	var got []string
	for len(got) == 0 || got[len(got)-1] != "newest" {
		f, _ := a.expect("state", stateWith("alpha", 500))
		got = append(got, f.state.Masked)
	}
	if !slices.Equal(got, []string{"new", "newest"}) && !slices.Equal(got, []string{"newest"}) {
		t.Fatalf("states delivered %v, want [new newest] or [newest]", got)
	}
	if tr.stats.dupStates.Load() < 2 {
		t.Fatalf("dropped %d states, want 2", tr.stats.dupStates.Load())
	}
	// A joining browser gets the newest state from the cache.
	b := mustDial(t, tr.url)
	b.send(`{"type":"watch","room":"alpha"}`)
	f, _ := b.expect("state", nil)
	if f.state.Masked != "newest" {
		t.Fatalf("joining browser got %q, want newest", f.state.Masked)
	}
}

// TestEventGapFetchesState runs with NATS users: without them every
// message's seq is confirmed with a read (confirm.go), which brings the
// missed state before a gap can show.
func TestEventGapFetchesState(t *testing.T) {
	cl := startTrustedCluster(t)
	cl.createRoom(t, "alpha")
	tr := startRelay(t, cl, nil)
	a := mustDial(t, tr.url)
	j := join(a, "alpha", "pa", "Ann")
	a.expect("state", stateWith("alpha", j.Seq))
	// The relay fetched the room when it began to watch it. Let that read
	// be done before the guesses: read after the unpublished guess below,
	// it would tell the relay that state itself, and the last event would
	// then follow a seq the relay did see (no gap to detect).
	harness.EventuallyTrue(t, waitFor, "the cold-cache fetch", func() bool { return tr.stats.fetches.Load() > 0 })

	// From now on only events are published. The first is consecutive;
	// the relay cannot know the state changed until the second event says
	// it followed a seq the relay never saw.
	cl.rep.noStates.Store(true)
	g1, err := cl.game.Guess(context.Background(), &hangmanv1.GuessRequest{Room: "alpha", PlayerId: "pa", Letter: "e", Token: harness.TokenOf("pa")})
	if err != nil {
		t.Fatal(err)
	}
	a.expect("event", func(f frame) bool { return f.event.Seq == g1.GetIndex() })
	cl.rep.noPublish.Store(true)
	if _, err := cl.game.Guess(context.Background(), &hangmanv1.GuessRequest{Room: "alpha", PlayerId: "pa", Letter: "t", Token: harness.TokenOf("pa")}); err != nil {
		t.Fatal(err)
	}
	cl.rep.noPublish.Store(false)
	g3, err := cl.game.Guess(context.Background(), &hangmanv1.GuessRequest{Room: "alpha", PlayerId: "pa", Letter: "o", Token: harness.TokenOf("pa")})
	if err != nil {
		t.Fatal(err)
	}
	f, _ := a.expect("state", stateWith("alpha", g3.GetIndex()))
	if len(f.state.Guessed) != 3 {
		t.Fatalf("fetched state has guesses %v, want 3", f.state.Guessed)
	}
	if tr.stats.gaps.Load() == 0 {
		t.Fatal("no gap counted")
	}
}

func TestGuessRetriedWithSameIDAppliedOnce(t *testing.T) {
	cl := startCluster(t)
	cl.createRoom(t, "alpha")
	tr := startRelay(t, cl, nil)
	other := startRelay(t, cl, nil)
	a := mustDial(t, tr.url)
	join(a, "alpha", "pa", "Ann")
	a.guess("Q", "same")
	first, _ := a.expect("ack", func(f frame) bool { return f.ID == "same" })
	if first.Duplicate || first.Outcome == "" {
		t.Fatalf("first ack: %s", first.raw)
	}
	// The browser lost its relay and sends the guess again elsewhere.
	b := mustDial(t, other.url)
	join(b, "alpha", "pa", "Ann")
	b.guess("Q", "same")
	again, _ := b.expect("ack", func(f frame) bool { return f.ID == "same" })
	if !again.Duplicate || again.Outcome != first.Outcome {
		t.Fatalf("retried guess: %s, first %s", again.raw, first.raw)
	}
	st, err := cl.game.GetRoom(context.Background(), &hangmanv1.GetRoomRequest{Room: "alpha"})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.GetState().GetGuessed()) != 1 {
		t.Fatalf("guessed %v after a retried guess", st.GetState().GetGuessed())
	}
}

func TestCommandErrors(t *testing.T) {
	cl := startCluster(t)
	cl.createRoom(t, "alpha")
	tr := startRelay(t, cl, nil)
	c := mustDial(t, tr.url)
	for _, tc := range []struct{ frame, code string }{
		{`not json`, CodeBadJSON},
		{`["type","guess"]`, CodeBadJSON},
		{`{"type":"dance"}`, CodeUnknownType},
		{`{"room":"alpha"}`, CodeBadRequest},
		{`{"type":"guess","letter":"e"}`, CodeNotJoined},
		{`{"type":"join","room":"Bad Room","playerId":"p","name":"n"}`, CodeBadRequest},
		{`{"type":"join","room":"alpha","playerId":"p","name":"   "}`, CodeBadRequest},
		{`{"type":"join","room":"nosuch","playerId":"p","name":"n"}`, CodeNotFound},
		{`{"type":"create","room":"alpha"}`, CodeExists},
	} {
		c.send(tc.frame)
		c.expectError(tc.code)
	}
	join(c, "alpha", "p", "n")
	c.send(`{"type":"guess","letter":"ab","id":"x"}`)
	if f := c.expectError(CodeInvalid); f.ID != "x" {
		t.Fatalf("error frame does not echo the id: %s", f.raw)
	}
	c.send(map[string]any{"type": "newRound", "token": c.token})
	c.expectError(CodePrecondition)
	if err := c.conn.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	c.expectError(CodeBinary)
	// After all that the connection still works.
	c.send(`{"type":"list","id":"l"}`)
	rooms, _ := c.expect("rooms", nil)
	if len(rooms.Rooms) != 1 || rooms.Rooms[0].Room != "alpha" {
		t.Fatalf("rooms: %s", rooms.raw)
	}
}

func TestCreateAndList(t *testing.T) {
	cl := startCluster(t)
	tr := startRelay(t, cl, nil)
	c := mustDial(t, tr.url)
	c.send(`{"type":"create","room":"fresh","maxWrong":8,"id":"c1","playerId":"p"}`)
	c.expect("ack", func(f frame) bool { return f.Op == "create" && f.ID == "c1" })
	j := join(c, "fresh", "p", "Pat")
	f, _ := c.expect("state", stateWith("fresh", j.Seq))
	if f.state.MaxWrong != 8 || len(f.state.Players) != 1 || f.state.Players[0].Name != "Pat" {
		t.Fatalf("state after create+join: %s", f.Data)
	}
}

func TestOversizedFrameRefused(t *testing.T) {
	cl := startCluster(t)
	tr := startRelay(t, cl, nil)
	c := mustDial(t, tr.url)
	big := `{"type":"ping","id":"` + strings.Repeat("x", 1<<20) + `"}`
	// The relay may stop reading before all of it is written.
	_ = c.conn.WriteMessage(websocket.TextMessage, []byte(big))
	c.expectError(CodeFrameTooLarge)
	err := c.waitClosed()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseMessageTooBig {
		t.Fatalf("connection ended with %v, want close 1009", err)
	}
}

func TestFloodRateLimitedOthersUnaffected(t *testing.T) {
	cl := startCluster(t)
	tr := startRelay(t, cl, func(c *Config) { c.MessageRate = 5; c.MessageBurst = 5 })
	flooder := mustDial(t, tr.url)
	calm := mustDial(t, tr.url)
	for i := 0; i < 30; i++ {
		flooder.send(`{"type":"ping","id":"f"}`)
	}
	if f := flooder.expectError(CodeRateLimited); f.ID != "f" {
		t.Fatalf("rate error does not echo the id: %s", f.raw)
	}
	calm.send(`{"type":"ping","id":"c1"}`)
	calm.expect("pong", func(f frame) bool { return f.ID == "c1" })
	calm.send(`{"type":"ping","id":"c2"}`)
	calm.expect("pong", func(f frame) bool { return f.ID == "c2" })
	// Every refused frame is answered, and the flooder stays connected.
	for i := 0; i < 20; i++ {
		flooder.expectError(CodeRateLimited)
	}
	if n := tr.stats.rateLimited.Load(); n < 20 {
		t.Fatalf("rate limited %d of 30 frames with a burst of 5", n)
	}
}

func TestFloodClosesConnection(t *testing.T) {
	cl := startCluster(t)
	tr := startRelay(t, cl, func(c *Config) { c.MessageRate = 1; c.MessageBurst = 1; c.FloodStrikes = 10 })
	c := mustDial(t, tr.url)
	for i := 0; i < 20; i++ {
		if err := c.conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping"}`)); err != nil {
			break
		}
	}
	c.expectError(CodeFlood)
	var ce *websocket.CloseError
	if err := c.waitClosed(); !errors.As(err, &ce) || ce.Code != websocket.ClosePolicyViolation {
		t.Fatalf("flooder ended with %v, want close 1008", err)
	}
}

func TestOriginCheck(t *testing.T) {
	cl := startCluster(t)
	peerLn := listen(t)
	tr := startRelay(t, cl, func(c *Config) { c.AllowedOrigins = []string{"https://game.example", urlOf(peerLn)} })
	peer := startRelayOn(t, cl, peerLn, nil)

	refusedUpgrade(t, tr.url, http.Header{"Origin": {"http://evil.example"}}, http.StatusForbidden, CodeOriginForbidden)
	for _, origin := range []string{
		"https://game.example", // configured
		tr.url,                 // its own page
		strings.Replace(tr.url, "127.0.0.1", "localhost", 1), // same, by another loopback name
		peer.url, // a relay it is configured to trust
	} {
		waitAccepted(t, tr.url, http.Header{"Origin": {origin}}, "origin "+origin+" accepted")
	}
	if tr.stats.originRefused.Load() != 1 {
		t.Fatalf("refused %d origins", tr.stats.originRefused.Load())
	}
}

func TestMaxConns(t *testing.T) {
	cl := startCluster(t)
	tr := startRelay(t, cl, func(c *Config) { c.MaxConns = 2 })
	a := mustDial(t, tr.url)
	mustDial(t, tr.url)
	refusedUpgrade(t, tr.url, nil, http.StatusServiceUnavailable, CodeTooManyConns)
	_ = a.conn.Close()
	waitAccepted(t, tr.url, nil, "a slot freed")
}

// TestSlowClientServedLatestState: a browser that stops reading for a
// while is neither dropped nor a drag on the others; the states it missed
// supersede each other while they wait, and when it reads again the latest
// state reaches it.
func TestSlowClientServedLatestState(t *testing.T) {
	cl := startTrustedCluster(t)
	cl.createRoom(t, "alpha")
	tr := startRelay(t, cl, func(c *Config) { c.SendBuffer = 8; c.WriteTimeout = 30 * time.Second })
	fast := mustDial(t, tr.url)
	join(fast, "alpha", "pf", "Fast")
	// The slow client's socket buffers are small and it does not read
	// for a while. (Not tiny: a receive buffer smaller than one of
	// loopback's 64 KiB segments stalls the socket on zero-window probes
	// long after the client reads again.)
	d := websocket.Dialer{NetDial: func(network, addr string) (net.Conn, error) {
		conn, err := net.Dial(network, addr)
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(64 << 10)
		}
		return conn, err
	}}
	slow, _, err := d.Dial(strings.Replace(tr.url, "http://", "ws://", 1)+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	if err := slow.WriteMessage(websocket.TextMessage, []byte(`{"type":"watch","room":"alpha"}`)); err != nil {
		t.Fatal(err)
	}
	harness.EventuallyTrue(t, waitFor, "slow client watching", func() bool {
		tr.rooms.mu.Lock()
		defer tr.rooms.mu.Unlock()
		return tr.rooms.byName["alpha"] != nil && len(tr.rooms.byName["alpha"].sessions) == 2
	})
	// Big states, each delivered to the fast client before the next: the
	// slow client's socket fills, then states wait in its outbox and
	// supersede each other, and the fast one never waits. Many more than
	// SendBuffer are sent.
	pad := strings.Repeat("x", 60000)
	last := uint64(0)
	publish := func(i int) {
		last = uint64(1000 + i)
		b, _ := json.Marshal(game.State{Room: "alpha", Seq: last, Masked: pad, Status: game.StatusPlaying})
		if err := cl.nc.Publish("hangman.room.alpha.state", b); err != nil {
			t.Fatal(err)
		}
		fast.expect("state", stateWith("alpha", last))
	}
	i := 1
	for ; tr.stats.superseded.Load() < 20; i++ {
		if i > 2000 {
			t.Fatal("no state superseded by a newer one while the slow client did not read")
		}
		publish(i)
	}
	for end := i + 20; i < end; i++ {
		publish(i)
	}
	if n := tr.stats.slowDropped.Load(); n != 0 {
		t.Fatalf("%d clients dropped for being slow", n)
	}
	if got := harness.Series(t, tr.scrape(t), "hangman_relay_superseded_total"); got < 20 {
		t.Fatalf("hangman_relay_superseded_total %v, want ≥ 20", got)
	}
	// It reads again: everything still on its way, and then the latest
	// state, on the same connection.
	_ = slow.SetReadDeadline(time.Now().Add(waitFor))
	for {
		_, b, err := slow.ReadMessage()
		if err != nil {
			t.Fatalf("slow client, reading again before the latest state (seq %d): %v", last, err)
		}
		var f frame
		if json.Unmarshal(b, &f) == nil && f.Type == "state" && seqOfState(t, f) == last {
			break
		}
	}
	tr.rooms.mu.Lock()
	n := len(tr.rooms.byName["alpha"].sessions)
	tr.rooms.mu.Unlock()
	if n != 2 {
		t.Fatalf("%d sessions watch the room, want 2: the slow one was dropped", n)
	}
}

func seqOfState(t *testing.T, f frame) uint64 {
	var s struct {
		Seq uint64 `json:"seq"`
	}
	if err := json.Unmarshal(f.Data, &s); err != nil {
		t.Fatalf("state %s: %v", f.Data, err)
	}
	return s.Seq
}

func TestRelaysDiscoverEachOther(t *testing.T) {
	cl := startCluster(t)
	aLn, bLn := listen(t), listen(t)
	a := startRelayOn(t, cl, aLn, func(c *Config) { c.AllowedOrigins = []string{urlOf(bLn)} })
	c := mustDial(t, a.url)
	b := startRelayOn(t, cl, bLn, func(c *Config) { c.AllowedOrigins = []string{urlOf(aLn)} })
	f, _ := c.expect("relays", func(f frame) bool { return len(f.Relays) == 2 })
	if f.Relays[0] != a.url || f.Relays[1] != b.url {
		t.Fatalf("relays %v, want [%s %s]", f.Relays, a.url, b.url)
	}
	// A relay that dies is forgotten after three silent heartbeats.
	_ = b.Close()
	c.expect("relays", func(f frame) bool { return len(f.Relays) == 1 })
	code, body := httpGet(t, a.url+"/readyz", nil)
	if code != http.StatusOK || !bytes.Contains(body, []byte(`"ready":true`)) {
		t.Fatalf("readyz %d %s", code, body)
	}
	// And it is a NATS micro service.
	msg, err := cl.nc.Request("$SRV.INFO."+ServiceName, nil, 5*time.Second)
	if err != nil || !bytes.Contains(msg.Data, []byte(a.url)) {
		t.Fatalf("$SRV.INFO: %v %s", err, msg.Data)
	}
}

func TestCloseDropsWebsockets(t *testing.T) {
	cl := startCluster(t)
	tr := startRelay(t, cl, nil)
	c := mustDial(t, tr.url)
	_ = tr.Close()
	err := c.waitClosed()
	var ce *websocket.CloseError
	if errors.As(err, &ce) && ce.Code != websocket.CloseAbnormalClosure {
		t.Fatalf("Close sent a close frame %d; it should drop the connection like a crash", ce.Code)
	}
	if _, _, err := dial(t, tr.url, nil); err == nil {
		t.Fatal("relay still accepts connections after Close")
	}
}

func TestFailsOverBetweenNodes(t *testing.T) {
	cl := startCluster(t)
	cl.createRoom(t, "alpha")
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	tr := startRelay(t, cl, func(c *Config) { c.GRPCAddrs = []string{deadAddr, cl.grpcAddr} })
	c := mustDial(t, tr.url)
	join(c, "alpha", "p", "n")
	c.guess("e", "g")
	c.expect("ack", func(f frame) bool { return f.ID == "g" })
}

func TestPageServed(t *testing.T) {
	cl := startCluster(t)
	tr := startRelay(t, cl, nil)
	code, body := httpGet(t, tr.url+"/", nil)
	if code != http.StatusOK || !bytes.Contains(body, []byte("<html")) {
		t.Fatalf("GET / = %d %.200s", code, body)
	}
	if code, _ := httpGet(t, tr.url+"/healthz", nil); code != http.StatusOK {
		t.Fatalf("healthz %d", code)
	}
}

func TestWatchBeforeCreate(t *testing.T) {
	cl := startCluster(t)
	tr := startRelay(t, cl, nil)
	c := mustDial(t, tr.url)
	c.send(`{"type":"watch","room":"later"}`)
	c.expect("ack", func(f frame) bool { return f.Op == "watch" })
	harness.EventuallyTrue(t, waitFor, "subscribed", func() bool { return roomSubs(cl, tr) == 1 })
	created := cl.createRoom(t, "later")
	c.expect("state", stateWith("later", created.GetSeq()))
	c.expect("event", func(f frame) bool { return f.event.Kind == game.EventRoomCreated })
}

func TestShutdownTellsBrowsersToGo(t *testing.T) {
	cl := startCluster(t)
	tr := startRelay(t, cl, nil)
	c := mustDial(t, tr.url)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tr.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	var ce *websocket.CloseError
	if err := c.waitClosed(); !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
		t.Fatalf("connection ended with %v, want close 1001", err)
	}
}

func TestPageHeaders(t *testing.T) {
	cl := startCluster(t)
	tr := startRelay(t, cl, nil)
	resp, err := http.Get(tr.url + "/app.js")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Fatalf("CSP %q", csp)
	}
	if code, body := httpGet(t, tr.url+"/ws", nil); code != http.StatusBadRequest || !bytes.Contains(body, []byte(CodeNotWebsocket)) {
		t.Fatalf("plain GET /ws = %d %s", code, body)
	}
}

// Events of commands committed right after a join's ack reach the browser:
// the relay answers only once the NATS server has its room subscription
// (a fetched state would make up for a missed state, not for the event).
func TestEventsRightAfterJoinAreDelivered(t *testing.T) {
	cl := startCluster(t)
	tr := startRelay(t, cl, nil)
	for i := range 20 {
		room := fmt.Sprintf("room%d", i)
		cl.createRoom(t, room)
		a := mustDial(t, tr.url)
		j := join(a, room, "pa", "Ann")
		if n := roomSubs(cl, tr); n != i+1 {
			t.Fatalf("join of %s acknowledged with %d room subscriptions on the NATS server, want %d", room, n, i+1)
		}
		g, err := cl.game.Guess(context.Background(), &hangmanv1.GuessRequest{Room: room, PlayerId: "pa", Letter: "e", Token: harness.TokenOf("pa")})
		if err != nil {
			t.Fatal(err)
		}
		a.expect("event", func(f frame) bool { return f.event.Seq == j.Seq && f.event.Kind == game.EventPlayerJoined })
		a.expect("event", func(f frame) bool { return f.event.Seq == g.GetIndex() && f.event.Kind == game.EventGuess })
	}
}
