package game

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

var seedFlag = flag.Uint64("seed", 0, "seed of the property tests (0: a new one each run)")

// testSeed returns the seed of a property test and logs how to replay it.
func testSeed(t *testing.T) uint64 {
	t.Helper()
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (replay with: go test -run '^%s$' -seed=%d ./services/game)", seed, t.Name(), seed)
	return seed
}

// gen makes random log entries: mostly commands a real proposer could send
// (with a small cast of rooms, players and request ids, so that they meet),
// some retries, some invalid commands and some garbage.
type gen struct {
	r       *rand.Rand
	history [][]byte // recent entries, for retries
	ids     int      // request ids issued
	// words is the last word proposed for each room: guesses aim at it
	// two times in three, so that rounds are won as well as lost.
	words map[string]string
	// leader, if set, is a replica the generator reads as a leader does
	// to time out turns that are running (TurnTimeouts).
	leader *Machine
}

func newGen(seed, stream uint64) *gen {
	return &gen{r: rand.New(rand.NewPCG(seed, stream)), words: map[string]string{}}
}

var (
	genRooms   = []string{"alpha", "b-2", "c_3", "0d"}
	genPlayers = []string{"p1", "p2", "P-3", "p_4"}
	genNames   = []string{"Ann", "Bob", "Zoë", "<b>x</b>", " pad ", "李"}
	// letters, weighted towards ones the words contain, plus bad ones
	genLetters = strings.Split("eeaaiioorrttnnsslluuccddmmpphbgyfkwvzxqjEATS", "")
	badLetters = []string{"", "ab", "1", "é", " ", "?"}
)

func (g *gen) pick(s []string) string { return s[g.r.IntN(len(s))] }

