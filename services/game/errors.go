package game

import (
	"errors"
	"fmt"
)

// Code classifies why a command was refused, so transports can map it to
// their own status codes (gRPC, websocket error frames) without parsing text.
type Code uint8

// Codes of refused commands.
const (
	// CodeInvalid: the command itself is malformed (two letters, a bad room
	// name, an empty player). Retrying it unchanged can never succeed.
	CodeInvalid Code = iota + 1
	// CodeNotFound: the room (or player) it names does not exist.
	CodeNotFound
	// CodeExists: the room it would create already exists.
	CodeExists
	// CodePrecondition: the command is well formed but the room is not in a
	// state that allows it (round over, player not joined, room full).
	CodePrecondition
	// CodePermission: the command acts as a player whose seat belongs to
	// the holder of another token (see Command.TokenHash).
	CodePermission
	// CodeBusy: the room answered so many requests so recently that it
	// cannot remember one more answer (SessionCap). Unlike the others this
	// refusal is not remembered: the request was not applied, and sending
	// it again with the same id later is safe.
	CodeBusy
)

// String names the code for logs and error messages.
func (c Code) String() string {
	switch c {
	case CodeInvalid:
		return "invalid"
	case CodeNotFound:
		return "not found"
	case CodeExists:
		return "exists"
	case CodePrecondition:
		return "precondition"
	case CodePermission:
		return "permission"
	case CodeBusy:
		return "busy"
	default:
		return fmt.Sprintf("code(%d)", uint8(c))
	}
}

// Error is a refusal by the rules. A refused command changes no room; if it
// carries a request id, the refusal is remembered as that request's answer
// (see Result.Duplicate).
type Error struct {
	Code Code
	Msg  string
}

// Error returns the human-readable reason.
func (e *Error) Error() string { return e.Msg }

func errorf(code Code, format string, args ...any) error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// CodeOf returns the Code of err if it is (or wraps) an *Error, and 0
// otherwise.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}
