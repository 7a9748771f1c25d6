package game

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestCreateRoom(t *testing.T) {
	tests := []struct {
		name     string
		maxWrong int
		want     int
	}{
		{"default limit", 0, DefaultMaxWrong},
		{"limit of one", 1, 1},
		{"largest limit", MaxMaxWrong, MaxMaxWrong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			c := create("lobby", "apple")
			c.MaxWrong = tt.maxWrong
			c.Player = "p1" // ignored by create
			res := h.ok(c)

			want := State{
				Room: "lobby", Round: 1, Seq: 1, Masked: "_____",
				Guessed: []string{}, Wrong: []string{},
				WrongLeft: tt.want, MaxWrong: tt.want, Status: StatusPlaying,
				Players: []Player{}, Settings: DefaultSettings,
			}
			if !reflect.DeepEqual(res.State, want) {
				t.Fatalf("state\n got %+v\nwant %+v", res.State, want)
			}
			wantEv := &Event{Seq: 1, Room: "lobby", Kind: EventRoomCreated, Round: 1, Status: StatusPlaying, At: time.UnixMilli(at0).UTC()}
			if !reflect.DeepEqual(res.Event, wantEv) {
				t.Fatalf("event\n got %+v\nwant %+v", res.Event, wantEv)
			}
			if res.Outcome != "" {
				t.Fatalf("outcome %q for a create", res.Outcome)
			}
			if got, ok := h.m.Room("lobby"); !ok || !reflect.DeepEqual(got, want) {
				t.Fatalf("Room(lobby) = %+v, %v; want %+v", got, ok, want)
			}
			if got := h.m.States(); !reflect.DeepEqual(got, []State{want}) {
				t.Fatalf("States() = %+v", got)
			}
			if got, want := h.m.Rooms(), []Summary{{Room: "lobby", Round: 1, Status: StatusPlaying, Seq: 1}}; !reflect.DeepEqual(got, want) {
				t.Fatalf("Rooms() = %+v, want %+v", got, want)
			}
			if got := h.m.RecentEvents("lobby"); !reflect.DeepEqual(got, []Event{*wantEv}) {
				t.Fatalf("RecentEvents = %+v", got)
			}
			if h.m.Applied() != 1 {
				t.Fatalf("Applied() = %d, want 1", h.m.Applied())
			}
		})
	}
}

func TestUnknownRoomLookups(t *testing.T) {
	m := New()
	if s, ok := m.Room("nope"); ok || !reflect.DeepEqual(s, State{}) {
		t.Fatalf("Room(nope) = %+v, %v", s, ok)
	}
	if ev := m.RecentEvents("nope"); ev != nil {
		t.Fatalf("RecentEvents(nope) = %+v", ev)
	}
	if r := m.Rooms(); r == nil || len(r) != 0 {
		t.Fatalf("Rooms() = %#v, want empty", r)
	}
	if s := m.States(); len(s) != 0 {
		t.Fatalf("States() = %#v, want empty", s)
	}
}

func TestRoomsSortedByName(t *testing.T) {
	h := newHarness(t)
	for _, r := range []string{"zeta", "alpha", "m-1", "9lives"} {
		h.ok(create(r, "apple"))
	}
	h.ok(join("m-1", "p1", "Ann"))
	var names []string
	for _, s := range h.m.Rooms() {
		names = append(names, s.Room)
	}
	if got, want := strings.Join(names, ","), "9lives,alpha,m-1,zeta"; got != want {
		t.Fatalf("Rooms() order %s, want %s", got, want)
	}
	for _, s := range h.m.Rooms() {
		wantPlayers := 0
		if s.Room == "m-1" {
			wantPlayers = 1
		}
		if s.Players != wantPlayers {
			t.Fatalf("room %s lists %d players, want %d", s.Room, s.Players, wantPlayers)
		}
	}
	states := h.m.States()
	for i, s := range states {
		if s.Room != names[i] {
			t.Fatalf("States()[%d] is %s, want %s", i, s.Room, names[i])
		}
	}
	// Rooms and RecentEvents hand out copies.
	ev := h.m.RecentEvents("m-1")
	ev[0].Kind = "tampered"
	if h.m.RecentEvents("m-1")[0].Kind != EventRoomCreated {
		t.Fatal("RecentEvents shares its slice with the machine")
	}
}

