package raftnode

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hangman/hangman/internal/harness"
	"github.com/hangman/hangman/internal/natstest"
	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
	"github.com/hangman/hangman/raftnode/natsembed"
	"github.com/hangman/hangman/services/game"
	"github.com/hangman/hangman/subjects"
)

// roomFeed is a consumer of one room's subjects on one NATS server, as a
// user of the secured cluster.
type roomFeed struct {
	t    *testing.T
	nc   *nats.Conn
	room string
	mu   sync.Mutex
	// events are the event payloads received, by seq.
	events map[uint64][]byte
	// order is the seqs of events in arrival order.
	order  []uint64
	probed bool
}

func newRoomFeed(t *testing.T, url, user, password, room string) *roomFeed {
	t.Helper()
	nc, err := nats.Connect(url, nats.UserInfo(user, password), nats.CustomInboxPrefix(natsembed.InboxOf(user)))
	if err != nil {
		t.Fatalf("connect %s as %s: %v", url, user, err)
	}
	t.Cleanup(nc.Close)
	f := &roomFeed{t: t, nc: nc, room: room, events: map[uint64][]byte{}}
	if _, err := nc.Subscribe("hangman.room."+room+".>", f.receive); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *roomFeed) receive(m *nats.Msg) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch m.Subject {
	case subjects.RoomEvent(f.room):
	case "hangman.room." + f.room + ".probe":
		f.probed = true
		return
	default:
		return
	}
	var ev game.Event
	if err := json.Unmarshal(m.Data, &ev); err != nil {
		f.t.Errorf("bad event %s: %v", m.Data, err)
		return
	}
	if _, seen := f.events[ev.Seq]; !seen {
		f.order = append(f.order, ev.Seq)
	}
	f.events[ev.Seq] = m.Data
}

// waitInterest publishes probes on the room's subjects, as the node user
// on the leader's server, until this feed receives one: its subscription
// then reaches the server the leader publishes on.
func (f *roomFeed) waitInterest(c *testCluster, leader int, auth natsembed.Auth) {
	f.t.Helper()
	pub, err := nats.Connect(c.nodes[leader].NATSURL(), nats.UserInfo(natsembed.UserNode, auth.NodePassword))
	if err != nil {
		f.t.Fatal(err)
	}
	defer pub.Close()
	harness.Eventually(f.t, 10*time.Second, "interest in room "+f.room, func() error {
		if err := pub.Publish("hangman.room."+f.room+".probe", nil); err != nil {
			return err
		}
		if err := pub.Flush(); err != nil {
			return err
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if !f.probed {
			return fmt.Errorf("no probe yet")
		}
		return nil
	})
}

// payloads returns the events received, in arrival order.
func (f *roomFeed) payloads() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([][]byte, len(f.order))
	for i, s := range f.order {
		out[i] = f.events[s]
	}
	return out
}

// has waits until the feed holds the event of seq.
func (f *roomFeed) has(seq uint64) []byte {
	f.t.Helper()
	var data []byte
	harness.Eventually(f.t, 10*time.Second, fmt.Sprintf("event %d of %s", seq, f.room), func() error {
		f.mu.Lock()
		defer f.mu.Unlock()
		if data = f.events[seq]; data == nil {
			return fmt.Errorf("%d events so far", len(f.events))
		}
		return nil
	})
	return data
}

func eventOf(t *testing.T, data []byte) game.Event {
	t.Helper()
	var ev game.Event
	if err := json.Unmarshal(data, &ev); err != nil {
		t.Fatalf("bad event %s: %v", data, err)
	}
	return ev
}

// askEvents requests subjects.APIEvents and returns the reply, or the error
// code and body of an error answer.
func askEvents(t *testing.T, nc *nats.Conn, req string) (EventsReply, string, EventsError) {
	t.Helper()
	m, err := nc.Request(subjects.APIEvents, []byte(req), 10*time.Second)
	if err != nil {
		t.Fatalf("request %s: %v", req, err)
	}
	if code := m.Header.Get(micro.ErrorCodeHeader); code != "" {
		var e EventsError
		if err := json.Unmarshal(m.Data, &e); err != nil {
			t.Fatalf("error answer %s: %v", m.Data, err)
		}
		if e.Error != m.Header.Get(micro.ErrorHeader) || strconv.Itoa(e.Code) != code {
			t.Fatalf("error body %s does not match its headers %v", m.Data, m.Header)
		}
		return EventsReply{}, code, e
	}
	var r EventsReply
	if err := json.Unmarshal(m.Data, &r); err != nil {
		t.Fatalf("answer %s: %v", m.Data, err)
	}
	return r, "", EventsError{}
}

