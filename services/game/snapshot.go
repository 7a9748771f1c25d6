package game

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
)

// snapshotVersion is written first in every snapshot so the format can
// change. Version 2 added refusals to the session tables (a session's code
// and message, and the refusals of requests to missing rooms); Restore
// still reads version 1, which has neither.
const snapshotVersion = 2

// MaxSnapshotSize bounds what Restore reads; a snapshot larger than any
// state MaxRooms rooms can hold is not ours. (The largest, every room full
// of the longest names, refusals and events, takes about 3.6 GB.)
const MaxSnapshotSize = 4 << 30

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
	Players  []Player        `json:"players"`
	Last     *LastGuess      `json:"last,omitempty"`
	Sessions []sessionRecord `json:"sessions"`
	Events   []Event         `json:"events"`
}

type sessionRecord struct {
	ID string `json:"id"`
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
			Players: make([]Player, len(r.players)), Last: r.last,
			Sessions: make([]sessionRecord, len(r.sessions.order)), Events: r.history.events(),
		}
		for i, p := range r.players {
			rec.Players[i] = *p
		}
		for i, id := range r.sessions.order {
			rec.Sessions[i] = sessionRecord{ID: id, session: r.sessions.answers[id]}
		}
		f.Rooms = append(f.Rooms, rec)
	}
	for _, k := range m.missing.order {
		f.Missing = append(f.Missing, missingRecord{Room: k.room, sessionRecord: sessionRecord{ID: k.id, session: m.missing.answers[k]}})
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
	if f.Version != 1 && f.Version != snapshotVersion {
		return fmt.Errorf("read snapshot: unknown version %d", f.Version)
	}
	if len(f.Rooms) > MaxRooms {
		return fmt.Errorf("read snapshot: %d rooms exceed the limit of %d", len(f.Rooms), MaxRooms)
	}
	if len(f.Missing) > MissingRoomWindow {
		return fmt.Errorf("read snapshot: %d refusals of requests to missing rooms exceed %d", len(f.Missing), MissingRoomWindow)
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
		k := missingKey{room: rec.Room, id: rec.ID}
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
		missing.record(k, rec.session, MissingRoomWindow)
	}
	m.rooms = rooms
	m.missing = missing
	m.applied = f.Applied
	return nil
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
	case s.Code == 0 && s.Msg != "":
		return fmt.Errorf("request id %q has a refusal message but no code", clip(rec.ID))
	case s.Code == 0:
		return nil
	case f.Version < 2:
		return fmt.Errorf("request id %q holds a refusal, which version %d does not", clip(rec.ID), f.Version)
	case s.Code < CodeInvalid || s.Code > CodePrecondition || s.Msg == "" || s.Outcome != "":
		return fmt.Errorf("request id %q holds an invalid refusal", clip(rec.ID))
	}
	return nil
}

func (rec *roomRecord) room(f *snapshotFile) (*room, error) {
	switch {
	case !ValidRoom(rec.Name):
		return nil, fmt.Errorf("invalid name %q", clip(rec.Name))
	case !ValidWord(rec.Word):
		return nil, fmt.Errorf("invalid word")
	case rec.MaxWrong < 1 || rec.MaxWrong > MaxMaxWrong:
		return nil, fmt.Errorf("invalid wrong-guess limit %d", rec.MaxWrong)
	case rec.Round == 0:
		return nil, fmt.Errorf("round 0")
	case len(rec.Players) > MaxPlayers:
		return nil, fmt.Errorf("%d players exceed %d", len(rec.Players), MaxPlayers)
	case len(rec.Sessions) > SessionWindow:
		return nil, fmt.Errorf("%d sessions exceed %d", len(rec.Sessions), SessionWindow)
	}
	r := &room{
		name: rec.Name, round: rec.Round, seq: rec.Seq, prev: rec.Prev, word: rec.Word, maxWrong: rec.MaxWrong,
		guessed: []byte(rec.Guessed), wrong: []byte(rec.Wrong), status: rec.Status,
		last: rec.Last,
	}
	if err := r.checkLetters(); err != nil {
		return nil, err
	}
	if err := r.restoreHistory(rec.Events); err != nil {
		return nil, err
	}
	for _, p := range rec.Players {
		if !ValidPlayerID(p.ID) || !ValidName(p.Name) || r.player(p.ID) != nil {
			return nil, fmt.Errorf("invalid or repeated player %q", clip(p.ID))
		}
		r.players = append(r.players, &p)
	}
	for _, s := range rec.Sessions {
		if err := s.check(f); err != nil {
			return nil, err
		}
		if _, dup := r.sessions.get(s.ID); dup {
			return nil, fmt.Errorf("request id %q appears twice", clip(s.ID))
		}
		r.sessions.record(s.ID, s.session, SessionWindow)
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
