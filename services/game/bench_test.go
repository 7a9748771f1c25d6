package game

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"testing"
	"time"
)

// BenchmarkApplyGuess measures what a replica does per guess: decode the
// log entry, apply it (with its request id) and, unless quiet (a follower
// applying the leader's entry), build the public state. A new round
// starts whenever one ends.
func BenchmarkApplyGuess(b *testing.B) {
	b.Run("states", func(b *testing.B) { benchmarkApplyGuess(b, (*Machine).ApplyEntry) })
	b.Run("quiet", func(b *testing.B) { benchmarkApplyGuess(b, (*Machine).ApplyEntryQuiet) })
}

func benchmarkApplyGuess(b *testing.B, applyEntry func(*Machine, uint64, []byte) []Result) {
	m := New()
	var index uint64
	apply := func(c Command) Result {
		index++
		return m.Apply(index, c.Encode())
	}
	apply(create("bench", WordAt(0)))
	players := []string{"p1", "p2", "p3", "p4"}
	for _, p := range players {
		apply(join("bench", p, "Player "+p))
	}
	// A busy room: a guess every 10 ms, so that the room remembers the
	// last SessionMinAge of them (3,000, more than SessionWindow) and ids
	// expire as in a long game. Guesses are encoded n at a time, each
	// batch later than the last, outside the timer.
	const n = 4 * SessionWindow
	const every = 10 * time.Millisecond
	const order = "etaoinshrdlucmfwypvbgkqjxz"
	guesses := make([][]byte, n)
	encode := func(from int) {
		for i := range guesses {
			c := withID(guess("bench", players[i%len(players)], string(order[i%len(order)])), fmt.Sprintf("req-%d", from+i))
			c.At = at0 + (time.Duration(from+i) * every).Milliseconds()
			guesses[i] = c.Encode()
		}
	}
	encode(0)
	rounds := make([][]byte, len(Words()))
	for i := range rounds {
		rounds[i] = newRound("bench", "", WordAt(uint64(i))).Encode()
	}
	b.ReportAllocs()
	i, round := 0, 0
	for b.Loop() {
		if i > 0 && i%n == 0 {
			b.StopTimer()
			encode(i)
			b.StartTimer()
		}
		index++
		res := applyEntry(m, index, guesses[i%n])[0]
		i++
		if res.Err != nil {
			index++
			round++
			if r := applyEntry(m, index, rounds[round%len(rounds)])[0]; r.Err != nil {
				b.Fatalf("new round: %v (after guess: %v)", r.Err, res.Err)
			}
		}
	}
}

// BenchmarkAdmit measures what a leader adds to each proposal: decoding
// the command and asking Admit, in a room that remembers 3,000 young
// answers (calm, as BenchmarkApplyGuess's) or PressureAt (flooded).
func BenchmarkAdmit(b *testing.B) {
	for _, tc := range []struct {
		name  string
		young int
	}{{"calm", 3000}, {"flooded", PressureAt}} {
		b.Run(tc.name, func(b *testing.B) {
			h := newHarness(b)
			h.ok(create("bench", WordAt(0)))
			tokens := []string{annToken, bobToken, anotherToken}
			for i, tok := range tokens {
				h.ok(as(join("bench", fmt.Sprintf("p%d", i), "Player"), tok))
			}
			for i := range tc.young {
				h.apply(withID(as(guess("bench", fmt.Sprintf("p%d", i%len(tokens)), "e"), tokens[i%len(tokens)]), fmt.Sprintf("req-%d", i)))
			}
			cmd := withID(as(guess("bench", "p1", "t"), bobToken), "next").Encode()
			b.ReportAllocs()
			for b.Loop() {
				c, err := DecodeCommand(cmd)
				if err != nil {
					b.Fatal(err)
				}
				_ = h.m.Admit(c)
			}
		})
	}
}

