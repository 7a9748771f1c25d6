package raftnode

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hangman/hangman/internal/harness"
	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
	"github.com/hangman/hangman/services/game"
)

// TestGuessesStreamCarriesConcurrentGuesses sends many guesses at once
// over one stream to a follower: each is answered once, with its own
// outcome, and every room ends up with exactly the letters sent to it.
func TestGuessesStreamCarriesConcurrentGuesses(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.leader()
	follower := (leader + 1) % 3
	const rooms = 6
	// Rare letters: no word of the list is made of them alone, so no
	// round is won before every guess has landed (and ten wrong guesses
	// are far from the room's 26).
	letters := "jqxzvkwyfb"
	for _, w := range game.Words() {
		if strings.Trim(w, letters) == "" {
			t.Fatalf("the word %q is made of the test's letters %q alone: pick others", w, letters)
		}
	}
	for r := range rooms {
		setupRoom(t, c, follower, fmt.Sprintf("s%d", r))
	}
	cl := c.streamClient(follower)
	ctx := ctxT(t)
	type ack struct {
		room, letter string
		resp         *hangmanv1.GuessResponse
		err          error
	}
	acks := make(chan ack, rooms*len(letters))
	var wg sync.WaitGroup
	for r := range rooms {
		for _, l := range letters {
			wg.Go(func() {
				room := fmt.Sprintf("s%d", r)
				resp, err := cl.Guess(ctx, &hangmanv1.GuessRequest{Room: room, PlayerId: "alice", Letter: string(l), RequestId: room + "-" + string(l), Token: harness.TokenOf("alice")})
				acks <- ack{room, string(l), resp, err}
			})
		}
	}
	wg.Wait()
	close(acks)
	seen := map[string][]string{}
	indexes := map[string]map[uint64]bool{}
	for a := range acks {
		if a.err != nil {
			t.Fatalf("guess %s in %s: %v", a.letter, a.room, a.err)
		}
		if a.resp.GetDuplicate() || a.resp.GetIndex() == 0 || !slices.Contains(a.resp.GetState().GetGuessed(), a.letter) {
			t.Fatalf("guess %s in %s: answer %v is not this guess's", a.letter, a.room, a.resp)
		}
		if indexes[a.room] == nil {
			indexes[a.room] = map[uint64]bool{}
		}
		if indexes[a.room][a.resp.GetIndex()] {
			t.Fatalf("two guesses in %s answered with index %d", a.room, a.resp.GetIndex())
		}
		indexes[a.room][a.resp.GetIndex()] = true
		seen[a.room] = append(seen[a.room], a.letter)
	}
	for r := range rooms {
		room := fmt.Sprintf("s%d", r)
		got, err := c.client(leader).GetRoom(ctx, &hangmanv1.GetRoomRequest{Room: room, Consistency: hangmanv1.Consistency_CONSISTENCY_LINEARIZABLE})
		if err != nil {
			t.Fatal(err)
		}
		want := strings.Split(letters, "")
		have := slices.Clone(got.GetState().GetGuessed())
		slices.Sort(want)
		slices.Sort(have)
		if !slices.Equal(have, want) || len(seen[room]) != len(letters) {
			t.Fatalf("room %s guessed %v after %d acknowledged guesses, want %v", room, have, len(seen[room]), want)
		}
	}
}

// TestGuessesStreamEndsCleanly: a guess on a stream whose node died fails
// UNAVAILABLE and says to retry, a cancelled guess fails CANCELED, and the
// client opens a fresh stream once its node is back.
func TestGuessesStreamEndsCleanly(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.leader()
	follower := (leader + 1) % 3
	setupRoom(t, c, leader, "brk")
	cl := c.streamClient(follower)
	ctx := ctxT(t)
	if _, err := cl.Guess(ctx, &hangmanv1.GuessRequest{Room: "brk", PlayerId: "alice", Letter: "e", Token: harness.TokenOf("alice")}); err != nil {
		t.Fatal(err)
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := cl.Guess(cancelled, &hangmanv1.GuessRequest{Room: "brk", PlayerId: "alice", Letter: "t", Token: harness.TokenOf("alice")}); status.Code(err) != codes.Canceled {
		t.Fatalf("cancelled guess: %v, want CANCELED", err)
	}

	c.kill(follower)
	_, err := cl.Guess(ctx, &hangmanv1.GuessRequest{Room: "brk", PlayerId: "alice", Letter: "a", RequestId: "after-kill", Token: harness.TokenOf("alice")})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("guess to a dead node: %v, want UNAVAILABLE", err)
	}

	c.start(follower)
	c.leader()
	harness.Eventually(t, 15*time.Second, "a guess over a new stream", func() error {
		_, err := cl.Guess(ctx, &hangmanv1.GuessRequest{Room: "brk", PlayerId: "alice", Letter: "a", RequestId: "after-restart", Token: harness.TokenOf("alice")})
		return err
	})
}

// TestGuessesStreamAnswersMalformedRequests speaks the stream directly,
// as a client other than gameclient might: a request without a guess
// gets its own InvalidArgument answer, and the stream goes on.
func TestGuessesStreamAnswersMalformedRequests(t *testing.T) {
	c := newTestCluster(t, 1, nil)
	c.leader()
	setupRoom(t, c, 0, "raw")
	ctx := ctxT(t)
	st, err := c.client(0).Guesses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, req := range []*hangmanv1.GuessStreamRequest{
		{Tag: 7},
		{Tag: 8, Guess: &hangmanv1.GuessRequest{Room: "raw", PlayerId: "alice", Letter: "e", Token: harness.TokenOf("alice")}, TimeoutMs: 5000},
	} {
		if err := st.Send(req); err != nil {
			t.Fatal(err)
		}
	}
	got := map[uint64]*hangmanv1.GuessStreamResponse{}
	for len(got) < 2 {
		r, err := st.Recv()
		if err != nil {
			t.Fatalf("stream ended after %d answers: %v", len(got), err)
		}
		got[r.GetTag()] = r
	}
	if r := got[7]; codes.Code(r.GetCode()) != codes.InvalidArgument || r.GetMessage() == "" || r.GetGuess() != nil {
		t.Fatalf("request without a guess answered %v, want INVALID_ARGUMENT with a message", r)
	}
	if r := got[8]; r.GetCode() != 0 || r.GetGuess().GetIndex() == 0 {
		t.Fatalf("valid guess after a malformed one answered %v", r)
	}
	if err := st.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); err != io.EOF {
		t.Fatalf("after CloseSend the stream ends with %v, want EOF", err)
	}
}
