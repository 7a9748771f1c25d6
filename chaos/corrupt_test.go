package chaos

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// writeLog makes a bbolt file laid out as raftnode's log store, with one
// value per index.
func writeLog(t *testing.T, values map[uint64]string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), raftStoreName)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte(raftLogBucket))
		if err != nil {
			return err
		}
		for i, v := range values {
			var k [8]byte
			binary.BigEndian.PutUint64(k[:], i)
			if err := b.Put(k[:], []byte(v)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return path
}

func readLog(t *testing.T, path string) map[uint64]string {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out := map[uint64]string{}
	_ = db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(raftLogBucket)).ForEach(func(k, v []byte) error {
			out[binary.BigEndian.Uint64(k)] = string(v)
			return nil
		})
	})
	return out
}

// The corruption hits the newest entry naming a player within the range,
// changes only that player id's letters, and leaves every other entry.
func TestCorruptEntry(t *testing.T) {
	values := map[uint64]string{
		1: "\x01config",
		2: "\x03\x03\x04c0g1\x04s0p1\x00\x01b\x00\x0cc0g1-s0p1-1",
		3: "\x03\x02\x04c0g1\x04s1p2\x04s1p2",
		4: "\x01no player here",
		5: "\x03\x03\x04c0g1\x04s2p0\x00\x01c\x00",
	}
	path := writeLog(t, values)
	c, err := corruptEntry(path, 1, 4)
	if err != nil {
		t.Fatal(err)
	}
	if c.Index != 3 || c.Before != "s1p2" || c.After != "S1P2" {
		t.Fatalf("corrupted %+v, want index 3 s1p2 -> S1P2", c)
	}
	got := readLog(t, path)
	for i, v := range values {
		want := v
		if i == 3 {
			want = strings.Replace(v, "s1p2", "S1P2", 1)
		}
		if got[i] != want {
			t.Errorf("entry %d is %q, want %q", i, got[i], want)
		}
	}
	if _, err := corruptEntry(path, 3, 4); err == nil {
		t.Errorf("no entry naming a player in (3, 4]: corrupted something anyway")
	}
}

func TestLastSnapshotIndex(t *testing.T) {
	dir := t.TempDir()
	if i, err := lastSnapshotIndex(dir); err != nil || i != 0 {
		t.Fatalf("no snapshot: %d, %v", i, err)
	}
	for name, meta := range map[string]string{"2-100-1": `{"Index":100,"Term":2}`, "3-250-2": `{"Index":250,"Term":3}`} {
		d := filepath.Join(dir, raftSnapshots, name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, snapshotMetaFn), []byte(meta), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if i, err := lastSnapshotIndex(dir); err != nil || i != 250 {
		t.Fatalf("last snapshot index %d, %v; want 250", i, err)
	}
}

// A refusal names the file and the index as a whole number.
func TestNamesEntry(t *testing.T) {
	for log, want := range map[string]bool{
		`{"level":"ERROR","msg":"corrupt raft log","file":"/d/raft/raft.db","index":1234}`: true,
		`raft.db: entry 12345 fails its checksum`:                                          false,
		`entry 1234 fails its checksum`:                                                    false,
	} {
		if got := namesEntry(log, 1234); got != want {
			t.Errorf("%s: %t, want %t", log, got, want)
		}
	}
}
