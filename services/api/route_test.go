package api

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
	"github.com/hangman/hangman/services/game"
)

var applied = answer{res: game.Result{Room: "r", Outcome: game.Outcome("hit"), Index: 7, State: game.State{Room: "r", Seq: 7}}}

// guess is p1's guess of "e" with request id id, carrying a well-formed
// token (the fake replica's script has no seats to check it against).
func guess(id string) *hangmanv1.GuessRequest {
	return &hangmanv1.GuessRequest{Room: "r", PlayerId: "p1", Letter: "e", RequestId: id, Token: NewToken()}
}

// elsewhere is a connection to a leader this node knows of. Writes never
// use it (the replica's Forward carries them), so it is never dialled.
func elsewhere(t *testing.T) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///leader.invalid:1", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// forwarded is ctx as a request forwarded by another node arrives.
func forwarded(ctx context.Context) context.Context {
	return metadata.NewIncomingContext(ctx, metadata.Pairs(forwardedKey, "1"))
}

// TestRouteWrite plays a guess against scripted replicas: a leader or a
// follower that knows the leader, answering from a script. It checks what
// the caller is told, and every attempt that reached the replica: which
// are retried (with the same request id), which are final, and when a
// duplicate is the call's own retry rather than the client's.
func TestRouteWrite(t *testing.T) {
	dup := applied
	dup.res.Duplicate = true
	refusal := &game.Error{Code: game.CodePrecondition, Msg: `player "p1" has not joined room "r"`}
	unknown := answer{err: ErrUnknownOutcome}
	lost := unknown
	lost.stepDown = true
	tests := []struct {
		name string
		// leader: the node leads; otherwise it knows a leader elsewhere,
		// unless noLeader.
		leader, noLeader bool
		answers          []answer
		// fromNode: the request was forwarded to this node by another.
		fromNode bool
		wantCode codes.Code
		// wantMsg is the whole message of a refusal, or words an
		// Unavailable answer must hold; wantNot, words it must not.
		wantMsg, wantNot string
		wantDup          bool
		wantAttempts     []string
	}{
		{
			name: "the leader applies it", leader: true, answers: []answer{applied},
			wantAttempts: []string{"propose g"},
		},
		{
			name: "a follower hands it to the leader", answers: []answer{applied},
			wantAttempts: []string{"forward g"},
		},
		{
			name: "a refusal by the rules at the leader is final", leader: true, answers: []answer{{res: game.Result{Room: "r", Err: refusal}}, applied},
			wantCode: codes.FailedPrecondition, wantMsg: refusal.Msg,
			wantAttempts: []string{"propose g"},
		},
		{
			name: "a refusal through the leader is final", answers: []answer{{res: game.Result{Room: "r", Err: refusal}}, applied},
			wantCode: codes.FailedPrecondition, wantMsg: refusal.Msg,
			wantAttempts: []string{"forward g"},
		},
		{
			name: "the leader's status through a follower is final", answers: []answer{{err: status.Error(codes.NotFound, `room "r" does not exist`)}, applied},
			wantCode: codes.NotFound, wantMsg: `room "r" does not exist`,
			wantAttempts: []string{"forward g"},
		},
		{
			name: "a failure of the replica is final, not retried", leader: true, answers: []answer{{err: errors.New("disk on fire")}, applied},
			wantCode: codes.Internal, wantMsg: "internal error: disk on fire",
			wantAttempts: []string{"propose g"},
		},
		{
			name: "not the leader any more: asked again", answers: []answer{{err: ErrNotLeader}, applied},
			wantAttempts: []string{"forward g", "forward g"},
		},
		{
			name: "the client's own retry is its duplicate", leader: true, answers: []answer{dup},
			wantDup: true, wantAttempts: []string{"propose g"},
		},
		{
			name: "after an unknown outcome the duplicate is the call's own", leader: true, answers: []answer{unknown, dup},
			wantAttempts: []string{"propose g", "propose g"},
		},
		{
			name: "after an unknown outcome through a follower the duplicate is the call's own", answers: []answer{unknown, dup},
			wantAttempts: []string{"forward g", "forward g"},
		},
		{
			name: "a leader that went away mid-call: the retry's duplicate is the call's own", answers: []answer{{err: status.Error(codes.Unavailable, "leader gone")}, dup},
			wantAttempts: []string{"forward g", "forward g"},
		},
		{
			name: "an unknown outcome, then no leader", leader: true, answers: []answer{lost},
			wantCode: codes.Unavailable, wantMsg: "unknown", wantNot: "not applied",
			wantAttempts: []string{"propose g"},
		},
		{
			name: "no leader at all", noLeader: true, answers: []answer{applied},
			wantCode: codes.Unavailable, wantMsg: "not applied",
		},
		{
			name: "forwarded to a node that no longer leads: not forwarded again", fromNode: true, answers: []answer{applied},
			wantCode: codes.Unavailable, wantMsg: "no longer leads",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep := newFakeReplica(tc.leader, tc.answers...)
			if !tc.leader && !tc.noLeader {
				rep.conn = elsewhere(t)
			}
			svc := New(rep, slog.New(slog.DiscardHandler), WithNoLeaderTimeout(100*time.Millisecond))
			ctx := ctxT(t)
			if tc.fromNode {
				ctx = forwarded(ctx)
			}
			resp, err := svc.Guess(ctx, guess("g"))
			if got := status.Code(err); got != tc.wantCode {
				t.Fatalf("answered %v, want code %v", err, tc.wantCode)
			}
			switch {
			case tc.wantCode == codes.OK:
				if resp.GetOutcome() != "hit" || resp.GetIndex() != 7 || resp.GetDuplicate() != tc.wantDup {
					t.Errorf("response %v, want the applied outcome at 7, duplicate %v", resp, tc.wantDup)
				}
			case tc.wantCode == codes.Unavailable:
				msg := status.Convert(err).Message()
				if !strings.Contains(msg, tc.wantMsg) || (tc.wantNot != "" && strings.Contains(msg, tc.wantNot)) {
					t.Errorf("message %q: want %q in it, and not %q", msg, tc.wantMsg, tc.wantNot)
				}
			default:
				if msg := status.Convert(err).Message(); msg != tc.wantMsg {
					t.Errorf("message %q, want %q as it was", msg, tc.wantMsg)
				}
			}
			if got := rep.record(); !slices.Equal(got, tc.wantAttempts) {
				t.Errorf("attempts %q, want %q", got, tc.wantAttempts)
			}
		})
	}
}

