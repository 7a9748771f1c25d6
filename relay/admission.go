package relay

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// Admission: the rooms of the cluster and the seats of a room are capped
// (the nodes' --max-rooms and --max-players), so one client must not be
// able to take them all. Creating a room and taking a seat are limited per
// connection and per client address, each by a token bucket: a client
// that reconnects gets a fresh connection bucket but the same address
// bucket. A join that only rejoins or renames (a reload, a failover to
// another relay) takes no seat, costs nothing and is never held back: a
// relay death sends every browser's join again at once, and those must
// all go through. (Only once a bucket is empty does the relay ask whether
// the player is seated already, in its cached state of the room or of the
// leader.)

// Bucket is a token bucket: Rate per second, and Burst at once.
type Bucket struct {
	Rate  float64
	Burst int
}

func (b Bucket) limiter() *rate.Limiter { return rate.NewLimiter(rate.Limit(b.Rate), b.Burst) }

// Indexes of admission's tables: by command, then by scope.
const (
	cmdCreate, cmdJoin = 0, 1
	byConn, byAddr     = 0, 1
	minPrune           = 1024 // the fewest addresses kept before idle ones are dropped
	retryGranularity   = 100 * time.Millisecond
)

var (
	opNames    = [2]string{"create", "join"}
	scopeNames = [2]string{"connection", "address"}
)

// addrBuckets are the buckets of one client address, and its connections
// (capped by Config.MaxConnsPerAddr).
type addrBuckets struct {
	lims  [2]*rate.Limiter // by command
	conns int              // open connections from the address
}

// admission holds the configured buckets and the per-address ones, and
// counts the refusals.
type admission struct {
	buckets [2][2]Bucket // [command][scope]
	// maxConns caps the connections of one address (<= 0: no cap).
	maxConns int

	mu    sync.Mutex
	addrs map[string]*addrBuckets
	// prune is the size of addrs at which idle entries are dropped next.
	prune int

	limited [2][2]atomic.Int64 // [command][scope]
}

func newAdmission(cfg Config) *admission {
	a := &admission{addrs: make(map[string]*addrBuckets), prune: minPrune, maxConns: cfg.MaxConnsPerAddr}
	a.buckets[cmdCreate] = [2]Bucket{cfg.ConnCreate, cfg.AddrCreate}
	a.buckets[cmdJoin] = [2]Bucket{cfg.ConnJoin, cfg.AddrJoin}
	return a
}

// connLimits are one connection's buckets and its address's, by command
// and scope. The connection's own are made on its first creation or join,
// so that the many connections that only watch cost nothing more. They are
// used from the connection's command worker only.
type connLimits struct {
	a    *admission
	lims [2][2]*rate.Limiter
}

// of returns the buckets of command op, by scope.
func (l *connLimits) of(op int) [2]*rate.Limiter {
	if l.lims[op][byConn] == nil {
		l.lims[op][byConn] = l.a.buckets[op][byConn].limiter()
	}
	return l.lims[op]
}

// acquire returns the buckets of a new connection from addr (clientAddr),
// counting it, or false when capped and addr already holds maxConns
// connections (Config.MaxConnsPerAddr).
func (a *admission) acquire(addr string, capped bool) (*connLimits, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	b := a.addrs[addr]
	if capped && a.maxConns > 0 && b != nil && b.conns >= a.maxConns {
		return nil, false
	}
	if b == nil {
		if len(a.addrs) >= a.prune {
			a.pruneLocked()
		}
		b = &addrBuckets{lims: [2]*rate.Limiter{a.buckets[cmdCreate][byAddr].limiter(), a.buckets[cmdJoin][byAddr].limiter()}}
		a.addrs[addr] = b
	}
	b.conns++
	l := &connLimits{a: a}
	for op := range l.lims {
		l.lims[op][byAddr] = b.lims[op]
	}
	return l, true
}

// release counts one connection from addr less.
func (a *admission) release(addr string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if b := a.addrs[addr]; b != nil {
		b.conns--
	}
}

// pruneLocked drops the addresses without connections whose buckets are
// full again: forgetting them costs their next connection nothing. An
// address whose bucket is still refilling is kept, so reconnecting never
// resets it.
func (a *admission) pruneLocked() {
	now := time.Now()
	for addr, b := range a.addrs {
		full := b.conns == 0
		for _, lim := range b.lims {
			full = full && lim.TokensAt(now) >= float64(lim.Burst())
		}
		if full {
			delete(a.addrs, addr)
		}
	}
	a.prune = max(minPrune, 2*len(a.addrs))
}

// refusal says why a command may not go now, and when to try again.
type refusal struct {
	msg   string
	retry time.Duration
}

// check reports whether a connection with limits l may run command op
// (create, join) now, without spending anything: spend does, once the
// command did. Concurrent commands from one address may each pass before
// any of them spends, so a burst can overshoot by the commands in flight.
func (a *admission) check(l *connLimits, op int) *refusal {
	now := time.Now()
	for scope, lim := range l.of(op) {
		if lim.TokensAt(now) >= 1 {
			continue
		}
		a.limited[op][scope].Add(1)
		r := lim.ReserveN(now, 1)
		wait := r.DelayFrom(now)
		r.CancelAt(now)
		b := a.buckets[op][scope]
		what := "rooms created"
		if op == cmdJoin {
			what = "seats taken"
		}
		return &refusal{
			msg: fmt.Sprintf("too many %s from this %s: at most %g per minute (bursts of %d); try again in %s",
				what, scopeNames[scope], b.Rate*60, b.Burst, max(wait.Round(retryGranularity), retryGranularity)),
			retry: wait,
		}
	}
	return nil
}

// spent reports whether a bucket of command op is empty for a connection
// with limits l: whether check might refuse it.
func (a *admission) spent(l *connLimits, op int) bool {
	now := time.Now()
	for _, lim := range l.of(op) {
		if lim.TokensAt(now) < 1 {
			return true
		}
	}
	return false
}

// spend takes a token from each bucket of command op, into debt if need
// be: the command went through.
func (l *connLimits) spend(op int) {
	now := time.Now()
	for _, lim := range l.of(op) {
		lim.ReserveN(now, 1)
	}
}

// registerMetrics adds the admission series to reg: each limit as
// configured, the refusals, and the addresses tracked.
func (a *admission) registerMetrics(reg *prometheus.Registry) {
	for op := range a.buckets {
		for scope := range a.buckets[op] {
			labels := prometheus.Labels{"op": opNames[op], "by": scopeNames[scope]}
			b := a.buckets[op][scope]
			reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "hangman_relay_commands_limited_total", Help: "Room creations (op=create) and seat-taking joins (op=join) refused by the per-connection or per-address rate limit.", ConstLabels: labels,
			}, func() float64 { return float64(a.limited[op][scope].Load()) }))
			reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "hangman_relay_command_rate_limit", Help: "Room creations or seat-taking joins allowed per second, per connection or per client address (--conn-create-rate, --addr-create-rate, --conn-join-rate, --addr-join-rate).", ConstLabels: labels,
			}, func() float64 { return b.Rate }))
			reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "hangman_relay_command_burst_limit", Help: "Room creations or seat-taking joins allowed at once, per connection or per client address (the matching --*-burst flags).", ConstLabels: labels,
			}, func() float64 { return float64(b.Burst) }))
		}
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "hangman_relay_client_addresses", Help: "Client addresses whose creation and join buckets the relay keeps (connected, or still refilling).",
	}, func() float64 {
		a.mu.Lock()
		defer a.mu.Unlock()
		return float64(len(a.addrs))
	}))
}
