package chaos

import (
	"fmt"
	"hash/fnv"
	"strings"
	"sync"

	"github.com/anishathalye/porcupine"
	"google.golang.org/grpc/codes"

	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
	"github.com/hangman/hangman/services/game"
)

// Operation kinds recorded in the history: the four commands of the game
// and the linearizable read.
const (
	opCreate   = "create"
	opJoin     = "join"
	opGuess    = "guess"
	opNewRound = "newround"
	opRead     = "read"
)

// refusal names the rule a definite refusal cites. The model checks that
// the rule held at the refusal's linearization point, so a refusal is as
// much an observation of the state as a read.
type refusal string

// The refusals the workload provokes, and "other" for a definite error the
// harness cannot attribute to a rule (accepted in any state, changing
// nothing).
const (
	refNotJoined    refusal = "not-joined"
	refRoundOver    refusal = "round-over"
	refRoundPlaying refusal = "round-playing"
	refRoomFull     refusal = "room-full"
	refNoRoom       refusal = "no-room"
	refExists       refusal = "exists"
	refOther        refusal = "other"
)

// classifyRefusal reads the rule out of a definite refusal: its gRPC code,
// and for FailedPrecondition the words of services/game/machine.go.
func classifyRefusal(code codes.Code, msg string) refusal {
	switch code {
	case codes.NotFound:
		return refNoRoom
	case codes.AlreadyExists:
		return refExists
	case codes.FailedPrecondition:
		switch {
		case strings.Contains(msg, "has not joined"):
			return refNotJoined
		case strings.Contains(msg, "is over"):
			return refRoundOver
		case strings.Contains(msg, "still being played"):
			return refRoundPlaying
		case strings.Contains(msg, "is full"):
			return refRoomFull
		}
	}
	return refOther
}

// roomCapacity is how many players a room seats: a join beyond it is
// refused as "room full".
const roomCapacity = game.MaxPlayers

// Input is what a client asked: one command, or a linearizable read.
type Input struct {
	Room      string `json:"room"`
	Kind      string `json:"kind"`
	Player    string `json:"player,omitempty"`
	Letter    string `json:"letter,omitempty"`
	RequestID string `json:"requestId,omitempty"`
	// Recheck marks a request id sent again, later and to another node,
	// after it was refused: DESIGN.md guarantee 2 says it must get the
	// same refusal. The model lets a refused recheck happen in any state
	// (it is the replay of a recorded answer, not a new evaluation); an
	// applied one is a refused-then-applied request, which the report
	// counts, and the model applies it so that the rest of the history
	// stays checkable.
	Recheck bool `json:"recheck,omitempty"`
}

// Output is what the client was told. For a write whose answer never came
// (every attempt failed with an unknown outcome) Unknown is set and the
// operation's return time is the end of the history, so it may take effect
// at any point after its call, or (placed after every other operation)
// never.
type Output struct {
	Unknown bool `json:"unknown,omitempty"`
	// Err is a definite refusal, the first definite answer of the request
	// (whatever attempts with unknown outcomes came before it); Refusal is
	// the rule it cites.
	Err     string  `json:"err,omitempty"`
	Refusal refusal `json:"refusal,omitempty"`

	// Guess replies.
	Outcome   string `json:"outcome,omitempty"`
	Duplicate bool   `json:"duplicate,omitempty"`
	// Index is the raft index that applied the guess, when the reply proves
	// it: the reply's state.seq equals its index. It is 0 when the reply is
	// a duplicate or when the node retried an attempt of unknown outcome
	// itself (then index names the no-op retry entry, not the application).
	Index uint64 `json:"index,omitempty"`

	// View is the room as a read returned it, as a create reply showed it,
	// or as a guess reply with a known Index showed it right after the
	// guess.
	View *roomView `json:"view,omitempty"`
}

// roomView is the part of a room's public state the model checks.
type roomView struct {
	Round   uint64 `json:"round"`
	Status  string `json:"status"`
	Guessed string `json:"guessed"`
	Wrong   string `json:"wrong"`
	// Players are the ids in join order, each followed by a comma.
	Players string `json:"players"`
	Seq     uint64 `json:"seq"`
	// Last is the round's last guess as "player/letter/outcome".
	Last string `json:"last"`
}