func (g *gen) command() Command {
	c := Command{Room: g.pick(genRooms), At: g.r.Int64N(maxAt + 1)}
	if g.r.IntN(3) > 0 {
		g.ids++
		c.RequestID = fmt.Sprintf("q%d", g.ids)
	}
	switch n := g.r.IntN(100); {
	case n < 8:
		c.Kind = KindCreateRoom
		c.Word = WordAt(g.r.Uint64())
		c.MaxWrong = []int{0, 0, 2, 10, MaxMaxWrong}[g.r.IntN(5)]
		c.Limit = []int{0, 0, 0, 2, 3}[g.r.IntN(5)]
		// Some rooms with settings: a room's own cap, timed turns, or
		// players who set the words.
		switch g.r.IntN(8) {
		case 0:
			c.Seats = 2
		case 1:
			c.TurnSeconds = MinTurnSeconds
		case 2:
			c.Mode, c.Word = ModeHost, ""
		case 3:
			c.Mode, c.Word, c.TurnSeconds = ModeHost, "", MaxTurnSeconds
		case 4:
			c.Category, c.MinLen, c.MaxLen = "animals", len(c.Word), len(c.Word)
		}
		g.words[c.Room] = c.Word
	case n < 22:
		c.Kind = KindJoinRoom
		c.Player = g.pick(genPlayers)
		c.Name = g.pick(genNames)
		c.Limit = []int{0, 0, 0, 2, 3}[g.r.IntN(5)]
	case n < 80:
		c.Kind = KindGuess
		c.Player = g.pick(genPlayers)
		c.Letter = g.pick(genLetters)
		if w := g.words[c.Room]; w != "" && g.r.IntN(3) > 0 {
			c.Letter = string(w[g.r.IntN(len(w))])
		}
	case n < 86:
		// A setter sets the word guesses aim at, if there is one.
		c.Kind = KindSetWord
		c.Player = g.pick(genPlayers)
		if c.Word = g.words[c.Room]; c.Word == "" {
			c.Word = WordAt(g.r.Uint64())
			g.words[c.Room] = c.Word
		}
	case n < 92:
		c.Kind = KindNewRound
		c.Word = WordAt(g.r.Uint64())
		g.words[c.Room] = c.Word
		if g.r.IntN(2) == 0 {
			c.Player = g.pick(genPlayers)
		}
	case n < 97:
		// The leader's turn timeouts: of a turn that may or may not be
		// the current one, often late enough.
		c.Kind = KindTurnTimeout
		c.Turn = 1 + g.r.Int64N(8)
		c.RequestID = ""
		if g.r.IntN(4) > 0 {
			c.At = maxAt
		}
		if g.leader != nil && g.r.IntN(2) == 0 {
			// As the leader proposes them, or a stale copy.
			if due := g.leader.TurnTimeouts(time.UnixMilli(c.At), len(genRooms)); len(due) > 0 {
				c = due[g.r.IntN(len(due))]
				c.Turn -= g.r.Int64N(2)
			}
		}
	case n < 98:
		// The leader's reclamations: often of what is idle by then (the
		// latest time there is), sometimes of what is not.
		c.Kind = KindDeleteRoom
		c.At, c.Cutoff = g.reclaimTimes()
		c.RequestID = ""
	default:
		c.Kind = KindReclaimSeat
		c.Player = g.pick(genPlayers)
		c.At, c.Cutoff = g.reclaimTimes()
		c.RequestID = ""
	}
	if c.Player != "" && c.Kind != KindReclaimSeat {
		// Mostly the player's own token; sometimes none (entries from
		// before tokens), sometimes another player's or a forged one.
		switch n := g.r.IntN(32); {
		case n < 29:
			c.TokenHash = HashToken("token-of-" + c.Player + "-0123456789")
		case n < 30:
		case n < 31:
			c.TokenHash = HashToken("token-of-" + g.pick(genPlayers) + "-0123456789")
		default:
			c.TokenHash = HashToken(forgedToken)
		}
	}
	// Break one field now and then.
	if g.r.IntN(15) == 0 {
		switch g.r.IntN(13) {
		case 0:
			c.Letter = g.pick(badLetters)
		case 1:
			c.Room = g.pick([]string{"", "A", "a.b", "a>", strings.Repeat("r", 33)})
		case 2:
			c.Word = g.pick([]string{"", "x", "Word", "w0rd"})
		case 3:
			c.Player = g.pick([]string{"p 1", "p.1", ""})
		case 4:
			c.Name = g.pick([]string{"", " ", "a\x01"})
		case 5:
			c.Kind = Kind(g.r.IntN(256))
		case 6:
			c.MaxWrong = g.r.IntN(60) - 30
		case 7:
			c.Limit = g.r.IntN(200) - 20
		case 8:
			c.TokenHash = g.pick([]string{"short", HashToken("x")[:31]})
		case 9:
			c.Cutoff = g.r.Int64N(maxAt+2) - 1
		case 10:
			c.TurnSeconds = g.r.IntN(20) - 2
		case 11:
			c.Mode, c.Category = Mode(g.pick([]string{"host", "Host", "x"})), g.pick([]string{"food", "", "A b"})
		case 12:
			c.MinLen, c.MaxLen, c.Turn = g.r.IntN(40)-3, g.r.IntN(40)-3, g.r.Int64N(3)-1
		}
	}
	return c
}

// reclaimTimes returns the time and cutoff of a reclamation: half the
// time the latest there are, which reclaim whatever they address.
func (g *gen) reclaimTimes() (at, cutoff int64) {
	if g.r.IntN(2) == 0 {
		return maxAt, maxAt
	}
	at = g.r.Int64N(maxAt + 1)
	return at, g.r.Int64N(at + 1)
}

