package api

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/hangman/hangman/internal/grpctest"
	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
	"github.com/hangman/hangman/services/game"
)

// fakeReplica is the consensus layer of these tests, scripted: it leads or
// not as the test says, knows a leader elsewhere when conn is set, and
// answers what is proposed (while leading) or forwarded (while following)
// from answers, in turn, the last one repeating. With no answers it applies
// the commands to its machine at consecutive indexes, as a one-node cluster
// would. It records every command that reached it.
type fakeReplica struct {
	mu     sync.Mutex
	leader bool
	// conn is the leader's connection, handed out while this replica does
	// not lead; nil means no leader is known.
	conn    *grpc.ClientConn
	changed chan struct{}
	answers []answer
	m       *game.Machine
	index   uint64
	// attempts records each command proposed or forwarded, as
	// "propose <request id>" or "forward <request id>"; entries holds
	// their bytes, as they would enter the log.
	attempts []string
	entries  [][]byte
	// reads counts the reads of the machine.
	reads int
	// refused is closed when a proposal first meets "not the leader".
	refused     chan struct{}
	refusedOnce sync.Once
	// caughtUp, when set, is a leader that has not yet applied its own
	// term's first entry: LeaderRead waits until it is closed. waiting is
	// closed when a LeaderRead first waits.
	caughtUp    chan struct{}
	waiting     chan struct{}
	waitingOnce sync.Once
}

// answer is one scripted answer of a fakeReplica.
type answer struct {
	res game.Result
	err error
	// stepDown makes the replica stop leading as it answers, as a leader
	// deposed while applying does.
	stepDown bool
}

func newFakeReplica(leader bool, answers ...answer) *fakeReplica {
	return &fakeReplica{leader: leader, changed: make(chan struct{}), answers: answers, m: game.New(), refused: make(chan struct{})}
}

// setLeader makes the replica lead (or not) and wakes waiters, as raft's
// leader observation does.
func (r *fakeReplica) setLeader(leader bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.setLeaderLocked(leader)
}

func (r *fakeReplica) setLeaderLocked(leader bool) {
	r.leader = leader
	close(r.changed)
	r.changed = make(chan struct{})
}

func (r *fakeReplica) Propose(_ context.Context, _ string, cmd []byte) (game.Result, uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.leader {
		r.refusedOnce.Do(func() { close(r.refused) })
		return game.Result{}, 0, ErrNotLeader
	}
	return r.answerLocked("propose", cmd)
}

func (r *fakeReplica) Forward(_ context.Context, _ string, cmd []byte) (game.Result, uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.leader {
		return game.Result{}, 0, fmt.Errorf("forward called on the leader")
	}
	return r.answerLocked("forward", cmd)
}

// answerLocked records cmd and answers it: from the script, or by applying
// it to the machine.
func (r *fakeReplica) answerLocked(how string, cmd []byte) (game.Result, uint64, error) {
	c, err := game.DecodeCommand(cmd)
	if err != nil {
		return game.Result{}, 0, err
	}
	r.attempts = append(r.attempts, how+" "+c.RequestID)
	r.entries = append(r.entries, cmd)
	if len(r.answers) == 0 {
		r.index++
		return r.m.Apply(r.index, cmd), r.index, nil
	}
	a := r.answers[min(len(r.attempts), len(r.answers))-1]
	if a.stepDown {
		r.setLeaderLocked(false)
	}
	return a.res, a.res.Index, a.err
}

func (r *fakeReplica) ReadIndex(context.Context) error {
	if !r.IsLeader() {
		return ErrNotLeader
	}
	return nil
}

func (r *fakeReplica) LeaderRead(ctx context.Context) error {
	r.mu.Lock()
	leader, caughtUp := r.leader, r.caughtUp
	r.mu.Unlock()
	if !leader {
		return ErrNotLeader
	}
	if caughtUp == nil {
		return nil
	}
	r.waitingOnce.Do(func() { close(r.waiting) })
	select {
	case <-caughtUp:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *fakeReplica) IsLeader() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.leader
}

func (r *fakeReplica) Read(fn func(m *game.Machine)) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reads++
	fn(r.m)
	return r.m.Applied()
}

func (r *fakeReplica) LeaderChanged() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed
}

func (r *fakeReplica) LeaderConn() *grpc.ClientConn {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.leader {
		return nil
	}
	return r.conn
}

// record returns the attempts so far.
func (r *fakeReplica) record() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.attempts...)
}

// readCount returns the reads of the machine so far.
func (r *fakeReplica) readCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reads
}

// serve runs a Service over rep on a loopback gRPC server and returns a
// connection to it that marks its calls forwarded, as the connections
// behind a node's LeaderConn do.
func serve(t *testing.T, rep Replica, opts ...Option) *grpc.ClientConn {
	t.Helper()
	svc := New(rep, slog.New(slog.DiscardHandler), opts...)
	return grpctest.Serve(t, svc.Register, grpc.WithUnaryInterceptor(ForwardingInterceptor))
}

// client runs a Service over rep, as serve does, and returns a client of it
// as a relay would have: its calls are not forwarded ones.
func client(t *testing.T, rep Replica, opts ...Option) hangmanv1.GameServiceClient {
	t.Helper()
	svc := New(rep, slog.New(slog.DiscardHandler), opts...)
	return hangmanv1.NewGameServiceClient(grpctest.Serve(t, svc.Register))
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}
