package raftnode

import (
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/raft"
)

// errCut is returned for raft traffic while the node is cut off.
var errCut = errors.New("raft transport cut off for now: this node gave up leadership")

// cuttableLayer wraps raft's stream layer so a node can cut itself off the
// cluster at once, for a while: closing a raft.NetworkTransport stops
// accepting for good but leaves pooled outbound connections (and a stuck
// leader's heartbeats) running; cutOff closes every connection either way
// and refuses new ones until restore.
//
// It also notes when a peer closes a connection it opened to this node (a
// leader's process that ends closes its connections to its followers), for
// the fast failover (failover.go).
type cuttableLayer struct {
	raft.StreamLayer
	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
	// peerClosed is when a peer at each IP last closed a connection it
	// had opened to this node.
	peerClosed map[string]time.Time
}

func newCuttableLayer(l raft.StreamLayer) *cuttableLayer {
	return &cuttableLayer{StreamLayer: l, conns: make(map[net.Conn]struct{}), peerClosed: make(map[string]time.Time)}
}

func (c *cuttableLayer) track(conn net.Conn, inbound bool) (net.Conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cut {
		_ = conn.Close()
		return nil, errCut
	}
	c.conns[conn] = struct{}{}
	return &trackedRaftConn{Conn: conn, layer: c, inbound: inbound}, nil
}

// notePeerClosed records that the peer at addr closed its connection.
func (c *cuttableLayer) notePeerClosed(addr net.Addr) {
	host, _, err := net.SplitHostPort(addr.String())
	if err != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.peerClosed[host] = time.Now()
}

// peerClosedSince reports whether a peer at one of ips closed a
// connection it had opened to this node after t.
func (c *cuttableLayer) peerClosedSince(ips []net.IP, t time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for host, at := range c.peerClosed {
		ip := net.ParseIP(host)
		if at.After(t) && slices.ContainsFunc(ips, ip.Equal) {
			return true
		}
	}
	return false
}

// Accept accepts a peer's connection unless the layer is cut.
func (c *cuttableLayer) Accept() (net.Conn, error) {
	for {
		conn, err := c.StreamLayer.Accept()
		if err != nil {
			return nil, err
		}
		if t, err := c.track(conn, true); err == nil {
			return t, nil
		}
	}
}

// Dial connects to a peer unless the layer is cut.
func (c *cuttableLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	conn, err := c.StreamLayer.Dial(address, timeout)
	if err != nil {
		return nil, err
	}
	return c.track(conn, false)
}

// cutOff closes every raft connection and refuses new ones until restore.
func (c *cuttableLayer) cutOff() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cut = true
	for conn := range c.conns {
		_ = conn.Close()
	}
	clear(c.conns)
}

// restore lets raft connect again after cutOff; raft's transport dials
// afresh for the connections that were closed.
func (c *cuttableLayer) restore() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cut = false
}

type trackedRaftConn struct {
	net.Conn
	layer   *cuttableLayer
	inbound bool        // a peer opened it
	closed  atomic.Bool // this node closed it
	once    sync.Once
}

// Read notes a peer that closed a connection it opened to this node:
// raft reads every inbound connection all the time, so the end of the
// peer's side shows at once.
func (t *trackedRaftConn) Read(b []byte) (int, error) {
	n, err := t.Conn.Read(b)
	if err != nil && t.inbound && !t.closed.Load() &&
		(errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)) {
		t.layer.notePeerClosed(t.Conn.RemoteAddr())
	}
	return n, err
}

func (t *trackedRaftConn) Close() error {
	t.closed.Store(true)
	t.once.Do(func() {
		t.layer.mu.Lock()
		delete(t.layer.conns, t.Conn)
		t.layer.mu.Unlock()
	})
	return t.Conn.Close()
}

// tcpLayer is raft's stream layer over plain TCP (without TLS).
type tcpLayer struct {
	ln        net.Listener
	advertise net.Addr
}

func newTCPLayer(bind string, advertise net.Addr) (*tcpLayer, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, err
	}
	return &tcpLayer{ln: ln, advertise: advertise}, nil
}

func (l *tcpLayer) Accept() (net.Conn, error) { return l.ln.Accept() }
func (l *tcpLayer) Close() error              { return l.ln.Close() }
func (l *tcpLayer) Addr() net.Addr            { return l.advertise }
func (l *tcpLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("tcp", string(address), timeout)
}
