package raftnode

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// lastIndexInDir opens a stopped node's raft log and reports its last index.
func lastIndexInDir(dataDir string) (uint64, error) {
	s, err := openLogStore(filepath.Join(dataDir, "raft", "raft.db"))
	if err != nil {
		return 0, err
	}
	defer s.Close()
	return s.LastIndex()
}

func entries(from, to uint64) []*raft.Log {
	var out []*raft.Log
	for i := from; i <= to; i++ {
		out = append(out, &raft.Log{Index: i, Term: 1 + i/4, Type: raft.LogCommand, Data: []byte{byte(i), 1, 2},
			Extensions: []byte("x"), AppendedAt: time.Unix(0, int64(i)*1e9)})
	}
	return out
}

func TestLogStoreKeepsEntriesAcrossReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft.db")
	s, err := openLogStore(path)
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
	// A deposed leader clears its uncommitted suffix, a snapshot compacts
	// the head; then the process dies and comes back.
	if err := s.DeleteRange(15, 20); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRange(1, 4); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err = openLogStore(path)
	if err != nil {
		t.Fatalf("reopen after truncating the tail: %v", err)
	}
	defer s.Close()
	first, _ := s.FirstIndex()
	last, _ := s.LastIndex()
	if first != 5 || last != 14 {
		t.Fatalf("after reopen first %d last %d, want 5 and 14", first, last)
	}
	want := entries(5, 14)
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
	if err := s.GetLog(15, &l); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("deleted entry: %v", err)
	}
	if term, err := s.GetUint64([]byte("CurrentTerm")); err != nil || term != 7 {
		t.Fatalf("stable term %d, %v", term, err)
	}
	if _, err := s.Get([]byte("missing")); err == nil || err.Error() != "not found" {
		t.Fatalf("missing stable key: %v (raft needs the text \"not found\")", err)
	}
	// The log can grow again past the truncated tail.
	if err := s.StoreLogs(entries(15, 16)); err != nil {
		t.Fatal(err)
	}
	if last, _ := s.LastIndex(); last != 16 {
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
