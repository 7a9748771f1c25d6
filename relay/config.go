package relay

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/hangman/hangman/internal/profiler"
	"github.com/hangman/hangman/tlsutil"
)

// Config configures a Relay. Zero limits take the defaults below, so a
// Config with only the addresses filled in is a sane production relay.
type Config struct {
	// Name identifies the relay to browsers (the connection badge) and to
	// operators (logs, NATS micro service metadata).
	Name string
	// PublicURL is how browsers reach this relay, e.g.
	// http://127.0.0.1:8080. Its origin may open websockets here, and it is
	// advertised in heartbeats: the relays whose AllowedOrigins list it
	// give it to their browsers as a failover target.
	PublicURL string
	// NATSURLs are the NATS servers to subscribe to (any one suffices).
	NATSURLs []string
	// GRPCAddrs are the game nodes' gRPC addresses as the relay starts
	// with them (seeds, kept for good); it also follows the addresses the
	// cluster lists, and fails over between all of them.
	GRPCAddrs []string
	// AllowedOrigins lists the browser origins (scheme://host[:port]) that
	// may open a websocket besides the relay's own. "*" allows any origin.
	// They are also the only other relays this relay's browsers may fail
	// over to (never through "*"): a relay heard on NATS is a failover
	// target only if its URL's origin is here. Loopback hosts (localhost,
	// 127.0.0.1, [::1]) are treated as one.
	AllowedOrigins []string

	// MaxConns bounds the open websockets; more get 503 before the upgrade.
	MaxConns int
	// MaxConnsPerAddr bounds the open websockets of one client address
	// (of one /64 for IPv6, which hands a client a whole /64), so that
	// one client cannot hold all MaxConns; more get 429 before the
	// upgrade. Zero takes the default; negative turns the cap off.
	MaxConnsPerAddr int
	// TrustedProxies are the networks of the proxies in front of the
	// relay. A connection from one of them counts against the client its
	// X-Forwarded-For names (the nearest address that is not itself a
	// trusted proxy); one without that header (a TCP proxy, which cannot
	// say) counts against no address, and the proxy must cap per address
	// itself. X-Forwarded-For from any other peer is ignored: anyone can
	// write one.
	TrustedProxies []netip.Prefix
	// MaxFrameBytes bounds one client frame; a bigger one is answered with a
	// frame_too_large error and the connection is closed (1009).
	MaxFrameBytes int64
	// MessageRate and MessageBurst are the token Bucket of one connection:
	// client frames per second, and how many may come at once.
	MessageRate  float64
	MessageBurst int
	// ConnCreate and AddrCreate bound the rooms one connection, and all
	// connections from one client address, may create; ConnJoin and
	// AddrJoin the seats they may take (a join that only rejoins or
	// renames takes none). See admission.go.
	ConnCreate, AddrCreate Bucket
	ConnJoin, AddrJoin     Bucket
	// FloodStrikes is how many rate-limited frames in a row close the
	// connection (1008): a client that keeps flooding after being told to
	// slow down is not a browser.
	FloodStrikes int
	// SendBuffer is how many frames that nothing supersedes (answers to
	// the client's commands, lobby lines) may wait for one client; past it
	// the client is dropped. States and views wait regardless: a newer one
	// takes the place of the older (outbox.go), so a merely slow browser is
	// never dropped.
	SendBuffer int
	// WriteTimeout bounds one websocket write; a client whose socket takes
	// nothing for that long is dead and is closed.
	WriteTimeout time.Duration
	// IdleTimeout is how long a connection may stay silent (no pong to the
	// relay's pings) before it is closed.
	IdleTimeout time.Duration
	// RequestTimeout bounds one browser command end to end, across retries
	// on other nodes; AttemptTimeout bounds one try on one node.
	RequestTimeout time.Duration
	AttemptTimeout time.Duration
	// HeartbeatInterval is how often the relay announces itself on
	// hangman.relay.heartbeat; a relay silent for three intervals is
	// dropped from the list browsers fail over to.
	HeartbeatInterval time.Duration

	// TLS, when set, is the relay's client certificate and the cluster CA:
	// it dials the nodes' gRPC servers with mutual TLS and NATS over TLS,
	// verifying both as cluster nodes. Nil is plaintext (dev mode, tests).
	TLS *tlsutil.Bundle
	// NATSUser and NATSPassword authenticate to NATS when the nodes run
	// with users (the "relay" user may subscribe to rooms but never
	// publish their state); empty connects anonymously. With a password
	// the relay takes room messages as NATS brings them, since only nodes
	// may publish them; without, anyone may, and each seq waits for a
	// node to vouch for it (confirm.go).
	NATSUser     string
	NATSPassword string

	// PprofAddr serves the Go profiler (/debug/pprof/) for operators, on
	// a loopback address of its own; empty, the default, serves it
	// nowhere. Profiles show the relay's memory and goroutines to whoever
	// asks, and a relay has no server certificate to serve them with
	// elsewhere, so any other address is refused.
	PprofAddr string

	// Logger receives the relay's logs; nil discards them.
	Logger *slog.Logger

	// eventWait is how long an event waits for its state (feed.go); 0
	// is defaultEventWait. Only tests change it, to take timing out of a
	// test of the one-frame rule.
	eventWait time.Duration

	// DevHandler, when set, serves everything under /dev/. Only `hangman
	// dev` sets it (its chaos controls: stop and start nodes and relays);
	// `hangman relay` never does, and without it /dev/ answers 404.
	DevHandler http.Handler
}