// entry returns the next log entry.
func (g *gen) entry() []byte {
	var e []byte
	switch n := g.r.IntN(100); {
	case n < 8 && len(g.history) > 0: // a retry
		e = g.history[g.r.IntN(len(g.history))]
	case n < 11: // garbage
		e = make([]byte, g.r.IntN(40))
		for i := range e {
			e[i] = byte(g.r.UintN(256))
		}
	case n < 15: // a damaged command
		b := g.command().Encode()
		switch g.r.IntN(3) {
		case 0:
			b = b[:g.r.IntN(len(b))]
		case 1:
			b[g.r.IntN(len(b))] = byte(g.r.UintN(256))
		default:
			b = append(b, "}"...)
		}
		e = b
	case n < 25: // a batch, its rooms sometimes repeated
		cmds := make([][]byte, 1+g.r.IntN(4))
		for i := range cmds {
			cmds[i] = g.command().Encode()
		}
		e = EncodeBatch(cmds)
	default:
		e = g.command().Encode()
	}
	g.history = append(g.history, e)
	if len(g.history) > 30 {
		g.history = g.history[1:]
	}
	return e
}

// replicas applies the same entries to several Machines and checks after
// every entry that they agree, byte for byte.
type replicas struct {
	t     *testing.T
	ms    []*Machine
	index uint64
	last  []byte            // snapshot of ms[0] after the last entry
	game  []byte            // and its stateBytes
	seqs  map[string]uint64 // each room's seq as last seen
	// quiet applies every entry with ApplyEntryQuiet, as a follower does.
	quiet *Machine
	// answers holds the first answer to each request id, by room: the
	// tests are too short for any to leave its session window.
	answers map[missingKey]Result
}

func newReplicas(t *testing.T, n int) *replicas {
	rs := &replicas{t: t, seqs: map[string]uint64{}, quiet: New(), answers: map[missingKey]Result{}}
	for range n {
		rs.ms = append(rs.ms, New())
	}
	rs.last, rs.game = snapshotBytes(t, rs.ms[0]), stateBytes(t, rs.ms[0])
	return rs
}

// roomsPart is a snapshot from its rooms on: what a command can change.
func roomsPart(tb testing.TB, snap []byte) []byte {
	tb.Helper()
	i := bytes.Index(snap, []byte(`"rooms":`))
	if i < 0 {
		tb.Fatalf("snapshot without rooms: %s", snap)
	}
	return snap[i:]
}

// apply applies entry to every replica: the first with Apply, the others
// by decoding it first when it decodes, and checks what they did.
func (rs *replicas) apply(entry []byte) Result {
	t := rs.t
	t.Helper()
	if IsBatch(entry) {
		rs.applyBatch(entry)
		return Result{}
	}
	r0, snap := rs.applyAll("entry", entry, func(i int, m *Machine) any {
		if c, err := DecodeCommand(entry); i > 0 && err == nil {
			return m.ApplyCommand(rs.index, c)
		}
		return m.Apply(rs.index, entry)
	})
	res := r0.(Result)
	game := stateBytes(t, rs.ms[0])
	rs.check(entry, res, snap, game)
	rs.final(entry, []Result{res})
	rs.last, rs.game = snap, game
	return res
}

// final checks guarantee 2 on the results of entry: the first answer to a
// request id, applied or refused by the rules, is its only one; every
// later copy is a duplicate answered the same. (Invalid commands, refused
// whatever the state, are not remembered.)
func (rs *replicas) final(entry []byte, res []Result) {
	t := rs.t
	t.Helper()
	cmds := [][]byte{entry}
	if IsBatch(entry) {
		var err error
		if cmds, err = splitBatch(entry); err != nil {
			return
		}
	}
	for i, raw := range cmds {
		c, err := DecodeCommand(raw)
		r := res[i]
		if err != nil || c.RequestID == "" || CodeOf(r.Err) == CodeInvalid {
			continue
		}
		k := missingKey{room: c.Room, sessionKey: sessionKey{scope: c.TokenHash, id: c.RequestID}}
		first, ok := rs.answers[k]
		if !ok {
			if r.Duplicate {
				t.Fatalf("entry %d: request %s in %s is a duplicate of nothing answered before: %+v", rs.index, c.RequestID, c.Room, r)
			}
			rs.answers[k] = r
			continue
		}
		if !r.Duplicate || r.Outcome != first.Outcome || r.Index != first.Index || CodeOf(r.Err) != CodeOf(first.Err) || fmt.Sprint(r.Err) != fmt.Sprint(first.Err) {
			t.Fatalf("entry %d: request %s in %s answered\n%+v\nafter its first answer\n%+v", rs.index, c.RequestID, c.Room, r, first)
		}
	}
}

