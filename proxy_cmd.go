package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"
)

// runProxy runs the public entry of a docker-compose deployment until ctx
// ends: one port that spreads browsers' TCP connections (page loads and
// websockets alike) over the relays that are ready. Kubernetes has a
// Service for this; compose has none, and no other image can be pulled
// here, so the hangman image brings its own.
//
// It works at the TCP level: the Host and Origin a browser sends reach the
// relay untouched (so the relay's origin check sees the public URL), and a
// websocket lives exactly as long as its relay connection: when a relay
// dies its browsers' connections close, they reconnect to the same public
// URL, and land on a relay that is still ready.
func runProxy(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("hangman proxy", flag.ContinueOnError)
	var (
		listen, to string
		cfg        proxyConfig
	)
	fs.StringVar(&listen, "listen", "0.0.0.0:8080", "address browsers connect to: the public entry")
	fs.StringVar(&to, "to", "relay:8080", "host:port of the relays; every address the host resolves to is one (compose's DNS answers a service name with all its replicas)")
	fs.StringVar(&cfg.checkPath, "check-path", "/readyz", "HTTP path a relay must answer 200 on to be given connections")
	fs.DurationVar(&cfg.interval, "check-interval", time.Second, "how often the relays are resolved and asked again")
	fs.DurationVar(&cfg.dialTimeout, "dial-timeout", time.Second, "longest wait for one relay to accept a connection before the next is tried")
	logger := logFlags(fs, "info")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log, err := logger()
	if err != nil {
		return err
	}
	host, port, err := net.SplitHostPort(to)
	if err != nil {
		return fmt.Errorf("--to %q: %w", to, err)
	}
	cfg.resolve = func(ctx context.Context) ([]string, error) {
		hosts, err := net.DefaultResolver.LookupHost(ctx, host)
		for i, h := range hosts {
			hosts[i] = net.JoinHostPort(h, port)
		}
		return hosts, err
	}
	if cfg.interval <= 0 || cfg.dialTimeout <= 0 {
		return errors.New("--check-interval and --dial-timeout must be positive")
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("proxy listen: %w", err)
	}
	p := newProxy(cfg, log)
	log.Info("proxy listening", "addr", ln.Addr().String(), "relays", to)
	return p.serve(ctx, ln)
}

// proxyConfig is what a proxy needs to find and check its backends.
type proxyConfig struct {
	// resolve lists the backends' addresses (host:port) as of now.
	resolve     func(ctx context.Context) ([]string, error)
	checkPath   string
	interval    time.Duration
	dialTimeout time.Duration
}

// proxy spreads connections over the backends that answered their last
// check, the one with the fewest open connections first: websockets live
// long, so counting them balances relays that were added later.
type proxy struct {
	cfg    proxyConfig
	log    *slog.Logger
	client *http.Client

	mu       sync.Mutex
	backends map[string]*backend // by address
	turn     int                 // rotates ties between equally loaded backends
	conns    map[net.Conn]struct{}
}

// backend is one relay address.
type backend struct {
	addr  string
	ready bool
	conns int
}

func newProxy(cfg proxyConfig, log *slog.Logger) *proxy {
	return &proxy{
		cfg:      cfg,
		log:      log,
		client:   &http.Client{Timeout: cfg.interval, Transport: &http.Transport{DisableKeepAlives: true}},
		backends: map[string]*backend{},
		conns:    map[net.Conn]struct{}{},
	}
}

// serve checks the backends in the background and forwards every
// connection accepted on ln until ctx ends; then it closes ln and every
// open connection.
func (p *proxy) serve(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	p.refresh(ctx)
	wg.Go(func() { p.checkLoop(ctx) })
	wg.Go(func() {
		<-ctx.Done()
		_ = ln.Close()
		p.mu.Lock()
		for c := range p.conns {
			_ = c.Close()
		}
		p.conns = nil // no more: see track
		p.mu.Unlock()
	})
	var err error
	for {
		var c net.Conn
		c, err = ln.Accept()
		if err != nil {
			break
		}
		wg.Go(func() { p.forward(ctx, c) })
	}
	cancel()
	wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("proxy accept: %w", err)
}

func (p *proxy) checkLoop(ctx context.Context) {
	t := time.NewTicker(p.cfg.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.refresh(ctx)
		}
	}
}

