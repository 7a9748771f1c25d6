package relay

import (
	"net/http"
	"net/netip"
	"strings"
)

// trustedProxies are the networks of the proxies in front of the relay
// (Config.TrustedProxies): the only peers whose X-Forwarded-For says who
// the client is. They decide the address a connection counts against.
type trustedProxies []netip.Prefix

// clientAddr is the address a connection counts against, for its
// connection cap and its creation and join buckets (admission.go): its
// peer's IP, or with the whole /64 of an IPv6 peer, since a client there
// holds all of it; behind a trusted proxy, the client its X-Forwarded-For
// names. capped is false when the client cannot be told apart from others
// (a trusted proxy that sent no X-Forwarded-For): the connection then
// counts against no address's cap, and shares the proxy's buckets.
func (tp trustedProxies) clientAddr(req *http.Request) (addr string, capped bool) {
	ap, err := netip.ParseAddrPort(req.RemoteAddr)
	if err != nil {
		return req.RemoteAddr, false
	}
	client := ap.Addr().Unmap()
	if tp.contains(client) {
		var found bool
		if client, found = tp.forwardedFor(req, client); !found {
			return client.String(), false
		}
	}
	bits := 32
	if client.Is6() {
		bits = 64
	}
	key, _ := client.Prefix(bits)
	return key.String(), true
}

// forwardedFor reads the client a trusted proxy names: walking
// X-Forwarded-For from the right (what the nearest proxies appended), the
// first address that is not a trusted proxy, or the leftmost if all are.
// Whatever lies further left was written by the client and is not read. A
// malformed entry stops the walk at the hop that appended it. found is
// false without the header.
func (tp trustedProxies) forwardedFor(req *http.Request, proxy netip.Addr) (client netip.Addr, found bool) {
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
		if !tp.contains(a) {
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

// contains reports whether a is a trusted proxy's address.
func (tp trustedProxies) contains(a netip.Addr) bool {
	for _, p := range tp {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
