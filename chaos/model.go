package chaos

import (
	"fmt"
	"hash/fnv"
	"strings"

	"github.com/anishathalye/porcupine"
)

// Operation kinds recorded in the history.
const (
	opGuess = "guess"
	opRead  = "read"
)

// Input is what a client asked: a guess of one letter by one player, or a
// linearizable read of the room.
type Input struct {
	Room      string `json:"room"`
	Kind      string `json:"kind"`
	Player    string `json:"player,omitempty"`
	Letter    string `json:"letter,omitempty"`
	RequestID string `json:"requestId,omitempty"`
}

// Output is what the client was told. For a guess whose reply never came
// (every attempt failed with an unknown outcome) Unknown is set and the
// operation's return time is the end of the history.
type Output struct {
	Unknown bool `json:"unknown,omitempty"`
	// Err is a definitive refusal of a guess none of whose attempts had an
	// unknown outcome: it changed nothing.
	Err string `json:"err,omitempty"`

	// Guess replies.
	Outcome   string `json:"outcome,omitempty"`
	Duplicate bool   `json:"duplicate,omitempty"`
	// Index is the raft index that applied the guess, when the reply proves
	// it: the reply's state.seq equals its index. It is 0 when the reply is
	// a duplicate or when the node retried an attempt of unknown outcome
	// itself (then index names the no-op retry entry, not the application).
	Index uint64 `json:"index,omitempty"`

	// Guessed is the room's guessed letters in order: the state right after
	// a guess with a known Index, or the state a read returned.
	Guessed string `json:"guessed,omitempty"`
	// Seq and Last are what a read returned: the room's seq and its last
	// guess as "player/letter/outcome".
	Seq  uint64 `json:"seq,omitempty"`
	Last string `json:"last,omitempty"`
}

// roomModel is the sequential specification porcupine checks, one room per
// partition.
//
// The state is the ordered list of distinct letters guessed in the room's
// (only) round, the room's seq, and the last guess. Rooms are created with
// maxWrong 26 and players guess only consonants other than y; every word of
// the game has a vowel, so a round can be neither won nor lost and a room
// keeps one round for its whole life. That keeps the model free of the
// secret-word choice, which only the proposer makes: whether a first guess
// of a letter is correct or wrong depends on the hidden word, so the model
// takes it from the room's final state, read once everything has healed
// (final wrong letters are wrong, the other final guessed letters correct;
// a letter the final state does not hold can be in no legal linearization,
// since the final read follows every operation).
//
// A guess by player p of letter l: the outcome is "repeated" if l is among
// the guessed letters, else correct or wrong per the word; a new letter is
// appended; the last guess becomes p/l/outcome (every guess, repeated or
// not, is a committed event that moves seq). A reply with a known index i
// must have i greater than the current seq and its state must list exactly
// the new letters; seq becomes i. A duplicate reply, or a reply whose index
// is not its application's, proves only the outcome: seq becomes "unknown,
// above the old value". A guess without a reply (pending) may take effect
// at any point after its call, or never.
//
// A read must return exactly the guessed letters and last guess of the
// state, and its seq must equal the state's seq (or exceed the lower bound
// when an unknown-index guess came before); it pins seq.
type roomModel struct {
	Guessed  string
	Seq      uint64
	SeqKnown bool
	Last     string
}

// wordClasses says, per room, whether each letter is in the room's word.
type wordClasses map[string]map[byte]bool

// newModel returns the porcupine model for rooms whose words classes holds.
func newModel(classes wordClasses) porcupine.Model {
	return porcupine.Model{
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
		Init: func() any { return roomModel{} },
		Step: func(state, input, output any) (bool, any) {
			return step(classes, state.(roomModel), input.(Input), output.(Output))
		},
		Hash: func(state any) uint64 {
			s := state.(roomModel)
			h := fnv.New64a()
			fmt.Fprintf(h, "%s|%d|%t|%s", s.Guessed, s.Seq, s.SeqKnown, s.Last)
			return h.Sum64()
		},
		DescribeOperation: describeOp,
		DescribeState: func(state any) string {
			s := state.(roomModel)
			seq := fmt.Sprint(s.Seq)
			if !s.SeqKnown {
				seq = ">" + seq
			}
			return fmt.Sprintf("guessed=%q seq=%s last=%s", s.Guessed, seq, s.Last)
		},
	}
}

func step(classes wordClasses, s roomModel, in Input, out Output) (bool, roomModel) {
	switch in.Kind {
	case opGuess:
		if out.Err != "" {
			return true, s // refused, changed nothing
		}
		l := in.Letter
		outcome := "repeated"
		guessed := s.Guessed
		if !strings.Contains(s.Guessed, l) {
			outcome = "wrong"
			if classes[in.Room][l[0]] {
				outcome = "correct"
			}
			guessed += l
		}
		next := roomModel{Guessed: guessed, Seq: s.Seq, Last: in.Player + "/" + l + "/" + outcome}
		if out.Unknown {
			return true, next
		}
		if out.Outcome != outcome {
			return false, s
		}
		if out.Index == 0 {
			return true, next
		}
		if out.Index <= s.Seq || out.Guessed != guessed {
			return false, s
		}
		next.Seq, next.SeqKnown = out.Index, true
		return true, next
	case opRead:
		if out.Guessed != s.Guessed || out.Last != s.Last {
			return false, s
		}
		if (s.SeqKnown && out.Seq != s.Seq) || (!s.SeqKnown && out.Seq <= s.Seq) {
			return false, s
		}
		s.Seq, s.SeqKnown = out.Seq, true
		return true, s
	}
	return false, s
}

func describeOp(input, output any) string {
	in, out := input.(Input), output.(Output)
	switch {
	case in.Kind == opRead:
		return fmt.Sprintf("read() -> guessed=%q seq=%d last=%s", out.Guessed, out.Seq, out.Last)
	case out.Unknown:
		return fmt.Sprintf("%s guess %s [%s] -> ?", in.Player, in.Letter, in.RequestID)
	case out.Err != "":
		return fmt.Sprintf("%s guess %s [%s] -> refused: %s", in.Player, in.Letter, in.RequestID, out.Err)
	}
	idx := "?"
	if out.Index != 0 {
		idx = fmt.Sprint(out.Index)
	}
	dup := ""
	if out.Duplicate {
		dup = " dup"
	}
	return fmt.Sprintf("%s guess %s [%s] -> %s%s @%s", in.Player, in.Letter, in.RequestID, out.Outcome, dup, idx)
}
