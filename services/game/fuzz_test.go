package game

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// Run a fuzzer with, for example:
//
//	go test -run='^$' -fuzz=FuzzApply -fuzztime=30s ./services/game
//
// Its seeds are the files under testdata/fuzz/<FuzzName>/; the ones written
// by fuzzSeeds are regenerated with
//
//	go test -run='^TestFuzzSeeds$' -update-seeds ./services/game
//
// and any crasher the fuzzer finds is kept there next to them.

var updateSeeds = flag.Bool("update-seeds", false, "rewrite the generated seed corpora under testdata/fuzz")

func FuzzDecodeCommand(f *testing.F) {
	f.Fuzz(func(t *testing.T, entry []byte) {
		c, err := DecodeCommand(entry)
		if err != nil {
			if CodeOf(err) != CodeInvalid {
				t.Fatalf("DecodeCommand error %v has code %v, want invalid", err, CodeOf(err))
			}
			if c != (Command{}) {
				t.Fatalf("DecodeCommand returned %+v with error %v", c, err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("decoded command %+v does not validate: %v", c, err)
		}
		b := c.Encode()
		if len(b) > MaxCommandSize {
			t.Fatalf("re-encoded command is %d bytes, over MaxCommandSize", len(b))
		}
		c2, err := DecodeCommand(b)
		if err != nil {
			t.Fatalf("re-encoded command %q does not decode: %v", b, err)
		}
		if c2 != c {
			t.Fatalf("round trip changed the command:\n%+v\n%+v", c, c2)
		}
		if b2 := c2.Encode(); !bytes.Equal(b, b2) {
			t.Fatalf("encoding is not stable:\n%q\n%q", b, b2)
		}
	})
}

// FuzzApply applies the entries of its input (see unframe) as log entries
// to replicas that must stay identical, one of them restored from a
// snapshot half way.
func FuzzApply(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		entries := unframe(data)
		rs := newReplicas(t, 2)
		for i, e := range entries {
			if i == len(entries)/2 {
				rs.restoreReplica()
			}
			rs.apply(e)
		}
		rs.restoreReplica()
	})
}

// FuzzRestore restores arbitrary bytes. A refused snapshot leaves the
// machine as it was; an accepted one round-trips and keeps taking commands
// like a replica restored from it.
func FuzzRestore(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		m := New()
		m.ApplyCommand(1, withID(join("keep", "p1", "Ann"), "k")) // refused, and remembered: no room
		m.ApplyCommand(2, create("keep", "melon"))
		before := snapshotBytes(t, m)
		if err := m.Restore(bytes.NewReader(data)); err != nil {
			if after := snapshotBytes(t, m); !bytes.Equal(before, after) {
				t.Fatalf("failed restore (%v) changed the machine", err)
			}
			return
		}
		snap := snapshotBytes(t, m)
		r := restored(t, snap)
		if again := snapshotBytes(t, r); !bytes.Equal(snap, again) {
			t.Fatalf("snapshot does not round-trip:\n%s\n%s", snap, again)
		}
		if m.Applied() > math.MaxUint64-1000 {
			return // raft indexes never get there
		}
		// Play in every restored room, on both machines, then delete it.
		index := m.Applied()
		for _, s := range m.Rooms() {
			st, _ := m.Room(s.Room)
			player := "fz"
			if len(st.Players) > 0 {
				player = st.Players[0].ID
			}
			for _, c := range []Command{
				guess(s.Room, player, "e"), as(join(s.Room, "fz", "Fuzz"), annToken), withID(as(guess(s.Room, "fz", "a"), annToken), "fz-1"),
				newRound(s.Room, "", "ox"), guess(s.Room, player, "o"), as(join(s.Room, player, "Claim"), bobToken), guess(s.Room, player, "x"),
				withID(as(guess(s.Room, "fz", "a"), forgedToken), "fz-1"), withID(as(guess(s.Room, "fz", "a"), annToken), "fz-1"),
				as(newRound(s.Room, "fz", "kiwi"), annToken), {Kind: KindReclaimSeat, Room: s.Room, Player: player, At: maxAt, Cutoff: maxAt},
				{Kind: KindDeleteRoom, Room: s.Room, At: maxAt, Cutoff: maxAt},
			} {
				index++
				a, b := m.ApplyCommand(index, c), r.ApplyCommand(index, c)
				if !reflect.DeepEqual(a, b) {
					t.Fatalf("%+v: results differ:\n%+v\n%+v", c, a, b)
				}
				snap = snapshotBytes(t, m)
				if other := snapshotBytes(t, r); !bytes.Equal(snap, other) {
					t.Fatalf("%+v: replicas diverged:\n%s\n%s", c, snap, other)
				}
				if err := New().Restore(bytes.NewReader(snap)); err != nil {
					t.Fatalf("%+v: snapshot after the command does not restore: %v\n%s", c, err, snap)
				}
			}
		}
	})
}

