package chaos

import (
	"strings"
	"testing"

	"github.com/anishathalye/porcupine"

	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
)

// roomStateView is the part of a final room state the checks read.
type roomStateView struct {
	seq     uint64
	guessed string
}

type finalViews map[string]*roomStateView

func (f finalViews) states() map[string]*hangmanv1.RoomState {
	out := map[string]*hangmanv1.RoomState{}
	for room, v := range f {
		out[room] = &hangmanv1.RoomState{Room: room, Seq: v.seq, Guessed: strings.Split(v.guessed, "")}
	}
	return out
}

// op builds a history entry for the model tests.
func op(client int, in Input, out Output, call, ret int64) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Input: in, Output: out, Call: call, Return: ret}
}

func guessIn(room, player, letter string) Input {
	return Input{Room: room, Kind: opGuess, Player: player, Letter: letter, RequestID: player + letter}
}

func readIn(room string) Input { return Input{Room: room, Kind: opRead} }

// The model must accept what a correct cluster does and refuse what a
// broken one would: every case here is one the chaos run relies on.
func TestRoomModel(t *testing.T) {
	classes := wordClasses{"r": {'b': true, 'c': false}}
	model := newModel(classes)
	cases := []struct {
		name string
		ops  []porcupine.Operation
		want porcupine.CheckResult
	}{{
		name: "sequential guesses and reads",
		ops: []porcupine.Operation{
			op(0, guessIn("r", "p", "b"), Output{Outcome: "correct", Index: 10, Guessed: "b"}, 0, 1),
			op(0, guessIn("r", "p", "c"), Output{Outcome: "wrong", Index: 12, Guessed: "bc"}, 2, 3),
			op(1, readIn("r"), Output{Guessed: "bc", Seq: 12, Last: "p/c/wrong"}, 4, 5),
			op(0, guessIn("r", "p", "b"), Output{Outcome: "repeated", Index: 13, Guessed: "bc"}, 6, 7),
			op(1, readIn("r"), Output{Guessed: "bc", Seq: 13, Last: "p/b/repeated"}, 8, 9),
		},
		want: porcupine.Ok,
	}, {
		name: "stale read after an acknowledged guess",
		ops: []porcupine.Operation{
			op(0, guessIn("r", "p", "b"), Output{Outcome: "correct", Index: 10, Guessed: "b"}, 0, 1),
			op(1, readIn("r"), Output{Guessed: "", Seq: 5}, 2, 3),
		},
		want: porcupine.Illegal,
	}, {
		name: "concurrent read may see either side",
		ops: []porcupine.Operation{
			op(0, guessIn("r", "p", "b"), Output{Outcome: "correct", Index: 10, Guessed: "b"}, 0, 10),
			op(1, readIn("r"), Output{Guessed: "", Seq: 5}, 1, 2),
			op(2, readIn("r"), Output{Guessed: "b", Seq: 10, Last: "p/b/correct"}, 3, 4),
		},
		want: porcupine.Ok,
	}, {
		name: "reads going back in time",
		ops: []porcupine.Operation{
			op(0, guessIn("r", "p", "b"), Output{Outcome: "correct", Index: 10, Guessed: "b"}, 0, 10),
			op(1, readIn("r"), Output{Guessed: "b", Seq: 10, Last: "p/b/correct"}, 1, 2),
			op(2, readIn("r"), Output{Guessed: "", Seq: 5}, 3, 4),
		},
		want: porcupine.Illegal,
	}, {
		name: "wrong outcome for the word",
		ops: []porcupine.Operation{
			op(0, guessIn("r", "p", "c"), Output{Outcome: "correct", Index: 10, Guessed: "c"}, 0, 1),
		},
		want: porcupine.Illegal,
	}, {
		name: "index not above the previous one",
		ops: []porcupine.Operation{
			op(0, guessIn("r", "p", "b"), Output{Outcome: "correct", Index: 10, Guessed: "b"}, 0, 1),
			op(0, guessIn("r", "p", "c"), Output{Outcome: "wrong", Index: 9, Guessed: "bc"}, 2, 3),
		},
		want: porcupine.Illegal,
	}, {
		name: "a pending guess may apply later",
		ops: []porcupine.Operation{
			op(0, guessIn("r", "p", "b"), Output{Unknown: true}, 0, 100),
			op(1, readIn("r"), Output{Guessed: "", Seq: 5}, 1, 2),
			op(1, readIn("r"), Output{Guessed: "b", Seq: 20, Last: "p/b/correct"}, 3, 4),
		},
		want: porcupine.Ok,
	}, {
		name: "a pending guess may never apply",
		ops: []porcupine.Operation{
			op(0, guessIn("r", "p", "b"), Output{Unknown: true}, 0, 100),
			op(1, readIn("r"), Output{Guessed: "", Seq: 5}, 1, 2),
		},
		want: porcupine.Ok,
	}, {
		name: "a guess applied twice shows in the seq",
		ops: []porcupine.Operation{
			op(0, guessIn("r", "p", "b"), Output{Outcome: "correct", Duplicate: true}, 0, 1),
			op(1, readIn("r"), Output{Guessed: "b", Seq: 10, Last: "p/b/correct"}, 2, 3),
			op(1, readIn("r"), Output{Guessed: "b", Seq: 11, Last: "p/b/repeated"}, 4, 5),
		},
		want: porcupine.Illegal,
	}, {
		name: "a refused guess changes nothing",
		ops: []porcupine.Operation{
			op(0, guessIn("r", "p", "b"), Output{Err: "FailedPrecondition"}, 0, 1),
			op(1, readIn("r"), Output{Guessed: "b", Seq: 10, Last: "p/b/correct"}, 2, 3),
		},
		want: porcupine.Illegal,
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, _ := porcupine.CheckOperationsVerbose(model, c.ops, 0)
			if got != c.want {
				t.Errorf("porcupine says %v, want %v", got, c.want)
			}
		})
	}
}

