package wire

import (
	"fmt"
	"time"

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

// StateFromProto is the inverse of StateProto: nodes use it to read a
// state another node sent them.
func StateFromProto(p *hangmanv1.RoomState) game.State {
	s := game.State{
		Room:      p.GetRoom(),
		Round:     p.GetRound(),
		Seq:       p.GetSeq(),
		Prev:      p.GetPrev(),
		Masked:    p.GetMasked(),
		Guessed:   nonNil(p.GetGuessed()),
		Wrong:     nonNil(p.GetWrong()),
		WrongLeft: int(p.GetWrongLeft()),
		MaxWrong:  int(p.GetMaxWrong()),
		Status:    game.Status(p.GetStatus()),
		Word:      p.GetWord(),
		Players:   make([]game.Player, len(p.GetPlayers())),
	}
	for i, pl := range p.GetPlayers() {
		s.Players[i] = game.Player{ID: pl.GetId(), Name: pl.GetName(), Score: pl.GetScore()}
	}
	if lg := p.GetLastGuess(); lg != nil {
		s.LastGuess = &game.LastGuess{Player: lg.GetPlayer(), Letter: lg.GetLetter(), Outcome: game.Outcome(lg.GetOutcome())}
	}
	return s
}

// nonNil keeps an empty list a list: the wire does not tell nil from empty,
// and a state's lists are never nil.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// EventProto converts a room's event to its wire form.
func EventProto(e game.Event) *hangmanv1.RoomEvent {
	return &hangmanv1.RoomEvent{
		Seq: e.Seq, Prev: e.Prev, Room: e.Room, Kind: e.Kind, Round: e.Round,
		Player: e.Player, Name: e.Name, Letter: e.Letter, Outcome: string(e.Outcome), Status: string(e.Status),
		At: e.At.Format(time.RFC3339Nano),
	}
}

// EventFromProto converts a room's event from its wire form, the inverse
// of EventProto. A time that does not parse is an error: the event came
// from a peer that speaks another format.
func EventFromProto(e *hangmanv1.RoomEvent) (game.Event, error) {
	at, err := time.Parse(time.RFC3339Nano, e.GetAt())
	if err != nil {
		return game.Event{}, fmt.Errorf("event %d of room %q: time %q: %w", e.GetSeq(), e.GetRoom(), e.GetAt(), err)
	}
	return game.Event{
		Seq: e.GetSeq(), Prev: e.GetPrev(), Room: e.GetRoom(), Kind: e.GetKind(), Round: e.GetRound(),
		Player: e.GetPlayer(), Name: e.GetName(), Letter: e.GetLetter(), Outcome: game.Outcome(e.GetOutcome()),
		Status: game.Status(e.GetStatus()), At: at.UTC(),
	}, nil
}

// EventsProto converts one answer of game.Machine.EventsSince, read at
// applied index idx, to its wire form.
func EventsProto(p game.EventPage, idx uint64) *hangmanv1.EventsResponse {
	out := &hangmanv1.EventsResponse{Events: make([]*hangmanv1.RoomEvent, len(p.Events)), More: p.More, Seq: p.Seq, AppliedIndex: idx}
	for i, e := range p.Events {
		out.Events[i] = EventProto(e)
	}
	return out
}
