package relay

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/gorilla/websocket"
	"github.com/olahol/melody"

	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
	"github.com/hangman/hangman/services/api"
	"github.com/hangman/hangman/services/game"
)

const clientKey = "hangman.client"

// client is one browser connection.
//
// Frames are read on the connection's read goroutine and limited, parsed
// and answered (pings, errors) on the relay's frame pool, one frame at a
// time, in order; commands then run one at a time, in order, on the
// client's worker goroutine, so a command waiting on the cluster (a leader
// election takes seconds) never stops the connection from being read,
// pinged or limited. room, playerID and joined belong to the worker (and to
// onDisconnect, once the worker has ended).
type client struct {
	r       *Relay
	sess    *melody.Session
	conn    *trackedConn
	dropped atomic.Bool // dropped for not reading its answers
	// out holds the frames on their way to the socket (outbox.go).
	out outbox
	// release gives back the connection's place under the limits when
	// its session ends.
	release func()
	// gate is the connection's state on the frame pool (dispatch.go).
	gate frameGate

	ctx    context.Context // ends when the connection does
	cancel context.CancelFunc
	// cmds are the commands waiting for the client's worker.
	cmds cmdQueue

	// addr is the client's address (clientAddr) and lims its creation
	// and join buckets, the connection's and the address's
	// (admission.go).
	addr string
	lims *connLimits

	// worker only
	room     string // the watched room, "" in the lobby
	playerID string // set by a successful join
	joined   bool
	// spectating is the room c is counted a spectator of (it watches
	// it without a seat), "" if none (spectators.go).
	spectating string
}

// maxQueued bounds the commands waiting for the worker; the rate limit
// keeps a browser far below it.
const maxQueued = 32

func clientOf(s *melody.Session) *client {
	v, _ := s.Get(clientKey)
	c, _ := v.(*client)
	return c
}

func (r *Relay) onConnect(s *melody.Session) {
	c := clientOf(s)
	c.sess = s
	// melody keeps the upgrade request for the handlers, which need
	// nothing of it (serveWS read the client's address): dropped, it
	// costs an idle connection nothing.
	s.Request = nil
	c.ctx, c.cancel = context.WithCancel(r.ctx)
	// The session joins the set before its welcome is built: a change to
	// the relay list is then either in the welcome, or told to the session
	// after it. What is told to it waits in its outbox, held, until the
	// welcome goes ahead of it.
	r.sessions.add(c)
	r.stats.sessions.Add(1)
	r.out.queue(c, outItem{kind: outWelcome, frame: encode(welcomeFrame{
		Type:   "welcome",
		Relay:  r.cfg.Name,
		URL:    r.cfg.PublicURL,
		Relays: r.peers.urls(),
		Limits: limits{MaxFrameBytes: r.cfg.MaxFrameBytes, MessageRate: r.cfg.MessageRate, MessageBurst: r.cfg.MessageBurst},
	})})
}

func (r *Relay) onDisconnect(s *melody.Session) {
	c := clientOf(s)
	c.out.close()
	c.cancel()
	c.cmds.wait()
	if c.room != "" {
		r.rooms.unwatch(c, c.room)
	}
	c.stopSpectating()
	r.sessions.remove(c)
	r.stats.sessions.Add(-1)
}

// onError counts the clients closed for an oversized frame.
func (r *Relay) onError(s *melody.Session, err error) {
	if errors.Is(err, websocket.ErrReadLimit) {
		r.stats.tooBig.Add(1)
		r.log.Info("closed client that sent an oversized frame", "remote", clientOf(s).conn.RemoteAddr(), "limit", r.cfg.MaxFrameBytes)
	}
}

// cmdQueue is a client's commands waiting for its worker: a goroutine
// that runs only while there is work (an idle connection costs no
// goroutine of its own) and runs them one at a time, in the order sent, so
// the client's worker-only fields are never shared.
type cmdQueue struct {
	mu      sync.Mutex
	queue   []*inbound
	working bool
	workers sync.WaitGroup
}

