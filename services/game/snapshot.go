package game

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
)

// snapshotVersion is written first in every snapshot so the format can
// change. Version 2 added refusals to the session tables (a session's code
// and message, and the refusals of requests to missing rooms). Version 3
// added player tokens and times: each player's token hash and when they
// last acted, each room's last time, and each remembered request's scope.
// Version 4 added the room settings, the setter, the turn, the finished
// rounds with the guesses of the current one, and each player's wins.
// Version 5 added the seq of the change that finished each round (see
// State.HistorySeq); a round restored from version 4 has none, and its
// room's last finished round takes the room's seq at the snapshot, which
// is later than the real one and fixed from then on (so it is still the
// history's version: it changes when the next round finishes).
// Version 6 added the time of each remembered answer (its command's At),
// which the windows keep answers by (SessionMinAge); an answer restored
// from an older version has none, as if it were old, and is kept by count
// as it was then.
// Restore still reads versions 1 to 5: their seats have no token (the
// next join with one claims the seat), their requests the empty scope, and
// their rooms and players the time of the room's last event (versions 1
// and 2); their rooms have the DefaultSettings, no history and no wins.
const snapshotVersion = 6

// MaxSnapshotSize bounds what Restore reads; a snapshot larger than any
// state MaxRooms rooms can hold is not ours. (The largest, every room full
// of the longest names, tokens, events and SessionCap of the longest
// refusals in scopes of their own, takes about 28 GB. No cluster comes
// near it: answers past a room's SessionWindow are kept only while younger
// than SessionMinAge, so there are at most as many as the cluster commits
// in SessionMinAge, a few hundred thousand.)
const MaxSnapshotSize = 32 << 30

type snapshotFile struct {
	Version int          `json:"version"`
	Applied uint64       `json:"applied"`
	Rooms   []roomRecord `json:"rooms"`
	// Missing is Machine.missing, oldest first.
	Missing []missingRecord `json:"missing,omitempty"`
}

type roomRecord struct {
	Name     string          `json:"name"`
	Round    uint64          `json:"round"`
	Seq      uint64          `json:"seq"`
	Prev     uint64          `json:"prev"`
	Word     string          `json:"word"`
	MaxWrong int             `json:"maxWrong"`
	Guessed  string          `json:"guessed"`
	Wrong    string          `json:"wrong"`
	Status   Status          `json:"status"`
	Players  []playerRecord  `json:"players"`
	Last     *LastGuess      `json:"last,omitempty"`
	Sessions []sessionRecord `json:"sessions"`
	Events   []Event         `json:"events"`
	// LastAt is room.lastAt (version 3 on).
	LastAt int64 `json:"lastAt,omitempty"`
	// The rest is from version 4 on: the room's settings (required), its
	// setter, its current turn, its finished rounds and the guesses of
	// the round being played.
	Settings   *Settings     `json:"settings,omitempty"`
	Setter     string        `json:"setter,omitempty"`
	TurnPlayer string        `json:"turnPlayer,omitempty"`
	Turn       uint64        `json:"turn,omitempty"`
	TurnAt     int64         `json:"turnAt,omitempty"`
	Rounds     []RoundRecord `json:"rounds,omitempty"`
	Current    []GuessRecord `json:"current,omitempty"`
}

// playerRecord is a seat: the public player, the hex of its token hash and
// when the player last acted (the last two from version 3 on).
type playerRecord struct {
	Player
	TokenHash string `json:"tokenHash,omitempty"`
	LastAt    int64  `json:"lastAt,omitempty"`
	// Wins is seat.wins (version 4 on).
	Wins int64 `json:"wins,omitempty"`
}

// sessionRecord is one remembered request: its id, the hex of its scope
// (version 3 on; see sessionKey) and its first answer.
type sessionRecord struct {
	ID    string `json:"id"`
	Scope string `json:"scope,omitempty"`
	session
}

type missingRecord struct {
	Room string `json:"room"`
	sessionRecord
}

