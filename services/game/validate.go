package game

import (
	"crypto/sha256"
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"
)

// Limits of the rules. They bound what one command can make a replica hold,
// so a hostile client cannot grow the state without bound.
const (
	// MaxRoomLen bounds a room name; names become NATS subject tokens.
	MaxRoomLen = 32
	// MaxPlayerIDLen bounds a player id.
	MaxPlayerIDLen = 64
	// MaxNameLen bounds a display name, in runes.
	MaxNameLen = 32
	// MaxRequestIDLen bounds a request id.
	MaxRequestIDLen = 64
	// MinWordLen and MaxWordLen bound a secret word.
	MinWordLen, MaxWordLen = 2, 32
	// DefaultMaxWrong is the wrong-guess limit when a room does not set one:
	// head, body, two arms, two legs.
	DefaultMaxWrong = 6
	// MaxMaxWrong is the largest wrong-guess limit a room may set.
	MaxMaxWrong = 26
	// MaxPlayers bounds the players of one room: the most a proposer's cap
	// (Command.Limit of a join) may allow, and what a snapshot may hold.
	MaxPlayers = 64
	// MaxRooms bounds the rooms of one cluster: the most a proposer's cap
	// (Command.Limit of a creation) may allow, and what a snapshot may
	// hold. The snapshot's size bound is sized for it.
	MaxRooms = 10000
	// SessionWindow is how many request ids a room remembers at least,
	// with their first answers (applied or refused), however old. A retry
	// is answered as the first time as long as fewer than this many
	// requests to the room were answered since, or its first answer is
	// younger than SessionMinAge.
	SessionWindow = 1024
	// SessionMinAge is how long every answer is remembered at least,
	// whatever the count, by the times the commands carry: longer than any
	// copy of a request lives inside the cluster (a proposer's queues and
	// deadlines are seconds) and than clients keep retrying one, so that
	// neither a crowd in the room nor a flood of other requests can make a
	// room forget an answer a retry may still ask for.
	SessionMinAge = 30 * time.Second
	// SessionCap bounds what a room remembers, young answers included: a
	// room that answered this many requests within SessionMinAge refuses
	// requests with ids as busy (CodeBusy, not remembered) until its
	// oldest answers age, rather than forget one early. It is reached only
	// above SessionCap/SessionMinAge (about 270) requests per second to
	// one room, sustained.
	SessionCap = 8192
	// MissingRoomWindow is how many refusals of requests addressed to
	// rooms that do not exist the cluster remembers at least, all rooms
	// together (a room remembers its own once it is created); younger ones
	// are kept as a room's are, up to MissingRoomCap.
	MissingRoomWindow = 4096
	// MissingRoomCap bounds the refusals of requests to missing rooms, as
	// SessionCap bounds a room's answers. It is SessionCap, so that a room
	// created with its refusals fits them all.
	MissingRoomCap = SessionCap
	// MinTokenLen and MaxTokenLen bound a player's token: at least 22
	// characters of the URL-safe base64 alphabet carry 132 bits, when
	// drawn at random as the nodes and the page draw them.
	MinTokenLen, MaxTokenLen = 22, 64
	// TokenHashLen is the length of HashToken's result, in bytes.
	TokenHashLen = sha256.Size
)

// ValidRoom reports whether s is a room name: 1-32 of [a-z0-9_-], starting
// with a letter or digit. The alphabet keeps names safe as NATS subject
// tokens (no '.', '*', '>' or spaces) and in URLs.
func ValidRoom(s string) bool {
	if len(s) == 0 || len(s) > MaxRoomLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '-' || c == '_') && i > 0:
		default:
			return false
		}
	}
	return true
}

// roomNameError is the refusal of a name that is not ValidRoom.
func roomNameError(name string) error {
	return errorf(CodeInvalid, "room name %q must be 1-%d of a-z, 0-9, '-' or '_', starting with a letter or digit", clip(name), MaxRoomLen)
}

// ValidPlayerID reports whether s is a player id: 1-64 of [A-Za-z0-9_-].
func ValidPlayerID(s string) bool {
	if len(s) == 0 || len(s) > MaxPlayerIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// ValidName reports whether s is a display name: valid UTF-8, 1-32 runes,
// printable, not blank. Markup is allowed here and escaped where it is shown.
func ValidName(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	n, blank := 0, true
	for _, r := range s {
		n++
		if !unicode.IsPrint(r) {
			return false
		}
		if !unicode.IsSpace(r) {
			blank = false
		}
	}
	return n > 0 && n <= MaxNameLen && !blank
}

// ValidRequestID reports whether s is empty (no deduplication) or 1-64
// printable ASCII characters.
func ValidRequestID(s string) bool {
	if len(s) > MaxRequestIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// ValidToken reports whether s can be a player's token: 22-64 of
// [A-Za-z0-9_-], the alphabet of URL-safe base64, so it travels in JSON,
// URLs and gRPC metadata unescaped.
func ValidToken(s string) bool {
	if len(s) < MinTokenLen || len(s) > MaxTokenLen {
		return false
	}
	return ValidPlayerID(s)
}

// TokenRule says what ValidToken accepts, for error messages.
var TokenRule = fmt.Sprintf("a token is %d-%d characters of A-Z, a-z, 0-9, '-' and '_'", MinTokenLen, MaxTokenLen)

// HashToken returns what the replicated state keeps of a player's token:
// its SHA-256, as TokenHashLen raw bytes. The token is a random secret of
// at least 128 bits, so a plain hash is enough (no salt, no slow hash:
// there is no dictionary to guess from), and whoever reads the log, a
// snapshot or the state learns nothing that lets them act as the player.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return string(sum[:])
}

// ValidWord reports whether s can be a secret word: 2-32 letters a-z.
func ValidWord(s string) bool {
	if len(s) < MinWordLen || len(s) > MaxWordLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 'a' || s[i] > 'z' {
			return false
		}
	}
	return true
}

// NormalizeLetter turns a guess as typed into one lower-case letter a-z, or
// reports an error saying what is wrong with it.
func NormalizeLetter(s string) (byte, error) {
	if len(s) != 1 {
		if utf8.RuneCountInString(s) == 1 {
			return 0, errorf(CodeInvalid, "letter %q is not a letter a-z", s)
		}
		return 0, errorf(CodeInvalid, "a guess is exactly one letter, got %d characters", utf8.RuneCountInString(s))
	}
	c := s[0]
	switch {
	case c >= 'a' && c <= 'z':
		return c, nil
	case c >= 'A' && c <= 'Z':
		return c - 'A' + 'a', nil
	default:
		return 0, errorf(CodeInvalid, "letter %q is not a letter a-z", s)
	}
}
