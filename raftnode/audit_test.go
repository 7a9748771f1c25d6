package raftnode

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/hangman/hangman/services/game"
)

// auditEntries is a log of n indexes for the audit tests: a room, players
// joining, guesses and new rounds with request ids (every fifth repeats
// the one before, so that answers are remembered and replayed), refusals,
// leader markers, and indexes that never reach the FSM (raft's no-ops).
// The entry at index differ, if not 0, guesses another letter.
func auditEntries(n, differ uint64) []*raft.Log {
	var out []*raft.Log
	letters := "etaoinshrdlucmfwypvbgkjqxz"
	for i := uint64(1); i <= n; i++ {
		id := fmt.Sprintf("req%d", i)
		if i%5 == 0 {
			id = fmt.Sprintf("req%d", i-1)
		}
		var c game.Command
		switch {
		case i == 1:
			c = game.Command{Kind: game.KindCreateRoom, Room: "r1", Word: "apple"}
		case i%11 == 0:
			continue // a no-op: raft keeps it from the FSM
		case i%13 == 0:
			out = append(out, &raft.Log{Index: i, Type: raft.LogCommand, Data: leaderMarker})
			continue
		case i < 5:
			c = game.Command{Kind: game.KindJoinRoom, Room: "r1", Player: fmt.Sprintf("p%d", i-1), Name: fmt.Sprintf("P%d", i-1)}
		case i%9 == 0:
			c = game.Command{Kind: game.KindNewRound, Room: "r1", Word: "banana"}
		default:
			letter := string(letters[i%uint64(len(letters))])
			if i == differ {
				letter = map[bool]string{true: "x", false: "z"}[letter != "x"]
			}
			c = game.Command{Kind: game.KindGuess, Room: "r1", Player: fmt.Sprintf("p%d", 1+i%3), Letter: letter}
		}
		c.RequestID, c.At = id, int64(i)
		out = append(out, &raft.Log{Index: i, Type: raft.LogCommand, Data: c.Encode()})
	}
	return out
}

// auditFSM is an FSM auditing every `every` indexes, and what it logged.
func auditFSM(t *testing.T, every uint64, dir string) (*fsm, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	f := newFSM()
	f.audit = &stateAudit{every: every, dir: dir, log: slog.New(slog.NewJSONHandler(&logs, nil))}
	return f, &logs
}

// feed applies entries to f in batches of size.
func feed(f *fsm, entries []*raft.Log, size int) {
	for len(entries) > 0 {
		k := min(size, len(entries))
		f.ApplyBatch(entries[:k])
		entries = entries[k:]
	}
}

