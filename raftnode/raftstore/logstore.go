// Package raftstore is the consensus node's storage: raft's log and stable
// stores and its snapshot store, every byte of them checked (DESIGN.md,
// guarantee 9). The log is a bbolt file whose entries carry checksums
// (Store), the term and vote a small file of two checksummed copies
// (stablefile.go), and the snapshots raft's file store, whose CRC is
// checked before the node starts (Open). A damaged store refuses to open
// with one error naming the file and the entry; a full disk fails writes
// with ErrNotPersisted and is reported by WriteHealth.
//
// It knows nothing of the game or the node: raftnode composes it.
package raftstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Store is raft's log store, and through stable (stablefile.go) its
// stable store, kept in the node's raft directory.
//
// The log is one bbolt file, raft.db, written by hand rather than through
// a library, because none of the maintained ones does the job:
// hashicorp/raft-boltdb stores entries without a checksum, so a changed
// byte is served as a valid command; hashicorp/raft-wal leaves a segment
// that cannot be opened again after a tail truncation (a deposed leader
// clearing its uncommitted suffix, hashicorp/raft-wal#31), so the node
// could never restart. Here every write is one bbolt transaction, fsync'd
// before it returns, so an acknowledged entry is on disk; every entry
// carries a CRC-32C that every read checks (see encodeLog); and the whole
// file is verified before the node starts (verifyLogFile), so damage makes
// the node refuse to start with one error naming the file and the entry,
// instead of panicking inside bbolt or serving a state its peers do not
// have.
//
// bbolt panics, rather than failing, on some damaged pages; every call
// into it runs under guard, which turns those panics (and memory faults
// on a file shorter than its pages) into errors.
type Store struct {
	db     *bolt.DB
	path   string
	log    *slog.Logger
	stable *stableFile

	// failingSince is when the current run of failed log writes began
	// (Unix nanoseconds), 0 while writes succeed; failReason says why,
	// without the file's path. writeErrors counts failed writes.
	failingSince atomic.Int64
	failReason   atomic.Pointer[string]
	writeErrors  atomic.Uint64

	// tail is a truncation of the log's tail that raft asked for and that
	// takes effect only with the append that follows it (see DeleteRange).
	tailMu sync.Mutex
	tail   *span
}

// span is the entries from min to max, inclusive.
type span struct{ min, max uint64 }

// holds reports whether i is in the span.
func (p *span) holds(i uint64) bool { return p != nil && p.min <= i && i <= p.max }

// pendingTail returns the tail truncation waiting for its append, if any.
func (s *Store) pendingTail() *span {
	s.tailMu.Lock()
	defer s.tailMu.Unlock()
	return s.tail
}

var (
	bucketLogs = []byte("logs")
	// bucketStable held the term and vote before stable.dat did; it is
	// read once, to migrate, and then dropped.
	bucketStable = []byte("stable")
	// errKeyNotFound is the error raft expects from a stable store for a
	// key never set (it compares the text).
	errKeyNotFound = errors.New("not found")
	// ErrDamaged is wrapped by every error that finds stored bytes
	// changed or missing: the node must not serve from them.
	ErrDamaged = errors.New("storage is damaged")
	// errChecksum says an entry's bytes differ from those written.
	errChecksum = errors.New("checksum mismatch: the stored bytes changed after they were written")
	// ErrNotPersisted is wrapped by every error of a log write that did
	// not reach the disk (a full disk, an I/O error); see Persisting.
	ErrNotPersisted = errors.New("could not write the raft log")
)

var (
	_ raft.LogStore          = (*Store)(nil)
	_ raft.StableStore       = (*Store)(nil)
	_ raft.MonotonicLogStore = (*Store)(nil)
	_ raft.MonotonicLogStore = Persisting{}
)

// IsMonotonic says that the log holds no gaps (raft.MonotonicLogStore):
// verifyLogFile refuses a log with one as damaged. Raft then removes a
// follower's whole log once it installs a snapshot from the leader, where
// it would otherwise keep the entries from before the snapshot and append
// those after it: a log with a hole, which the next start refuses.
func (s *Store) IsMonotonic() bool { return true }

