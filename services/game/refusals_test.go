package game

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// checkSameRefusal checks that res answers a request again with the
// refusal first gave it: the same code and message, as a duplicate that
// changed nothing.
func checkSameRefusal(tb testing.TB, res, first Result) {
	tb.Helper()
	if res.Err == nil {
		tb.Fatalf("accepted (outcome %q, duplicate %v, state %+v), want the first answer again: %v", res.Outcome, res.Duplicate, res.State, first.Err)
	}
	if CodeOf(res.Err) != CodeOf(first.Err) || res.Err.Error() != first.Err.Error() {
		tb.Fatalf("refused with %v %q, want the first refusal %v %q", CodeOf(res.Err), res.Err, CodeOf(first.Err), first.Err)
	}
	if !res.Duplicate || res.Event != nil || res.Outcome != "" || !reflect.DeepEqual(res.State, State{}) {
		tb.Fatalf("repeated refusal: duplicate %v, event %+v, outcome %q, state %+v; want a duplicate that reports no change", res.Duplicate, res.Event, res.Outcome, res.State)
	}
	if res.Room != first.Room {
		tb.Fatalf("repeated refusal names room %q, want %q", res.Room, first.Room)
	}
}

// TestRefusalIsFinal is issue 15's first scenario at the state machine:
// a request refused by the rules stays refused, with the same answer, even
// once what it needed comes true; a stale copy of it landing later (or a
// retry) changes nothing.
func TestRefusalIsFinal(t *testing.T) {
	full := []Command{create("r", "apple")}
	for i := range MaxPlayers {
		full = append(full, join("r", fmt.Sprintf("p%d", i), "P"))
	}
	tests := []struct {
		refusal // its then comes before the stale copy lands
		// want describes the room once the stale copy landed
		want func(State) error
	}{
		{
			refusal: refusal{
				name:  "guess by a player who then joins",
				setup: []Command{create("x", "apple")},
				req:   guess("x", "late", "e"),
				code:  CodePrecondition,
				then:  []Command{join("x", "late", "Late")},
			},
			want: noGuesses,
		},
		{
			refusal: refusal{
				name:  "guess after the round is over, then a new round",
				setup: []Command{create("x", "ox"), join("x", "p1", "Ann"), guess("x", "p1", "o"), guess("x", "p1", "x")},
				req:   guess("x", "p1", "e"),
				code:  CodePrecondition,
				then:  []Command{newRound("x", "p1", "melon")},
			},
			want: func(s State) error {
				if s.Round != 2 {
					return fmt.Errorf("round %d, want 2", s.Round)
				}
				return noGuesses(s)
			},
		},
		{
			refusal: refusal{
				name: "guess in a room that does not exist, which is then created and joined",
				req:  guess("x", "late", "e"),
				code: CodeNotFound,
				then: []Command{create("x", "apple"), join("x", "late", "Late")},
			},
			want: noGuesses,
		},
		{
			refusal: refusal{
				name: "join a room that does not exist, which is then created",
				req:  join("x", "p1", "Ann"),
				code: CodeNotFound,
				then: []Command{create("x", "apple")},
			},
			want: func(s State) error {
				if len(s.Players) != 0 {
					return fmt.Errorf("players %+v, want none", s.Players)
				}
				return nil
			},
		},
		{
			refusal: refusal{
				name:  "new round while playing, then the round ends",
				setup: []Command{create("x", "ox"), join("x", "p1", "Ann")},
				req:   newRound("x", "p1", "melon"),
				code:  CodePrecondition,
				then:  []Command{guess("x", "p1", "o"), guess("x", "p1", "x")},
			},
			want: roundOneWon,
		},
		{
			refusal: refusal{
				name: "new round in a room that does not exist, which is then created and played",
				req:  newRound("x", "p1", "melon"),
				code: CodeNotFound,
				then: []Command{create("x", "ox"), join("x", "p1", "Ann"), guess("x", "p1", "o"), guess("x", "p1", "x")},
			},
			want: roundOneWon,
		},
		{
			refusal: refusal{
				name:  "create a room that exists",
				setup: []Command{create("x", "apple")},
				req:   create("x", "melon"),
				code:  CodeExists,
			},
		},
		{
			refusal: refusal{
				name:  "join a full room",
				setup: full,
				req:   join("r", "extra", "Extra"),
				code:  CodePrecondition,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, req, first := tt.play(t, "R1")
			before := roomsBytes(t, h.m)
			// The retry a client sends with a fresh time, and the stale
			// copy of the first attempt, whatever else it carries.
			later := req
			later.At++
			for i, c := range []Command{later, req, req} {
				checkSameRefusal(t, h.apply(c), first)
				if after := roomsBytes(t, h.m); !bytes.Equal(before, after) {
					t.Fatalf("copy %d changed the machine:\nbefore %s\nafter  %s", i, before, after)
				}
			}
			if tt.want != nil {
				s, ok := h.m.Room(tt.req.Room)
				if !ok {
					t.Fatalf("no room %q", tt.req.Room)
				}
				if err := tt.want(s); err != nil {
					t.Fatalf("room after the stale copy: %v (%+v)", err, s)
				}
			}
			// A replica restored from a snapshot answers the same.
			r := restored(t, snapshotBytes(t, h.m))
			checkSameRefusal(t, r.ApplyCommand(h.index+1, req), first)
		})
	}
}