// Snapshot writes the whole state to w, rooms sorted by name so that equal
// Machines write equal bytes.
func (m *Machine) Snapshot(w io.Writer) error {
	f := snapshotFile{Version: snapshotVersion, Applied: m.applied, Rooms: make([]roomRecord, 0, len(m.rooms))}
	for _, n := range m.roomNames() {
		r := m.rooms[n]
		rec := roomRecord{
			Name: r.name, Round: r.round, Seq: r.seq, Prev: r.prev, Word: r.word, MaxWrong: r.maxWrong,
			Guessed: string(r.guessed), Wrong: string(r.wrong), Status: r.status,
			Players: make([]playerRecord, len(r.players)), Last: r.last,
			Sessions: make([]sessionRecord, len(r.sessions.order)), Events: r.history.events(),
			LastAt: r.lastAt, Settings: &r.settings, Setter: r.setter, TurnPlayer: r.turnPlayer, Turn: r.turnNo, TurnAt: r.turnAt,
			Rounds: r.rounds, Current: r.cur,
		}
		for i, p := range r.players {
			rec.Players[i] = playerRecord{Player: p.Player, TokenHash: hex.EncodeToString([]byte(p.hash)), LastAt: p.lastAt, Wins: p.wins}
		}
		for i, e := range r.sessions.order {
			rec.Sessions[i] = sessionRecordOf(e.key, r.sessions.answers[e.key])
		}
		f.Rooms = append(f.Rooms, rec)
	}
	for _, e := range m.missing.order {
		f.Missing = append(f.Missing, missingRecord{Room: e.key.room, sessionRecord: sessionRecordOf(e.key.sessionKey, m.missing.answers[e.key])})
	}
	bw := bufio.NewWriter(w)
	if err := json.NewEncoder(bw).Encode(f); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	return nil
}

func sessionRecordOf(k sessionKey, s session) sessionRecord {
	return sessionRecord{ID: k.id, Scope: hex.EncodeToString([]byte(k.scope)), session: s}
}

// Restore replaces the state of m with a snapshot written by Snapshot. The
// snapshot is checked against the same rules commands obey; on any error m
// is left unchanged.
func (m *Machine) Restore(rd io.Reader) error {
	dec := json.NewDecoder(io.LimitReader(rd, MaxSnapshotSize))
	dec.DisallowUnknownFields()
	var f snapshotFile
	if err := dec.Decode(&f); err != nil {
		return fmt.Errorf("read snapshot: %w", err)
	}
	if f.Version < 1 || f.Version > snapshotVersion {
		return fmt.Errorf("read snapshot: unknown version %d", f.Version)
	}
	if len(f.Rooms) > MaxRooms {
		return fmt.Errorf("read snapshot: %d rooms exceed the limit of %d", len(f.Rooms), MaxRooms)
	}
	if len(f.Missing) > MissingRoomCap {
		return fmt.Errorf("read snapshot: %d refusals of requests to missing rooms exceed %d", len(f.Missing), MissingRoomCap)
	}
	rooms := make(map[string]*room, len(f.Rooms))
	for i := range f.Rooms {
		r, err := f.Rooms[i].room(&f)
		if err != nil {
			return fmt.Errorf("read snapshot: room %d: %w", i, err)
		}
		if rooms[r.name] != nil {
			return fmt.Errorf("read snapshot: room %q appears twice", r.name)
		}
		if r.prev >= r.seq && r.seq != 0 {
			return fmt.Errorf("read snapshot: room %q prev %d is not before seq %d", r.name, r.prev, r.seq)
		}
		if r.seq > f.Applied {
			return fmt.Errorf("read snapshot: room %q seq %d is past the applied index %d", r.name, r.seq, f.Applied)
		}
		rooms[r.name] = r
	}
	var missing window[missingKey]
	for i, rec := range f.Missing {
		key, err := rec.key(&f)
		if err != nil {
			return fmt.Errorf("read snapshot: refusal %d: %w", i, err)
		}
		k := missingKey{room: rec.Room, sessionKey: key}
		switch _, dup := missing.get(k); {
		case !ValidRoom(rec.Room) || rooms[rec.Room] != nil:
			// A room takes over its refusals when it is created.
			return fmt.Errorf("read snapshot: refusal %d: room %q is not a missing room", i, clip(rec.Room))
		case dup:
			return fmt.Errorf("read snapshot: refusal %d: request id %q of room %q appears twice", i, clip(rec.ID), rec.Room)
		case rec.Code == 0:
			return fmt.Errorf("read snapshot: refusal %d: no refusal code", i)
		}
		if err := rec.check(&f); err != nil {
			return fmt.Errorf("read snapshot: refusal %d: %w", i, err)
		}
		missing.restore(k, rec.session)
	}
	m.rooms = rooms
	m.missing = missing
	m.applied = f.Applied
	return nil
}

