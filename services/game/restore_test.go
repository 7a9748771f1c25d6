package game

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"testing/iotest"
)

// gameMachine returns a machine in the middle of things: a room whose
// round was won and another being played, with players (with tokens, and
// one from before tokens), sessions (refusals among them, one of a forged
// command in its own scope), events, and a refusal of a request to a room
// that does not exist.
func gameMachine(t testing.TB) *Machine {
	t.Helper()
	h := newHarness(t)
	h.ok(withID(create("den", "ox"), "c1"))
	h.ok(withID(as(join("den", "p1", "Ann"), annToken), "j1"))
	h.ok(join("den", "p2", "Zoë"))
	h.ok(withID(as(guess("den", "p1", "z"), annToken), "g1"))
	h.ok(guess("den", "p2", "o"))
	h.ok(as(guess("den", "p1", "x"), annToken))
	c := create("attic", "banana")
	c.MaxWrong = 3
	h.ok(c)
	h.ok(as(join("attic", "p1", "Ann"), annToken))
	h.ok(withID(as(guess("attic", "p1", "a"), annToken), "g2"))
	h.ok(as(guess("attic", "p1", "q"), annToken))
	h.refused(guess("attic", "p1", "1"), CodeInvalid)
	h.refused(withID(guess("den", "p2", "q"), "g3"), CodePrecondition)
	h.refused(withID(join("cellar", "p1", "Ann"), "j2"), CodeNotFound) // applied index 13
	h.refused(withID(as(guess("den", "p1", "q"), forgedToken), "g1"), CodePermission)
	return h.m
}

func TestRestoreRoundTrip(t *testing.T) {
	for name, m := range map[string]*Machine{"empty": New(), "game": gameMachine(t)} {
		t.Run(name, func(t *testing.T) {
			snap := snapshotBytes(t, m)
			r := restored(t, snap)
			if got := snapshotBytes(t, r); !bytes.Equal(got, snap) {
				t.Fatalf("round trip:\n got %s\nwant %s", got, snap)
			}
			if r.Applied() != m.Applied() {
				t.Fatalf("Applied() = %d, want %d", r.Applied(), m.Applied())
			}
			// Snapshot writes rooms in name order, whatever the map order.
			f := decodeSnapshot(t, snap)
			for i := 1; i < len(f.Rooms); i++ {
				if f.Rooms[i-1].Name >= f.Rooms[i].Name {
					t.Fatalf("rooms out of order: %q before %q", f.Rooms[i-1].Name, f.Rooms[i].Name)
				}
			}
		})
	}
}

// downgrade makes s a snapshot of version v, leaving out what v cannot
// hold: before 4 settings, setters, turns, rounds and wins; before 3
// tokens, times, scopes and the refusals for want of a token; before 2
// every refusal.
func downgrade(s *snapshotFile, v int) {
	s.Version = v
	keep := func(ss []sessionRecord) []sessionRecord {
		var out []sessionRecord
		for _, rec := range ss {
			if rec.Code == CodePermission || v < 2 && rec.Code != 0 {
				continue
			}
			rec.Scope = ""
			out = append(out, rec)
		}
		return out
	}
	for i := range s.Rooms {
		for j := range s.Rooms[i].Sessions {
			s.Rooms[i].Sessions[j].At = 0
		}
	}
	for i := range s.Missing {
		s.Missing[i].At = 0
	}
	if v >= 5 {
		return
	}
	for i := range s.Rooms {
		r := &s.Rooms[i]
		r.Settings, r.Setter, r.TurnPlayer, r.Turn, r.TurnAt, r.Rounds, r.Current = nil, "", "", 0, 0, nil, nil
		for j := range r.Players {
			r.Players[j].Wins = 0
		}
		if v >= 3 {
			continue
		}
		r.LastAt = 0
		for j := range r.Players {
			r.Players[j].TokenHash, r.Players[j].LastAt = "", 0
		}
		r.Sessions = keep(r.Sessions)
	}
	var missing []missingRecord
	for _, rec := range s.Missing {
		if kept := keep([]sessionRecord{rec.sessionRecord}); len(kept) == 1 {
			missing = append(missing, missingRecord{Room: rec.Room, sessionRecord: kept[0]})
		}
	}
	s.Missing = missing
}

