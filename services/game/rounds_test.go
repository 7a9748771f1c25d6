package game

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func setWord(room, player, word string) Command {
	return Command{Kind: KindSetWord, Room: room, Player: player, Word: word, At: at0}
}

func turnTimeout(room string, turn, at int64) Command {
	return Command{Kind: KindTurnTimeout, Room: room, Turn: turn, At: at}
}

// hostRoom is a creation of a host room with words of 3-8 letters.
func hostRoom(room string) Command {
	c := create(room, "")
	c.Mode, c.MinLen, c.MaxLen = ModeHost, 3, 8
	return c
}

// timedRoom is a creation of a room with turns of MinTurnSeconds.
func timedRoom(room, word string) Command {
	c := create(room, word)
	c.TurnSeconds = MinTurnSeconds
	return c
}

// turnEnd is when a turn begun at at0 runs out.
const turnEnd = at0 + MinTurnSeconds*1000

// roundsMachine plays a host room (one finished round, one waiting for
// its word) and a timed room mid-turn: the state snapshots of version 4
// hold.
func roundsMachine(tb testing.TB) *Machine {
	h := newHarness(tb)
	h.okAll(
		hostRoom("h"), as(join("h", "p1", "Ann"), annToken), as(join("h", "p2", "Bob"), bobToken),
		withID(as(setWord("h", "p1", "otter"), annToken), "s-1"),
		as(guess("h", "p2", "o"), bobToken), as(guess("h", "p2", "t"), bobToken), as(guess("h", "p2", "e"), bobToken),
		as(guess("h", "p2", "r"), bobToken), as(newRound("h", "p2", "kiwi"), bobToken),
		timedRoom("t", "ox"), as(join("t", "p1", "Ann"), annToken), as(join("t", "p2", "Bob"), bobToken),
		as(guess("t", "p1", "o"), annToken),
	)
	return h.m
}

func TestWordLists(t *testing.T) {
	for _, want := range []string{DefaultCategory, "animals", "countries", "food"} {
		if _, ok := CategoryWords(want); !ok {
			t.Errorf("no category %q among %v", want, Categories())
		}
	}
	files, err := filepath.Glob(filepath.Join("words", "*.txt"))
	if err != nil || len(files) != len(Categories()) {
		t.Fatalf("word files %v (%v), categories %v", files, err, Categories())
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]int{}
		n := 0
		for i, line := range strings.Split(string(b), "\n") {
			if line == "" {
				continue
			}
			n++
			if !ValidWord(line) {
				t.Errorf("%s:%d: %q is not %d-%d letters a-z", file, i+1, line, MinWordLen, MaxWordLen)
			}
			if first, dup := seen[line]; dup {
				t.Errorf("%s:%d: %q repeats line %d", file, i+1, line, first)
			}
			seen[line] = i + 1
		}
		if n < 150 {
			t.Errorf("%s has %d words; a category needs a few hundred", file, n)
		}
		list, _ := CategoryWords(strings.TrimSuffix(filepath.Base(file), ".txt"))
		if len(list) != n {
			t.Errorf("%s: %d words embedded, %d in the file", file, len(list), n)
		}
	}
}

func TestPickWord(t *testing.T) {
	tests := []struct {
		name             string
		category         string
		minLen, maxLen   int
		wantErr          bool
		wantIn, wantFrom string
	}{
		{name: "default", wantFrom: DefaultCategory},
		{name: "animals", category: "animals", wantFrom: "animals"},
		{name: "short food", category: "food", minLen: 3, maxLen: 4, wantFrom: "food"},
		{name: "long countries", category: "countries", minLen: 11, wantFrom: "countries"},
		{name: "unknown", category: "cars", wantErr: true},
		{name: "no word that long", category: "animals", minLen: 30, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for r := range uint64(50) {
				w, err := PickWord(tt.category, tt.minLen, tt.maxLen, r*7919)
				if tt.wantErr {
					if CodeOf(err) != CodeInvalid {
						t.Fatalf("PickWord = %q, %v; want an invalid-argument error", w, err)
					}
					return
				}
				list, _ := CategoryWords(tt.wantFrom)
				lo, hi := wordLengths(tt.minLen, tt.maxLen)
				if err != nil || len(w) < lo || len(w) > hi || !strings.Contains("\n"+strings.Join(list, "\n")+"\n", "\n"+w+"\n") {
					t.Fatalf("PickWord = %q, %v; want a word of %s of %d-%d letters", w, err, tt.wantFrom, lo, hi)
				}
			}
		})
	}
}

