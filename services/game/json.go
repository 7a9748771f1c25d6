package game

import (
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// The leader encodes a state and an event for every committed command, the
// payloads of DESIGN.md's room subjects. encoding/json walks the structs by
// reflection each time, which made encoding the largest single cost of
// publishing; these appenders write the same bytes directly, escaping
// included. The tests and a fuzz target hold them to encoding/json's
// output, byte for byte.

// AppendJSON appends s as encoding/json would marshal it.
func (s *State) AppendJSON(b []byte) []byte {
	b = append(b, `{"room":`...)
	b = appendString(b, s.Room)
	b = append(b, `,"round":`...)
	b = strconv.AppendUint(b, s.Round, 10)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, s.Seq, 10)
	b = append(b, `,"prev":`...)
	b = strconv.AppendUint(b, s.Prev, 10)
	b = append(b, `,"masked":`...)
	b = appendString(b, s.Masked)
	b = append(b, `,"guessed":`...)
	b = appendStrings(b, s.Guessed)
	b = append(b, `,"wrong":`...)
	b = appendStrings(b, s.Wrong)
	b = append(b, `,"wrongLeft":`...)
	b = strconv.AppendInt(b, int64(s.WrongLeft), 10)
	b = append(b, `,"maxWrong":`...)
	b = strconv.AppendInt(b, int64(s.MaxWrong), 10)
	b = append(b, `,"status":`...)
	b = appendString(b, string(s.Status))
	if s.Word != "" {
		b = append(b, `,"word":`...)
		b = appendString(b, s.Word)
	}
	b = append(b, `,"players":`...)
	if s.Players == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range s.Players {
			if i > 0 {
				b = append(b, ',')
			}
			p := &s.Players[i]
			b = append(b, `{"id":`...)
			b = appendString(b, p.ID)
			b = append(b, `,"name":`...)
			b = appendString(b, p.Name)
			b = append(b, `,"score":`...)
			b = strconv.AppendInt(b, p.Score, 10)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if g := s.LastGuess; g != nil {
		b = append(b, `,"lastGuess":{"player":`...)
		b = appendString(b, g.Player)
		b = append(b, `,"letter":`...)
		b = appendString(b, g.Letter)
		b = append(b, `,"outcome":`...)
		b = appendString(b, string(g.Outcome))
		b = append(b, '}')
	}
	b = s.Settings.appendJSON(append(b, `,"settings":`...))
	if s.Setter != "" {
		b = append(b, `,"setter":`...)
		b = appendString(b, s.Setter)
	}
	if t := s.Turn; t != nil {
		b = append(b, `,"turn":{"player":`...)
		b = appendString(b, t.Player)
		b = append(b, `,"number":`...)
		b = strconv.AppendUint(b, t.Number, 10)
		b = append(b, `,"deadline":`...)
		b = strconv.AppendInt(b, t.Deadline, 10)
		b = append(b, '}')
	}
	if s.HistorySeq != 0 {
		b = append(b, `,"historySeq":`...)
		b = strconv.AppendUint(b, s.HistorySeq, 10)
	}
	if len(s.History) > 0 {
		b = appendRounds(append(b, `,"history":`...), s.History)
	}
	if len(s.Leaderboard) > 0 {
		b = append(b, `,"leaderboard":[`...)
		for i, l := range s.Leaderboard {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"id":`...)
			b = appendString(b, l.ID)
			b = append(b, `,"name":`...)
			b = appendString(b, l.Name)
			b = append(b, `,"score":`...)
			b = strconv.AppendInt(b, l.Score, 10)
			b = append(b, `,"wins":`...)
			b = strconv.AppendInt(b, l.Wins, 10)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

func (s *Settings) appendJSON(b []byte) []byte {
	b = append(b, `{"category":`...)
	b = appendString(b, s.Category)
	b = append(b, `,"minLen":`...)
	b = strconv.AppendInt(b, int64(s.MinLen), 10)
	b = append(b, `,"maxLen":`...)
	b = strconv.AppendInt(b, int64(s.MaxLen), 10)
	if s.MaxPlayers != 0 {
		b = append(b, `,"maxPlayers":`...)
		b = strconv.AppendInt(b, int64(s.MaxPlayers), 10)
	}
	b = append(b, `,"mode":`...)
	b = appendString(b, string(s.Mode))
	if s.TurnSeconds != 0 {
		b = append(b, `,"turnSeconds":`...)
		b = strconv.AppendInt(b, int64(s.TurnSeconds), 10)
	}
	return append(b, '}')
}

// AppendJSON appends h as encoding/json would marshal it.
func (h *History) AppendJSON(b []byte) []byte {
	b = h.appendHead(b)
	if h.Rounds == nil {
		return append(b, "null}"...)
	}
	return append(appendRounds(b, h.Rounds), '}')
}

// appendHead appends h's JSON up to its rounds.
func (h *History) appendHead(b []byte) []byte {
	b = append(b, `{"room":`...)
	b = appendString(b, h.Room)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, h.Seq, 10)
	return append(b, `,"rounds":`...)
}

// HistoryEncoder appends histories as History.AppendJSON does, byte for
// byte, but encodes each finished round once. The history a finished
// round publishes repeats the room's earlier rounds (up to
// HistoryRounds-1 of them, with every guess), which never change once
// finished, so re-encoding them made most of the cost of publishing a
// history. The encoder keeps, per room, the rounds of the last history it
// encoded, and forgets every room at once when it would hold more than
// MaxRooms: at most MaxRooms×HistoryRounds rounds, about as many bytes as
// the Machine's own finished rounds. It is not safe for concurrent use;
// the zero value is ready.
type HistoryEncoder struct {
	rooms map[string][]encodedRound
}

// encodedRound is a finished round's JSON, known by the seq of the change
// that finished it and its number. A committed change never changes, nor
// does the round it finished, so the pair names the bytes.
type encodedRound struct {
	seq, round uint64
	json       []byte
}

// AppendJSON appends h as h.AppendJSON would, reusing the bytes of the
// rounds that the room's last encoded history had too.
func (e *HistoryEncoder) AppendJSON(b []byte, h *History) []byte {
	if len(h.Rounds) == 0 {
		e.Forget(h.Room)
		return h.AppendJSON(b)
	}
	old := e.rooms[h.Room]
	if old == nil && len(e.rooms) >= MaxRooms {
		clear(e.rooms)
	}
	known := make([]encodedRound, 0, len(h.Rounds))
	b = append(h.appendHead(b), '[')
	for i := range h.Rounds {
		if i > 0 {
			b = append(b, ',')
		}
		r := &h.Rounds[i]
		if j := slices.IndexFunc(old, func(o encodedRound) bool { return o.seq == r.Seq && o.round == r.Round }); j >= 0 {
			b = append(b, old[j].json...)
			known = append(known, old[j])
			continue
		}
		start := len(b)
		b = r.appendJSON(b)
		// A round of a snapshot older than RoundRecord.Seq has none: it
		// is not told apart from the others, so it is not kept.
		if r.Seq != 0 {
			known = append(known, encodedRound{seq: r.Seq, round: r.Round, json: slices.Clone(b[start:])})
		}
	}
	if e.rooms == nil {
		e.rooms = make(map[string][]encodedRound)
	}
	e.rooms[h.Room] = known
	return append(b, "]}"...)
}

// Forget drops what the encoder keeps of room: the publisher calls it
// when the room is deleted.
func (e *HistoryEncoder) Forget(room string) { delete(e.rooms, room) }

func appendRounds(b []byte, rounds []RoundRecord) []byte {
	b = append(b, '[')
	for i := range rounds {
		if i > 0 {
			b = append(b, ',')
		}
		b = rounds[i].appendJSON(b)
	}
	return append(b, ']')
}

func (r *RoundRecord) appendJSON(b []byte) []byte {
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, r.Seq, 10)
	b = append(b, `,"round":`...)
	b = strconv.AppendUint(b, r.Round, 10)
	b = append(b, `,"word":`...)
	b = appendString(b, r.Word)
	b = append(b, `,"status":`...)
	b = appendString(b, string(r.Status))
	if r.Winner != "" {
		b = append(b, `,"winner":`...)
		b = appendString(b, r.Winner)
	}
	if r.Setter != "" {
		b = append(b, `,"setter":`...)
		b = appendString(b, r.Setter)
	}
	b = append(b, `,"guesses":`...)
	if r.Guesses == nil {
		return append(b, "null}"...)
	}
	b = append(b, '[')
	for i, g := range r.Guesses {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"player":`...)
		b = appendString(b, g.Player)
		b = append(b, `,"letter":`...)
		b = appendString(b, g.Letter)
		b = append(b, `,"outcome":`...)
		b = appendString(b, string(g.Outcome))
		b = append(b, '}')
	}
	return append(b, "]}"...)
}

// AppendJSON appends e as encoding/json would marshal it.
func (e *Event) AppendJSON(b []byte) []byte {
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, e.Seq, 10)
	b = append(b, `,"prev":`...)
	b = strconv.AppendUint(b, e.Prev, 10)
	b = append(b, `,"room":`...)
	b = appendString(b, e.Room)
	b = append(b, `,"kind":`...)
	b = appendString(b, e.Kind)
	b = append(b, `,"round":`...)
	b = strconv.AppendUint(b, e.Round, 10)
	for _, f := range [...]struct{ key, v string }{
		{`,"player":`, e.Player}, {`,"name":`, e.Name}, {`,"letter":`, e.Letter}, {`,"outcome":`, string(e.Outcome)},
	} {
		if f.v != "" {
			b = append(b, f.key...)
			b = appendString(b, f.v)
		}
	}
	b = append(b, `,"status":`...)
	b = appendString(b, string(e.Status))
	b = append(b, `,"at":`...)
	if y := e.At.Year(); y < 0 || y > 9999 {
		// encoding/json refuses such a time; the Machine never makes one
		// (commands' times are bounded), and null is what a consumer can
		// still parse.
		b = append(b, "null"...)
	} else {
		b = append(b, '"')
		b = e.At.AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	return append(b, '}')
}

func appendStrings(b []byte, ss []string) []byte {
	if ss == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, s)
	}
	return append(b, ']')
}

// appendString appends s as a JSON string, escaped as encoding/json
// escapes it (HTML characters included, invalid UTF-8 as U+FFFD).
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