func noGuesses(s State) error {
	if len(s.Guessed) != 0 || s.LastGuess != nil {
		return fmt.Errorf("guessed %v, last guess %+v; want none", s.Guessed, s.LastGuess)
	}
	return nil
}

func roundOneWon(s State) error {
	if s.Round != 1 || s.Status != StatusWon {
		return fmt.Errorf("round %d %s, want round 1 won", s.Round, s.Status)
	}
	return nil
}

// TestRestoreVersion1 restores a snapshot written before refusals were
// remembered (testdata/snapshot-v1.json, gameMachine's state then): its
// rooms and applied requests come back, and its next snapshot is of the
// current version.
func TestRestoreVersion1(t *testing.T) {
	v1 := snapshotFixture(t, 1)
	m := restored(t, v1)
	if m.Applied() != 11 {
		t.Fatalf("Applied() = %d, want 11", m.Applied())
	}
	den, _ := m.Room("den")
	attic, _ := m.Room("attic")
	if den.Status != StatusWon || scores(den) != "p1=6 p2=1" || attic.Masked != "_a_a_a" || scores(attic) != "p1=3" {
		t.Fatalf("restored rooms: den %+v, attic %+v", den, attic)
	}
	if res := m.ApplyCommand(12, withID(guess("den", "p1", "q"), "g1")); !res.Duplicate || res.Outcome != OutcomeWrong || res.Index != 4 {
		t.Fatalf("retry of an applied request: %+v", res)
	}
	// The current machine refuses and remembers as a new one does.
	first := m.ApplyCommand(13, withID(guess("den", "p2", "q"), "g3"))
	checkRefused(t, first, CodePrecondition)
	checkSameRefusal(t, m.ApplyCommand(14, withID(guess("den", "p2", "q"), "g3")), first)
	snap := snapshotBytes(t, m)
	if f := decodeSnapshot(t, snap); f.Version != snapshotVersion {
		t.Fatalf("snapshot after a version 1 restore is version %d", f.Version)
	}
	checkSameRefusal(t, restored(t, snap).ApplyCommand(15, withID(guess("den", "p2", "q"), "g3")), first)

	// gameMachine today, less what version 1 cannot hold, is the fixture.
	checkFixture(t, v1, func(f *snapshotFile) { downgrade(f, 1); f.Applied = 11 })
}

// checkFixture checks that the snapshot of gameMachine, made old by
// downgrade, is the fixture: the fixture is the same game as the current
// tests play, written by an older version.
func checkFixture(t *testing.T, fixture []byte, downgrade func(*snapshotFile)) {
	t.Helper()
	f := decodeSnapshot(t, snapshotBytes(t, gameMachine(t)))
	downgrade(&f)
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(append(b, '\n'), fixture) {
		t.Fatalf("gameMachine's version %d part\n%s\ndiffers from the fixture\n%s", f.Version, b, fixture)
	}
}

