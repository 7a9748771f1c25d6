// Package testkit holds the helpers that the tests of several packages
// need alike and used to copy: the hangman binary built once, free
// loopback ports, waiting for a condition with a deadline, reading a
// Prometheus text page, and finding the node that leads. One home each, so
// a fix to one (a port race, a poll interval) reaches every suite.
package testkit

import (
	"context"
	"net"
	"os"
	"sync"
	"testing"

	"github.com/hangman/hangman/internal/proc"
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
// shares it). A package that calls it removes the build with RemoveBinary
// from its TestMain.
func Binary(t testing.TB) string {
	t.Helper()
	if b := os.Getenv(BinaryEnv); b != "" {
		return b
	}
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "hangman-test-bin-"); built.err != nil {
			return
		}
		built.path, built.err = proc.Build(context.Background(), built.dir)
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

// FreePorts returns n loopback ports that were free a moment ago: all are
// held open together, so the n are distinct, then released for the
// caller's processes to take.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			_ = ln.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("find a free port: %v", err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports
}
