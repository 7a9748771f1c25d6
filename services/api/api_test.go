package api

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
	"github.com/hangman/hangman/services/game"
)

// table is a room "r" with alice seated (and her token) and bob seated.
type table struct {
	cl          hangmanv1.GameServiceClient
	rep         *fakeReplica
	alice, bob  string // tokens
	aliceJoined *hangmanv1.JoinRoomResponse
}

func newTable(t *testing.T, opts ...Option) *table {
	t.Helper()
	rep := newFakeReplica(true)
	tb := &table{cl: client(t, rep, opts...), rep: rep}
	ctx := ctxT(t)
	if _, err := tb.cl.CreateRoom(ctx, &hangmanv1.CreateRoomRequest{Room: "r", MaxWrong: 26}); err != nil {
		t.Fatal(err)
	}
	var err error
	if tb.aliceJoined, err = tb.cl.JoinRoom(ctx, &hangmanv1.JoinRoomRequest{Room: "r", PlayerId: "alice", Name: "Alice"}); err != nil {
		t.Fatal(err)
	}
	tb.alice = tb.aliceJoined.GetToken()
	bob, err := tb.cl.JoinRoom(ctx, &hangmanv1.JoinRoomRequest{Room: "r", PlayerId: "bob", Name: "Bob"})
	if err != nil {
		t.Fatal(err)
	}
	tb.bob = bob.GetToken()
	return tb
}

func wantCode(t *testing.T, what string, err error, code codes.Code) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("%s: %v, want %v", what, err, code)
	}
}

// TestJoinGivesASecretToken checks what a join returns: a random token of
// at least 128 bits, a new one for every seat, and new_seat only for the
// call that took the seat.
func TestJoinGivesASecretToken(t *testing.T) {
	tb := newTable(t)
	if !game.ValidToken(tb.alice) || len(tb.alice) < 22 || tb.alice == tb.bob || !tb.aliceJoined.GetNewSeat() {
		t.Fatalf("tokens %q and %q, new seat %v", tb.alice, tb.bob, tb.aliceJoined.GetNewSeat())
	}
	again, err := tb.cl.JoinRoom(ctxT(t), &hangmanv1.JoinRoomRequest{Room: "r", PlayerId: "alice", Name: "Alice", Token: tb.alice})
	if err != nil || again.GetToken() != tb.alice || again.GetNewSeat() {
		t.Fatalf("rejoin: %+v, %v", again, err)
	}
}

// TestImpersonationIsPermissionDenied is issue 17's attack over gRPC: a
// client that knows alice's (public) player id tries to join as her,
// rename her, guess and start a round as her, with no token, a made-up
// one, a malformed one and bob's. Every call is PERMISSION_DENIED and
// alice's seat is as it was.
func TestImpersonationIsPermissionDenied(t *testing.T) {
	tb := newTable(t)
	ctx := ctxT(t)
	if _, err := tb.cl.Guess(ctx, &hangmanv1.GuessRequest{Room: "r", PlayerId: "alice", Letter: "e", Token: tb.alice}); err != nil {
		t.Fatal(err)
	}
	before, err := tb.cl.GetRoom(ctx, &hangmanv1.GetRoomRequest{Room: "r"})
	if err != nil {
		t.Fatal(err)
	}
	forged := NewToken()
	for i, token := range []string{"", forged, "not a token", tb.bob} {
		wantCode(t, "join as alice with token "+token, func() error {
			_, err := tb.cl.JoinRoom(ctx, &hangmanv1.JoinRoomRequest{Room: "r", PlayerId: "alice", Name: "Mallory", Token: token, RequestId: fmt.Sprint("j-", i)})
			return err
		}(), codes.PermissionDenied)
		wantCode(t, "guess as alice with token "+token, func() error {
			_, err := tb.cl.Guess(ctx, &hangmanv1.GuessRequest{Room: "r", PlayerId: "alice", Letter: "a", Token: token})
			return err
		}(), codes.PermissionDenied)
		wantCode(t, "new round as alice with token "+token, func() error {
			_, err := tb.cl.NewRound(ctx, &hangmanv1.NewRoundRequest{Room: "r", PlayerId: "alice", Token: token})
			return err
		}(), codes.PermissionDenied)
	}
	after, err := tb.cl.GetRoom(ctx, &hangmanv1.GetRoomRequest{Room: "r"})
	if err != nil {
		t.Fatal(err)
	}
	if after.GetState().GetSeq() != before.GetState().GetSeq() || after.GetState().GetPlayers()[0].GetName() != "Alice" {
		t.Fatalf("the attempts changed the room:\nbefore %v\nafter  %v", before.GetState(), after.GetState())
	}
}