func TestJoinAndRename(t *testing.T) {
	h := newHarness(t)
	h.ok(create("den", "apple"))

	res := h.ok(join("den", "p1", "Ann"))
	wantEv := &Event{Seq: 2, Prev: 1, Room: "den", Kind: EventPlayerJoined, Round: 1, Player: "p1", Name: "Ann", Status: StatusPlaying, At: time.UnixMilli(at0).UTC()}
	if !reflect.DeepEqual(res.Event, wantEv) {
		t.Fatalf("join event\n got %+v\nwant %+v", res.Event, wantEv)
	}
	res = h.ok(join("den", "p2", "Bob"))
	if got, want := res.State.Players, []Player{{ID: "p1", Name: "Ann"}, {ID: "p2", Name: "Bob"}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("players %+v, want %+v", got, want)
	}
	if res.State.Seq != 3 {
		t.Fatalf("seq %d, want 3", res.State.Seq)
	}

	res = h.ok(join("den", "p1", "Anna <3"))
	if res.Event == nil || res.Event.Kind != EventPlayerRenamed || res.Event.Player != "p1" || res.Event.Name != "Anna <3" {
		t.Fatalf("rename event %+v", res.Event)
	}
	if got, want := res.State.Players, []Player{{ID: "p1", Name: "Anna <3"}, {ID: "p2", Name: "Bob"}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("players after rename %+v, want %+v", got, want)
	}
	if res.State.Seq != 4 {
		t.Fatalf("seq after rename %d, want 4", res.State.Seq)
	}

	// Joining again under the same name changes nothing at all.
	before := roomsBytes(t, h.m)
	res = h.ok(join("den", "p1", "Anna <3"))
	if res.Event != nil {
		t.Fatalf("same-name join produced event %+v", res.Event)
	}
	if res.State.Seq != 4 {
		t.Fatalf("same-name join moved seq to %d", res.State.Seq)
	}
	if after := roomsBytes(t, h.m); !bytes.Equal(before, after) {
		t.Fatalf("same-name join changed the machine:\n%s\n%s", before, after)
	}
	if n := len(h.m.RecentEvents("den")); n != 4 {
		t.Fatalf("%d recent events, want 4", n)
	}
}

// guessStep is one guess of a scripted round and everything it must show.
type guessStep struct {
	player, letter string
	outcome        Outcome
	masked         string
	guessed, wrong string // letters, in order
	status         Status
	scores         string
}

func runGuesses(t *testing.T, h *harness, room, word string, steps []guessStep) {
	t.Helper()
	maxWrong := 0
	if s, ok := h.m.Room(room); ok {
		maxWrong = s.MaxWrong
	}
	for i, st := range steps {
		res := h.ok(guess(room, st.player, st.letter))
		s := res.State
		lower := strings.ToLower(st.letter)
		if res.Outcome != st.outcome {
			t.Fatalf("step %d (%s guesses %q): outcome %q, want %q", i, st.player, st.letter, res.Outcome, st.outcome)
		}
		if s.Masked != st.masked {
			t.Fatalf("step %d: masked %q, want %q", i, s.Masked, st.masked)
		}
		if got := strings.Join(s.Guessed, ""); got != st.guessed {
			t.Fatalf("step %d: guessed %q, want %q", i, got, st.guessed)
		}
		if got := strings.Join(s.Wrong, ""); got != st.wrong {
			t.Fatalf("step %d: wrong %q, want %q", i, got, st.wrong)
		}
		if want := maxWrong - len(st.wrong); s.WrongLeft != want {
			t.Fatalf("step %d: wrongLeft %d, want %d", i, s.WrongLeft, want)
		}
		if s.Status != st.status {
			t.Fatalf("step %d: status %q, want %q", i, s.Status, st.status)
		}
		if got := scores(s); got != st.scores {
			t.Fatalf("step %d: scores %q, want %q", i, got, st.scores)
		}
		wantWord := ""
		if st.status != StatusPlaying {
			wantWord = word
		}
		if s.Word != wantWord {
			t.Fatalf("step %d: word %q, want %q", i, s.Word, wantWord)
		}
		wantLast := &LastGuess{Player: st.player, Letter: lower, Outcome: st.outcome}
		if !reflect.DeepEqual(s.LastGuess, wantLast) {
			t.Fatalf("step %d: lastGuess %+v, want %+v", i, s.LastGuess, wantLast)
		}
		if s.Seq != h.index {
			t.Fatalf("step %d: seq %d, want %d", i, s.Seq, h.index)
		}
		ev := res.Event
		if ev == nil || ev.Kind != EventGuess || ev.Seq != h.index || ev.Room != room || ev.Player != st.player ||
			ev.Letter != lower || ev.Outcome != st.outcome || ev.Status != st.status || ev.Round != s.Round {
			t.Fatalf("step %d: event %+v", i, ev)
		}
	}
}

