package raftnode

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
	"github.com/hangman/hangman/tlsutil"
)

// tlsStreamLayer is raft's network layer over mutual TLS: both ends present
// node certificates from the cluster CA, so only nodes of this cluster can
// send or receive raft RPCs. raft.NewTCPTransport has no TLS option; this
// is the StreamLayer rqlite and Consul plug in for the same reason.
//
// Handshakes run on their own goroutines (bounded, with a deadline) and
// only completed ones reach Accept: raft's accept loop backs off after an
// error, so a peer failing handshakes must never show up there, nor a slow
// one hold up the connections behind it.
type tlsStreamLayer struct {
	ln        net.Listener
	advertise net.Addr
	config    *tls.Config
	log       *slog.Logger

	conns     chan net.Conn
	handshake chan struct{} // semaphore: handshakes in flight
	done      chan struct{}
	closeOnce sync.Once
	err       error // why the listener stopped; set before done closes
}

// maxTLSHandshakes bounds the raft handshakes in flight; connections
// beyond it are closed at once.
const maxTLSHandshakes = 64

func newTLSStreamLayer(bind string, advertise net.Addr, config *tls.Config, log *slog.Logger) (*tlsStreamLayer, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	l := &tlsStreamLayer{ln: ln, advertise: advertise, config: config, log: log,
		conns: make(chan net.Conn), handshake: make(chan struct{}, maxTLSHandshakes), done: make(chan struct{})}
	go l.acceptLoop()
	return l, nil
}

func (l *tlsStreamLayer) acceptLoop() {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			l.closeOnce.Do(func() { l.err = err; close(l.done) })
			return
		}
		select {
		case l.handshake <- struct{}{}:
			go l.serverHandshake(c)
		default:
			l.log.Warn("raft tls: too many handshakes in flight; dropping connection", "remote", c.RemoteAddr().String())
			_ = c.Close()
		}
	}
}

func (l *tlsStreamLayer) serverHandshake(c net.Conn) {
	defer func() { <-l.handshake }()
	tc := tls.Server(c, l.config)
	_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
	if err := tc.Handshake(); err != nil {
		l.log.Warn("raft tls: refused connection", "remote", c.RemoteAddr().String(), "err", err)
		_ = tc.Close()
		return
	}
	_ = tc.SetDeadline(time.Time{})
	select {
	case l.conns <- tc:
	case <-l.done:
		_ = tc.Close()
	}
}

// Accept returns the next connection whose handshake succeeded.
func (l *tlsStreamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, l.err
	}
}

// Close stops accepting.
func (l *tlsStreamLayer) Close() error {
	err := l.ln.Close()
	l.closeOnce.Do(func() { l.err = net.ErrClosed; close(l.done) })
	return err
}

// Addr is the advertised address, what peers dial.
func (l *tlsStreamLayer) Addr() net.Addr { return l.advertise }

// Dial opens a TLS connection to a peer, verifying it as a node.
func (l *tlsStreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	c, err := tls.DialWithDialer(d, "tcp", string(address), l.config)
	if err != nil {
		return nil, fmt.Errorf("raft tls dial %s: %w", address, err)
	}
	return c, nil
}

// newRaftTransport is raft's transport: plain TCP without TLS, mutual TLS
// between node certificates with it.
// Either way the layer can be cut (see cuttableLayer).
func (n *Node) newRaftTransport(adv net.Addr, cfg *raft.NetworkTransportConfig) (*raft.NetworkTransport, error) {
	var layer raft.StreamLayer
	var err error
	if n.cfg.TLS == nil {
		layer, err = newTCPLayer(n.cfg.RaftAddr, adv)
	} else {
		layer, err = newTLSStreamLayer(n.cfg.RaftAddr, adv, n.cfg.TLS.PeerConfig(), n.log.With("component", "raft-tls"))
	}
	if err != nil {
		return nil, err
	}
	n.raftLayer = newCuttableLayer(layer)
	cfg.Stream = n.raftLayer
	return raft.NewNetworkTransportWithConfig(cfg), nil
}

// grpcServerCreds makes the gRPC server require a client certificate from
// the cluster CA (relays' and nodes'); without TLS it adds nothing.
func (n *Node) grpcServerCreds() []grpc.ServerOption {
	if n.cfg.TLS == nil {
		return nil
	}
	return []grpc.ServerOption{
		grpc.Creds(credentials.NewTLS(n.cfg.TLS.ServerConfig(true))),
		grpc.ChainUnaryInterceptor(nodesOnly),
	}
}

// nodeOnlyMethods change the cluster itself or bypass the game service:
// with TLS on, only a node's certificate may call them, not a relay's
// (relays play the game; they do not move leadership, nor append commands
// of their own making, a chosen secret word, say, to the log).
var nodeOnlyMethods = map[string]bool{
	hangmanv1.ClusterService_TransferLeadership_FullMethodName: true,
	hangmanv1.ReplicaService_Propose_FullMethodName:            true,
}

// nodesOnly refuses nodeOnlyMethods to callers without a node certificate.
func nodesOnly(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if nodeOnlyMethods[info.FullMethod] {
		p, ok := peer.FromContext(ctx)
		tlsInfo, isTLS := credentials.TLSInfo{}, false
		if ok {
			tlsInfo, isTLS = p.AuthInfo.(credentials.TLSInfo)
		}
		if !isTLS {
			return nil, status.Error(codes.PermissionDenied, "only game nodes may call "+info.FullMethod)
		}
		if err := tlsutil.VerifyNodePeer(tlsInfo.State); err != nil {
			return nil, status.Errorf(codes.PermissionDenied, "only game nodes may call %s: %v", info.FullMethod, err)
		}
	}
	return handler(ctx, req)
}

// grpcClientCreds are the credentials of the node's gRPC clients (to the
// leader, to non-voters): its node certificate, verifying the peer as a
// node; plaintext without TLS.
func (n *Node) grpcClientCreds() credentials.TransportCredentials {
	if n.cfg.TLS == nil {
		return insecure.NewCredentials()
	}
	return credentials.NewTLS(n.cfg.TLS.ClientConfig())
}
