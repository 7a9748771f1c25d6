package game

import "time"

// Status of a round.
type Status string

// Round statuses, as they appear in the public state. StatusDeleted is
// the status of the last state of a room, published when an idle room is
// reclaimed: it has no round, players or letters any more. StatusSetting
// is the status of a round of a host room (ModeHost) before its setter has
// set the word: there is nothing to guess yet.
const (
	StatusSetting Status = "setting"
	StatusPlaying Status = "playing"
	StatusWon     Status = "won"
	StatusLost    Status = "lost"
	StatusDeleted Status = "deleted"
)

// Outcome of a guess.
type Outcome string

// Outcomes of a guess.
const (
	OutcomeCorrect  Outcome = "correct"
	OutcomeWrong    Outcome = "wrong"
	OutcomeRepeated Outcome = "repeated"
)

// Player is a player of a room as everyone sees them.
type Player struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Score int64  `json:"score"`
}

// LastGuess is the most recent guess of a room's current round.
type LastGuess struct {
	Player  string  `json:"player"`
	Letter  string  `json:"letter"`
	Outcome Outcome `json:"outcome"`
}

// State is the public state of one room: the payload of
// hangman.room.<room>.state. It never holds the secret word while the round
// is playing.
type State struct {
	Room  string `json:"room"`
	Round uint64 `json:"round"`
	// Seq is the raft index of the last command that changed the room.
	Seq uint64 `json:"seq"`
	// Prev is the room's Seq before that command (0 for a new room). Raft
	// indexes are shared by all rooms, so a room's seqs are increasing but
	// not consecutive; a consumer that last saw seq S and receives Prev != S
	// knows it missed something.
	Prev uint64 `json:"prev"`
	// Masked is the word with unguessed letters as '_', one byte per letter.
	Masked string `json:"masked"`
	// Guessed lists every letter guessed this round, in guess order.
	Guessed []string `json:"guessed"`
	// Wrong lists the guessed letters that are not in the word.
	Wrong     []string   `json:"wrong"`
	WrongLeft int        `json:"wrongLeft"`
	MaxWrong  int        `json:"maxWrong"`
	Status    Status     `json:"status"`
	Word      string     `json:"word,omitempty"`
	Players   []Player   `json:"players"`
	LastGuess *LastGuess `json:"lastGuess,omitempty"`
	// Settings are the room's choices at creation.
	Settings Settings `json:"settings"`
	// Setter, in a host room, is the player who sets this round's word
	// and does not guess ("" while nobody is seated to).
	Setter string `json:"setter,omitempty"`
	// Turn, in a timed room whose round is playing, says whose turn it is
	// and until when.
	Turn *Turn `json:"turn,omitempty"`
	// HistorySeq is the seq of the change that finished the room's last
	// finished round (0 before any): the History as of this state. The
	// history changes only then, so a consumer that holds the history of
	// HistorySeq holds the current one, and one that does not knows it
	// must read it.
	HistorySeq uint64 `json:"historySeq,omitempty"`
	// History is the room's last finished rounds (at most HistoryRounds),
	// oldest first: never the round being played. Only a read of the room
	// (Machine.Room) carries it. The state of a change leaves it out, as
	// it would otherwise make every guess's state some ten times larger:
	// the change that finishes a round publishes it on its own (History).
	History []RoundRecord `json:"history,omitempty"`
	// Leaderboard ranks the room's players by score, then by rounds won,
	// then by seat, once a round has finished.
	Leaderboard []Standing `json:"leaderboard,omitempty"`
}

// Turn is the current turn of a timed room. Number counts the room's
// turns; Deadline is when it runs out, in Unix milliseconds, derived from
// the time of the command that began it: a new leader finds it in the
// state, so a turn is timed out once, whoever leads.
type Turn struct {
	Player   string `json:"player"`
	Number   uint64 `json:"number"`
	Deadline int64  `json:"deadline"`
}