// viewOf extracts the checked part of a room state.
func viewOf(st *hangmanv1.RoomState) *roomView {
	v := &roomView{Round: st.GetRound(), Status: st.GetStatus(), Guessed: strings.Join(st.GetGuessed(), ""),
		Wrong: strings.Join(st.GetWrong(), ""), Seq: st.GetSeq()}
	var b strings.Builder
	for _, p := range st.GetPlayers() {
		b.WriteString(p.GetId())
		b.WriteByte(',')
	}
	v.Players = b.String()
	if lg := st.GetLastGuess(); lg != nil {
		v.Last = lg.GetPlayer() + "/" + lg.GetLetter() + "/" + lg.GetOutcome()
	}
	return v
}

// roomModel is the sequential specification porcupine checks, one room per
// partition.
//
// Rooms are created with maxWrong roomMaxWrong and players guess only
// consonants other than y; every word of the game has a vowel, so a round
// is never won and ends, lost, with its roomMaxWrong-th wrong letter. A new
// round is allowed only then. Whether a first guess of a letter is correct
// depends on the secret word, which only the proposer picks: the model
// takes it from letterClasses, learnt from every state the harness saw
// (reads, replies, NATS and websocket messages, the final reads; a state
// lists the round's wrong letters, and once the round is over, its word).
// A letter whose class no observation gave is a nondeterministic choice,
// remembered for the rest of its round (Assumed).
//
// The state is the room's round, its guessed and wrong letters in order,
// its players in join order, its seq, and its last guess.
//
//   - A guess by a player who has not joined is refused "not joined"; in a
//     round that is over, "round over"; otherwise it applies: "repeated" if
//     the letter was guessed this round, else correct or wrong, appended;
//     the last guess becomes player/letter/outcome; seq moves.
//   - A join of a seated player changes nothing (no event, seq stays); of
//     a new player into a full room is refused "room full"; otherwise the
//     player is seated and seq moves.
//   - A new round is refused while the round is playing; otherwise the
//     round number goes up, guesses and the last guess are cleared, and seq
//     moves.
//   - A refusal is legal only in a state where its rule holds, and changes
//     nothing: a refused request that takes effect later has no operation
//     left to explain its effect, and the history fails.
//   - A reply with a known index i must have i above the current seq and
//     show exactly the state after the command; seq becomes i. Otherwise
//     seq becomes "unknown, above the old value".
//   - A read must show exactly the state, and a seq equal to the state's
//     (or above its lower bound); it pins seq. A read that finds no room
//     is legal only before the room's creation.
//   - A creation whose outcome is unknown (still unanswered when the
//     workload stopped) made the room, round 1 with nobody in it and seq
//     unknown, or did nothing.
type roomModel struct {
	Exists   bool
	Round    uint64
	Guessed  string
	Wrong    string
	Players  string
	NPlayers int
	Seq      uint64
	SeqKnown bool
	Last     string
	// Assumed lists the classes chosen this round for letters no
	// observation classified, as letter then '+' (correct) or '-'.
	Assumed string
}

func (s roomModel) over() bool { return len(s.Wrong) >= roomMaxWrong }

func (s roomModel) status() string {
	if s.over() {
		return string(game.StatusLost)
	}
	return string(game.StatusPlaying)
}

func (s roomModel) seated(player string) bool {
	return strings.Contains(","+s.Players, ","+player+",")
}

// matches reports whether v shows exactly this state (seq aside).
func (s roomModel) matches(v *roomView) bool {
	return v != nil && v.Round == s.Round && v.Status == s.status() && v.Guessed == s.Guessed &&
		v.Wrong == s.Wrong && v.Players == s.Players && v.Last == s.Last
}

// roundKey names one round of one room.
type roundKey struct {
	Room  string
	Round uint64
}

// letterClasses says, per round, which letters are in the round's word:
// what the harness learnt from every state it saw. It is safe for
// concurrent use while the run feeds it.
type letterClasses struct {
	mu        sync.Mutex
	byRound   map[roundKey]map[byte]bool
	conflicts []string
}

func newLetterClasses() *letterClasses {
	return &letterClasses{byRound: map[roundKey]map[byte]bool{}}
}

// learn takes what one state of room shows: its guessed letters not among
// the wrong ones are in the word, the wrong ones are not, and once the
// round is over the word tells every letter.
func (c *letterClasses) learn(room string, round uint64, guessed, wrong, word string) {
	if round == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	k := roundKey{room, round}
	m := c.byRound[k]
	if m == nil {
		m = map[byte]bool{}
		c.byRound[k] = m
	}
	set := func(l byte, in bool) {
		if old, ok := m[l]; ok && old != in {
			if len(c.conflicts) < 10 {
				c.conflicts = append(c.conflicts, fmt.Sprintf("%s round %d letter %c: seen both in and not in the word", room, round, l))
			}
			return
		}
		m[l] = in
	}
	for i := range len(guessed) {
		set(guessed[i], !strings.Contains(wrong, guessed[i:i+1]))
	}
	if word != "" {
		for l := byte('a'); l <= 'z'; l++ {
			set(l, strings.IndexByte(word, l) >= 0)
		}
	}
}