// unframe splits FuzzApply's input into at most 256 log entries, each
// after its length as a uvarint; bytes that do not frame are the last
// entry. (Entries are binary, so no separator byte could delimit them.)
func unframe(data []byte) [][]byte {
	var out [][]byte
	for len(data) > 0 && len(out) < 256 {
		n, k := binary.Uvarint(data)
		if k <= 0 || n > uint64(len(data)-k) {
			return append(out, data)
		}
		out = append(out, data[k:k+int(n)])
		data = data[k+int(n):]
	}
	return out
}

// fuzzSeeds returns the generated seed inputs of each fuzzer, by file name.
func fuzzSeeds(t *testing.T) map[string]map[string][]byte {
	t.Helper()
	entry := func(c any) []byte {
		switch c := c.(type) {
		case Command:
			return c.Encode()
		case string:
			return []byte(c)
		case []byte:
			return c
		}
		t.Fatalf("no entry for %T", c)
		return nil
	}
	frames := func(entries ...any) []byte {
		var b []byte
		for _, e := range entries {
			e := entry(e)
			b = append(binary.AppendUvarint(b, uint64(len(e))), e...)
		}
		return b
	}
	batch := func(cmds ...Command) []byte {
		enc := make([][]byte, len(cmds))
		for i, c := range cmds {
			enc[i] = c.Encode()
		}
		return EncodeBatch(enc)
	}
	hard := create("r", "ox")
	hard.MaxWrong = 2
	v1 := snapshotFixture(t, 1)
	v2 := snapshotFixture(t, 2)
	capped := func(c Command, limit int) Command {
		c.Limit = limit
		return c
	}
	reclaim := func(kind Kind, room, player string, at, cutoff int64) Command {
		return Command{Kind: kind, Room: room, Player: player, At: at, Cutoff: cutoff}
	}
	lastRound := corrupt(t, func(s *snapshotFile) { s.Rooms[1].Round = math.MaxUint64 }) // den: won
	v3 := snapshotFixture(t, 3)
	timed := create("t", "ox")
	timed.TurnSeconds = MinTurnSeconds
	host := create("h", "")
	host.Mode, host.Category, host.MinLen, host.MaxLen, host.Seats = ModeHost, "animals", 3, 8, 3
	timeout := func(room string, turn int64, at int64) Command {
		return Command{Kind: KindTurnTimeout, Room: room, Turn: turn, At: at}
	}
	const late = at0 + MinTurnSeconds*1000

	return map[string]map[string][]byte{
		"FuzzDecodeCommand": {
			"create":            Command{Kind: KindCreateRoom, Room: "lobby", Word: "apple", MaxWrong: 6, RequestID: "c-1", At: at0}.Encode(),
			"join":              withID(join("lobby", "p1", "Zoë <b>"), "j-1").Encode(),
			"guess":             withID(guess("lobby", "p1", "E"), "g-1").Encode(),
			"new_round":         newRound("lobby", "p1", "banana").Encode(),
			"new_round_nobody":  Command{Kind: KindNewRound, Room: "lobby", Word: "kiwi"}.Encode(),
			"trailing_byte":     append(guess("lobby", "p1", "a").Encode(), 0),
			"two_letters":       guess("lobby", "p1", "ab").Encode(),
			"name_beyond_ascii": join("lobby", "p1", "<\U0001F600\u00e9").Encode(),
			"invalid_utf8_name": join("lobby", "p1", "\xff\xfe").Encode(),
			"join_token":        capped(withID(as(join("lobby", "p1", "Ann"), annToken), "j-2"), 8).Encode(),
			"guess_token":       withID(as(guess("lobby", "p1", "e"), annToken), "g-2").Encode(),
			"create_capped":     capped(create("lobby", "apple"), 100).Encode(),
			"delete_room":       reclaim(KindDeleteRoom, "lobby", "", at0+3600000, at0).Encode(),
			"reclaim_seat":      reclaim(KindReclaimSeat, "lobby", "p1", at0+3600000, at0).Encode(),
			"version_3":         encodeV3(withID(guess("lobby", "p1", "E"), "g-1")),
			"short_token_hash":  withID(Command{Kind: KindGuess, Room: "lobby", Player: "p1", Letter: "e", TokenHash: "abc", At: at0}, "g-3").Encode(),
			"cutoff_after_at":   reclaim(KindDeleteRoom, "lobby", "", at0, at0+1).Encode(),
			"create_settings":   timed.Encode(),
			"create_host":       withID(host, "c-2").Encode(),
			"set_word":          withID(as(Command{Kind: KindSetWord, Room: "h", Player: "p1", Word: "otter", At: at0}, annToken), "s-1").Encode(),
			"turn_timeout":      timeout("t", 3, late).Encode(),
			"version_4":         encodeV4(withID(as(guess("lobby", "p1", "E"), annToken), "g-1")),
			"timeout_with_id":   withID(timeout("t", 3, late), "x").Encode(),
		},
		"FuzzApply": {
			"won_then_lost": frames(
				hard, join("r", "p1", "Ann"), join("r", "p2", "Bob"), guess("r", "p1", "o"), guess("r", "p2", "X"),
				guess("r", "p1", "z"), newRound("r", "p2", "kiwi"), guess("r", "p1", "z"), guess("r", "p1", "q"),
				guess("r", "p1", "k"), newRound("r", "", "apple"), join("r", "p1", "Anna"),
			),
			"retries": frames(
				withID(create("r", "apple"), "c"), withID(create("r", "apple"), "c"),
				withID(join("r", "p1", "Ann"), "j"), withID(guess("r", "p1", "p"), "g"),
				withID(guess("r", "p1", "p"), "g"), withID(guess("r", "p1", "z"), "g"), guess("r", "p1", "p"),
			),
			"refusals": frames(
				guess("nope", "p1", "a"), create("r", "apple"), create("r", "melon"), guess("r", "p1", "a"),
				join("r", "p1", "Ann"), newRound("r", "p1", "kiwi"), guess("r", "p1", "ab"),
				append(guess("r", "p1", "a").Encode(), 0), "", "\x01{}", "\x00garbage", "\x03",
			),
			"two_rooms": frames(
				create("a", "ox"), create("b", "ox"), join("a", "p1", "Ann"), join("b", "p1", "Ann"),
				guess("a", "p1", "o"), guess("b", "p1", "x"), guess("a", "p1", "x"), newRound("a", "p1", "kiwi"),
			),
			"batches": frames(
				batch(create("a", "ox"), create("b", "ox")), batch(join("a", "p1", "Ann"), join("b", "p1", "Ann")),
				batch(guess("a", "p1", "o"), guess("b", "p1", "x"), guess("a", "p1", "x")), // a twice: refused
				batch(guess("a", "p1", "x"), newRound("b", "p1", "kiwi")), batch(),
			),
			"refusals_remembered": frames(
				withID(guess("x", "p1", "a"), "r1"), withID(create("x", "apple"), "c"), withID(join("x", "p1", "Ann"), "j"),
				withID(guess("x", "p1", "a"), "r1"), withID(guess("x", "p2", "a"), "r2"), withID(join("x", "p2", "Bob"), "j2"),
				batch(withID(guess("x", "p2", "p"), "r2"), withID(guess("y", "p1", "e"), "r1")),
				withID(newRound("x", "p1", "kiwi"), "n"), withID(create("y", "ox"), "c"), withID(guess("y", "p1", "e"), "r1"),
				withID(create("x", "melon"), "c2"), withID(create("x", "melon"), "c2"),
			),
			"impersonation": frames(
				create("r", "apple"), withID(as(join("r", "alice", "Alice"), annToken), "a-1"),
				withID(join("r", "alice", "Bob"), "b-1"), withID(as(join("r", "alice", "Bob"), forgedToken), "a-2"),
				withID(as(guess("r", "alice", "p"), forgedToken), "a-3"), withID(as(guess("r", "alice", "p"), annToken), "a-2"),
				withID(as(guess("r", "alice", "l"), annToken), "a-3"), as(newRound("r", "alice", "kiwi"), forgedToken),
				withID(as(guess("r", "bob", "e"), bobToken), "b-2"), withID(as(join("r", "bob", "Bob"), bobToken), "b-3"),
				withID(as(guess("r", "bob", "e"), bobToken), "b-2"), withID(as(join("r", "alice", "Al"), annToken), "a-4"),
			),
			"reclaimed": frames(
				capped(create("a", "ox"), 1), capped(create("b", "ox"), 1), as(capped(join("a", "p1", "Ann"), 1), annToken),
				as(capped(join("a", "p2", "Bob"), 1), bobToken), reclaim(KindReclaimSeat, "a", "p1", at0+1, at0-1),
				reclaim(KindReclaimSeat, "a", "p1", at0+1, at0), as(capped(join("a", "p2", "Bob"), 1), bobToken),
				reclaim(KindDeleteRoom, "a", "", at0+1, at0-1), reclaim(KindDeleteRoom, "a", "", at0+1, at0),
				capped(create("b", "ox"), 1), as(guess("a", "p2", "o"), bobToken), capped(create("a", "melon"), 1),
			),
			"host": frames(
				host, as(join("h", "p1", "Ann"), annToken), as(join("h", "p2", "Bob"), bobToken),
				withID(as(Command{Kind: KindSetWord, Room: "h", Player: "p2", Word: "otter", At: at0}, bobToken), "s-1"),
				withID(as(Command{Kind: KindSetWord, Room: "h", Player: "p1", Word: "hippopotamus", At: at0}, annToken), "s-2"),
				withID(as(Command{Kind: KindSetWord, Room: "h", Player: "p1", Word: "otter", At: at0}, annToken), "s-3"),
				as(guess("h", "p1", "o"), annToken), as(guess("h", "p2", "o"), bobToken), as(guess("h", "p2", "t"), bobToken),
				as(guess("h", "p2", "e"), bobToken), as(guess("h", "p2", "r"), bobToken), as(newRound("h", "p2", "kiwi"), bobToken),
				withID(as(Command{Kind: KindSetWord, Room: "h", Player: "p1", Word: "yak", At: at0}, annToken), "s-3"),
				withID(as(Command{Kind: KindSetWord, Room: "h", Player: "p2", Word: "yak", At: at0}, bobToken), "s-4"),
			),
			"timed": frames(
				timed, as(join("t", "p1", "Ann"), annToken), as(join("t", "p2", "Bob"), bobToken),
				as(guess("t", "p2", "o"), bobToken), as(guess("t", "p1", "o"), annToken), timeout("t", 2, late-1),
				timeout("t", 2, late), timeout("t", 2, late), as(guess("t", "p2", "x"), bobToken), timeout("t", 4, maxAt),
				reclaim(KindReclaimSeat, "t", "p1", late, at0), as(newRound("t", "p2", "kiwi"), bobToken),
			),
		},
		"FuzzRestore": {
			"game":       snapshotBytes(t, gameMachine(t)),
			"version_1":  v1,
			"empty":      snapshotBytes(t, New()),
			"last_round": lastRound,
			"version_2":  v2,
			"bad_status": corrupt(t, func(s *snapshotFile) { s.Rooms[0].Status = StatusWon }),
			"version_3":  v3,
			"rounds":     snapshotBytes(t, roundsMachine(t)),
		},
	}
}

