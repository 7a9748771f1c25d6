package game

import (
	"bytes"
	"fmt"
	"reflect"
	"testing"
	"time"
)

func TestRetryIsAppliedOnce(t *testing.T) {
	tests := []struct {
		name  string
		setup []Command // before the request
		req   Command
		then  []Command // between the request and its retry
		// outcome the retry reports, which a fresh application would not
		outcome Outcome
	}{
		{
			name:    "correct guess",
			setup:   []Command{create("r", "apple"), join("r", "p1", "Ann"), join("r", "p2", "Bob")},
			req:     guess("r", "p1", "a"),
			then:    []Command{guess("r", "p2", "e")},
			outcome: OutcomeCorrect, // not repeated, and no second point
		},
		{
			name:    "wrong guess",
			setup:   []Command{create("r", "apple"), join("r", "p1", "Ann")},
			req:     guess("r", "p1", "z"),
			then:    []Command{guess("r", "p1", "l")},
			outcome: OutcomeWrong, // and no second wrong letter
		},
		{
			name:    "winning guess",
			setup:   []Command{create("r", "ox"), join("r", "p1", "Ann"), guess("r", "p1", "o")},
			req:     guess("r", "p1", "x"),
			outcome: OutcomeCorrect, // not refused as after the round
		},
		{
			name:  "create",
			req:   create("r", "apple"),
			then:  []Command{join("r", "p1", "Ann")},
			setup: nil, // not refused as existing
		},
		{
			name:  "join",
			setup: []Command{create("r", "apple")},
			req:   join("r", "p1", "Ann"),
			then:  []Command{join("r", "p1", "Annie")}, // not renamed back
		},
		{
			name:  "new round",
			setup: []Command{create("r", "ox"), join("r", "p1", "Ann"), guess("r", "p1", "o"), guess("r", "p1", "x")},
			req:   newRound("r", "p1", "melon"),
			then:  []Command{guess("r", "p1", "m")}, // neither refused nor a third round
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.okAll(tt.setup...)
			req := withID(tt.req, "req-1")
			first := h.ok(req)
			if first.Outcome != tt.outcome {
				t.Fatalf("first outcome %q, want %q", first.Outcome, tt.outcome)
			}
			h.okAll(tt.then...)
			before := roomsBytes(t, h.m)
			current, _ := h.m.Room("r")
			current.History = nil // a result's state goes without it
			events := h.m.RecentEvents("r")
			for retry := range 3 {
				res := h.apply(req)
				if res.Err != nil || !res.Duplicate {
					t.Fatalf("retry %d: err %v duplicate %v, want a duplicate", retry, res.Err, res.Duplicate)
				}
				if res.Outcome != first.Outcome {
					t.Fatalf("retry %d: outcome %q, want the original %q", retry, res.Outcome, first.Outcome)
				}
				if res.Event != nil {
					t.Fatalf("retry %d produced event %+v", retry, res.Event)
				}
				if res.Room != "r" || !reflect.DeepEqual(res.State, current) {
					t.Fatalf("retry %d: state\n got %+v\nwant %+v", retry, res.State, current)
				}
				if after := roomsBytes(t, h.m); !bytes.Equal(before, after) {
					t.Fatalf("retry %d changed the machine:\nbefore %s\nafter  %s", retry, before, after)
				}
				if !reflect.DeepEqual(h.m.RecentEvents("r"), events) {
					t.Fatalf("retry %d added an event", retry)
				}
				if h.m.Applied() != h.index {
					t.Fatalf("Applied() = %d, want %d", h.m.Applied(), h.index)
				}
			}
		})
	}
}

func TestRetryMatchesByIDOnly(t *testing.T) {
	// A request id names one request; whatever else a retry carries, it is
	// answered from the first application.
	h := newHarness(t)
	h.ok(create("r", "apple"))
	h.ok(join("r", "p1", "Ann"))
	first := h.ok(withID(guess("r", "p1", "a"), "same"))
	res := h.apply(withID(guess("r", "p1", "z"), "same"))
	if !res.Duplicate || res.Outcome != first.Outcome {
		t.Fatalf("retry with another letter: %+v", res)
	}
	if s, _ := h.m.Room("r"); len(s.Wrong) != 0 {
		t.Fatalf("the retry's letter was applied: %+v", s)
	}
}

func TestInvalidRequestIsNotRemembered(t *testing.T) {
	// An invalid command is refused the same every time, so its refusal
	// needs no record: its request id stays free.
	h := newHarness(t)
	h.ok(create("r", "apple"))
	h.ok(join("r", "p1", "Ann"))
	h.refused(withID(guess("r", "p1", "ab"), "bad"), CodeInvalid)
	if res := h.ok(withID(guess("r", "p1", "p"), "bad")); res.Outcome != OutcomeCorrect {
		t.Fatalf("id of an invalid command was remembered: %+v", res)
	}
	if ids := sessionIDs(t, h.m, "r"); len(ids) != 1 || ids[0] != "bad" {
		t.Fatalf("room remembers %q, want only the applied guess", ids)
	}
}