// push queues a command, starting a worker that runs run on each command
// if none runs; false if the queue is full. Called from the dispatcher
// only.
func (q *cmdQueue) push(in *inbound, run func(*inbound)) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.queue) >= maxQueued {
		return false
	}
	q.queue = append(q.queue, in)
	if !q.working {
		q.working = true
		q.workers.Add(1)
		go q.work(run)
	}
	return true
}

// work runs the queued commands in order and ends when the queue is empty.
func (q *cmdQueue) work(run func(*inbound)) {
	defer q.workers.Done()
	for {
		q.mu.Lock()
		if len(q.queue) == 0 {
			q.working = false
			q.queue = nil
			q.mu.Unlock()
			return
		}
		in := q.queue[0]
		q.queue = q.queue[1:]
		q.mu.Unlock()
		run(in)
	}
}

// wait waits for the worker, if one runs, to end.
func (q *cmdQueue) wait() { q.workers.Wait() }

// runQueued runs a queued command, unless the connection has ended.
func (c *client) runQueued(in *inbound) {
	if c.ctx.Err() == nil {
		frameHandlers[in.Type].run(c, in)
	}
}

// ping answers a liveness check at once, even while a command waits.
func (c *client) ping(in *inbound) {
	c.r.out.send(c, encode(pongFrame{Type: "pong", ID: in.ID}))
}

func (c *client) fail(id, code, msg string) {
	c.r.out.send(c, errFrame(code, msg, id))
}

// limited refuses a command that a creation or join limit holds back,
// saying when it would go through; it reports whether it did.
func (c *client) limited(id string, op int) bool {
	ref := c.r.admit.check(c.lims, op)
	if ref == nil {
		return false
	}
	c.r.out.send(c, encode(errorFrame{Type: "error", Code: CodeRateLimited, Message: ref.msg, ID: id, RetryAfterMs: max(ref.retry.Milliseconds(), 1)}))
	return true
}

// token returns the player's token a command frame carries, or refuses
// the command: every command acting as a player proves it is theirs.
func (c *client) token(in *inbound) (string, bool) {
	switch {
	case in.Token == "":
		c.fail(in.ID, CodePermission, fmt.Sprintf("a %s carries the player's token: the one the join was sent with, or its ack returned", in.Type))
		return "", false
	case !game.ValidToken(in.Token):
		c.fail(in.ID, CodePermission, game.TokenRule)
		return "", false
	}
	return in.Token, true
}

func (c *client) failCall(id string, err error) {
	c.r.stats.commandsFailed.Add(1)
	code, msg := grpcError(err)
	c.fail(id, code, msg)
}

// requestID turns the id a browser gave a command into the request id sent
// to the cluster. It is scoped by player, since different browsers may pick
// the same ids, and stable, so the same command sent again (after a relay
// died, to another relay) is applied at most once. Without an id, every
// frame is a new command.
func requestID(playerID, id string) string {
	if id == "" {
		var b [12]byte
		_, _ = rand.Read(b[:])
		return "relay-" + hex.EncodeToString(b[:])
	}
	sum := sha256.Sum256([]byte(playerID + "\x00" + id))
	return "ws-" + base64.RawURLEncoding.EncodeToString(sum[:24])
}

// reqCtx bounds one command; it ends early if the connection does.
func (c *client) reqCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.ctx, c.r.cfg.RequestTimeout)
}

// roomAnswer is the answer of every command that changes a room: it
// carries the state the command left.
type roomAnswer interface{ GetState() *hangmanv1.RoomState }

