package game

import (
	"cmp"
	"slices"
	"time"
)

// The rules of the room settings beyond the word list: host rooms, whose
// players take turns setting the word (ModeHost), timed turns
// (Settings.TurnSeconds), and the history of finished rounds with the
// leaderboard.
//
// Turns are timed the way idle rooms are reclaimed (reclaim.go): time
// enters the state only through commands. A turn begins at the time of the
// command that began it; once its deadline has passed, the leader
// proposes a KindTurnTimeout naming the turn's number (TurnTimeouts), and
// applying it checks both again: a copy for a turn that has already ended
// (a guess came first, or another leader's copy did) changes nothing, and
// one stamped before the deadline is refused. A new leader finds the
// deadlines in the state it applied, so a turn is neither skipped nor
// timed out twice.

// nextSeat returns the first seat after the player after (from the first
// seat, if after has none) that ok accepts, wrapping around; "" if none.
func (r *room) nextSeat(after string, ok func(id string) bool) string {
	return r.seatFrom(slices.IndexFunc(r.players, func(p *seat) bool { return p.ID == after })+1, ok)
}

// seatFrom returns the first seat from position i on that ok accepts,
// wrapping around; "" if none.
func (r *room) seatFrom(i int, ok func(id string) bool) string {
	for k := range len(r.players) {
		if id := r.players[(i+k)%len(r.players)].ID; ok(id) {
			return id
		}
	}
	return ""
}

// guesser reports whether the player may guess in the room's rounds: in a
// host room, anyone but the setter.
func (r *room) guesser(id string) bool {
	return r.settings.Mode != ModeHost || id != r.setter
}

// passTurn begins the next turn of a timed room, at time at: the next
// guesser's after the current one's.
func (r *room) passTurn(at int64) {
	if r.settings.TurnSeconds == 0 {
		return
	}
	r.beginTurn(r.nextSeat(r.turnPlayer, r.guesser), at)
}

// beginTurn gives the next turn, begun at time at, to player; "" (nobody
// seated may guess) leaves the room without a turn until someone is.
func (r *room) beginTurn(player string, at int64) {
	r.turnPlayer = player
	if player != "" {
		r.turnNo++
		r.turnAt = at
	}
}

// seated gives the player who just took a seat what was waiting for one:
// the setting of a host round nobody could set, or the turn of a timed
// round nobody could guess in.
func (r *room) seated(id string, at int64) {
	switch {
	case r.status == StatusSetting && r.setter == "":
		r.setter = id
	case r.status == StatusPlaying && r.settings.TurnSeconds > 0 && r.turnPlayer == "" && r.guesser(id):
		r.beginTurn(id, at)
	}
}

// unseated passes on what the player whose seat, at position i, was just
// freed held: the setting of the round, or the turn.
func (r *room) unseated(id string, i int, at int64) {
	switch {
	case r.status == StatusSetting && r.setter == id:
		r.setter = r.seatFrom(i, func(string) bool { return true })
	case r.status == StatusPlaying && r.turnPlayer == id && r.settings.TurnSeconds > 0:
		r.beginTurn(r.seatFrom(i, r.guesser), at)
	}
}

// mayGuess refuses a guess the round does not allow the player now.
func (r *room) mayGuess(id string) error {
	switch {
	case r.status == StatusSetting && r.setter == id:
		return errorf(CodePrecondition, "round %d of room %q waits for its word, which you set", r.round, r.name)
	case r.status == StatusSetting:
		return errorf(CodePrecondition, "round %d of room %q waits for %q to set its word", r.round, r.name, r.setter)
	case r.status != StatusPlaying:
		return errorf(CodePrecondition, "round %d of room %q is over (%s); start a new round", r.round, r.name, r.status)
	case !r.guesser(id):
		return errorf(CodePrecondition, "you set the word of round %d of room %q: the others guess it", r.round, r.name)
	case r.settings.TurnSeconds > 0 && r.turnPlayer != id:
		return errorf(CodePrecondition, "it is %q's turn (turn %d) in room %q", r.turnPlayer, r.turnNo, r.name)
	}
	return nil
}

// afterGuess records a guess of p, applied at time at, and ends the round
// or the turn it ends.
func (r *room) afterGuess(p *seat, letter byte, outcome Outcome, at int64) {
	if outcome != OutcomeRepeated {
		r.cur = append(r.cur, GuessRecord{Player: p.ID, Letter: letterString(letter), Outcome: outcome})
	}
	switch r.status {
	case StatusWon:
		r.finish(p.ID)
	case StatusLost:
		// In a host room, the setter beat the guessers.
		if s := r.seat(r.setter); s != nil && r.settings.Mode == ModeHost {
			s.Score += WinBonus
		}
		r.finish("")
	default:
		r.passTurn(at)
	}
}

// finish records the round that just ended in the room's history.
func (r *room) finish(winner string) {
	rec := RoundRecord{Round: r.round, Word: r.word, Status: r.status, Winner: winner, Guesses: r.cur}
	if r.settings.Mode == ModeHost {
		rec.Setter = r.setter
	}
	if len(r.rounds) == HistoryRounds {
		r.rounds = slices.Delete(r.rounds, 0, 1)
	}
	r.rounds = append(r.rounds, rec)
	r.cur = nil
}