func TestRequestIDsArePerRoom(t *testing.T) {
	h := newHarness(t)
	for _, r := range []string{"r1", "r2"} {
		h.ok(create(r, "apple"))
		h.ok(join(r, "p1", "Ann"))
	}
	h.ok(withID(guess("r1", "p1", "a"), "x"))
	res := h.ok(withID(guess("r2", "p1", "a"), "x"))
	if res.Outcome != OutcomeCorrect {
		t.Fatalf("same id in another room: %+v", res)
	}
	if s, _ := h.m.Room("r2"); s.Players[0].Score != 1 {
		t.Fatalf("guess in r2 not applied: %+v", s)
	}
}

func TestNoRequestIDNoDeduplication(t *testing.T) {
	h := newHarness(t)
	h.ok(create("r", "apple"))
	h.ok(join("r", "p1", "Ann"))
	h.ok(guess("r", "p1", "a"))
	if res := h.ok(guess("r", "p1", "a")); res.Outcome != OutcomeRepeated {
		t.Fatalf("second guess without an id: %+v", res)
	}
}

// sessionIDs returns the request ids room remembers, oldest first, as its
// snapshot lists them.
func sessionIDs(t *testing.T, m *Machine, room string) []string {
	t.Helper()
	for _, r := range decodeSnapshot(t, snapshotBytes(t, m)).Rooms {
		if r.Name == room {
			ids := make([]string, len(r.Sessions))
			for i, s := range r.Sessions {
				ids[i] = s.ID
			}
			return ids
		}
	}
	t.Fatalf("no room %q in the snapshot", room)
	return nil
}

func TestSessionWindow(t *testing.T) {
	h := newHarness(t)
	h.ok(withID(create("r", "apple"), "create"))
	h.ok(withID(create("other", "apple"), "other-0"))
	// Same-name joins change nothing but are remembered: SessionWindow-1 of
	// them fill the window exactly.
	for i := 1; i < SessionWindow; i++ {
		h.ok(withID(join("r", "p1", "Ann"), fmt.Sprintf("j-%d", i)))
	}
	ids := sessionIDs(t, h.m, "r")
	if len(ids) != SessionWindow || ids[0] != "create" || ids[SessionWindow-1] != fmt.Sprintf("j-%d", SessionWindow-1) {
		t.Fatalf("window holds %d ids, %q..%q", len(ids), ids[0], ids[len(ids)-1])
	}
	if res := h.apply(withID(create("r", "apple"), "create")); !res.Duplicate {
		t.Fatalf("oldest id forgotten too early: %+v", res)
	}

	// One more once they are SessionMinAge old, and the oldest goes:
	// retrying it is a new request (and a create of an existing room).
	later := func(c Command) Command { return at(c, SessionMinAge) }
	h.ok(later(withID(guess("r", "p1", "a"), "g-last")))
	ids = sessionIDs(t, h.m, "r")
	if len(ids) != SessionWindow || ids[0] != "j-1" || ids[SessionWindow-1] != "g-last" {
		t.Fatalf("after overflow window holds %d ids, %q..%q", len(ids), ids[0], ids[len(ids)-1])
	}
	// A refusal takes its place in the window like any answer: the
	// forgotten create is a new request, refused and remembered, and j-1
	// goes.
	h.refused(later(withID(create("r", "apple"), "create")), CodeExists)
	ids = sessionIDs(t, h.m, "r")
	if len(ids) != SessionWindow || ids[0] != "j-2" || ids[SessionWindow-1] != "create" {
		t.Fatalf("after a refusal window holds %d ids, %q..%q", len(ids), ids[0], ids[len(ids)-1])
	}
	if res := h.apply(withID(join("r", "p1", "Ann"), "j-2")); !res.Duplicate {
		t.Fatalf("j-2 should still be remembered: %+v", res)
	}
	if res := h.apply(withID(guess("r", "p1", "a"), "g-last")); !res.Duplicate || res.Outcome != OutcomeCorrect {
		t.Fatalf("newest id not remembered: %+v", res)
	}
	// Other rooms keep their own windows.
	if ids := sessionIDs(t, h.m, "other"); len(ids) != 1 || ids[0] != "other-0" {
		t.Fatalf("other room's window %q", ids)
	}

	// Expiry is the same on a replica restored from a snapshot.
	r := h.applyWithRestored(later(withID(join("r", "p2", "Bob"), "after-restore")))
	if ids := sessionIDs(t, r, "r"); ids[0] != "j-3" {
		t.Fatalf("restored replica's oldest id %q, want j-3", ids[0])
	}
	if res := r.ApplyCommand(h.index+1, later(withID(join("r", "p1", "Ann"), "j-2"))); res.Duplicate {
		t.Fatal("j-2 still remembered after expiring")
	}
}

