// Package game holds the rules of Hangman as a pure, deterministic state
// machine.
//
// Every replica of the cluster applies the same sequence of commands to its
// own Machine and must end in the same state, so nothing in here reads a
// clock, draws a random number or iterates a map in an order that matters:
// the proposer chooses the secret word and stamps the time before a command
// enters the log, and the Machine only follows what the log says. The package
// imports nothing of raft, NATS or gRPC; transports wrap it, never the other
// way round.
//
// A Machine holds many rooms. Each room plays rounds of one secret word with a
// wrong-guess limit; players join with an id and a display name and score
// points for correct letters and for finishing a word. Client sessions (the
// Raft dissertation, §6.3) remember the last request ids applied in each room
// so that a guess retried after a lost reply is applied at most once.
package game
