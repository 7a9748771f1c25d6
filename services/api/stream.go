package api

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
)

// MaxStreamInflight bounds the guesses of one Guesses stream being
// committed at once, and MaxStreamGuesses those of all streams of the
// node. Beyond either the service stops reading the stream and HTTP/2
// flow control pushes back on the sender, so the work and memory that
// streams can queue on a node stay bounded however many a client opens.
const (
	MaxStreamInflight = 256
	MaxStreamGuesses  = 8192
)

// Guesses commits the guesses of one stream concurrently, each exactly as
// Guess would, and answers each as it finishes. Many guesses share the
// stream's HTTP/2 stream and its framing, which is most of what a unary
// call costs both ends.
func (s *Service) Guesses(stream hangmanv1.GameService_GuessesServer) error {
	ctx := stream.Context()
	// Each guess's worker sends its own answer (a stream takes one sender
	// at a time); after a failed send the rest are dropped: the caller is
	// gone and treats them as unknown.
	var (
		sendMu  sync.Mutex
		sendErr error
	)
	answer := func(a *hangmanv1.GuessStreamResponse) {
		sendMu.Lock()
		defer sendMu.Unlock()
		if sendErr == nil {
			sendErr = stream.Send(a)
		}
	}
	slots := make(chan struct{}, MaxStreamInflight)
	release := func() {
		<-slots
		<-s.streamGuesses
	}
	var wg sync.WaitGroup
	recvErr := func() error {
		for {
			req, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return status.FromContextError(ctx.Err()).Err()
			}
			select {
			case s.streamGuesses <- struct{}{}:
			case <-ctx.Done():
				<-slots
				return status.FromContextError(ctx.Err()).Err()
			}
			wg.Add(1)
			s.workers.run(func() {
				defer wg.Done()
				defer release()
				answer(s.streamGuess(ctx, req))
			})
		}
	}()
	wg.Wait()
	if sendErr != nil {
		return sendErr
	}
	return recvErr
}

// streamGuess answers one guess of a stream.
func (s *Service) streamGuess(ctx context.Context, req *hangmanv1.GuessStreamRequest) *hangmanv1.GuessStreamResponse {
	if ms := req.GetTimeoutMs(); ms > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(ms)*time.Millisecond)
		defer cancel()
	}
	out := &hangmanv1.GuessStreamResponse{Tag: req.GetTag()}
	if req.GetGuess() == nil {
		out.Code, out.Message = int32(codes.InvalidArgument), "guess missing"
		return out
	}
	res, err := s.Guess(ctx, req.GetGuess())
	if err != nil {
		st := status.Convert(toStatus(err))
		out.Code, out.Message = int32(st.Code()), st.Message()
		return out
	}
	out.Guess = res
	return out
}

// workerIdle is how long a stream worker waits for its next guess before it
// exits.
const workerIdle = 10 * time.Second

// workers run the guesses of streams. A guess goes through the service,
// the batcher and raft on a deep stack; on a fresh goroutine that stack
// grows, by copying, for every guess, which cost a busy node more than
// decoding the guess. Workers live on between guesses, so their stacks
// grow once. There are never more than guesses in flight
// (MaxStreamGuesses), and a worker idle for workerIdle exits.
type workers struct {
	jobs chan func()
}

// run hands f to an idle worker, or to a new one if none is idle.
func (w *workers) run(f func()) {
	select {
	case w.jobs <- f:
	default:
		go w.work(f)
	}
}

func (w *workers) work(f func()) {
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		f()
		idle.Reset(workerIdle)
		select {
		case f = <-w.jobs:
		case <-idle.C:
			return
		}
	}
}
