package raftnode

import (
	"fmt"
	"os"
	"path/filepath"
)

func mkdirFor(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	return nil
}
