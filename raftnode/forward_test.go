package raftnode

import (
	"errors"
	"reflect"
	"testing"

	"google.golang.org/protobuf/proto"

	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
	"github.com/hangman/hangman/services/api"
	"github.com/hangman/hangman/services/game"
)

// TestForwardedResultsSurviveTheWire sends every kind of answer through
// toWire, protobuf and fromWire, as a forwarded write's result travels.
func TestForwardedResultsSurviveTheWire(t *testing.T) {
	played := game.State{
		Room: "r1", Round: 2, Seq: 41, Prev: 17, Masked: "h_ll_", Guessed: []string{"h", "l", "z"}, Wrong: []string{"z"},
		WrongLeft: 5, MaxWrong: 6, Status: game.StatusPlaying,
		Players:   []game.Player{{ID: "p1", Name: "Ada", Score: 3}, {ID: "p2", Name: "Bob"}},
		LastGuess: &game.LastGuess{Player: "p1", Letter: "l", Outcome: game.OutcomeCorrect},
	}
	fresh := game.State{Room: "r2", Round: 1, Seq: 3, Masked: "____", Guessed: []string{}, Wrong: []string{}, WrongLeft: 6, MaxWrong: 6, Status: game.StatusPlaying, Players: []game.Player{}}
	won := played
	won.Status, won.Word, won.Masked = game.StatusWon, "hello", "hello"
	tests := []struct {
		name string
		in   proposed
	}{
		{"guess", proposed{res: game.Result{Room: "r1", Outcome: game.OutcomeCorrect, Index: 41, State: played}, index: 41}},
		{"duplicate", proposed{res: game.Result{Room: "r1", Outcome: game.OutcomeWrong, Duplicate: true, Index: 12, State: played}, index: 41}},
		{"new room", proposed{res: game.Result{Room: "r2", Index: 3, State: fresh}, index: 3}},
		{"round won", proposed{res: game.Result{Room: "r1", Outcome: game.OutcomeCorrect, Index: 42, State: won}, index: 42}},
		{"refused", proposed{res: game.Result{Room: "r1", Err: &game.Error{Code: game.CodePrecondition, Msg: "round 2 of room \"r1\" is over (won); start a new round"}}, index: 43}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := fromWire(viaProtobuf(t, toWire(tt.in)))
			if got.err != nil {
				t.Fatalf("fromWire: %v", got.err)
			}
			if !reflect.DeepEqual(got, tt.in) {
				t.Fatalf("after the wire:\n got %+v\nwant %+v", got, tt.in)
			}
		})
	}
}

func TestForwardingFailuresSurviveTheWire(t *testing.T) {
	tests := []struct {
		name string
		in   *hangmanv1.Proposed
		want error // errors.Is target; nil: any error
	}{
		{"not leader", toWire(proposed{err: api.ErrNotLeader}), api.ErrNotLeader},
		{"unknown outcome", toWire(proposed{err: api.ErrUnknownOutcome}), api.ErrUnknownOutcome},
		{"internal", toWire(proposed{err: errors.New("disk on fire")}), nil},
		// An answer with neither state nor refusal (a leader speaking
		// another version of the protocol) must not pass for success.
		{"empty answer", &hangmanv1.Proposed{Index: 9}, api.ErrUnknownOutcome},
		{"no state", &hangmanv1.Proposed{Index: 9, Applied: &hangmanv1.Applied{Room: "r1"}}, api.ErrUnknownOutcome},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := fromWire(viaProtobuf(t, tt.in))
			if got.err == nil {
				t.Fatalf("fromWire accepted %v as a result: %+v", tt.in, got.res)
			}
			if tt.want != nil && !errors.Is(got.err, tt.want) {
				t.Fatalf("fromWire error %v, want %v", got.err, tt.want)
			}
		})
	}
}

func viaProtobuf(t *testing.T, p *hangmanv1.Proposed) *hangmanv1.Proposed {
	t.Helper()
	b, err := proto.Marshal(p)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	var out hangmanv1.Proposed
	if err := proto.Unmarshal(b, &out); err != nil {
		t.Fatalf("unmarshal: %v", err)
	}
	return &out
}
