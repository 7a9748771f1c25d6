// Package natstest runs throwaway nats-servers and clients on loopback for
// the tests of the packages that speak NATS (raftnode and its natsembed
// and publish packages, relay): a real server, connections that collect
// what the server refused them, and the check that it did. It lives once
// here so those tests do not each carry a copy of the start, wait, connect
// and clean-up steps, as grpctest does for gRPC.
package natstest

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// readyTimeout bounds a test server's start.
const readyTimeout = 10 * time.Second

// Server starts a nats-server with opts (users, a cluster, routes) on a
// free loopback port, quiet, unless opts say otherwise, and returns it
// ready for connections. It shuts down when tb ends.
func Server(tb testing.TB, opts server.Options) *server.Server {
	tb.Helper()
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if opts.Port == 0 {
		opts.Port = server.RANDOM_PORT
	}
	opts.NoLog, opts.NoSigs = true, true
	srv, err := server.NewServer(&opts)
	if err != nil {
		tb.Fatalf("new nats server: %v", err)
	}
	go srv.Start()
	tb.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(readyTimeout) {
		tb.Fatalf("nats server not ready after %v", readyTimeout)
	}
	return srv
}

// errsBuffered is how many of the server's asynchronous errors a
// connection keeps; later ones are dropped.
const errsBuffered = 64

// Connect connects to url with opts and returns the connection with the
// asynchronous errors the server reports to it (permission violations),
// for Refused. The connection closes when tb ends.
func Connect(tb testing.TB, url string, opts ...nats.Option) (*nats.Conn, <-chan error) {
	tb.Helper()
	errs := make(chan error, errsBuffered)
	opts = append(opts, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case errs <- err:
		default:
		}
	}))
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		tb.Fatalf("connect to %s: %v", url, err)
	}
	tb.Cleanup(nc.Close)
	return nc, errs
}

// refusalTimeout bounds the wait for the server to report a refusal.
const refusalTimeout = 5 * time.Second

// Refused flushes nc and waits for the server to report, on errs (from
// Connect), a permissions violation naming subject. It says why not
// otherwise: the server reported something else, or nothing (it allowed
// what nc did).
func Refused(nc *nats.Conn, errs <-chan error, subject string) error {
	_ = nc.Flush()
	select {
	case err := <-errs:
		if !errors.Is(err, nats.ErrPermissionViolation) || !strings.Contains(err.Error(), subject) {
			return fmt.Errorf("%w, want a permissions violation for %s", err, subject)
		}
		return nil
	case <-time.After(refusalTimeout):
		return fmt.Errorf("allowed: no permissions violation for %s within %v", subject, refusalTimeout)
	}
}