// key returns the request rec remembers, checking its scope: a token hash,
// or none, and none before version 3.
func (rec *sessionRecord) key(f *snapshotFile) (sessionKey, error) {
	scope, err := tokenHash(rec.Scope, f)
	if err != nil {
		return sessionKey{}, fmt.Errorf("request id %q: %w", clip(rec.ID), err)
	}
	return sessionKey{scope: scope, id: rec.ID}, nil
}

// tokenHash decodes the hex of a token hash read from snapshot f: empty,
// or TokenHashLen bytes from version 3 on.
func tokenHash(h string, f *snapshotFile) (string, error) {
	if h == "" {
		return "", nil
	}
	if f.Version < 3 {
		return "", fmt.Errorf("holds a token hash, which version %d does not", f.Version)
	}
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != TokenHashLen {
		return "", fmt.Errorf("invalid token hash")
	}
	return string(b), nil
}

// check verifies one remembered answer of snapshot f: a valid request id,
// an index f has applied, and either an outcome or a refusal, the latter
// only from version 2 on.
func (rec *sessionRecord) check(f *snapshotFile) error {
	s := rec.session
	switch {
	case rec.ID == "" || !ValidRequestID(rec.ID):
		return fmt.Errorf("invalid request id %q", clip(rec.ID))
	case s.Seq > f.Applied:
		return fmt.Errorf("request id %q answered at %d, past the applied index %d", clip(rec.ID), s.Seq, f.Applied)
	case s.Outcome != "" && s.Outcome != OutcomeCorrect && s.Outcome != OutcomeWrong && s.Outcome != OutcomeRepeated:
		return fmt.Errorf("request id %q has an unknown outcome", clip(rec.ID))
	case s.At < 0 || s.At > maxAt:
		return fmt.Errorf("request id %q answered at time %d", clip(rec.ID), s.At)
	case s.At != 0 && f.Version < 6:
		return fmt.Errorf("request id %q has an answer time, which version %d does not", clip(rec.ID), f.Version)
	case s.Code == 0 && s.Msg != "":
		return fmt.Errorf("request id %q has a refusal message but no code", clip(rec.ID))
	case s.Code == 0:
		return nil
	case f.Version < 2:
		return fmt.Errorf("request id %q holds a refusal, which version %d does not", clip(rec.ID), f.Version)
	case s.Code == CodePermission && f.Version < 3:
		return fmt.Errorf("request id %q holds a refusal for want of a token, which version %d does not", clip(rec.ID), f.Version)
	case s.Code < CodeInvalid || s.Code > CodePermission || s.Msg == "" || s.Outcome != "":
		return fmt.Errorf("request id %q holds an invalid refusal", clip(rec.ID))
	}
	return nil
}

