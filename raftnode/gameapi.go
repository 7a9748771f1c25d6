package raftnode

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"golang.org/x/time/rate"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
	"github.com/hangman/hangman/services/api"
	"github.com/hangman/hangman/services/game"
	"github.com/hangman/hangman/subjects"
	"github.com/hangman/hangman/wire"
)

// The game API over NATS (DESIGN.md, hangman.api.create, .join, .guess,
// .newround, .setword, .list): the GameService's commands as NATS micro endpoints,
// for clients that speak NATS alone, such as the nats CLI. Each request
// is decoded strictly and handed to the node's own api.Service, the very
// code the gRPC calls run: the same validation, request ids, player
// tokens, caps, forwarding to the leader and retries across leader
// changes. Only the encoding differs: JSON in and out, and a micro error
// (headers Nats-Service-Error-Code and Nats-Service-Error, body APIError)
// whose code mirrors the gRPC status.

// Bounds of the NATS game API.
const (
	// maxAPIRequest bounds one request: a few names, a token and a
	// request id fit many times over (the relays' frame limit).
	maxAPIRequest = 4096
	// maxAPIInFlight bounds the requests one node serves at once; more
	// are answered 503 at once, so a flood costs the node no goroutines
	// and no memory beyond the bound.
	maxAPIInFlight = 256
	// apiTimeout bounds one request, below the nats CLI's default
	// timeout (5s), so that a client hears "unavailable, retry" rather
	// than nothing while the cluster elects a leader.
	apiTimeout = 4 * time.Second
)

// Creations and joins over NATS are rate limited per node, as a relay
// limits them per client address: every NATS player is one client to the
// node, and the caps (--max-rooms, --max-players) are what protect the
// cluster from many nodes' worth.
const (
	apiCreateRate, apiCreateBurst = 0.5, 10
	apiJoinRate, apiJoinBurst     = 1, 20
)

// CreateRequest is the request of hangman.api.create.
type CreateRequest struct {
	Room string `json:"room"`
	// MaxWrong is the wrong-guess limit, 1-26; 0 means the default.
	MaxWrong  int32  `json:"maxWrong,omitempty"`
	RequestID string `json:"requestId,omitempty"`
	// The room's settings, as in CreateRoomRequest: the word category
	// (classic, animals, countries, food), the words' length range, the
	// room's own player cap, the mode ("random" or "host") and the length
	// of a turn in seconds (0: no turns).
	Category    string `json:"category,omitempty"`
	MinWordLen  int32  `json:"minWordLen,omitempty"`
	MaxWordLen  int32  `json:"maxWordLen,omitempty"`
	MaxPlayers  int32  `json:"maxPlayers,omitempty"`
	Mode        string `json:"mode,omitempty"`
	TurnSeconds int32  `json:"turnSeconds,omitempty"`
}

// JoinRequest is the request of hangman.api.join: it takes a seat, or
// renames or returns to one (then with the seat's token).
type JoinRequest struct {
	Room   string `json:"room"`
	Player string `json:"player"`
	Name   string `json:"name,omitempty"`
	// Token is the seat's token; a first join may bring one of its own
	// (then no answer ever carries it) or none (then the node draws one
	// and the answer carries it).
	Token     string `json:"token,omitempty"`
	RequestID string `json:"requestId,omitempty"`
}

// GuessRequest is the request of hangman.api.guess.
type GuessRequest struct {
	Room      string `json:"room"`
	Player    string `json:"player"`
	Token     string `json:"token"`
	Letter    string `json:"letter"`
	RequestID string `json:"requestId,omitempty"`
}

// NewRoundRequest is the request of hangman.api.newround.
type NewRoundRequest struct {
	Room      string `json:"room"`
	Player    string `json:"player"`
	Token     string `json:"token"`
	RequestID string `json:"requestId,omitempty"`
}

// SetWordRequest is the request of hangman.api.setword: the setter of a
// host room's waiting round sets its word. Only the nodes may subscribe
// to hangman.api.>, so the word reaches the node that serves the request
// and nobody else.
type SetWordRequest struct {
	Room      string `json:"room"`
	Player    string `json:"player"`
	Token     string `json:"token"`
	Word      string `json:"word"`
	RequestID string `json:"requestId,omitempty"`
}

// ListRequest is the request of hangman.api.list: the rooms after After
// (the previous page's Next), at most Limit of them (0: 50, at most 100).
type ListRequest struct {
	After string `json:"after,omitempty"`
	Limit uint32 `json:"limit,omitempty"`
}