// command is the one path of a command to the cluster: call runs on
// whichever node nodes.call picks (retried across nodes and leader
// changes, within ctx); a failure is answered with its error frame, and a
// success's state is offered to the room's watchers before the caller
// acknowledges it, so the ack never overtakes the state it reports.
// retried says an earlier attempt may have been applied.
func command[R roomAnswer](ctx context.Context, c *client, id, rpc string, call func(context.Context, hangmanv1.GameServiceClient) (R, error)) (res R, retried, ok bool) {
	retried, err := c.r.nodes.call(ctx, rpc, func(ctx context.Context, g hangmanv1.GameServiceClient) (err error) {
		res, err = call(ctx, g)
		return err
	})
	if err != nil {
		c.failCall(id, err)
		return res, retried, false
	}
	c.r.rooms.offerProto(res.GetState())
	return res, retried, true
}

// ack acknowledges a command of c.
func (c *client) ack(a ackFrame) {
	a.Type = "ack"
	c.r.out.send(c, encode(a))
}

// roomRule is the error message of an invalid room name.
var roomRule = fmt.Sprintf("room must be 1-%d of a-z, 0-9, '-' or '_', starting with a letter or digit", game.MaxRoomLen)

// join watches a room and adds the player to it. The room is watched first,
// so no update after the join can be missed. A join without a token gets
// one drawn here, once, so that the relay's own retries of the join are
// retries of the same request; the ack carries the seat's token.
func (c *client) join(in *inbound) {
	switch {
	case !game.ValidRoom(in.Room):
		c.fail(in.ID, CodeBadRequest, roomRule)
		return
	case !game.ValidPlayerID(in.PlayerID):
		c.fail(in.ID, CodeBadRequest, fmt.Sprintf("playerId must be 1-%d of A-Z, a-z, 0-9, '-' or '_'", game.MaxPlayerIDLen))
		return
	case !game.ValidName(in.Name):
		c.fail(in.ID, CodeBadRequest, fmt.Sprintf("name must be 1-%d printable characters", game.MaxNameLen))
		return
	}
	if in.Token == "" {
		in.Token = api.NewToken()
	}
	token, ok := c.token(in)
	if !ok {
		return
	}
	newWatch := c.moveTo(in.Room)
	undo := func() {
		if newWatch {
			c.moveTo("")
		}
	}
	ctx, cancel := c.reqCtx()
	defer cancel()
	// Only a join that takes a seat is limited: a player coming back (a
	// reload, a failover) is never held back.
	if c.r.admit.spent(c.lims, cmdJoin) && !c.seated(ctx, in.Room, in.PlayerID) && c.limited(in.ID, cmdJoin) {
		undo()
		return
	}
	req := &hangmanv1.JoinRoomRequest{Room: in.Room, PlayerId: in.PlayerID, Name: in.Name, RequestId: requestID(in.PlayerID, in.ID), Token: token}
	res, _, ok := command(ctx, c, in.ID, "join", func(ctx context.Context, g hangmanv1.GameServiceClient) (*hangmanv1.JoinRoomResponse, error) {
		return g.JoinRoom(ctx, req)
	})
	if !ok {
		undo()
		return
	}
	if res.GetNewSeat() {
		c.lims.spend(cmdJoin)
	}
	c.playerID, c.joined = in.PlayerID, true
	c.ack(ackFrame{ID: in.ID, Op: typeJoin, Room: in.Room, Seq: res.GetState().GetSeq(), Token: res.GetToken()})
	// A spectator who takes a seat is a spectator no more.
	c.stopSpectating()
	c.r.spectators.sendTo(c, in.Room)
}

// seated reports whether player holds a seat in room, as the relay's
// cached state of the room says, or else the leader.
func (c *client) seated(ctx context.Context, room, player string) bool {
	var players []*hangmanv1.Player
	if frame := c.r.rooms.cachedState(room); frame != nil {
		var st struct {
			Data struct {
				Players []*hangmanv1.Player `json:"players"`
			} `json:"data"`
		}
		if json.Unmarshal(frame, &st) == nil {
			players = st.Data.Players
		}
	} else {
		res, err := c.r.nodes.getRoom(ctx, room)
		if err != nil {
			return false
		}
		players = res.GetState().GetPlayers()
	}
	for _, p := range players {
		if p.GetId() == player {
			return true
		}
	}
	return false
}

