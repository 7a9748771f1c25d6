package raftnode

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
	"github.com/hangman/hangman/services/api"
	"github.com/hangman/hangman/services/game"
)

// The Node is the api.Replica of its gRPC game service.
var _ api.Replica = (*Node)(nil)

// enqueueTimeout bounds how long a proposal waits to enter raft's queue.
const enqueueTimeout = 2 * time.Second

// Propose commits an encoded command addressed to room and returns its
// result; under load it shares its log entry with other rooms' commands
// (batcher.go). Its duration is the hangman_apply_seconds histogram.
func (n *Node) Propose(ctx context.Context, room string, cmd []byte) (game.Result, uint64, error) {
	start := time.Now()
	res, index, err := n.propose(ctx, room, cmd)
	n.metrics.observeApply(time.Since(start), err)
	return res, index, err
}

func (n *Node) propose(ctx context.Context, room string, cmd []byte) (game.Result, uint64, error) {
	if n.raft.State() != raft.Leader {
		return game.Result{}, 0, api.ErrNotLeader
	}
	defer n.stall.inflight.add(1, time.Now())()
	r := n.batcher.propose(ctx, room, cmd)
	return r.res, r.index, r.err
}

// admit is the leader's check, as an encoded command is about to enter a
// log entry, that its room is not flooded by its sender
// (game.Machine.Admit): nil, or the busy refusal to answer instead. The
// command never reaches the log, so its request id stays unanswered and
// may be sent again.
func (n *Node) admit(cmd []byte) error {
	c, err := game.DecodeCommand(cmd)
	if err != nil {
		return nil // refused by the state machine, the same on every replica
	}
	n.fsm.mu.RLock()
	defer n.fsm.mu.RUnlock()
	return n.fsm.machine.Admit(c)
}

// ReadIndex confirms leadership and waits until everything committed before
// the call is applied here (the read-index protocol of the Raft
// dissertation, §6.4).
func (n *Node) ReadIndex(ctx context.Context) error {
	// A new leader's commit index is only known once an entry of its own
	// term has committed.
	if err := n.LeaderRead(ctx); err != nil {
		return err
	}
	commit := n.raft.CommitIndex()
	if err := awaitFuture(ctx, n.raft.VerifyLeader()); err != nil {
		if ctx.Err() != nil {
			return err
		}
		return api.ErrNotLeader
	}
	for {
		wait, applied := n.fsm.waitApplied()
		if applied >= commit {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wait:
		}
	}
}

// LeaderRead waits until this node leads and has applied its own term's
// first entry (the marker becomeLeader commits), and with it everything
// earlier leaders committed.
func (n *Node) LeaderRead(ctx context.Context) error {
	for {
		changed := n.LeaderChanged()
		if n.raft.State() != raft.Leader {
			return api.ErrNotLeader
		}
		if n.readyTerm.Load() == n.raft.CurrentTerm() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// IsLeader reports whether this node is the raft leader.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Read runs fn against the local state machine.
func (n *Node) Read(fn func(m *game.Machine)) uint64 {
	n.fsm.mu.RLock()
	defer n.fsm.mu.RUnlock()
	fn(n.fsm.machine)
	return n.fsm.lastIndex
}

// LeaderChanged returns a channel closed at the next leadership change.
func (n *Node) LeaderChanged() <-chan struct{} { return n.leaderChanged.next() }

// LeaderConn returns a connection to the leader's gRPC server, or nil when
// this node leads or no leader is known.
func (n *Node) LeaderConn() *grpc.ClientConn {
	_, id := n.raft.LeaderWithID()
	if id == "" || id == n.ident.raftID {
		return nil
	}
	m, ok := n.members.byRaftID(id)
	if !ok || m.GRPC == "" {
		return nil
	}
	addr := m.GRPC
	conn, err := n.conns.get(addr)
	if err != nil {
		n.log.Warn("dial leader", "leader", id, "addr", addr, "err", err)
		return nil
	}
	return conn
}

// connPool keeps one client connection per peer gRPC address.
type connPool struct {
	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
	creds credentials.TransportCredentials // the node's certificate, or plaintext
}

func newConnPool(creds credentials.TransportCredentials) *connPool {
	return &connPool{conns: make(map[string]*grpc.ClientConn), creds: creds}
}

func (p *connPool) get(addr string) (*grpc.ClientConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.conns[addr]; ok {
		return c, nil
	}
	c, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(p.creds),
		grpc.WithUnaryInterceptor(api.ForwardingInterceptor))
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	p.conns[addr] = c
	return c, nil
}

func (p *connPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for addr, c := range p.conns {
		_ = c.Close()
		delete(p.conns, addr)
	}
}

// status asks member m for its raft status over gRPC, and checks that it
// answers as the node and raft server it gossips.
func (p *connPool) status(ctx context.Context, m member) (*hangmanv1.StatusResponse, error) {
	if m.GRPC == "" {
		return nil, fmt.Errorf("member %s gossips no gRPC address", m.ID)
	}
	conn, err := p.get(m.GRPC)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	st, err := hangmanv1.NewClusterServiceClient(conn).Status(ctx, &hangmanv1.StatusRequest{})
	if err != nil {
		return nil, fmt.Errorf("status of %s: %w", m.ID, err)
	}
	if st.GetNodeId() != m.ID {
		return nil, fmt.Errorf("member %s answers as %q", m.ID, st.GetNodeId())
	}
	// (A node from before raft ids were per data dir answers none, and
	// its raft id is its node id.)
	if st.GetRaftId() != string(m.RaftID) && (st.GetRaftId() != "" || string(m.RaftID) != m.ID) {
		return nil, fmt.Errorf("member %s gossips raft server id %s but answers as %q", m.ID, m.RaftID, st.GetRaftId())
	}
	return st, nil
}
