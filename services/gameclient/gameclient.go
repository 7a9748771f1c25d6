// Package gameclient is a GameService client for programs that speak for
// many players at once: a relay, a load generator. It sends every guess
// over one GameService.Guesses stream per connection instead of one unary
// call each, which is most of what a guess costs the caller and a good part
// of what it costs the node; every other method is the generated client's.
//
// Its Guess keeps the unary call's contract, so callers need not know: it
// returns the same response or the same gRPC status, honours the context's
// deadline and cancellation, and reports a guess caught in a broken stream
// as UNAVAILABLE with an unknown outcome, safe to retry with the same
// request id on any node. A guess that had not left when its stream broke
// is no such case: it goes on a fresh stream. The stream is opened on first
// use and again after it breaks.
//
// It is tested against real nodes, in raftnode (stream_test.go and the
// retry and bad-input tests, which run through both clients), and through
// the relay's tests; its own test holds it to the broken-stream contract.
package gameclient

import (
	"context"
	"math"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
)

// New returns a GameServiceClient on cc whose Guess rides a shared stream.
// Its Guess ignores call options: the stream's are the connection's.
func New(cc grpc.ClientConnInterface) hangmanv1.GameServiceClient {
	gc := hangmanv1.NewGameServiceClient(cc)
	return &client{GameServiceClient: gc, mux: &mux{gc: gc}}
}

type client struct {
	hangmanv1.GameServiceClient
	mux *mux
}

// Guess commits one guess over the connection's Guesses stream.
func (c *client) Guess(ctx context.Context, req *hangmanv1.GuessRequest, _ ...grpc.CallOption) (*hangmanv1.GuessResponse, error) {
	return c.mux.guess(ctx, req)
}

// mux owns the connection's current stream.
type mux struct {
	gc  hangmanv1.GameServiceClient
	mu  sync.Mutex
	cur *stream
}

// stream is one open Guesses stream and the guesses waiting on it.
type stream struct {
	s      hangmanv1.GameService_GuessesClient
	cancel context.CancelFunc
	sendMu sync.Mutex // a gRPC stream takes one sender at a time

	mu      sync.Mutex
	next    uint64
	pending map[uint64]chan answer
	broken  error // set once; no guess joins the stream after
}

type answer struct {
	resp *hangmanv1.GuessResponse
	err  error
}

// maxResends bounds how often a guess that never left is sent again on a
// fresh stream, should stream after stream break before it goes out.
const maxResends = 3

func (m *mux) guess(ctx context.Context, req *hangmanv1.GuessRequest) (*hangmanv1.GuessResponse, error) {
	for tries := 0; ; tries++ {
		st, err := m.stream(ctx)
		if err != nil {
			return nil, err
		}
		resp, sent, err := st.guess(ctx, req)
		if sent || tries == maxResends {
			return resp, err
		}
	}
}

// guess sends req on st and waits for its answer. sent is false when the
// stream broke before req left, so that nothing of it reached the node and
// it can go again on a fresh stream without being a retry.
func (st *stream) guess(ctx context.Context, req *hangmanv1.GuessRequest) (resp *hangmanv1.GuessResponse, sent bool, err error) {
	tag, ch, ok := st.register()
	if !ok {
		return nil, false, status.Error(codes.Unavailable, "the guess stream had ended before the guess was sent")
	}
	sreq := &hangmanv1.GuessStreamRequest{Tag: tag, Guess: req}
	if d, ok := ctx.Deadline(); ok {
		// Rounded up: the node must not give up on a guess before its
		// caller does, or the caller would hear "outcome unknown" where
		// its own deadline says the call simply ran out of time.
		ms := (time.Until(d) + time.Millisecond - 1) / time.Millisecond
		sreq.TimeoutMs = uint32(min(max(ms, 1), math.MaxUint32))
	}
	st.sendMu.Lock()
	err = st.s.Send(sreq)
	st.sendMu.Unlock()
	if err != nil {
		// The stream had ended: gRPC queues nothing on an ended stream,
		// so the guess never left. The receiver learns why the stream
		// ended and answers the guesses that did leave.
		st.forget(tag)
		st.cancel()
		return nil, false, status.Errorf(codes.Unavailable, "the guess stream ended before the guess was sent: %v", err)
	}
	select {
	case a := <-ch:
		return a.resp, true, a.err
	case <-ctx.Done():
		st.forget(tag)
		return nil, true, status.FromContextError(ctx.Err()).Err()
	}
}

// stream returns the open stream, opening one if there is none or the last
// one broke. Opening waits for the connection no longer than ctx allows.
func (m *mux) stream(ctx context.Context) (*stream, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if st := m.cur; st != nil && st.err() == nil {
		return st, nil
	}
	sctx, cancel := context.WithCancel(context.Background())
	stop := context.AfterFunc(ctx, cancel)
	s, err := m.gc.Guesses(sctx)
	if !stop() {
		// ctx ended while the stream was opening, and cancelled it.
		err = status.FromContextError(ctx.Err()).Err()
	}
	if err != nil {
		cancel()
		return nil, err
	}
	st := &stream{s: s, cancel: cancel, pending: make(map[uint64]chan answer)}
	go st.receive()
	m.cur = st
	return st, nil
}

func (st *stream) err() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.broken
}

// register gives a new guess its tag and the channel its answer comes on;
// ok is false if the stream has broken.
func (st *stream) register() (tag uint64, ch chan answer, ok bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.broken != nil {
		return 0, nil, false
	}
	st.next++
	ch = make(chan answer, 1)
	st.pending[st.next] = ch
	return st.next, ch, true
}

// forget drops a guess whose caller stopped waiting.
func (st *stream) forget(tag uint64) {
	st.mu.Lock()
	delete(st.pending, tag)
	st.mu.Unlock()
}

// receive hands each answer to its guess until the stream ends, then fails
// every guess still waiting.
func (st *stream) receive() {
	for {
		r, err := st.s.Recv()
		if err != nil {
			st.fail(err)
			return
		}
		st.mu.Lock()
		ch, ok := st.pending[r.GetTag()]
		delete(st.pending, r.GetTag())
		st.mu.Unlock()
		if !ok {
			continue // its caller gave up
		}
		if code := codes.Code(r.GetCode()); code != codes.OK {
			ch <- answer{err: status.Error(code, r.GetMessage())}
		} else {
			ch <- answer{resp: r.GetGuess()}
		}
	}
}

// fail marks the stream broken and answers every waiting guess: each may
// or may not have been committed.
func (st *stream) fail(cause error) {
	st.cancel()
	err := status.Errorf(codes.Unavailable, "outcome unknown: the guess stream ended (%v); retry with the same request_id", cause)
	st.mu.Lock()
	st.broken = err
	pending := st.pending
	st.pending = nil
	st.mu.Unlock()
	for _, ch := range pending {
		ch <- answer{err: err}
	}
}