// refresh resolves the relays' name again and asks each address for its
// readiness, all at once.
func (p *proxy) refresh(ctx context.Context) {
	addrs, err := p.cfg.resolve(ctx)
	if err != nil {
		// No relay runs (a name with no replica does not resolve):
		// nothing to give connections to until one does.
		addrs = nil
		p.log.Debug("relays do not resolve", "err", err)
	}
	ready := make([]bool, len(addrs))
	var wg sync.WaitGroup
	for i, a := range addrs {
		wg.Go(func() { ready[i] = p.check(ctx, a) == nil })
	}
	wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	for a, b := range p.backends {
		if !slices.Contains(addrs, a) {
			delete(p.backends, a)
			p.log.Info("relay gone", "addr", a, "open", b.conns)
		}
	}
	for i, a := range addrs {
		b := p.backends[a]
		if b == nil {
			b = &backend{addr: a}
			p.backends[a] = b
		}
		if b.ready != ready[i] {
			p.log.Info("relay readiness changed", "addr", a, "ready", ready[i])
		}
		b.ready = ready[i]
	}
}

// check asks one backend for its readiness.
func (p *proxy) check(ctx context.Context, addr string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+p.cfg.checkPath, nil)
	if err != nil {
		return err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s%s: %s", addr, p.cfg.checkPath, resp.Status)
	}
	return nil
}

// pick chooses the ready backend with the fewest connections, skipping
// those already tried for this connection, and counts the new one.
func (p *proxy) pick(tried []string) *backend {
	p.mu.Lock()
	defer p.mu.Unlock()
	cands := make([]*backend, 0, len(p.backends))
	for _, b := range p.backends {
		if b.ready && !slices.Contains(tried, b.addr) {
			cands = append(cands, b)
		}
	}
	if len(cands) == 0 {
		return nil
	}
	slices.SortFunc(cands, func(a, b *backend) int {
		if a.addr < b.addr {
			return -1
		}
		return 1
	})
	p.turn++
	var best *backend
	for i := range cands {
		b := cands[(i+p.turn)%len(cands)]
		if best == nil || b.conns < best.conns {
			best = b
		}
	}
	best.conns++
	return best
}

// release uncounts a connection; a failed dial also takes the backend out
// of rotation until its next good check.
func (p *proxy) release(b *backend, failed bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	b.conns--
	if failed && b.ready {
		b.ready = false
		p.log.Info("relay refused a connection; out of rotation until its next check", "addr", b.addr)
	}
}

// noRelay is the answer when no relay is ready: the browser's request (a
// page or a websocket handshake) fails cleanly and the page retries.
const noRelay = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: 77\r\n\r\n" +
	`{"type":"error","code":"unavailable","message":"no relay is ready; retry soon"}`

// forward connects c to a ready backend, trying the next one when a dial
// fails, and copies bytes both ways until either side closes.
func (p *proxy) forward(ctx context.Context, c net.Conn) {
	if !p.track(c, true) {
		_ = c.Close()
		return
	}
	defer p.track(c, false)
	defer c.Close()
	var tried []string
	for {
		b := p.pick(tried)
		if b == nil {
			refuse(c)
			return
		}
		tried = append(tried, b.addr)
		d := net.Dialer{Timeout: p.cfg.dialTimeout}
		up, err := d.DialContext(ctx, "tcp", b.addr)
		if err != nil {
			p.release(b, true)
			p.log.Debug("dial relay", "addr", b.addr, "err", err)
			continue
		}
		splice(c, up)
		p.release(b, false)
		return
	}
}

// refuse answers noRelay once the request's header has arrived (an
// answer before the request confuses HTTP clients), then closes.
func refuse(c net.Conn) {
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	r := bufio.NewReaderSize(io.LimitReader(c, 16<<10), 1024)
	for {
		line, err := r.ReadString('\n')
		if err != nil || line == "\r\n" || line == "\n" {
			break
		}
	}
	_, _ = io.WriteString(c, noRelay)
}

// track adds or removes an open client connection; adding fails once the
// proxy is stopping.
func (p *proxy) track(c net.Conn, add bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !add {
		delete(p.conns, c)
		return true
	}
	if p.conns == nil {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

// splice copies a to b and b to a until either direction ends, then closes
// both: a relay that died takes its browsers' connections with it, so they
// reconnect at once.
func splice(a, b net.Conn) {
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go cp(a, b)
	go cp(b, a)
	<-done
	_ = a.Close()
	_ = b.Close()
	<-done
}