// damaged wraps err as damage to file, at log entry index when it is not 0.
func damaged(file string, index uint64, err error) error {
	if index == 0 {
		return fmt.Errorf("%w: %s: %w", ErrDamaged, file, err)
	}
	return fmt.Errorf("%w: %s, entry %d: %w", ErrDamaged, file, index, err)
}

// guard runs f and turns a bbolt panic, or a memory fault while it reads
// the mapped file, into an error that says path is damaged.
func guard(path string, f func() error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			err = damaged(path, 0, fmt.Errorf("bbolt failed reading it: %v", r))
		}
	}()
	return f()
}

// OpenLog verifies the store in dir (if there is one), then opens it,
// creating it when there is none. A damaged store is an error wrapping
// ErrDamaged that names the file and, where it can, the entry.
func OpenLog(dir string, log *slog.Logger) (*Store, error) {
	path := filepath.Join(dir, "raft.db")
	if fi, err := os.Stat(path); err == nil && fi.Size() > 0 {
		start := time.Now()
		entries, err := verifyLogFile(path, fi.Size())
		if err != nil {
			return nil, err
		}
		log.Info("raft log verified", "file", path, "entries", entries, "took", time.Since(start))
	}
	var db *bolt.DB
	err := guard(path, func() error {
		var err error
		db, err = bolt.Open(path, 0o600, &bolt.Options{
			Timeout: 5 * time.Second,
			// The free list is rebuilt on open instead of written on every
			// commit: fewer pages per fsync on the hot path. Rebuilding it
			// walks and checks every reachable page (bbolt's own
			// consistency check), which verifyLogFile has made safe.
			NoFreelistSync: true,
			FreelistType:   bolt.FreelistMapType,
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open raft log %s: %w", path, err)
	}
	s := &Store{db: db, path: path, log: log}
	if err := s.init(dir); err != nil {
		db.Close()
		if s.stable != nil {
			s.stable.close()
		}
		return nil, err
	}
	return s, nil
}

// init creates the log bucket and opens the stable file, moving the term
// and vote there from the bbolt bucket older versions kept them in.
func (s *Store) init(dir string) error {
	var old map[string][]byte
	err := s.update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(bucketLogs); err != nil {
			return err
		}
		if b := tx.Bucket(bucketStable); b != nil {
			old = map[string][]byte{}
			return b.ForEach(func(k, v []byte) error {
				old[string(k)] = append([]byte(nil), v...)
				return nil
			})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("init raft log %s: %w", s.path, err)
	}
	if s.stable, err = openStableFile(filepath.Join(dir, "stable.dat"), old); err != nil {
		return err
	}
	if old == nil {
		return nil
	}
	// stable.dat is durable now; the bucket would only mislead.
	if err := s.update(func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketStable) }); err != nil {
		return fmt.Errorf("drop the migrated stable bucket of %s: %w", s.path, err)
	}
	s.log.Info("moved the raft term and vote out of the log file", "from", s.path, "to", s.stable.path)
	return nil
}

// verifyLogFile checks a store before it is opened for writing: the file
// is as long as its pages reach, every page bbolt reaches is readable,
// the log's keys are consecutive indexes and every entry passes its
// checksum. It returns how many entries it checked.
func verifyLogFile(path string, size int64) (int, error) {
	var entries int
	err := guard(path, func() error {
		db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
		switch {
		case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum), errors.Is(err, berrors.ErrVersionMismatch):
			// Both meta pages are unreadable.
			return damaged(path, 0, err)
		case err != nil:
			// Not damage: locked by another process, no permission.
			return fmt.Errorf("open raft log %s: %w", path, err)
		}
		defer db.Close()
		return db.View(func(tx *bolt.Tx) error {
			if used := tx.Size(); used > size {
				return damaged(path, 0, fmt.Errorf("the file holds %d bytes but its pages reach byte %d: it was truncated", size, used))
			}
			// Walking every bucket reads every page the read-write open
			// will walk, here, where a bad page is an error.
			err := tx.ForEach(func(name []byte, b *bolt.Bucket) error {
				if string(name) == string(bucketLogs) {
					n, err := verifyLogBucket(path, b)
					entries = n
					return err
				}
				return b.ForEach(func(_, _ []byte) error { return nil })
			})
			return err
		})
	})
	return entries, err
}