func (rec *roomRecord) room(f *snapshotFile) (*room, error) {
	settings, err := rec.settings(f)
	if err != nil {
		return nil, err
	}
	switch {
	case !ValidRoom(rec.Name):
		return nil, fmt.Errorf("invalid name %q", clip(rec.Name))
	case rec.Status == StatusSetting && (settings.Mode != ModeHost || rec.Word != "" || rec.Guessed != "" || rec.Last != nil):
		return nil, fmt.Errorf("a round waiting for its word has a word, letters, or no setter to set it")
	case rec.Status != StatusSetting && !ValidWord(rec.Word):
		return nil, fmt.Errorf("invalid word")
	case rec.MaxWrong < 1 || rec.MaxWrong > MaxMaxWrong:
		return nil, fmt.Errorf("invalid wrong-guess limit %d", rec.MaxWrong)
	case rec.Round == 0:
		return nil, fmt.Errorf("round 0")
	case len(rec.Players) > MaxPlayers:
		return nil, fmt.Errorf("%d players exceed %d", len(rec.Players), MaxPlayers)
	case len(rec.Sessions) > SessionCap:
		return nil, fmt.Errorf("%d sessions exceed %d", len(rec.Sessions), SessionCap)
	}
	r := &room{
		name: rec.Name, round: rec.Round, seq: rec.Seq, prev: rec.Prev, word: rec.Word, maxWrong: rec.MaxWrong,
		guessed: []byte(rec.Guessed), wrong: []byte(rec.Wrong), status: rec.Status,
		last: rec.Last, lastAt: rec.LastAt, settings: settings,
		setter: rec.Setter, turnPlayer: rec.TurnPlayer, turnNo: rec.Turn, turnAt: rec.TurnAt, rounds: rec.Rounds, cur: rec.Current,
	}
	if r.status != StatusSetting {
		if err := r.checkLetters(); err != nil {
			return nil, err
		}
	}
	if err := r.checkRounds(f); err != nil {
		return nil, err
	}
	if err := r.restoreHistory(rec.Events); err != nil {
		return nil, err
	}
	if f.Version < 3 {
		if rec.LastAt != 0 {
			return nil, fmt.Errorf("holds a time, which version %d does not", f.Version)
		}
		// Before times were kept, the room was last played when its
		// last event happened.
		if evs := r.history.events(); len(evs) > 0 {
			r.lastAt = min(max(evs[len(evs)-1].At.UnixMilli(), 0), maxAt)
		}
	}
	if r.lastAt < 0 || r.lastAt > maxAt {
		return nil, fmt.Errorf("invalid time %d", r.lastAt)
	}
	for _, p := range rec.Players {
		if !ValidPlayerID(p.ID) || !ValidName(p.Name) || r.seat(p.ID) != nil {
			return nil, fmt.Errorf("invalid or repeated player %q", clip(p.ID))
		}
		hash, err := tokenHash(p.TokenHash, f)
		if err != nil {
			return nil, fmt.Errorf("player %q: %w", clip(p.ID), err)
		}
		at := p.LastAt
		switch {
		case f.Version < 3 && at != 0:
			return nil, fmt.Errorf("player %q holds a time, which version %d does not", clip(p.ID), f.Version)
		case f.Version < 3:
			at = r.lastAt
		case at < 0 || at > r.lastAt:
			// The room's time is the latest of its players'.
			return nil, fmt.Errorf("player %q acted at %d, not within the room's time %d", clip(p.ID), at, r.lastAt)
		}
		if p.Wins < 0 || p.Wins > 0 && f.Version < 4 {
			return nil, fmt.Errorf("player %q: invalid wins %d", clip(p.ID), p.Wins)
		}
		r.players = append(r.players, &seat{Player: p.Player, hash: hash, lastAt: at, wins: p.Wins})
	}
	if r.timed() && r.seat(r.turnPlayer) == nil {
		return nil, fmt.Errorf("turn of %q, who has no seat", clip(r.turnPlayer))
	}
	for _, s := range rec.Sessions {
		if err := s.check(f); err != nil {
			return nil, err
		}
		k, err := s.key(f)
		if err != nil {
			return nil, err
		}
		if _, dup := r.sessions.get(k); dup {
			return nil, fmt.Errorf("request id %q appears twice", clip(s.ID))
		}
		r.sessions.restore(k, s.session)
	}
	return r, nil
}

// checkLetters verifies that the guessed and wrong letters and the status
// are consistent with the word, as applying commands would have left them.
func (r *room) checkLetters() error {
	for i, c := range r.guessed {
		if c < 'a' || c > 'z' || slices.Contains(r.guessed[:i], c) {
			return fmt.Errorf("invalid guessed letters")
		}
	}
	var wrong []byte
	for _, c := range r.guessed {
		if strings.IndexByte(r.word, c) < 0 {
			wrong = append(wrong, c)
		}
	}
	if string(wrong) != string(r.wrong) {
		return fmt.Errorf("wrong letters do not match the word")
	}
	// No guess follows the one that ends a round, so a round never holds more
	// wrong letters than its limit, nor is it solved after it was lost.
	if len(r.wrong) > r.maxWrong || len(r.wrong) == r.maxWrong && r.solved() {
		return fmt.Errorf("%d wrong letters do not fit the limit of %d", len(r.wrong), r.maxWrong)
	}
	want := StatusPlaying
	switch {
	case r.solved():
		want = StatusWon
	case len(r.wrong) >= r.maxWrong:
		want = StatusLost
	}
	if r.status != want {
		return fmt.Errorf("status %q does not match the letters (%q)", r.status, want)
	}
	return nil
}

// settings returns the settings of the room rec, checking them: required
// from version 4 on, the defaults before.
func (rec *roomRecord) settings(f *snapshotFile) (Settings, error) {
	if f.Version < 4 {
		if rec.Settings != nil || rec.Setter != "" || rec.TurnPlayer != "" || rec.Turn != 0 || rec.TurnAt != 0 || rec.Rounds != nil || rec.Current != nil {
			return Settings{}, fmt.Errorf("holds settings, turns or rounds, which version %d does not", f.Version)
		}
		return DefaultSettings, nil
	}
	if rec.Settings == nil {
		return Settings{}, fmt.Errorf("no settings")
	}
	s := *rec.Settings
	if err := s.validate(); err != nil || s != s.normalized() {
		return Settings{}, fmt.Errorf("invalid settings %+v", s)
	}
	return s, nil
}

