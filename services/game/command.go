package game

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Kind says what a command does.
type Kind uint8

// Kinds of commands: one per thing a player can do, and the leader's
// reclamations of idle rooms and seats.
const (
	// KindCreateRoom creates a room and starts its first round with Word.
	KindCreateRoom Kind = iota + 1
	// KindJoinRoom adds Player (named Name) to a room, or renames them.
	KindJoinRoom
	// KindGuess guesses Letter in the room's current round.
	KindGuess
	// KindNewRound starts the next round with Word once the last is over.
	KindNewRound
	// KindDeleteRoom deletes a room in which nothing happened after
	// Cutoff. Only the leader proposes it (see Reclaimable), without a
	// request id: a second copy finds nothing to delete.
	KindDeleteRoom
	// KindReclaimSeat frees the seat of Player, who has not acted since
	// Cutoff. Only the leader proposes it (see Reclaimable), without a
	// request id.
	KindReclaimSeat
	// KindSetWord sets Word as the word of the round of a host room
	// (ModeHost) that waits for it, as Player, the round's setter.
	KindSetWord
	// KindTurnTimeout ends turn Turn of a timed room whose deadline had
	// passed at At, passing it to the next player. Only the leader
	// proposes it (see TurnTimeouts), without a request id: a stale or
	// second copy finds the turn over and changes nothing.
	KindTurnTimeout
)

// String is the name used in events ("kind" on NATS) and logs.
func (k Kind) String() string {
	switch k {
	case KindCreateRoom:
		return "create_room"
	case KindJoinRoom:
		return "join_room"
	case KindGuess:
		return "guess"
	case KindNewRound:
		return "new_round"
	case KindDeleteRoom:
		return "delete_room"
	case KindReclaimSeat:
		return "reclaim_seat"
	case KindSetWord:
		return "set_word"
	case KindTurnTimeout:
		return "turn_timeout"
	default:
		return fmt.Sprintf("kind(%d)", uint8(k))
	}
}

// Command is one entry of the replicated log. The proposer fills every field
// the rules need, including the secret Word, the time At and its caps, so
// that applying it needs nothing from the outside world. Encode and
// DecodeCommand are its only encoding.
type Command struct {
	Kind      Kind
	Room      string
	Player    string
	Name      string
	Letter    string
	Word      string
	MaxWrong  int
	RequestID string
	// At is the proposer's wall clock in Unix milliseconds; events carry it.
	At int64
	// TokenHash is HashToken of the token the player presented, on the
	// commands a player sends (join, guess, new round): proof that the
	// command comes from the holder of the seat, never the token itself,
	// which stays out of the log. A join that takes a seat makes it the
	// seat's. Request ids are remembered per TokenHash, so nobody can
	// answer or burn another player's ids. Empty on commands of no player,
	// and on entries written before tokens (which follow the old rules).
	TokenHash string
	// Limit is the proposer's cap: on a creation the most rooms the
	// cluster may hold, on a join the most players of the room; 0 means
	// MaxRooms or MaxPlayers. Carried in the command, so that every
	// replica applies the same cap whatever its own configuration.
	Limit int
	// Cutoff, on a room deletion or a seat reclamation, is the Unix
	// millisecond after which the room (or the player) must not have
	// acted for the command to take effect: a command committed after a
	// player came back changes nothing.
	Cutoff int64
	// Category, MinLen, MaxLen, Seats (the room's own cap on players),
	// Mode and TurnSeconds are a creation's Settings; zeros mean the
	// defaults.
	Category    string
	Mode        Mode
	MinLen      int
	MaxLen      int
	Seats       int
	TurnSeconds int
	// Turn, on a turn timeout, is the number of the turn it ends.
	Turn int64
}

// Versions of an encoded command: the first byte of its log entry, so the
// encoding can change without misreading old entries. Version 3 is the
// first binary encoding, still read; version 4 added the token hash, the cap
// and the cutoff, also still read; version 5 added the room settings and
// the turn, and is what Encode writes. (Version 2 frames a batch of
// commands; see EncodeBatch. Version 1 was a JSON encoding that no log
// holds; it is refused as unknown.)
const (
	commandBinaryV3 = 3
	commandBinaryV4 = 4
	commandBinary   = 5
)

// maxAt is the last Unix millisecond of the year 9999: events carry At as an
// RFC 3339 time, which JSON cannot encode for later years, and one event that
// cannot be encoded would make every later snapshot of the Machine fail.
const maxAt = 253402300799999

// MaxCommandSize bounds an encoded command; anything longer is not one of
// ours.
const MaxCommandSize = 1024