// forget drops the answers of a deleted room's requests, which went with
// it.
func (rs *replicas) forget(room string) {
	for k := range rs.answers {
		if k.room == room {
			delete(rs.answers, k)
		}
	}
}

// applyAll applies the next entry to every replica with apply and checks
// that they all returned the same and agree byte for byte; it returns the
// first replica's result and snapshot.
func (rs *replicas) applyAll(what string, entry []byte, apply func(i int, m *Machine) any) (any, []byte) {
	t := rs.t
	t.Helper()
	rs.index++
	var res any
	for i, m := range rs.ms {
		r := apply(i, m)
		if i == 0 {
			res = r
		} else if !reflect.DeepEqual(r, res) {
			t.Fatalf("%s %d %q: replica %d returned\n%+v\nreplica 0 returned\n%+v", what, rs.index, entry, i, r, res)
		}
	}
	snap := snapshotBytes(t, rs.ms[0])
	for i, m := range rs.ms[1:] {
		if other := snapshotBytes(t, m); !bytes.Equal(snap, other) {
			t.Fatalf("%s %d %q: replica %d diverged:\n%s\nreplica 0:\n%s", what, rs.index, entry, i+1, other, snap)
		}
	}
	// A quiet replica returns the same without states, and agrees.
	if got, want := rs.quiet.ApplyEntryQuiet(rs.index, entry), withoutStates(res); !reflect.DeepEqual(got, want) {
		t.Fatalf("%s %d %q: quiet replica returned\n%+v\nwant\n%+v", what, rs.index, entry, got, want)
	}
	if other := snapshotBytes(t, rs.quiet); !bytes.Equal(snap, other) {
		t.Fatalf("%s %d %q: quiet replica diverged:\n%s\nreplica 0:\n%s", what, rs.index, entry, other, snap)
	}
	return res, snap
}

// withoutStates is what ApplyEntryQuiet returns where ApplyEntry returned
// res (one Result or a batch's): the same with no State and no History.
func withoutStates(res any) []Result {
	var out []Result
	switch r := res.(type) {
	case Result:
		out = []Result{r}
	case []Result:
		out = slices.Clone(r)
	}
	for i := range out {
		out[i].State = State{}
		out[i].History = nil
	}
	return out
}

// applyBatch applies a batch entry to every replica and checks that they
// agree and that the batch obeyed the rules: every change at the entry's
// index, each room changed at most once, and a refused batch or command
// changing nothing.
func (rs *replicas) applyBatch(entry []byte) {
	t := rs.t
	t.Helper()
	r0, snap := rs.applyAll("batch", entry, func(_ int, m *Machine) any { return m.ApplyEntry(rs.index, entry) })
	res := r0.([]Result)
	if rs.ms[0].Applied() != rs.index {
		t.Fatalf("batch %d: Applied() = %d", rs.index, rs.ms[0].Applied())
	}
	changed := map[string]bool{}
	refused := true // every command refused or a duplicate
	for _, r := range res {
		refused = refused && (r.Err != nil || r.Duplicate)
		if r.Err != nil && CodeOf(r.Err) == 0 {
			t.Fatalf("batch %d: error %v has no code", rs.index, r.Err)
		}
		if r.Event == nil {
			continue
		}
		if changed[r.Room] {
			t.Fatalf("batch %d: room %s changed twice", rs.index, r.Room)
		}
		changed[r.Room] = true
		if r.Event.Seq != rs.index || r.Event.Prev != rs.seqs[r.Room] || r.State.Seq != rs.index {
			t.Fatalf("batch %d: room %s event seq %d prev %d, state seq %d; room was at %d", rs.index, r.Room, r.Event.Seq, r.Event.Prev, r.State.Seq, rs.seqs[r.Room])
		}
		rs.seqs[r.Room] = r.Event.Seq
		if r.Event.Kind == EventRoomDeleted {
			delete(rs.seqs, r.Room)
			rs.forget(r.Room)
		}
	}
	game := stateBytes(t, rs.ms[0])
	if refused && !bytes.Equal(rs.game, game) {
		t.Fatalf("batch %d %q: every command refused or a duplicate, but the game changed", rs.index, entry)
	}
	rs.final(entry, res)
	rs.last, rs.game = snap, game
}