func TestGuessScoringAndWin(t *testing.T) {
	h := newHarness(t)
	c := create("r", "banana")
	c.MaxWrong = 3
	h.ok(c)
	h.ok(join("r", "p1", "Ann"))
	h.ok(join("r", "p2", "Bob"))
	runGuesses(t, h, "r", "banana", []guessStep{
		// One point per occurrence: three a's.
		{"p1", "a", OutcomeCorrect, "_a_a_a", "a", "", StatusPlaying, "p1=3 p2=0"},
		{"p2", "x", OutcomeWrong, "_a_a_a", "ax", "x", StatusPlaying, "p1=3 p2=0"},
		{"p2", "N", OutcomeCorrect, "_anana", "axn", "x", StatusPlaying, "p1=3 p2=2"},
		// Repeats score nothing and cost no wrong guess, whatever the case.
		{"p1", "A", OutcomeRepeated, "_anana", "axn", "x", StatusPlaying, "p1=3 p2=2"},
		{"p1", "x", OutcomeRepeated, "_anana", "axn", "x", StatusPlaying, "p1=3 p2=2"},
		{"p2", "q", OutcomeWrong, "_anana", "axnq", "xq", StatusPlaying, "p1=3 p2=2"},
		// The completing guess: one b plus the bonus.
		{"p1", "b", OutcomeCorrect, "banana", "axnqb", "xq", StatusWon, fmt.Sprintf("p1=%d p2=2", 3+1+WinBonus)},
	})
	h.refused(guess("r", "p2", "z"), CodePrecondition)
	h.refused(guess("r", "p2", "a"), CodePrecondition)
}

func TestWinBonusOnFirstGuess(t *testing.T) {
	h := newHarness(t)
	h.ok(create("r", "aa"))
	h.ok(join("r", "p1", "Ann"))
	runGuesses(t, h, "r", "aa", []guessStep{
		{"p1", "a", OutcomeCorrect, "aa", "a", "", StatusWon, fmt.Sprintf("p1=%d", 2+WinBonus)},
	})
}

func TestLossAtMaxWrong(t *testing.T) {
	h := newHarness(t)
	c := create("r", "apple")
	c.MaxWrong = 2
	h.ok(c)
	h.ok(join("r", "p1", "Ann"))
	runGuesses(t, h, "r", "apple", []guessStep{
		{"p1", "p", OutcomeCorrect, "_pp__", "p", "", StatusPlaying, "p1=2"},
		{"p1", "z", OutcomeWrong, "_pp__", "pz", "z", StatusPlaying, "p1=2"},
		{"p1", "z", OutcomeRepeated, "_pp__", "pz", "z", StatusPlaying, "p1=2"},
		// Lost: Masked keeps what was found; the word is in Word.
		{"p1", "q", OutcomeWrong, "_pp__", "pzq", "zq", StatusLost, "p1=2"},
	})
	h.refused(guess("r", "p1", "a"), CodePrecondition)
	h.refused(guess("r", "p1", "z"), CodePrecondition)
	if s, _ := h.m.Room("r"); s.WrongLeft != 0 || s.Status != StatusLost || s.Word != "apple" {
		t.Fatalf("after loss: %+v", s)
	}
}

