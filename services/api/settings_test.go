package api

import (
	"bytes"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/hangman/hangman/internal/grpctest"
	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
	"github.com/hangman/hangman/services/game"
)

func TestCreateRoomSettings(t *testing.T) {
	cl := client(t, newFakeReplica(true), WithLimits(Limits{MaxPlayers: 8}))
	tests := []struct {
		name string
		req  *hangmanv1.CreateRoomRequest
		code codes.Code
	}{
		{"animals, 4-6 letters, 4 players, turns", &hangmanv1.CreateRoomRequest{Category: "animals", MinWordLen: 4, MaxWordLen: 6, MaxPlayers: 4, TurnSeconds: 20}, codes.OK},
		{"host mode", &hangmanv1.CreateRoomRequest{Category: "food", Mode: "host"}, codes.OK},
		{"unknown category", &hangmanv1.CreateRoomRequest{Category: "cars"}, codes.InvalidArgument},
		{"unknown category in host mode", &hangmanv1.CreateRoomRequest{Category: "cars", Mode: "host"}, codes.InvalidArgument},
		{"no words that long", &hangmanv1.CreateRoomRequest{Category: "countries", MinWordLen: 20}, codes.InvalidArgument},
		{"lengths reversed", &hangmanv1.CreateRoomRequest{MinWordLen: 9, MaxWordLen: 4}, codes.InvalidArgument},
		{"more players than the node's cap", &hangmanv1.CreateRoomRequest{MaxPlayers: 9}, codes.InvalidArgument},
		{"negative players", &hangmanv1.CreateRoomRequest{MaxPlayers: -1}, codes.InvalidArgument},
		{"turn too short", &hangmanv1.CreateRoomRequest{TurnSeconds: 1}, codes.InvalidArgument},
		{"unknown mode", &hangmanv1.CreateRoomRequest{Mode: "teams"}, codes.InvalidArgument},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := ctxT(t)
			tt.req.Room = "r" + string(rune('a'+i))
			res, err := cl.CreateRoom(ctx, tt.req)
			wantCode(t, "create", err, tt.code)
			if tt.code != codes.OK {
				_, err := cl.GetRoom(ctx, &hangmanv1.GetRoomRequest{Room: tt.req.Room})
				wantCode(t, "the room of a refused creation", err, codes.NotFound)
				return
			}
			st := res.GetState().GetSettings()
			if st.GetCategory() != cmpOr(tt.req.Category, game.DefaultCategory) || st.GetMaxPlayers() != tt.req.MaxPlayers ||
				st.GetTurnSeconds() != tt.req.TurnSeconds || st.GetMode() != cmpOr(tt.req.Mode, "random") {
				t.Fatalf("settings %v for %v", st, tt.req)
			}
			if tt.req.Mode == "host" {
				if res.GetState().GetStatus() != string(game.StatusSetting) || res.GetState().GetMasked() != "" {
					t.Fatalf("host room's first state %v", res.GetState())
				}
				return
			}
			if n := len(res.GetState().GetMasked()); n < int(st.GetMinWordLen()) || n > int(st.GetMaxWordLen()) {
				t.Fatalf("word of %d letters, outside %v", n, st)
			}
		})
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// playZoo creates room "zoo" of 3-letter animals on cl, seats ann, and
// plays rounds rounds: each guesses a to z until the round ends, hands the
// state that ended it to check, then starts the next round.
func playZoo(t *testing.T, cl hangmanv1.GameServiceClient, rounds int, check func(round int, ended *hangmanv1.RoomState)) {
	t.Helper()
	ctx := ctxT(t)
	if _, err := cl.CreateRoom(ctx, &hangmanv1.CreateRoomRequest{Room: "zoo", Category: "animals", MinWordLen: 3, MaxWordLen: 3, MaxWrong: 26}); err != nil {
		t.Fatal(err)
	}
	joined, err := cl.JoinRoom(ctx, &hangmanv1.JoinRoomRequest{Room: "zoo", PlayerId: "ann", Name: "Ann"})
	if err != nil {
		t.Fatal(err)
	}
	for round := range rounds {
		var st *hangmanv1.RoomState
		for l := 'a'; l <= 'z'; l++ {
			g, err := cl.Guess(ctx, &hangmanv1.GuessRequest{Room: "zoo", PlayerId: "ann", Token: joined.GetToken(), Letter: string(l)})
			if err != nil {
				t.Fatal(err)
			}
			if st = g.GetState(); st.GetStatus() != string(game.StatusPlaying) {
				break
			}
		}
		check(round, st)
		if _, err := cl.NewRound(ctx, &hangmanv1.NewRoundRequest{Room: "zoo", PlayerId: "ann", Token: joined.GetToken()}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestNewRoundDrawsFromTheRoomsCategory plays rounds of an animals room
// of 3-letter words: every word is one of those.
func TestNewRoundDrawsFromTheRoomsCategory(t *testing.T) {
	cl := client(t, newFakeReplica(true))
	animals, _ := game.CategoryWords("animals")
	playZoo(t, cl, 5, func(round int, st *hangmanv1.RoomState) {
		if !slices.Contains(animals, st.GetWord()) || len(st.GetWord()) != 3 || st.GetHistorySeq() != st.GetSeq() || st.GetHistory() != nil {
			t.Fatalf("round %d: word %q, history seq %d at seq %d, history %v", round+1, st.GetWord(), st.GetHistorySeq(), st.GetSeq(), st.GetHistory())
		}
		// The guess's answer names the history; a read carries it.
		read, err := cl.GetRoom(ctxT(t), &hangmanv1.GetRoomRequest{Room: "zoo"})
		if err != nil {
			t.Fatal(err)
		}
		if h := read.GetState().GetHistory(); len(h) != round+1 || h[round].GetWord() != st.GetWord() || h[round].GetSeq() != st.GetSeq() {
			t.Fatalf("round %d: read history %v", round+1, h)
		}
	})
}

// TestNewRoundAvoidsRecentWords plays rounds of a room whose service draws
// the same random number every time: each round still gets a word the
// room has not had lately, while its range has one.
func TestNewRoundAvoidsRecentWords(t *testing.T) {
	cl := client(t, newFakeReplica(true), func(s *Service) { s.random = func() uint64 { return 0 } })
	var words []string
	playZoo(t, cl, 5, func(round int, st *hangmanv1.RoomState) {
		if slices.Contains(words, st.GetWord()) {
			t.Fatalf("round %d: word %q again, after %v", round+1, st.GetWord(), words)
		}
		words = append(words, st.GetWord())
	})
}

// TestSetWordStaysSecret plays a host round over gRPC with the service
// logging everything, and looks for the word in every answer the others
// get, every state, and the log.
func TestSetWordStaysSecret(t *testing.T) {
	const word = "Wombat"
	var logs bytes.Buffer
	svc := New(newFakeReplica(true), slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	cl := hangmanv1.NewGameServiceClient(grpctest.Serve(t, svc.Register))
	ctx := ctxT(t)
	if _, err := cl.CreateRoom(ctx, &hangmanv1.CreateRoomRequest{Room: "h", Category: "animals", Mode: "host", MinWordLen: 4, MaxWordLen: 8}); err != nil {
		t.Fatal(err)
	}
	var seen []string
	keep := func(st *hangmanv1.RoomState, err error) {
		if err != nil {
			seen = append(seen, err.Error())
		}
		b, _ := protojson.Marshal(st)
		seen = append(seen, string(b))
	}
	ann, err := cl.JoinRoom(ctx, &hangmanv1.JoinRoomRequest{Room: "h", PlayerId: "ann", Name: "Ann"})
	if err != nil {
		t.Fatal(err)
	}
	bob, err := cl.JoinRoom(ctx, &hangmanv1.JoinRoomRequest{Room: "h", PlayerId: "bob", Name: "Bob"})
	if err != nil {
		t.Fatal(err)
	}
	if ann.GetState().GetSetter() != "ann" {
		t.Fatalf("setter %q, want ann", ann.GetState().GetSetter())
	}
	tests := []struct {
		name string
		req  *hangmanv1.SetWordRequest
		code codes.Code
	}{
		{"not letters", &hangmanv1.SetWordRequest{PlayerId: "ann", Token: ann.GetToken(), Word: "w0mbat"}, codes.InvalidArgument},
		{"too long for the room", &hangmanv1.SetWordRequest{PlayerId: "ann", Token: ann.GetToken(), Word: "hippopotamus"}, codes.InvalidArgument},
		{"not the setter", &hangmanv1.SetWordRequest{PlayerId: "bob", Token: bob.GetToken(), Word: word}, codes.FailedPrecondition},
		{"no token", &hangmanv1.SetWordRequest{PlayerId: "ann", Word: word}, codes.PermissionDenied},
		{"someone else's token", &hangmanv1.SetWordRequest{PlayerId: "ann", Token: bob.GetToken(), Word: word}, codes.PermissionDenied},
		{"the setter", &hangmanv1.SetWordRequest{PlayerId: "ann", Token: ann.GetToken(), Word: word, RequestId: "s-1"}, codes.OK},
		{"the same request again", &hangmanv1.SetWordRequest{PlayerId: "ann", Token: ann.GetToken(), Word: word, RequestId: "s-1"}, codes.OK},
		{"once set", &hangmanv1.SetWordRequest{PlayerId: "ann", Token: ann.GetToken(), Word: word}, codes.FailedPrecondition},
	}
	for _, tt := range tests {
		tt.req.Room = "h"
		res, err := cl.SetWord(ctx, tt.req)
		if status.Code(err) != tt.code {
			t.Fatalf("%s: %v, want %v", tt.name, err, tt.code)
		}
		if err != nil {
			seen = append(seen, err.Error())
		}
		if tt.code == codes.OK && (res.GetState().GetStatus() != string(game.StatusPlaying) || res.GetState().GetMasked() != "______") {
			t.Fatalf("%s: state %v", tt.name, res.GetState())
		}
	}
	_, err = cl.Guess(ctx, &hangmanv1.GuessRequest{Room: "h", PlayerId: "ann", Token: ann.GetToken(), Letter: "w"})
	wantCode(t, "the setter's guess", err, codes.FailedPrecondition)
	seen = append(seen, err.Error())
	for _, l := range "wob" {
		g, err := cl.Guess(ctx, &hangmanv1.GuessRequest{Room: "h", PlayerId: "bob", Token: bob.GetToken(), Letter: string(l)})
		keep(g.GetState(), err)
	}
	r, err := cl.GetRoom(ctx, &hangmanv1.GetRoomRequest{Room: "h"})
	keep(r.GetState(), err)
	lists, err := cl.ListRooms(ctx, &hangmanv1.ListRoomsRequest{})
	b, _ := protojson.Marshal(lists)
	seen = append(seen, string(b), logs.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range seen {
		if strings.Contains(strings.ToLower(s), "wombat") {
			t.Fatalf("the word of a playing round shows: %s", s)
		}
	}
	if r.GetState().GetMasked() != "wo_b__" {
		t.Fatalf("masked %q", r.GetState().GetMasked())
	}
}