// TestRouteWithoutLeaderFailsFast is issue 15's second part: a node that
// knows no leader answers Unavailable once no leader has been known for
// the bound it was given, not when the client's deadline runs out, and
// says the write was not applied and may be retried with its request id.
func TestRouteWithoutLeaderFailsFast(t *testing.T) {
	const bound = 150 * time.Millisecond
	svc := New(newFakeReplica(false), slog.New(slog.DiscardHandler), WithNoLeaderTimeout(bound))
	tests := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"guess", func(ctx context.Context) error { _, err := svc.Guess(ctx, guess("g1")); return err }},
		{"join", func(ctx context.Context) error {
			_, err := svc.JoinRoom(ctx, &hangmanv1.JoinRoomRequest{Room: "r", PlayerId: "p1", Name: "P", RequestId: "j1", Token: NewToken()})
			return err
		}},
		{"linearizable read", func(ctx context.Context) error {
			_, err := svc.GetRoom(ctx, &hangmanv1.GetRoomRequest{Room: "r", Consistency: hangmanv1.Consistency_CONSISTENCY_LINEARIZABLE})
			return err
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			start := time.Now()
			err := tc.call(ctx)
			took := time.Since(start)
			if status.Code(err) != codes.Unavailable {
				t.Fatalf("got %v, want Unavailable", err)
			}
			if took < bound || took > bound+2*time.Second {
				t.Errorf("answered after %v; want about the no-leader bound %v, far from the 10s deadline", took, bound)
			}
			for _, want := range []string{"no leader known", "not applied", "same request_id"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("message %q does not say %q", err, want)
				}
			}
		})
	}
}

// TestRouteWaitsForAnElection: a leader that appears within the bound
// takes the request; the caller sees one success.
func TestRouteWaitsForAnElection(t *testing.T) {
	rep := newFakeReplica(false, applied)
	svc := New(rep, slog.New(slog.DiscardHandler), WithNoLeaderTimeout(5*time.Second))
	type result struct {
		resp *hangmanv1.GuessResponse
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := svc.Guess(ctxT(t), guess("g2"))
		done <- result{resp, err}
	}()
	// The request has met "not the leader" and waits; then one is elected.
	select {
	case <-rep.refused:
	case r := <-done:
		t.Fatalf("the guess ended before meeting a replica without a leader: %v", r.err)
	}
	rep.setLeader(true)
	r := <-done
	if r.err != nil {
		t.Fatalf("guess while a leader was being elected: %v", r.err)
	}
	if r.resp.GetOutcome() != "hit" || r.resp.GetDuplicate() {
		t.Errorf("response %v, want the applied outcome, not a duplicate", r.resp)
	}
	if got := rep.record(); !slices.Equal(got, []string{"propose g2"}) {
		t.Errorf("attempts %q, want the guess once with its request id", got)
	}
}

