package chaos

import (
	"fmt"
	"strings"
	"testing"

	"github.com/anishathalye/porcupine"
	"google.golang.org/grpc/codes"

	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
)

// op builds a history entry for the model tests.
func op(client int, in Input, out Output, call, ret int64) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Input: in, Output: out, Call: call, Return: ret}
}

func guessIn(player, letter, id string) Input {
	return Input{Room: "r", Kind: opGuess, Player: player, Letter: letter, RequestID: id}
}

func joinIn(player, id string) Input {
	return Input{Room: "r", Kind: opJoin, Player: player, RequestID: id}
}

func roundIn(player, id string) Input {
	return Input{Room: "r", Kind: opNewRound, Player: player, RequestID: id}
}

func again(in Input) Input {
	in.Recheck = true
	return in
}

func readIn() Input { return Input{Room: "r", Kind: opRead} }

// view is a room state as a read or reply shows it.
func view(round uint64, guessed, wrong, players string, seq uint64, last string) *roomView {
	status := "playing"
	if len(wrong) >= roomMaxWrong {
		status = "lost"
	}
	return &roomView{Round: round, Status: status, Guessed: guessed, Wrong: wrong, Players: players, Seq: seq, Last: last}
}

func ok(outcome string) Output { return Output{Outcome: outcome} }
func refused(r refusal) Output { return Output{Err: string(r), Refusal: r} }
func read(v *roomView) Output  { return Output{View: v} }
func pending() Output          { return Output{Unknown: true} }
func at(idx uint64, outcome string, v *roomView) Output {
	return Output{Outcome: outcome, Index: idx, View: v}
}

// created is the room's creation at seq 1, round 1, from client 9.
var created = op(9, Input{Room: "r", Kind: opCreate, RequestID: "create"}, Output{View: view(1, "", "", "", 1, "")}, 0, 1)

// seated has p join at time 2-3.
var seated = op(9, joinIn("p", "j1"), ok(""), 2, 3)