// TestPickWordAvoidsRecentWords: a word the room had lately is drawn only
// when the range holds nothing else.
func TestPickWordAvoidsRecentWords(t *testing.T) {
	three, _ := CategoryWords("animals")
	three = slices.DeleteFunc(three, func(w string) bool { return len(w) != 3 })
	if len(three) < 3 {
		t.Fatalf("animals has %d words of 3 letters", len(three))
	}
	for r := range uint64(200) {
		if w, err := PickWord("animals", 3, 3, r, three[1:]...); err != nil || w != three[0] {
			t.Fatalf("PickWord avoiding all but %q = %q, %v", three[0], w, err)
		}
		if w, err := PickWord("animals", 3, 3, r, three...); err != nil || !slices.Contains(three, w) {
			t.Fatalf("PickWord avoiding every word = %q, %v; want one of them all the same", w, err)
		}
	}
}

func TestNormalizeWord(t *testing.T) {
	for in, want := range map[string]string{"Otter": "otter", "ab": "ab", "a": "", "ott3r": "", "otter ": "", "éclair": "", strings.Repeat("a", 33): ""} {
		got, err := NormalizeWord(in)
		if got != want || (err != nil) != (want == "") {
			t.Errorf("NormalizeWord(%q) = %q, %v; want %q", in, got, err, want)
		}
		if err != nil && len(in) > 2 && strings.Contains(err.Error(), in) {
			t.Errorf("NormalizeWord(%q) error repeats the word: %v", in, err)
		}
	}
}

func TestCreateRoomSettings(t *testing.T) {
	tests := []struct {
		name string
		set  func(*Command)
		want Settings // zero: refused as invalid
	}{
		{"defaults", func(*Command) {}, DefaultSettings},
		{"everything", func(c *Command) {
			c.Category, c.MinLen, c.MaxLen, c.Seats, c.TurnSeconds, c.Word = "animals", 4, 8, 5, 30, "otter"
		}, Settings{Category: "animals", MinLen: 4, MaxLen: 8, MaxPlayers: 5, Mode: ModeRandom, TurnSeconds: 30}},
		{"lower bound only", func(c *Command) { c.MinLen = 5 }, Settings{Category: DefaultCategory, MinLen: 5, MaxLen: MaxWordLen, Mode: ModeRandom}},
		{"host", func(c *Command) { c.Mode, c.Word = ModeHost, "" }, Settings{Category: DefaultCategory, MinLen: MinWordLen, MaxLen: MaxWordLen, Mode: ModeHost}},
		{"host with a word", func(c *Command) { c.Mode = ModeHost }, Settings{}},
		{"unknown mode", func(c *Command) { c.Mode = "teams" }, Settings{}},
		{"bad category name", func(c *Command) { c.Category = "Food!" }, Settings{}},
		{"lengths reversed", func(c *Command) { c.MinLen, c.MaxLen = 8, 4 }, Settings{}},
		{"length too short", func(c *Command) { c.MinLen = 1 }, Settings{}},
		{"length too long", func(c *Command) { c.MaxLen = MaxWordLen + 1 }, Settings{}},
		{"negative length", func(c *Command) { c.MaxLen = -1 }, Settings{}},
		{"word outside the range", func(c *Command) { c.MinLen = 6 }, Settings{}},
		{"too many players", func(c *Command) { c.Seats = MaxPlayers + 1 }, Settings{}},
		{"turn too short", func(c *Command) { c.TurnSeconds = MinTurnSeconds - 1 }, Settings{}},
		{"turn too long", func(c *Command) { c.TurnSeconds = MaxTurnSeconds + 1 }, Settings{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			c := create("r", "apple")
			tt.set(&c)
			if tt.want == (Settings{}) {
				h.refused(c, CodeInvalid)
				if _, ok := h.m.Room("r"); ok {
					t.Fatal("a refused creation created the room")
				}
				return
			}
			res := h.ok(c)
			if res.State.Settings != tt.want {
				t.Fatalf("settings %+v, want %+v", res.State.Settings, tt.want)
			}
			if s, _ := h.m.Settings("r"); s != tt.want {
				t.Fatalf("Settings() = %+v, want %+v", s, tt.want)
			}
			// Settings only travel in a creation.
			j := join("r", "p1", "Ann")
			tt.set(&j)
			if j.settings() != (Settings{}) {
				h.refused(j, CodeInvalid)
			}
		})
	}
}

