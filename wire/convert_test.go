package wire

import (
	"reflect"
	"testing"

	"google.golang.org/protobuf/proto"

	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
	"github.com/hangman/hangman/services/game"
)

// playedState is a state with every part StateProto converts: players, a
// last guess, settings, a setter, a turn, finished rounds and a
// leaderboard.
func playedState() game.State {
	return game.State{
		Room: "den", Round: 3, Seq: 42, Prev: 40, Masked: "h_pp_", Guessed: []string{"h", "p", "z"}, Wrong: []string{"z"},
		WrongLeft: 5, MaxWrong: 6, Status: game.StatusPlaying,
		Players:   []game.Player{{ID: "p1", Name: "Ada", Score: 7}, {ID: "p2", Name: "Bob", Score: 2}, {ID: "p3", Name: "Cy", Score: 0}},
		LastGuess: &game.LastGuess{Player: "p2", Letter: "z", Outcome: game.OutcomeWrong},
		Settings:  game.Settings{Category: "animals", MinLen: 4, MaxLen: 9, MaxPlayers: 8, Mode: game.ModeHost, TurnSeconds: 30},
		Setter:    "p3", Turn: &game.Turn{Player: "p1", Number: 9, Deadline: 1700000030000},
		HistorySeq: 30,
		History: []game.RoundRecord{{Seq: 30, Round: 2, Word: "otter", Status: game.StatusWon, Winner: "p1", Setter: "p2",
			Guesses: []game.GuessRecord{{Player: "p1", Letter: "o", Outcome: game.OutcomeCorrect}}}},
		Leaderboard: []game.Standing{{ID: "p1", Name: "Ada", Score: 7, Wins: 1}, {ID: "p2", Name: "Bob", Score: 2}, {ID: "p3", Name: "Cy"}},
	}
}

// TestStateRoundTrip: what StateProto writes, StateFromProto reads back
// the same, and the wire form survives encoding.
func TestStateRoundTrip(t *testing.T) {
	for _, s := range []game.State{playedState(), {Room: "new", Round: 1, Seq: 1, Masked: "____", Guessed: []string{}, Wrong: []string{},
		MaxWrong: 6, Status: game.StatusPlaying, Players: []game.Player{}, Settings: game.Settings{Mode: game.ModeRandom}}} {
		p := StateProto(s)
		if got := StateFromProto(p); !reflect.DeepEqual(got, s) {
			t.Fatalf("round trip of room %s:\n got %+v\nwant %+v", s.Room, got, s)
		}
		b, err := proto.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		back := new(hangmanv1.RoomState)
		if err := proto.Unmarshal(b, back); err != nil || !proto.Equal(back, p) {
			t.Fatalf("room %s does not survive encoding (%v)", s.Room, err)
		}
	}
}

// BenchmarkStateProto measures the conversion of a guess's state, done
// for every answer.
func BenchmarkStateProto(b *testing.B) {
	s := playedState()
	s.History = nil
	b.ReportAllocs()
	for b.Loop() {
		StateProto(s)
	}
}
