package raftstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"

	"github.com/hangman/hangman/internal/testdisk"
)

func entries(from, to uint64) []*raft.Log {
	var out []*raft.Log
	for i := from; i <= to; i++ {
		out = append(out, &raft.Log{Index: i, Term: 1 + i/4, Type: raft.LogCommand, Data: []byte{byte(i), 1, 2},
			Extensions: []byte("x"), AppendedAt: time.Unix(0, int64(i)*1e9)})
	}
	return out
}

func TestLogStoreKeepsEntriesAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenLog(dir, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if first, _ := s.FirstIndex(); first != 0 {
		t.Fatalf("empty store first index %d", first)
	}
	if err := s.StoreLogs(entries(1, 20)); err != nil {
		t.Fatal(err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 7); err != nil {
		t.Fatal(err)
	}
	// A deposed leader clears its uncommitted suffix and appends its new
	// leader's entries, a snapshot compacts the head; then the process
	// dies and comes back.
	if err := s.DeleteRange(15, 20); err != nil {
		t.Fatal(err)
	}
	newer := entries(15, 16)
	for _, e := range newer {
		e.Term = 99
	}
	if err := s.StoreLogs(newer); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRange(1, 4); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err = OpenLog(dir, testLogger(t))
	if err != nil {
		t.Fatalf("reopen after truncating the tail: %v", err)
	}
	defer s.Close()
	first, _ := s.FirstIndex()
	last, _ := s.LastIndex()
	if first != 5 || last != 16 {
		t.Fatalf("after reopen first %d last %d, want 5 and 16", first, last)
	}
	want := append(entries(5, 14), newer...)
	for _, w := range want {
		var got raft.Log
		if err := s.GetLog(w.Index, &got); err != nil {
			t.Fatalf("get %d: %v", w.Index, err)
		}
		if got.Index != w.Index || got.Term != w.Term || got.Type != w.Type || !bytes.Equal(got.Data, w.Data) ||
			!bytes.Equal(got.Extensions, w.Extensions) || !got.AppendedAt.Equal(w.AppendedAt) {
			t.Fatalf("entry %d: got %+v want %+v", w.Index, got, *w)
		}
	}
	var l raft.Log
	if err := s.GetLog(17, &l); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("deleted entry: %v", err)
	}
	if term, err := s.GetUint64([]byte("CurrentTerm")); err != nil || term != 7 {
		t.Fatalf("stable term %d, %v", term, err)
	}
	if _, err := s.Get([]byte("missing")); err == nil || err.Error() != "not found" {
		t.Fatalf("missing stable key: %v (raft needs the text \"not found\")", err)
	}
	// The log can grow again past the truncated tail.
	if err := s.StoreLogs(entries(17, 18)); err != nil {
		t.Fatal(err)
	}
	if last, _ := s.LastIndex(); last != 18 {
		t.Fatalf("last %d after appending again", last)
	}
}

func TestDecodeLogRefusesDamagedEntries(t *testing.T) {
	good := encodeLog(entries(3, 3)[0])
	for i := range good {
		var l raft.Log
		if err := decodeLog(3, good[:i], &l); err == nil {
			t.Fatalf("a %d-byte prefix of a %d-byte entry decoded", i, len(good))
		}
	}
	var l raft.Log
	if err := decodeLog(3, append(append([]byte(nil), good...), 0), &l); err == nil {
		t.Fatal("trailing byte accepted")
	}
}

// TestDecodeLogRefusesChangedEntries: every single-bit change of a stored
// entry, and an entry read under another index, fails the checksum.
func TestDecodeLogRefusesChangedEntries(t *testing.T) {
	good := encodeLog(entries(3, 3)[0])
	for i := range good {
		for bit := range 8 {
			b := append([]byte(nil), good...)
			b[i] ^= 1 << bit
			var l raft.Log
			if err := decodeLog(3, b, &l); err == nil {
				t.Fatalf("entry with byte %d bit %d flipped decoded: %+v", i, bit, l)
			}
		}
	}
	var l raft.Log
	if err := decodeLog(4, good, &l); !errors.Is(err, errChecksum) {
		t.Fatalf("entry 3 read as entry 4: %v", err)
	}
}

