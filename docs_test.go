package main

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"testing"
)

// TestDesignCopyIsInStep checks that docs/DESIGN.md, the copy of the design
// contract a clone carries, says what the shared contract beside the
// checkout says. The shared page is the source; where it is absent (a clone
// on its own) there is nothing to compare with.
func TestDesignCopyIsInStep(t *testing.T) {
	shared, err := os.ReadFile("../shared/DESIGN.md")
	if errors.Is(err, fs.ErrNotExist) {
		t.Skip("no ../shared/DESIGN.md beside this checkout to compare docs/DESIGN.md with")
	}
	if err != nil {
		t.Fatalf("read the shared contract: %v", err)
	}
	local, err := os.ReadFile("docs/DESIGN.md")
	if err != nil {
		t.Fatalf("read the project's copy of the contract: %v", err)
	}
	if !bytes.Equal(shared, local) {
		t.Fatal("docs/DESIGN.md differs from ../shared/DESIGN.md: copy the shared contract over it (cp ../shared/DESIGN.md docs/DESIGN.md)")
	}
}
