package harness

import (
	"context"
	"os"
	"sync"
)

// BinaryEnv names a hangman binary to use instead of building one: CI
// builds it once for every suite.
const BinaryEnv = "HANGMAN_E2E_BINARY"

// built is the binary Binary built for this test binary.
var built struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// Binary returns the hangman binary for a test: $HANGMAN_E2E_BINARY when
// set, else one built once per test binary (every test of a package
// shares it). A package that calls it removes the build in its TestMain
// (Main).
func Binary(t TB) string {
	t.Helper()
	if b := os.Getenv(BinaryEnv); b != "" {
		return b
	}
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "hangman-test-bin-"); built.err != nil {
			return
		}
		built.path, built.err = Build(context.Background(), built.dir)
	})
	if built.err != nil {
		t.Fatalf("build the hangman binary: %v", built.err)
	}
	return built.path
}

// RemoveBinary deletes what Binary built, if anything.
func RemoveBinary() {
	if built.dir != "" {
		_ = os.RemoveAll(built.dir)
	}
}

// Main runs a package's tests (m is its *testing.M) and then removes the
// binary they built: a package whose tests call Binary has
// func TestMain(m *testing.M) { harness.Main(m) }.
func Main(m interface{ Run() int }) {
	code := m.Run()
	RemoveBinary()
	os.Exit(code)
}