func TestRoomMaxPlayers(t *testing.T) {
	h := newHarness(t)
	c := create("r", "apple")
	c.Seats = 2
	h.okAll(c, join("r", "p1", "Ann"), join("r", "p2", "Bob"))
	h.refused(join("r", "p3", "Cy"), CodePrecondition)
	// The cluster's lower cap still applies.
	h.okAll(create("s", "apple"), join("s", "p1", "Ann"))
	j := join("s", "p2", "Bob")
	j.Limit = 1
	h.refused(j, CodePrecondition)
}

func TestHostMode(t *testing.T) {
	h := newHarness(t)
	res := h.ok(hostRoom("h"))
	if s := res.State; s.Status != StatusSetting || s.Masked != "" || s.Setter != "" || s.Round != 1 {
		t.Fatalf("new host room: %+v", s)
	}
	// The first player seated sets the first word.
	if s := h.ok(as(join("h", "p1", "Ann"), annToken)).State; s.Setter != "p1" {
		t.Fatalf("setter after the first join: %q", s.Setter)
	}
	h.ok(as(join("h", "p2", "Bob"), bobToken))
	h.ok(join("h", "p3", "Cy"))

	steps := []struct {
		name string
		c    Command
		code Code
	}{
		{"nothing to guess yet", as(guess("h", "p2", "e"), bobToken), CodePrecondition},
		{"the setter cannot guess either", as(guess("h", "p1", "e"), annToken), CodePrecondition},
		{"not the setter", as(setWord("h", "p2", "otter"), bobToken), CodePrecondition},
		{"not the setter's token", as(setWord("h", "p1", "otter"), bobToken), CodePermission},
		{"too long for the room", withID(as(setWord("h", "p1", "hippopotamus"), annToken), "s-1"), CodePrecondition},
		{"not letters", as(setWord("h", "p1", "ott3r"), annToken), CodeInvalid},
		{"no such room", as(setWord("nope", "p1", "otter"), annToken), CodeNotFound},
		{"no new round while setting", as(newRound("h", "p1", "kiwi"), annToken), CodePrecondition},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) { h.refused(s.c, s.code) })
	}
	// A refused request stays refused, even once it could succeed.
	if res := h.apply(withID(as(setWord("h", "p1", "otter"), annToken), "s-1")); !res.Duplicate || CodeOf(res.Err) != CodePrecondition {
		t.Fatalf("retry of a refused set_word: %+v", res)
	}

	res = h.ok(withID(as(setWord("h", "p1", "otter"), annToken), "s-2"))
	if res.Event.Kind != EventWordSet || res.Event.Player != "p1" || res.State.Status != StatusPlaying || res.State.Masked != "_____" {
		t.Fatalf("word set: %+v %+v", res.Event, res.State)
	}
	if res := h.apply(withID(as(setWord("h", "p1", "otter"), annToken), "s-2")); !res.Duplicate || res.Err != nil {
		t.Fatalf("retry of an applied set_word: %+v", res)
	}
	h.refused(as(setWord("h", "p1", "otter"), annToken), CodePrecondition) // set already
	h.refused(as(guess("h", "p1", "o"), annToken), CodePrecondition)       // the setter does not guess
	for _, l := range []string{"a", "b", "c", "d", "f"} {
		h.ok(as(guess("h", "p2", l), bobToken))
	}
	res = h.ok(guess("h", "p3", "g")) // sixth miss: the guessers are hanged
	if s := res.State; s.Status != StatusLost || s.Word != "otter" || scores(s) != "p1=5 p2=0 p3=0" {
		t.Fatalf("hanged: %+v", s)
	}
	if res.History == nil || len(res.History.Rounds) != 1 || res.History.Seq != res.State.Seq || res.State.HistorySeq != res.State.Seq {
		t.Fatalf("the change that finished the round: history %+v, state's history seq %d", res.History, res.State.HistorySeq)
	}
	if rec := res.History.Rounds[0]; rec.Seq != res.State.Seq || rec.Setter != "p1" || rec.Winner != "" || rec.Status != StatusLost || len(rec.Guesses) != 6 {
		t.Fatalf("history: %+v", rec)
	}

	// The setter rotates; one whose seat is freed passes it on.
	if s := h.ok(as(newRound("h", "p2", "kiwi"), bobToken)).State; s.Setter != "p2" || s.Status != StatusSetting || s.Word != "" {
		t.Fatalf("round 2: %+v", s)
	}
	if s := h.ok(Command{Kind: KindReclaimSeat, Room: "h", Player: "p2", At: at0 + 1, Cutoff: at0}).State; s.Setter != "p3" {
		t.Fatalf("setter after p2's seat was freed: %q", s.Setter)
	}
	h.ok(setWord("h", "p3", "kiwi"))
	h.okAll(as(guess("h", "p1", "k"), annToken), as(guess("h", "p1", "i"), annToken))
	res = h.ok(as(guess("h", "p1", "w"), annToken))
	if s := res.State; s.Status != StatusWon || s.Leaderboard[0] != (Standing{ID: "p1", Name: "Ann", Score: 5 + 4 + WinBonus, Wins: 1}) {
		t.Fatalf("won: %+v", s)
	}
	if s := h.ok(as(newRound("h", "p1", "kiwi"), annToken)).State; s.Setter != "p1" {
		t.Fatalf("round 3's setter %q, want p1 (after p3)", s.Setter)
	}
	// A random room has no setter.
	h.ok(create("r", "apple"))
	h.ok(join("r", "p1", "Ann"))
	h.refused(setWord("r", "p1", "otter"), CodePrecondition)
}