// RoundRecord is one finished round of a room: its word, how it ended
// (Winner guessed the last letter, or nobody did and the players were
// hanged) and who guessed what, in order (repeated letters left out).
type RoundRecord struct {
	// Seq is the seq of the change that finished the round.
	Seq     uint64        `json:"seq"`
	Round   uint64        `json:"round"`
	Word    string        `json:"word"`
	Status  Status        `json:"status"`
	Winner  string        `json:"winner,omitempty"`
	Setter  string        `json:"setter,omitempty"`
	Guesses []GuessRecord `json:"guesses"`
}

// History is a room's finished rounds as of the change Seq that finished
// the last of them: the payload of hangman.room.<room>.history, published
// once per finished round instead of inside every state (see
// State.History).
type History struct {
	Room   string        `json:"room"`
	Seq    uint64        `json:"seq"`
	Rounds []RoundRecord `json:"rounds"`
}

// GuessRecord is one guess of a finished round.
type GuessRecord struct {
	Player  string  `json:"player"`
	Letter  string  `json:"letter"`
	Outcome Outcome `json:"outcome"`
}

// Standing is a player's line of a room's leaderboard: Wins counts the
// rounds they finished by guessing the last letter.
type Standing struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Score int64  `json:"score"`
	Wins  int64  `json:"wins"`
}

// Event is one committed change to a room: the payload of
// hangman.room.<room>.event.
type Event struct {
	Seq uint64 `json:"seq"`
	// Prev is the room's seq before this event; see State.Prev.
	Prev    uint64    `json:"prev"`
	Room    string    `json:"room"`
	Kind    string    `json:"kind"`
	Round   uint64    `json:"round"`
	Player  string    `json:"player,omitempty"`
	Name    string    `json:"name,omitempty"`
	Letter  string    `json:"letter,omitempty"`
	Outcome Outcome   `json:"outcome,omitempty"`
	Status  Status    `json:"status"`
	At      time.Time `json:"at"`
}

// Event kinds, as they appear in Event.Kind.
const (
	EventRoomCreated   = "room_created"
	EventPlayerJoined  = "player_joined"
	EventPlayerRenamed = "player_renamed"
	EventGuess         = "guess"
	EventRoundStarted  = "round_started"
	// EventWordSet: Player, the setter of a host room, set the round's
	// word (which the event, like the state, does not show).
	EventWordSet = "word_set"
	// EventTurnTimeout: Player's turn ran out; the state says whose it is
	// now.
	EventTurnTimeout = "turn_timeout"
	// EventSeatReclaimed: Player had not acted for so long while others
	// played that the leader freed their seat (and score).
	EventSeatReclaimed = "seat_reclaimed"
	// EventRoomDeleted: the room was idle for so long that the leader
	// deleted it; its name is free again.
	EventRoomDeleted = "room_deleted"
)

// Summary is one room as the lobby lists it: a line of a room list, and
// the payload of hangman.lobby, published whenever the line changes (see
// Event.ChangesSummary). Seq is the raft index that produced the line, so
// a consumer keeps, per room, the line with the highest Seq; a deleted
// room's last line has StatusDeleted and no players.
type Summary struct {
	Room    string `json:"room"`
	Players int    `json:"players"`
	Round   uint64 `json:"round"`
	Status  Status `json:"status"`
	Seq     uint64 `json:"seq"`
}

// Summary is the room's lobby line as of this state.
func (s *State) Summary() Summary {
	return Summary{Room: s.Room, Players: len(s.Players), Round: s.Round, Status: s.Status, Seq: s.Seq}
}

// ChangesSummary reports whether the event changed its room's lobby line
// (beyond its Seq): a room created or deleted, a seat taken or freed, a
// round started, a word set, or a guess that ended the round. A rename, a
// turn that ran out or a guess that leaves the round playing does not, so
// the lobby is not told of every letter.
func (e *Event) ChangesSummary() bool {
	switch e.Kind {
	case EventPlayerRenamed, EventTurnTimeout:
		return false
	case EventGuess:
		return e.Status != StatusPlaying
	}
	return true
}
