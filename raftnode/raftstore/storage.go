package raftstore

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// snapshotsRetained is how many snapshots the file store keeps.
const snapshotsRetained = 2

// Open opens the node's raft log, stable store and snapshots in
// dir, after checking all of them (DESIGN.md, guarantee 9): a node whose
// storage is damaged does not start, and its one error names the file,
// and the entry where there is one.
func Open(dir string, log *slog.Logger, snapshotLog hclog.Logger) (*Store, *raft.FileSnapshotStore, error) {
	logs, err := OpenLog(dir, log)
	if err != nil {
		return nil, nil, refuse(err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, snapshotsRetained, snapshotLog)
	if err != nil {
		logs.Close()
		return nil, nil, fmt.Errorf("open snapshot store: %w", err)
	}
	if err := verifySnapshots(snaps, filepath.Join(dir, "snapshots")); err != nil {
		logs.Close()
		return nil, nil, refuse(err)
	}
	return logs, snaps, nil
}

// refuse adds, to damage found in storage, what the operator can do.
func refuse(err error) error {
	if !errors.Is(err, ErrDamaged) {
		return err
	}
	return fmt.Errorf("%w; this node will not start on it: restore its data dir from a backup, or move the data dir away so that the node rejoins empty and copies the log from the leader", err)
}

// verifySnapshots opens every snapshot in dir, which makes raft's file
// store check the CRC of its state file against its meta.json. Raft alone
// would skip a snapshot it cannot read and start from an older one (or
// none), and then need log entries that compaction has removed; here any
// damaged snapshot stops the node. Snapshots still being written (".tmp")
// are raft's to clean up.
func verifySnapshots(snaps *raft.FileSnapshotStore, dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("list snapshots: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() || strings.HasSuffix(e.Name(), ".tmp") {
			continue
		}
		_, rc, err := snaps.Open(e.Name())
		if err != nil {
			if err.Error() == "CRC mismatch" { // raft's text for it
				err = fmt.Errorf("state.bin fails the CRC kept in meta.json: %w", errChecksum)
			}
			return damaged(filepath.Join(dir, e.Name()), 0, fmt.Errorf("raft snapshot: %w", err))
		}
		if err := rc.Close(); err != nil {
			return fmt.Errorf("close snapshot %s: %w", e.Name(), err)
		}
	}
	return nil
}
