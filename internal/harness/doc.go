// Package harness holds what the harnesses that drive a running hangman
// system from outside share, and used to copy: the hangman binary built
// once per test binary, free loopback ports, waiting for a condition or a
// URL with a deadline, reading a Prometheus text page, and finding the
// node that leads. The bench, the chaos suite, the e2e tests and the dev cluster's
// tests all use it; one home each, so that a fix (a port race, a poll
// interval, a parsing rule) reaches every suite.
//
// It does not import package testing: the bench, which is part of the
// hangman binary, uses it too. The helpers that fail a test take a TB,
// which *testing.T satisfies.
package harness

// TB is the part of testing.TB the helpers that fail a test need.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
}
