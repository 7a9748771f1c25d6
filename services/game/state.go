package game

import "time"

// Status of a round.
type Status string

// Round statuses, as they appear in the public state. StatusDeleted is
// the status of the last state of a room, published when an idle room is
// reclaimed: it has no round, players or letters any more.
const (
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
// round started, or a guess that ended the round. A rename or a guess
// that leaves the round playing does not, so the lobby is not told of
// every letter.
func (e *Event) ChangesSummary() bool {
	switch e.Kind {
	case EventPlayerRenamed:
		return false
	case EventGuess:
		return e.Status != StatusPlaying
	}
	return true
}
