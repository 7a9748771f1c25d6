package api

import (
	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
	"github.com/hangman/hangman/services/game"
)

// StateProto converts a room's public state to its wire form.
func StateProto(s game.State) *hangmanv1.RoomState {
	out := &hangmanv1.RoomState{
		Room:      s.Room,
		Round:     s.Round,
		Seq:       s.Seq,
		Prev:      s.Prev,
		Masked:    s.Masked,
		Guessed:   s.Guessed,
		Wrong:     s.Wrong,
		WrongLeft: int32(s.WrongLeft),
		MaxWrong:  int32(s.MaxWrong),
		Status:    string(s.Status),
		Word:      s.Word,
		Players:   make([]*hangmanv1.Player, len(s.Players)),
	}
	for i, p := range s.Players {
		out.Players[i] = &hangmanv1.Player{Id: p.ID, Name: p.Name, Score: p.Score}
	}
	if s.LastGuess != nil {
		out.LastGuess = &hangmanv1.LastGuess{Player: s.LastGuess.Player, Letter: s.LastGuess.Letter, Outcome: string(s.LastGuess.Outcome)}
	}
	return out
}
