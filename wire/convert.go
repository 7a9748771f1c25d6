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
	// One array holds the players' messages: the leader converts a state
	// for every answer, and a message per player was an allocation each.
	players := make([]hangmanv1.Player, len(s.Players))
	for i, p := range s.Players {
		players[i] = hangmanv1.Player{Id: p.ID, Name: p.Name, Score: p.Score}
		out.Players[i] = &players[i]
	}
	if s.LastGuess != nil {
		out.LastGuess = &hangmanv1.LastGuess{Player: s.LastGuess.Player, Letter: s.LastGuess.Letter, Outcome: string(s.LastGuess.Outcome)}
	}
	roundsProto(s, out)
	return out
}

// roundsProto converts the settings, setter, turn, history and
// leaderboard of s into out.
func roundsProto(s game.State, out *hangmanv1.RoomState) {
	st := s.Settings
	out.Settings = &hangmanv1.RoomSettings{Category: st.Category, MinWordLen: int32(st.MinLen), MaxWordLen: int32(st.MaxLen),
		MaxPlayers: int32(st.MaxPlayers), Mode: string(st.Mode), TurnSeconds: int32(st.TurnSeconds)}
	out.Setter = s.Setter
	if t := s.Turn; t != nil {
		out.Turn = &hangmanv1.Turn{Player: t.Player, Number: t.Number, DeadlineMs: t.Deadline}
	}
	out.HistorySeq = s.HistorySeq
	for _, r := range s.History {
		rec := &hangmanv1.RoundRecord{Seq: r.Seq, Round: r.Round, Word: r.Word, Status: string(r.Status), Winner: r.Winner, Setter: r.Setter,
			Guesses: make([]*hangmanv1.LastGuess, len(r.Guesses))}
		for i, g := range r.Guesses {
			rec.Guesses[i] = &hangmanv1.LastGuess{Player: g.Player, Letter: g.Letter, Outcome: string(g.Outcome)}
		}
		out.History = append(out.History, rec)
	}
	if len(s.Leaderboard) > 0 {
		// One array, as for the players.
		standings := make([]hangmanv1.Standing, len(s.Leaderboard))
		out.Leaderboard = make([]*hangmanv1.Standing, len(s.Leaderboard))
		for i, l := range s.Leaderboard {
			standings[i] = hangmanv1.Standing{Id: l.ID, Name: l.Name, Score: l.Score, Wins: l.Wins}
			out.Leaderboard[i] = &standings[i]
		}
	}
}

// roundsFromProto is the inverse of roundsProto.
func roundsFromProto(p *hangmanv1.RoomState, s *game.State) {
	if st := p.GetSettings(); st != nil {
		s.Settings = game.Settings{Category: st.GetCategory(), MinLen: int(st.GetMinWordLen()), MaxLen: int(st.GetMaxWordLen()),
			MaxPlayers: int(st.GetMaxPlayers()), Mode: game.Mode(st.GetMode()), TurnSeconds: int(st.GetTurnSeconds())}
	}
	s.Setter = p.GetSetter()
	if t := p.GetTurn(); t != nil {
		s.Turn = &game.Turn{Player: t.GetPlayer(), Number: t.GetNumber(), Deadline: t.GetDeadlineMs()}
	}
	s.HistorySeq = p.GetHistorySeq()
	s.History = roundRecords(p)
	for _, l := range p.GetLeaderboard() {
		s.Leaderboard = append(s.Leaderboard, game.Standing{ID: l.GetId(), Name: l.GetName(), Score: l.GetScore(), Wins: l.GetWins()})
	}
}

// HistoryFromProto is the history a read of a room carries (see
// game.State.History): what a relay sends on its own beside the state.
func HistoryFromProto(p *hangmanv1.RoomState) game.History {
	return game.History{Room: p.GetRoom(), Seq: p.GetHistorySeq(), Rounds: roundRecords(p)}
}

func roundRecords(p *hangmanv1.RoomState) []game.RoundRecord {
	var out []game.RoundRecord
	for _, r := range p.GetHistory() {
		rec := game.RoundRecord{Seq: r.GetSeq(), Round: r.GetRound(), Word: r.GetWord(), Status: game.Status(r.GetStatus()), Winner: r.GetWinner(), Setter: r.GetSetter(),
			Guesses: make([]game.GuessRecord, len(r.GetGuesses()))}
		for i, g := range r.GetGuesses() {
			rec.Guesses[i] = game.GuessRecord{Player: g.GetPlayer(), Letter: g.GetLetter(), Outcome: game.Outcome(g.GetOutcome())}
		}
		out = append(out, rec)
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
	roundsFromProto(p, &s)
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
