package natsembed

import (
	"errors"
	"net/url"
	"strings"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/hangman/hangman/subjects"
	"github.com/hangman/hangman/tlsutil"
)

// NATS users of the embedded servers when Auth is on. Each may do only
// what its role needs, so a compromised relay or a curious operator cannot
// forge a room's state: only nodes publish under hangman.room.
const (
	// UserNode is the nodes' own user: it publishes hangman.>.
	UserNode = "node"
	// UserRelay is the relays' user: it subscribes to rooms and cluster
	// subjects, publishes only its heartbeat and micro-service answers,
	// and may ask for a room's events (hangman.api.events).
	UserRelay = "relay"
	// UserWatcher is the read-only user for the nats CLI: it
	// subscribes to hangman.> (but not to the API's requests), may ask the
	// micro services for stats, and may read a room's events
	// (hangman.api.events), but not call the API's writes.
	UserWatcher = "watcher"
	// UserPlayer is the user of players who play from the terminal:
	// it may call the game API's endpoints (hangman.api.*, writes
	// included) and read what the watcher reads. Each call acts as a
	// player only with that seat's token, as over gRPC.
	UserPlayer = "player"
	// InboxRelay and InboxWatcher are the inbox prefixes of the
	// relay and watcher users: the only inboxes each may subscribe to, so
	// that neither reads the answers to the other's requests (or a node's).
	// A client of those users must make its inboxes there (nats.go:
	// nats.CustomInboxPrefix; the nats CLI: --inbox-prefix). Nobody but a
	// node may publish on an inbox: answers go out under allow_responses,
	// to the reply subject of a request received, so nobody writes the
	// answer to a request it did not receive either.
	InboxRelay   = "_INBOX_relay"
	InboxWatcher = "_INBOX_watcher"
	InboxPlayer  = "_INBOX_player"
	// natsRouteUser authenticates routes between the embedded servers;
	// its password is the node password.
	natsRouteUser = "hangman-route"
)

// Auth holds the passwords of the NATS users. Auth is on when any is
// set, and then NodePassword is required (nodes publish with it and routes
// authenticate with it); a user whose password is empty does not exist.
type Auth struct {
	NodePassword    string
	RelayPassword   string
	WatcherPassword string
	PlayerPassword  string
}

// Enabled reports whether the embedded servers require users.
func (a Auth) Enabled() bool {
	return a.NodePassword != "" || a.RelayPassword != "" || a.WatcherPassword != "" || a.PlayerPassword != ""
}

// Validate refuses users without the node password, which nodes and
// routes need.
func (a Auth) Validate() error {
	if a.Enabled() && a.NodePassword == "" {
		return errors.New("NATS auth: the node password is required when any NATS password is set")
	}
	return nil
}