// The duplicate attribution must count an event no request explains, and
// nothing else.
func TestDuplicateAttribution(t *testing.T) {
	w := &Workload{guesses: map[string][]*guessRecord{
		"p": {
			{Input: guessIn("r", "p", "b"), Output: Output{Outcome: "correct", Index: 10, Guessed: "b"}},
			{Input: guessIn("r", "p", "c"), Output: Output{Outcome: "wrong", Duplicate: true}},
			{Input: guessIn("r", "p", "d"), Output: Output{Unknown: true}},
		},
	}}
	obs := newObservers(nil)
	ev := func(seq, prev uint64, letter, outcome string) {
		obs.record("nats-n1", 0, seenMsg{Kind: "event", Room: "r", Seq: seq, Prev: prev, EventKind: "guess", Player: "p", Letter: letter, Outcome: outcome,
			Key: letter + outcome})
	}
	ev(10, 5, "b", "correct")
	ev(11, 10, "c", "wrong")
	ev(12, 11, "d", "wrong")
	finals := finalViews{"r": {seq: 12, guessed: "bcd"}}
	rep := &Report{Faults: map[FaultKind]int{}}
	rep.collect(w, obs, finals.states())
	if rep.Duplicates != 0 || rep.Lost != 0 || rep.Mismatched != 0 {
		t.Fatalf("clean history: duplicates %d, lost %d, mismatched %d; %v", rep.Duplicates, rep.Lost, rep.Mismatched, rep.Examples)
	}

	ev(13, 12, "c", "repeated") // c applied a second time
	finals["r"].seq = 13
	rep = &Report{Faults: map[FaultKind]int{}}
	rep.collect(w, obs, finals.states())
	if rep.Duplicates != 1 {
		t.Fatalf("a request applied twice: duplicates %d, want 1; %v", rep.Duplicates, rep.Examples)
	}

	finals["r"].guessed = "cd" // b acknowledged, then gone
	rep = &Report{Faults: map[FaultKind]int{}}
	rep.collect(w, obs, finals.states())
	if rep.Lost != 1 {
		t.Fatalf("an acknowledged guess missing: lost %d, want 1", rep.Lost)
	}
}
