package relay

import (
	"sync"
	"sync/atomic"
)

// sessionSet is the relay's websockets: how many are open or being opened
// (capped by Config.MaxConns), the sessions among them, the network
// connections under them, and the handlers serving them, which Close and
// Shutdown wait for. Once the relay is closing it lets no new one in.
type sessionSet struct {
	max  int          // Config.MaxConns
	open atomic.Int64 // websockets open or being opened

	mu       sync.Mutex
	clients  map[*client]struct{}
	conns    map[*trackedConn]struct{}
	closed   bool
	handlers sync.WaitGroup // websocket handlers running
}

func newSessionSet(maxConns int) *sessionSet {
	return &sessionSet{max: maxConns, clients: make(map[*client]struct{}), conns: make(map[*trackedConn]struct{})}
}

// reserve counts one more websocket open, or reports false when the relay
// holds its limit already.
func (ss *sessionSet) reserve() bool {
	if ss.open.Add(1) > int64(ss.max) {
		ss.open.Add(-1)
		return false
	}
	return true
}

// unreserve counts one websocket open less.
func (ss *sessionSet) unreserve() { ss.open.Add(-1) }

// startHandler counts a websocket handler that Close and Shutdown wait
// for, or reports false when the relay is closing; handlerDone ends it.
func (ss *sessionSet) startHandler() bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.closed {
		return false
	}
	ss.handlers.Add(1)
	return true
}

func (ss *sessionSet) handlerDone() { ss.handlers.Done() }

// track keeps the connection under a websocket, for Close to drop; closed
// says the relay is closing already, and the caller closes it.
func (ss *sessionSet) track(tc *trackedConn) (closed bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.conns[tc] = struct{}{}
	return ss.closed
}

func (ss *sessionSet) untrack(tc *trackedConn) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.conns, tc)
}

// add and remove keep the sessions: the connections melody has upgraded.
func (ss *sessionSet) add(c *client) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.clients[c] = struct{}{}
}

func (ss *sessionSet) remove(c *client) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.clients, c)
}

// each calls f for every session, under the set's lock: f must not block.
func (ss *sessionSet) each(f func(*client)) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for c := range ss.clients {
		f(c)
	}
}

// close lets no new websocket in and returns the sessions and the
// connections there are.
func (ss *sessionSet) close() ([]*client, []*trackedConn) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.closed = true
	clients := make([]*client, 0, len(ss.clients))
	for c := range ss.clients {
		clients = append(clients, c)
	}
	conns := make([]*trackedConn, 0, len(ss.conns))
	for c := range ss.conns {
		conns = append(conns, c)
	}
	return clients, conns
}

// wait waits for every websocket handler to end.
func (ss *sessionSet) wait() { ss.handlers.Wait() }