// verifyLogBucket checks every entry of the log bucket.
func verifyLogBucket(path string, b *bolt.Bucket) (int, error) {
	var prev uint64
	var l raft.Log
	n := 0
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if len(k) != 8 || v == nil {
			return n, damaged(path, prev+1, fmt.Errorf("a key of %d bytes where entry %d should follow", len(k), prev))
		}
		i := binary.BigEndian.Uint64(k)
		if prev != 0 && i != prev+1 {
			return n, damaged(path, prev+1, fmt.Errorf("missing: the log jumps from entry %d to %d", prev, i))
		}
		if err := decodeLog(i, v, &l); err != nil {
			return n, damaged(path, i, err)
		}
		prev = i
		n++
	}
	return n, nil
}

// Close closes the files.
func (s *Store) Close() error {
	return errors.Join(s.db.Close(), s.stable.close())
}

func (s *Store) view(f func(*bolt.Tx) error) error {
	return guard(s.path, func() error { return s.db.View(f) })
}

func (s *Store) update(f func(*bolt.Tx) error) error {
	return guard(s.path, func() error { return s.db.Update(f) })
}

func indexKey(i uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], i)
	return k[:]
}

// FirstIndex returns the first index written, 0 for an empty log.
func (s *Store) FirstIndex() (uint64, error) {
	var i uint64
	err := s.view(func(tx *bolt.Tx) error {
		if k, _ := tx.Bucket(bucketLogs).Cursor().First(); k != nil {
			i = binary.BigEndian.Uint64(k)
		}
		return nil
	})
	return i, err
}

// LastIndex returns the last index written, 0 for an empty log; a tail
// truncation waiting for its append is already left out.
func (s *Store) LastIndex() (uint64, error) {
	var i uint64
	err := s.view(func(tx *bolt.Tx) error {
		if k, _ := tx.Bucket(bucketLogs).Cursor().Last(); k != nil {
			i = binary.BigEndian.Uint64(k)
		}
		return nil
	})
	if tail := s.pendingTail(); err == nil && tail.holds(i) {
		i = tail.min - 1
	}
	return i, err
}

// GetLog reads the entry at index into l, checking its checksum. An entry
// of a tail truncation waiting for its append is not found.
func (s *Store) GetLog(index uint64, l *raft.Log) error {
	if s.pendingTail().holds(index) {
		return raft.ErrLogNotFound
	}
	return s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketLogs).Get(indexKey(index))
		if v == nil {
			return raft.ErrLogNotFound
		}
		if err := decodeLog(index, v, l); err != nil {
			return damaged(s.path, index, err)
		}
		return nil
	})
}

// StoreLog writes one entry.
func (s *Store) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

// StoreLogs writes entries in one transaction, together with the tail
// truncation waiting for them, if any: both happen or neither does, and
// either way the truncation is no longer pending. A write that succeeds
// ends a run of failed ones (see WriteHealth).
func (s *Store) StoreLogs(logs []*raft.Log) error {
	s.tailMu.Lock()
	tail := s.tail
	s.tail = nil
	s.tailMu.Unlock()
	err := s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLogs)
		if tail != nil {
			if err := deleteSpan(b, *tail); err != nil {
				return err
			}
		}
		for _, l := range logs {
			if err := b.Put(indexKey(l.Index), encodeLog(l)); err != nil {
				return fmt.Errorf("store raft log entry %d: %w", l.Index, err)
			}
		}
		return nil
	})
	s.noteWrite(err)
	return err
}