// auditLines parses the "state audit" lines of a log: the state digest
// and the input digest ("" for a window a snapshot cut short) by index. A
// second audit of an index must agree with the first, and every line must
// carry an input.
func auditLines(t *testing.T, logs *bytes.Buffer) (digests, inputs map[uint64]string) {
	t.Helper()
	digests, inputs = map[uint64]string{}, map[uint64]string{}
	sc := bufio.NewScanner(bytes.NewReader(logs.Bytes()))
	for sc.Scan() {
		var line struct {
			Msg    string  `json:"msg"`
			Index  uint64  `json:"index"`
			Digest string  `json:"digest"`
			Input  *string `json:"input"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		if line.Msg != "state audit" {
			continue
		}
		if d, ok := digests[line.Index]; ok && d != line.Digest {
			t.Fatalf("index %d audited twice with digests %s and %s", line.Index, d, line.Digest)
		}
		if line.Input == nil {
			t.Fatalf("audit line %q has no input digest", sc.Text())
		}
		digests[line.Index], inputs[line.Index] = line.Digest, *line.Input
	}
	return digests, inputs
}

// audits is the state digest by index of auditLines.
func audits(t *testing.T, logs *bytes.Buffer) map[uint64]string {
	t.Helper()
	d, _ := auditLines(t, logs)
	return d
}

// inputs is the input digest by index of auditLines.
func inputs(t *testing.T, logs *bytes.Buffer) map[uint64]string {
	t.Helper()
	_, in := auditLines(t, logs)
	return in
}

// TestStateAuditAgreesAcrossReplicas: FSMs fed the same log, in batches
// of any size or through a snapshot restored midway, log equal digests at
// the same indexes, every multiple of the period including those whose
// entry never reached the FSM; a restored FSM audits from its snapshot
// on. An FSM fed one different entry agrees before it and differs at the
// next audit.
func TestStateAuditAgreesAcrossReplicas(t *testing.T) {
	const n, every = 120, 10
	entries := auditEntries(n, 0)
	want := map[uint64]bool{}
	for p := uint64(every); p <= n; p += every {
		want[p] = true
	}
	dir := t.TempDir()
	ref, refLogs := auditFSM(t, every, dir)
	feed(ref, entries, 1)
	refAudits := audits(t, refLogs)
	if len(refAudits) != len(want) {
		t.Fatalf("audited %v, want every multiple of %d up to %d", refAudits, every, n)
	}
	for p, d := range refAudits {
		if !want[p] {
			t.Fatalf("audited index %d, not a multiple of %d", p, every)
		}
		files, err := filepath.Glob(filepath.Join(dir, fmt.Sprintf("audit-%d-*.json", p)))
		if err != nil || len(files) != 1 {
			t.Fatalf("audit files of index %d: %v %v", p, files, err)
		}
		data, err := os.ReadFile(files[0])
		if err != nil {
			t.Fatal(err)
		}
		if stateDigest(data) != d {
			t.Fatalf("audit file %s does not have digest %s", files[0], d)
		}
	}

	t.Run("batched", func(t *testing.T) {
		for _, size := range []int{2, 7, 64} {
			f, logs := auditFSM(t, every, "")
			feed(f, entries, size)
			if got := audits(t, logs); !maps.Equal(got, refAudits) {
				t.Fatalf("batches of %d audited %v, want %v", size, got, refAudits)
			}
		}
	})

	t.Run("restored", func(t *testing.T) {
		// A snapshot taken after index 57 (the FSM applied up to 56 as
		// commands; 57 changed nothing more), restored on a new node
		// that then applies the rest.
		cut := 0
		for cut < len(entries) && entries[cut].Index <= 57 {
			cut++
		}
		got := audits(t, restoredAt(t, entries, cut, every))
		for p, d := range got {
			if refAudits[p] != d {
				t.Fatalf("restored FSM audited %d as %s, the reference as %s", p, d, refAudits[p])
			}
		}
		for p := range refAudits {
			if _, ok := got[p]; !ok && p > 57 {
				t.Fatalf("restored FSM skipped index %d past its snapshot", p)
			}
		}
	})

	t.Run("different entry", func(t *testing.T) {
		const differ = 23
		f, logs := auditFSM(t, every, "")
		feed(f, auditEntries(n, differ), 4)
		got := audits(t, logs)
		for p := uint64(every); p <= 30; p += every {
			if same := got[p] == refAudits[p]; same != (p < differ) {
				t.Fatalf("index %d: digest equal to the reference: %v, want %v (entry %d differs)", p, same, p < differ, differ)
			}
		}
	})

	t.Run("status digest", func(t *testing.T) {
		// The last entry fed is index 120, an audit index and a command.
		digest, applied, err := ref.digest()
		if err != nil {
			t.Fatal(err)
		}
		if applied != n || digest != refAudits[n] {
			t.Fatalf("digest %s at %d, want the audit of %d: %s", digest, applied, n, refAudits[n])
		}
	})
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

// restoredAt snapshots a state machine fed entries[:cut], restores the
// snapshot on a new one that audits every every indexes, feeds it the
// rest, and returns its log: a node that joined by a snapshot.
func restoredAt(t *testing.T, entries []*raft.Log, cut int, every uint64) *bytes.Buffer {
	t.Helper()
	src := newFSM()
	feed(src, entries[:cut], 5)
	snap, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	f, logs := auditFSM(t, every, "")
	if err := f.Restore(readCloser(snap.(snapshot))); err != nil {
		t.Fatal(err)
	}
	feed(f, entries[cut:], 3)
	return logs
}

func readCloser(b []byte) nopCloser { return nopCloser{bytes.NewReader(b)} }

// TestStateAuditSaysWhetherInputsDiffer: each audit also digests the
// commands applied since the previous one, so that where two replicas'
// states part it tells entries that differed (a difference of logs) from
// equal entries applied differently (a difference of state machines). The
// window is the same whatever the batching, marked partial ("") after a
// snapshot restore, and differs only where an entry did.
func TestStateAuditSaysWhetherInputsDiffer(t *testing.T) {
	const n, every, differ = 120, 10, 23
	entries := auditEntries(n, 0)
	ref, refLogs := auditFSM(t, every, "")
	feed(ref, entries, 1)
	want := inputs(t, refLogs)
	if len(want) != n/every {
		t.Fatalf("inputs %v, want one per audit", want)
	}
	batched, logs := auditFSM(t, every, "")
	feed(batched, entries, 7)
	if got := inputs(t, logs); !maps.Equal(got, want) {
		t.Fatalf("batches of 7: inputs %v, want %v", got, want)
	}

	other, logs := auditFSM(t, every, "")
	feed(other, auditEntries(n, differ), 4)
	got := inputs(t, logs)
	for p := uint64(every); p <= n; p += every {
		// Only the window holding entry 23 (the audit of 30) differs.
		if same := got[p] == want[p]; same != (p != 30) {
			t.Fatalf("index %d: input equal to the reference: %v, want %v", p, same, p != 30)
		}
	}

	got = inputs(t, restoredAt(t, entries, 45, every))
	first := uint64(0)
	for p := range got {
		if first == 0 || p < first {
			first = p
		}
	}
	if first == 0 || got[first] != "" {
		t.Fatalf("first audit after a restore: %d with input %q, want a partial window", first, got[first])
	}
	for p, in := range got {
		if p != first && in != want[p] {
			t.Fatalf("restored FSM: index %d input %q, want %q", p, in, want[p])
		}
	}
}
