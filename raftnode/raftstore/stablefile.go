package raftstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
)

// stableFile holds raft's stable store (the current term and the vote) in
// a file of its own, stable.dat, and not in raft.db, because of full
// disks: raft panics when it cannot persist a new term (raft.go,
// setCurrentTerm), so a node whose disk filled up would crash at the next
// election instead of waiting, unready, for space. stable.dat has a fixed
// size and is written in place, so once created it needs no new blocks
// (on tmpfs, ext4, xfs; not on copy-on-write file systems).
//
// It holds two copies, in two slots of stableSlotSize bytes, as bbolt
// keeps two meta pages: a write goes to the slot holding the older copy,
// so a write torn by a crash (one that never returned) leaves the other,
// previous copy whole. A copy is: "HMST" | sequence (uint64) | payload
// length (uint32) | payload | CRC-32C of everything before it; the
// payload is the keys in order, each as key length (uvarint) | key |
// value length (uvarint) | value. Open uses the valid copy with the
// higher sequence, and refuses a file with none.
type stableFile struct {
	path string

	mu   sync.Mutex
	f    *os.File
	seq  uint64
	vals map[string][]byte
}

const (
	stableSlotSize = 4096
	stableMagic    = "HMST"
	stableHeader   = len(stableMagic) + 8 + 4
)

// openStableFile opens the stable file at path. When there is none it
// creates one holding initial (the values an older version kept in
// raft.db, or nil).
func openStableFile(path string, initial map[string][]byte) (*stableFile, error) {
	s := &stableFile{path: path, vals: initial}
	if s.vals == nil {
		s.vals = map[string][]byte{}
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := s.create(); err != nil {
			return nil, fmt.Errorf("create raft stable store %s: %w", path, err)
		}
		if f, err = os.OpenFile(path, os.O_RDWR, 0); err != nil {
			return nil, fmt.Errorf("open raft stable store: %w", err)
		}
	case err != nil:
		return nil, fmt.Errorf("open raft stable store: %w", err)
	}
	s.f = f
	if err := s.load(); err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

// create writes the file whole under a temporary name and renames it, so
// that a crash leaves either no file or a complete one.
func (s *stableFile) create() error {
	tmp := s.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	older, err := encodeStable(0, s.vals)
	if err != nil {
		f.Close()
		return err
	}
	newer, _ := encodeStable(1, s.vals)
	if _, err := f.Write(append(older, newer...)); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(s.path))
}

// load reads both copies and keeps the newer valid one.
func (s *stableFile) load() error {
	buf := make([]byte, 2*stableSlotSize)
	if n, err := s.f.ReadAt(buf, 0); n != len(buf) {
		return damaged(s.path, 0, fmt.Errorf("%d bytes where %d belong (%v)", n, len(buf), err))
	}
	found := false
	var errs []error
	for slot := range 2 {
		seq, vals, err := decodeStable(buf[slot*stableSlotSize : (slot+1)*stableSlotSize])
		if err != nil {
			errs = append(errs, fmt.Errorf("copy %d: %w", slot+1, err))
			continue
		}
		if !found || seq > s.seq {
			s.seq, s.vals, found = seq, vals, true
		}
	}
	if !found {
		return damaged(s.path, 0, fmt.Errorf("no valid copy of the raft term and vote: %w", errors.Join(errs...)))
	}
	return nil
}

// set stores key, fsync'd before it returns.
func (s *stableFile) set(key, val []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	vals := maps.Clone(s.vals)
	vals[string(key)] = append([]byte(nil), val...)
	seq := s.seq + 1
	b, err := encodeStable(seq, vals)
	if err != nil {
		return err
	}
	if _, err := s.f.WriteAt(b, int64(seq%2)*stableSlotSize); err != nil {
		return fmt.Errorf("write raft stable store: %w", err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("sync raft stable store: %w", err)
	}
	s.seq, s.vals = seq, vals
	return nil
}

// get reads key.
func (s *stableFile) get(key []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.vals[string(key)]
	if !ok {
		return nil, errKeyNotFound
	}
	return append([]byte(nil), v...), nil
}

func (s *stableFile) close() error { return s.f.Close() }

// encodeStable encodes one copy, padded to a whole slot.
func encodeStable(seq uint64, vals map[string][]byte) ([]byte, error) {
	var payload []byte
	for _, k := range slices.Sorted(maps.Keys(vals)) {
		payload = binary.AppendUvarint(payload, uint64(len(k)))
		payload = append(payload, k...)
		payload = binary.AppendUvarint(payload, uint64(len(vals[k])))
		payload = append(payload, vals[k]...)
	}
	if stableHeader+len(payload)+crcSize > stableSlotSize {
		return nil, fmt.Errorf("raft stable store: %d bytes of keys and values do not fit in %d", len(payload), stableSlotSize-stableHeader-crcSize)
	}
	b := make([]byte, 0, stableSlotSize)
	b = append(b, stableMagic...)
	b = binary.BigEndian.AppendUint64(b, seq)
	b = binary.BigEndian.AppendUint32(b, uint32(len(payload)))
	b = append(b, payload...)
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	return b[:stableSlotSize], nil
}

// decodeStable decodes and checks one slot.
func decodeStable(b []byte) (uint64, map[string][]byte, error) {
	if !bytes.HasPrefix(b, []byte(stableMagic)) {
		return 0, nil, errors.New("no copy here (bad magic)")
	}
	seq := binary.BigEndian.Uint64(b[len(stableMagic):])
	size := int(binary.BigEndian.Uint32(b[len(stableMagic)+8:]))
	if size > len(b)-stableHeader-crcSize {
		return 0, nil, errChecksum
	}
	end := stableHeader + size
	if crc32.Checksum(b[:end], castagnoli) != binary.BigEndian.Uint32(b[end:]) {
		return 0, nil, errChecksum
	}
	vals := map[string][]byte{}
	p := b[stableHeader:end]
	for len(p) > 0 {
		k, rest, ok := bytesField(p)
		if !ok {
			return 0, nil, errBadEntry
		}
		v, rest, ok := bytesField(rest)
		if !ok {
			return 0, nil, errBadEntry
		}
		vals[string(k)], p = v, rest
	}
	return seq, vals, nil
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
