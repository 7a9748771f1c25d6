package harness

import (
	"log/slog"
	"os"
)

// LogEnv names the environment variable that makes the servers a test
// runs in its own process log: set, they write at debug level to stderr;
// unset, they say nothing, so that passing tests stay quiet.
const LogEnv = "HANGMAN_TEST_LOG"

// Logger is the logger of the servers a test runs in its own process
// (nodes, relays), as LogEnv says.
func Logger() *slog.Logger {
	if os.Getenv(LogEnv) != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}