// DeleteRange removes the entries from..to, inclusive.
//
// Removing the log's tail (entries after the first, up to the last) is
// what a follower does to clear entries that conflict with its leader's,
// and raft always appends the leader's entries right after. That removal
// is held back and done in the append's transaction (StoreLogs): if the
// append fails (a full disk), the log keeps its tail, which is where
// hashicorp/raft still believes the log ends, since it updates its cached
// last entry only after a successful append. Removed at once, the log
// would end earlier than raft believes and every later append reaching
// past the real end would fail, for good (raft's appendEntries, "leaving
// r.getLastLog() in the wrong state"). Readers already see the log
// without the tail while it waits. A crash before the append leaves the
// tail on disk: the log the follower had before the leader's request,
// which it never answered.
//
// Removing the head (compaction after a snapshot) happens at once.
func (s *Store) DeleteRange(from, to uint64) error {
	first, err := s.FirstIndex()
	if err != nil {
		return err
	}
	last, err := s.LastIndex()
	if err != nil {
		return err
	}
	if from > first && from <= last && to >= last {
		s.tailMu.Lock()
		if s.tail == nil || from < s.tail.min {
			s.tail = &span{min: from, max: max(to, last)}
		}
		s.tailMu.Unlock()
		return nil
	}
	err = s.update(func(tx *bolt.Tx) error { return deleteSpan(tx.Bucket(bucketLogs), span{from, to}) })
	if err != nil {
		s.noteWrite(err)
	}
	return err
}

// deleteSpan removes the entries of p from the log bucket.
func deleteSpan(b *bolt.Bucket, p span) error {
	c := b.Cursor()
	for k, _ := c.Seek(indexKey(p.min)); k != nil && binary.BigEndian.Uint64(k) <= p.max; k, _ = c.Next() {
		if err := c.Delete(); err != nil {
			return fmt.Errorf("delete raft log entries %d-%d: %w", p.min, p.max, err)
		}
	}
	return nil
}

// noteWrite records the outcome of a log write. Only a successful append
// clears a failure: a deletion can succeed on a full disk (it frees pages)
// while appends still fail. The first failure of a run is logged in full,
// path included; the rest are only counted.
func (s *Store) noteWrite(err error) {
	if err == nil {
		if since := s.failingSince.Swap(0); since != 0 {
			s.log.Info("raft log writable again", "file", s.path, "failed_for", time.Since(time.Unix(0, since)).Round(time.Millisecond))
		}
		return
	}
	s.writeErrors.Add(1)
	reason := err.Error()
	if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
		reason = pe.Err.Error()
	}
	s.failReason.Store(&reason)
	if s.failingSince.CompareAndSwap(0, time.Now().UnixNano()) {
		s.log.Error("cannot write the raft log; not ready until a write succeeds", "file", s.path, "err", err)
	}
}

// WriteErrors counts the log writes that failed since the store opened.
func (s *Store) WriteErrors() uint64 { return s.writeErrors.Load() }

// WriteHealth says why the log cannot be written, or nil when the last
// append succeeded. The reason names no path: it is shown to whoever
// asks /readyz.
func (s *Store) WriteHealth() error {
	since := s.failingSince.Load()
	if since == 0 {
		return nil
	}
	reason := "unknown error"
	if r := s.failReason.Load(); r != nil {
		reason = *r
	}
	return fmt.Errorf("cannot write its raft log since %s: %s", time.Unix(0, since).UTC().Format(time.RFC3339), reason)
}

// Set stores a stable key.
func (s *Store) Set(key, val []byte) error { return s.stable.set(key, val) }

// Get reads a stable key.
func (s *Store) Get(key []byte) ([]byte, error) { return s.stable.get(key) }

// SetUint64 stores a stable number.
func (s *Store) SetUint64(key []byte, val uint64) error { return s.Set(key, indexKey(val)) }

