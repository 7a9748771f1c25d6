package raftnode

import (
	"errors"
	"fmt"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	"github.com/hangman/hangman/services/api"
)

// MaxGRPCMessage bounds a gRPC message either way. Requests are a few
// short strings; answers are one room or a page of the lobby.
const MaxGRPCMessage = 4 << 20

// Limits of the gRPC server beyond messages. Headers are not messages:
// without a bound of their own a call could carry 16 MB of metadata (gRPC's
// default) in front of a 64 KiB request. Calls carry a few short headers;
// the server advertises the bound, so gRPC clients refuse to send more
// (Internal, "header list size ... violates the maximum"), and a client
// that sends more anyway has its stream reset, or its connection closed,
// without the headers being kept.
const (
	// DefaultGRPCMaxHeaderBytes bounds the header list of one call, in
	// HTTP/2's measure (names, values and 32 bytes a field); calls carry
	// a few short headers.
	DefaultGRPCMaxHeaderBytes = 16 << 10
	// DefaultGRPCMaxStreams bounds the calls one connection has open at
	// once (a relay's commands for its browsers share its connection).
	DefaultGRPCMaxStreams = 1024
)

// grpcServerOptions are the limits of every gRPC server of a node, the
// header list and stream caps as configured (--grpc-max-header-bytes,
// --grpc-max-streams).
func grpcServerOptions(cfg Config) []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(64 << 10),
		grpc.MaxSendMsgSize(MaxGRPCMessage),
		grpc.MaxHeaderListSize(cfg.GRPCMaxHeaderBytes),
		grpc.MaxConcurrentStreams(cfg.GRPCMaxStreams),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
	}
}

// grpcServer is a node's gRPC front: the server every client and peer
// reaches (GameService, ClusterService, ReplicaService, reflection), with
// grpc.health.v1 on it, which mirrors the node's readiness so that relays
// and probes pick a node that serves.
type grpcServer struct {
	srv    *grpc.Server
	health *health.Server
}

// setReady mirrors readiness (nil: ready, else why not) into
// grpc.health.v1, for the server as a whole ("") and the game service.
func (g *grpcServer) setReady(why error) {
	st := healthpb.HealthCheckResponse_SERVING
	if why != nil {
		st = healthpb.HealthCheckResponse_NOT_SERVING
	}
	g.health.SetServingStatus("", st)
	g.health.SetServingStatus("hangman.v1.GameService", st)
}

// startGRPC serves the node's gRPC services on GRPCAddr and returns the
// game service it serves, which the NATS game API serves too
// (gameapi.go).
func (n *Node) startGRPC() (*api.Service, error) {
	ln, err := net.Listen("tcp", n.cfg.GRPCAddr)
	if err != nil {
		return nil, fmt.Errorf("grpc listen on %s: %w", n.cfg.GRPCAddr, err)
	}
	g := &grpcServer{
		srv:    grpc.NewServer(append(append(grpcServerOptions(n.cfg), n.grpcServerCreds()...), n.metrics.grpcOptions()...)...),
		health: health.NewServer(),
	}
	n.grpc = g
	game := api.New(n, n.log, api.WithLimits(api.Limits{MaxRooms: n.cfg.MaxRooms, MaxPlayers: n.cfg.MaxPlayers}),
		api.WithNoLeaderTimeout(n.cfg.noLeaderTimeout()))
	game.Register(g.srv)
	(&clusterService{node: n}).register(g.srv)
	(&replicaService{node: n}).register(g.srv)
	healthpb.RegisterHealthServer(g.srv, g.health)
	reflection.Register(g.srv)
	n.goRun(func() {
		if err := g.srv.Serve(ln); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			n.log.Error("grpc server stopped", "err", err)
		}
	})
	return game, nil
}
