package api

import (
	"crypto/rand"
	"encoding/base64"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hangman/hangman/services/game"
)

// tokenBytes is the randomness of a token the service draws: 192 bits,
// 32 characters of URL-safe base64.
const tokenBytes = 24

// NewToken draws a player's token: what a join that brings none is given,
// and what any client that wants its first join to be safe to retry draws
// for itself.
func NewToken() string {
	var b [tokenBytes]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// withToken puts the hash of token, which a call acting as cmd.Player
// brings, into cmd: the Machine compares it with the seat's. The token
// itself goes no further, and no error repeats it. A missing or malformed
// token is PERMISSION_DENIED at once; a well-formed one that is not the
// seat's is refused by the rules, with the same code.
func withToken(cmd *game.Command, token string) error {
	switch {
	case token == "":
		return status.Errorf(codes.PermissionDenied, "acting as player %q takes the token the seat was joined with (JoinRoom returns it)", cmd.Player)
	case !game.ValidToken(token):
		return status.Error(codes.PermissionDenied, game.TokenRule)
	}
	cmd.TokenHash = game.HashToken(token)
	return nil
}