// GetUint64 reads a stable number.
func (s *Store) GetUint64(key []byte) (uint64, error) {
	v, err := s.Get(key)
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("stable key %q holds %d bytes, not a number", key, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// Persisting wraps the log store raft writes through (above raft's
// LogCache, which keeps only the text of a store's error) so that a failed
// write reaches raft's futures, and from there the node's callers, as
// ErrNotPersisted.
type Persisting struct{ raft.LogStore }

// StoreLog writes one entry.
func (p Persisting) StoreLog(l *raft.Log) error { return p.StoreLogs([]*raft.Log{l}) }

// IsMonotonic is the wrapped store's (raft.MonotonicLogStore), which raft
// asks of the store it is given.
func (p Persisting) IsMonotonic() bool {
	m, ok := p.LogStore.(raft.MonotonicLogStore)
	return ok && m.IsMonotonic()
}

// StoreLogs writes entries, marking a failure as ErrNotPersisted.
func (p Persisting) StoreLogs(logs []*raft.Log) error {
	if err := p.LogStore.StoreLogs(logs); err != nil {
		return fmt.Errorf("%w: %w", ErrNotPersisted, err)
	}
	return nil
}

// Entry formats. Both start with the format byte, then term (uvarint) |
// type (byte) | appended-at (Unix ns, varint) | data length (uvarint) |
// data | extensions length (uvarint) | extensions. Format 2 ends with a
// CRC-32C (Castagnoli, big-endian) of the entry's 8-byte key followed by
// everything before the CRC, so a changed byte, a cut entry and an entry
// found under another index all fail the check. Format 1, written before
// checksums, is still read (nodes upgraded in place keep their logs) but
// never written.
const (
	logFormatPlain   = 1
	logFormatChecked = 2
	crcSize          = 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func entryCRC(index uint64, b []byte) uint32 {
	return crc32.Update(crc32.Checksum(indexKey(index), castagnoli), castagnoli, b)
}

func encodeLog(l *raft.Log) []byte {
	b := make([]byte, 0, 1+4*binary.MaxVarintLen64+1+len(l.Data)+len(l.Extensions)+crcSize)
	b = append(b, logFormatChecked)
	b = binary.AppendUvarint(b, l.Term)
	b = append(b, byte(l.Type))
	var at int64
	if !l.AppendedAt.IsZero() {
		at = l.AppendedAt.UnixNano()
	}
	b = binary.AppendVarint(b, at)
	b = binary.AppendUvarint(b, uint64(len(l.Data)))
	b = append(b, l.Data...)
	b = binary.AppendUvarint(b, uint64(len(l.Extensions)))
	b = append(b, l.Extensions...)
	return binary.BigEndian.AppendUint32(b, entryCRC(l.Index, b))
}

var errBadEntry = errors.New("malformed entry")

func decodeLog(index uint64, b []byte, l *raft.Log) error {
	if len(b) < 1 {
		return errBadEntry
	}
	switch b[0] {
	case logFormatPlain:
		b = b[1:]
	case logFormatChecked:
		if len(b) < 1+crcSize {
			return errChecksum
		}
		body, sum := b[:len(b)-crcSize], binary.BigEndian.Uint32(b[len(b)-crcSize:])
		if entryCRC(index, body) != sum {
			return errChecksum
		}
		b = body[1:]
	default:
		return fmt.Errorf("%w: unknown format %d", errBadEntry, b[0])
	}
	term, n := binary.Uvarint(b)
	if n <= 0 || len(b) < n+1 {
		return errBadEntry
	}
	typ := raft.LogType(b[n])
	b = b[n+1:]
	at, n := binary.Varint(b)
	if n <= 0 {
		return errBadEntry
	}
	b = b[n:]
	data, b, ok := bytesField(b)
	if !ok {
		return errBadEntry
	}
	ext, b, ok := bytesField(b)
	if !ok || len(b) != 0 {
		return errBadEntry
	}
	*l = raft.Log{Index: index, Term: term, Type: typ, Data: data, Extensions: ext}
	if at != 0 {
		l.AppendedAt = time.Unix(0, at)
	}
	return nil
}

// bytesField reads a length-prefixed field, copying it out of the
// transaction's memory (which is only valid until the transaction ends).
func bytesField(b []byte) (field, rest []byte, ok bool) {
	size, n := binary.Uvarint(b)
	if n <= 0 || uint64(len(b)-n) < size {
		return nil, nil, false
	}
	b = b[n:]
	if size > 0 {
		field = append([]byte(nil), b[:size]...)
	}
	return field, b[size:], true
}
