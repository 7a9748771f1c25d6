package natsembed

import (
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/hangman/hangman/internal/natstest"
	"github.com/hangman/hangman/subjects"
)

// natsUsersServer runs an embedded nats-server with the users of auth, as
// a node's is, and returns its URL.
func natsUsersServer(t *testing.T, auth Auth) string {
	t.Helper()
	return natstest.Server(t, natsserver.Options{Users: auth.users()}).ClientURL()
}

// natsUser is one connection of a NATS user and the permission
// violations the server reported to it.
type natsUser struct {
	*nats.Conn
	errs <-chan error
}

func connectAs(t *testing.T, url, user, pw, inbox string) natsUser {
	t.Helper()
	nc, errs := natstest.Connect(t, url, nats.UserInfo(user, pw), nats.CustomInboxPrefix(inbox))
	return natsUser{Conn: nc, errs: errs}
}

// refused flushes and waits for the server to report a permissions
// violation naming subject.
func (u natsUser) refused(t *testing.T, what, subject string) {
	t.Helper()
	if err := natstest.Refused(u.Conn, u.errs, subject); err != nil {
		t.Errorf("%s: %v", what, err)
	}
}

// TestNATSRepliesBelongToTheirRequester attacks the replies of NATS
// request/reply (the nodes' hangman.api.events, every service's `nats
// micro` endpoints) from the relay and watcher users, on a real embedded
// nats-server with the nodes' users: neither may read the answers to
// another user's requests nor write answers to them; both may still ask,
// and answer what is asked of them.
func TestNATSRepliesBelongToTheirRequester(t *testing.T) {
	auth := Auth{NodePassword: "node-pw", RelayPassword: "relay-pw", WatcherPassword: "watcher-pw"}
	url := natsUsersServer(t, auth)
	node := connectAs(t, url, UserNode, auth.NodePassword, "_INBOX")
	relayNC := connectAs(t, url, UserRelay, auth.RelayPassword, InboxRelay)
	watcher := connectAs(t, url, UserWatcher, auth.WatcherPassword, InboxWatcher)

	// The node answers hangman.api.events and `nats micro`, as a node does;
	// the relay answers `nats micro` as a relay does.
	nodeSvc, err := micro.AddService(node.Conn, micro.Config{Name: "hangman-node", Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nodeSvc.Stop() })
	if err := nodeSvc.AddEndpoint("events", micro.HandlerFunc(func(r micro.Request) { _ = r.Respond([]byte("real")) }),
		micro.WithEndpointSubject(subjects.APIEvents)); err != nil {
		t.Fatal(err)
	}
	relaySvc, err := micro.AddService(relayNC.Conn, micro.Config{Name: subjects.RelayService, Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = relaySvc.Stop() })
	if err := node.Flush(); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name             string
		requester, thief natsUser
		theirInbox       string
	}{
		{"the watcher, on the relay's replies", relayNC, watcher, InboxRelay},
		{"the relay, on the watcher's replies", watcher, relayNC, InboxWatcher},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Reading: every subscription that would see the
			// requester's answers is refused.
			for _, subject := range []string{"_INBOX.>", tc.theirInbox + ".>", ">"} {
				if _, err := tc.thief.Subscribe(subject, func(*nats.Msg) {}); err != nil {
					t.Fatal(err)
				}
				tc.thief.refused(t, "subscribing "+subject, subject)
			}
			// Forging: the thief learnt the requester's reply subject
			// and answers first; the server refuses, and the
			// requester's first answer is the node's.
			inbox := tc.requester.NewInbox()
			answers, err := tc.requester.SubscribeSync(inbox)
			if err != nil {
				t.Fatal(err)
			}
			if err := tc.requester.Flush(); err != nil {
				t.Fatal(err)
			}
			if err := tc.thief.Publish(inbox, []byte("forged")); err != nil {
				t.Fatal(err)
			}
			tc.thief.refused(t, "publishing on the requester's inbox", inbox)
			if err := tc.requester.PublishRequest(subjects.APIEvents, inbox, []byte(`{"room":"x"}`)); err != nil {
				t.Fatal(err)
			}
			m, err := answers.NextMsg(5 * time.Second)
			if err != nil || string(m.Data) != "real" {
				t.Fatalf("first answer: %v %q, want the node's", err, msgData(m))
			}
		})
	}

	t.Run("answering others' micro requests", func(t *testing.T) {
		// The relay user answers what is asked of relays, not what is
		// asked of nodes.
		for _, subject := range []string{"$SRV.STATS.hangman-node", "$SRV.>"} {
			if _, err := relayNC.Subscribe(subject, func(*nats.Msg) {}); err != nil {
				t.Fatal(err)
			}
			relayNC.refused(t, "the relay subscribing "+subject, subject)
		}
		// The watcher answers nothing: it sees micro requests (here
		// another nats CLI's) but may not reply to them.
		seen := make(chan *nats.Msg, 4)
		if _, err := watcher.ChanSubscribe("$SRV.PING.hangman-node", seen); err != nil {
			t.Fatal(err)
		}
		if err := watcher.Flush(); err != nil {
			t.Fatal(err)
		}
		other := connectAs(t, url, UserWatcher, auth.WatcherPassword, InboxWatcher)
		inbox := other.NewInbox()
		answers, err := other.SubscribeSync(inbox)
		if err != nil {
			t.Fatal(err)
		}
		if err := other.PublishRequest("$SRV.PING.hangman-node", inbox, nil); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-seen:
			if err := watcher.Publish(m.Reply, []byte(`{"name":"hangman-node","forged":true}`)); err != nil {
				t.Fatal(err)
			}
			watcher.refused(t, "the watcher answering a micro request", m.Reply)
		case <-time.After(5 * time.Second):
			t.Fatal("the watcher did not see the micro request")
		}
		if m, err := answers.NextMsg(5 * time.Second); err != nil || strings.Contains(string(m.Data), "forged") {
			t.Fatalf("first answer to the ping: %v %q, want the node's", err, msgData(m))
		}
	})

	t.Run("asking and answering still work", func(t *testing.T) {
		for _, u := range []struct {
			name string
			nc   natsUser
		}{{"watcher", watcher}, {"relay", relayNC}} {
			if m, err := u.nc.Request(subjects.APIEvents, []byte(`{"room":"x"}`), 5*time.Second); err != nil || string(m.Data) != "real" {
				t.Errorf("%s asking %s: %v %q", u.name, subjects.APIEvents, err, msgData(m))
			}
		}
		for _, svc := range []string{"hangman-node", subjects.RelayService} {
			if m, err := watcher.Request("$SRV.PING."+svc, nil, 5*time.Second); err != nil || !strings.Contains(string(m.Data), svc) {
				t.Errorf("watcher pinging %s: %v %q", svc, err, msgData(m))
			}
		}
	})
}

