package game

// Room settings: what a room's creator chooses once, for every round of
// the room. They travel in the creation command and are checked there;
// nothing changes them later.

// Mode says who chooses a round's word.
type Mode string

// Modes of a room.
const (
	// ModeRandom: the proposer of each round draws its word from the
	// room's category.
	ModeRandom Mode = "random"
	// ModeHost: one player of the room, the setter, sets each round's word
	// (KindSetWord) and does not guess; the setter passes to the next seat
	// every round.
	ModeHost Mode = "host"
)

// Bounds of the settings.
const (
	// MinTurnSeconds and MaxTurnSeconds bound a turn of a timed room.
	MinTurnSeconds, MaxTurnSeconds = 5, 600
	// HistoryRounds is how many finished rounds a room remembers, and
	// shows in its public state.
	HistoryRounds = 10
)

// Settings are a room's choices at creation, as its public state shows
// them. Zero fields of a creation command mean the defaults; a room's
// Settings always hold the values in force.
type Settings struct {
	// Category names the word list of a random room (Categories).
	Category string `json:"category"`
	// MinLen and MaxLen bound the length of the room's words.
	MinLen int `json:"minLen"`
	MaxLen int `json:"maxLen"`
	// MaxPlayers is the room's own cap on players; 0 leaves only the
	// cluster's (Command.Limit of a join, at most MaxPlayers).
	MaxPlayers int  `json:"maxPlayers,omitempty"`
	Mode       Mode `json:"mode"`
	// TurnSeconds, if not 0, makes players guess in turns of this many
	// seconds each; a turn that runs out passes to the next player.
	TurnSeconds int `json:"turnSeconds,omitempty"`
}

// DefaultSettings are the settings of a room created without any: those
// of every room before settings existed.
var DefaultSettings = Settings{Category: DefaultCategory, MinLen: MinWordLen, MaxLen: MaxWordLen, Mode: ModeRandom}

// wordLengths fills in the default bounds of a length range.
func wordLengths(minLen, maxLen int) (int, int) {
	if minLen == 0 {
		minLen = MinWordLen
	}
	if maxLen == 0 {
		maxLen = MaxWordLen
	}
	return minLen, maxLen
}

// settings returns the settings c asks for, as given (zeros unfilled).
func (c Command) settings() Settings {
	return Settings{Category: c.Category, MinLen: c.MinLen, MaxLen: c.MaxLen, MaxPlayers: c.Seats, Mode: c.Mode, TurnSeconds: c.TurnSeconds}
}

// normalized fills in the defaults of s's zero fields.
func (s Settings) normalized() Settings {
	if s.Category == "" {
		s.Category = DefaultCategory
	}
	s.MinLen, s.MaxLen = wordLengths(s.MinLen, s.MaxLen)
	if s.Mode == "" {
		s.Mode = ModeRandom
	}
	return s
}

// validate checks s, as a creation command carries it (zeros for the
// defaults) or as a room holds it. Whether the category exists is the
// proposer's to check (PickWord): the lists are part of the binary, and
// replicas must agree whatever lists theirs holds.
func (s Settings) validate() error {
	minLen, maxLen := wordLengths(s.MinLen, s.MaxLen)
	switch {
	case s.Category != "" && !ValidRoom(s.Category):
		return errorf(CodeInvalid, "word category %q must be 1-%d of a-z, 0-9, '-' or '_'", clip(s.Category), MaxRoomLen)
	case s.MinLen < 0 || s.MaxLen < 0 || minLen < MinWordLen || maxLen > MaxWordLen || minLen > maxLen:
		return errorf(CodeInvalid, "word lengths %d-%d must be within %d-%d, the shorter first (0 for the default)", s.MinLen, s.MaxLen, MinWordLen, MaxWordLen)
	case s.MaxPlayers < 0 || s.MaxPlayers > MaxPlayers:
		return errorf(CodeInvalid, "max players %d must be between 1 and %d (0 for the cluster's cap)", s.MaxPlayers, MaxPlayers)
	case s.Mode != "" && s.Mode != ModeRandom && s.Mode != ModeHost:
		return errorf(CodeInvalid, "mode %q must be %q or %q", clip(string(s.Mode)), ModeRandom, ModeHost)
	case s.TurnSeconds != 0 && (s.TurnSeconds < MinTurnSeconds || s.TurnSeconds > MaxTurnSeconds):
		return errorf(CodeInvalid, "turn of %d seconds must be between %d and %d (0 for no turns)", s.TurnSeconds, MinTurnSeconds, MaxTurnSeconds)
	}
	return nil
}

// fits reports whether word is within the room's length range.
func (s Settings) fits(word string) bool {
	return len(word) >= s.MinLen && len(word) <= s.MaxLen
}

// NormalizeWord turns a word as a setter typed it into a secret word:
// ASCII letters, lower-cased, MinWordLen-MaxWordLen of them. Its errors
// never repeat the word, which is secret.
func NormalizeWord(s string) (string, error) {
	if len(s) < MinWordLen || len(s) > MaxWordLen {
		return "", errorf(CodeInvalid, "a word is %d-%d letters a-z", MinWordLen, MaxWordLen)
	}
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z':
		case c >= 'A' && c <= 'Z':
			b[i] = c - 'A' + 'a'
		default:
			return "", errorf(CodeInvalid, "a word is letters a-z only (character %d is not)", i+1)
		}
	}
	return string(b), nil
}

// CheckWord reports whether word (normalized) may be the word of a room
// with settings s: the proposer's check before a set_word enters the log,
// the same the Machine makes when it applies one.
func (s Settings) CheckWord(word string) error {
	if !s.fits(word) {
		return errorf(CodeInvalid, "this room's words are %d-%d letters", s.MinLen, s.MaxLen)
	}
	return nil
}
