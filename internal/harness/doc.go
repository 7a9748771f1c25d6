// Package harness holds what the tests and harnesses that drive hangman
// servers share, and used to copy: the hangman binary built once per test
// binary, free loopback ports, waiting for a condition or a URL with a
// deadline (or watching that one holds throughout), reading a Prometheus
// text page, finding the node that leads, the players' tokens, the logger
// of in-process servers and a buffer for their logs. The bench, the chaos
// suite, the e2e tests, the dev cluster's tests and the raftnode, relay
// and command tests all use it; one home each, so that a fix (a port race,
// a poll interval, a parsing rule) reaches every suite.
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