// TestSetWordStaysSecret plays a host round and looks for its word
// everywhere others can see while it plays: every event and every public
// state, as JSON (what NATS carries), every lobby line, and the refusals.
func TestSetWordStaysSecret(t *testing.T) {
	const word = "quokka"
	h := newHarness(t)
	var seen []string
	look := func(res Result) {
		t.Helper()
		if res.Event != nil {
			seen = append(seen, string(res.Event.AppendJSON(nil)))
		}
		if res.Err != nil {
			seen = append(seen, res.Err.Error())
		}
		st := res.State
		seen = append(seen, string(st.AppendJSON(nil)), mustJSON(t, st.Summary()))
	}
	for _, c := range []Command{
		hostRoom("h"), as(join("h", "p1", "Ann"), annToken), as(join("h", "p2", "Bob"), bobToken),
		as(setWord("h", "p1", word), annToken), as(setWord("h", "p1", word), annToken), as(setWord("h", "p2", word), bobToken),
		as(guess("h", "p2", "q"), bobToken), as(guess("h", "p2", "k"), bobToken), as(guess("h", "p1", "u"), annToken),
		as(guess("h", "p2", "o"), bobToken),
	} {
		look(h.apply(c))
	}
	for _, s := range h.m.States() {
		look(Result{State: s})
	}
	page, err := h.m.EventsSince("h", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range page.Events {
		seen = append(seen, string(ev.AppendJSON(nil)))
	}
	for _, s := range seen {
		if strings.Contains(s, word) {
			t.Fatalf("the word of a playing round shows: %s", s)
		}
	}
	if s, _ := h.m.Room("h"); s.Masked != "q_okk_" {
		t.Fatalf("masked %q", s.Masked)
	}
	// Once the round is over it is public, as a random word is.
	h.ok(as(guess("h", "p2", "u"), bobToken))
	res := h.ok(as(guess("h", "p2", "a"), bobToken))
	if res.State.Word != word || !strings.Contains(string(res.State.AppendJSON(nil)), `"word":"`+word+`"`) {
		t.Fatalf("won round's state: %+v", res.State)
	}
}

func TestTurns(t *testing.T) {
	h := newHarness(t)
	res := h.ok(timedRoom("t", "banana"))
	if res.State.Turn != nil {
		t.Fatalf("a turn with nobody seated: %+v", res.State.Turn)
	}
	turn := func(player string, number uint64, began int64) *Turn {
		return &Turn{Player: player, Number: number, Deadline: began + MinTurnSeconds*1000}
	}
	steps := []struct {
		name string
		c    Command
		code Code  // 0: applied
		want *Turn // the turn after the step
	}{
		{"first seat takes the turn", at(as(join("t", "p1", "Ann"), annToken), 0), 0, turn("p1", 1, at0)},
		{"second seat waits", as(join("t", "p2", "Bob"), bobToken), 0, turn("p1", 1, at0)},
		{"out of turn", as(guess("t", "p2", "a"), bobToken), CodePrecondition, nil},
		{"guess passes the turn", at(as(guess("t", "p1", "a"), annToken), time.Second), 0, turn("p2", 2, at0+1000)},
		{"timeout before the deadline", turnTimeout("t", 2, at0+1000+MinTurnSeconds*1000-1), CodePrecondition, nil},
		{"timeout of an ended turn", turnTimeout("t", 1, maxAt), CodePrecondition, nil},
		{"timeout of a turn to come", turnTimeout("t", 3, maxAt), CodePrecondition, nil},
		{"timeout at the deadline", turnTimeout("t", 2, at0+1000+MinTurnSeconds*1000), 0, turn("p1", 3, at0+1000+MinTurnSeconds*1000)},
		{"the same timeout again", turnTimeout("t", 2, maxAt), CodePrecondition, nil},
		{"timeout with a request id", withID(turnTimeout("t", 3, maxAt), "x"), CodeInvalid, nil},
		{"repeated letter passes too", at(as(guess("t", "p1", "a"), annToken), 10*time.Second), 0, turn("p2", 4, at0+10000)},
		{"turn holder's seat freed", Command{Kind: KindReclaimSeat, Room: "t", Player: "p2", At: at0 + 20000, Cutoff: at0 + 1}, 0, turn("p1", 5, at0+20000)},
		{"alone, the turn comes back", at(as(guess("t", "p1", "b"), annToken), 30*time.Second), 0, turn("p1", 6, at0+30000)},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if s.code != 0 {
				h.refused(s.c, s.code)
				return
			}
			res := h.ok(s.c)
			if !reflect.DeepEqual(res.State.Turn, s.want) {
				t.Fatalf("turn %+v, want %+v", res.State.Turn, s.want)
			}
		})
	}
	// A timeout is not play: it leaves the room's time alone.
	before := h.m.rooms["t"].lastAt
	h.ok(turnTimeout("t", 6, maxAt))
	if after := h.m.rooms["t"].lastAt; after != before {
		t.Fatalf("timeout moved the room's time from %d to %d", before, after)
	}
	// The round ends: no turn to time; the next round begins one.
	h.ok(as(guess("t", "p1", "n"), annToken))
	if s, _ := h.m.Room("t"); s.Status != StatusWon || s.Turn != nil {
		t.Fatalf("after the win: %+v", s)
	}
	if got := h.m.TurnTimeouts(time.UnixMilli(maxAt), 10); len(got) != 0 {
		t.Fatalf("timeouts of a finished round: %+v", got)
	}
	if s := h.ok(as(newRound("t", "p1", "kiwi"), annToken)).State; s.Turn == nil || s.Turn.Player != "p1" || s.Turn.Number != 8 {
		t.Fatalf("new round's turn: %+v", s.Turn)
	}
}

