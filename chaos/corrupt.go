package chaos

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Where a node keeps its raft log (raftnode/raftstore/logstore.go): a bbolt file
// under its data directory, entries in one bucket keyed by their index as
// 8 big-endian bytes; snapshots beside it, each with a meta.json naming
// its last index (hashicorp/raft's file snapshot store).
const (
	raftStoreName  = "raft.db"
	raftStorePath  = "raft/" + raftStoreName
	raftLogBucket  = "logs"
	raftSnapshots  = "raft/snapshots"
	snapshotMetaFn = "meta.json"
)

// playerInEntry finds a workload player id in a stored entry: its letters
// are what the corruption flips.
var playerInEntry = regexp.MustCompile(`s[0-9]+p[0-9]+`)

// corruption is what corruptEntry changed.
type corruption struct {
	Index uint64
	// Before and After are the flipped bytes.
	Before, After string
}

// corruptEntry flips bytes inside one committed entry of the raft log in
// the bbolt file at path, as a bad disk would: the newest entry with an
// index in (after, upTo] that names a workload player gets that player id
// flipped to upper case (bit 5 of its letters: still a well-formed id, so
// only a checksum can tell). Entries above after are the ones a restarted
// node reads again (after is its last snapshot's index). The node must be
// stopped.
func corruptEntry(path string, after, upTo uint64) (corruption, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return corruption{}, fmt.Errorf("open %s: %w", path, err)
	}
	defer db.Close()
	var c corruption
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(raftLogBucket))
		if b == nil {
			return fmt.Errorf("%s has no bucket %q", path, raftLogBucket)
		}
		var key [8]byte
		binary.BigEndian.PutUint64(key[:], upTo)
		cur := b.Cursor()
		k, v := cur.Seek(key[:])
		if k == nil || binary.BigEndian.Uint64(k) > upTo {
			k, v = cur.Prev()
		}
		for ; len(k) == 8 && binary.BigEndian.Uint64(k) > after; k, v = cur.Prev() {
			loc := playerInEntry.FindIndex(v)
			if loc == nil {
				continue
			}
			nv := append([]byte(nil), v...)
			for i := loc[0]; i < loc[1]; i++ {
				if nv[i] >= 'a' && nv[i] <= 'z' {
					nv[i] ^= 0x20
				}
			}
			c = corruption{Index: binary.BigEndian.Uint64(k), Before: string(v[loc[0]:loc[1]]), After: string(nv[loc[0]:loc[1]])}
			return b.Put(append([]byte(nil), k...), nv)
		}
		return fmt.Errorf("no entry naming a player in (%d, %d] of %s", after, upTo, path)
	})
	return c, err
}

// lastSnapshotIndex returns the highest index a snapshot in the node's
// data directory covers, 0 without one.
func lastSnapshotIndex(dataDir string) (uint64, error) {
	metas, err := filepath.Glob(filepath.Join(dataDir, raftSnapshots, "*", snapshotMetaFn))
	if err != nil {
		return 0, err
	}
	var last uint64
	for _, m := range metas {
		data, err := os.ReadFile(m)
		if errors.Is(err, os.ErrNotExist) {
			continue // a snapshot being reaped
		}
		if err != nil {
			return 0, fmt.Errorf("read snapshot meta: %w", err)
		}
		var meta struct{ Index uint64 }
		if err := json.Unmarshal(data, &meta); err != nil {
			return 0, fmt.Errorf("snapshot meta %s: %w", m, err)
		}
		last = max(last, meta.Index)
	}
	return last, nil
}
