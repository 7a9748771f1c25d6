package game

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// tricky are strings whose JSON needs escaping of every kind
// encoding/json does.
var tricky = []string{
	"", "alice", "Ada Lovelace", `quote "`, `back\slash`, "a<b", "a>b", "a&b", "<script>&amp;</script>",
	"tab\tnewline\ncontrol\x01", "\b\f\r\x1f\x00", "é ü 漢字 🙂", "line\u2028para\u2029", "bad utf8 \xff\xfe", "\x7f",
}

func pick(r *rand.Rand) string { return tricky[r.IntN(len(tricky))] }

func randomState(r *rand.Rand) State {
	s := State{
		Room: pick(r), Round: r.Uint64(), Seq: r.Uint64(), Prev: r.Uint64(), Masked: pick(r),
		WrongLeft: r.IntN(30) - 3, MaxWrong: r.IntN(27), Status: Status(pick(r)), Word: pick(r),
	}
	if r.IntN(4) > 0 {
		s.Guessed, s.Wrong = []string{}, []string{}
		for range r.IntN(5) {
			s.Guessed = append(s.Guessed, pick(r))
		}
		for range r.IntN(3) {
			s.Wrong = append(s.Wrong, pick(r))
		}
	}
	if r.IntN(4) > 0 {
		s.Players = []Player{}
		for range r.IntN(4) {
			s.Players = append(s.Players, Player{ID: pick(r), Name: pick(r), Score: r.Int64() - r.Int64()})
		}
	}
	if r.IntN(2) == 0 {
		s.LastGuess = &LastGuess{Player: pick(r), Letter: pick(r), Outcome: Outcome(pick(r))}
	}
	s.Settings = Settings{Category: pick(r), MinLen: r.IntN(40) - 3, MaxLen: r.IntN(40), Mode: Mode(pick(r))}
	if r.IntN(2) == 0 {
		s.Settings.MaxPlayers, s.Settings.TurnSeconds = r.IntN(70)-3, r.IntN(700)-3
		s.Setter = pick(r)
		s.Turn = &Turn{Player: pick(r), Number: r.Uint64(), Deadline: r.Int64() - r.Int64()}
	}
	for range r.IntN(3) {
		rec := RoundRecord{Seq: r.Uint64(), Round: r.Uint64(), Word: pick(r), Status: Status(pick(r)), Winner: pick(r), Setter: pick(r)}
		if r.IntN(4) > 0 {
			rec.Guesses = []GuessRecord{}
			for range r.IntN(3) {
				rec.Guesses = append(rec.Guesses, GuessRecord{Player: pick(r), Letter: pick(r), Outcome: Outcome(pick(r))})
			}
		}
		s.History = append(s.History, rec)
		s.HistorySeq = rec.Seq
		s.Leaderboard = append(s.Leaderboard, Standing{ID: pick(r), Name: pick(r), Score: r.Int64() - r.Int64(), Wins: r.Int64()})
	}
	return s
}

func randomEvent(r *rand.Rand) Event {
	return Event{
		Seq: r.Uint64(), Prev: r.Uint64(), Room: pick(r), Kind: pick(r), Round: r.Uint64(), Player: pick(r), Name: pick(r),
		Letter: pick(r), Outcome: Outcome(pick(r)), Status: Status(pick(r)),
		At: time.UnixMilli(r.Int64N(maxAt)).In(time.FixedZone("", r.IntN(48)*1800-12*3600)),
	}
}

// TestAppendJSONIsEncodingJSON holds the hand-written encoders to
// encoding/json's bytes, for states and events of every shape.
func TestAppendJSONIsEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 5000 {
		s := randomState(r)
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.AppendJSON(nil); !bytes.Equal(got, want) {
			t.Fatalf("state %d:\n got %s\nwant %s", i, got, want)
		}
		e := randomEvent(r)
		if want, err = json.Marshal(e); err != nil {
			t.Fatal(err)
		}
		if got := e.AppendJSON(nil); !bytes.Equal(got, want) {
			t.Fatalf("event %d:\n got %s\nwant %s", i, got, want)
		}
		h := History{Room: pick(r), Seq: r.Uint64(), Rounds: s.History}
		if want, err = json.Marshal(h); err != nil {
			t.Fatal(err)
		}
		if got := h.AppendJSON(nil); !bytes.Equal(got, want) {
			t.Fatalf("history %d:\n got %s\nwant %s", i, got, want)
		}
	}
}

// TestAppendJSONOfAPlayedRoom checks a state the Machine made, as published.
func TestAppendJSONOfAPlayedRoom(t *testing.T) {
	h := newHarness(t)
	h.ok(create("json", "hippo"))
	h.ok(join("json", "p1", `Zoë "the <b>"`))
	res := h.ok(guess("json", "p1", "p"))
	for _, v := range []interface{ AppendJSON([]byte) []byte }{&res.State, res.Event} {
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if got := v.AppendJSON([]byte("prefix")); !bytes.Equal(got, append([]byte("prefix"), want...)) {
			t.Fatalf("got %s\nwant prefix%s", got, want)
		}
	}
}