// TestForgedRequestIDIsNotBurned is issue 17's request id attack: the
// attacker sends a guess as alice with the request id she will use next;
// it is refused, and alice's own guess with that id is applied, not
// answered as a duplicate.
func TestForgedRequestIDIsNotBurned(t *testing.T) {
	tb := newTable(t)
	ctx := ctxT(t)
	for _, token := range []string{"", NewToken()} {
		_, err := tb.cl.Guess(ctx, &hangmanv1.GuessRequest{Room: "r", PlayerId: "alice", Letter: "z", RequestId: "alice-2", Token: token})
		wantCode(t, "forged guess", err, codes.PermissionDenied)
	}
	// A guess by bob as himself with alice's next id is his own.
	if r, err := tb.cl.Guess(ctx, &hangmanv1.GuessRequest{Room: "r", PlayerId: "bob", Letter: "q", RequestId: "alice-2", Token: tb.bob}); err != nil || r.GetDuplicate() {
		t.Fatalf("bob's guess: %+v, %v", r, err)
	}
	g, err := tb.cl.Guess(ctx, &hangmanv1.GuessRequest{Room: "r", PlayerId: "alice", Letter: "e", RequestId: "alice-2", Token: tb.alice})
	if err != nil || g.GetDuplicate() || g.GetState().GetLastGuess().GetLetter() != "e" {
		t.Fatalf("alice's guess after the forgeries: %+v, %v", g, err)
	}
	again, err := tb.cl.Guess(ctx, &hangmanv1.GuessRequest{Room: "r", PlayerId: "alice", Letter: "e", RequestId: "alice-2", Token: tb.alice})
	if err != nil || !again.GetDuplicate() || again.GetIndex() != g.GetIndex() {
		t.Fatalf("alice's retry: %+v, %v", again, err)
	}
}

// TestJoinWithOwnTokenIsRetrySafe checks the two kinds of first join: one
// that brings its own token can be retried with its request id and gets
// the seat; one that brings none and lost its answer cannot, since its
// seat is held by a token nobody received.
func TestJoinWithOwnTokenIsRetrySafe(t *testing.T) {
	tb := newTable(t)
	ctx := ctxT(t)
	own := NewToken()
	req := &hangmanv1.JoinRoomRequest{Room: "r", PlayerId: "carol", Name: "Carol", RequestId: "c-1", Token: own}
	first, err := tb.cl.JoinRoom(ctx, req)
	if err != nil || first.GetToken() != own || !first.GetNewSeat() {
		t.Fatalf("join with an own token: %+v, %v", first, err)
	}
	retry, err := tb.cl.JoinRoom(ctx, req)
	if err != nil || retry.GetToken() != own || retry.GetNewSeat() {
		t.Fatalf("its retry: %+v, %v", retry, err)
	}
	lost := &hangmanv1.JoinRoomRequest{Room: "r", PlayerId: "dave", Name: "Dave", RequestId: "d-1"}
	if _, err := tb.cl.JoinRoom(ctx, lost); err != nil {
		t.Fatal(err)
	}
	_, err = tb.cl.JoinRoom(ctx, lost)
	wantCode(t, "retry of a join without a token", err, codes.PermissionDenied)
}

// TestInvalidInputBeforeTokens checks that a malformed command is
// INVALID_ARGUMENT whatever its token, as it would be with the right one.
func TestInvalidInputBeforeTokens(t *testing.T) {
	tb := newTable(t)
	ctx := ctxT(t)
	for _, token := range []string{"", tb.alice} {
		_, err := tb.cl.Guess(ctx, &hangmanv1.GuessRequest{Room: "r", PlayerId: "alice", Letter: "ab", Token: token})
		wantCode(t, "two letters", err, codes.InvalidArgument)
	}
	_, err := tb.cl.NewRound(ctx, &hangmanv1.NewRoundRequest{Room: "r", Token: tb.alice})
	wantCode(t, "new round of nobody", err, codes.InvalidArgument)
}

// TestTokensStayOutOfTheLog checks that no proposed command holds a token,
// only its hash.
func TestTokensStayOutOfTheLog(t *testing.T) {
	tb := newTable(t)
	if _, err := tb.cl.Guess(ctxT(t), &hangmanv1.GuessRequest{Room: "r", PlayerId: "alice", Letter: "e", Token: tb.alice}); err != nil {
		t.Fatal(err)
	}
	tb.rep.mu.Lock()
	defer tb.rep.mu.Unlock()
	hashed := 0
	for _, cmd := range tb.rep.entries {
		for _, token := range []string{tb.alice, tb.bob} {
			if bytes.Contains(cmd, []byte(token)) {
				t.Fatalf("a log entry holds a token: %q", cmd)
			}
			if bytes.Contains(cmd, []byte(game.HashToken(token))) {
				hashed++
			}
		}
	}
	if hashed != 3 {
		t.Fatalf("%d entries hold a token's hash, want the 2 joins and the guess", hashed)
	}
}