func TestRepeatedGuessChangesOnlyLastGuessAndSeq(t *testing.T) {
	tests := []struct{ first, again string }{
		{"a", "a"}, // correct letter
		{"a", "A"},
		{"z", "z"}, // wrong letter
		{"Z", "z"},
	}
	for _, tt := range tests {
		t.Run(tt.first+tt.again, func(t *testing.T) {
			h := newHarness(t)
			h.ok(create("r", "apple"))
			h.ok(join("r", "p1", "Ann"))
			h.ok(join("r", "p2", "Bob"))
			before := h.ok(guess("r", "p1", tt.first)).State
			res := h.ok(guess("r", "p2", tt.again))
			if res.Outcome != OutcomeRepeated {
				t.Fatalf("outcome %q, want repeated", res.Outcome)
			}
			after := res.State
			wantLast := &LastGuess{Player: "p2", Letter: strings.ToLower(tt.again), Outcome: OutcomeRepeated}
			if !reflect.DeepEqual(after.LastGuess, wantLast) {
				t.Fatalf("lastGuess %+v, want %+v", after.LastGuess, wantLast)
			}
			if after.Seq != h.index || after.Seq == before.Seq {
				t.Fatalf("seq %d (before %d), want %d", after.Seq, before.Seq, h.index)
			}
			after.LastGuess, after.Seq, after.Prev = before.LastGuess, before.Seq, before.Prev
			if !reflect.DeepEqual(after, before) {
				t.Fatalf("a repeated guess changed more than lastGuess and seq:\nbefore %+v\nafter  %+v", before, after)
			}
		})
	}
}

func TestCaseInsensitiveLetter(t *testing.T) {
	h := newHarness(t)
	h.ok(create("r", "apple"))
	h.ok(join("r", "p1", "Ann"))
	res := h.ok(guess("r", "p1", "P"))
	if res.Outcome != OutcomeCorrect || res.State.Masked != "_pp__" || res.Event.Letter != "p" ||
		res.State.LastGuess.Letter != "p" || !reflect.DeepEqual(res.State.Guessed, []string{"p"}) {
		t.Fatalf("upper-case guess: outcome %q state %+v event %+v", res.Outcome, res.State, res.Event)
	}
	if res := h.ok(guess("r", "p1", "p")); res.Outcome != OutcomeRepeated {
		t.Fatalf("lower-case repeat of an upper-case guess: %q", res.Outcome)
	}
}

func TestNewRound(t *testing.T) {
	h := newHarness(t)
	c := create("r", "ox")
	c.MaxWrong = 4
	h.ok(c)
	h.ok(join("r", "p1", "Ann"))
	h.ok(join("r", "p2", "Bob"))
	h.ok(guess("r", "p1", "z"))
	h.ok(guess("r", "p1", "o"))

	h.refused(newRound("r", "p1", "apple"), CodePrecondition) // still playing
	h.refused(newRound("nowhere", "p1", "apple"), CodeNotFound)

	if s := h.ok(guess("r", "p2", "x")).State; s.Status != StatusWon {
		t.Fatalf("round 1 not won: %+v", s)
	}
	res := h.ok(newRound("r", "p2", "kiwi"))
	want := State{
		Room: "r", Round: 2, Seq: h.index, Prev: h.index - 1, Masked: "____",
		Guessed: []string{}, Wrong: []string{}, WrongLeft: 4, MaxWrong: 4, Status: StatusPlaying,
		Players:     []Player{{ID: "p1", Name: "Ann", Score: 1}, {ID: "p2", Name: "Bob", Score: 1 + WinBonus}},
		Settings:    DefaultSettings,
		HistorySeq:  h.index - 1, // the winning guess
		Leaderboard: []Standing{{ID: "p2", Name: "Bob", Score: 1 + WinBonus, Wins: 1}, {ID: "p1", Name: "Ann", Score: 1}},
	}
	if !reflect.DeepEqual(res.State, want) {
		t.Fatalf("new round state\n got %+v\nwant %+v", res.State, want)
	}
	// A read of the room shows the history the state names.
	wantHistory := []RoundRecord{{Seq: h.index - 1, Round: 1, Word: "ox", Status: StatusWon, Winner: "p2", Guesses: []GuessRecord{
		{Player: "p1", Letter: "z", Outcome: OutcomeWrong}, {Player: "p1", Letter: "o", Outcome: OutcomeCorrect},
		{Player: "p2", Letter: "x", Outcome: OutcomeCorrect},
	}}}
	want.History = wantHistory
	if s, _ := h.m.Room("r"); !reflect.DeepEqual(s, want) {
		t.Fatalf("read of the room\n got %+v\nwant %+v", s, want)
	}
	wantEv := &Event{Seq: h.index, Prev: h.index - 1, Room: "r", Kind: EventRoundStarted, Round: 2, Player: "p2", Status: StatusPlaying, At: time.UnixMilli(at0).UTC()}
	if !reflect.DeepEqual(res.Event, wantEv) {
		t.Fatalf("new round event\n got %+v\nwant %+v", res.Event, wantEv)
	}
	h.refused(newRound("r", "", "apple"), CodePrecondition)

	// Letters of the last round are forgotten: "o" is new again.
	if res := h.ok(guess("r", "p1", "z")); res.Outcome != OutcomeWrong {
		t.Fatalf("z in round 2: %q", res.Outcome)
	}
	// A lost round can be followed too, by anyone or no one.
	for _, l := range []string{"a", "b", "c"} {
		h.ok(guess("r", "p1", l))
	}
	if s, _ := h.m.Room("r"); s.Status != StatusLost {
		t.Fatalf("round 2 not lost: %+v", s)
	}
	if res := h.ok(newRound("r", "", "apple")); res.State.Round != 3 || res.Event.Player != "" {
		t.Fatalf("anonymous new round: %+v %+v", res.State, res.Event)
	}
}