// v1Entry is entries(3, 3)[0] as the store wrote it before entries
// carried a checksum (format 1): what volumes of older versions hold.
var v1Entry = []byte{1, 1, 0, 128, 248, 130, 173, 22, 3, 3, 1, 2, 1, 'x'}

// TestLogStoreReadsStoresWrittenBeforeChecksums opens a raft.db laid out
// as older versions wrote it (format-1 entries, term and vote in a bbolt
// bucket): the entries read back, the term and vote move to stable.dat,
// and new entries are written with a checksum.
func TestLogStoreReadsStoresWrittenBeforeChecksums(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "raft.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		logs, err := tx.CreateBucket(bucketLogs)
		if err != nil {
			return err
		}
		if err := logs.Put(indexKey(3), v1Entry); err != nil {
			return err
		}
		st, err := tx.CreateBucket(bucketStable)
		if err != nil {
			return err
		}
		if err := st.Put([]byte("CurrentTerm"), indexKey(9)); err != nil {
			return err
		}
		return st.Put([]byte("LastVoteCand"), []byte("n2"))
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()

	for round := range 2 { // migrate, then open the migrated store
		s, err := OpenLog(dir, testLogger(t))
		if err != nil {
			t.Fatalf("open (round %d): %v", round, err)
		}
		var l raft.Log
		if err := s.GetLog(3, &l); err != nil {
			t.Fatalf("read a format-1 entry: %v", err)
		}
		want := entries(3, 3)[0]
		if l.Term != want.Term || !bytes.Equal(l.Data, want.Data) || !bytes.Equal(l.Extensions, want.Extensions) || !l.AppendedAt.Equal(want.AppendedAt) {
			t.Fatalf("format-1 entry read as %+v, want %+v", l, *want)
		}
		if term, err := s.GetUint64([]byte("CurrentTerm")); err != nil || term != 9 {
			t.Fatalf("term %d, %v after migration", term, err)
		}
		if v, err := s.Get([]byte("LastVoteCand")); err != nil || string(v) != "n2" {
			t.Fatalf("vote %q, %v after migration", v, err)
		}
		if round == 0 {
			if err := s.StoreLogs(entries(4, 4)); err != nil {
				t.Fatal(err)
			}
		}
		err = s.view(func(tx *bolt.Tx) error {
			if tx.Bucket(bucketStable) != nil {
				return errors.New("the old stable bucket is still there")
			}
			if v := tx.Bucket(bucketLogs).Get(indexKey(4)); len(v) == 0 || v[0] != logFormatChecked {
				return fmt.Errorf("a new entry was written as %v", v)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
}

// TestStableFileKeepsThePreviousCopyOfATornWrite damages the newest copy
// of the term, as a write torn by a crash would: the previous copy is
// used. With both copies damaged the store refuses to open, naming the
// file.
func TestStableFileKeepsThePreviousCopyOfATornWrite(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenLog(dir, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	for term := uint64(1); term <= 5; term++ {
		if err := s.SetUint64([]byte("CurrentTerm"), term); err != nil {
			t.Fatal(err)
		}
	}
	newest := int64(s.stable.seq%2) * stableSlotSize
	s.Close()
	path := filepath.Join(dir, "stable.dat")
	damage := func(off int64) {
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteAt([]byte("torn"), off+20); err != nil {
			t.Fatal(err)
		}
	}
	damage(newest)
	s, err = OpenLog(dir, testLogger(t))
	if err != nil {
		t.Fatalf("open with the newest copy torn: %v", err)
	}
	if term, err := s.GetUint64([]byte("CurrentTerm")); err != nil || term != 4 {
		t.Fatalf("term %d, %v; want the previous copy, 4", term, err)
	}
	s.Close()
	damage(stableSlotSize - newest)
	_, err = OpenLog(dir, testLogger(t))
	if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), path) {
		t.Fatalf("both copies damaged: %v; want damage named %s", err, path)
	}
}

// TestLogStoreRefusesAHoleInTheLog deletes one entry from the middle
// behind raft's back: the verification at open names it.
func TestLogStoreRefusesAHoleInTheLog(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenLog(dir, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.StoreLogs(entries(1, 10)); err != nil {
		t.Fatal(err)
	}
	if err := s.update(func(tx *bolt.Tx) error { return tx.Bucket(bucketLogs).Delete(indexKey(6)) }); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err = OpenLog(dir, testLogger(t))
	if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "entry 6") {
		t.Fatalf("open with entry 6 missing: %v", err)
	}
}

// BenchmarkVerifyLogFile measures the check every start makes, over a log
// of 10,000 entries the size of a batch of guesses.
func BenchmarkVerifyLogFile(b *testing.B) {
	dir := b.TempDir()
	s, err := OpenLog(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 512)
	for from := uint64(1); from <= 10000; from += 500 {
		var batch []*raft.Log
		for i := from; i < from+500; i++ {
			binary.BigEndian.PutUint64(data, i)
			batch = append(batch, &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: append([]byte(nil), data...)})
		}
		if err := s.StoreLogs(batch); err != nil {
			b.Fatal(err)
		}
	}
	s.Close()
	path := filepath.Join(dir, "raft.db")
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		n, err := verifyLogFile(path, fi.Size())
		if err != nil || n != 10000 {
			b.Fatalf("verified %d entries: %v", n, err)
		}
	}
}

// TestTailTruncationTakesEffectWithTheAppendThatFollows: a follower
// clearing a conflicting tail (raft's appendEntries: DeleteRange, then
// StoreLogs) whose append then fails on a full disk must be left with the
// tail it had. hashicorp/raft does not update its cached last entry after
// the failed append, so a log that lost its tail anyway disagrees with
// raft about where it ends: every later append that reaches past the real
// end fails "failed to get log entry", and the leader can never replicate
// to the follower again until it restarts.
func TestTailTruncationTakesEffectWithTheAppendThatFollows(t *testing.T) {
	disk := testdisk.Small(t, 2<<20)
	s, err := OpenLog(disk, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.StoreLogs(entries(1, 20)); err != nil {
		t.Fatal(err)
	}
	// Pending until the append: reads already see the log without its tail.
	if err := s.DeleteRange(15, 20); err != nil {
		t.Fatal(err)
	}
	var l raft.Log
	if last, _ := s.LastIndex(); last != 14 {
		t.Fatalf("last index %d after clearing the tail, want 14", last)
	}
	if err := s.GetLog(15, &l); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("a cleared entry: %v", err)
	}
	replaced := func(from, to uint64, term uint64) []*raft.Log {
		out := entries(from, to)
		for _, e := range out {
			e.Term, e.Data = term, bytes.Repeat([]byte{'r'}, 64<<10)
		}
		return out
	}
	if err := s.StoreLogs(replaced(15, 16, 9)); err != nil {
		t.Fatal(err)
	}
	if last, _ := s.LastIndex(); last != 16 {
		t.Fatalf("last index %d after the append, want 16", last)
	}
	if err := s.GetLog(16, &l); err != nil || l.Term != 9 {
		t.Fatalf("appended entry 16: term %d, %v", l.Term, err)
	}

	// Now the disk is full: the next tail's append fails.
	defer testdisk.Fill(t, disk)()
	last := uint64(16)
	for ; ; last++ {
		if last > 2000 {
			t.Fatal("2000 appends of 64 KiB went to a full 2 MiB disk")
		}
		if err := s.StoreLogs(replaced(last+1, last+1, 9)); err != nil {
			break
		}
	}
	if err := s.DeleteRange(last-1, last); err != nil {
		t.Fatalf("clearing the tail on a full disk: %v", err)
	}
	if err := s.StoreLogs(replaced(last-1, last+8, 10)); err == nil {
		t.Fatal("an append of 640 KiB succeeded on a full disk")
	}
	if got, _ := s.LastIndex(); got != last {
		t.Fatalf("last index %d after the failed append, want %d: the tail went without its replacement", got, last)
	}
	if err := s.GetLog(last, &l); err != nil || l.Term != 9 {
		t.Fatalf("entry %d after the failed append: term %d, %v; want the old entry (term 9)", last, l.Term, err)
	}
}

func testLogger(t *testing.T) *slog.Logger {
	t.Helper()
	return slog.New(slog.DiscardHandler)
}