// setWord sets the word of a host room's round, as its setter.
func (r *room) setWord(c Command) (*Event, error) {
	if r == nil {
		return nil, errorf(CodeNotFound, "room %q does not exist", c.Room)
	}
	p := r.seat(c.Player)
	if p == nil {
		return nil, errorf(CodePrecondition, "player %q has not joined room %q", c.Player, c.Room)
	}
	if err := p.authorize(c, r.name); err != nil {
		return nil, err
	}
	switch {
	case r.settings.Mode != ModeHost:
		return nil, errorf(CodePrecondition, "room %q draws its words at random: nobody sets them", c.Room)
	case r.status != StatusSetting:
		return nil, errorf(CodePrecondition, "round %d of room %q has its word already", r.round, c.Room)
	case r.setter != c.Player:
		return nil, errorf(CodePrecondition, "%q sets the word of round %d of room %q", r.setter, r.round, c.Room)
	case !r.settings.fits(c.Word):
		// Never the word itself in a message: it is secret.
		return nil, errorf(CodePrecondition, "the words of room %q are %d-%d letters", c.Room, r.settings.MinLen, r.settings.MaxLen)
	}
	p.touch(c.At)
	r.word = c.Word
	r.status = StatusPlaying
	r.passTurn(c.At)
	return &Event{Kind: EventWordSet, Player: c.Player}, nil
}

// deadline is when the current turn runs out, in Unix milliseconds.
func (r *room) deadline() int64 {
	return r.turnAt + int64(r.settings.TurnSeconds)*time.Second.Milliseconds()
}

// timed reports whether the room's round is playing with a turn to time.
func (r *room) timed() bool {
	return r.status == StatusPlaying && r.settings.TurnSeconds > 0 && r.turnPlayer != ""
}

// turnTimeout ends turn c.Turn, whose deadline c.At has passed.
func (r *room) turnTimeout(c Command) (*Event, error) {
	switch {
	case r == nil:
		return nil, errorf(CodeNotFound, "room %q does not exist", c.Room)
	case !r.timed() || uint64(c.Turn) != r.turnNo:
		return nil, errorf(CodePrecondition, "turn %d of room %q is not running", c.Turn, c.Room)
	case c.At < r.deadline():
		return nil, errorf(CodePrecondition, "turn %d of room %q runs until %d, after %d", c.Turn, c.Room, r.deadline(), c.At)
	}
	player := r.turnPlayer
	r.passTurn(c.At)
	return &Event{Kind: EventTurnTimeout, Player: player}, nil
}

// TurnTimeouts returns a KindTurnTimeout for each timed room whose turn's
// deadline has passed at now, in name order, at most limit of them. The
// commands carry At now and the turn they end: the proposer adds nothing.
func (m *Machine) TurnTimeouts(now time.Time, limit int) []Command {
	at := min(max(now.UnixMilli(), 0), maxAt)
	var out []Command
	for _, name := range m.roomNames() {
		if len(out) >= limit {
			break
		}
		if r := m.rooms[name]; r.timed() && at >= r.deadline() {
			out = append(out, Command{Kind: KindTurnTimeout, Room: name, Turn: int64(r.turnNo), At: at})
		}
	}
	return out
}

// Settings returns the settings of a room: what a proposer needs to draw
// its next word or check a setter's.
func (m *Machine) Settings(room string) (Settings, bool) {
	r := m.rooms[room]
	if r == nil {
		return Settings{}, false
	}
	return r.settings, true
}

// RecentWords returns the words of the room's remembered rounds, the one
// being played included: what a proposer drawing the next word avoids, so
// that a room does not see the same word twice in a row of HistoryRounds.
func (m *Machine) RecentWords(room string) []string {
	r := m.rooms[room]
	if r == nil {
		return nil
	}
	words := make([]string, 0, len(r.rounds)+1)
	for _, rd := range r.rounds {
		words = append(words, rd.Word)
	}
	if r.word != "" {
		words = append(words, r.word)
	}
	return words
}

// lastFinished returns the number of the room's last finished round, 0
// before any (or for a nil room): it changes with every round finished.
func (r *room) lastFinished() uint64 {
	if r == nil || len(r.rounds) == 0 {
		return 0
	}
	return r.rounds[len(r.rounds)-1].Round
}

// finished returns the seq of the change that finished the room's last
// finished round, 0 before any (or for a nil room): the history's version.
func (r *room) finished() uint64 {
	if r == nil || len(r.rounds) == 0 {
		return 0
	}
	return r.rounds[len(r.rounds)-1].Seq
}

// publicRounds adds what s shows of the room's settings, setter, turn,
// leaderboard and, withHistory, finished rounds.
func (r *room) publicRounds(s *State, withHistory bool) {
	s.Settings = r.settings
	if r.settings.Mode == ModeHost {
		s.Setter = r.setter
	}
	if r.timed() {
		s.Turn = &Turn{Player: r.turnPlayer, Number: r.turnNo, Deadline: r.deadline()}
	}
	if len(r.rounds) == 0 {
		return
	}
	s.HistorySeq = r.finished()
	if withHistory {
		// Finished rounds never change: the state shares their guesses.
		s.History = slices.Clone(r.rounds)
	}
	s.Leaderboard = make([]Standing, len(r.players))
	for i, p := range r.players {
		s.Leaderboard[i] = Standing{ID: p.ID, Name: p.Name, Score: p.Score, Wins: p.wins}
	}
	slices.SortStableFunc(s.Leaderboard, func(a, b Standing) int {
		return cmp.Or(cmp.Compare(b.Score, a.Score), cmp.Compare(b.Wins, a.Wins))
	})
}
