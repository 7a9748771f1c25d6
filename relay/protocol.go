package relay

import (
	"encoding/json"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Client frame types (browser to relay). See PROTOCOL.md.
const (
	typeJoin     = "join"
	typeWatch    = "watch"
	typeLeave    = "leave"
	typeGuess    = "guess"
	typeCreate   = "create"
	typeNewRound = "newRound"
	typeSetWord  = "setWord"
	typeList     = "list"
	typePing     = "ping"
)

// Error codes of error frames. They are stable: the page and other clients
// switch on them; the message is for humans.
const (
	CodeBadJSON         = "bad_json"
	CodeUnknownType     = "unknown_type"
	CodeBadRequest      = "bad_request"
	CodeBinary          = "binary_not_supported"
	CodeFrameTooLarge   = "frame_too_large"
	CodeRateLimited     = "rate_limited"
	CodeFlood           = "flood"
	CodeBusy            = "busy"
	CodeNotJoined       = "not_joined"
	CodePermission      = "permission_denied"
	CodeInvalid         = "invalid"
	CodeNotFound        = "not_found"
	CodeExists          = "exists"
	CodePrecondition    = "precondition"
	CodeUnavailable     = "unavailable"
	CodeTimeout         = "timeout"
	CodeInternal        = "internal"
	CodeOriginForbidden = "origin_not_allowed"
	CodeTooManyConns    = "too_many_connections"
	CodeTooManyFromAddr = "too_many_connections_from_address"
	CodeShuttingDown    = "shutting_down"
	CodeNotWebsocket    = "not_websocket"
)

// inbound is any client frame; which fields matter depends on Type. Unknown
// fields are ignored so that newer pages work with older relays.
type inbound struct {
	Type     string `json:"type"`
	ID       string `json:"id,omitempty"`
	Room     string `json:"room,omitempty"`
	PlayerID string `json:"playerId,omitempty"`
	Name     string `json:"name,omitempty"`
	Letter   string `json:"letter,omitempty"`
	MaxWrong int    `json:"maxWrong,omitempty"`
	// Token is the player's token, on join, guess, newRound and setWord.
	Token string `json:"token,omitempty"`
	// The room settings of a create (see CreateRoomRequest).
	Category    string `json:"category,omitempty"`
	MinWordLen  int    `json:"minWordLen,omitempty"`
	MaxWordLen  int    `json:"maxWordLen,omitempty"`
	MaxPlayers  int    `json:"maxPlayers,omitempty"`
	Mode        string `json:"mode,omitempty"`
	TurnSeconds int    `json:"turnSeconds,omitempty"`
	// Word is the word a setWord sets; it is never logged or echoed.
	Word string `json:"word,omitempty"`
	// After and Limit page a list: the rooms after After (the previous
	// page's Next), at most Limit of them.
	After string `json:"after,omitempty"`
	Limit int    `json:"limit,omitempty"`
	// Watch starts (true, or absent) or stops (false) following the
	// lobby or the cluster view.
	Watch *bool `json:"watch,omitempty"`
}

// welcomeFrame greets every new connection.
type welcomeFrame struct {
	Type   string   `json:"type"`
	Relay  string   `json:"relay"`
	URL    string   `json:"url,omitempty"`
	Relays []string `json:"relays"`
	Limits limits   `json:"limits"`
}

type limits struct {
	MaxFrameBytes int64   `json:"maxFrameBytes"`
	MessageRate   float64 `json:"messageRate"`
	MessageBurst  int     `json:"messageBurst"`
}

// relaysFrame tells browsers the relays they may fail over to.
type relaysFrame struct {
	Type   string   `json:"type"`
	Relays []string `json:"relays"`
}

// ackFrame confirms a command; Outcome and Duplicate are set for guesses,
// Token for joins (the seat's token, sent to this connection only).
type ackFrame struct {
	Type      string `json:"type"`
	ID        string `json:"id,omitempty"`
	Op        string `json:"op"`
	Room      string `json:"room,omitempty"`
	Outcome   string `json:"outcome,omitempty"`
	Duplicate bool   `json:"duplicate,omitempty"`
	Seq       uint64 `json:"seq,omitempty"`
	Token     string `json:"token,omitempty"`
}

// errorFrame refuses a frame or reports a failed command. RetryAfterMs,
// on a rate-limited creation or join, says when it would go through.
type errorFrame struct {
	Type         string `json:"type"`
	Code         string `json:"code"`
	Message      string `json:"message"`
	ID           string `json:"id,omitempty"`
	RetryAfterMs int64  `json:"retryAfterMs,omitempty"`
}

// roomsFrame is one page of the lobby; Next, when set, is the After of
// the next page.
type roomsFrame struct {
	Type  string        `json:"type"`
	ID    string        `json:"id,omitempty"`
	Rooms []roomSummary `json:"rooms"`
	Next  string        `json:"next,omitempty"`
}

type roomSummary struct {
	Room    string `json:"room"`
	Round   uint64 `json:"round"`
	Status  string `json:"status"`
	Players int32  `json:"players"`
	Seq     uint64 `json:"seq"`
}

type pongFrame struct {
	Type string `json:"type"`
	ID   string `json:"id,omitempty"`
}

// encode marshals a frame of ours. Our frame types always encode; a failure
// is a programming error, reported as an internal error frame.
func encode(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		return []byte(`{"type":"error","code":"internal","message":"the relay failed to encode a reply"}`)
	}
	return b
}

func errFrame(code, msg, id string) []byte {
	return encode(errorFrame{Type: "error", Code: code, Message: msg, ID: id})
}

// wrapPayload builds the frame {"type":<typ>,"data":<payload>} around a NATS
// payload without decoding and re-encoding it: built once per NATS message,
// the same bytes go to every session of the room.
func wrapPayload(typ string, payload []byte) []byte {
	const mid = `","data":`
	b := make([]byte, 0, len(`{"type":"`)+len(typ)+len(mid)+len(payload)+1)
	b = append(b, `{"type":"`...)
	b = append(b, typ...)
	b = append(b, mid...)
	b = append(b, payload...)
	return append(b, '}')
}

// grpcError maps a failed gRPC call to an error frame code and message.
func grpcError(err error) (code, msg string) {
	st, _ := status.FromError(err)
	switch st.Code() {
	case codes.InvalidArgument:
		return CodeInvalid, st.Message()
	case codes.NotFound:
		return CodeNotFound, st.Message()
	case codes.AlreadyExists:
		return CodeExists, st.Message()
	case codes.FailedPrecondition:
		return CodePrecondition, st.Message()
	case codes.PermissionDenied:
		return CodePermission, st.Message()
	case codes.ResourceExhausted:
		return CodeBusy, st.Message()
	case codes.Unavailable:
		return CodeUnavailable, "the game cluster could not take the command in time (" + st.Message() + "); sending it again with the same id is safe"
	case codes.DeadlineExceeded, codes.Canceled:
		return CodeTimeout, "the game cluster did not answer in time; sending the command again with the same id is safe"
	default:
		return CodeInternal, "the game cluster failed: " + st.Message()
	}
}
