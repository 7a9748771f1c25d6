package game

import (
	"fmt"
	"testing"
)

// TestSeatBelongsToItsToken is issue 17's first attack at the state
// machine: player ids are public (every state lists them), so a client
// that knows alice's id tried to join as her, rename her, guess and start
// rounds as her. Every such command is refused, changes nothing, and
// leaves alice's seat, name and score hers.
func TestSeatBelongsToItsToken(t *testing.T) {
	tests := []struct {
		name string
		cmd  Command
	}{
		{"join as her without a token", join("r", "alice", "Mallory")},
		{"join as her with a made-up token", as(join("r", "alice", "Mallory"), forgedToken)},
		{"rename her with another player's token", as(join("r", "alice", "Mallory"), bobToken)},
		{"guess as her without a token", guess("r", "alice", "p")},
		{"guess as her with a made-up token", as(guess("r", "alice", "p"), forgedToken)},
		{"new round as her with a made-up token", as(newRound("r", "alice", "kiwi"), forgedToken)},
		{"new round as her without a token", newRound("r", "alice", "kiwi")},
	}
	for _, tt := range tests {
		for _, id := range []string{"", "mallory-1"} {
			t.Run(fmt.Sprintf("%s, request id %q", tt.name, id), func(t *testing.T) {
				h := newHarness(t)
				h.ok(create("r", "ox"))
				h.ok(as(join("r", "alice", "Alice"), annToken))
				h.ok(as(join("r", "bob", "Bob"), bobToken))
				h.ok(as(guess("r", "alice", "o"), annToken))
				if tt.cmd.Kind == KindNewRound {
					h.ok(as(guess("r", "alice", "x"), annToken)) // the round is over
				}
				before, _ := h.m.Room("r")
				h.refused(withID(tt.cmd, id), CodePermission)
				if after, _ := h.m.Room("r"); scores(after) != scores(before) || after.Players[0].Name != "Alice" {
					t.Fatalf("alice's seat changed: %+v", after.Players)
				}
				// Alice herself still plays, renames and rejoins.
				if res := h.ok(as(join("r", "alice", "Alicia"), annToken)); res.Event == nil || res.Event.Kind != EventPlayerRenamed {
					t.Fatalf("alice's own rename: %+v", res)
				}
			})
		}
	}
}

// TestRejoinKeepsTheSeat checks that the holder of a seat's token joins
// again as often as they like (a reload, another relay) and keeps their
// score, while a new player under a free id takes a seat of their own.
func TestRejoinKeepsTheSeat(t *testing.T) {
	h := newHarness(t)
	h.ok(create("r", "apple"))
	h.ok(as(join("r", "alice", "Alice"), annToken))
	h.ok(as(guess("r", "alice", "p"), annToken))
	if res := h.ok(withID(as(join("r", "alice", "Alice"), annToken), "reload")); res.Event != nil || scores(res.State) != "alice=2" {
		t.Fatalf("rejoin: event %+v, state %+v", res.Event, res.State)
	}
	if res := h.ok(as(join("r", "bob", "Bob"), bobToken)); res.Event == nil || res.Event.Kind != EventPlayerJoined {
		t.Fatalf("bob's join: %+v", res)
	}
}

// TestForgedRequestDoesNotBurnTheVictimsID is issue 17's request id
// attack: the attacker sends a command as alice (or as a player about to
// join) with the request id alice will use next. It is refused in the
// attacker's own scope, where a retry gets the same refusal (guarantee 2
// holds for the attacker too), and alice's request with that id is a new
// request, applied.
func TestForgedRequestDoesNotBurnTheVictimsID(t *testing.T) {
	// Each case's req is the forgery; its then makes alice's request
	// possible.
	tests := []refusal{
		{
			name:  "guess as a seated player",
			setup: []Command{create("r", "apple"), as(join("r", "alice", "Alice"), annToken)},
			req:   as(guess("r", "alice", "z"), forgedToken),
			code:  CodePermission,
		},
		{
			name:  "guess without a token as a seated player",
			setup: []Command{create("r", "apple"), as(join("r", "alice", "Alice"), annToken)},
			req:   guess("r", "alice", "z"),
			code:  CodePermission,
		},
		{
			name:  "guess as a player who has not joined yet",
			setup: []Command{create("r", "apple")},
			req:   as(guess("r", "alice", "z"), forgedToken),
			code:  CodePrecondition,
			then:  []Command{as(join("r", "alice", "Alice"), annToken)},
		},
		{
			name: "guess in a room that does not exist yet",
			req:  as(guess("r", "alice", "z"), forgedToken),
			code: CodeNotFound,
			then: []Command{create("r", "apple"), as(join("r", "alice", "Alice"), annToken)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, forged, first := tt.play(t, "alice-7")
			res := h.ok(withID(as(guess("r", "alice", "p"), annToken), "alice-7"))
			if res.Outcome != OutcomeCorrect || scores(res.State) != "alice=2" {
				t.Fatalf("alice's request after the forgery: %+v", res)
			}
			if again := h.apply(withID(as(guess("r", "alice", "p"), annToken), "alice-7")); !again.Duplicate || again.Outcome != OutcomeCorrect {
				t.Fatalf("alice's retry: %+v", again)
			}
			checkSameRefusal(t, h.apply(forged), first)
		})
	}
}