func TestPreconditions(t *testing.T) {
	h := newHarness(t)
	h.ok(create("r", "apple"))
	h.ok(join("r", "p1", "Ann"))
	tests := []struct {
		name string
		c    Command
		code Code
	}{
		{"duplicate create", create("r", "melon"), CodeExists},
		{"duplicate create same word", create("r", "apple"), CodeExists},
		{"join unknown room", join("nope", "p1", "Ann"), CodeNotFound},
		{"guess unknown room", guess("nope", "p1", "a"), CodeNotFound},
		{"new round unknown room", newRound("nope", "p1", "apple"), CodeNotFound},
		{"guess by a stranger", guess("r", "p2", "a"), CodePrecondition},
		{"guess by a different case id", guess("r", "P1", "a"), CodePrecondition},
		{"new round while playing", newRound("r", "p1", "melon"), CodePrecondition},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := h.refused(tt.c, tt.code)
			if res.Room != tt.c.Room {
				t.Fatalf("Result.Room = %q, want %q", res.Room, tt.c.Room)
			}
		})
	}
}

func TestRoomFull(t *testing.T) {
	h := newHarness(t)
	h.ok(create("r", "apple"))
	for i := range MaxPlayers {
		h.ok(join("r", fmt.Sprintf("p%d", i), fmt.Sprintf("Player %d", i)))
	}
	h.refused(join("r", "late", "Late"), CodePrecondition)
	// Players already in can still rename themselves and play.
	if res := h.ok(join("r", "p7", "Seven")); res.Event == nil || res.Event.Kind != EventPlayerRenamed {
		t.Fatalf("rename in a full room: %+v", res.Event)
	}
	h.ok(guess("r", "p63", "a"))
	if s, _ := h.m.Room("r"); len(s.Players) != MaxPlayers {
		t.Fatalf("%d players, want %d", len(s.Players), MaxPlayers)
	}
}

func TestMaxRooms(t *testing.T) {
	if testing.Short() {
		t.Skip("creates MaxRooms rooms")
	}
	h := newHarness(t)
	for i := range MaxRooms {
		h.ok(create(fmt.Sprintf("r%d", i), "apple"))
	}
	h.refused(create("one-more", "apple"), CodePrecondition)
	h.refused(create("r0", "apple"), CodeExists)
	// Rooms that exist still take commands.
	h.ok(join("r9999", "p1", "Ann"))
}

func TestRoundLimit(t *testing.T) {
	h := newHarness(t)
	h.ok(create("r", "aa"))
	h.ok(join("r", "p1", "Ann"))
	h.ok(guess("r", "p1", "a"))
	h.m.rooms["r"].round = ^uint64(0) // as a restored snapshot may say
	h.refused(newRound("r", "p1", "apple"), CodePrecondition)
}

// baseHarness returns a machine with room "r" (word apple), player p1 joined
// and one letter guessed.
func baseHarness(t *testing.T) *harness {
	t.Helper()
	h := newHarness(t)
	h.ok(create("r", "apple"))
	h.ok(join("r", "p1", "Ann"))
	h.ok(guess("r", "p1", "p"))
	return h
}