func msgData(m *nats.Msg) string {
	if m == nil {
		return ""
	}
	return string(m.Data)
}

// TestGameAPIPermissions checks the NATS users against the game API on a
// real embedded nats-server with the nodes' users: the watcher and the
// relay may not call it, the player may; the player may not read the
// API's requests (they carry tokens), others' inboxes, or publish what
// only nodes publish.
func TestGameAPIPermissions(t *testing.T) {
	auth := Auth{NodePassword: "node-pw", RelayPassword: "relay-pw", WatcherPassword: "watcher-pw", PlayerPassword: "player-pw"}
	url := natsUsersServer(t, auth)
	node := connectAs(t, url, UserNode, auth.NodePassword, "_INBOX")
	watcher := connectAs(t, url, UserWatcher, auth.WatcherPassword, InboxWatcher)
	relayNC := connectAs(t, url, UserRelay, auth.RelayPassword, InboxRelay)
	player := connectAs(t, url, UserPlayer, auth.PlayerPassword, InboxPlayer)
	gameSubjects := []string{subjects.APICreate, subjects.APIJoin, subjects.APIGuess, subjects.APINewRound, subjects.APISetWord, subjects.APIList}

	// The node answers every API subject, as a node does.
	svc, err := micro.AddService(node.Conn, micro.Config{Name: "hangman-node", Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	for _, s := range append(gameSubjects, subjects.APIEvents) {
		if err := svc.AddEndpoint(strings.ReplaceAll(s, ".", "-"), micro.HandlerFunc(func(r micro.Request) { _ = r.Respond([]byte("answered")) }),
			micro.WithEndpointSubject(s)); err != nil {
			t.Fatal(err)
		}
	}
	if err := node.Flush(); err != nil {
		t.Fatal(err)
	}

	for _, s := range gameSubjects {
		if m, err := player.Request(s, []byte(`{}`), 5*time.Second); err != nil || string(m.Data) != "answered" {
			t.Errorf("player calling %s: %v %q", s, err, msgData(m))
		}
		for _, u := range []struct {
			name string
			nc   natsUser
		}{{"watcher", watcher}, {"relay", relayNC}} {
			if err := u.nc.Publish(s, []byte(`{"room":"x"}`)); err != nil {
				t.Fatal(err)
			}
			u.nc.refused(t, u.name+" calling "+s, s)
		}
	}
	if m, err := player.Request(subjects.APIEvents, []byte(`{}`), 5*time.Second); err != nil || string(m.Data) != "answered" {
		t.Errorf("player asking for events: %v %q", err, msgData(m))
	}
	// Reading others' requests and answers, and publishing as a node.
	for _, subject := range []string{subjects.API, subjects.APIGuess, subjects.APISetWord, InboxWatcher + ".>", InboxRelay + ".>", "_INBOX.>", ">"} {
		if _, err := player.Subscribe(subject, func(*nats.Msg) {}); err != nil {
			t.Fatal(err)
		}
		player.refused(t, "player subscribing "+subject, subject)
	}
	// Nobody but the nodes reads a setter's word on its way.
	for _, u := range []struct {
		name string
		nc   natsUser
	}{{"watcher", watcher}, {"relay", relayNC}} {
		if _, err := u.nc.Subscribe(subjects.APISetWord, func(*nats.Msg) {}); err != nil {
			t.Fatal(err)
		}
		u.nc.refused(t, u.name+" subscribing "+subjects.APISetWord, subjects.APISetWord)
	}
	for _, subject := range []string{subjects.RoomState("x"), subjects.Lobby, subjects.ClusterLeader, subjects.RelayHeartbeat, "_INBOX.x"} {
		if err := player.Publish(subject, []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
		player.refused(t, "player publishing "+subject, subject)
	}
	// What it may watch.
	for _, subject := range []string{subjects.Lobby, subjects.Rooms} {
		if _, err := player.SubscribeSync(subject); err != nil {
			t.Fatal(err)
		}
		_ = player.Flush()
		select {
		case err := <-player.errs:
			t.Errorf("player subscribing %s: %v", subject, err)
		default:
		}
	}
}