func TestTurnTimeouts(t *testing.T) {
	h := newHarness(t)
	h.okAll(
		timedRoom("a", "ox"), join("a", "p1", "Ann"), timedRoom("b", "ox"), join("b", "p1", "Ann"),
		timedRoom("c", "ox"), create("d", "ox"), join("d", "p1", "Ann"),
	)
	tests := []struct {
		now   int64
		limit int
		want  []Command
	}{
		{turnEnd - 1, 10, nil},
		{turnEnd, 10, []Command{turnTimeout("a", 1, turnEnd), turnTimeout("b", 1, turnEnd)}},
		{turnEnd, 1, []Command{turnTimeout("a", 1, turnEnd)}},
	}
	for _, tt := range tests {
		if got := h.m.TurnTimeouts(time.UnixMilli(tt.now), tt.limit); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("TurnTimeouts(%d, %d) = %+v, want %+v", tt.now, tt.limit, got, tt.want)
		}
	}
	// Whoever leads proposes the same, from the state alone: applying
	// one leader's timeouts leaves nothing for the next to time out.
	for _, c := range h.m.TurnTimeouts(time.UnixMilli(turnEnd), 10) {
		h.ok(c)
		h.refused(c, CodePrecondition)
	}
	if got := h.m.TurnTimeouts(time.UnixMilli(turnEnd), 10); len(got) != 0 {
		t.Fatalf("timeouts left after applying them: %+v", got)
	}
}