func TestBadInput(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	g := func(letter string) Command { return guess("r", "p1", letter) }
	j := func(name string) Command { return join("r", "p1", name) }
	inRoom := func(room string) []Command {
		return []Command{create(room, "apple"), join(room, "p1", "Ann"), guess(room, "p1", "a"), newRound(room, "p1", "apple")}
	}
	with := func(c Command, f func(*Command)) Command { f(&c); return c }

	type tc struct {
		name string
		c    Command
		// rawOK: the command has a string JSON cannot carry (invalid UTF-8),
		// so its encoding decodes to a different, valid command.
		rawOK bool
	}
	tests := []tc{
		{name: "two letters", c: g("ab")},
		{name: "digit", c: g("1")},
		{name: "empty letter", c: g("")},
		{name: "e acute", c: g("é")},
		{name: "punctuation", c: g("!")},
		{name: "space", c: g(" ")},
		{name: "letter and space", c: g("a ")},
		{name: "emoji", c: g("🙂")},
		{name: "invalid utf8 letter", c: g("\xff"), rawOK: true},
		{name: "empty player guess", c: guess("r", "", "a")},
		{name: "empty player join", c: join("r", "", "Ann")},
		{name: "player with space", c: guess("r", "p 1", "a")},
		{name: "player with dot", c: join("r", "p.1", "Ann")},
		{name: "player too long", c: join("r", long(MaxPlayerIDLen+1), "Ann")},
		{name: "new round bad player", c: newRound("r", "p!", "melon")},
		{name: "empty name", c: j("")},
		{name: "blank name", c: j("   ")},
		{name: "tab name", c: j("\t")},
		{name: "control char in name", c: j("An\x00n")},
		{name: "newline in name", c: j("An\nn")},
		{name: "escape in name", c: j("\x1b[31mred")},
		{name: "zero width name", c: j("\u200b")},
		{name: "33 rune name", c: j(strings.Repeat("é", MaxNameLen+1))},
		{name: "invalid utf8 name", c: j("Ann\xff"), rawOK: true},
		{name: "bad word", c: create("new", "Apple")},
		{name: "one letter word", c: create("new", "a")},
		{name: "empty word", c: create("new", "")},
		{name: "word with digit", c: create("new", "app1e")},
		{name: "word with accent", c: create("new", "café")},
		{name: "33 letter word", c: create("new", long(MaxWordLen+1))},
		{name: "new round bad word", c: newRound("r", "p1", "no way")},
		{name: "new round no word", c: newRound("r", "p1", "")},
		{name: "negative limit", c: with(create("new", "apple"), func(c *Command) { c.MaxWrong = -1 })},
		{name: "limit too high", c: with(create("new", "apple"), func(c *Command) { c.MaxWrong = MaxMaxWrong + 1 })},
		{name: "kind zero", c: with(g("a"), func(c *Command) { c.Kind = 0 })},
		{name: "kind five", c: with(g("a"), func(c *Command) { c.Kind = 5 })},
		{name: "kind 255", c: with(g("a"), func(c *Command) { c.Kind = 255 })},
		{name: "request id with space", c: withID(g("a"), "req 1")},
		{name: "request id too long", c: withID(g("a"), long(MaxRequestIDLen+1))},
		{name: "request id non-ascii", c: withID(g("a"), "réq")},
		{name: "request id DEL", c: withID(g("a"), "req\x7f")},
		{name: "negative time", c: with(g("a"), func(c *Command) { c.At = -1 })},
		{name: "time past year 9999", c: with(g("a"), func(c *Command) { c.At = maxAt + 1 })},
		{name: "max int64 time", c: with(g("a"), func(c *Command) { c.At = 1<<63 - 1 })},
	}
	for _, room := range []string{"", "A", "Room", "a.b", "a*", "a>", "a b", long(MaxRoomLen + 1), "-a", "_a", "é", "a/b", "a\x00"} {
		for _, c := range inRoom(room) {
			tests = append(tests, tc{name: fmt.Sprintf("room %q %s", room, c.Kind), c: c})
		}
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.c.Validate(); CodeOf(err) != CodeInvalid {
				t.Fatalf("Validate() = %v, want code invalid", err)
			}

			// Applied as a command, as the transport would propose it.
			h := baseHarness(t)
			res := h.refused(tt.c, CodeInvalid)
			if res.Room != tt.c.Room {
				t.Fatalf("Result.Room = %q, want %q", res.Room, tt.c.Room)
			}
			if tt.rawOK {
				return
			}
			// Encoded into a log entry: refused by the decoder and by Apply.
			entry := tt.c.Encode()
			if _, err := DecodeCommand(entry); CodeOf(err) != CodeInvalid {
				t.Fatalf("DecodeCommand(%q) = %v, want code invalid", entry, err)
			}
			h = baseHarness(t)
			h.refusedEntry(entry, CodeInvalid)
		})
	}
}

