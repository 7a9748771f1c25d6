package gameclient

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hangman/hangman/internal/grpctest"
	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
)

// shortStreams is a GameService whose every Guesses stream answers one
// guess and then ends, the way a stream ends when its node drains: the
// client keeps meeting streams that break under it. It records the request
// ids it received.
type shortStreams struct {
	hangmanv1.UnimplementedGameServiceServer
	mu   sync.Mutex
	seen map[string]bool
}

func (s *shortStreams) Guesses(st grpc.BidiStreamingServer[hangmanv1.GuessStreamRequest, hangmanv1.GuessStreamResponse]) error {
	req, err := st.Recv()
	if err != nil {
		return nil
	}
	s.mu.Lock()
	s.seen[req.GetGuess().GetRequestId()] = true
	s.mu.Unlock()
	return st.Send(&hangmanv1.GuessStreamResponse{Tag: req.GetTag(), Guess: &hangmanv1.GuessResponse{Index: 1}})
}

func (s *shortStreams) received(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[id]
}

// TestGuessThatNeverLeftIsNotUnknown checks the contract on broken
// streams: "outcome unknown" is for a guess that may have reached the node.
// A guess that picked up a stream a moment before it broke, and so never
// left, is not sent on the dead stream and not reported as unknown; the
// client sends it on a fresh stream instead.
func TestGuessThatNeverLeftIsNotUnknown(t *testing.T) {
	srv := &shortStreams{seen: map[string]bool{}}
	cc := grpctest.Serve(t, func(s grpc.ServiceRegistrar) { hangmanv1.RegisterGameServiceServer(s, srv) })
	m := New(cc).(*client).mux
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	guess := func(id string) *hangmanv1.GuessRequest {
		return &hangmanv1.GuessRequest{Room: "r", PlayerId: "p", Letter: "a", RequestId: id}
	}

	if _, err := m.guess(ctx, guess("first")); err != nil {
		t.Fatalf("first guess: %v", err)
	}
	// The server has ended that stream; wait until the client knows.
	old := m.cur
	for old.err() == nil {
		select {
		case <-ctx.Done():
			t.Fatal("the client never saw its stream end")
		case <-time.After(time.Millisecond):
		}
	}

	_, sent, err := old.guess(ctx, guess("late"))
	if sent {
		t.Fatal("a guess was sent on a stream known to be broken")
	}
	if status.Code(err) != codes.Unavailable || strings.Contains(err.Error(), "outcome unknown") {
		t.Errorf("a guess that never left got %v, want UNAVAILABLE that does not claim an unknown outcome", err)
	}
	if srv.received("late") {
		t.Error("the server received a guess the client says never left")
	}

	if _, err := m.guess(ctx, guess("late")); err != nil {
		t.Fatalf("the same guess on a fresh stream: %v", err)
	}
	if m.cur == old || !srv.received("late") {
		t.Error("the guess did not go on a fresh stream")
	}
}