// TestRestoreVersion2 restores a snapshot written before player tokens
// (testdata/snapshot-v2.json, gameMachine's state then). Its seats have no
// token: the first join that carries one claims the seat, and until then a
// command with a token cannot act as the player. Its rooms and players
// take the time of the room's last event, and its remembered requests
// answer retries without a token as they did.
func TestRestoreVersion2(t *testing.T) {
	v2 := snapshotFixture(t, 2)
	m := restored(t, v2)
	if m.Applied() != 13 {
		t.Fatalf("Applied() = %d, want 13", m.Applied())
	}
	f := decodeSnapshot(t, snapshotBytes(t, m))
	if f.Version != snapshotVersion {
		t.Fatalf("snapshot after a version 2 restore is version %d", f.Version)
	}
	for _, r := range f.Rooms {
		if r.LastAt != at0 {
			t.Errorf("room %s restored with time %d, want its last event's %d", r.Name, r.LastAt, int64(at0))
		}
		for _, p := range r.Players {
			if p.LastAt != at0 || p.TokenHash != "" {
				t.Errorf("player %s of %s restored with time %d and token hash %q, want %d and none", p.ID, r.Name, p.LastAt, p.TokenHash, int64(at0))
			}
		}
	}
	h := &harness{tb: t, m: m, index: 13}
	// Retries without a token are answered as before.
	if res := h.apply(withID(guess("den", "p1", "q"), "g1")); !res.Duplicate || res.Outcome != OutcomeWrong || res.Index != 4 {
		t.Fatalf("retry of an applied request: %+v", res)
	}
	// A guess with a token cannot act on a seat nobody has claimed.
	h.refused(as(guess("attic", "p1", "e"), annToken), CodePermission)
	// The first join with a token claims the seat, score and all; then
	// only that token acts as the player.
	h.ok(as(join("attic", "p1", "Ann"), annToken))
	h.refused(as(join("attic", "p1", "Ann"), forgedToken), CodePermission)
	h.refused(guess("attic", "p1", "e"), CodePermission)
	if res := h.ok(as(guess("attic", "p1", "b"), annToken)); res.Outcome != OutcomeCorrect || scores(res.State) != "p1=4" {
		t.Fatalf("claimed seat's guess: %+v", res)
	}
	// A seat nobody claimed still takes commands without a token.
	h.ok(join("den", "p2", "Zoë"))

	checkFixture(t, v2, func(f *snapshotFile) { downgrade(f, 2); f.Applied = 13 })
}

// TestRefusalsSurviveSnapshots checks that a replica restored from a
// snapshot remembers every refusal, in rooms and of missing rooms, and
// forgets them in the same order as the original.
func TestRefusalsSurviveSnapshots(t *testing.T) {
	h := newHarness(t)
	h.ok(create("r", "apple"))
	inRoom := h.refused(withID(guess("r", "late", "e"), "in-room"), CodePrecondition)
	missing := h.refused(withID(guess("gone", "p1", "e"), "missing"), CodeNotFound)
	snap := snapshotBytes(t, h.m)
	r := restored(t, snap)
	if again := snapshotBytes(t, r); !bytes.Equal(snap, again) {
		t.Fatalf("round trip:\n got %s\nwant %s", again, snap)
	}
	for _, m := range []*Machine{h.m, r} {
		m.ApplyCommand(h.index+1, join("r", "late", "Late"))
		m.ApplyCommand(h.index+2, create("gone", "melon"))
		m.ApplyCommand(h.index+3, join("gone", "p1", "Ann"))
		checkSameRefusal(t, m.ApplyCommand(h.index+4, withID(guess("r", "late", "e"), "in-room")), inRoom)
		checkSameRefusal(t, m.ApplyCommand(h.index+5, withID(guess("gone", "p1", "e"), "missing")), missing)
	}
	if a, b := snapshotBytes(t, h.m), snapshotBytes(t, r); !bytes.Equal(a, b) {
		t.Fatalf("restored replica diverged:\n%s\n%s", a, b)
	}
}

