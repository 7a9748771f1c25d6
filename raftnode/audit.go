package raftnode

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/hangman/hangman/services/game"
)

// stateAudit digests the whole game state at every log index that is a
// multiple of every (Config.AuditEvery), so that replicas can be compared
// where the public room states cannot show a difference: the sessions
// each room remembers, its history, the refusals of requests to missing
// rooms. Every replica that applies the log digests the same indexes, so
// two digests of one index must be equal; the chaos harness compares them
// across the nodes' logs.
//
// The state after index p is known while the FSM's state has applied
// every command up to p and none after it: from the last index that
// changed it (game.Machine.Applied) until the next entry it applies.
// Entries that change nothing (raft's own, leader markers) do not
// interrupt that, nor does a snapshot restored past p's predecessors: a
// node digests p when it holds that state, whether by applying or by
// restoring, and skips p when it never does (a snapshot installed past
// it).
type stateAudit struct {
	every uint64
	// dir, if set, receives each audited state's bytes, so that a
	// mismatch can be diffed.
	dir string
	log *slog.Logger
	// last is the highest index audited.
	last uint64
	// input digests the commands applied since the last audit (their
	// indexes and bytes), so that where two replicas' states part, the
	// audit also says whether they were handed the same entries (a
	// difference of logs) or not (a difference of state machines).
	// partial is set while the window holds less than all of them, since a
	// snapshot was restored in it.
	input   hash.Hash
	partial bool
}

// audited is the state serialised for one or more audit indexes (more
// than one only when no command fell between them), and the digest of the
// commands applied since the previous audit up to the first of them
// ("" where the window is partial); the later ones had none.
type audited struct {
	indexes []uint64
	data    []byte
	input   string
}

// emptyInput is the input digest of a window without commands.
var emptyInput = hex.EncodeToString(sha256.New().Sum(nil))

// feed adds the command entry at index to the window of the next audit.
func (a *stateAudit) feed(index uint64, data []byte) {
	if a.input == nil {
		a.input = sha256.New()
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], index)
	a.input.Write(b[:])
	binary.BigEndian.PutUint64(b[:], uint64(len(data)))
	a.input.Write(b[:])
	a.input.Write(data)
}

// restored marks the window partial: a snapshot replaced the state, and
// the commands it stands for were never fed.
func (a *stateAudit) restored() { a.partial = true }

// window returns the digest of the window, "" if partial, and starts the
// next one.
func (a *stateAudit) window() string {
	d := emptyInput
	if a.input != nil {
		d = hex.EncodeToString(a.input.Sum(nil))
		a.input.Reset()
	}
	if a.partial {
		d = ""
	}
	a.partial = false
	return d
}

// collect serialises m for every audit index in [m.Applied(), hi] not yet
// audited, and appends it to out. The caller holds the FSM's lock and has
// applied no entry past hi.
func (a *stateAudit) collect(m *game.Machine, hi uint64, out []audited) []audited {
	lo := max(m.Applied(), a.last+1, 1)
	first := (lo + a.every - 1) / a.every * a.every
	if first > hi {
		return out
	}
	var idx []uint64
	for p := first; p <= hi; p += a.every {
		idx = append(idx, p)
	}
	a.last = idx[len(idx)-1]
	var buf bytes.Buffer
	if err := m.Snapshot(&buf); err != nil {
		a.log.Error("state audit failed", "index", idx[0], "err", err)
		return out
	}
	return append(out, audited{indexes: idx, data: buf.Bytes(), input: a.window()})
}

// emit logs the digest of each audited state and writes its bytes to dir.
// It runs outside the FSM's lock.
func (a *stateAudit) emit(states []audited) {
	for _, s := range states {
		digest := stateDigest(s.data)
		for i, p := range s.indexes {
			input := s.input
			if i > 0 {
				input = emptyInput
			}
			a.log.Info("state audit", "index", p, "digest", digest, "input", input)
			if a.dir == "" {
				continue
			}
			if err := writeAudit(a.dir, p, digest, s.data); err != nil {
				a.log.Warn("state audit not written", "index", p, "err", err)
			}
		}
	}
}

// stateDigest is the hex SHA-256 of a serialised game state.
func stateDigest(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// writeAudit writes the state audited at index to dir. The name carries
// the digest's start: a node that audits an index again (after a restart
// it replays its log) keeps both states if they differ.
func writeAudit(dir string, index uint64, digest string, data []byte) error {
	path := filepath.Join(dir, fmt.Sprintf("audit-%d-%s.json", index, digest[:12]))
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("write state audit: %w", err)
	}
	return nil
}

// digest returns the digest of the whole game state and the index of the
// last command it applied, read together under the read lock: what
// Status reports when asked (StatusRequest.state_digest).
func (f *fsm) digest() (string, uint64, error) {
	f.mu.RLock()
	var buf bytes.Buffer
	err := f.machine.Snapshot(&buf)
	applied := f.machine.Applied()
	f.mu.RUnlock()
	if err != nil {
		return "", 0, fmt.Errorf("digest game state: %w", err)
	}
	return stateDigest(buf.Bytes()), applied, nil
}