// Defaults of the limits, chosen for a human player on a phone: a few frames
// per second, small frames, and no patience for clients that do not read.
const (
	DefaultMaxConnsPerAddr   = 100
	DefaultMaxFrameBytes     = 4096
	DefaultMessageRate       = 10
	DefaultMessageBurst      = 20
	DefaultFloodStrikes      = 50
	DefaultSendBuffer        = 64
	DefaultWriteTimeout      = 5 * time.Second
	DefaultIdleTimeout       = 60 * time.Second
	DefaultRequestTimeout    = 15 * time.Second
	DefaultAttemptTimeout    = 5 * time.Second
	DefaultHeartbeatInterval = 2 * time.Second
)

// Default creation and join limits. A player creates a room now and then
// and joins a few; a school or office behind one address holds many
// players. From one address, 30 rooms a minute (after a burst of 10) can
// never outrun the nodes' reclamation of empty rooms (an hour) to the
// 10,000-room cap, and filling a 64-seat room takes minutes, not seconds.
var (
	DefaultConnCreate = Bucket{Rate: 6.0 / 60, Burst: 3}
	DefaultAddrCreate = Bucket{Rate: 30.0 / 60, Burst: 10}
	DefaultConnJoin   = Bucket{Rate: 12.0 / 60, Burst: 5}
	DefaultAddrJoin   = Bucket{Rate: 30.0 / 60, Burst: 20}
)

// withDefaults returns cfg with zero fields filled in, or an error naming the
// field that cannot work.
func (cfg Config) withDefaults() (Config, error) {
	if len(cfg.NATSURLs) == 0 {
		return cfg, fmt.Errorf("relay config: at least one NATS URL is required")
	}
	if len(cfg.GRPCAddrs) == 0 {
		return cfg, fmt.Errorf("relay config: at least one gRPC node address is required")
	}
	if cfg.PublicURL != "" {
		u, err := url.Parse(cfg.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return cfg, fmt.Errorf("relay config: public URL %q must be http(s)://host[:port]", cfg.PublicURL)
		}
		cfg.PublicURL = strings.TrimRight(u.Scheme+"://"+u.Host+u.Path, "/")
	}
	if cfg.Name == "" {
		cfg.Name = "relay"
		if cfg.PublicURL != "" {
			u, _ := url.Parse(cfg.PublicURL)
			cfg.Name = u.Host
		}
	}
	if cfg.PprofAddr != "" {
		if err := profiler.CheckAddr(cfg.PprofAddr, false); err != nil {
			return cfg, fmt.Errorf("relay config: %w: a relay serves profiles on loopback only", err)
		}
	}
	setDefault(&cfg.MaxConns, DefaultMaxConns())
	if cfg.MaxConnsPerAddr == 0 {
		cfg.MaxConnsPerAddr = DefaultMaxConnsPerAddr
	}
	setDefault(&cfg.MaxFrameBytes, DefaultMaxFrameBytes)
	setDefault(&cfg.MessageRate, DefaultMessageRate)
	setDefault(&cfg.MessageBurst, DefaultMessageBurst)
	setDefault(&cfg.FloodStrikes, DefaultFloodStrikes)
	setDefault(&cfg.SendBuffer, DefaultSendBuffer)
	setDefault(&cfg.WriteTimeout, DefaultWriteTimeout)
	setDefault(&cfg.IdleTimeout, DefaultIdleTimeout)
	setDefault(&cfg.RequestTimeout, DefaultRequestTimeout)
	setDefault(&cfg.AttemptTimeout, DefaultAttemptTimeout)
	setDefault(&cfg.HeartbeatInterval, DefaultHeartbeatInterval)
	setDefault(&cfg.eventWait, defaultEventWait)
	for _, b := range []struct {
		got *Bucket
		def Bucket
	}{
		{&cfg.ConnCreate, DefaultConnCreate}, {&cfg.AddrCreate, DefaultAddrCreate},
		{&cfg.ConnJoin, DefaultConnJoin}, {&cfg.AddrJoin, DefaultAddrJoin},
	} {
		setDefault(&b.got.Rate, b.def.Rate)
		setDefault(&b.got.Burst, b.def.Burst)
	}
	// Each refused frame is answered with an error frame; closing a flood
	// before those answers can fill the send queue keeps a flooder from
	// being mistaken for (and counted as) a slow reader.
	cfg.FloodStrikes = max(1, min(cfg.FloodStrikes, cfg.SendBuffer*3/4))
	if cfg.MaxFrameBytes < 256 {
		return cfg, fmt.Errorf("relay config: max frame size %d is below 256 bytes, too small for a join", cfg.MaxFrameBytes)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg, nil
}

func setDefault[T int | int64 | float64 | time.Duration](p *T, def T) {
	if *p <= 0 {
		*p = def
	}
}

// wsReadBuffer is the read buffer of one websocket. A browser frame is a few
// dozen bytes and at most DefaultMaxFrameBytes; a buffer this size holds the
// common frame whole and keeps an idle connection cheap.
const wsReadBuffer = 512