// The model must accept what a correct cluster does and refuse what a
// broken one would: every case here is one the chaos run relies on.
func TestRoomModel(t *testing.T) {
	// Round 1's word has b, not c, d, f, g; round 2's has c.
	classes := newLetterClasses()
	classes.learn("r", 1, "bcdfg", "cdfg", "")
	classes.learn("r", 2, "c", "", "")
	model := newModel(classes)
	fourWrong := []porcupine.Operation{created, seated}
	for i, l := range []string{"c", "d", "f", "g"} {
		t0 := int64(10 + 2*i)
		fourWrong = append(fourWrong, op(0, guessIn("p", l, "w"+l), ok("wrong"), t0, t0+1))
	}
	cases := []struct {
		name string
		ops  []porcupine.Operation
		want porcupine.CheckResult
	}{{
		name: "join, guesses and reads in sequence",
		ops: []porcupine.Operation{created, seated,
			op(0, guessIn("p", "b", "g1"), at(10, "correct", view(1, "b", "", "p,", 10, "p/b/correct")), 4, 5),
			op(0, guessIn("p", "c", "g2"), at(12, "wrong", view(1, "bc", "c", "p,", 12, "p/c/wrong")), 6, 7),
			op(1, readIn(), read(view(1, "bc", "c", "p,", 12, "p/c/wrong")), 8, 9),
			op(0, guessIn("p", "b", "g3"), ok("repeated"), 10, 11),
			op(1, readIn(), read(view(1, "bc", "c", "p,", 13, "p/b/repeated")), 12, 13),
		},
		want: porcupine.Ok,
	}, {
		name: "stale read after an acknowledged guess",
		ops: []porcupine.Operation{created, seated,
			op(0, guessIn("p", "b", "g1"), at(10, "correct", view(1, "b", "", "p,", 10, "p/b/correct")), 4, 5),
			op(1, readIn(), read(view(1, "", "", "p,", 2, "")), 6, 7),
		},
		want: porcupine.Illegal,
	}, {
		name: "wrong outcome for the word",
		ops: []porcupine.Operation{created, seated,
			op(0, guessIn("p", "c", "g1"), ok("correct"), 4, 5),
		},
		want: porcupine.Illegal,
	}, {
		name: "a guess before joining is refused",
		ops: []porcupine.Operation{created,
			op(0, guessIn("p", "b", "g1"), refused(refNotJoined), 2, 3),
			seated,
			op(1, readIn(), read(view(1, "", "", "p,", 4, "")), 6, 7),
		},
		want: porcupine.Ok,
	}, {
		name: "a guess acknowledged before the player joined",
		ops: []porcupine.Operation{created,
			op(0, guessIn("p", "b", "g1"), ok("correct"), 2, 3),
		},
		want: porcupine.Illegal,
	}, {
		name: "a refusal the state does not justify",
		ops: []porcupine.Operation{created, seated,
			op(0, guessIn("p", "b", "g1"), refused(refNotJoined), 4, 5),
		},
		want: porcupine.Illegal,
	}, {
		// Issue 15 §1: refused, then the player joins, then the refused
		// guess shows in a read.
		name: "refused then applied",
		ops: []porcupine.Operation{created,
			op(0, guessIn("p", "b", "g1"), refused(refNotJoined), 2, 3),
			op(9, joinIn("p", "j1"), ok(""), 4, 5),
			op(1, readIn(), read(view(1, "b", "", "p,", 20, "p/b/correct")), 30, 31),
		},
		want: porcupine.Illegal,
	}, {
		name: "the same history with the guess's outcome unknown",
		ops: []porcupine.Operation{created,
			op(0, guessIn("p", "b", "g1"), pending(), 2, 100),
			op(9, joinIn("p", "j1"), ok(""), 4, 5),
			op(1, readIn(), read(view(1, "b", "", "p,", 20, "p/b/correct")), 30, 31),
		},
		want: porcupine.Ok,
	}, {
		name: "a retried refusal gets the same answer",
		ops: []porcupine.Operation{created,
			op(0, guessIn("p", "b", "g1"), refused(refNotJoined), 2, 3),
			op(9, joinIn("p", "j1"), ok(""), 4, 5),
			op(2, again(guessIn("p", "b", "g1")), refused(refNotJoined), 6, 7),
			op(1, readIn(), read(view(1, "", "", "p,", 5, "")), 8, 9),
		},
		want: porcupine.Ok,
	}, {
		// On today's main a recheck re-evaluates the command: the model
		// lets it apply (the report counts it), so the rest stays checkable.
		name: "an applied recheck explains its effect",
		ops: []porcupine.Operation{created,
			op(0, guessIn("p", "b", "g1"), refused(refNotJoined), 2, 3),
			op(9, joinIn("p", "j1"), ok(""), 4, 5),
			op(2, again(guessIn("p", "b", "g1")), ok("correct"), 6, 7),
			op(1, readIn(), read(view(1, "b", "", "p,", 9, "p/b/correct")), 8, 9),
		},
		want: porcupine.Ok,
	}, {
		name: "guesses after the round is lost are refused, a new round starts",
		ops: append(append([]porcupine.Operation(nil), fourWrong...),
			op(0, guessIn("p", "b", "g5"), refused(refRoundOver), 20, 21),
			op(1, readIn(), read(view(1, "cdfg", "cdfg", "p,", 30, "p/g/wrong")), 22, 23),
			op(0, roundIn("p", "n1"), ok(""), 24, 25),
			op(0, roundIn("p", "n2"), refused(refRoundPlaying), 26, 27),
			op(0, guessIn("p", "c", "g6"), ok("correct"), 28, 29),
			op(1, readIn(), read(view(2, "c", "", "p,", 40, "p/c/correct")), 30, 31),
		),
		want: porcupine.Ok,
	}, {
		name: "a new round acknowledged while the round plays",
		ops: []porcupine.Operation{created, seated,
			op(0, roundIn("p", "n1"), ok(""), 4, 5),
		},
		want: porcupine.Illegal,
	}, {
		// Issue 15 §1 across rounds: refused as "round over", the stale
		// copy lands in the next round.
		name: "a guess refused in one round applied in the next",
		ops: append(append([]porcupine.Operation(nil), fourWrong...),
			op(0, guessIn("p", "c", "g5"), refused(refRoundOver), 20, 21),
			op(0, roundIn("p", "n1"), ok(""), 22, 23),
			op(1, readIn(), read(view(2, "c", "", "p,", 40, "p/c/correct")), 30, 31),
		),
		want: porcupine.Illegal,
	}, {
		name: "the same across rounds with the guess's outcome unknown",
		ops: append(append([]porcupine.Operation(nil), fourWrong...),
			op(0, guessIn("p", "c", "g5"), pending(), 20, 100),
			op(0, roundIn("p", "n1"), ok(""), 22, 23),
			op(1, readIn(), read(view(2, "c", "", "p,", 40, "p/c/correct")), 30, 31),
		),
		want: porcupine.Ok,
	}, {
		name: "a pending guess may apply later",
		ops: []porcupine.Operation{created, seated,
			op(0, guessIn("p", "b", "g1"), pending(), 4, 100),
			op(1, readIn(), read(view(1, "", "", "p,", 3, "")), 5, 6),
			op(1, readIn(), read(view(1, "b", "", "p,", 20, "p/b/correct")), 7, 8),
		},
		want: porcupine.Ok,
	}, {
		name: "a pending guess may never apply",
		ops: []porcupine.Operation{created, seated,
			op(0, guessIn("p", "b", "g1"), pending(), 4, 100),
			op(1, readIn(), read(view(1, "", "", "p,", 3, "")), 5, 6),
		},
		want: porcupine.Ok,
	}, {
		name: "a letter no state classified may be either, consistently",
		ops: []porcupine.Operation{created, seated,
			op(0, guessIn("p", "z", "g1"), pending(), 4, 100),
			op(0, guessIn("p", "z", "g2"), ok("repeated"), 10, 11),
		},
		want: porcupine.Ok,
	}, {
		name: "a guess applied twice shows in the seq",
		ops: []porcupine.Operation{created, seated,
			op(0, guessIn("p", "b", "g1"), Output{Outcome: "correct", Duplicate: true}, 4, 5),
			op(1, readIn(), read(view(1, "b", "", "p,", 10, "p/b/correct")), 6, 7),
			op(1, readIn(), read(view(1, "b", "", "p,", 11, "p/b/repeated")), 8, 9),
		},
		want: porcupine.Illegal,
	}, {
		name: "a room gone after its creation",
		ops: []porcupine.Operation{created, seated,
			op(1, readIn(), Output{Err: "room \"r\" does not exist", Refusal: refNoRoom}, 4, 5),
		},
		want: porcupine.Illegal,
	}, {
		name: "a seated player's join changes nothing",
		ops: []porcupine.Operation{created, seated,
			op(1, readIn(), read(view(1, "", "", "p,", 3, "")), 4, 5),
			op(9, joinIn("p", "j2"), ok(""), 6, 7),
			op(1, readIn(), read(view(1, "", "", "p,", 3, "")), 8, 9),
		},
		want: porcupine.Ok,
	}, {
		// A creation still unanswered when the workload stops (every
		// attempt timed out) may have been applied or not.
		name: "a creation of unknown outcome alone",
		ops: []porcupine.Operation{
			op(9, Input{Room: "r", Kind: opCreate, RequestID: "create"}, pending(), 0, 1),
		},
		want: porcupine.Ok,
	}, {
		name: "a creation of unknown outcome, then the room",
		ops: []porcupine.Operation{
			op(9, Input{Room: "r", Kind: opCreate, RequestID: "create"}, pending(), 0, 1),
			op(1, readIn(), read(view(1, "", "", "", 7, "")), 2, 3),
		},
		want: porcupine.Ok,
	}, {
		name: "a creation of unknown outcome, then no room",
		ops: []porcupine.Operation{
			op(9, Input{Room: "r", Kind: opCreate, RequestID: "create"}, pending(), 0, 1),
			op(1, readIn(), refused(refNoRoom), 2, 3),
		},
		want: porcupine.Ok,
	}, {
		name: "a creation of unknown outcome cannot explain a played round",
		ops: []porcupine.Operation{
			op(9, Input{Room: "r", Kind: opCreate, RequestID: "create"}, pending(), 0, 1),
			op(1, readIn(), read(view(1, "b", "", "", 7, "")), 2, 3),
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

// A room holds roomCapacity players: the next join is refused "room
// full", and that refusal is illegal one seat earlier.
func TestRoomModelFull(t *testing.T) {
	model := newModel(newLetterClasses())
	history := func(seats int) []porcupine.Operation {
		ops := []porcupine.Operation{created}
		for i := range seats {
			ops = append(ops, op(9, joinIn(fmt.Sprintf("f%d", i), fmt.Sprintf("j%d", i)), ok(""), int64(2+2*i), int64(3+2*i)))
		}
		t0 := int64(10 + 2*seats)
		return append(ops, op(0, joinIn("late", "jl"), refused(refRoomFull), t0, t0+1))
	}
	if got := porcupine.CheckOperations(model, history(roomCapacity)); !got {
		t.Errorf("a join refused in a full room: not linearizable")
	}
	if got := porcupine.CheckOperations(model, history(roomCapacity-1)); got {
		t.Errorf("a join refused with a seat left: linearizable")
	}
}

// classifyRefusal must read the words of services/game.
func TestClassifyRefusal(t *testing.T) {
	for msg, want := range map[string]refusal{
		`player "late" has not joined room "x"`:                 refNotJoined,
		`round 3 of room "x" is over (lost); start a new round`: refRoundOver,
		`round 3 of room "x" is still being played`:             refRoundPlaying,
		`room "x" is full (64 players)`:                         refRoomFull,
		`the cluster holds the maximum of 10000 rooms`:          refOther,
	} {
		if got := classifyRefusal(codes.FailedPrecondition, msg); got != want {
			t.Errorf("%q: %s, want %s", msg, got, want)
		}
	}
}

// finalState is a final read of room "r" for the report tests.
func finalState(round, seq uint64, guessed string, players ...string) map[string]*hangmanv1.RoomState {
	st := &hangmanv1.RoomState{Room: "r", Round: round, Seq: seq, Guessed: strings.Split(guessed, "")}
	for _, p := range players {
		st.Players = append(st.Players, &hangmanv1.Player{Id: p, Name: p})
	}
	return map[string]*hangmanv1.RoomState{"r": st}
}

// rec is a recorded write for the report tests.
func rec(in Input, out Output) *opRecord { return &opRecord{Input: in, Output: out} }

// The report must count a refused request that took effect, a refusal
// that changed, an event no request explains, and a lost write, and
// nothing else.
func TestReportChecks(t *testing.T) {
	evs := func(obs *Observers, events ...seenMsg) {
		for _, e := range events {
			e.Kind, e.Room = "event", "r"
			e.Key = fmt.Sprint(e.Seq, e.EventKind, e.Player, e.Letter, e.Outcome)
			obs.record("nats-n1", 0, e)
		}
	}
	type want struct{ rta, changed, dups, lost, mismatched int }
	cases := []struct {
		name   string
		recs   []*opRecord
		events []seenMsg
		final  map[string]*hangmanv1.RoomState
		want   want
	}{{
		name: "clean",
		recs: []*opRecord{
			rec(joinIn("p", "j1"), ok("")),
			rec(guessIn("p", "b", "g1"), at(10, "correct", nil)),
			rec(guessIn("p", "c", "g2"), Output{Outcome: "wrong", Duplicate: true}),
			rec(guessIn("p", "d", "g3"), pending()),
			rec(guessIn("q", "d", "g4"), refused(refNotJoined)),
			rec(again(guessIn("q", "d", "g4")), refused(refNotJoined)),
		},
		events: []seenMsg{
			{Seq: 5, EventKind: "player_joined", Player: "p"},
			{Seq: 10, Prev: 5, EventKind: "guess", Player: "p", Letter: "b", Outcome: "correct"},
			{Seq: 11, Prev: 10, EventKind: "guess", Player: "p", Letter: "c", Outcome: "wrong"},
			{Seq: 12, Prev: 11, EventKind: "guess", Player: "p", Letter: "d", Outcome: "wrong"},
		},
		final: finalState(1, 12, "bcd", "p"),
	}, {
		name: "a refused guess seen applied",
		recs: []*opRecord{
			rec(joinIn("p", "j1"), ok("")),
			rec(guessIn("p", "b", "g1"), refused(refNotJoined)),
		},
		events: []seenMsg{
			{Seq: 5, EventKind: "player_joined", Player: "p"},
			{Seq: 10, Prev: 5, EventKind: "guess", Player: "p", Letter: "b", Outcome: "correct"},
		},
		final: finalState(1, 10, "b", "p"),
		want:  want{rta: 1},
	}, {
		name: "a refused guess applied on its recheck",
		recs: []*opRecord{
			rec(joinIn("p", "j1"), ok("")),
			rec(guessIn("p", "b", "g1"), refused(refNotJoined)),
			rec(again(guessIn("p", "b", "g1")), ok("correct")),
		},
		events: []seenMsg{{Seq: 10, Prev: 5, EventKind: "guess", Player: "p", Letter: "b", Outcome: "correct"}},
		final:  finalState(1, 10, "b", "p"),
		want:   want{rta: 1},
	}, {
		name: "a refused join seated",
		recs: []*opRecord{
			rec(joinIn("p", "j1"), refused(refRoomFull)),
		},
		final: finalState(1, 10, "", "p"),
		want:  want{rta: 1},
	}, {
		name: "a refusal changed on recheck",
		recs: []*opRecord{
			rec(guessIn("p", "b", "g1"), refused(refNotJoined)),
			rec(again(guessIn("p", "b", "g1")), refused(refRoundOver)),
		},
		final: finalState(1, 10, ""),
		want:  want{changed: 1},
	}, {
		name: "a guess applied twice",
		recs: []*opRecord{
			rec(guessIn("p", "b", "g1"), at(10, "correct", nil)),
		},
		events: []seenMsg{
			{Seq: 10, Prev: 5, EventKind: "guess", Player: "p", Letter: "b", Outcome: "correct"},
			{Seq: 11, Prev: 10, EventKind: "guess", Player: "p", Letter: "b", Outcome: "repeated"},
		},
		final: finalState(1, 11, "b", "p"),
		want:  want{dups: 1},
	}, {
		name: "an acknowledged guess and join lost",
		recs: []*opRecord{
			rec(joinIn("p", "j1"), ok("")),
			{Input: guessIn("p", "b", "g1"), Output: at(10, "correct", nil), ReplyRound: 1},
		},
		final: finalState(1, 12, "c"),
		want:  want{lost: 2},
	}, {
		name: "another guess at an acknowledged index",
		recs: []*opRecord{
			rec(guessIn("p", "b", "g1"), at(10, "correct", nil)),
		},
		events: []seenMsg{{Seq: 10, Prev: 5, EventKind: "guess", Player: "q", Letter: "c", Outcome: "wrong"}},
		final:  finalState(1, 10, "b"),
		want:   want{mismatched: 1},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := &Workload{ops: map[string][]*opRecord{"r": c.recs}, errs: map[codes.Code]int{}}
			obs := newObservers(nil, nil, nil)
			evs(obs, c.events...)
			rep := newReport(Config{})
			rep.collect(w, obs, c.final, newLetterClasses())
			got := want{rep.RefusedThenApplied, rep.RefusalChanged, rep.Duplicates, rep.Lost, rep.Mismatched}
			if got != c.want {
				t.Errorf("got %+v, want %+v; %v", got, c.want, rep.Examples)
			}
		})
	}
}
