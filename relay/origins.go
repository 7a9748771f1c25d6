package relay

import (
	"net/url"
	"strings"
)

// origins is the relay's origin policy, from its configuration alone:
// which pages may open a websocket here (allows), and which relay URLs
// its browsers may be sent to fail over to (trusts). What relays announce
// on NATS never widens either.
type origins struct {
	public  string   // Config.PublicURL
	allowed []string // Config.AllowedOrigins
}

// allows reports whether a browser page at origin may open a websocket
// here: the relay's own origin (same host as the request, or its public
// URL) or a configured origin.
func (o origins) allows(origin, host string) bool {
	if origin == "" {
		return true // not a browser; browsers always send Origin
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	norm := normOrigin(u.Scheme, u.Host)
	if strings.EqualFold(u.Host, host) || norm == normOrigin(u.Scheme, host) {
		return true
	}
	for _, a := range o.allowed {
		if a == "*" || sameOrigin(a, norm) {
			return true
		}
	}
	return sameOrigin(o.public, norm)
}

// trusts reports whether rawURL may be given to browsers as a relay to
// fail over to: its origin is this relay's public URL's or one of
// --allowed-origins (never through "*"). Configuration names failover
// targets; heartbeats only say which of them are alive.
func (o origins) trusts(rawURL string) bool {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return false
	}
	norm := normOrigin(u.Scheme, u.Host)
	if sameOrigin(o.public, norm) {
		return true
	}
	for _, a := range o.allowed {
		if a != "*" && sameOrigin(a, norm) {
			return true
		}
	}
	return false
}

func sameOrigin(rawURL, norm string) bool {
	u, err := url.Parse(strings.TrimSpace(rawURL))
	if err != nil || u.Host == "" {
		return false
	}
	return normOrigin(u.Scheme, u.Host) == norm
}

// normOrigin lower-cases an origin and folds the loopback names together,
// so a page on http://localhost:8080 may fail over to 127.0.0.1:8081.
func normOrigin(scheme, host string) string {
	h, port := host, ""
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.HasSuffix(host, "]") {
		h, port = host[:i], host[i+1:]
	}
	h = strings.ToLower(strings.Trim(h, "[]"))
	switch h {
	case "localhost", "127.0.0.1", "::1":
		h = "loopback"
	}
	if port == "" {
		switch scheme {
		case "http", "ws":
			port = "80"
		case "https", "wss":
			port = "443"
		}
	}
	return strings.ToLower(scheme) + "://" + h + ":" + port
}

// originOf returns scheme://host of an http(s) URL, or "".
func originOf(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// safeOrigin reports whether rawURL is an http(s) URL whose origin may be
// written into a header (the page's Content-Security-Policy).
func safeOrigin(rawURL string) bool {
	o := originOf(rawURL)
	if o == "" {
		return false
	}
	for _, c := range o[strings.Index(o, "://")+3:] {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune(".-:[]", c)) {
			return false
		}
	}
	return true
}