// watch follows a room as a spectator, without joining it: the state comes
// at once from the cache or, for a room nobody here watches, over gRPC, and
// the connection counts among the room's spectators until it leaves, joins
// or goes.
func (c *client) watch(in *inbound) {
	if !game.ValidRoom(in.Room) {
		c.fail(in.ID, CodeBadRequest, roomRule)
		return
	}
	c.moveTo(in.Room)
	c.joined = false
	c.ack(ackFrame{ID: in.ID, Op: typeWatch, Room: in.Room})
	if c.spectating != in.Room {
		c.spectate(in.Room)
	}
	c.r.spectators.sendTo(c, in.Room)
}

// leave stops watching the room.
func (c *client) leave(in *inbound) {
	c.moveTo("")
	c.ack(ackFrame{ID: in.ID, Op: typeLeave})
}

// moveTo makes room ("": none) the room c watches, unless it is already:
// c stops watching the room before, and spectating it, and holds no seat
// until a join succeeds. It reports whether c moved. join, watch and
// leave all move through here.
func (c *client) moveTo(room string) bool {
	if c.room == room {
		return false
	}
	if c.room != "" {
		c.r.rooms.unwatch(c, c.room)
	}
	c.stopSpectating()
	c.room, c.joined = room, false
	if room != "" {
		c.r.rooms.watch(c, room)
	}
	return true
}

func (c *client) guess(in *inbound) {
	if !c.joined {
		c.fail(in.ID, CodeNotJoined, "join a room before guessing")
		return
	}
	if _, err := game.NormalizeLetter(in.Letter); err != nil {
		c.fail(in.ID, CodeInvalid, err.Error())
		return
	}
	token, ok := c.token(in)
	if !ok {
		return
	}
	ctx, cancel := c.reqCtx()
	defer cancel()
	req := &hangmanv1.GuessRequest{Room: c.room, PlayerId: c.playerID, Letter: in.Letter, RequestId: requestID(c.playerID, in.ID), Token: token}
	res, retried, ok := command(ctx, c, in.ID, "guess", func(ctx context.Context, g hangmanv1.GameServiceClient) (*hangmanv1.GuessResponse, error) {
		return g.Guess(ctx, req)
	})
	if !ok {
		return
	}
	// The duplicate met may be this command's own earlier attempt, as the
	// nodes also report for their own retries.
	c.ack(ackFrame{ID: in.ID, Op: typeGuess, Room: c.room, Outcome: res.GetOutcome(), Duplicate: res.GetDuplicate() && !retried, Seq: res.GetIndex()})
}

func (c *client) create(in *inbound) {
	if !game.ValidRoom(in.Room) {
		c.fail(in.ID, CodeBadRequest, roomRule)
		return
	}
	if in.MaxWrong < 0 || in.MaxWrong > game.MaxMaxWrong {
		c.fail(in.ID, CodeBadRequest, fmt.Sprintf("maxWrong must be 1-%d (0 for the default)", game.MaxMaxWrong))
		return
	}
	if c.limited(in.ID, cmdCreate) {
		return
	}
	// Every attempt costs: a refused creation is a log entry too.
	c.lims.spend(cmdCreate)
	scope := in.PlayerID
	if scope == "" {
		scope = c.playerID
	}
	ctx, cancel := c.reqCtx()
	defer cancel()
	req := &hangmanv1.CreateRoomRequest{Room: in.Room, MaxWrong: int32(in.MaxWrong), RequestId: requestID(scope, in.ID),
		Category: in.Category, MinWordLen: int32(in.MinWordLen), MaxWordLen: int32(in.MaxWordLen), MaxPlayers: int32(in.MaxPlayers),
		Mode: in.Mode, TurnSeconds: int32(in.TurnSeconds)}
	res, _, ok := command(ctx, c, in.ID, "create", func(ctx context.Context, g hangmanv1.GameServiceClient) (*hangmanv1.CreateRoomResponse, error) {
		return g.CreateRoom(ctx, req)
	})
	if ok {
		c.ack(ackFrame{ID: in.ID, Op: typeCreate, Room: in.Room, Seq: res.GetState().GetSeq()})
	}
}