// TestLimitsAreStamped checks that the service's caps reach the rules.
func TestLimitsAreStamped(t *testing.T) {
	tb := newTable(t, WithLimits(Limits{MaxRooms: 2, MaxPlayers: 2}))
	ctx := ctxT(t)
	_, err := tb.cl.JoinRoom(ctx, &hangmanv1.JoinRoomRequest{Room: "r", PlayerId: "carol", Name: "Carol"})
	wantCode(t, "third player", err, codes.FailedPrecondition)
	if _, err := tb.cl.CreateRoom(ctx, &hangmanv1.CreateRoomRequest{Room: "second"}); err != nil {
		t.Fatal(err)
	}
	_, err = tb.cl.CreateRoom(ctx, &hangmanv1.CreateRoomRequest{Room: "third"})
	wantCode(t, "third room", err, codes.FailedPrecondition)
}

// TestEveryRefusalHasItsStatus checks that each code of the rules maps to
// a gRPC status of its own, never Internal: a code added without its
// status would tell clients "the cluster failed" instead of what to do.
func TestEveryRefusalHasItsStatus(t *testing.T) {
	want := map[game.Code]codes.Code{
		game.CodeInvalid:      codes.InvalidArgument,
		game.CodeNotFound:     codes.NotFound,
		game.CodeExists:       codes.AlreadyExists,
		game.CodePrecondition: codes.FailedPrecondition,
		game.CodePermission:   codes.PermissionDenied,
		game.CodeBusy:         codes.ResourceExhausted,
	}
	for c := game.Code(1); c.String() != fmt.Sprintf("code(%d)", uint8(c)); c++ {
		w, ok := want[c]
		if !ok {
			t.Errorf("code %v has no expected status here", c)
			continue
		}
		if got := status.Code(toStatus(&game.Error{Code: c, Msg: "m"})); got != w {
			t.Errorf("code %v maps to %v, want %v", c, got, w)
		}
	}
}

// TestBusyRoomRefusesRatherThanForgets floods one room with requests, as a
// hostile client holding a seat could: once the room remembers SessionCap
// answers younger than game.SessionMinAge, further requests are refused
// RESOURCE_EXHAUSTED, saying that resending is safe, and the first
// request's answer is still its answer (guarantee 2).
func TestBusyRoomRefusesRatherThanForgets(t *testing.T) {
	tb := newTable(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	first, err := tb.cl.Guess(ctx, &hangmanv1.GuessRequest{Room: "r", PlayerId: "alice", Letter: "e", Token: tb.alice, RequestId: "first"})
	if err != nil {
		t.Fatal(err)
	}
	// The flood goes to a Service over the same replica in-process: what
	// fills the room is the replica, and gRPC under the race detector
	// would make the flood slow enough to outlast the answers' SessionMinAge.
	flood := New(tb.rep, slog.New(slog.DiscardHandler))
	var busy error
	for i := range game.SessionCap {
		_, err := flood.JoinRoom(ctx, &hangmanv1.JoinRoomRequest{Room: "r", PlayerId: "alice", Name: "Alice", Token: tb.alice, RequestId: fmt.Sprintf("flood-%d", i)})
		if err != nil {
			busy = err
			if i < game.SessionCap-8 {
				t.Fatalf("refused after %d requests, want about %d: %v", i, game.SessionCap, err)
			}
			break
		}
	}
	wantCode(t, "a request past SessionCap young answers", busy, codes.ResourceExhausted)
	if msg := status.Convert(busy).Message(); !bytes.Contains([]byte(msg), []byte("same id")) {
		t.Fatalf("busy refusal %q does not say resending with the same id is safe", msg)
	}
	again, err := tb.cl.Guess(ctx, &hangmanv1.GuessRequest{Room: "r", PlayerId: "alice", Letter: "e", Token: tb.alice, RequestId: "first"})
	if err != nil || !again.GetDuplicate() || again.GetOutcome() != first.GetOutcome() {
		t.Fatalf("the first request after the flood: %+v, %v; want its first answer (%v) as a duplicate", again, err, first.GetOutcome())
	}
}
