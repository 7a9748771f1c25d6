package game

import (
	"encoding/binary"
)

// A log entry carries either one command (Command.Encode: version byte 4,
// or 3 in logs written before tokens) or a batch of them (EncodeBatch:
// version byte 2, then the encoded commands, each with its length).
// Batches are how a leader under load commits many commands for the price
// of one entry: one append, one replication message and one fsync per
// follower carry them all.
const batchVersion = 2

// MaxBatchCommands bounds the commands of one batch entry.
const MaxBatchCommands = 1024

// EncodeBatch frames commands encoded by Command.Encode as one log entry.
//
// The commands of an entry are applied in order at the entry's index, so
// they must address different rooms: a room's seq is the index of the
// entry that last changed it, and two changes at one index would share a
// seq. ApplyEntry refuses a second command for a room already addressed by
// the same entry.
func EncodeBatch(cmds [][]byte) []byte {
	n := 1 + binary.MaxVarintLen64
	for _, c := range cmds {
		n += binary.MaxVarintLen64 + len(c)
	}
	b := make([]byte, 0, n)
	b = append(b, batchVersion)
	b = binary.AppendUvarint(b, uint64(len(cmds)))
	for _, c := range cmds {
		b = binary.AppendUvarint(b, uint64(len(c)))
		b = append(b, c...)
	}
	return b
}

// IsBatch reports whether entry is a batch written by EncodeBatch (it may
// still be malformed).
func IsBatch(entry []byte) bool { return len(entry) > 0 && entry[0] == batchVersion }

// splitBatch returns the encoded commands of a batch entry. It never
// panics, whatever the bytes.
func splitBatch(entry []byte) ([][]byte, error) {
	b := entry[1:]
	n, k := binary.Uvarint(b)
	if k <= 0 || n == 0 || n > MaxBatchCommands {
		return nil, errorf(CodeInvalid, "batch entry: bad command count")
	}
	b = b[k:]
	cmds := make([][]byte, 0, n)
	for range n {
		l, k := binary.Uvarint(b)
		if k <= 0 || l == 0 || l > MaxCommandSize || l > uint64(len(b)-k) {
			return nil, errorf(CodeInvalid, "batch entry: bad command length")
		}
		cmds = append(cmds, b[k:k+int(l)])
		b = b[k+int(l):]
	}
	if len(b) != 0 {
		return nil, errorf(CodeInvalid, "batch entry: %d bytes of trailing data", len(b))
	}
	return cmds, nil
}

// ApplyEntry applies the log entry at index, one command or a batch, and
// returns one Result per command, in order. A batch whose framing does not
// decode is refused whole, as a single invalid command: deterministically,
// on every replica, without changing anything.
func (m *Machine) ApplyEntry(index uint64, entry []byte) []Result {
	return m.applyEntry(index, entry, true)
}

// ApplyEntryQuiet applies the entry at index as ApplyEntry does, leaving
// the Machine exactly as ApplyEntry would, but builds no State for the
// results: a replica whose results nobody reads (a follower, which
// neither answers callers nor publishes) skips building the public state
// of every room each command changes.
func (m *Machine) ApplyEntryQuiet(index uint64, entry []byte) []Result {
	return m.applyEntry(index, entry, false)
}

func (m *Machine) applyEntry(index uint64, entry []byte, states bool) []Result {
	if !IsBatch(entry) {
		return []Result{m.apply(index, entry, states)}
	}
	m.applied = max(m.applied, index)
	cmds, err := splitBatch(entry)
	if err != nil {
		return []Result{{Err: err}}
	}
	out := make([]Result, len(cmds))
	seen := make(map[string]bool, len(cmds))
	for i, raw := range cmds {
		c, err := DecodeCommand(raw)
		switch {
		case err != nil:
			out[i] = Result{Err: err}
		case seen[c.Room]:
			out[i] = Result{Err: errorf(CodeInvalid, "room %q is addressed twice in the batch at index %d", c.Room, index), Room: c.Room}
		default:
			seen[c.Room] = true
			out[i] = m.applyCommand(index, c, states)
		}
	}
	return out
}
