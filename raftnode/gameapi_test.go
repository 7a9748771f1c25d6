package raftnode

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"golang.org/x/time/rate"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hangman/hangman/internal/harness"
	"github.com/hangman/hangman/raftnode/natsembed"
	"github.com/hangman/hangman/services/game"
	"github.com/hangman/hangman/subjects"
)

// apiCall sends one request to the game API and returns the answer's
// body and micro error code ("" when it succeeded).
func apiCall(t *testing.T, nc *nats.Conn, subject string, body string) (string, string) {
	t.Helper()
	m, err := nc.Request(subject, []byte(body), 10*time.Second)
	if err != nil {
		t.Fatalf("request %s %s: %v", subject, clip(body), err)
	}
	return string(m.Data), m.Header.Get(micro.ErrorCodeHeader)
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// TestGameAPIOverNATS plays a room through the game API's NATS endpoints
// of a real cluster, asking a follower (which routes the writes to the
// leader), and attacks each endpoint as a hostile client would: every
// refusal has the code the same gRPC call would have, says why, never
// repeats a token, and changes nothing.
func TestGameAPIOverNATS(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	fi := (c.leader() + 1) % 3
	nc, err := nats.Connect(c.nodes[fi].NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	ann, bob := harness.TokenOf("ann"), harness.TokenOf("bob")

	ok := func(subject, body string, into any) {
		t.Helper()
		out, code := apiCall(t, nc, subject, body)
		if code != "" {
			t.Fatalf("%s %s: error %s %s", subject, body, code, out)
		}
		if err := json.Unmarshal([]byte(out), into); err != nil {
			t.Fatalf("%s answer %s: %v", subject, out, err)
		}
	}
	var created StateReply
	ok(subjects.APICreate, `{"room":"nats","maxWrong":3,"requestId":"c1"}`, &created)
	var st game.State
	if err := json.Unmarshal(created.State, &st); err != nil || st.Room != "nats" || st.MaxWrong != 3 || st.Status != game.StatusPlaying || st.Word != "" {
		t.Fatalf("created state %s (%v)", created.State, err)
	}
	var drawn JoinReply
	ok(subjects.APIJoin, `{"room":"nats","player":"cli","name":"CLI"}`, &drawn)
	if !game.ValidToken(drawn.Token) {
		t.Fatalf("a join without a token: %+v, want a drawn token", drawn)
	}
	var brought JoinReply
	ok(subjects.APIJoin, `{"room":"nats","player":"ann","name":"Ann","token":"`+ann+`","requestId":"j1"}`, &brought)
	if brought.Token != "" {
		t.Fatalf("a join that brought its token: %+v, want no token in the answer", brought)
	}
	var g GuessReply
	ok(subjects.APIGuess, `{"room":"nats","player":"ann","token":"`+ann+`","letter":"e","requestId":"g1"}`, &g)
	if g.Outcome == "" || g.Duplicate || g.Index == 0 {
		t.Fatalf("guess: %+v", g)
	}
	first := g

	// Refusals by the rules are entries of the log too (so that a retry
	// gets the same refusal), but they change no room.
	snapshot := func() string { return roomsOf(t, c.nodes[c.leader()]) }
	before := snapshot()
	long := strings.Repeat("x", maxAPIRequest)
	for _, tc := range []struct {
		name, subject, body, code, says string
	}{
		{"wrong token", subjects.APIGuess, `{"room":"nats","player":"ann","token":"` + bob + `","letter":"a"}`, "403", "token"},
		{"no token", subjects.APIGuess, `{"room":"nats","player":"ann","letter":"a"}`, "403", "token"},
		{"malformed token", subjects.APINewRound, `{"room":"nats","player":"ann","token":"short"}`, "403", "token"},
		{"another's seat", subjects.APIJoin, `{"room":"nats","player":"ann","name":"Mallory","token":"` + bob + `"}`, "403", "token"},
		{"oversized", subjects.APIGuess, `{"room":"nats","player":"ann","token":"` + ann + `","letter":"` + long + `"}`, "413", "exceeds"},
		{"empty", subjects.APIGuess, ``, "400", "empty request"},
		{"not json", subjects.APICreate, `room=x`, "400", "malformed"},
		{"unknown field", subjects.APICreate, `{"room":"x","word":"cheat"}`, "400", "unknown field"},
		{"two objects", subjects.APICreate, `{"room":"x"}{"room":"y"}`, "400", "after the object"},
		{"missing room", subjects.APICreate, `{}`, "400", "room"},
		{"missing letter", subjects.APIGuess, `{"room":"nats","player":"ann","token":"` + ann + `"}`, "400", "letter"},
		{"two letters", subjects.APIGuess, `{"room":"nats","player":"ann","token":"` + ann + `","letter":"ab"}`, "400", "letter"},
		{"missing player", subjects.APINewRound, `{"room":"nats","token":"` + ann + `"}`, "400", "player"},
		{"bad room name", subjects.APIJoin, `{"room":"Not A Room","player":"x","name":"x"}`, "400", "room"},
		{"unknown room", subjects.APIGuess, `{"room":"nowhere","player":"ann","token":"` + ann + `","letter":"a"}`, "404", "nowhere"},
		{"existing room", subjects.APICreate, `{"room":"nats"}`, "409", "exists"},
		{"not joined", subjects.APIGuess, `{"room":"nats","player":"bob","token":"` + bob + `","letter":"a"}`, "412", "joined"},
		{"round still playing", subjects.APINewRound, `{"room":"nats","player":"ann","token":"` + ann + `"}`, "412", ""},
		{"bad page token", subjects.APIList, `{"after":"Not A Room"}`, "400", "page_token"},
		{"wrong type", subjects.APIList, `{"limit":"all"}`, "400", "limit"},
		{"negative", subjects.APICreate, `{"room":"y","maxWrong":-1}`, "400", ""},
		{"unknown category", subjects.APICreate, `{"room":"y","category":"cars"}`, "400", "category"},
		{"players above the cap", subjects.APICreate, `{"room":"y","maxPlayers":1000}`, "400", "cap"},
		{"turn too long", subjects.APICreate, `{"room":"y","turnSeconds":3600}`, "400", "turn"},
		{"set word of a random room", subjects.APISetWord, `{"room":"nats","player":"ann","token":"` + ann + `","word":"otter"}`, "412", "random"},
		{"set word not letters", subjects.APISetWord, `{"room":"nats","player":"ann","token":"` + ann + `","word":"0tter"}`, "400", "letters"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, code := apiCall(t, nc, tc.subject, tc.body)
			if code != tc.code {
				t.Fatalf("code %q (%s), want %s", code, out, tc.code)
			}
			var e APIError
			if err := json.Unmarshal([]byte(out), &e); err != nil || e.Error == "" || fmt.Sprint(e.Code) != tc.code || e.Status == "" || e.Node == "" {
				t.Fatalf("error body %s (%v)", out, err)
			}
			if !strings.Contains(strings.ToLower(e.Error), tc.says) {
				t.Errorf("error %q does not say %q", e.Error, tc.says)
			}
			for _, secret := range []string{ann, bob, drawn.Token} {
				if strings.Contains(out, secret) {
					t.Errorf("error %s repeats a token", out)
				}
			}
		})
	}
	if after := snapshot(); after != before {
		t.Fatalf("refused requests changed the cluster:\nbefore %s\nafter  %s", before, after)
	}

	// A replayed request id gets its first answer again and changes
	// nothing, even with another letter.
	var again GuessReply
	ok(subjects.APIGuess, `{"room":"nats","player":"ann","token":"`+ann+`","letter":"z","requestId":"g1"}`, &again)
	if !again.Duplicate || again.Outcome != first.Outcome || again.Index != first.Index {
		t.Fatalf("replayed request id: %+v, first %+v", again, first)
	}
	if after := snapshot(); after != before {
		t.Fatalf("a replayed request changed the room:\nbefore %s\nafter  %s", before, after)
	}
	// Another player's request id is theirs: the same id from bob is a
	// new request, not ann's answer.
	ok(subjects.APIJoin, `{"room":"nats","player":"bob","name":"Bob","token":"`+bob+`"}`, &brought)
	var bobs GuessReply
	ok(subjects.APIGuess, `{"room":"nats","player":"bob","token":"`+bob+`","letter":"z","requestId":"g1"}`, &bobs)
	if bobs.Duplicate || bobs.Index == first.Index {
		t.Fatalf("bob's g1 answered as ann's: %+v", bobs)
	}

	// Play the round out, start another, and list.
	for _, l := range "etaoinshrdlucmfwypvbgkqjx" {
		var r GuessReply
		ok(subjects.APIGuess, fmt.Sprintf(`{"room":"nats","player":"ann","token":"%s","letter":"%c"}`, ann, l), &r)
		if err := json.Unmarshal(r.State, &st); err != nil {
			t.Fatal(err)
		}
		if st.Status != game.StatusPlaying {
			break
		}
	}
	if st.Status == game.StatusPlaying || st.Word == "" {
		t.Fatalf("round did not end: %+v", st)
	}
	var next StateReply
	ok(subjects.APINewRound, `{"room":"nats","player":"cli","token":"`+drawn.Token+`"}`, &next)
	st = game.State{}
	if err := json.Unmarshal(next.State, &st); err != nil || st.Round != 2 || st.Status != game.StatusPlaying || st.Word != "" {
		t.Fatalf("new round %s (%v)", next.State, err)
	}
	var list ListReply
	ok(subjects.APIList, ``, &list)
	if len(list.Rooms) != 1 || list.Rooms[0].Room != "nats" || list.Rooms[0].Players != 3 || list.Rooms[0].Round != 2 || list.Next != "" {
		t.Fatalf("list %+v", list)
	}

	// A host room: ann sets the word, bob guesses. Nothing published on
	// the room's subjects shows the word while the round plays.
	// The leader publishes; the recorder sits on the follower's server, so
	// its interest must reach the leader's server over the NATS routes
	// before the room is made, or the first messages have nobody to go to.
	rec := record(t, c.nodes[fi].NATSURL())
	rec.waitInterest(c)
	ok(subjects.APICreate, `{"room":"host","category":"animals","mode":"host","maxPlayers":4,"minWordLen":4,"maxWordLen":8}`, &created)
	ok(subjects.APIJoin, `{"room":"host","player":"ann","name":"Ann","token":"`+ann+`"}`, &brought)
	ok(subjects.APIJoin, `{"room":"host","player":"bob","name":"Bob","token":"`+bob+`"}`, &brought)
	var set StateReply
	ok(subjects.APISetWord, `{"room":"host","player":"ann","token":"`+ann+`","word":"Wombat","requestId":"w1"}`, &set)
	ok(subjects.APIGuess, `{"room":"host","player":"bob","token":"`+bob+`","letter":"o"}`, &first)
	if !strings.Contains(string(first.State), `"masked":"_o____"`) {
		t.Fatalf("state after bob's guess: %s", first.State)
	}
	for _, b := range [][]byte{created.State, brought.State, set.State, first.State} {
		if strings.Contains(strings.ToLower(string(b)), "wombat") {
			t.Fatalf("an answer shows the word: %s", b)
		}
	}
	// Ten messages, the state and event of the creation, the joins, the
	// setting and the guess, see the round to its first letter; none
	// shows the word.
	var room []*nats.Msg
	harness.Eventually(t, 10*time.Second, "ten messages of room host", func() error {
		room = room[:0]
		for _, m := range rec.snapshot() {
			if m.Subject == subjects.RoomState("host") || m.Subject == subjects.RoomEvent("host") {
				room = append(room, m)
			}
		}
		if len(room) < 10 {
			return fmt.Errorf("%d messages", len(room))
		}
		return nil
	})
	for _, m := range room {
		if strings.Contains(strings.ToLower(string(m.Data)), "wombat") {
			t.Fatalf("%s shows the word while the round plays: %s", m.Subject, m.Data)
		}
	}
}

// TestGameAPIFloodIsRefused floods the creation endpoint past its rate:
// the excess is refused 429 at once and creates nothing.
func TestGameAPIFloodIsRefused(t *testing.T) {
	c := newTestCluster(t, 1, nil)
	c.leader()
	nc, err := nats.Connect(c.nodes[0].NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	created, refused := 0, 0
	for i := range apiCreateBurst + 5 {
		out, code := apiCall(t, nc, subjects.APICreate, fmt.Sprintf(`{"room":"flood%d"}`, i))
		switch code {
		case "":
			created++
		case "429":
			refused++
			if !strings.Contains(out, "retry in") {
				t.Fatalf("refusal %s does not say when to retry", out)
			}
		default:
			t.Fatalf("creation %d: %s %s", i, code, out)
		}
	}
	if refused == 0 || created > apiCreateBurst+1 {
		t.Fatalf("%d created, %d refused: the flood was not held back", created, refused)
	}
	var rooms int
	c.nodes[0].Read(func(m *game.Machine) { rooms, _ = m.Counts() })
	if rooms != created {
		t.Fatalf("%d rooms exist after %d creations were accepted", rooms, created)
	}
}

// TestGameAPIJoinWithoutATokenUnderAuth: with NATS users on, players share
// the player user and its inboxes, so a node never draws a token into a
// NATS answer: a first join must bring its own, and one without is refused
// before anything is proposed.
func TestGameAPIJoinWithoutATokenUnderAuth(t *testing.T) {
	g := &gameAPI{n: &Node{cfg: Config{NATSAuth: natsembed.Auth{NodePassword: "node-pw", PlayerPassword: "player-pw"}}},
		joins: rate.NewLimiter(rate.Inf, 1)}
	_, err := g.join(context.Background(), []byte(`{"room":"r","player":"p1","name":"Ann"}`))
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "bring your own token") {
		t.Fatalf("tokenless join under auth answered %v; want InvalidArgument asking for the player's own token", err)
	}
}