// check verifies what one entry did against the rules every entry obeys.
func (rs *replicas) check(entry []byte, res Result, snap, game []byte) {
	t := rs.t
	t.Helper()
	m := rs.ms[0]
	for _, r := range rs.ms {
		checkScopeCounts(t, r)
	}
	if m.Applied() != rs.index {
		t.Fatalf("entry %d: Applied() = %d", rs.index, m.Applied())
	}
	unchanged := bytes.Equal(roomsPart(t, rs.last), roomsPart(t, snap))
	switch {
	case res.Err != nil:
		if CodeOf(res.Err) == 0 {
			t.Fatalf("entry %d %q: error %v has no code", rs.index, entry, res.Err)
		}
		// A refusal may be remembered, but changes nothing else.
		if !bytes.Equal(rs.game, game) || res.Duplicate && !unchanged {
			t.Fatalf("entry %d %q: refused (%v) but changed the machine", rs.index, entry, res.Err)
		}
	case res.Duplicate:
		if !unchanged || res.Event != nil {
			t.Fatalf("entry %d %q: duplicate but changed the machine", rs.index, entry)
		}
	case res.Event != nil:
		ev := res.Event
		if ev.Seq != rs.index || res.State.Seq != rs.index || ev.Prev != rs.seqs[res.Room] || res.State.Prev != ev.Prev {
			t.Fatalf("entry %d: event seq %d prev %d, state seq %d prev %d; room was at %d", rs.index, ev.Seq, ev.Prev, res.State.Seq, res.State.Prev, rs.seqs[res.Room])
		}
		if ev.Room != res.Room || ev.Round != res.State.Round || ev.Status != res.State.Status || ev.Outcome != res.Outcome {
			t.Fatalf("entry %d: event %+v does not match result %+v", rs.index, ev, res)
		}
		rs.seqs[res.Room] = ev.Seq
		if ev.Kind == EventRoomDeleted {
			// Gone, with what it remembered: a room of that name starts
			// afresh.
			if _, ok := m.Room(res.Room); ok || res.State.Status != StatusDeleted || len(res.State.Players) != 0 || res.State.Masked != "" {
				t.Fatalf("entry %d: room %s deleted, but state %+v (still there: %v)", rs.index, res.Room, res.State, ok)
			}
			delete(rs.seqs, res.Room)
			rs.forget(res.Room)
			return
		}
	}
	if res.Err == nil {
		// The result's state is the room's but for its history, which
		// a result carries apart, once, when it finished a round; the
		// state says which history it goes with.
		s, _ := m.Room(res.Room)
		rounds := s.History
		s.History = nil
		if finished := res.Event != nil && res.Event.Kind != EventRoomDeleted && len(rounds) > 0 && rounds[len(rounds)-1].Seq == rs.index; finished != (res.History != nil) ||
			finished && !reflect.DeepEqual(*res.History, History{Room: res.Room, Seq: rs.index, Rounds: rounds}) {
			t.Fatalf("entry %d: result history %+v, room history %+v", rs.index, res.History, rounds)
		}
		if len(rounds) > 0 && s.HistorySeq != rounds[len(rounds)-1].Seq {
			t.Fatalf("entry %d: history seq %d, last round's %d", rs.index, s.HistorySeq, rounds[len(rounds)-1].Seq)
		}
		if !reflect.DeepEqual(s, res.State) {
			t.Fatalf("entry %d: result state %+v, room state %+v", rs.index, res.State, s)
		}
	}
	for _, s := range m.States() {
		r := m.rooms[s.Room]
		if s.Seq > m.Applied() || s.Seq != rs.seqs[s.Room] {
			t.Fatalf("room %s: seq %d, last event %d, applied %d", s.Room, s.Seq, rs.seqs[s.Room], m.Applied())
		}
		if len(s.Masked) != len(r.word) || s.WrongLeft != s.MaxWrong-len(s.Wrong) || s.WrongLeft < 0 {
			t.Fatalf("room %s: inconsistent state %+v", s.Room, s)
		}
		playing := s.Status == StatusPlaying
		if s.Status == StatusSetting {
			if s.Word != "" || s.Masked != "" || r.word != "" {
				t.Fatalf("room %s: waiting for its word, but word %q masked %q (secret %q)", s.Room, s.Word, s.Masked, r.word)
			}
		} else {
			// Masked shows the letters found and nothing else, in every
			// status: it is the whole word exactly when the round is won.
			if playing != (s.Word == "") || (s.Status == StatusWon) != (s.Masked == r.word) {
				t.Fatalf("room %s: status %s with word %q masked %q (secret %q)", s.Room, s.Status, s.Word, s.Masked, r.word)
			}
			for i := range len(s.Masked) {
				if found := slices.Contains(s.Guessed, r.word[i:i+1]); (s.Masked[i] == '_') == found || (found && s.Masked[i] != r.word[i]) {
					t.Fatalf("room %s: masked %q, guessed %v, secret %q", s.Room, s.Masked, s.Guessed, r.word)
				}
			}
		}
		// Finished rounds show their words in the history; the round
		// being played never does.
		current := s
		current.History = nil
		if playing && strings.Contains(mustJSON(t, current), `"word"`) {
			t.Fatalf("room %s: state JSON has a word while playing: %s", s.Room, mustJSON(t, s))
		}
		for _, h := range s.History {
			if h.Round > s.Round || playing && h.Round == s.Round {
				t.Fatalf("room %s: history shows round %d of %d", s.Room, h.Round, s.Round)
			}
		}
	}
}

