package raftnode

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/hangman/hangman/raftnode/raftstore"
	"github.com/hangman/hangman/services/api"
)

// failingStore fails every write the way a full disk fails bbolt.
type failingStore struct{ raft.LogStore }

func (failingStore) StoreLogs([]*raft.Log) error {
	return fmt.Errorf("store raft log entry 7: %w", &os.PathError{Op: "write", Path: "/data/n1/raft/raft.db", Err: errors.New("no space left on device")})
}

// TestUnpersistedWriteIsAnUnknownOutcomeWithoutAPath: a write that failed
// below raft's LogCache (which keeps only the error's text) reaches the
// caller as outcome unknown, and names no server path.
func TestUnpersistedWriteIsAnUnknownOutcomeWithoutAPath(t *testing.T) {
	cache, err := raft.NewLogCache(16, failingStore{})
	if err != nil {
		t.Fatal(err)
	}
	stored := raftstore.Persisting{LogStore: cache}.StoreLogs([]*raft.Log{{Index: 7, Term: 2, Type: raft.LogCommand, Data: []byte{1}}})
	err = applyError(stored)
	if !errors.Is(err, api.ErrUnknownOutcome) || strings.Contains(err.Error(), "/data") {
		t.Fatalf("failed write %q became %q; want outcome unknown without the path", stored, err)
	}
}