// BenchmarkEncodeState measures the payload of hangman.room.<room>.state,
// as the publisher encodes it and by encoding/json, its reference; and, as
// published, the state of a guess in a room that has played HistoryRounds
// rounds before (what every guess of a long game costs to encode).
func BenchmarkEncodeState(b *testing.B) {
	h := newHarness(b)
	c := create("bench", "hippopotamus")
	c.MaxWrong = 10
	h.ok(c)
	for i := range 8 {
		h.ok(join("bench", fmt.Sprintf("player-%d", i), fmt.Sprintf("Player <%d>", i)))
	}
	for i, l := range []string{"e", "p", "z", "o", "x", "t"} {
		h.ok(guess("bench", fmt.Sprintf("player-%d", i), l))
	}
	s, _ := h.m.Room("bench")
	played := playedRoomState(h)
	b.Run("played/AppendJSON", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 1024)
		for b.Loop() {
			buf = played.AppendJSON(buf[:0])
		}
		b.SetBytes(int64(len(buf)))
	})
	b.Run("AppendJSON", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 1024)
		for b.Loop() {
			buf = s.AppendJSON(buf[:0])
		}
		b.SetBytes(int64(len(buf)))
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(s); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkEncodeHistory measures the payload of
// hangman.room.<room>.history as a leader publishes it, once per finished
// round of a room that has played more than HistoryRounds rounds: by
// History.AppendJSON, which encodes every round each time, and by a
// HistoryEncoder, which encodes each round once.
func BenchmarkEncodeHistory(b *testing.B) {
	histories := playRounds(newHarness(b), "veteran", 4*HistoryRounds)
	b.Run("AppendJSON", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 16<<10)
		i := 0
		for b.Loop() {
			buf = histories[i%len(histories)].AppendJSON(buf[:0])
			i++
		}
	})
	b.Run("HistoryEncoder", func(b *testing.B) {
		b.ReportAllocs()
		var enc HistoryEncoder
		buf := make([]byte, 0, 16<<10)
		i := 0
		for b.Loop() {
			buf = enc.AppendJSON(buf[:0], &histories[i%len(histories)])
			i++
		}
	})
}

// playRounds plays n rounds of up to 26 guesses by 4 players in a new room
// and returns the histories their finishes published.
func playRounds(h *harness, room string, n int) []History {
	h.ok(create(room, "quiz"))
	for p := range 4 {
		h.ok(join(room, fmt.Sprintf("player-%d", p), fmt.Sprintf("Player %d", p)))
	}
	const alphabet = "abcdefghijklmnopqrstuvwxyz"
	var out []History
	for round := range n {
		for i, l := range alphabet {
			if res := h.ok(guess(room, fmt.Sprintf("player-%d", i%4), string(l))); res.History != nil {
				out = append(out, *res.History)
				break
			}
		}
		h.ok(newRound(room, "", WordAt(uint64(round))))
	}
	return out
}

// playedRoomState plays HistoryRounds rounds of 26 guesses by 4 players in
// a room and returns the state a guess of the next round publishes.
func playedRoomState(h *harness) State {
	h.ok(create("veteran", "quiz"))
	for p := range 4 {
		h.ok(join("veteran", fmt.Sprintf("player-%d", p), fmt.Sprintf("Player %d", p)))
	}
	const alphabet = "abcdefghijklmnopqrstuvwxyz"
	for round := range HistoryRounds {
		for i, l := range alphabet {
			if res := h.ok(guess("veteran", fmt.Sprintf("player-%d", i%4), string(l))); res.State.Status != StatusPlaying {
				break
			}
		}
		h.ok(newRound("veteran", "", WordAt(uint64(round))))
	}
	return h.ok(guess("veteran", "player-0", "e")).State
}

// manyRooms returns a Machine of n busy rooms.
func manyRooms(b *testing.B, n int) *Machine {
	b.Helper()
	h := newHarness(b)
	for r := range n {
		room := fmt.Sprintf("room-%d", r)
		h.ok(withID(create(room, WordAt(uint64(r))), room+"-c"))
		for p := range 4 {
			h.ok(withID(join(room, fmt.Sprintf("p%d", p), fmt.Sprintf("Player %d", p)), fmt.Sprintf("%s-j%d", room, p)))
		}
		for i, l := range "etaoin" {
			if res := h.apply(withID(guess(room, fmt.Sprintf("p%d", i%4), string(l)), fmt.Sprintf("%s-g%d", room, i))); res.Err != nil {
				break // round over
			}
		}
	}
	return h.m
}

func BenchmarkSnapshot(b *testing.B) {
	m := manyRooms(b, 1000)
	var buf bytes.Buffer
	if err := m.Snapshot(&buf); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(buf.Len()))
	b.ReportAllocs()
	for b.Loop() {
		if err := m.Snapshot(io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRestore(b *testing.B) {
	var buf bytes.Buffer
	if err := manyRooms(b, 1000).Snapshot(&buf); err != nil {
		b.Fatal(err)
	}
	snap := buf.Bytes()
	b.SetBytes(int64(len(snap)))
	b.ReportAllocs()
	for b.Loop() {
		if err := New().Restore(bytes.NewReader(snap)); err != nil {
			b.Fatal(err)
		}
	}
}