// restoreReplica adds a replica restored from a snapshot of the first.
func (rs *replicas) restoreReplica() {
	t := rs.t
	t.Helper()
	snap := snapshotBytes(t, rs.ms[0])
	m := restored(t, snap)
	if again := snapshotBytes(t, m); !bytes.Equal(snap, again) {
		t.Fatalf("entry %d: restored replica differs:\n%s\noriginal:\n%s", rs.index, again, snap)
	}
	if m.Applied() != rs.index {
		t.Fatalf("restored Applied() = %d, want %d", m.Applied(), rs.index)
	}
	if !reflect.DeepEqual(m.States(), rs.ms[0].States()) {
		t.Fatal("restored replica shows other states")
	}
	for _, s := range m.Rooms() {
		if !reflect.DeepEqual(m.RecentEvents(s.Room), rs.ms[0].RecentEvents(s.Room)) {
			t.Fatalf("restored replica has other events in %s", s.Room)
		}
	}
	rs.ms = append(rs.ms, m)
	if len(rs.ms) > 4 {
		rs.ms = append(rs.ms[:2], rs.ms[3:]...) // drop the oldest restored one
	}
}

// propertySteps is how many entries a property test applies per run: the
// race detector makes every step ten times slower.
func propertySteps(n int) int {
	if raceEnabled {
		return n / 5
	}
	return n
}