// Encode returns the log entry bytes of c. Every replica decodes every
// command, so the encoding is binary: the version byte, the kind, the
// nine strings of the command each after its length (room, player, name,
// letter, word, request id, token hash, category, mode), then MaxWrong,
// At, Limit, Cutoff, MinLen, MaxLen, Seats, TurnSeconds and Turn as
// signed varints.
func (c Command) Encode() []byte {
	n := 2 + 9*binary.MaxVarintLen16 + 9*binary.MaxVarintLen64 +
		len(c.Room) + len(c.Player) + len(c.Name) + len(c.Letter) + len(c.Word) + len(c.RequestID) + len(c.TokenHash) +
		len(c.Category) + len(c.Mode)
	b := make([]byte, 0, n)
	b = append(b, commandBinary, byte(c.Kind))
	for _, f := range [...]string{c.Room, c.Player, c.Name, c.Letter, c.Word, c.RequestID, c.TokenHash, c.Category, string(c.Mode)} {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	for _, v := range [...]int64{int64(c.MaxWrong), c.At, int64(c.Limit), c.Cutoff,
		int64(c.MinLen), int64(c.MaxLen), int64(c.Seats), int64(c.TurnSeconds), c.Turn} {
		b = binary.AppendVarint(b, v)
	}
	return b
}

// DecodeCommand parses a log entry written by Encode (or by version 3 of
// the encoding, which has no token hash, cap or cutoff, or version 4,
// which has no settings or turn) and validates it. It never panics,
// whatever the bytes.
func DecodeCommand(b []byte) (Command, error) {
	if len(b) == 0 {
		return Command{}, errorf(CodeInvalid, "empty command")
	}
	if len(b) > MaxCommandSize {
		return Command{}, errorf(CodeInvalid, "command of %d bytes exceeds %d", len(b), MaxCommandSize)
	}
	var (
		c   Command
		err error
	)
	switch b[0] {
	case commandBinary:
		c, err = decodeBinary(b[1:], 9, 9)
	case commandBinaryV4:
		c, err = decodeBinary(b[1:], 7, 4)
	case commandBinaryV3:
		c, err = decodeBinary(b[1:], 6, 2)
	default:
		return Command{}, errorf(CodeInvalid, "unknown command version %d", b[0])
	}
	if err != nil {
		return Command{}, err
	}
	if err := c.Validate(); err != nil {
		return Command{}, err
	}
	return c, nil
}

// decodeBinary reads a binary command of nstrings strings and nints
// varints: 6 and 2 in version 3, which has no token hash, cap or cutoff;
// 7 and 4 in version 4; 9 and 9 in version 5.
func decodeBinary(b []byte, nstrings, nints int) (Command, error) {
	malformed := func(what string) (Command, error) {
		return Command{}, errorf(CodeInvalid, "malformed command: %s", what)
	}
	if len(b) == 0 {
		return malformed("no kind")
	}
	c := Command{Kind: Kind(b[0])}
	b = b[1:]
	// The strings share one allocation: the rest of the entry, copied once.
	rest := string(b)
	at := 0
	var fields [9]string
	for i := range nstrings {
		l, k := binary.Uvarint(b[at:])
		if k <= 0 || l > uint64(len(b)-at-k) {
			return malformed("bad string length")
		}
		at += k
		fields[i] = rest[at : at+int(l)]
		at += int(l)
	}
	c.Room, c.Player, c.Name, c.Letter, c.Word, c.RequestID, c.TokenHash = fields[0], fields[1], fields[2], fields[3], fields[4], fields[5], fields[6]
	c.Category, c.Mode = fields[7], Mode(fields[8])
	var ints [9]int64
	for i := range nints {
		v, k := binary.Varint(b[at:])
		if k <= 0 {
			return malformed("bad number")
		}
		at += k
		ints[i] = v
	}
	if at != len(b) {
		return malformed(fmt.Sprintf("%d bytes of trailing data", len(b)-at))
	}
	for _, v := range [...]int64{ints[0], ints[2], ints[4], ints[5], ints[6], ints[7]} {
		if v < math.MinInt32 || v > math.MaxInt32 {
			return malformed("bad wrong-guess limit, cap or setting")
		}
	}
	c.MaxWrong, c.At, c.Limit, c.Cutoff = int(ints[0]), ints[1], int(ints[2]), ints[3]
	c.MinLen, c.MaxLen, c.Seats, c.TurnSeconds, c.Turn = int(ints[4]), int(ints[5]), int(ints[6]), int(ints[7]), ints[8]
	return c, nil
}

// Validate checks the fields of c that do not depend on state: the same
// checks run in the transport before proposing (so bad input never reaches
// the log) and in Apply (so a bad entry can never corrupt a replica).
func (c Command) Validate() error {
	if !ValidRoom(c.Room) {
		return roomNameError(c.Room)
	}
	if !ValidRequestID(c.RequestID) {
		return errorf(CodeInvalid, "request id must be at most %d printable ASCII characters", MaxRequestIDLen)
	}
	if c.At < 0 || c.At > maxAt {
		return errorf(CodeInvalid, "command time %d must be between 0 and %d Unix milliseconds", c.At, int64(maxAt))
	}
	if c.TokenHash != "" && len(c.TokenHash) != TokenHashLen {
		return errorf(CodeInvalid, "token hash of %d bytes, want %d", len(c.TokenHash), TokenHashLen)
	}
	// Which of the fields added with tokens each kind may carry (the older
	// ones are checked only where the rules read them, as they always
	// were, so that old entries apply as they did).
	limit, token, cutoff := 0, false, false
	if c.Kind != KindCreateRoom && c.settings() != (Settings{}) {
		return errorf(CodeInvalid, "a %s carries no room settings", c.Kind)
	}
	if c.Kind != KindTurnTimeout && c.Turn != 0 {
		return errorf(CodeInvalid, "a %s carries no turn", c.Kind)
	}
	switch c.Kind {
	case KindCreateRoom:
		limit = MaxRooms
		if c.MaxWrong < 0 || c.MaxWrong > MaxMaxWrong {
			return errorf(CodeInvalid, "wrong-guess limit %d must be between 1 and %d (0 for the default)", c.MaxWrong, MaxMaxWrong)
		}
		s := c.settings()
		if err := s.validate(); err != nil {
			return err
		}
		switch s = s.normalized(); {
		case s.Mode == ModeHost && c.Word != "":
			return errorf(CodeInvalid, "a room whose players set the words is created without one")
		case s.Mode != ModeHost && !ValidWord(c.Word):
			return errorf(CodeInvalid, "secret word must be %d-%d letters a-z", MinWordLen, MaxWordLen)
		case s.Mode != ModeHost && !s.fits(c.Word):
			return errorf(CodeInvalid, "secret word must be %d-%d letters, the room's range", s.MinLen, s.MaxLen)
		}
	case KindJoinRoom:
		limit, token = MaxPlayers, true
		if err := validPlayer(c.Player); err != nil {
			return err
		}
		if !ValidName(c.Name) {
			return errorf(CodeInvalid, "player name must be 1-%d printable characters", MaxNameLen)
		}
	case KindGuess:
		token = true
		if err := validPlayer(c.Player); err != nil {
			return err
		}
		if _, err := NormalizeLetter(c.Letter); err != nil {
			return err
		}
	case KindNewRound:
		token = c.Player != ""
		if c.Player != "" {
			if err := validPlayer(c.Player); err != nil {
				return err
			}
		}
		if !ValidWord(c.Word) {
			return errorf(CodeInvalid, "secret word must be %d-%d letters a-z", MinWordLen, MaxWordLen)
		}
	case KindDeleteRoom:
		cutoff = true
		if c.RequestID != "" {
			return errorf(CodeInvalid, "a %s carries no request id", c.Kind)
		}
		if c.Player != "" {
			return errorf(CodeInvalid, "a %s names no player", c.Kind)
		}
	case KindReclaimSeat:
		cutoff = true
		if c.RequestID != "" {
			return errorf(CodeInvalid, "a %s carries no request id", c.Kind)
		}
		if err := validPlayer(c.Player); err != nil {
			return err
		}
	case KindSetWord:
		token = true
		if err := validPlayer(c.Player); err != nil {
			return err
		}
		if !ValidWord(c.Word) {
			return errorf(CodeInvalid, "a word is %d-%d letters a-z", MinWordLen, MaxWordLen)
		}
	case KindTurnTimeout:
		switch {
		case c.RequestID != "":
			return errorf(CodeInvalid, "a %s carries no request id", c.Kind)
		case c.Player != "":
			return errorf(CodeInvalid, "a %s names no player", c.Kind)
		case c.Turn < 1:
			return errorf(CodeInvalid, "a %s names the turn it ends, from 1", c.Kind)
		}
	default:
		return errorf(CodeInvalid, "unknown command kind %d", uint8(c.Kind))
	}
	switch {
	case c.Limit < 0 || c.Limit > limit:
		return errorf(CodeInvalid, "cap %d of a %s must be between 0 and %d", c.Limit, c.Kind, limit)
	case c.TokenHash != "" && !token:
		return errorf(CodeInvalid, "a %s carries no token", c.Kind)
	case c.Cutoff != 0 && !cutoff, c.Cutoff < 0 || c.Cutoff > c.At:
		return errorf(CodeInvalid, "cutoff %d of a %s must be between 0 and the command's time %d", c.Cutoff, c.Kind, c.At)
	}
	return nil
}

func validPlayer(id string) error {
	if id == "" {
		return errorf(CodeInvalid, "player id is required")
	}
	if !ValidPlayerID(id) {
		return errorf(CodeInvalid, "player id %q must be 1-%d of A-Z, a-z, 0-9, '-' or '_'", clip(id), MaxPlayerIDLen)
	}
	return nil
}

// clip shortens hostile input before it is echoed in an error message.
func clip(s string) string {
	const max = 40
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}