// TestAnswersOutliveABusyRoom reproduces a chaos run in which a refusal
// took effect later (DESIGN.md guarantee 2): a crowd made its room answer
// more than SessionWindow newer requests within seconds, the room forgot
// the refusal, and the retry, sent once the player had joined, was
// applied. Answers younger than SessionMinAge are kept whatever the
// count; once older, the count bounds the room again.
func TestAnswersOutliveABusyRoom(t *testing.T) {
	h := newHarness(t)
	h.ok(create("r", "apple"))
	h.ok(as(join("r", "p1", "Ann"), annToken))
	late := withID(as(guess("r", "late", "e"), bobToken), "late-1")
	first := h.refused(late, CodePrecondition)
	var d time.Duration
	for i := range SessionWindow + 10 {
		d += 5 * time.Millisecond
		h.ok(withID(at(as(join("r", "p1", "Ann"), annToken), d), fmt.Sprintf("crowd-%d", i)))
	}
	h.ok(at(as(join("r", "late", "Late"), bobToken), d))
	retry := h.apply(at(late, d+time.Second))
	if !retry.Duplicate {
		t.Fatalf("a retry %v after its refusal, %d answers later, was answered afresh: %+v", d+time.Second, SessionWindow+11, retry)
	}
	checkSameRefusal(t, retry, first)

	d += SessionMinAge
	h.ok(withID(at(as(join("r", "p1", "Ann"), annToken), d), "after"))
	ids := sessionIDs(t, h.m, "r")
	if len(ids) != SessionWindow || ids[len(ids)-1] != "after" {
		t.Fatalf("%v later the room remembers %d ids ending %q, want its newest %d", SessionMinAge, len(ids), ids[len(ids)-1], SessionWindow)
	}
}

// TestFullRoomRefusesBusy checks the hard bound: a room that answered
// SessionCap requests within SessionMinAge refuses the next request with
// an id as busy, without remembering the refusal (a retry is safe and
// may be applied), and takes requests again once its oldest answers are
// old enough to forget.
func TestFullRoomRefusesBusy(t *testing.T) {
	h := newHarness(t)
	h.ok(withID(create("r", "apple"), "create"))
	for i := 1; i < SessionCap; i++ {
		h.ok(withID(join("r", "p1", "Ann"), fmt.Sprintf("j-%d", i)))
	}
	busy := withID(join("r", "p2", "Bob"), "one-too-many")
	h.refusedBy(func(index uint64) Result { return h.m.ApplyCommand(index, busy) }, CodeBusy, nil)
	if res := h.apply(withID(create("r", "apple"), "create")); !res.Duplicate || res.Err != nil {
		t.Fatalf("the oldest answer of a full room was forgotten: %+v", res)
	}
	if res := h.apply(join("r", "p3", "Cy")); res.Err != nil {
		t.Fatalf("a request without an id was refused by a full room: %v", res.Err)
	}
	h.ok(at(busy, SessionMinAge))
	if ids := sessionIDs(t, h.m, "r"); len(ids) != SessionWindow || ids[len(ids)-1] != "one-too-many" {
		t.Fatalf("the room remembers %d ids ending %q, want its newest %d", len(ids), ids[len(ids)-1], SessionWindow)
	}
}

// TestRestoreVersion5 restores a snapshot written before answers had times
// (testdata/snapshot-v5.json, gameMachine's state then): its answers are
// kept by count alone, as they were, and answer retries as before.
func TestRestoreVersion5(t *testing.T) {
	v5 := snapshotFixture(t, 5)
	checkFixture(t, v5, func(f *snapshotFile) { downgrade(f, 5) })
	h := &harness{tb: t, m: restored(t, v5)}
	h.index = h.m.Applied()
	first := h.m.ApplyCommand(h.index, withID(guess("den", "p2", "q"), "g3"))
	if !first.Duplicate || CodeOf(first.Err) != CodePrecondition {
		t.Fatalf("a refusal restored from version 5 answered a retry with %+v", first)
	}
	for i := range SessionWindow {
		h.ok(withID(join("den", "p9", "Nine"), fmt.Sprintf("new-%d", i)))
	}
	ids := sessionIDs(t, h.m, "den")
	if len(ids) != SessionWindow || ids[0] != "new-0" {
		t.Fatalf("after %d new answers the room remembers %d ids from %q: the untimed ones must go first", SessionWindow, len(ids), ids[0])
	}
}

// TestFullMissingRoomsTableRefusesBusy is TestFullRoomRefusesBusy for the
// refusals of requests to rooms that do not exist: once MissingRoomCap of
// them are younger than SessionMinAge, the next is refused as busy,
// unremembered, while creating a room still works.
func TestFullMissingRoomsTableRefusesBusy(t *testing.T) {
	h := newHarness(t)
	for i := range MissingRoomCap {
		checkRefused(t, h.apply(withID(join(fmt.Sprintf("m%d", i%7), "p1", "Ann"), fmt.Sprintf("j-%d", i))), CodeNotFound)
	}
	busy := withID(join("m0", "p1", "Ann"), "one-too-many")
	h.refusedBy(func(index uint64) Result { return h.m.ApplyCommand(index, busy) }, CodeBusy, nil)
	h.ok(withID(create("fresh", "apple"), "c-fresh"))
	checkRefused(t, h.apply(at(busy, SessionMinAge)), CodeNotFound)
}