// learnState is learn for a protobuf state.
func (c *letterClasses) learnState(st *hangmanv1.RoomState) {
	if st == nil {
		return
	}
	c.learn(st.GetRoom(), st.GetRound(), strings.Join(st.GetGuessed(), ""), strings.Join(st.GetWrong(), ""), st.GetWord())
}

// class returns whether letter is in the word of room's round, if known.
func (c *letterClasses) class(room string, round uint64, letter byte) (in, known bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	in, known = c.byRound[roundKey{room, round}][letter]
	return in, known
}

// Conflicts lists rounds where two observations disagreed about a letter:
// two replicas with different words, or a corrupt state.
func (c *letterClasses) Conflicts() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.conflicts...)
}

// newModel returns the porcupine model for rooms whose letters classes
// knows.
func newModel(classes *letterClasses) porcupine.Model {
	nm := porcupine.NondeterministicModel{
		Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
			byRoom := map[string][]porcupine.Operation{}
			var order []string
			for _, op := range history {
				room := op.Input.(Input).Room
				if _, ok := byRoom[room]; !ok {
					order = append(order, room)
				}
				byRoom[room] = append(byRoom[room], op)
			}
			out := make([][]porcupine.Operation, 0, len(order))
			for _, r := range order {
				out = append(out, byRoom[r])
			}
			return out
		},
		Init: func() []any { return []any{roomModel{}} },
		Step: func(state, input, output any) []any {
			next := step(classes, state.(roomModel), input.(Input), output.(Output))
			out := make([]any, len(next))
			for i, s := range next {
				out[i] = s
			}
			return out
		},
		Hash: func(state any) uint64 {
			s := state.(roomModel)
			h := fnv.New64a()
			fmt.Fprintf(h, "%t|%d|%s|%s|%s|%d|%t|%s|%s", s.Exists, s.Round, s.Guessed, s.Wrong, s.Players, s.Seq, s.SeqKnown, s.Last, s.Assumed)
			return h.Sum64()
		},
		DescribeOperation: describeOp,
		DescribeState: func(state any) string {
			s := state.(roomModel)
			if !s.Exists {
				return "no room"
			}
			seq := fmt.Sprint(s.Seq)
			if !s.SeqKnown {
				seq = ">" + seq
			}
			return fmt.Sprintf("round %d %s guessed=%q wrong=%q players=%d seq=%s last=%s", s.Round, s.status(), s.Guessed, s.Wrong, s.NPlayers, seq, s.Last)
		},
	}
	return nm.ToModel()
}

// refusalHolds reports whether the rule a refusal cites holds in s, in the
// order services/game checks them.
func refusalHolds(s roomModel, in Input, r refusal) bool {
	if in.Recheck || r == refOther {
		return true
	}
	if r == refNoRoom {
		return !s.Exists
	}
	if !s.Exists {
		return false
	}
	switch r {
	case refExists:
		return in.Kind == opCreate
	case refNotJoined:
		return in.Kind == opGuess && !s.seated(in.Player)
	case refRoundOver:
		return in.Kind == opGuess && s.seated(in.Player) && s.over()
	case refRoundPlaying:
		return in.Kind == opNewRound && !s.over()
	case refRoomFull:
		return in.Kind == opJoin && !s.seated(in.Player) && s.NPlayers >= roomCapacity
	}
	return false
}