// roomApplied waits until every live node has applied room up to seq, so
// that whichever node answers a request answers the same.
func (c *testCluster) roomApplied(room string, seq uint64) {
	c.t.Helper()
	harness.Eventually(c.t, 10*time.Second, fmt.Sprintf("every node to apply %s up to %d", room, seq), func() error {
		for _, n := range c.alive() {
			var st game.State
			n.Read(func(m *game.Machine) { st, _ = m.Room(room) })
			if st.Seq < seq {
				return fmt.Errorf("%s has the room at seq %d", n.ID(), st.Seq)
			}
		}
		return nil
	})
}

// repair fetches a room's events after since up to seq through, as a
// consumer that noticed a gap does: following the cursor while the answer
// has more, and asking again while the answering node has not applied
// through yet. What comes after through the consumer has already.
func repair(t *testing.T, nc *nats.Conn, room string, since, through uint64) [][]byte {
	t.Helper()
	var got [][]byte
	harness.Eventually(t, 10*time.Second, fmt.Sprintf("events of %s through %d", room, through), func() error {
		r, code, e := askEvents(t, nc, fmt.Sprintf(`{"room":%q,"since":%d}`, room, since))
		switch code {
		case "":
		case "404":
			// A node that has not applied the room's creation yet.
			return fmt.Errorf("%+v", e)
		default:
			t.Fatalf("repair since %d: %s %+v", since, code, e)
		}
		for _, raw := range r.Events {
			if since = eventOf(t, raw).Seq; since > through {
				break // the consumer has it already
			}
			got = append(got, raw)
		}
		if since >= through {
			return nil
		}
		return fmt.Errorf("answer of %s (applied %d) ends at %d, more %v", r.Node, r.Applied, since, r.More)
	})
	return got
}