// corrupt returns the snapshot of gameMachine changed by f.
func corrupt(t *testing.T, f func(*snapshotFile)) []byte {
	t.Helper()
	s := decodeSnapshot(t, snapshotBytes(t, gameMachine(t)))
	if len(s.Rooms) != 2 || s.Rooms[0].Name != "attic" || s.Rooms[1].Name != "den" {
		t.Fatalf("unexpected base snapshot: %+v", s)
	}
	f(&s)
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRestoreRejectsCorruptSnapshots(t *testing.T) {
	// attic: word banana, max 3 wrong, guessed "aq", wrong "q", playing.
	// den:   word ox, guessed "zox", wrong "z", won.
	attic := func(f func(*roomRecord)) func(*snapshotFile) {
		return func(s *snapshotFile) { f(&s.Rooms[0]) }
	}
	den := func(f func(*roomRecord)) func(*snapshotFile) {
		return func(s *snapshotFile) { f(&s.Rooms[1]) }
	}
	players := func(n int) []playerRecord {
		ps := make([]playerRecord, n)
		for i := range ps {
			ps[i] = playerRecord{Player: Player{ID: fmt.Sprintf("p%d", i), Name: "P"}}
		}
		return ps
	}
	sessions := func(n int) []sessionRecord {
		ss := make([]sessionRecord, n)
		for i := range ss {
			ss[i] = sessionRecord{ID: fmt.Sprintf("s%d", i)}
		}
		return ss
	}
	tests := []struct {
		name string
		snap []byte
	}{
		{"version 0", corrupt(t, func(s *snapshotFile) { s.Version = 0 })},
		{"version 7", corrupt(t, func(s *snapshotFile) { s.Version = 7 })},
		{"version 5 with answer times", corrupt(t, func(s *snapshotFile) { s.Version = 5 })},
		{"answer time before 1970", corrupt(t, den(func(r *roomRecord) { r.Sessions[0].At = -1 }))},
		{"answer time after 9999", corrupt(t, func(s *snapshotFile) { s.Missing[0].At = maxAt + 1 })},
		{"version 1 with refusals", corrupt(t, func(s *snapshotFile) { downgrade(s, 2); s.Version = 1; s.Missing = nil })},
		{"version 1 with refusals of missing rooms", corrupt(t, func(s *snapshotFile) { missing := s.Missing; downgrade(s, 1); s.Missing = missing })},
		{"version 2 with a token hash", corrupt(t, func(s *snapshotFile) {
			downgrade(s, 2)
			s.Rooms[1].Players[0].TokenHash = hex.EncodeToString([]byte(HashToken(annToken)))
		})},
		{"version 2 with a scope", corrupt(t, func(s *snapshotFile) {
			downgrade(s, 2)
			s.Rooms[1].Sessions[1].Scope = hex.EncodeToString([]byte(HashToken(annToken)))
		})},
		{"version 2 with a room's time", corrupt(t, func(s *snapshotFile) { downgrade(s, 2); s.Rooms[0].LastAt = at0 })},
		{"version 2 with a player's time", corrupt(t, func(s *snapshotFile) { downgrade(s, 2); s.Rooms[0].Players[0].LastAt = at0 })},
		{"version 2 with a refusal for want of a token", corrupt(t, func(s *snapshotFile) {
			downgrade(s, 2)
			s.Rooms[1].Sessions = append(s.Rooms[1].Sessions, sessionRecord{ID: "forged", session: session{Seq: 13, Code: CodePermission, Msg: "no"}})
		})},
		{"invalid token hash", corrupt(t, den(func(r *roomRecord) { r.Players[0].TokenHash = "zz" }))},
		{"short token hash", corrupt(t, den(func(r *roomRecord) { r.Players[0].TokenHash = r.Players[0].TokenHash[2:] }))},
		{"invalid scope", corrupt(t, den(func(r *roomRecord) { r.Sessions[1].Scope = "scope" }))},
		{"player acted after the room", corrupt(t, den(func(r *roomRecord) { r.Players[0].LastAt = r.LastAt + 1 }))},
		{"negative player time", corrupt(t, den(func(r *roomRecord) { r.Players[0].LastAt = -1 }))},
		{"room time past the year 9999", corrupt(t, attic(func(r *roomRecord) { r.LastAt = maxAt + 1 }))},
		{"duplicate room", corrupt(t, func(s *snapshotFile) { s.Rooms = append(s.Rooms, s.Rooms[1]) })},
		{"invalid room name", corrupt(t, attic(func(r *roomRecord) { r.Name = "At.tic" }))},
		{"empty room name", corrupt(t, attic(func(r *roomRecord) { r.Name = "" }))},
		{"upper-case word", corrupt(t, attic(func(r *roomRecord) { r.Word = "Banana" }))},
		{"one letter word", corrupt(t, den(func(r *roomRecord) { r.Word = "o"; r.Guessed = "zo" }))},
		{"empty word", corrupt(t, attic(func(r *roomRecord) { r.Word = "" }))},
		{"long word", corrupt(t, attic(func(r *roomRecord) { r.Word = strings.Repeat("a", MaxWordLen+1) }))},
		{"limit 0", corrupt(t, attic(func(r *roomRecord) { r.MaxWrong = 0 }))},
		{"limit too high", corrupt(t, attic(func(r *roomRecord) { r.MaxWrong = MaxMaxWrong + 1 }))},
		{"round 0", corrupt(t, attic(func(r *roomRecord) { r.Round = 0 }))},
		{"guessed non-letter", corrupt(t, attic(func(r *roomRecord) { r.Guessed = "a!" }))},
		{"guessed upper-case", corrupt(t, attic(func(r *roomRecord) { r.Guessed = "aQ"; r.Wrong = "Q" }))},
		{"guessed twice", corrupt(t, attic(func(r *roomRecord) { r.Guessed = "aqa" }))},
		{"wrong letters missing", corrupt(t, attic(func(r *roomRecord) { r.Wrong = "" }))},
		{"correct letter listed wrong", corrupt(t, attic(func(r *roomRecord) { r.Wrong = "aq" }))},
		{"wrong letter not guessed", corrupt(t, attic(func(r *roomRecord) { r.Wrong = "qz" }))},
		{"playing when solved", corrupt(t, den(func(r *roomRecord) { r.Status = StatusPlaying }))},
		{"won when not solved", corrupt(t, attic(func(r *roomRecord) { r.Status = StatusWon }))},
		{"lost under the limit", corrupt(t, attic(func(r *roomRecord) { r.Status = StatusLost }))},
		{"playing at the limit", corrupt(t, attic(func(r *roomRecord) { r.Guessed, r.Wrong = "aqxy", "qxy" }))},
		{"unknown status", corrupt(t, attic(func(r *roomRecord) { r.Status = "paused" }))},
		{"more wrong than the limit", corrupt(t, attic(func(r *roomRecord) {
			r.Guessed, r.Wrong, r.Status = "aqxyz", "qxyz", StatusLost
		}))},
		{"solved after it was lost", corrupt(t, den(func(r *roomRecord) {
			r.MaxWrong, r.Guessed, r.Wrong, r.Status = 1, "zox", "z", StatusWon
		}))},
		{"too many players", corrupt(t, attic(func(r *roomRecord) { r.Players = players(MaxPlayers + 1) }))},
		{"repeated player", corrupt(t, den(func(r *roomRecord) { r.Players[1].ID = r.Players[0].ID }))},
		{"invalid player id", corrupt(t, den(func(r *roomRecord) { r.Players[1].ID = "p 2" }))},
		{"empty player id", corrupt(t, den(func(r *roomRecord) { r.Players[1].ID = "" }))},
		{"blank player name", corrupt(t, den(func(r *roomRecord) { r.Players[1].Name = " " }))},
		{"control char in name", corrupt(t, den(func(r *roomRecord) { r.Players[1].Name = "a\x07" }))},
		{"too many sessions", corrupt(t, den(func(r *roomRecord) { r.Sessions = sessions(SessionCap + 1) }))},
		{"repeated session", corrupt(t, den(func(r *roomRecord) { r.Sessions[1].ID, r.Sessions[1].Scope = r.Sessions[0].ID, r.Sessions[0].Scope }))},
		{"repeated session in one scope", corrupt(t, den(func(r *roomRecord) { r.Sessions[2].ID = r.Sessions[1].ID }))},
		{"empty session id", corrupt(t, den(func(r *roomRecord) { r.Sessions[0].ID = "" }))},
		{"invalid session id", corrupt(t, den(func(r *roomRecord) { r.Sessions[0].ID = "a b" }))},
		{"session past applied", corrupt(t, den(func(r *roomRecord) { r.Sessions[0].Seq = 15 }))},
		{"unknown outcome", corrupt(t, den(func(r *roomRecord) { r.Sessions[2].Outcome = "lucky" }))},
		{"refusal with an outcome", corrupt(t, den(func(r *roomRecord) { r.Sessions[3].Outcome = OutcomeWrong }))},
		{"refusal without a message", corrupt(t, den(func(r *roomRecord) { r.Sessions[3].Msg = "" }))},
		{"refusal with an unknown code", corrupt(t, den(func(r *roomRecord) { r.Sessions[3].Code = CodePermission + 1 }))},
		{"message without a refusal", corrupt(t, den(func(r *roomRecord) { r.Sessions[3].Code = 0 }))},
		{"refusal of an existing room", corrupt(t, func(s *snapshotFile) { s.Missing[0].Room = "den" })},
		{"refusal of an invalid room", corrupt(t, func(s *snapshotFile) { s.Missing[0].Room = "Cellar" })},
		{"missing room's answer not a refusal", corrupt(t, func(s *snapshotFile) { s.Missing[0].Code, s.Missing[0].Msg = 0, "" })},
		{"missing room's refusal without a message", corrupt(t, func(s *snapshotFile) { s.Missing[0].Msg = "" })},
		{"missing room's refusal with an invalid id", corrupt(t, func(s *snapshotFile) { s.Missing[0].ID = "" })},
		{"missing room's refusal twice", corrupt(t, func(s *snapshotFile) { s.Missing = append(s.Missing, s.Missing[0]) })},
		{"too many refusals of missing rooms", corrupt(t, func(s *snapshotFile) {
			for i := len(s.Missing); i <= MissingRoomCap; i++ {
				r := s.Missing[0]
				r.ID = fmt.Sprintf("m%d", i)
				s.Missing = append(s.Missing, r)
			}
		})},
		{"too many events", corrupt(t, func(s *snapshotFile) {
			// A valid chain, only too long.
			r := &s.Rooms[1]
			evs := make([]Event, EventHistory+1)
			for i := range evs {
				evs[i] = Event{Seq: uint64(i + 1), Prev: uint64(i), Room: r.Name, Kind: EventGuess}
			}
			r.Events, r.Seq, r.Prev = evs, evs[len(evs)-1].Seq, evs[len(evs)-1].Prev
			s.Applied = r.Seq
		})},
		{"event of another room", corrupt(t, den(func(r *roomRecord) { r.Events[2].Room = "attic" }))},
		{"event before its prev", corrupt(t, den(func(r *roomRecord) { r.Events[0].Prev = r.Events[0].Seq }))},
		{"events out of order", corrupt(t, den(func(r *roomRecord) { r.Events[1], r.Events[2] = r.Events[2], r.Events[1] }))},
		{"event missing", corrupt(t, den(func(r *roomRecord) { r.Events = append(r.Events[:2], r.Events[3:]...) }))},
		{"last event not the room's seq", corrupt(t, den(func(r *roomRecord) { r.Events = r.Events[:len(r.Events)-1] }))},
		{"seq past applied", corrupt(t, func(s *snapshotFile) { s.Applied = s.Rooms[0].Seq - 1 })},
		{"prev not before seq", corrupt(t, attic(func(r *roomRecord) { r.Prev = r.Seq }))},
		{"too many rooms", corrupt(t, func(s *snapshotFile) {
			for i := len(s.Rooms); i <= MaxRooms; i++ {
				r := s.Rooms[0]
				r.Name = fmt.Sprintf("r%d", i)
				s.Rooms = append(s.Rooms, r)
			}
		})},
	}
	valid := snapshotBytes(t, gameMachine(t))
	raw := []struct {
		name string
		snap []byte
	}{
		{"empty", nil},
		{"null", []byte("null")},
		{"empty object", []byte("{}")},
		{"garbage", []byte("\x00\x01hangman")},
		{"truncated", valid[:len(valid)/2]},
		{"unknown field", bytes.Replace(valid, []byte(`"applied"`), []byte(`"extra":1,"applied"`), 1)},
		{"unknown room field", bytes.Replace(valid, []byte(`"round"`), []byte(`"secret":1,"round"`), 1)},
		{"string version", bytes.Replace(valid, []byte(`"version":6`), []byte(`"version":"6"`), 1)},
		{"negative applied", bytes.Replace(valid, []byte(`"applied":14`), []byte(`"applied":-14`), 1)},
	}
	tests = append(tests, raw...)

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The target holds state of its own, which must survive.
			h := newHarness(t)
			h.ok(create("keep", "melon"))
			h.ok(join("keep", "p9", "Nine"))
			before := snapshotBytes(t, h.m)
			if err := h.m.Restore(bytes.NewReader(tt.snap)); err == nil {
				t.Fatalf("restored a corrupt snapshot: %.300s", tt.snap)
			} else if !strings.HasPrefix(err.Error(), "read snapshot") {
				t.Fatalf("error %q does not say what failed", err)
			}
			if after := snapshotBytes(t, h.m); !bytes.Equal(before, after) {
				t.Fatalf("failed restore changed the machine:\nbefore %s\nafter  %s", before, after)
			}
			if h.m.Applied() != 2 {
				t.Fatalf("Applied() = %d after a failed restore", h.m.Applied())
			}
		})
	}

	// The corruptions are the only thing wrong with the base snapshot.
	if err := New().Restore(bytes.NewReader(corrupt(t, func(*snapshotFile) {}))); err != nil {
		t.Fatalf("base snapshot does not restore: %v", err)
	}
}

func TestRestoreReadErrors(t *testing.T) {
	m := gameMachine(t)
	snap := snapshotBytes(t, m)
	if err := New().Restore(iotest.TimeoutReader(iotest.HalfReader(bytes.NewReader(snap)))); err == nil {
		t.Fatal("restore from a failing reader succeeded")
	}
	if err := New().Restore(iotest.OneByteReader(bytes.NewReader(snap))); err != nil {
		t.Fatalf("restore from a slow reader: %v", err)
	}
}

type failingWriter struct{ n int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.n -= len(p); w.n < 0 {
		return 0, fmt.Errorf("disk full")
	}
	return len(p), nil
}

func TestSnapshotWriteError(t *testing.T) {
	m := gameMachine(t)
	if err := m.Snapshot(&failingWriter{n: 10}); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Snapshot to a failing writer: %v", err)
	}
}