// StateReply answers create, newround and setword: the room's public state, the
// payload of hangman.room.<room>.state.
type StateReply struct {
	State json.RawMessage `json:"state"`
}

// JoinReply answers a join. Token is set only when the node drew it (the
// join brought none): it is the seat, keep it.
type JoinReply struct {
	State   json.RawMessage `json:"state"`
	Token   string          `json:"token,omitempty"`
	NewSeat bool            `json:"newSeat"`
}

// GuessReply answers a guess; Duplicate says the request id was seen
// before and this is its first answer again.
type GuessReply struct {
	Outcome   string          `json:"outcome"`
	Duplicate bool            `json:"duplicate"`
	Index     uint64          `json:"index"`
	State     json.RawMessage `json:"state"`
}

// ListReply is one page of rooms, in name order; Next, when set, is the
// After of the next page.
type ListReply struct {
	Rooms   []game.Summary `json:"rooms"`
	Next    string         `json:"next,omitempty"`
	Applied uint64         `json:"applied"`
}

// APIError is the body of an error answer of the game API.
type APIError struct {
	Error string `json:"error"`
	// Code is the micro error code: 400 (invalid request), 403 (no or
	// wrong token), 404 (no such room), 409 (already exists), 410, 412
	// (refused by the rules: the round is over, the player has not
	// joined, a cap is reached), 413 (request too large), 429 (too many
	// creations or joins), 500, 503 (no leader, or busy: retry with the
	// same requestId) or 504.
	Code int `json:"code"`
	// Status is the gRPC status the same call would have had.
	Status string `json:"status"`
	Node   string `json:"node"`
}

// gameAPI serves the game API's endpoints on one node.
type gameAPI struct {
	// ctx ends when the node closes, and with it every request.
	ctx context.Context
	n   *Node
	svc *api.Service
	// nc answers the requests served on a goroutine of their own.
	nc      *nats.Conn
	slots   chan struct{}
	creates *rate.Limiter
	joins   *rate.Limiter
}

// addGameEndpoints adds the game API's endpoints to the node's micro
// service, in the nodes' queue group: one node, whichever NATS picks,
// answers each request, and any node will do, since the service routes
// writes to the leader.
func (n *Node) addGameEndpoints(ctx context.Context, svc micro.Service, nc *nats.Conn, game *api.Service) error {
	g := &gameAPI{ctx: ctx, n: n, svc: game, nc: nc, slots: make(chan struct{}, maxAPIInFlight),
		creates: rate.NewLimiter(apiCreateRate, apiCreateBurst), joins: rate.NewLimiter(apiJoinRate, apiJoinBurst)}
	for _, e := range []struct {
		name, subject, desc string
		serve               func(context.Context, []byte) (any, error)
	}{
		{"create", subjects.APICreate, `create a room: {"room","maxWrong","category","minWordLen","maxWordLen","maxPlayers","mode","turnSeconds","requestId"}`, g.create},
		{"join", subjects.APIJoin, `take, rename or return to a seat: {"room","player","name","token","requestId"}`, g.join},
		{"guess", subjects.APIGuess, `guess a letter: {"room","player","token","letter","requestId"}`, g.guess},
		{"newround", subjects.APINewRound, `start the next round of a finished room: {"room","player","token","requestId"}`, g.newRound},
		{"setword", subjects.APISetWord, `set the word of a host room's round, as its setter: {"room","player","token","word","requestId"}`, g.setWord},
		{"list", subjects.APIList, `one page of rooms: {"after","limit"}`, g.list},
	} {
		err := svc.AddEndpoint(e.name, g.handler(e.name, e.serve),
			micro.WithEndpointSubject(e.subject),
			micro.WithEndpointQueueGroup(apiQueueGroup),
			micro.WithEndpointMetadata(map[string]string{"description": e.desc}))
		if err != nil {
			return fmt.Errorf("add %s endpoint: %w", e.subject, err)
		}
	}
	return nil
}