func (c *client) newRound(in *inbound) {
	if !c.joined {
		c.fail(in.ID, CodeNotJoined, "join a room before starting a round")
		return
	}
	token, ok := c.token(in)
	if !ok {
		return
	}
	ctx, cancel := c.reqCtx()
	defer cancel()
	req := &hangmanv1.NewRoundRequest{Room: c.room, PlayerId: c.playerID, RequestId: requestID(c.playerID, in.ID), Token: token}
	res, _, ok := command(ctx, c, in.ID, "new_round", func(ctx context.Context, g hangmanv1.GameServiceClient) (*hangmanv1.NewRoundResponse, error) {
		return g.NewRound(ctx, req)
	})
	if ok {
		c.ack(ackFrame{ID: in.ID, Op: typeNewRound, Room: c.room, Seq: res.GetState().GetSeq()})
	}
}

// setWord sets the word of the joined host room's waiting round, as its
// setter. The word goes to the node and nowhere else: not in the ack, not
// in a log line.
func (c *client) setWord(in *inbound) {
	if !c.joined {
		c.fail(in.ID, CodeNotJoined, "join a room before setting its word")
		return
	}
	token, ok := c.token(in)
	if !ok {
		return
	}
	ctx, cancel := c.reqCtx()
	defer cancel()
	req := &hangmanv1.SetWordRequest{Room: c.room, PlayerId: c.playerID, Word: in.Word, RequestId: requestID(c.playerID, in.ID), Token: token}
	res, _, ok := command(ctx, c, in.ID, "set_word", func(ctx context.Context, g hangmanv1.GameServiceClient) (*hangmanv1.SetWordResponse, error) {
		return g.SetWord(ctx, req)
	})
	if ok {
		c.ack(ackFrame{ID: in.ID, Op: typeSetWord, Room: c.room, Seq: res.GetState().GetSeq()})
	}
}

// list answers one page of the lobby: at most api.DefaultListPageSize
// rooms, or limit up to api.MaxListPageSize, after the room named after.
// It changes no room, so it goes to the nodes without command's offer.
func (c *client) list(in *inbound) {
	if in.After != "" && !game.ValidRoom(in.After) {
		c.fail(in.ID, CodeBadRequest, `after must be a room name: the "next" of the previous page`)
		return
	}
	if in.Limit < 0 {
		c.fail(in.ID, CodeBadRequest, fmt.Sprintf("limit must be 1-%d (0 for %d)", api.MaxListPageSize, api.DefaultListPageSize))
		return
	}
	ctx, cancel := c.reqCtx()
	defer cancel()
	req := &hangmanv1.ListRoomsRequest{Consistency: hangmanv1.Consistency_CONSISTENCY_LEADER, PageSize: uint32(min(in.Limit, api.MaxListPageSize)), PageToken: in.After}
	var res *hangmanv1.ListRoomsResponse
	_, err := c.r.nodes.call(ctx, "list", func(ctx context.Context, g hangmanv1.GameServiceClient) (err error) {
		res, err = g.ListRooms(ctx, req)
		return err
	})
	if err != nil {
		c.failCall(in.ID, err)
		return
	}
	out := roomsFrame{Type: "rooms", ID: in.ID, Rooms: make([]roomSummary, len(res.GetRooms())), Next: res.GetNextPageToken()}
	for i, s := range res.GetRooms() {
		out.Rooms[i] = roomSummary{Room: s.GetRoom(), Round: s.GetRound(), Status: s.GetStatus(), Players: s.GetPlayers(), Seq: s.GetSeq()}
	}
	c.r.out.send(c, encode(out))
}
