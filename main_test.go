package main

import (
	"testing"

	"github.com/hangman/hangman/internal/harness"
)

// TestMain removes the hangman binary the tests built once and shared.
func TestMain(m *testing.M) { harness.Main(m) }
