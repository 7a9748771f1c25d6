package game

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
)

// snapshotVersion is written first in every snapshot so the format can change.
const snapshotVersion = 1

// MaxSnapshotSize bounds what Restore reads; a snapshot larger than any
// state MaxRooms rooms can hold is not ours.
const MaxSnapshotSize = 1 << 30

type snapshotFile struct {
	Version int          `json:"version"`
	Applied uint64       `json:"applied"`
	Rooms   []roomRecord `json:"rooms"`
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
			Sessions: make([]sessionRecord, len(r.order)), Events: r.history.events(),
		}
		for i, p := range r.players {
			rec.Players[i] = *p
		}
		for i, id := range r.order {
			rec.Sessions[i] = sessionRecord{ID: id, session: r.sessions[id]}
		}
		f.Rooms = append(f.Rooms, rec)
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
	if f.Version != snapshotVersion {
		return fmt.Errorf("read snapshot: unknown version %d", f.Version)
	}
	if len(f.Rooms) > MaxRooms {
		return fmt.Errorf("read snapshot: %d rooms exceed the limit of %d", len(f.Rooms), MaxRooms)
	}
	rooms := make(map[string]*room, len(f.Rooms))
	for i := range f.Rooms {
		r, err := f.Rooms[i].room()
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
	m.rooms = rooms
	m.applied = f.Applied
	return nil
}

func (rec *roomRecord) room() (*room, error) {
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
		last: rec.Last, sessions: make(map[string]session, len(rec.Sessions)),
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
		if s.ID == "" || !ValidRequestID(s.ID) {
			return nil, fmt.Errorf("invalid request id %q", clip(s.ID))
		}
		if _, dup := r.sessions[s.ID]; dup {
			return nil, fmt.Errorf("request id %q appears twice", clip(s.ID))
		}
		r.sessions[s.ID] = s.session
		r.order = append(r.order, s.ID)
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