// handler runs serve for each request on a goroutine of its own, at most
// maxAPIInFlight at once, so a request waiting for a leader holds up no
// other. That goroutine answers on the reply subject itself: micro reads
// a request's error once its handler returns, so answering through the
// request later would race with it (and micro's error counts leave out
// those answers).
func (g *gameAPI) handler(op string, serve func(context.Context, []byte) (any, error)) micro.Handler {
	return micro.HandlerFunc(func(req micro.Request) {
		data := req.Data()
		if len(data) > maxAPIRequest {
			code, desc, body := g.failure(op, len(data), status.Errorf(codes.ResourceExhausted, "request of %d bytes exceeds %d", len(data), maxAPIRequest))
			g.answered(op, req.Error(code, desc, body))
			return
		}
		select {
		case g.slots <- struct{}{}:
		default:
			code, desc, body := g.failure(op, len(data), status.Errorf(codes.Unavailable, "node %s is serving %d requests already: retry with the same requestId", g.n.cfg.ID, maxAPIInFlight))
			g.answered(op, req.Error(code, desc, body))
			return
		}
		reply := req.Reply()
		go func() {
			defer func() { <-g.slots }()
			ctx, cancel := context.WithTimeout(g.ctx, apiTimeout)
			defer cancel()
			out, err := serve(ctx, data)
			m := &nats.Msg{Subject: reply}
			if err != nil {
				code, desc, body := g.failure(op, len(data), err)
				m.Data, m.Header = body, nats.Header{micro.ErrorHeader: {desc}, micro.ErrorCodeHeader: {code}}
			} else if m.Data, err = json.Marshal(out); err != nil {
				// Every answer is a plain struct of strings, numbers
				// and raw JSON the node encoded itself.
				panic(fmt.Sprintf("encode %s answer: %v", op, err))
			}
			g.answered(op, g.nc.PublishMsg(m))
		}()
	})
}

// answered logs an answer that could not be sent.
func (g *gameAPI) answered(op string, err error) {
	if err != nil {
		g.n.log.Warn("answer game api request", "op", op, "err", err)
	}
}

func (g *gameAPI) create(ctx context.Context, data []byte) (any, error) {
	var q CreateRequest
	if err := decodeRequest(data, &q, `{"room":"<room>"}`); err != nil {
		return nil, err
	}
	if err := limited(g.creates, "room creations"); err != nil {
		return nil, err
	}
	res, err := g.svc.CreateRoom(ctx, &hangmanv1.CreateRoomRequest{Room: q.Room, MaxWrong: q.MaxWrong, RequestId: q.RequestID,
		Category: q.Category, MinWordLen: q.MinWordLen, MaxWordLen: q.MaxWordLen, MaxPlayers: q.MaxPlayers, Mode: q.Mode, TurnSeconds: q.TurnSeconds})
	if err != nil {
		return nil, err
	}
	return StateReply{State: stateJSON(res.GetState())}, nil
}

func (g *gameAPI) join(ctx context.Context, data []byte) (any, error) {
	var q JoinRequest
	if err := decodeRequest(data, &q, `{"room":"<room>","player":"<id>","name":"<name>"}`); err != nil {
		return nil, err
	}
	if err := limited(g.joins, "joins"); err != nil {
		return nil, err
	}
	if q.Token == "" && g.n.cfg.NATSAuth.PlayerPassword != "" {
		// Players share the NATS user player, and with it its inboxes: a
		// token drawn here would reach every player's client that listens
		// there (DESIGN.md, guarantee 10).
		return nil, status.Error(codes.InvalidArgument, "bring your own token to a first join over NATS (\"token\": 22-64 of A-Z, a-z, 0-9, '-' or '_', e.g. from openssl rand -hex 16): "+
			"players share the NATS user player and its inboxes, so a token drawn by the node could be read by another player")
	}
	res, err := g.svc.JoinRoom(ctx, &hangmanv1.JoinRoomRequest{Room: q.Room, PlayerId: q.Player, Name: q.Name, Token: q.Token, RequestId: q.RequestID})
	if err != nil {
		return nil, err
	}
	out := JoinReply{State: stateJSON(res.GetState()), NewSeat: res.GetNewSeat()}
	if q.Token == "" {
		out.Token = res.GetToken()
	}
	return out, nil
}

func (g *gameAPI) guess(ctx context.Context, data []byte) (any, error) {
	var q GuessRequest
	if err := decodeRequest(data, &q, `{"room":"<room>","player":"<id>","token":"<token>","letter":"<a-z>"}`); err != nil {
		return nil, err
	}
	res, err := g.svc.Guess(ctx, &hangmanv1.GuessRequest{Room: q.Room, PlayerId: q.Player, Token: q.Token, Letter: q.Letter, RequestId: q.RequestID})
	if err != nil {
		return nil, err
	}
	return GuessReply{Outcome: res.GetOutcome(), Duplicate: res.GetDuplicate(), Index: res.GetIndex(), State: stateJSON(res.GetState())}, nil
}

