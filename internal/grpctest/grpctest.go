// Package grpctest serves gRPC services on loopback for the tests of the
// packages that speak gRPC (services/api, services/gameclient): a real
// server and a real client connection, closed when the test ends. It lives
// once here so those tests do not each carry a copy of the listen, serve,
// dial and clean-up steps.
package grpctest

import (
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Serve starts a gRPC server on a free loopback port with the services
// register adds, and returns a plaintext client connection to it, dialled
// with opts (interceptors, for example). The server stops and the
// connection closes when tb ends.
func Serve(tb testing.TB, register func(grpc.ServiceRegistrar), opts ...grpc.DialOption) *grpc.ClientConn {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listen for a test gRPC server: %v", err)
	}
	srv := grpc.NewServer()
	register(srv)
	go func() { _ = srv.Serve(ln) }()
	tb.Cleanup(srv.Stop)
	cc, err := grpc.NewClient(ln.Addr().String(), append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)...)
	if err != nil {
		tb.Fatalf("dial the test gRPC server: %v", err)
	}
	tb.Cleanup(func() { _ = cc.Close() })
	return cc
}