func TestPropertyReplicasAgree(t *testing.T) {
	seed := testSeed(t)
	runs, steps := 4, propertySteps(1000)
	for run := range runs {
		g := newGen(seed, uint64(run))
		rs := newReplicas(t, 2)
		g.leader = rs.ms[0]
		for range steps {
			rs.apply(g.entry())
			if g.r.IntN(40) == 0 {
				rs.restoreReplica()
			}
		}
		rs.restoreReplica()
	}
}

// TestGeneratorCoverage checks, with a fixed seed, that the generator of the
// property tests reaches every part of the rules; else they prove little.
func TestGeneratorCoverage(t *testing.T) {
	g := newGen(1, 1)
	m := New()
	g.leader = m
	outcomes := map[string]int{}
	for i := range 12000 {
		res := m.Apply(uint64(i+1), g.entry())
		switch {
		case res.Err != nil && res.Duplicate:
			outcomes["duplicate refused"]++
		case res.Err != nil:
			outcomes["refused "+CodeOf(res.Err).String()]++
		case res.Duplicate:
			outcomes["duplicate"]++
		case res.Event != nil:
			outcomes[res.Event.Kind+" "+string(res.Outcome)+" "+string(res.State.Status)]++
		}
	}
	t.Logf("outcomes: %v", outcomes)
	for _, kind := range []string{
		"refused invalid", "refused not found", "refused exists", "refused precondition", "duplicate", "duplicate refused",
		"room_created  playing", "player_joined  playing", "player_renamed  playing",
		"guess correct playing", "guess wrong playing", "guess repeated playing",
		"guess correct won", "guess wrong lost", "round_started  playing",
		"refused permission", "room_deleted  deleted", "seat_reclaimed  playing",
		"round_started  setting", "word_set  playing", "turn_timeout  playing",
	} {
		want := 5
		if strings.HasPrefix(kind, EventRoomCreated) {
			want = len(genRooms) // each is created once
		}
		if outcomes[kind] < want {
			t.Errorf("the generator produced %q %d times, want at least %d", kind, outcomes[kind], want)
		}
	}
}

// TestPropertySnapshotRestore checks that a Machine restored from a
// snapshot is indistinguishable from the original, now and after the same
// further commands.
func TestPropertySnapshotRestore(t *testing.T) {
	seed := testSeed(t)
	g := newGen(seed, 99)
	h := newHarness(t)
	g.leader = h.m
	for range 300 {
		h.index++
		h.m.Apply(h.index, g.entry())
	}
	orig := snapshotBytes(t, h.m)
	r := restored(t, orig)
	if got := snapshotBytes(t, r); !bytes.Equal(got, orig) {
		t.Fatalf("restored snapshot differs:\n%s\n%s", got, orig)
	}
	// Restore replaces whatever the machine held.
	other := newHarness(t)
	other.ok(create("zzz-gone", "apple"))
	if err := other.m.Restore(bytes.NewReader(orig)); err != nil {
		t.Fatal(err)
	}
	if _, ok := other.m.Room("zzz-gone"); ok {
		t.Fatal("restore kept a room of the old state")
	}
	for range propertySteps(500) {
		h.index++
		e := g.entry()
		a, b, c := h.m.Apply(h.index, e), r.Apply(h.index, e), other.m.Apply(h.index, e)
		if !reflect.DeepEqual(a, b) || !reflect.DeepEqual(a, c) {
			t.Fatalf("entry %d %q: results differ after restore:\n%+v\n%+v\n%+v", h.index, e, a, b, c)
		}
		want := snapshotBytes(t, h.m)
		if !bytes.Equal(want, snapshotBytes(t, r)) || !bytes.Equal(want, snapshotBytes(t, other.m)) {
			t.Fatalf("entry %d: restored machines diverged", h.index)
		}
	}
	var f snapshotFile
	if err := json.Unmarshal(orig, &f); err != nil || len(f.Rooms) == 0 {
		t.Fatalf("snapshot of %d rooms (%v): the generator made no rooms", len(f.Rooms), err)
	}
}