// checkRounds verifies the setter, the turn and the rounds of a restored
// room r, and that the guesses of its current round are its last letters.
func (r *room) checkRounds(f *snapshotFile) error {
	switch {
	case r.setter != "" && (!ValidPlayerID(r.setter) || r.settings.Mode != ModeHost):
		return fmt.Errorf("invalid setter %q", clip(r.setter))
	case r.turnPlayer != "" && (!ValidPlayerID(r.turnPlayer) || r.settings.TurnSeconds == 0):
		return fmt.Errorf("invalid turn of %q", clip(r.turnPlayer))
	case r.turnAt < 0 || r.turnAt > maxAt:
		return fmt.Errorf("invalid turn time %d", r.turnAt)
	case len(r.rounds) > HistoryRounds:
		return fmt.Errorf("%d finished rounds exceed %d", len(r.rounds), HistoryRounds)
	}
	var seq uint64 // the latest finishing seq so far
	for i, rd := range r.rounds {
		switch {
		case rd.Seq != 0 && f.Version < 5:
			return fmt.Errorf("finished round %d: holds a seq, which version %d does not", i, f.Version)
		case rd.Seq != 0 && (rd.Seq <= seq || rd.Seq > r.seq), f.Version >= 5 && i == len(r.rounds)-1 && rd.Seq == 0:
			return fmt.Errorf("finished round %d: invalid seq %d", i, rd.Seq)
		case rd.Round == 0 || rd.Round > r.round || i > 0 && rd.Round <= r.rounds[i-1].Round || !ValidWord(rd.Word):
			return fmt.Errorf("finished round %d: invalid round or word", i)
		case rd.Status != StatusWon && rd.Status != StatusLost || (rd.Winner != "") != (rd.Status == StatusWon):
			return fmt.Errorf("finished round %d: invalid status or winner", i)
		case rd.Winner != "" && !ValidPlayerID(rd.Winner), rd.Setter != "" && !ValidPlayerID(rd.Setter):
			return fmt.Errorf("finished round %d: invalid player", i)
		case len(rd.Guesses) == 0:
			return fmt.Errorf("finished round %d: no guesses", i)
		}
		if err := checkGuesses(rd.Guesses, rd.Word); err != nil {
			return fmt.Errorf("finished round %d: %w", i, err)
		}
		seq = max(seq, rd.Seq)
	}
	if n := len(r.rounds); n > 0 && f.Version < 5 {
		r.rounds[n-1].Seq = r.seq
	}
	if f.Version < 4 {
		return nil
	}
	if err := checkGuesses(r.cur, r.word); err != nil {
		return fmt.Errorf("current round: %w", err)
	}
	// The guesses recorded are the round's last (a round restored from an
	// older version recorded none of those before), and a finished
	// round's went to the history.
	if len(r.cur) > len(r.guessed) || r.status != StatusPlaying && len(r.cur) != 0 {
		return fmt.Errorf("current round: guesses do not match its letters")
	}
	for i, g := range r.cur {
		if g.Letter[0] != r.guessed[len(r.guessed)-len(r.cur)+i] {
			return fmt.Errorf("current round: guesses do not match its letters")
		}
	}
	return nil
}

// checkGuesses verifies the guesses of a round of word: distinct letters
// a-z by valid players, each with the outcome the word gives it.
func checkGuesses(gs []GuessRecord, word string) error {
	if len(gs) > 26 {
		return fmt.Errorf("%d guesses exceed the alphabet", len(gs))
	}
	var seen [26]bool
	for _, g := range gs {
		l, err := NormalizeLetter(g.Letter)
		if err != nil || g.Letter != string(l) || seen[l-'a'] || !ValidPlayerID(g.Player) {
			return fmt.Errorf("invalid guess")
		}
		seen[l-'a'] = true
		want := OutcomeWrong
		if strings.IndexByte(word, l) >= 0 {
			want = OutcomeCorrect
		}
		if g.Outcome != want {
			return fmt.Errorf("guess %q has outcome %q, want %q", g.Letter, g.Outcome, want)
		}
	}
	return nil
}
