package game_test

import (
	"fmt"

	"github.com/hangman/hangman/services/game"
)

// A replica applies each committed log entry in order. The proposer has
// already chosen the secret word and stamped the time; the Machine only
// follows the log.
func Example() {
	m := game.New()
	var index uint64
	apply := func(c game.Command) game.Result {
		index++
		return m.Apply(index, c.Encode()) // what the proposer puts in the raft log
	}

	apply(game.Command{Kind: game.KindCreateRoom, Room: "lobby", Word: "kiwi", At: 1700000000000})
	apply(game.Command{Kind: game.KindJoinRoom, Room: "lobby", Player: "p1", Name: "Ann"})
	for _, l := range []string{"I", "z", "ab", "k"} {
		res := apply(game.Command{Kind: game.KindGuess, Room: "lobby", Player: "p1", Letter: l, RequestID: "guess-" + l})
		if res.Err != nil {
			fmt.Printf("%q: refused (%s): %v\n", l, game.CodeOf(res.Err), res.Err)
			continue
		}
		fmt.Printf("%q: %s, %s, %s\n", l, res.Outcome, res.State.Masked, res.State.Status)
	}

	// A retry after a lost reply is answered, not applied again.
	res := apply(game.Command{Kind: game.KindGuess, Room: "lobby", Player: "p1", Letter: "k", RequestID: "guess-k"})
	fmt.Println("retry:", res.Outcome, res.Duplicate)

	res = apply(game.Command{Kind: game.KindGuess, Room: "lobby", Player: "p1", Letter: "w"})
	fmt.Printf("%q: %s, %s, the word was %q, score %d\n", "w", res.Outcome, res.State.Status, res.State.Word, res.State.Players[0].Score)
	// Output:
	// "I": correct, _i_i, playing
	// "z": wrong, _i_i, playing
	// "ab": refused (invalid): a guess is exactly one letter, got 2 characters
	// "k": correct, ki_i, playing
	// retry: correct true
	// "w": correct, won, the word was "kiwi", score 9
}