func (g *gameAPI) newRound(ctx context.Context, data []byte) (any, error) {
	var q NewRoundRequest
	if err := decodeRequest(data, &q, `{"room":"<room>","player":"<id>","token":"<token>"}`); err != nil {
		return nil, err
	}
	res, err := g.svc.NewRound(ctx, &hangmanv1.NewRoundRequest{Room: q.Room, PlayerId: q.Player, Token: q.Token, RequestId: q.RequestID})
	if err != nil {
		return nil, err
	}
	return StateReply{State: stateJSON(res.GetState())}, nil
}

func (g *gameAPI) setWord(ctx context.Context, data []byte) (any, error) {
	var q SetWordRequest
	if err := decodeRequest(data, &q, `{"room":"<room>","player":"<id>","token":"<token>","word":"<a-z>"}`); err != nil {
		return nil, err
	}
	res, err := g.svc.SetWord(ctx, &hangmanv1.SetWordRequest{Room: q.Room, PlayerId: q.Player, Token: q.Token, Word: q.Word, RequestId: q.RequestID})
	if err != nil {
		return nil, err
	}
	return StateReply{State: stateJSON(res.GetState())}, nil
}

func (g *gameAPI) list(ctx context.Context, data []byte) (any, error) {
	var q ListRequest
	if len(data) == 0 {
		data = []byte("{}") // `nats req hangman.api.list ''` asks for the first page
	}
	if err := decodeRequest(data, &q, `{"after":"<room>","limit":<n>}`); err != nil {
		return nil, err
	}
	res, err := g.svc.ListRooms(ctx, &hangmanv1.ListRoomsRequest{PageToken: q.After, PageSize: q.Limit})
	if err != nil {
		return nil, err
	}
	out := ListReply{Rooms: make([]game.Summary, len(res.GetRooms())), Next: res.GetNextPageToken(), Applied: res.GetAppliedIndex()}
	for i, r := range res.GetRooms() {
		out.Rooms[i] = game.Summary{Room: r.GetRoom(), Players: int(r.GetPlayers()), Round: r.GetRound(), Status: game.Status(r.GetStatus()), Seq: r.GetSeq()}
	}
	return out, nil
}

// decodeRequest parses a request strictly; what is not one is
// InvalidArgument, as a gRPC request that does not parse.
func decodeRequest(data []byte, v any, want string) error {
	if err := decodeStrict(data, v, want); err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	return nil
}

// limited refuses a request its bucket has no room for.
func limited(l *rate.Limiter, what string) error {
	r := l.Reserve()
	if d := r.Delay(); d > 0 {
		r.Cancel()
		return status.Errorf(codes.ResourceExhausted, "too many %s over NATS on this node: retry in %v", what, d.Round(time.Millisecond))
	}
	return nil
}

// stateJSON is a state as hangman.room.<room>.state carries it.
func stateJSON(p *hangmanv1.RoomState) json.RawMessage {
	st := wire.StateFromProto(p)
	return st.AppendJSON(nil)
}

// microCode is the micro error code of a gRPC status code.
func microCode(c codes.Code) int {
	switch c {
	case codes.InvalidArgument:
		return 400
	case codes.PermissionDenied, codes.Unauthenticated:
		return 403
	case codes.NotFound:
		return 404
	case codes.AlreadyExists:
		return 409
	case codes.OutOfRange:
		return 410
	case codes.FailedPrecondition:
		return 412
	case codes.Unavailable, codes.Canceled:
		return 503
	case codes.DeadlineExceeded:
		return 504
	}
	return 500
}

// failure is err as a micro error of a request of size bytes: its code,
// description and body. A failure of the rules or of the cluster says what
// it is; an internal one is logged here and answered without its detail,
// which may name files on the node. No message of the service repeats a
// token.
func (g *gameAPI) failure(op string, size int, err error) (code, desc string, body []byte) {
	st := status.Convert(err)
	e := APIError{Error: st.Message(), Code: microCode(st.Code()), Status: st.Code().String(), Node: g.n.cfg.ID}
	if st.Code() == codes.ResourceExhausted {
		e.Code = 429
		if size > maxAPIRequest {
			e.Code = 413
		}
	}
	if e.Code == 500 {
		g.n.log.Warn("game api request failed", "op", op, "code", st.Code().String(), "err", st.Message())
		e.Error = "internal error on node " + g.n.cfg.ID + " (its log has the cause)"
	}
	body, merr := json.Marshal(e)
	if merr != nil {
		// APIError is strings and numbers.
		panic(fmt.Sprintf("encode api error: %v", merr))
	}
	return strconv.Itoa(e.Code), e.Error, body
}