// corpusFile returns data in the format of the go fuzzing corpus.
func corpusFile(data []byte) []byte {
	return fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", data)
}

// TestFuzzSeeds checks that the generated seed corpora on disk are current
// (rewriting them with -update-seeds), and that every seed is meaningful.
func TestFuzzSeeds(t *testing.T) {
	for fuzzer, seeds := range fuzzSeeds(t) {
		dir := filepath.Join("testdata", "fuzz", fuzzer)
		if *updateSeeds {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		for name, data := range seeds {
			path := filepath.Join(dir, name)
			want := corpusFile(data)
			if *updateSeeds {
				if err := os.WriteFile(path, want, 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (regenerate with -update-seeds)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s is stale (regenerate with -update-seeds)", path)
			}
		}
	}

	// The valid seeds are valid, so that the fuzzers start from real input.
	seeds := fuzzSeeds(t)
	for _, name := range []string{"create", "join", "guess", "new_round", "new_round_nobody", "name_beyond_ascii",
		"join_token", "guess_token", "create_capped", "delete_room", "reclaim_seat", "version_3",
		"create_settings", "create_host", "set_word", "turn_timeout", "version_4"} {
		if _, err := DecodeCommand(seeds["FuzzDecodeCommand"][name]); err != nil {
			t.Errorf("FuzzDecodeCommand seed %s does not decode: %v", name, err)
		}
	}
	for _, name := range []string{"game", "version_1", "version_2", "version_3", "empty", "last_round", "rounds"} {
		if err := New().Restore(bytes.NewReader(seeds["FuzzRestore"][name])); err != nil {
			t.Errorf("FuzzRestore seed %s does not restore: %v", name, err)
		}
	}
	m := New()
	for i, e := range unframe(seeds["FuzzApply"]["won_then_lost"]) {
		if res := m.Apply(uint64(i+1), e); res.Err != nil && i != 5 && i != 9 { // 5 and 9 guess after the round
			t.Errorf("FuzzApply seed won_then_lost: entry %d refused: %v", i, res.Err)
		}
	}
	if s, _ := m.Room("r"); s.Round != 3 || s.Players[0].Name != "Anna" {
		t.Errorf("FuzzApply seed won_then_lost ends in %+v", s)
	}
}