// TestEventsEndpoint: a consumer that lost its NATS connection for a while
// notices the gap on the next event and fetches exactly what it missed
// from hangman.api.events, payloads byte for byte as published; the
// answers, errors and permissions of the endpoint, the same over gRPC,
// and the README's `nats req` command.
func TestEventsEndpoint(t *testing.T) {
	auth := natsembed.Auth{NodePassword: "node-pw", RelayPassword: "relay-pw", WatcherPassword: "watcher-pw"}
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.NATSAuth = auth })
	leader := c.leader()
	c.waitClusterRoutes()
	follower, third := (leader+1)%3, (leader+2)%3
	ctx := ctxT(t)
	cl := c.client(leader)

	// ref sees every event of the room, on the leader's own server.
	ref := newRoomFeed(t, c.nodes[leader].NATSURL(), natsembed.UserWatcher, auth.WatcherPassword, "gap")
	ref.waitInterest(c, leader, auth)

	// A room with more events than its history keeps.
	if _, err := cl.CreateRoom(ctx, &hangmanv1.CreateRoomRequest{Room: "old"}); err != nil {
		t.Fatal(err)
	}
	var oldSeq uint64
	for i := range game.EventHistory + 5 {
		r, err := cl.JoinRoom(ctx, &hangmanv1.JoinRoomRequest{Room: "old", PlayerId: "p1", Name: fmt.Sprintf("Name %d", i), Token: harness.TokenOf("p1")})
		if err != nil {
			t.Fatal(err)
		}
		oldSeq = r.GetState().GetSeq()
	}
	// Whichever node answers, once all have applied the room: a node
	// further behind keeps an older part of the history.
	c.roomApplied("old", oldSeq)

	watcher, err := nats.Connect(c.nodes[follower].NATSURL(), nats.UserInfo(natsembed.UserWatcher, auth.WatcherPassword), nats.CustomInboxPrefix(natsembed.InboxWatcher))
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Close()

	t.Run("a subscriber repairs a gap", func(t *testing.T) {
		consumer := newRoomFeed(t, c.nodes[follower].NATSURL(), natsembed.UserWatcher, auth.WatcherPassword, "gap")
		consumer.waitInterest(c, leader, auth)
		setupRoom(t, c, leader, "gap")
		playGuesses(t, cl, "gap", "alice", 3)
		st, err := cl.GetRoom(ctx, &hangmanv1.GetRoomRequest{Room: "gap", Consistency: hangmanv1.Consistency_CONSISTENCY_LINEARIZABLE})
		if err != nil {
			t.Fatal(err)
		}
		last := st.GetState().GetSeq()
		consumer.has(last)

		// Its connection goes; the game goes on without it.
		consumer.nc.Close()
		missed := playGuesses(t, cl, "gap", "bob", 6)
		for _, a := range missed {
			ref.has(a.GetIndex())
		}

		// Back, on another node's server: the next event shows the gap.
		back := newRoomFeed(t, c.nodes[third].NATSURL(), natsembed.UserWatcher, auth.WatcherPassword, "gap")
		back.waitInterest(c, leader, auth)
		next, err := cl.JoinRoom(ctx, &hangmanv1.JoinRoomRequest{Room: "gap", PlayerId: "carol", Name: "Carol", Token: harness.TokenOf("carol")})
		if err != nil {
			t.Fatal(err)
		}
		ev := eventOf(t, back.has(next.GetState().GetSeq()))
		if ev.Prev == last {
			t.Fatalf("no gap: event %d follows %d", ev.Seq, last)
		}
		got := repair(t, back.nc, "gap", last, ev.Prev)

		// Exactly what was missed: every event after last and before the
		// one that showed the gap, as the leader published them.
		var want [][]byte
		for _, p := range ref.payloads() {
			if s := eventOf(t, p).Seq; s > last && s < ev.Seq {
				want = append(want, p)
			}
		}
		if len(want) < len(missed) {
			t.Fatalf("ref saw %d events in the gap, %d guesses were made", len(want), len(missed))
		}
		if len(got) != len(want) {
			t.Fatalf("repair gave %d events, want %d:\n%s", len(got), len(want), bytes.Join(got, []byte("\n")))
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("repaired event %d:\n got %s\nwant %s", i, got[i], want[i])
			}
		}
	})

	t.Run("an answer is up to what its node applied", func(t *testing.T) {
		r, code, e := askEvents(t, watcher, fmt.Sprintf(`{"room":"old","since":%d,"limit":3}`, oldSeq-10))
		switch {
		case code != "":
			t.Fatalf("%s %+v", code, e)
		case r.Node == "":
			t.Fatal("the answer does not name its node")
		case len(r.Events) != 3 || !r.More:
			t.Fatalf("limit 3: %d events, more %v", len(r.Events), r.More)
		case r.Seq != oldSeq || r.Applied < oldSeq:
			t.Fatalf("seq %d applied %d, want seq %d", r.Seq, r.Applied, oldSeq)
		}
		r, code, _ = askEvents(t, watcher, fmt.Sprintf(`{"room":"old","since":%d}`, oldSeq+1000))
		if code != "" || len(r.Events) != 0 || r.More || r.Seq != oldSeq {
			t.Fatalf("since past the room's seq: %s %+v", code, r)
		}
	})

	t.Run("since older than the history", func(t *testing.T) {
		_, code, e := askEvents(t, watcher, `{"room":"old","since":0}`)
		if code != "410" || e.Oldest == 0 || !strings.Contains(e.Error, "fetch the room's state") {
			t.Fatalf("since 0: %s %+v, want 410", code, e)
		}
		r, code, _ := askEvents(t, watcher, fmt.Sprintf(`{"room":"old","since":%d}`, e.Oldest))
		if code != "" || len(r.Events) != game.MaxEventsPage || !r.More || r.Seq != oldSeq {
			t.Fatalf("since the oldest kept: %s, %d events, more %v, seq %d", code, len(r.Events), r.More, r.Seq)
		}
		if _, code, _ := askEvents(t, watcher, fmt.Sprintf(`{"room":"old","since":%d}`, e.Oldest-1)); code != "410" {
			t.Fatalf("since just before the oldest kept: %q, want 410", code)
		}
	})

	t.Run("bad requests", func(t *testing.T) {
		tests := []struct{ req, code, says string }{
			{`{"room":"nope","since":0}`, "404", `room "nope" does not exist`},
			{`{"room":"No.pe","since":0}`, "400", "room name"},
			{`{"since":0}`, "400", "room name"},
			{``, "400", "empty request"},
			{`{"room":"gap","since":-1}`, "400", "malformed request"},
			{`{"room":"gap","since":"1"}`, "400", "malformed request"},
			{`{"room":"gap","since":1,"extra":true}`, "400", `unknown field "extra"`},
			{`{"room":"gap","since":1} {}`, "400", "data after the object"},
			{`{"room":"gap","since":1,"limit":-1}`, "400", "malformed request"},
			{`{"room":"` + strings.Repeat("a", 2000) + `"}`, "400", "exceeds"},
		}
		for _, tt := range tests {
			_, code, e := askEvents(t, watcher, tt.req)
			if code != tt.code || !strings.Contains(e.Error, tt.says) || e.Node == "" {
				t.Errorf("%.60s: %s %+v, want %s saying %q", tt.req, code, e, tt.code, tt.says)
			}
		}
	})

	t.Run("the same over gRPC", func(t *testing.T) {
		gc := c.client(follower)
		since := oldSeq - 20
		nr, code, _ := askEvents(t, watcher, fmt.Sprintf(`{"room":"old","since":%d}`, since))
		if code != "" {
			t.Fatal(code)
		}
		r, err := gc.Events(ctx, &hangmanv1.EventsRequest{Room: "old", Since: since})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.GetEvents()) != len(nr.Events) || r.GetSeq() != nr.Seq || r.GetMore() || r.GetAppliedIndex() < r.GetSeq() {
			t.Fatalf("gRPC %d events seq %d more %v applied %d; NATS %d events seq %d", len(r.GetEvents()), r.GetSeq(), r.GetMore(), r.GetAppliedIndex(), len(nr.Events), nr.Seq)
		}
		for i, pe := range r.GetEvents() {
			ev := eventOf(t, nr.Events[i])
			want := &hangmanv1.RoomEvent{Seq: ev.Seq, Prev: ev.Prev, Room: ev.Room, Kind: ev.Kind, Round: ev.Round, Player: ev.Player,
				Name: ev.Name, Letter: ev.Letter, Outcome: string(ev.Outcome), Status: string(ev.Status), At: ev.At.Format(time.RFC3339Nano)}
			if pe.String() != want.String() {
				t.Fatalf("event %d over gRPC %v, over NATS %s", i, pe, nr.Events[i])
			}
		}
		page, err := gc.Events(ctx, &hangmanv1.EventsRequest{Room: "old", Since: r.GetEvents()[1].GetSeq(), Limit: 2})
		if err != nil || len(page.GetEvents()) != 2 || !page.GetMore() || page.GetEvents()[0].GetSeq() != r.GetEvents()[2].GetSeq() {
			t.Fatalf("a page of 2: %v %v", page, err)
		}
		for _, tt := range []struct {
			req  *hangmanv1.EventsRequest
			code codes.Code
		}{
			{&hangmanv1.EventsRequest{Room: "old"}, codes.OutOfRange},
			{&hangmanv1.EventsRequest{Room: "nope"}, codes.NotFound},
			{&hangmanv1.EventsRequest{Room: "No.pe"}, codes.InvalidArgument},
		} {
			if _, err := gc.Events(ctx, tt.req); status.Code(err) != tt.code {
				t.Errorf("Events(%v): %v, want %v", tt.req, err, tt.code)
			}
		}
	})

	t.Run("who may ask", func(t *testing.T) {
		connect := func(user, pw string) (*nats.Conn, <-chan error) {
			return natstest.Connect(t, c.nodes[follower].NATSURL(), nats.UserInfo(user, pw), nats.CustomInboxPrefix(natsembed.InboxOf(user)))
		}
		// Relays may read too.
		relayNC, _ := connect(natsembed.UserRelay, auth.RelayPassword)
		if _, code, e := askEvents(t, relayNC, `{"room":"nope"}`); code != "404" {
			t.Fatalf("relay asking: %s %+v", code, e)
		}
		// The watcher may not listen to the requests (and answer them).
		w, errs := connect(natsembed.UserWatcher, auth.WatcherPassword)
		if _, err := w.Subscribe(subjects.APIEvents, func(*nats.Msg) {}); err != nil {
			t.Fatal(err)
		}
		if err := natstest.Refused(w, errs, subjects.APIEvents); err != nil {
			t.Fatalf("the watcher subscribing to the events requests: %v", err)
		}
	})

	t.Run("nats CLI", func(t *testing.T) {
		natsCLI, err := exec.LookPath("nats")
		if err != nil {
			t.Skip("nats CLI not installed (.ci/run installs it with go install github.com/nats-io/natscli/nats)")
		}
		setupRoom(t, c, leader, "lobby")
		playGuesses(t, cl, "lobby", "alice", 2)
		final, err := cl.GetRoom(ctx, &hangmanv1.GetRoomRequest{Room: "lobby", Consistency: hangmanv1.Consistency_CONSISTENCY_LINEARIZABLE})
		if err != nil {
			t.Fatal(err)
		}
		var out []byte
		harness.Eventually(t, 10*time.Second, "nats req to show the room's last event", func() error {
			// The README's command, with this cluster's address and user.
			out, err = exec.CommandContext(ctx, natsCLI, "--server", c.nodes[follower].NATSURL(), "--user", natsembed.UserWatcher, "--password", auth.WatcherPassword,
				"--inbox-prefix", natsembed.InboxWatcher, "req", "hangman.api.events", `{"room":"lobby","since":0}`).CombinedOutput()
			if err != nil {
				return fmt.Errorf("nats req: %v\n%s", err, out)
			}
			if !bytes.Contains(out, fmt.Appendf(nil, `"seq":%d`, final.GetState().GetSeq())) {
				return fmt.Errorf("no event of seq %d in:\n%s", final.GetState().GetSeq(), out)
			}
			return nil
		})
		for _, want := range []string{`"kind":"room_created"`, `"kind":"player_joined"`, `"kind":"guess"`, `"more":false`} {
			if !bytes.Contains(out, []byte(want)) {
				t.Errorf("nats req output lacks %s:\n%s", want, out)
			}
		}
		t.Logf("nats req hangman.api.events:\n%s", out)
		out, err = exec.CommandContext(ctx, natsCLI, "--server", c.nodes[follower].NATSURL(), "--user", natsembed.UserWatcher, "--password", auth.WatcherPassword,
			"--inbox-prefix", natsembed.InboxWatcher, "req", "hangman.api.events", `{"room":"old","since":0}`).CombinedOutput()
		if !bytes.Contains(out, []byte("410")) || !bytes.Contains(out, []byte("fetch the room's state")) {
			t.Errorf("nats req for a too old since: %v\n%s", err, out)
		}
		t.Logf("nats req, since too old:\n%s", out)
	})

	t.Run("grpcurl", func(t *testing.T) {
		grpcurl, err := exec.LookPath("grpcurl")
		if err != nil {
			t.Skip("grpcurl not installed (.ci/run installs it with go install github.com/fullstorydev/grpcurl/cmd/grpcurl)")
		}
		// The README's command, with this cluster's address; the lobby
		// of the nats CLI test, or a fresh one.
		if _, err := cl.CreateRoom(ctx, &hangmanv1.CreateRoomRequest{Room: "lobby"}); err != nil && status.Code(err) != codes.AlreadyExists {
			t.Fatal(err)
		}
		var out []byte
		harness.Eventually(t, 10*time.Second, "grpcurl to show the lobby's creation", func() error {
			out, err = exec.CommandContext(ctx, grpcurl, "-plaintext", "-d", `{"room":"lobby","since":0}`, c.cfgs[third].GRPCAddr, "hangman.v1.GameService/Events").CombinedOutput()
			if err != nil {
				return fmt.Errorf("grpcurl: %v\n%s", err, out)
			}
			if !bytes.Contains(out, []byte(`"kind": "room_created"`)) {
				return fmt.Errorf("no room_created in:\n%s", out)
			}
			return nil
		})
		t.Logf("grpcurl Events:\n%s", out)
	})
}
