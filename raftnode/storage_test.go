package raftnode

import (
	"fmt"
	"path/filepath"

	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
)

// lastIndexInDir opens a stopped node's raft log and reports its last index.
func lastIndexInDir(dataDir string) (uint64, error) {
	meta := &metadb.BoltMetaDB{}
	defer meta.Close()
	w, err := wal.Open(filepath.Join(dataDir, "raft", "wal"), wal.WithMetaStore(meta))
	if err != nil {
		return 0, fmt.Errorf("open wal: %w", err)
	}
	defer w.Close()
	return w.LastIndex()
}
