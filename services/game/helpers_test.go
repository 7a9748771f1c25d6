package game

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// at0 is the proposer's clock stamped on test commands (2023-11-14, UTC).
const at0 = 1700000000000

func create(room, word string) Command {
	return Command{Kind: KindCreateRoom, Room: room, Word: word, At: at0}
}

func join(room, player, name string) Command {
	return Command{Kind: KindJoinRoom, Room: room, Player: player, Name: name, At: at0}
}

func guess(room, player, letter string) Command {
	return Command{Kind: KindGuess, Room: room, Player: player, Letter: letter, At: at0}
}

func newRound(room, player, word string) Command {
	return Command{Kind: KindNewRound, Room: room, Player: player, Word: word, At: at0}
}

// Tokens of the tests' players: what a browser would hold.
const (
	annToken     = "ann-0123456789abcdefghij"
	bobToken     = "bob-0123456789abcdefghij"
	forgedToken  = "mallory-guessed-a-token"
	anotherToken = "another-0123456789abcdef"
)

// as returns c carrying the hash of token, as the proposer makes it from
// the token a player presented.
func as(c Command, token string) Command {
	c.TokenHash = HashToken(token)
	return c
}

// withID returns c carrying request id id.
func withID(c Command, id string) Command {
	c.RequestID = id
	return c
}

// harness applies commands to one Machine at consecutive log indexes,
// starting at 1, as the replication layer would.
type harness struct {
	tb    testing.TB
	m     *Machine
	index uint64
}

func newHarness(tb testing.TB) *harness {
	tb.Helper()
	return &harness{tb: tb, m: New()}
}

// apply applies c at the next index and returns whatever happened.
func (h *harness) apply(c Command) Result {
	h.index++
	return h.m.ApplyCommand(h.index, c)
}

// ok applies c, which must be accepted as a new (not duplicate) command.
func (h *harness) ok(c Command) Result {
	h.tb.Helper()
	res := h.apply(c)
	if res.Err != nil {
		h.tb.Fatalf("apply %s %+v: unexpected error: %v", c.Kind, c, res.Err)
	}
	if res.Duplicate {
		h.tb.Fatalf("apply %s %+v: unexpectedly a duplicate", c.Kind, c)
	}
	if res.Room != c.Room {
		h.tb.Fatalf("apply %s: Result.Room = %q, want %q", c.Kind, res.Room, c.Room)
	}
	return res
}

// applyWithRestored applies c at the next index both to h's machine and to
// a copy restored from its snapshot, checks that the two end with the same
// snapshot (a restored replica goes on exactly as the original), and
// returns the copy.
func (h *harness) applyWithRestored(c Command) *Machine {
	h.tb.Helper()
	r := restored(h.tb, snapshotBytes(h.tb, h.m))
	h.apply(c)
	r.ApplyCommand(h.index, c)
	if a, b := snapshotBytes(h.tb, h.m), snapshotBytes(h.tb, r); !bytes.Equal(a, b) {
		h.tb.Fatalf("restored replica diverged after %s %+v:\n%.500s\n%.500s", c.Kind, c, a, b)
	}
	return r
}

// okAll applies cmds in order; each must be accepted as new.
func (h *harness) okAll(cmds ...Command) {
	h.tb.Helper()
	for _, c := range cmds {
		h.ok(c)
	}
}

// refusal is a request the rules refuse in some setting, and what then
// makes it possible: the case of every test that checks a refusal stays
// final once its reason is gone (TestRefusalIsFinal,
// TestForgedRequestDoesNotBurnTheVictimsID).
type refusal struct {
	name  string
	setup []Command // before the request
	req   Command
	code  Code
	then  []Command // after the refusal: what makes the request possible
}

// play applies rf on a fresh harness: its setup, its request with request
// id id, which must be refused with its code, then its then. It returns
// the harness, the request as sent and its refusal.
func (rf refusal) play(tb testing.TB, id string) (h *harness, req Command, first Result) {
	tb.Helper()
	h = newHarness(tb)
	h.okAll(rf.setup...)
	req = withID(rf.req, id)
	first = h.refused(req, rf.code)
	h.okAll(rf.then...)
	return h, req, first
}

