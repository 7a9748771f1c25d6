package raftnode

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/hangman/hangman/internal/harness"
	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
)

// The tests in this file damage a stopped node's real files the way a bad
// disk, a crash or an operator would, restart it, and expect it to refuse
// to start with one error that names the damaged file, instead of
// panicking or serving a state that differs from its peers'.

// stoppedNode runs a one-node cluster, creates a room and plays guesses
// in it (enough entries that the log spans many bbolt pages), stops the
// node and returns its config, the index of the room's CreateRoom entry
// and the room's secret word.
func stoppedNode(t *testing.T, guesses int) (cfg Config, createIndex uint64, word string) {
	t.Helper()
	c := newTestCluster(t, 1, nil)
	c.leader()
	ctx := ctxT(t)
	res, err := c.client(0).CreateRoom(ctx, &hangmanv1.CreateRoomRequest{Room: "vault", MaxWrong: 26})
	if err != nil {
		t.Fatalf("create room: %v", err)
	}
	createIndex = res.GetState().GetSeq()
	if _, err := c.client(0).JoinRoom(ctx, &hangmanv1.JoinRoomRequest{Room: "vault", PlayerId: "alice", Name: "alice", Token: harness.TokenOf("alice")}); err != nil {
		t.Fatalf("join: %v", err)
	}
	var snap struct {
		Rooms []struct{ Word string } `json:"rooms"`
	}
	if err := json.Unmarshal([]byte(snapshotOf(t, c.nodes[0])), &snap); err != nil || len(snap.Rooms) != 1 {
		t.Fatalf("read the secret word: %v (%d rooms)", err, len(snap.Rooms))
	}
	word = snap.Rooms[0].Word
	if guesses > 0 {
		playGuesses(t, c.client(0), "vault", "alice", guesses)
	}
	c.kill(0)
	return c.cfgs[0], createIndex, word
}

func raftDB(cfg Config) string { return filepath.Join(cfg.DataDir, "raft", "raft.db") }

// mustRefuse starts a node on cfg and expects Start to fail with an error
// that contains every one of want.
func mustRefuse(t *testing.T, cfg Config, want ...string) {
	t.Helper()
	n, err := Start(context.Background(), cfg)
	if err == nil {
		n.Close()
		t.Fatalf("node started on damaged storage; want an error naming %q", want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Fatalf("start error %q does not say %q", err, w)
		}
	}
	t.Logf("refused as expected: %v", err)
}

// TestNodeRefusesAnEntryWhoseBytesChanged changes the secret word inside
// the stored CreateRoom entry (same length, still letters, so the entry
// still decodes): the node must not start, and must say which entry.
func TestNodeRefusesAnEntryWhoseBytesChanged(t *testing.T) {
	cfg, index, word := stoppedNode(t, 0)
	path := raftDB(cfg)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The word sits in the entry as a length-prefixed string; change every
	// copy bbolt holds (freed pages keep older copies of a leaf).
	needle := append([]byte{byte(len(word))}, word...)
	flipped := bytes.Map(func(r rune) rune { return 'a' + (r-'a'+13)%26 }, []byte(word)) // rot13
	n := 0
	for i := bytes.Index(b, needle); i >= 0; i = bytes.Index(b, needle) {
		copy(b[i+1:], flipped)
		n++
	}
	if n == 0 {
		t.Fatalf("secret word %q not found in %s", word, path)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	mustRefuse(t, cfg, path, fmt.Sprintf("entry %d", index), "checksum")
}

// TestNodeRefusesADamagedLogFile truncates raft.db to half its size, or
// overwrites a page that holds log entries with 4 KiB of garbage.
func TestNodeRefusesADamagedLogFile(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, path, word string)
	}{
		{"truncated to half", func(t *testing.T, path, _ string) {
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if used := bboltHighWater(t, path); used <= fi.Size()/2 {
				t.Fatalf("bbolt uses only %d of %d bytes: truncating to half would cut nothing", used, fi.Size())
			}
			if err := os.Truncate(path, fi.Size()/2); err != nil {
				t.Fatal(err)
			}
		}},
		{"4 KiB of garbage", func(t *testing.T, path, word string) {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			// Every page holding the CreateRoom entry, live or freed.
			garbage := make([]byte, 4096)
			rng := rand.New(rand.NewPCG(1, 2))
			for i := range garbage {
				garbage[i] = byte(rng.UintN(256))
			}
			needle := append([]byte{byte(len(word))}, word...)
			pages := 0
			for i := bytes.Index(b, needle); i >= 0; i = bytes.Index(b, needle) {
				copy(b[i/4096*4096:], garbage)
				pages++
			}
			if pages == 0 {
				t.Fatalf("no page holds the secret word %q", word)
			}
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"garbage over both meta pages", func(t *testing.T, path, _ string) {
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt(bytes.Repeat([]byte{0xa5}, 2*4096), 0); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _, word := stoppedNode(t, 300)
			tc.damage(t, raftDB(cfg), word)
			mustRefuse(t, cfg, raftDB(cfg), "damaged")
		})
	}
}

// TestNodeRefusesADamagedSnapshot flips one byte of a real snapshot's
// state file: raft's file snapshot store keeps a CRC of it in meta.json.
func TestNodeRefusesADamagedSnapshot(t *testing.T) {
	c := newTestCluster(t, 1, nil)
	c.leader()
	setupRoom(t, c, 0, "vault")
	if err := c.nodes[0].raft.Snapshot().Error(); err != nil {
		t.Fatalf("take a snapshot: %v", err)
	}
	c.kill(0)
	states, err := filepath.Glob(filepath.Join(c.cfgs[0].DataDir, "raft", "snapshots", "*", "state.bin"))
	if err != nil || len(states) != 1 {
		t.Fatalf("want one snapshot state file, found %v (%v)", states, err)
	}
	b, err := os.ReadFile(states[0])
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x20
	if err := os.WriteFile(states[0], b, 0o600); err != nil {
		t.Fatal(err)
	}
	mustRefuse(t, c.cfgs[0], filepath.Dir(states[0]), "checksum")
}

// bboltHighWater is how many bytes of the file at path bbolt's pages use.
func bboltHighWater(t *testing.T, path string) int64 {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var size int64
	if err := db.View(func(tx *bolt.Tx) error { size = tx.Size(); return nil }); err != nil {
		t.Fatal(err)
	}
	return size
}