// TestValidLimits pins the edges of every limit from the accepting side, so
// the refusals above are not passing for the wrong reason.
func TestValidLimits(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	h := newHarness(t)
	tests := []struct {
		name string
		c    Command
	}{
		{"32 char room", create(long(MaxRoomLen), "apple")},
		{"room with dash and underscore", create("a-b_c", "apple")},
		{"room starting with digit", create("0room", "apple")},
		{"2 letter word", create("two", "ab")},
		{"32 letter word", create("long-word", long(MaxWordLen))},
		{"largest limit", Command{Kind: KindCreateRoom, Room: "hard", Word: "apple", MaxWrong: MaxMaxWrong}},
		{"64 char player", join("two", strings.Repeat("P", MaxPlayerIDLen), "Ann")},
		{"player id alphabet", join("two", "Az09-_", "Ann")},
		{"32 rune name", join("two", "p1", strings.Repeat("é", MaxNameLen))},
		{"name with inner spaces and markup", join("two", "p2", " <b>Bo b</b> ")},
		{"upper-case letter", guess("two", "p1", "B")},
		{"64 char request id", withID(guess("two", "p2", "a"), strings.Repeat("~", MaxRequestIDLen))},
		{"time zero", Command{Kind: KindGuess, Room: "hard", Player: "p1", Letter: "a"}},
		{"last time", Command{Kind: KindCreateRoom, Room: "late", Word: "apple", At: maxAt}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.c.Validate(); err != nil {
				t.Fatalf("Validate() = %v", err)
			}
			if d, err := DecodeCommand(tt.c.Encode()); err != nil || d != tt.c {
				t.Fatalf("DecodeCommand(Encode()) = %+v, %v; want %+v", d, err, tt.c)
			}
			if tt.c.Room == "hard" && tt.c.Kind == KindGuess {
				return // validated only: p1 never joined "hard"
			}
			h.ok(tt.c)
		})
	}
	// The latest representable time survives a snapshot.
	restored(t, snapshotBytes(t, h.m))
}

