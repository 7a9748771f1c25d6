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
// points for correct letters and for finishing a word. A room's Settings,
// chosen at creation, name its word category (the embedded lists of
// words/), the words' lengths, its own player cap, its mode (words drawn
// by the proposer, or set in turn by one player of the room, the setter,
// who does not guess) and whether players guess in timed turns. A room
// remembers its last HistoryRounds finished rounds for its public state,
// with a leaderboard.
//
// A seat belongs to whoever holds its token: commands acting as a player
// carry the hash of the token they presented (Command.TokenHash), and the
// Machine, which keeps only the hash, refuses (CodePermission) those whose
// hash is not the seat's. Idle rooms and seats are reclaimed by commands
// the leader proposes (Reclaimable), and turns that ran out are ended the
// same way (TurnTimeouts): time enters the state only as the times
// commands carry.
//
// Client sessions (the Raft dissertation, §6.3) remember the first answer
// to each recent request id, so that a request's first definite answer is
// its only one: a guess retried after a lost reply is applied at most once,
// and a request the rules refused stays refused, with the same error, even
// once what it lacked has come true (the player joined, a new round began,
// the room was created): a retry or a stale copy committed later changes
// nothing. Request ids are scoped by the token a command carries, so a
// player's ids are theirs alone. Each room remembers its last
// SessionWindow request ids, and every one younger than SessionMinAge
// whatever their number (and forgets them when it is reclaimed); the
// refusals of requests to rooms that do not exist are remembered across
// the cluster the same way (MissingRoomWindow) until their room is
// created, which then remembers them. Memory stays bounded: a room that
// would have to remember more than SessionCap answers refuses requests as
// busy, unremembered, rather than forget a young one; and so that no flood
// fills a room for the others, a leader asks Admit before proposing (see
// PressureAt). Invalid commands are refused the same whatever the state,
// so their refusals need no record.
package game