// TestRequestIDsArePerPlayer checks that two players of a room may use
// the same request ids: each has their own.
func TestRequestIDsArePerPlayer(t *testing.T) {
	h := newHarness(t)
	h.ok(create("r", "apple"))
	h.ok(as(join("r", "alice", "Alice"), annToken))
	h.ok(as(join("r", "bob", "Bob"), bobToken))
	h.ok(withID(as(guess("r", "alice", "p"), annToken), "1"))
	if res := h.ok(withID(as(guess("r", "bob", "l"), bobToken), "1")); res.Outcome != OutcomeCorrect || scores(res.State) != "alice=2 bob=1" {
		t.Fatalf("bob's request 1: %+v", res)
	}
}

// TestCapsComeWithTheCommand checks the proposer's caps: the most rooms a
// creation and the most players a join may make, whatever the Machine's
// own bounds.
func TestCapsComeWithTheCommand(t *testing.T) {
	h := newHarness(t)
	capped := func(c Command, limit int) Command {
		c.Limit = limit
		return c
	}
	h.ok(capped(create("a", "apple"), 2))
	h.ok(capped(create("b", "apple"), 2))
	h.refused(withID(capped(create("c", "apple"), 2), "c-1"), CodePrecondition)
	h.ok(capped(create("c", "apple"), 3)) // another proposer's cap

	h.ok(as(capped(join("a", "alice", "Alice"), 1), annToken))
	h.refused(as(capped(join("a", "bob", "Bob"), 1), bobToken), CodePrecondition)
	// A player already seated rejoins whatever the cap.
	h.ok(as(capped(join("a", "alice", "Alice"), 1), annToken))
	h.ok(as(capped(join("a", "bob", "Bob"), 2), bobToken))

	for _, bad := range []Command{capped(create("d", "apple"), MaxRooms+1), capped(join("a", "p", "P"), MaxPlayers+1), capped(create("d", "apple"), -1), capped(guess("a", "alice", "e"), 2)} {
		h.refused(bad, CodeInvalid)
	}
}

// TestTokenHashIsNotTheToken checks that what the log and the state keep
// is a hash of fixed length, not the token.
func TestTokenHashIsNotTheToken(t *testing.T) {
	h := HashToken(annToken)
	if len(h) != TokenHashLen || h == annToken || HashToken(annToken) != h || HashToken(bobToken) == h {
		t.Fatalf("HashToken(%q) = %x", annToken, h)
	}
	for _, tt := range []struct {
		token string
		ok    bool
	}{
		{annToken, true}, {"", false}, {"short", false}, {"has space 0123456789abcdef", false},
		{"0123456789abcdefghijk", false}, {"0123456789abcdefghijkl", true}, {string(make([]byte, 65)), false},
	} {
		if got := ValidToken(tt.token); got != tt.ok {
			t.Errorf("ValidToken(%q) = %v, want %v", tt.token, got, tt.ok)
		}
	}
}

func TestCounts(t *testing.T) {
	h := newHarness(t)
	h.ok(create("a", "apple"))
	h.ok(create("b", "apple"))
	h.ok(as(join("a", "alice", "Alice"), annToken))
	h.ok(as(join("b", "alice", "Alice"), annToken))
	h.ok(as(join("b", "bob", "Bob"), bobToken))
	if rooms, seats := h.m.Counts(); rooms != 2 || seats != 3 {
		t.Fatalf("Counts() = %d rooms, %d seats; want 2 and 3", rooms, seats)
	}
}