func TestDecodeCommandRejectsGarbage(t *testing.T) {
	bin := guess("r", "p1", "a").Encode()
	withBin := func(tail ...byte) []byte { return append(append([]byte{}, bin...), tail...) }
	// bare ends in MaxWrong 0 and At 0, a byte each.
	bare := Command{Kind: KindGuess, Room: "r", Player: "p1", Letter: "a"}.Encode()
	// jsonGuess is the guess in the retired version 1 encoding.
	const jsonGuess = `{"k":3,"r":"r","p":"p1","l":"a"}`
	tests := []struct {
		name  string
		entry []byte
	}{
		{"nil", nil},
		{"empty", []byte{}},
		{"version only", []byte{commandBinary}},
		{"version zero", append([]byte{0}, bin[1:]...)},
		{"version one, the retired json encoding", []byte("\x01" + jsonGuess)},
		{"version one with a binary body", append([]byte{1}, bin[1:]...)},
		{"version two", append([]byte{2}, bin[1:]...)},
		{"json as binary", append([]byte{commandBinary}, jsonGuess...)},
		{"plain json", []byte(jsonGuess)},
		{"binary kind only", []byte{commandBinary, byte(KindGuess)}},
		{"binary truncated", bin[:len(bin)-1]},
		{"binary truncated string", bin[:5]},
		{"binary trailing byte", withBin(0)},
		{"binary trailing whitespace", withBin(' ', '\n')},
		{"binary string past the end", []byte{commandBinary, byte(KindGuess), 0x7f, 'r'}},
		{"binary huge string length", []byte{commandBinary, byte(KindGuess), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
		{"binary unterminated varint", []byte{commandBinary, byte(KindGuess), 0x80, 0x80}},
		{"binary limit beyond int32", append(bare[:len(bare)-2:len(bare)-2], 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0)},
		{"binary negative time", Command{Kind: KindGuess, Room: "r", Player: "p1", Letter: "a", At: -1}.Encode()},
		{"binary unknown kind", append([]byte{commandBinary, 9}, bin[2:]...)},
		{"oversized", withBin(bytes.Repeat([]byte{0}, MaxCommandSize)...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := DecodeCommand(tt.entry)
			if CodeOf(err) != CodeInvalid {
				t.Fatalf("DecodeCommand(%q) = %+v, %v; want code invalid", tt.entry, c, err)
			}
			if c != (Command{}) {
				t.Fatalf("DecodeCommand returned %+v with its error", c)
			}
			res := baseHarness(t).refusedEntry(tt.entry, CodeInvalid)
			if res.Room != "" {
				t.Fatalf("Result.Room = %q for an undecodable entry", res.Room)
			}
		})
	}
}

func TestApplyEqualsDecodeThenApplyCommand(t *testing.T) {
	a, b := newHarness(t), newHarness(t)
	cmds := []Command{
		withID(create("r", "apple"), "c1"), join("r", "p1", "Ann"), withID(guess("r", "p1", "P"), "g1"),
		withID(guess("r", "p1", "P"), "g1"), guess("r", "p2", "a"), guess("r", "p1", "ab"), newRound("r", "", "melon"),
	}
	for i, c := range cmds {
		a.index++
		ra := a.m.Apply(a.index, c.Encode())
		rb := b.apply(c)
		if rb.Err != nil && ra.Room == "" {
			rb.Room = "" // a refused entry is refused before its room is known
		}
		if !reflect.DeepEqual(ra, rb) {
			t.Fatalf("command %d: Apply = %+v, ApplyCommand = %+v", i, ra, rb)
		}
	}
	if !bytes.Equal(snapshotBytes(t, a.m), snapshotBytes(t, b.m)) {
		t.Fatal("Apply and ApplyCommand machines differ")
	}
}

func TestKindAndCodeStrings(t *testing.T) {
	kinds := map[Kind]string{KindCreateRoom: "create_room", KindJoinRoom: "join_room", KindGuess: "guess", KindNewRound: "new_round", 0: "kind(0)", 9: "kind(9)"}
	for k, want := range kinds {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", uint8(k), got, want)
		}
	}
	codes := map[Code]string{CodeInvalid: "invalid", CodeNotFound: "not found", CodeExists: "exists", CodePrecondition: "precondition", 0: "code(0)", 7: "code(7)"}
	for c, want := range codes {
		if got := c.String(); got != want {
			t.Errorf("Code(%d).String() = %q, want %q", uint8(c), got, want)
		}
	}
	wrapped := fmt.Errorf("proposing: %w", &Error{Code: CodeExists, Msg: "x"})
	if CodeOf(wrapped) != CodeExists || CodeOf(fmt.Errorf("plain")) != 0 || CodeOf(nil) != 0 {
		t.Error("CodeOf does not unwrap")
	}
}

func TestNormalizeLetter(t *testing.T) {
	for c := byte('a'); c <= 'z'; c++ {
		for _, s := range []string{string(c), string(c - 'a' + 'A')} {
			if got, err := NormalizeLetter(s); err != nil || got != c {
				t.Fatalf("NormalizeLetter(%q) = %q, %v; want %q", s, got, err, c)
			}
		}
	}
	for _, s := range []string{"", "ab", "1", "é", "É", "@", "[", "`", "{", "\x00", "ǅ"} {
		if got, err := NormalizeLetter(s); CodeOf(err) != CodeInvalid || got != 0 {
			t.Fatalf("NormalizeLetter(%q) = %q, %v; want code invalid", s, got, err)
		}
	}
}

func TestWords(t *testing.T) {
	w := Words()
	if len(w) < 100 {
		t.Fatalf("only %d words", len(w))
	}
	seen := map[string]bool{}
	for i, s := range w {
		if !ValidWord(s) {
			t.Fatalf("word %d %q is not a valid secret word", i, s)
		}
		if seen[s] {
			t.Fatalf("word %q listed twice", s)
		}
		seen[s] = true
		if WordAt(uint64(i)) != s || WordAt(uint64(i+len(w))) != s {
			t.Fatalf("WordAt(%d) = %q, want %q", i, WordAt(uint64(i)), s)
		}
	}
	if WordAt(^uint64(0)) == "" {
		t.Fatal("WordAt(max) is empty")
	}
	w[0] = "tampered"
	if Words()[0] == "tampered" {
		t.Fatal("Words shares its slice")
	}
}