func TestRoundHistoryBounded(t *testing.T) {
	h := newHarness(t)
	h.okAll(create("r", "ox"), as(join("r", "p1", "Ann"), annToken), as(join("r", "p2", "Bob"), bobToken))
	for i := range HistoryRounds + 3 {
		player, token := "p1", annToken
		if i%3 == 0 {
			player, token = "p2", bobToken
		}
		h.okAll(as(guess("r", player, "o"), token), as(guess("r", player, "x"), token), as(newRound("r", player, "ox"), token))
	}
	s, _ := h.m.Room("r")
	if len(s.History) != HistoryRounds || s.History[0].Round != 4 || s.History[HistoryRounds-1].Round != HistoryRounds+3 {
		t.Fatalf("history of %d rounds, %d to %d", len(s.History), s.History[0].Round, s.History[len(s.History)-1].Round)
	}
	want := []Standing{{ID: "p1", Name: "Ann", Score: 8 * (2 + WinBonus), Wins: 8}, {ID: "p2", Name: "Bob", Score: 5 * (2 + WinBonus), Wins: 5}}
	if !reflect.DeepEqual(s.Leaderboard, want) {
		t.Fatalf("leaderboard %+v, want %+v", s.Leaderboard, want)
	}
	// The history survives a snapshot.
	if r := restored(t, snapshotBytes(t, h.m)); !bytes.Equal(stateBytes(t, r), stateBytes(t, h.m)) {
		t.Fatal("restored history differs")
	}
}

// TestRestoreVersion3 restores a snapshot written before room settings
// (testdata/snapshot-v3.json, gameMachine's state then): its rooms take the
// defaults, have no history, and play on.
func TestRestoreVersion3(t *testing.T) {
	v3 := snapshotFixture(t, 3)
	m := restored(t, v3)
	for _, s := range m.States() {
		if s.Settings != DefaultSettings || s.History != nil || s.Turn != nil {
			t.Fatalf("room %s restored with %+v", s.Room, s)
		}
	}
	h := &harness{tb: t, m: m, index: m.Applied()}
	h.ok(as(guess("attic", "p1", "b"), annToken))
	h.ok(as(guess("attic", "p1", "n"), annToken))
	if s, _ := m.Room("attic"); s.Status != StatusWon || len(s.History) != 1 || len(s.History[0].Guesses) != 2 {
		t.Fatalf("round restored mid-play, then won: %+v", s)
	}
	checkFixture(t, v3, func(f *snapshotFile) { downgrade(f, 3) })
}

// TestCommandVersion4 applies entries of the encoding before settings:
// they create rooms with the defaults, as they did.
func TestCommandVersion4(t *testing.T) {
	h := newHarness(t)
	for _, c := range []Command{create("r", "apple"), as(join("r", "p1", "Ann"), annToken), as(guess("r", "p1", "p"), annToken)} {
		h.index++
		if res := h.m.Apply(h.index, encodeV4(c)); res.Err != nil {
			t.Fatalf("version 4 entry %+v: %v", c, res.Err)
		}
	}
	if s, _ := h.m.Room("r"); s.Settings != DefaultSettings || s.Masked != "_pp__" {
		t.Fatalf("room of version 4 entries: %+v", s)
	}
}