// users are the embedded servers' users and their permissions.
func (a Auth) users() []*natsserver.User {
	if !a.Enabled() {
		return nil
	}
	// Requests from `nats micro` arrive on $SRV.>; answers may go only to
	// the reply subject of a request received (allow_responses), once.
	answer := &natsserver.ResponsePermission{MaxMsgs: 1}
	users := []*natsserver.User{{
		Username: UserNode,
		Password: a.NodePassword,
		Permissions: &natsserver.Permissions{
			Publish: &natsserver.SubjectPermission{Allow: []string{subjects.All, "_INBOX.>", "$SRV.>"}},
			// The nodes serve the hangman.api endpoints.
			Subscribe: &natsserver.SubjectPermission{Allow: []string{"_INBOX.>", "$SRV.>", "svc.hangman.>", subjects.API}},
			Response:  answer,
		},
	}}
	if a.RelayPassword != "" {
		users = append(users, &natsserver.User{
			Username: UserRelay,
			Password: a.RelayPassword,
			Permissions: &natsserver.Permissions{
				// Its heartbeat, and requests for a room's events, a
				// read, to repair a gap.
				Publish: &natsserver.SubjectPermission{
					Allow: []string{subjects.Relays, subjects.APIEvents},
					Deny:  []string{subjects.Rooms, subjects.Lobby, subjects.Cluster},
				},
				// Relays subscribe hangman.room.<room>.* for the state
				// and events of each watched room, and only the micro
				// requests sent to every service or to relays: a
				// subscriber to another service's could answer them.
				// (The requests to every service are literal subjects:
				// an allowed $SRV.* would let a subscription to $SRV.>
				// through, as its ">" is a token * matches.)
				Subscribe: &natsserver.SubjectPermission{Allow: []string{
					subjects.Rooms, subjects.Lobby, subjects.Cluster, subjects.Relays,
					"$SRV.PING", "$SRV.INFO", "$SRV.STATS",
					"$SRV.*." + subjects.RelayService, "$SRV.*." + subjects.RelayService + ".*",
					InboxRelay + ".>",
				}},
				Response: answer,
			},
		})
	}
	if a.WatcherPassword != "" {
		users = append(users, &natsserver.User{
			Username: UserWatcher,
			Password: a.WatcherPassword,
			Permissions: &natsserver.Permissions{
				// Requests only: `nats micro ls|stats|info`, the nodes'
				// stats endpoints, the relays' status endpoint, and the
				// one game API endpoint that only reads,
				// hangman.api.events; not the API's writes. It answers
				// nothing, so it has no allow_responses: it sees micro
				// requests, and must not answer them.
				Publish: &natsserver.SubjectPermission{
					Allow: []string{"$SRV.>", "svc.hangman.>", subjects.RelayStatus, subjects.APIEvents},
					Deny:  []string{subjects.Rooms, subjects.Lobby, subjects.Cluster, subjects.RelayHeartbeat},
				},
				// Not the API's request subjects: a subscriber there
				// would see others' requests.
				Subscribe: &natsserver.SubjectPermission{
					Allow: []string{subjects.All, "$SRV.>", InboxWatcher + ".>"},
					Deny:  []string{subjects.API},
				},
			},
		})
	}
	if a.PlayerPassword != "" {
		users = append(users, &natsserver.User{
			Username: UserPlayer,
			Password: a.PlayerPassword,
			Permissions: &natsserver.Permissions{
				// The game API's requests (each write checked by the
				// node as over gRPC) and the micro requests; it answers
				// nothing and publishes nothing else.
				Publish: &natsserver.SubjectPermission{
					Allow: []string{"$SRV.>", subjects.API},
				},
				// As the watcher: everything published, never the
				// API's requests (they carry tokens), and only its own
				// inboxes. Players share the user and so its inboxes:
				// a player who wants nobody else to see a seat's
				// token brings its own to the join (README).
				Subscribe: &natsserver.SubjectPermission{
					Allow: []string{subjects.All, InboxPlayer + ".>"},
					Deny:  []string{subjects.API},
				},
			},
		})
	}
	return users
}

// routeURL adds the route credentials to a peer's route URL (they are
// never gossiped: serf carries the bare URL).
func (a Auth) routeURL(u *url.URL) *url.URL {
	if a.NodePassword == "" {
		return u
	}
	c := *u
	c.User = url.UserPassword(natsRouteUser, a.NodePassword)
	return &c
}

// ClientOption returns one nats.Option that sets user, password and
// TLS as configured; with none it changes nothing.
func ClientOption(b *tlsutil.Bundle, user, password string) nats.Option {
	return func(o *nats.Options) error {
		if password != "" {
			o.User, o.Password = user, password
		}
		if b != nil {
			o.Secure = true
			o.TLSConfig = b.ClientConfig()
		}
		return nil
	}
}

// secureNATS applies users, route authentication and TLS to the embedded
// server's options. Routes carry their own credentials (and, with TLS,
// node certificates both ways), so a foreign server cannot join the NATS
// cluster; clients use TLS without certificates and authenticate as users.
func secureNATS(opts *natsserver.Options, auth Auth, tls *tlsutil.Bundle) {
	opts.Users = auth.users()
	if auth.Enabled() {
		opts.Cluster.Username, opts.Cluster.Password = natsRouteUser, auth.NodePassword
	}
	if tls != nil {
		opts.TLSConfig = tls.ServerConfig(false)
		opts.TLSTimeout = 2
		opts.Cluster.TLSConfig = tls.PeerConfig()
		opts.Cluster.TLSTimeout = 2
	}
}

// InboxOf is the inbox prefix a client of user must use (nats.go:
// nats.CustomInboxPrefix; the nats CLI: --inbox-prefix): the only inboxes
// that user may read. Nodes use NATS's default.
func InboxOf(user string) string {
	switch user {
	case UserRelay:
		return InboxRelay
	case UserWatcher:
		return InboxWatcher
	case UserPlayer:
		return InboxPlayer
	}
	return strings.TrimSuffix(nats.InboxPrefix, ".")
}
