package e2e

import (
	"os"
	"testing"

	"github.com/hangman/hangman/internal/testkit"
)

// TestMain removes the hangman binary the tests built once and shared.
func TestMain(m *testing.M) {
	code := m.Run()
	testkit.RemoveBinary()
	os.Exit(code)
}