// TestFollowerReadsAtTheLeader checks where a follower serves reads: a
// stale read from its own replica, a leader read from the leader's
// GameService (over the connection the replica gives), and a read
// forwarded to a node that no longer leads is answered Unavailable there,
// never forwarded on, so leadership moving cannot make it loop. That last
// case asks the deposed node directly, as a follower's forward does: the
// follower itself retries such an answer until its caller's deadline, and
// whether that deadline ends a wait or a call in flight is timing.
func TestFollowerReadsAtTheLeader(t *testing.T) {
	leaderRep := newFakeReplica(true)
	leader := hangmanv1.NewGameServiceClient(serve(t, leaderRep))
	if _, err := leader.CreateRoom(ctxT(t), &hangmanv1.CreateRoomRequest{Room: "r"}); err != nil {
		t.Fatal(err)
	}
	// A node deposed a moment ago: it still knows a leader elsewhere.
	third := newFakeReplica(true)
	staleRep := newFakeReplica(false)
	staleRep.conn = serve(t, third)

	tests := []struct {
		name        string
		conn        *grpc.ClientConn
		consistency hangmanv1.Consistency
		wantCode    codes.Code
		wantMsg     string
		// forwarded sends the read straight over conn, marked forwarded,
		// instead of through a follower.
		forwarded bool
		// wantLeaderReads: the reads the leader serves, the follower's
		// own, and the third node's (none: nothing is forwarded twice).
		wantLeaderReads, wantOwnReads int
	}{
		{"stale, from its own replica", serve(t, leaderRep), hangmanv1.Consistency_CONSISTENCY_STALE, codes.NotFound, `room "r" does not exist`, false, 0, 1},
		{"leader, at the leader", serve(t, leaderRep), hangmanv1.Consistency_CONSISTENCY_LEADER, codes.OK, "", false, 1, 0},
		{"linearizable, at the leader", serve(t, leaderRep), hangmanv1.Consistency_CONSISTENCY_LINEARIZABLE, codes.OK, "", false, 1, 0},
		{"at a node that no longer leads", serve(t, staleRep), hangmanv1.Consistency_CONSISTENCY_LEADER, codes.Unavailable, "no longer leads", true, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			follower := newFakeReplica(false)
			follower.conn = tc.conn
			var svc interface {
				GetRoom(context.Context, *hangmanv1.GetRoomRequest) (*hangmanv1.GetRoomResponse, error)
			} = New(follower, slog.New(slog.DiscardHandler))
			if tc.forwarded {
				svc = forwardedReads{hangmanv1.NewGameServiceClient(tc.conn)}
			}
			leaderBefore := leaderRep.readCount()
			resp, err := svc.GetRoom(ctxT(t), &hangmanv1.GetRoomRequest{Room: "r", Consistency: tc.consistency})
			if status.Code(err) != tc.wantCode {
				t.Fatalf("answered %v, want code %v", err, tc.wantCode)
			}
			if tc.wantCode == codes.OK && resp.GetState().GetRoom() != "r" {
				t.Errorf("response %v, want the leader's room", resp)
			}
			if tc.wantCode != codes.OK && !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("message %q does not say %q", err, tc.wantMsg)
			}
			if got := leaderRep.readCount() - leaderBefore; got != tc.wantLeaderReads {
				t.Errorf("the leader served %d reads, want %d", got, tc.wantLeaderReads)
			}
			if got := follower.readCount(); got != tc.wantOwnReads {
				t.Errorf("the follower read its own replica %d times, want %d", got, tc.wantOwnReads)
			}
			if got := third.readCount(); got != 0 {
				t.Errorf("a forwarded read was forwarded again: the third node served %d", got)
			}
		})
	}
}

// forwardedReads reads over a connection from serve, whose calls are
// marked forwarded, as a follower's are.
type forwardedReads struct{ c hangmanv1.GameServiceClient }

func (f forwardedReads) GetRoom(ctx context.Context, req *hangmanv1.GetRoomRequest) (*hangmanv1.GetRoomResponse, error) {
	return f.c.GetRoom(ctx, req)
}

// TestLeaderReadWaitsForEarlierTerms: a node that has just become leader
// has not necessarily applied what earlier leaders committed; a leader
// read there must wait until it has, or it answers NotFound for a room
// that exists (a relay then took the room for absent, and showed nothing
// until its next recheck).
func TestLeaderReadWaitsForEarlierTerms(t *testing.T) {
	rep := newFakeReplica(true)
	rep.caughtUp, rep.waiting = make(chan struct{}), make(chan struct{})
	svc := New(rep, slog.New(slog.DiscardHandler))
	type answer struct {
		resp *hangmanv1.GetRoomResponse
		err  error
	}
	done := make(chan answer, 1)
	go func() {
		resp, err := svc.GetRoom(ctxT(t), &hangmanv1.GetRoomRequest{Room: "r", Consistency: hangmanv1.Consistency_CONSISTENCY_LEADER})
		done <- answer{resp, err}
	}()
	select {
	case a := <-done:
		t.Fatalf("a new leader answered before applying earlier terms: %v, %v", a.resp, a.err)
	case <-rep.waiting:
	}
	// The previous term's creation of r is applied, then the marker.
	rep.mu.Lock()
	rep.index++
	created := rep.m.Apply(rep.index, game.Command{Kind: game.KindCreateRoom, Room: "r", Word: "hangman", MaxWrong: 6, RequestID: "c1"}.Encode())
	rep.mu.Unlock()
	if created.Err != nil {
		t.Fatal(created.Err)
	}
	close(rep.caughtUp)
	a := <-done
	if a.err != nil || a.resp.GetState().GetRoom() != "r" {
		t.Fatalf("leader read after catching up: %v, %v; want room r", a.resp, a.err)
	}
}
