package relay

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// closeTooBig is the close frame gorilla/websocket writes, as one Write,
// when a client frame exceeds the read limit: FIN+close, length 2, 1009.
var closeTooBig = []byte{0x88, 0x02, 0x03, 0xf1}

// trackedConn is the network connection under one websocket. The relay
// keeps it to drop a client abruptly (a slow client whose buffer overflowed,
// or every client when the relay is closed) without going through the
// websocket's own queue, which is exactly what is stuck in those cases.
//
// It also keeps the protocol's promise that every refused frame is answered
// with an error frame: gorilla/websocket enforces the read limit by writing
// a 1009 close frame before melody hears of it, and nothing may follow a
// close frame, so the error frame is written here, just before it.
type trackedConn struct {
	net.Conn
	tooBig    []byte // error frame to send before closeTooBig
	closeOnce sync.Once
	closeErr  error
	mu        sync.Mutex // guards sentTooBig
	sentBig   bool
	// wmu serialises writes: gorilla's (pings, close frames), each one
	// Write, and the outbox's batches (outbox.go).
	wmu sync.Mutex
}

// writeFrames writes already-framed websocket frames in one write, within
// timeout.
func (c *trackedConn) writeFrames(b []byte, timeout time.Duration) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.Conn.SetWriteDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	_, err := c.Conn.Write(b)
	return err
}

func (c *trackedConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if len(c.tooBig) > 0 && bytes.Equal(p, closeTooBig) {
		c.mu.Lock()
		first := !c.sentBig
		c.sentBig = true
		c.mu.Unlock()
		if first {
			// wmu keeps every other frame out of the way.
			if _, err := c.Conn.Write(textFrame(c.tooBig)); err != nil {
				return 0, err
			}
		}
	}
	return c.Conn.Write(p)
}

// Close closes the connection once; later calls return the first result.
//
// After an oversized frame the client is usually still sending it. Closing
// a socket with unread data makes the kernel send a reset, which can destroy
// the error and close frames still on their way to the client; so the
// connection is half-closed and drained for a moment instead.
func (c *trackedConn) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		linger := c.sentBig
		c.mu.Unlock()
		tcp, ok := c.Conn.(*net.TCPConn)
		if !linger || !ok {
			c.closeErr = c.Conn.Close()
			return
		}
		_ = tcp.CloseWrite()
		go func() {
			_ = tcp.SetReadDeadline(time.Now().Add(2 * time.Second))
			_, _ = io.CopyN(io.Discard, tcp, 8<<20)
			_ = tcp.Close()
		}()
	})
	return c.closeErr
}

// textFrame encodes payload as one unmasked server-to-client text frame.
func textFrame(payload []byte) []byte {
	return append(appendFrameHeader(make([]byte, 0, 10+len(payload)), len(payload)), payload...)
}

// hijackWriter hands the websocket upgrader a trackedConn instead of the raw
// connection.
type hijackWriter struct {
	http.ResponseWriter
	wrap func(net.Conn) net.Conn
}

// Hijack implements http.Hijacker, which the upgrader requires.
func (h *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := h.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("relay: the HTTP server does not support hijacking")
	}
	conn, brw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	return h.wrap(conn), brw, nil
}