func FuzzAppendJSON(f *testing.F) {
	for _, s := range tricky {
		f.Add(s, "bob", uint64(7), int64(-3), int64(1700000000000))
	}
	f.Fuzz(func(t *testing.T, a, b string, n uint64, score, at int64) {
		s := State{Room: a, Masked: b, Seq: n, Guessed: []string{a, b}, Wrong: []string{}, Status: Status(b), Word: a,
			Players: []Player{{ID: a, Name: b, Score: score}}, LastGuess: &LastGuess{Player: b, Letter: a}}
		e := Event{Seq: n, Room: a, Kind: b, Player: a, Name: b, Letter: a, Status: Status(a), At: time.UnixMilli(at % maxAt).UTC()}
		h := History{Room: a, Seq: n, Rounds: []RoundRecord{{Seq: n, Word: b, Winner: a, Guesses: []GuessRecord{{Player: b, Letter: a}}}}}
		for _, v := range []interface{ AppendJSON([]byte) []byte }{&s, &e, &h} {
			want, err := json.Marshal(v)
			if err != nil {
				t.Skip(err) // a time encoding/json refuses
			}
			if got := v.AppendJSON(nil); !bytes.Equal(got, want) {
				t.Fatalf("got %s\nwant %s", got, want)
			}
		}
	})
}

// TestLetterString holds letterString to the one byte it is given, for
// every byte, and to its promise of allocating nothing.
func TestLetterString(t *testing.T) {
	for c := range 256 {
		if got := letterString(byte(c)); len(got) != 1 || got[0] != byte(c) {
			t.Fatalf("letterString(%#x) = %q", c, got)
		}
	}
	var sink string
	if allocs := testing.AllocsPerRun(100, func() { sink = letterString('q') }); allocs != 0 {
		t.Errorf("letterString allocates %v times", allocs)
	}
	_ = sink
}

// TestHistoryEncoderIsEncodingJSON holds the encoder that reuses finished
// rounds' bytes to encoding/json's output: over a room's histories as its
// rounds finish, a room of the same name created again (its rounds' numbers
// come back with other seqs), rounds without a seq (snapshots older than
// RoundRecord.Seq), histories without rounds, and past the bound of rooms.
func TestHistoryEncoderIsEncodingJSON(t *testing.T) {
	var enc HistoryEncoder
	check := func(what string, h History) {
		t.Helper()
		want, err := json.Marshal(h)
		if err != nil {
			t.Fatal(err)
		}
		if got := enc.AppendJSON([]byte("prefix"), &h); !bytes.Equal(got, append([]byte("prefix"), want...)) {
			t.Fatalf("%s:\n got %s\nwant prefix%s", what, got, want)
		}
	}
	r := rand.New(rand.NewPCG(3, 4))
	var seq uint64
	// The room's lives: the second is short, so that the third's rounds
	// come back with the numbers of rounds the encoder still keeps.
	for life, played := range []uint64{3 * HistoryRounds, HistoryRounds / 2, 3 * HistoryRounds} {
		var rounds []RoundRecord
		for round := range played {
			seq += 1 + r.Uint64N(30)
			rec := randomState(r).History
			if len(rec) == 0 {
				rec = []RoundRecord{{Word: pick(r), Status: Status(pick(r))}}
			}
			rec[0].Seq, rec[0].Round = seq, round+1
			if life == 2 && round%3 == 0 {
				rec[0].Seq = 0
			}
			rounds = append(rounds, rec[0])
			if len(rounds) > HistoryRounds {
				rounds = rounds[1:]
			}
			check(fmt.Sprintf("room r, life %d, round %d", life, round+1), History{Room: "r", Seq: seq, Rounds: slices.Clone(rounds)})
		}
		if life == 0 {
			enc.Forget("r")
		}
	}
	for _, word := range []string{"old", "older"} {
		check("a round without a seq", History{Room: "r", Seq: seq, Rounds: []RoundRecord{{Round: 1, Word: word}}})
	}
	check("no rounds", History{Room: "r", Seq: seq})
	check("empty rounds", History{Room: "r", Seq: seq, Rounds: []RoundRecord{}})
	h := newHarness(t)
	for _, res := range playRounds(h, "played", HistoryRounds+2) {
		check(fmt.Sprintf("played, seq %d", res.Seq), res)
	}
	for i := range MaxRooms + 1 {
		check("many rooms", History{Room: fmt.Sprint("room-", i), Seq: 1, Rounds: []RoundRecord{{Seq: 1, Round: 1, Word: "a"}}})
	}
	if n := len(enc.rooms); n > MaxRooms {
		t.Fatalf("the encoder keeps %d rooms, more than %d", n, MaxRooms)
	}
}
