package raftnode

import (
	"errors"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/hangman/hangman/relay"
	"github.com/hangman/hangman/subjects"
)

// natsUsersServer runs an embedded nats-server with the users of auth, as
// a node's is, and returns its URL.
func natsUsersServer(t *testing.T, auth NATSAuth) string {
	t.Helper()
	srv, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true, Users: auth.users()})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(srv.Shutdown)
	return srv.ClientURL()
}

// inboxFor is the connect option of a test client of user: its inbox
// prefix, the only inboxes it may read.
func inboxFor(user string) nats.Option {
	switch user {
	case NATSUserRelay:
		return nats.CustomInboxPrefix(NATSInboxRelay)
	case NATSUserWatcher:
		return nats.CustomInboxPrefix(NATSInboxWatcher)
	}
	return func(*nats.Options) error { return nil }
}

// natsUser is one connection of a NATS user and the permission
// violations the server reported to it.
type natsUser struct {
	*nats.Conn
	errs chan error
}

func connectAs(t *testing.T, url, user, pw, inbox string) natsUser {
	t.Helper()
	errs := make(chan error, 64)
	nc, err := nats.Connect(url, nats.UserInfo(user, pw), nats.CustomInboxPrefix(inbox),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case errs <- err:
			default:
			}
		}))
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	return natsUser{Conn: nc, errs: errs}
}

// refused flushes and waits for the server to report a permissions
// violation naming subject.
func (u natsUser) refused(t *testing.T, what, subject string) {
	t.Helper()
	_ = u.Flush()
	select {
	case err := <-u.errs:
		if !errors.Is(err, nats.ErrPermissionViolation) || !strings.Contains(err.Error(), subject) {
			t.Errorf("%s: %v, want a permissions violation for %s", what, err, subject)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("%s: allowed", what)
	}
}

// TestNATSRepliesBelongToTheirRequester attacks the replies of NATS
// request/reply (the nodes' hangman.api.events, every service's `nats
// micro` endpoints) from the relay and watcher users, on a real embedded
// nats-server with the nodes' users: neither may read the answers to
// another user's requests nor write answers to them; both may still ask,
// and answer what is asked of them.
func TestNATSRepliesBelongToTheirRequester(t *testing.T) {
	if relayService != relay.ServiceName {
		t.Fatalf("the relay user may receive the micro requests of %q; relays register as %q", relayService, relay.ServiceName)
	}
	auth := NATSAuth{NodePassword: "node-pw", RelayPassword: "relay-pw", WatcherPassword: "watcher-pw"}
	url := natsUsersServer(t, auth)
	node := connectAs(t, url, NATSUserNode, auth.NodePassword, "_INBOX")
	relayNC := connectAs(t, url, NATSUserRelay, auth.RelayPassword, NATSInboxRelay)
	watcher := connectAs(t, url, NATSUserWatcher, auth.WatcherPassword, NATSInboxWatcher)

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
	relaySvc, err := micro.AddService(relayNC.Conn, micro.Config{Name: relay.ServiceName, Version: "1.0.0"})
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
		{"the watcher, on the relay's replies", relayNC, watcher, NATSInboxRelay},
		{"the relay, on the watcher's replies", watcher, relayNC, NATSInboxWatcher},
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
		other := connectAs(t, url, NATSUserWatcher, auth.WatcherPassword, NATSInboxWatcher)
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
		for _, svc := range []string{"hangman-node", relay.ServiceName} {
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
