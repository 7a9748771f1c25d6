package relay

import (
	"net/http"
	"net/netip"
	"strings"
	"sync"
)

// addrConns counts the open websockets of each client address, for
// Config.MaxConnsPerAddr.
type addrConns struct {
	mu  sync.Mutex
	n   map[netip.Prefix]int
	max int // <= 0: no cap
}

// acquire counts one more connection of key, unless key is at the cap.
func (a *addrConns) acquire(key netip.Prefix) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.max > 0 && a.n[key] >= a.max {
		return false
	}
	a.n[key]++
	return true
}

// release counts one connection of key less.
func (a *addrConns) release(key netip.Prefix) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.n[key] <= 1 {
		delete(a.n, key)
		return
	}
	a.n[key]--
}

// clientKey is what a connection counts against: the client's address as
// a prefix (the whole /64 of an IPv6 client). ok is false when the client
// cannot be told apart from others: a trusted proxy that sent no
// X-Forwarded-For, or a peer address that is not IP.
func (r *Relay) clientKey(req *http.Request) (key netip.Prefix, ok bool) {
	ap, err := netip.ParseAddrPort(req.RemoteAddr)
	if err != nil {
		return netip.Prefix{}, false
	}
	client := ap.Addr().Unmap()
	if r.trustedProxy(client) {
		var found bool
		if client, found = r.forwardedFor(req, client); !found {
			return netip.Prefix{}, false
		}
	}
	bits := 32
	if client.Is6() {
		bits = 64
	}
	key, _ = client.Prefix(bits)
	return key, true
}

// forwardedFor reads the client a trusted proxy names: walking
// X-Forwarded-For from the right (what the nearest proxies appended), the
// first address that is not a trusted proxy, or the leftmost if all are.
// Whatever lies further left was written by the client and is not read. A
// malformed entry stops the walk at the hop that appended it. found is
// false without the header.
func (r *Relay) forwardedFor(req *http.Request, proxy netip.Addr) (client netip.Addr, found bool) {
	var hops []string
	for _, v := range req.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(v, ",")...)
	}
	if len(hops) == 0 {
		return proxy, false
	}
	client = proxy
	for i := len(hops) - 1; i >= 0; i-- {
		a, ok := parseHop(strings.TrimSpace(hops[i]))
		if !ok {
			return client, true
		}
		client = a
		if !r.trustedProxy(a) {
			break
		}
	}
	return client, true
}

// parseHop parses one X-Forwarded-For entry: an address, with a port or
// IPv6 brackets or not.
func parseHop(s string) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	a, err := netip.ParseAddr(strings.Trim(s, "[]"))
	return a.Unmap(), err == nil
}

func (r *Relay) trustedProxy(a netip.Addr) bool {
	for _, p := range r.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