// TestRefusalsShareTheSessionWindow checks that a room remembers refusals
// as long as it remembers applied requests: SessionWindow answers of any
// kind, and any younger than SessionMinAge.
func TestRefusalsShareTheSessionWindow(t *testing.T) {
	h := newHarness(t)
	h.ok(create("r", "apple"))
	early := withID(guess("r", "p1", "a"), "early")
	first := h.refused(early, CodePrecondition)
	h.ok(join("r", "p1", "Ann"))
	for i := 1; i < SessionWindow; i++ {
		checkRefused(t, h.apply(withID(guess("r", "p2", "a"), fmt.Sprintf("r-%d", i))), CodePrecondition)
	}
	checkSameRefusal(t, h.apply(early), first)
	// One more answer once the oldest is SessionMinAge old, and the
	// oldest goes: early is a new request now.
	h.ok(at(withID(guess("r", "p1", "z"), "last"), SessionMinAge))
	if res := h.ok(at(early, SessionMinAge)); res.Outcome != OutcomeCorrect {
		t.Fatalf("early after it left the window: %+v", res)
	}
}

// TestMissingRoomWindow checks the refusals of requests to rooms that do
// not exist: remembered across the cluster up to MissingRoomWindow (and
// while younger than SessionMinAge), the oldest forgotten first, the same way on a restored replica, and handed
// to a room when it is created.
func TestMissingRoomWindow(t *testing.T) {
	h := newHarness(t)
	for i := range MissingRoomWindow {
		checkRefused(t, h.apply(withID(join(fmt.Sprintf("m%d", i%7), "p1", "Ann"), fmt.Sprintf("j-%d", i))), CodeNotFound)
	}
	missingIDs := func(m *Machine) []string {
		var ids []string
		for _, rec := range decodeSnapshot(t, snapshotBytes(t, m)).Missing {
			ids = append(ids, rec.Room+"/"+rec.ID)
		}
		return ids
	}
	ids := missingIDs(h.m)
	if len(ids) != MissingRoomWindow || ids[0] != "m0/j-0" || ids[MissingRoomWindow-1] != fmt.Sprintf("m%d/j-%d", (MissingRoomWindow-1)%7, MissingRoomWindow-1) {
		t.Fatalf("window holds %d refusals, %q..%q", len(ids), ids[0], ids[len(ids)-1])
	}
	// One more once they are SessionMinAge old, on a replica and on its
	// restored copy: the oldest goes.
	h.applyWithRestored(at(withID(guess("late", "p1", "a"), "g"), SessionMinAge))
	if ids := missingIDs(h.m); ids[0] != "m1/j-1" || ids[len(ids)-1] != "late/g" {
		t.Fatalf("after overflow window holds %q..%q", ids[0], ids[len(ids)-1])
	}
	// j-0 is forgotten: once m0 exists, its join goes through.
	h.ok(create("m0", "apple"))
	if res := h.ok(withID(join("m0", "p1", "Ann"), "j-0")); res.Event == nil {
		t.Fatal("forgotten join produced no event")
	}
	// m1 takes its remembered refusals with it when it is created.
	h.ok(withID(create("m1", "apple"), "c-m1"))
	got := sessionIDs(t, h.m, "m1")
	if len(got) == 0 || got[0] != "j-1" || got[len(got)-1] != "c-m1" {
		t.Fatalf("m1 remembers %q, want its refusals then its creation", got)
	}
	for _, id := range missingIDs(h.m) {
		if strings.HasPrefix(id, "m1/") || strings.HasPrefix(id, "m0/") {
			t.Fatalf("refusal %s of a created room is still among the missing rooms'", id)
		}
	}
	if res := h.apply(withID(join("m1", "p1", "Ann"), "j-1")); res.Err == nil || !res.Duplicate || CodeOf(res.Err) != CodeNotFound {
		t.Fatalf("retry of a refusal m1 took over: %+v", res)
	}
	restored(t, snapshotBytes(t, h.m))
}