// step returns every state the room can be in after the operation, none
// when the operation's output is impossible in s.
func step(classes *letterClasses, s roomModel, in Input, out Output) []roomModel {
	if in.Kind == opRead {
		if out.Refusal == refNoRoom {
			if s.Exists {
				return nil
			}
			return []roomModel{s}
		}
		v := out.View
		if !s.Exists || !s.matches(v) || (s.SeqKnown && v.Seq != s.Seq) || (!s.SeqKnown && v.Seq <= s.Seq) {
			return nil
		}
		s.Seq, s.SeqKnown = v.Seq, true
		return []roomModel{s}
	}
	if out.Err != "" {
		if refusalHolds(s, in, out.Refusal) {
			return []roomModel{s}
		}
		return nil
	}
	// The command applies, or (Unknown only) is refused here.
	var next []roomModel
	switch in.Kind {
	case opCreate:
		if out.Unknown {
			// Refused because the room exists, or not applied; or applied
			// here, making a room of round 1 with nobody in it yet.
			if s.Exists {
				return []roomModel{s}
			}
			return []roomModel{s, {Exists: true, Round: 1, Seq: s.Seq}}
		}
		if s.Exists || out.View == nil {
			return nil
		}
		n := roomModel{Exists: true, Round: out.View.Round, Seq: out.View.Seq, SeqKnown: true}
		if !n.matches(out.View) {
			return nil
		}
		return []roomModel{n}
	case opJoin:
		switch {
		case !s.Exists:
		case s.seated(in.Player):
			// A seated player's join changes nothing, not even seq.
			return []roomModel{s}
		case s.NPlayers < roomCapacity:
			n := s
			n.Players += in.Player + ","
			n.NPlayers++
			n.SeqKnown = false
			next = []roomModel{n}
		}
	case opNewRound:
		if s.Exists && s.over() {
			next = []roomModel{{Exists: true, Round: s.Round + 1, Players: s.Players, NPlayers: s.NPlayers, Seq: s.Seq}}
		}
	case opGuess:
		if s.Exists && s.seated(in.Player) && !s.over() {
			next = guessed(classes, in, s)
		}
	}
	if next == nil {
		if out.Unknown {
			return []roomModel{s} // refused at this point
		}
		return nil // acknowledged where the rules refuse it
	}
	if out.Unknown {
		return next
	}
	var legal []roomModel
	for _, n := range next {
		if in.Kind == opGuess && out.Outcome != lastOutcome(n) {
			continue
		}
		if out.Index != 0 {
			if out.Index <= s.Seq || !n.matches(out.View) {
				continue
			}
			n.Seq, n.SeqKnown = out.Index, true
		}
		legal = append(legal, n)
	}
	return legal
}

// guessed applies a guess that the rules accept, one state per possible
// class of a letter no observation classified.
func guessed(classes *letterClasses, in Input, s roomModel) []roomModel {
	l := in.Letter
	apply := func(outcome string, assumed string) roomModel {
		n := s
		n.SeqKnown = false
		n.Assumed += assumed
		if outcome != string(game.OutcomeRepeated) {
			n.Guessed += l
			if outcome == string(game.OutcomeWrong) {
				n.Wrong += l
			}
		}
		n.Last = in.Player + "/" + l + "/" + outcome
		return n
	}
	if strings.Contains(s.Guessed, l) {
		return []roomModel{apply(string(game.OutcomeRepeated), "")}
	}
	in1, known := classes.class(in.Room, s.Round, l[0])
	if !known {
		if i := strings.Index(s.Assumed, l); i >= 0 {
			in1, known = s.Assumed[i+1] == '+', true
		}
	}
	if known {
		if in1 {
			return []roomModel{apply(string(game.OutcomeCorrect), "")}
		}
		return []roomModel{apply(string(game.OutcomeWrong), "")}
	}
	return []roomModel{apply(string(game.OutcomeCorrect), l+"+"), apply(string(game.OutcomeWrong), l+"-")}
}

// lastOutcome is the outcome of the guess that made state n.
func lastOutcome(n roomModel) string {
	return n.Last[strings.LastIndexByte(n.Last, '/')+1:]
}

func describeOp(input, output any) string {
	in, out := input.(Input), output.(Output)
	what := in.Kind
	switch in.Kind {
	case opRead:
		if v := out.View; v != nil {
			return fmt.Sprintf("read() -> round %d %s guessed=%q players=%q seq=%d last=%s", v.Round, v.Status, v.Guessed, v.Players, v.Seq, v.Last)
		}
		return "read()"
	case opGuess:
		what = fmt.Sprintf("%s guess %s", in.Player, in.Letter)
	case opJoin, opNewRound:
		what = fmt.Sprintf("%s %s", in.Player, in.Kind)
	}
	if in.Recheck {
		what += " (recheck)"
	}
	switch {
	case out.Unknown:
		return fmt.Sprintf("%s [%s] -> ?", what, in.RequestID)
	case out.Err != "":
		return fmt.Sprintf("%s [%s] -> refused (%s): %s", what, in.RequestID, out.Refusal, out.Err)
	}
	idx := "?"
	if out.Index != 0 {
		idx = fmt.Sprint(out.Index)
	}
	dup := ""
	if out.Duplicate {
		dup = " dup"
	}
	return fmt.Sprintf("%s [%s] -> ok %s%s @%s", what, in.RequestID, out.Outcome, dup, idx)
}