// refused applies c, which must be refused with code, and checks that the
// refusal changed nothing but the applied index and, for a refusal by the
// rules of a command with a request id, the session table, which then
// answers a retry the same.
func (h *harness) refused(c Command, code Code) Result {
	h.tb.Helper()
	var again func(*Machine, uint64) Result
	if c.RequestID != "" && code != CodeInvalid {
		again = func(m *Machine, index uint64) Result { return m.ApplyCommand(index, c) }
	}
	return h.refusedBy(func(index uint64) Result { return h.m.ApplyCommand(index, c) }, code, again)
}

// refusedEntry is refused for a raw log entry, applied with Apply.
func (h *harness) refusedEntry(entry []byte, code Code) Result {
	h.tb.Helper()
	return h.refusedBy(func(index uint64) Result { return h.m.Apply(index, entry) }, code, nil)
}

// refusedBy applies an entry with apply, which must be refused with code.
// With again nil the refusal must leave no trace; otherwise it must be
// remembered, and again, applying the same request on another machine,
// must get the same refusal as a duplicate that changes nothing.
func (h *harness) refusedBy(apply func(index uint64) Result, code Code, again func(m *Machine, index uint64) Result) Result {
	h.tb.Helper()
	before := snapshotBytes(h.tb, h.m)
	beforeState := stateBytes(h.tb, h.m)
	h.index++
	res := apply(h.index)
	checkRefused(h.tb, res, code)
	if after := stateBytes(h.tb, h.m); !bytes.Equal(beforeState, after) {
		h.tb.Fatalf("refused command changed the machine:\nbefore %s\nafter  %s", before, snapshotBytes(h.tb, h.m))
	}
	if got := h.m.Applied(); got != h.index {
		h.tb.Fatalf("Applied() = %d after a refused entry at %d, want %d", got, h.index, h.index)
	}
	if again != nil {
		if bytes.Equal(roomsBytes(h.tb, h.m), roomsBytesOf(h.tb, before)) {
			h.tb.Fatal("a refusal by the rules of a request with an id was not remembered")
		}
		r := restored(h.tb, snapshotBytes(h.tb, h.m))
		now := roomsBytes(h.tb, r)
		checkSameRefusal(h.tb, again(r, h.index+1), res)
		if after := roomsBytes(h.tb, r); !bytes.Equal(now, after) {
			h.tb.Fatalf("a repeated refusal changed the machine:\nbefore %s\nafter  %s", now, after)
		}
		return res
	}
	// A redelivery at the same index leaves even the snapshot bytes as they
	// were (the applied index only ever moves forward).
	now := snapshotBytes(h.tb, h.m)
	h.m.applied--
	if b := snapshotBytes(h.tb, h.m); !bytes.Equal(b, before) {
		h.m.applied++
		h.tb.Fatalf("snapshot after the refusal, applied index aside:\n got %s\nwant %s", b, before)
	}
	h.m.applied++
	if b := snapshotBytes(h.tb, h.m); !bytes.Equal(b, now) {
		h.tb.Fatal("snapshot not reproducible")
	}
	return res
}

// checkRefused checks that res is a refusal with code that reports no change.
func checkRefused(tb testing.TB, res Result, code Code) {
	tb.Helper()
	if res.Err == nil {
		tb.Fatalf("accepted (state %+v), want a refusal with code %v", res.State, code)
	}
	var e *Error
	if !errors.As(res.Err, &e) {
		tb.Fatalf("error %v (%T) is not an *Error", res.Err, res.Err)
	}
	if got := CodeOf(res.Err); got != code {
		tb.Fatalf("refused with code %v (%v), want %v", got, res.Err, code)
	}
	if res.Err.Error() == "" {
		tb.Fatalf("refusal with code %v has no message", code)
	}
	if res.Event != nil || res.Duplicate || res.Outcome != "" {
		tb.Fatalf("refusal reports a change: event %+v duplicate %v outcome %q", res.Event, res.Duplicate, res.Outcome)
	}
	if !reflect.DeepEqual(res.State, State{}) {
		tb.Fatalf("refusal carries a state: %+v", res.State)
	}
}

