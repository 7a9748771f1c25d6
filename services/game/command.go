package game

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
)

// Kind says what a command does.
type Kind uint8

// Kinds of commands, one per thing a player can do.
const (
	// KindCreateRoom creates a room and starts its first round with Word.
	KindCreateRoom Kind = iota + 1
	// KindJoinRoom adds Player (named Name) to a room, or renames them.
	KindJoinRoom
	// KindGuess guesses Letter in the room's current round.
	KindGuess
	// KindNewRound starts the next round with Word once the last is over.
	KindNewRound
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
	default:
		return fmt.Sprintf("kind(%d)", uint8(k))
	}
}

// Command is one entry of the replicated log. The proposer fills every field
// the rules need, including the secret Word and the time At, so that applying
// it needs nothing from the outside world. The JSON names are those of the
// first encoding, which old logs hold.
type Command struct {
	Kind      Kind   `json:"k"`
	Room      string `json:"r"`
	Player    string `json:"p,omitempty"`
	Name      string `json:"n,omitempty"`
	Letter    string `json:"l,omitempty"`
	Word      string `json:"w,omitempty"`
	MaxWrong  int    `json:"m,omitempty"`
	RequestID string `json:"q,omitempty"`
	// At is the proposer's wall clock in Unix milliseconds; events carry it.
	At int64 `json:"t,omitempty"`
}

// Versions of an encoded command: the first byte of its log entry, so the
// encoding can change without misreading old entries. Version 1 is JSON,
// the first encoding, still read from old logs; version 3 is binary, what
// Encode writes. (Version 2 frames a batch of commands; see EncodeBatch.)
const (
	commandJSON   = 1
	commandBinary = 3
)

// maxAt is the last Unix millisecond of the year 9999: events carry At as an
// RFC 3339 time, which JSON cannot encode for later years, and one event that
// cannot be encoded would make every later snapshot of the Machine fail.
const maxAt = 253402300799999

// MaxCommandSize bounds an encoded command; anything longer is not one of
// ours.
const MaxCommandSize = 1024

// Encode returns the log entry bytes of c. Every replica decodes every
// command, so the encoding is binary: the version byte, the kind, the six
// strings of the command each after its length (room, player, name,
// letter, word, request id), then MaxWrong and At as signed varints.
func (c Command) Encode() []byte {
	n := 2 + 6*binary.MaxVarintLen16 + 2*binary.MaxVarintLen64 +
		len(c.Room) + len(c.Player) + len(c.Name) + len(c.Letter) + len(c.Word) + len(c.RequestID)
	b := make([]byte, 0, n)
	b = append(b, commandBinary, byte(c.Kind))
	for _, f := range [...]string{c.Room, c.Player, c.Name, c.Letter, c.Word, c.RequestID} {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	b = binary.AppendVarint(b, int64(c.MaxWrong))
	return binary.AppendVarint(b, c.At)
}

// DecodeCommand parses a log entry written by Encode (or by the JSON
// encoding of old logs) and validates it. It never panics, whatever the
// bytes.
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
		c, err = decodeBinary(b[1:])
	case commandJSON:
		c, err = decodeJSON(b[1:])
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

func decodeBinary(b []byte) (Command, error) {
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
	var fields [6]string
	for i := range fields {
		l, k := binary.Uvarint(b[at:])
		if k <= 0 || l > uint64(len(b)-at-k) {
			return malformed("bad string length")
		}
		at += k
		fields[i] = rest[at : at+int(l)]
		at += int(l)
	}
	c.Room, c.Player, c.Name, c.Letter, c.Word, c.RequestID = fields[0], fields[1], fields[2], fields[3], fields[4], fields[5]
	maxWrong, k := binary.Varint(b[at:])
	if k <= 0 || maxWrong < math.MinInt32 || maxWrong > math.MaxInt32 {
		return malformed("bad wrong-guess limit")
	}
	at += k
	c.MaxWrong = int(maxWrong)
	if c.At, k = binary.Varint(b[at:]); k <= 0 {
		return malformed("bad time")
	}
	if at += k; at != len(b) {
		return malformed(fmt.Sprintf("%d bytes of trailing data", len(b)-at))
	}
	return c, nil
}

// decodeJSON reads the first encoding: strict JSON with the field names of
// Command's tags and nothing else.
func decodeJSON(b []byte) (Command, error) {
	var c Command
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Command{}, errorf(CodeInvalid, "malformed command: %v", err)
	}
	// More would miss a stray '}' or ']'; only whitespace may follow.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Command{}, errorf(CodeInvalid, "malformed command: trailing data")
	}
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
	switch c.Kind {
	case KindCreateRoom:
		if c.MaxWrong < 0 || c.MaxWrong > MaxMaxWrong {
			return errorf(CodeInvalid, "wrong-guess limit %d must be between 1 and %d (0 for the default)", c.MaxWrong, MaxMaxWrong)
		}
		if !ValidWord(c.Word) {
			return errorf(CodeInvalid, "secret word must be %d-%d letters a-z", MinWordLen, MaxWordLen)
		}
	case KindJoinRoom:
		if err := validPlayer(c.Player); err != nil {
			return err
		}
		if !ValidName(c.Name) {
			return errorf(CodeInvalid, "player name must be 1-%d printable characters", MaxNameLen)
		}
	case KindGuess:
		if err := validPlayer(c.Player); err != nil {
			return err
		}
		if _, err := NormalizeLetter(c.Letter); err != nil {
			return err
		}
	case KindNewRound:
		if c.Player != "" {
			if err := validPlayer(c.Player); err != nil {
				return err
			}
		}
		if !ValidWord(c.Word) {
			return errorf(CodeInvalid, "secret word must be %d-%d letters a-z", MinWordLen, MaxWordLen)
		}
	default:
		return errorf(CodeInvalid, "unknown command kind %d", uint8(c.Kind))
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