func TestRoundsSnapshotRoundTrip(t *testing.T) {
	m := roundsMachine(t)
	snap := snapshotBytes(t, m)
	r := restored(t, snap)
	if !bytes.Equal(snapshotBytes(t, r), snap) {
		t.Fatal("snapshot of a restored machine differs")
	}
	// The restored replica times out the same turns and goes on alike.
	now := time.UnixMilli(turnEnd)
	if a, b := m.TurnTimeouts(now, 10), r.TurnTimeouts(now, 10); !reflect.DeepEqual(a, b) || len(a) != 1 {
		t.Fatalf("timeouts %+v and %+v", a, b)
	}
	for i, c := range append(m.TurnTimeouts(now, 10), as(setWord("h", "p2", "yak"), bobToken)) {
		if a, b := m.ApplyCommand(m.Applied()+1, c), r.ApplyCommand(r.Applied()+1, c); !reflect.DeepEqual(a, b) || a.Err != nil {
			t.Fatalf("command %d: %+v and %+v", i, a, b)
		}
	}
	tests := []struct {
		name string
		f    func(*snapshotFile)
	}{
		{"no settings", func(s *snapshotFile) { s.Rooms[0].Settings = nil }},
		{"bad settings", func(s *snapshotFile) {
			s.Rooms[0].Settings = &Settings{Category: "x", MinLen: 9, MaxLen: 3, Mode: ModeHost}
		}},
		{"unnormalized settings", func(s *snapshotFile) { s.Rooms[0].Settings = &Settings{} }},
		{"word while setting", func(s *snapshotFile) { s.Rooms[0].Word = "yak" }},
		{"setter of a random room", func(s *snapshotFile) { s.Rooms[1].Setter = "p1" }},
		{"turn of nobody seated", func(s *snapshotFile) { s.Rooms[1].TurnPlayer = "p9" }},
		{"history's wrong outcome", func(s *snapshotFile) { s.Rooms[0].Rounds[0].Guesses[0].Outcome = OutcomeWrong }},
		{"history's round to come", func(s *snapshotFile) { s.Rooms[0].Rounds[0].Round = 9 }},
		{"too long a history", func(s *snapshotFile) {
			for range HistoryRounds {
				s.Rooms[0].Rounds = append(s.Rooms[0].Rounds, s.Rooms[0].Rounds[0])
			}
		}},
		{"current guesses not the letters", func(s *snapshotFile) { s.Rooms[1].Current[0].Letter = "x" }},
		{"negative wins", func(s *snapshotFile) { s.Rooms[0].Players[0].Wins = -1 }},
		{"version 3 with settings", func(s *snapshotFile) { s.Version = 3 }},
		{"version 4 with a round's seq", func(s *snapshotFile) { s.Version = 4 }},
		{"finished round without its seq", func(s *snapshotFile) { s.Rooms[0].Rounds[0].Seq = 0 }},
		{"finished round after the room's seq", func(s *snapshotFile) { s.Rooms[0].Rounds[0].Seq = s.Rooms[0].Seq + 1 }},
		{"finished rounds' seqs out of order", func(s *snapshotFile) {
			s.Rooms[0].Rounds = append(s.Rooms[0].Rounds, s.Rooms[0].Rounds[0])
			s.Rooms[0].Rounds[1].Round++
			s.Rooms[0].Rounds[0].Seq = s.Rooms[0].Rounds[1].Seq
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := decodeSnapshot(t, snap)
			tt.f(&f)
			b := []byte(mustJSON(t, f))
			if err := New().Restore(bytes.NewReader(b)); err == nil {
				t.Fatalf("restored %s", b)
			}
		})
	}
}

// TestRestoreVersion4 restores a snapshot written before the finished
// rounds had their seqs (testdata/snapshot-v4.json, roundsMachine's state
// then): the room's last finished round takes the room's seq, which stays
// its history's version until the next round finishes.
func TestRestoreVersion4(t *testing.T) {
	v4 := snapshotFixture(t, 4)
	m := restored(t, v4)
	s, _ := m.Room("h")
	if len(s.History) != 1 || s.History[0].Seq != s.Seq || s.HistorySeq != s.Seq {
		t.Fatalf("restored history seq %d (round's %+v), room seq %d", s.HistorySeq, s.History, s.Seq)
	}
	// The restored machine's own snapshot is a version 5 one that
	// restores to the same.
	if again, _ := restored(t, snapshotBytes(t, m)).Room("h"); !reflect.DeepEqual(again, s) {
		t.Fatalf("restored twice: %+v, once: %+v", again, s)
	}
	h := &harness{tb: t, m: m, index: m.Applied()}
	res := h.ok(as(setWord("h", "p2", "yak"), bobToken))
	if res.State.HistorySeq != s.Seq || res.History != nil {
		t.Fatalf("a change that finished nothing: history seq %d, history %+v", res.State.HistorySeq, res.History)
	}
}
