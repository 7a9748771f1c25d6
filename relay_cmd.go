package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/hangman/hangman/relay"
	"github.com/hangman/hangman/tlsutil"
)

// runRelay runs one websocket relay until ctx ends, then shuts it down
// gracefully (browsers are told to reconnect elsewhere).
func runRelay(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("hangman relay", flag.ContinueOnError)
	var (
		cfg                 relay.Config
		listen, nats, nodes string
		origins             string
		tlsCert, tlsKey     string
		tlsCA               string
		natsPasswordFile    string
		perAddr             int
		proxies             string
	)
	fs.StringVar(&listen, "listen", "0.0.0.0:8080", "HTTP address serving the page, /ws, /healthz and /readyz")
	fs.StringVar(&nats, "nats", "nats://127.0.0.1:4222", "comma-separated NATS server URLs")
	fs.StringVar(&nodes, "grpc", "127.0.0.1:9001,127.0.0.1:9002,127.0.0.1:9003", "comma-separated gRPC addresses of game nodes, as seeds: the relay also follows the addresses the cluster lists")
	fs.StringVar(&cfg.Name, "name", "", "relay name shown to browsers and operators (default: hostname:port)")
	fs.StringVar(&cfg.PublicURL, "public-url", "", "URL browsers reach this relay at, advertised to other relays' browsers for failover (default: http://<listen>, with the hostname for 0.0.0.0)")
	fs.StringVar(&origins, "allowed-origins", "", "comma-separated browser origins, besides the relay's own, allowed to open websockets (\"*\" for any); also the only other relays its browsers may fail over to (never through \"*\")")
	fs.IntVar(&cfg.MaxConns, "max-conns", relay.DefaultMaxConns(), "maximum open websockets; more get 503 (default: the open-file limit less 1,024, at most 100,000)")
	fs.IntVar(&perAddr, "max-conns-per-addr", relay.DefaultMaxConnsPerAddr, "maximum open websockets of one client address (IPv6: one /64); more get 429 (0: no cap)")
	fs.StringVar(&proxies, "trusted-proxies", "", "comma-separated addresses or CIDRs of the proxies in front of the relay: only their X-Forwarded-For names the client; a trusted proxy that sends none (a TCP proxy such as hangman proxy) counts against no address")
	fs.Int64Var(&cfg.MaxFrameBytes, "max-frame-bytes", relay.DefaultMaxFrameBytes, "largest client frame accepted; bigger ones are refused and the connection closed")
	fs.Float64Var(&cfg.MessageRate, "message-rate", relay.DefaultMessageRate, "client frames per second allowed on one connection")
	fs.IntVar(&cfg.MessageBurst, "message-burst", relay.DefaultMessageBurst, "client frames allowed at once on one connection")
	for _, b := range []struct {
		name, what string
		b          *relay.Bucket
		def        relay.Bucket
	}{
		{"conn-create", "rooms one connection may create", &cfg.ConnCreate, relay.DefaultConnCreate},
		{"addr-create", "rooms all connections from one client address may create", &cfg.AddrCreate, relay.DefaultAddrCreate},
		{"conn-join", "seats one connection may take (rejoining is free)", &cfg.ConnJoin, relay.DefaultConnJoin},
		{"addr-join", "seats all connections from one client address may take (rejoining is free)", &cfg.AddrJoin, relay.DefaultAddrJoin},
	} {
		fs.Float64Var(&b.b.Rate, b.name+"-rate", b.def.Rate, b.what+", per second")
		fs.IntVar(&b.b.Burst, b.name+"-burst", b.def.Burst, b.what+", at once")
	}
	fs.IntVar(&cfg.FloodStrikes, "flood-strikes", relay.DefaultFloodStrikes, "rate-limited frames in a row that close the connection")
	fs.IntVar(&cfg.SendBuffer, "send-buffer", relay.DefaultSendBuffer, "answers and lobby lines waiting for one client before it is dropped (room states never count: a newer one replaces the older)")
	fs.DurationVar(&cfg.WriteTimeout, "write-timeout", relay.DefaultWriteTimeout, "longest a client may take to accept one frame")
	fs.DurationVar(&cfg.IdleTimeout, "idle-timeout", relay.DefaultIdleTimeout, "longest a connection may stay silent (no pong)")
	fs.DurationVar(&cfg.RequestTimeout, "request-timeout", relay.DefaultRequestTimeout, "longest one browser command may take across retries")
	fs.StringVar(&cfg.PprofAddr, "pprof-addr", "", "loopback address serving the Go profiler at /debug/pprof/ (empty: off)")
	fs.StringVar(&tlsCert, "tls-cert", "", "PEM client certificate for gRPC (mutual TLS) and NATS (with --tls-key and --tls-ca; see \"hangman certs\")")
	fs.StringVar(&tlsKey, "tls-key", "", "PEM key of --tls-cert")
	fs.StringVar(&tlsCA, "tls-ca", "", "PEM CA the nodes' certificates must chain to")
	fs.StringVar(&cfg.NATSUser, "nats-user", "relay", "NATS user, used when --nats-password is set")
	fs.StringVar(&cfg.NATSPassword, "nats-password", "", "NATS password of --nats-user (the nodes' --nats-relay-password); empty: connect anonymously")
	fs.StringVar(&natsPasswordFile, "nats-password-file", "", "file holding --nats-password (a mounted secret: the relay then sees no other secret)")
	logger := logFlags(fs, "info")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log, err := logger()
	if err != nil {
		return err
	}
	cfg.Logger = log
	if natsPasswordFile != "" {
		raw, err := os.ReadFile(natsPasswordFile)
		if err != nil {
			return fmt.Errorf("--nats-password-file: %w", err)
		}
		pw := strings.TrimSpace(string(raw))
		if pw == "" {
			return fmt.Errorf("--nats-password-file %s is empty", natsPasswordFile)
		}
		if cfg.NATSPassword != "" && cfg.NATSPassword != pw {
			return errors.New("--nats-password and --nats-password-file hold different passwords: set one")
		}
		cfg.NATSPassword = pw
	}
	if cfg.NATSPassword == "" {
		cfg.NATSUser = ""
	}
	if cfg.TLS, err = tlsutil.LoadOptional(tlsCert, tlsKey, tlsCA); err != nil {
		return err
	}
	cfg.NATSURLs = splitList(nats)
	cfg.GRPCAddrs = splitList(nodes)
	cfg.AllowedOrigins = splitList(origins)
	cfg.MaxConnsPerAddr = perAddr
	if perAddr == 0 {
		cfg.MaxConnsPerAddr = -1
	}
	if cfg.TrustedProxies, err = parsePrefixes(proxies); err != nil {
		return fmt.Errorf("--trusted-proxies: %w", err)
	}

	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("relay listen: %w", err)
	}
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	hostname, _ := os.Hostname()
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() && hostname != "" {
		host = hostname
	}
	if cfg.PublicURL == "" {
		cfg.PublicURL = "http://" + net.JoinHostPort(host, port)
	}
	if cfg.Name == "" {
		cfg.Name = net.JoinHostPort(hostname, port)
	}

	r, err := relay.New(ctx, cfg)
	if err != nil {
		_ = ln.Close()
		return err
	}
	served := make(chan error, 1)
	go func() { served <- r.Serve(ln) }()
	log.Info("relay listening", "addr", ln.Addr().String(), "url", cfg.PublicURL)
	select {
	case err := <-served:
		_ = r.Close()
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// parsePrefixes parses a comma-separated list of CIDRs and addresses (an
// address is a network of one).
func parsePrefixes(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, item := range splitList(list) {
		if p, err := netip.ParsePrefix(item); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(item)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an address nor a CIDR", item)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}