// snapshotBytes returns the snapshot of m.
func snapshotBytes(tb testing.TB, m *Machine) []byte {
	tb.Helper()
	var b bytes.Buffer
	if err := m.Snapshot(&b); err != nil {
		tb.Fatalf("snapshot: %v", err)
	}
	return b.Bytes()
}

// roomsBytes returns the snapshot of m without its applied index: everything
// a command can change besides the index every log entry advances.
func roomsBytes(tb testing.TB, m *Machine) []byte {
	tb.Helper()
	c := *m // shares the rooms, which Snapshot only reads
	c.applied = 0
	return snapshotBytes(tb, &c)
}

// roomsBytesOf is roomsBytes of the machine snapshot b holds.
func roomsBytesOf(tb testing.TB, b []byte) []byte {
	tb.Helper()
	return roomsBytes(tb, restored(tb, b))
}

// stateBytes returns the snapshot of m without its applied index and its
// session tables: the game itself, which only an applied command changes.
func stateBytes(tb testing.TB, m *Machine) []byte {
	tb.Helper()
	c := Machine{rooms: make(map[string]*room, len(m.rooms))}
	for name, r := range m.rooms {
		game := *r // shares all but the sessions, which Snapshot only reads
		game.sessions = window[sessionKey]{}
		c.rooms[name] = &game
	}
	return snapshotBytes(tb, &c)
}

// restored returns a fresh Machine restored from snapshot b.
func restored(tb testing.TB, b []byte) *Machine {
	tb.Helper()
	m := New()
	if err := m.Restore(bytes.NewReader(b)); err != nil {
		tb.Fatalf("restore: %v\nsnapshot %s", err, b)
	}
	return m
}

// decodeSnapshot parses snapshot bytes into their file structure.
func decodeSnapshot(tb testing.TB, b []byte) snapshotFile {
	tb.Helper()
	var f snapshotFile
	if err := json.Unmarshal(b, &f); err != nil {
		tb.Fatalf("decode snapshot: %v", err)
	}
	return f
}

// encodeV3 returns the log entry of c in the first binary encoding,
// version 3, which has no token hash, cap or cutoff: what logs written
// before tokens hold.
func encodeV3(c Command) []byte {
	b := []byte{commandBinaryV3, byte(c.Kind)}
	for _, f := range [...]string{c.Room, c.Player, c.Name, c.Letter, c.Word, c.RequestID} {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	b = binary.AppendVarint(b, int64(c.MaxWrong))
	return binary.AppendVarint(b, c.At)
}

// encodeV4 returns the log entry of c in version 4 of the encoding, which
// has no settings or turn: what logs written before room settings hold.
func encodeV4(c Command) []byte {
	b := []byte{commandBinaryV4, byte(c.Kind)}
	for _, f := range [...]string{c.Room, c.Player, c.Name, c.Letter, c.Word, c.RequestID, c.TokenHash} {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	for _, v := range [...]int64{int64(c.MaxWrong), c.At, int64(c.Limit), c.Cutoff} {
		b = binary.AppendVarint(b, v)
	}
	return b
}

// mustJSON returns the JSON of v.
func mustJSON(tb testing.TB, v any) string {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatalf("marshal %T: %v", v, err)
	}
	return string(b)
}

// scores returns the players of s as "id=score" in join order.
func scores(s State) string {
	parts := make([]string, len(s.Players))
	for i, p := range s.Players {
		parts[i] = p.ID + "=" + strconv.FormatInt(p.Score, 10)
	}
	return strings.Join(parts, " ")
}

// snapshotFixture returns testdata/snapshot-v<version>.json, a snapshot an
// older version of the Machine wrote, checking that it is that version.
func snapshotFixture(tb testing.TB, version int) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", fmt.Sprintf("snapshot-v%d.json", version)))
	if err != nil {
		tb.Fatal(err)
	}
	if f := decodeSnapshot(tb, b); f.Version != version {
		tb.Fatalf("testdata/snapshot-v%d.json is version %d", version, f.Version)
	}
	return b
}
