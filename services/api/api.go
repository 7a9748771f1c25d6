// Package api implements the hangman.v1 GameService over gRPC on top of a
// replicated game.Machine.
//
// The service turns requests into game commands (choosing the secret word
// with its own randomness, stamping the time) and hands them to a Replica,
// the consensus layer. A node that does not lead hands its writes to the
// leader through the Replica (batched), sends its leader reads to the
// leader's GameService, and retries when leadership moves, so a client
// may talk to any node. Every write carries a request id (the client's,
// or one the service makes up before the first attempt), and the state
// machine remembers each request id's first answer, so a retry after a
// lost reply or a lost leader is applied at most once, and a request
// refused once (FailedPrecondition, NotFound, AlreadyExists) is refused
// again with the same status and message, never applied later. Guesses may
// come one per call (Guess) or many over one stream (Guesses, stream.go).
//
// A seat belongs to whoever holds its token (tokens.go): the service
// draws it for a join that brings none, hashes whatever token a call
// brings into the command (the token itself never enters the log), and
// answers PERMISSION_DENIED for a call that acts as a player without the
// seat's token. It also stamps its caps (Limits) on the commands it
// proposes, so every replica applies the same ones.
package api

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
	"github.com/hangman/hangman/services/game"
	"github.com/hangman/hangman/wire"
)

// ErrNotLeader is returned by a Replica that cannot propose or serve a
// leader read because another node leads (or none does yet).
var ErrNotLeader = errors.New("not the leader")

// ErrUnknownOutcome is returned by a Replica when a proposal was handed to
// raft but leadership was lost before its fate was known: it may or may not
// commit. Retrying with the same request id is safe.
var ErrUnknownOutcome = errors.New("outcome unknown: leadership lost while applying")

// Replica is what the service needs from the consensus layer.
type Replica interface {
	// Propose appends an encoded command addressed to room to the log and
	// waits for it to be applied on this node, returning what the state
	// machine returned. (The room lets a replica pack commands for
	// different rooms into one log entry.) It fails with ErrNotLeader when
	// this node does not lead and with ErrUnknownOutcome when leadership
	// was lost mid-flight.
	Propose(ctx context.Context, room string, cmd []byte) (game.Result, uint64, error)
	// Forward does what Propose does on a node that does not lead: it
	// hands the command to the leader (batched with the node's other
	// writes) and returns the leader's result, with the same errors. The
	// result carries no Event: the leader publishes it.
	Forward(ctx context.Context, room string, cmd []byte) (game.Result, uint64, error)
	// ReadIndex makes the next local read linearizable: it confirms
	// leadership with a quorum and waits until this node has applied
	// everything committed before the call. ErrNotLeader if not the leader.
	ReadIndex(ctx context.Context) error
	// LeaderRead makes the next local read a leader read: it waits until
	// this node, which leads, has applied everything earlier leaders
	// committed (its own term's first entry), without a quorum round.
	// A node that has just won an election may not have yet, and would
	// answer from an older state: a room created in the previous term
	// would not exist. ErrNotLeader if not the leader.
	LeaderRead(ctx context.Context) error
	// IsLeader reports whether this node believes it leads.
	IsLeader() bool
	// Read calls fn with the local state machine under a read lock and
	// returns the index applied at that moment.
	Read(fn func(m *game.Machine)) uint64
	// LeaderChanged returns a channel closed at the next leadership change
	// this node observes, to wait for a new leader without polling.
	LeaderChanged() <-chan struct{}
	// LeaderConn returns a client connection to the leader's gRPC server,
	// or nil if no leader is known or this node leads.
	LeaderConn() *grpc.ClientConn
}

// forwardedKey marks a request forwarded by another node. A forwarded
// request that meets a non-leader is not forwarded again (that would loop
// while leadership moves); it fails UNAVAILABLE and its first node retries.
const forwardedKey = "hangman-forwarded"

// DefaultTimeout bounds a request that arrives without a deadline.
const DefaultTimeout = 10 * time.Second

// Service implements hangmanv1.GameServiceServer.
type Service struct {
	hangmanv1.UnimplementedGameServiceServer
	replica Replica
	log     *slog.Logger
	// noLeaderTimeout is how long a request waits while no leader is
	// known before it is answered Unavailable; 0 waits for its deadline.
	noLeaderTimeout time.Duration
	// now and random are the service's clock and randomness (words are
	// drawn with it); tests set them.
	now    func() time.Time
	random func() uint64
	// streamGuesses holds a slot per guess of any Guesses stream being
	// committed (at most MaxStreamGuesses).
	streamGuesses chan struct{}
	workers       workers
	limits        Limits
}

// Limits are the caps the service stamps on the commands it proposes
// (game.Command.Limit). Zero fields mean the game's own bounds.
type Limits struct {
	// MaxRooms is the most rooms a creation may leave the cluster with.
	MaxRooms int
	// MaxPlayers is the most players a join may leave a room with.
	MaxPlayers int
}

// Option configures a Service.
type Option func(*Service)

// WithLimits makes the service propose its commands with the caps l.
func WithLimits(l Limits) Option { return func(s *Service) { s.limits = l } }

// WithNoLeaderTimeout makes a request give up, Unavailable, once no
// leader has been known for d while it waited: a node cut off from the
// cluster, or one whose cluster cannot elect, then answers within d
// instead of holding every request to its deadline. The consensus layer
// derives d from its election timing: long enough for a normal election,
// so a failover is ridden out rather than reported.
func WithNoLeaderTimeout(d time.Duration) Option {
	return func(s *Service) { s.noLeaderTimeout = d }
}

// New returns a Service proposing through r.
func New(r Replica, log *slog.Logger, opts ...Option) *Service {
	s := &Service{replica: r, log: log, now: time.Now, random: randomUint64, streamGuesses: make(chan struct{}, MaxStreamGuesses), workers: workers{jobs: make(chan func())}}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Register adds the service to s.
func (s *Service) Register(srv grpc.ServiceRegistrar) {
	hangmanv1.RegisterGameServiceServer(srv, s)
}

func randomUint64() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return binary.LittleEndian.Uint64(b[:])
}

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "srv-" + hex.EncodeToString(b[:])
}

// CreateRoom creates a room with its settings, and its first round. Bad
// settings (an unknown category, a length range without words, a player
// cap above the node's) are InvalidArgument, and nothing is created.
func (s *Service) CreateRoom(ctx context.Context, req *hangmanv1.CreateRoomRequest) (*hangmanv1.CreateRoomResponse, error) {
	cmd := game.Command{Kind: game.KindCreateRoom, Room: req.GetRoom(), MaxWrong: int(req.GetMaxWrong()), RequestID: req.GetRequestId(), Limit: s.limits.MaxRooms,
		Category: req.GetCategory(), MinLen: int(req.GetMinWordLen()), MaxLen: int(req.GetMaxWordLen()), Seats: int(req.GetMaxPlayers()),
		Mode: game.Mode(req.GetMode()), TurnSeconds: int(req.GetTurnSeconds())}
	if limit := cmp.Or(s.limits.MaxPlayers, game.MaxPlayers); cmd.Seats > limit {
		return nil, status.Errorf(codes.InvalidArgument, "max_players %d exceeds this cluster's cap of %d players a room", cmd.Seats, limit)
	}
	// The word is drawn before the rest is checked, so the category and
	// the range are checked too (a host room gets none: its setter sets it).
	word, err := game.PickWord(cmd.Category, cmd.MinLen, cmd.MaxLen, s.random())
	if err != nil {
		return nil, toStatus(err)
	}
	if cmd.Mode != game.ModeHost {
		cmd.Word = word
	}
	var out *hangmanv1.CreateRoomResponse
	err = s.write(ctx, &cmd, "", func(res game.Result, _ uint64) {
		out = &hangmanv1.CreateRoomResponse{State: wire.StateProto(res.State)}
	})
	return out, err
}

// JoinRoom adds or renames a player. A join that brings no token gets a
// fresh one; any other must bring the seat's (or, for a new seat, makes
// the one it brings the seat's).
func (s *Service) JoinRoom(ctx context.Context, req *hangmanv1.JoinRoomRequest) (*hangmanv1.JoinRoomResponse, error) {
	token := req.GetToken()
	if token == "" {
		token = NewToken()
	}
	cmd := game.Command{Kind: game.KindJoinRoom, Room: req.GetRoom(), Player: req.GetPlayerId(), Name: req.GetName(), RequestID: req.GetRequestId(), Limit: s.limits.MaxPlayers}
	var out *hangmanv1.JoinRoomResponse
	err := s.write(ctx, &cmd, token, func(res game.Result, _ uint64) {
		newSeat := res.Event != nil && res.Event.Kind == game.EventPlayerJoined
		out = &hangmanv1.JoinRoomResponse{State: wire.StateProto(res.State), Token: token, NewSeat: newSeat}
	})
	return out, err
}

// Guess proposes one letter.
func (s *Service) Guess(ctx context.Context, req *hangmanv1.GuessRequest) (*hangmanv1.GuessResponse, error) {
	ctx = withUncertainty(ctx)
	cmd := game.Command{Kind: game.KindGuess, Room: req.GetRoom(), Player: req.GetPlayerId(), Letter: req.GetLetter(), RequestID: req.GetRequestId()}
	var out *hangmanv1.GuessResponse
	err := s.write(ctx, &cmd, req.GetToken(), func(res game.Result, _ uint64) {
		out = &hangmanv1.GuessResponse{Outcome: string(res.Outcome), Duplicate: res.Duplicate, State: wire.StateProto(res.State), Index: res.Index}
	})
	if err == nil && retriedUncertain(ctx) {
		// An earlier attempt of this very call may have committed; the
		// duplicate it met is this call's own, not the client's.
		out.Duplicate = false
	}
	return out, err
}

// NewRound starts the next round of a finished room, as a seated player.
// Its word is drawn from the room's category and length range, as this
// node's replica knows them (settings never change once the room is
// created), and is none of the room's recent words while the range has
// others; a host room ignores it and waits for its next setter's.
func (s *Service) NewRound(ctx context.Context, req *hangmanv1.NewRoundRequest) (*hangmanv1.NewRoundResponse, error) {
	cmd := game.Command{Kind: game.KindNewRound, Room: req.GetRoom(), Player: req.GetPlayerId(), RequestID: req.GetRequestId()}
	if cmd.Player == "" {
		return nil, status.Error(codes.InvalidArgument, "player_id is required: a new round is started by a seated player, with the seat's token")
	}
	settings := game.DefaultSettings
	var recent []string
	s.replica.Read(func(m *game.Machine) {
		if st, ok := m.Settings(cmd.Room); ok {
			settings = st
		}
		recent = m.RecentWords(cmd.Room)
	})
	word, err := game.PickWord(settings.Category, settings.MinLen, settings.MaxLen, s.random(), recent...)
	if err != nil {
		// A category this node's lists lack (another node's build has it):
		// any word will do, the rules do not check it against the range.
		word = game.WordAt(s.random())
	}
	cmd.Word = word
	var out *hangmanv1.NewRoundResponse
	err = s.write(ctx, &cmd, req.GetToken(), func(res game.Result, _ uint64) {
		out = &hangmanv1.NewRoundResponse{State: wire.StateProto(res.State)}
	})
	return out, err
}

// SetWord sets the word of a host room's waiting round, as its setter. The
// word is checked here against the room's settings as this node knows
// them (InvalidArgument), and again by the rules; no answer, error or log
// line repeats it.
func (s *Service) SetWord(ctx context.Context, req *hangmanv1.SetWordRequest) (*hangmanv1.SetWordResponse, error) {
	word, err := game.NormalizeWord(req.GetWord())
	if err != nil {
		return nil, toStatus(err)
	}
	cmd := game.Command{Kind: game.KindSetWord, Room: req.GetRoom(), Player: req.GetPlayerId(), Word: word, RequestID: req.GetRequestId()}
	var (
		settings game.Settings
		found    bool
	)
	s.replica.Read(func(m *game.Machine) { settings, found = m.Settings(cmd.Room) })
	if found {
		if err := settings.CheckWord(word); err != nil {
			return nil, toStatus(err)
		}
	}
	var out *hangmanv1.SetWordResponse
	err = s.write(ctx, &cmd, req.GetToken(), func(res game.Result, _ uint64) {
		out = &hangmanv1.SetWordResponse{State: wire.StateProto(res.State)}
	})
	return out, err
}

// GetRoom reads one room.
func (s *Service) GetRoom(ctx context.Context, req *hangmanv1.GetRoomRequest) (*hangmanv1.GetRoomResponse, error) {
	if !game.ValidRoom(req.GetRoom()) {
		return nil, status.Errorf(codes.InvalidArgument, "room name %q must be 1-%d of a-z, 0-9, '-' or '_'", clip(req.GetRoom()), game.MaxRoomLen)
	}
	var out *hangmanv1.GetRoomResponse
	err := s.read(ctx, req.GetConsistency(), func() error {
		var (
			st    game.State
			found bool
		)
		idx := s.replica.Read(func(m *game.Machine) { st, found = m.Room(req.GetRoom()) })
		if !found {
			return status.Errorf(codes.NotFound, "room %q does not exist", req.GetRoom())
		}
		out = &hangmanv1.GetRoomResponse{State: wire.StateProto(st), AppliedIndex: idx}
		return nil
	}, func(ctx context.Context, c hangmanv1.GameServiceClient) error {
		r, err := c.GetRoom(ctx, req)
		out = r
		return err
	})
	return out, err
}

// Pages of ListRooms: a request without a page size gets
// DefaultListPageSize rooms, and none gets more than MaxListPageSize.
const (
	DefaultListPageSize = 50
	MaxListPageSize     = 100
)

// ListRooms lists one page of rooms, in name order (see the proto).
func (s *Service) ListRooms(ctx context.Context, req *hangmanv1.ListRoomsRequest) (*hangmanv1.ListRoomsResponse, error) {
	after := req.GetPageToken()
	if after != "" && !game.ValidRoom(after) {
		return nil, status.Errorf(codes.InvalidArgument, "page_token %q is not one this service gave: pass the next_page_token of the previous page", clip(after))
	}
	size := int(req.GetPageSize())
	if size == 0 {
		size = DefaultListPageSize
	}
	size = min(size, MaxListPageSize)
	var out *hangmanv1.ListRoomsResponse
	err := s.read(ctx, req.GetConsistency(), func() error {
		var (
			rooms []game.Summary
			more  bool
		)
		idx := s.replica.Read(func(m *game.Machine) { rooms, more = m.RoomsAfter(after, size) })
		out = &hangmanv1.ListRoomsResponse{AppliedIndex: idx, Rooms: make([]*hangmanv1.RoomSummary, len(rooms))}
		for i, r := range rooms {
			out.Rooms[i] = &hangmanv1.RoomSummary{Room: r.Room, Round: r.Round, Status: string(r.Status), Players: int32(r.Players), Seq: r.Seq}
		}
		if more {
			out.NextPageToken = rooms[len(rooms)-1].Room
		}
		return nil
	}, func(ctx context.Context, c hangmanv1.GameServiceClient) error {
		r, err := c.ListRooms(ctx, req)
		out = r
		return err
	})
	return out, err
}

// Events returns a room's events after a seq from this node's own replica,
// whether or not it leads: committed events never change, so a stale
// answer is true up to its applied_index, and a consumer repairing a gap
// during a failover still gets one (see the proto for the contract).
func (s *Service) Events(_ context.Context, req *hangmanv1.EventsRequest) (*hangmanv1.EventsResponse, error) {
	var (
		page game.EventPage
		err  error
	)
	idx := s.replica.Read(func(m *game.Machine) { page, err = m.EventsSince(req.GetRoom(), req.GetSince(), int(req.GetLimit())) })
	if err != nil {
		return nil, toStatus(err)
	}
	return wire.EventsProto(page, idx), nil
}

// write validates cmd, checks the token of a command acting as a player
// and puts its hash in, fills in what the proposer chooses, and commits it
// locally when leading or through the leader otherwise, until ctx ends.
func (s *Service) write(ctx context.Context, cmd *game.Command, token string, done func(game.Result, uint64)) error {
	if err := cmd.Validate(); err != nil {
		return toStatus(err)
	}
	if cmd.Kind != game.KindCreateRoom {
		if err := withToken(cmd, token); err != nil {
			return err
		}
	}
	if cmd.RequestID == "" {
		cmd.RequestID = newRequestID()
	}
	cmd.At = s.now().UnixMilli()
	data := cmd.Encode()
	// Either way the command is the same bytes: proposed here, or handed
	// to the leader, which commits it as it is.
	commit := func(propose func(context.Context, string, []byte) (game.Result, uint64, error)) func(context.Context) error {
		return func(ctx context.Context) error {
			res, index, err := propose(ctx, cmd.Room, data)
			if err != nil {
				return err
			}
			if res.Err != nil {
				return toStatus(res.Err)
			}
			done(res, index)
			return nil
		}
	}
	forward := commit(s.replica.Forward)
	return s.route(ctx, commit(s.replica.Propose), func(ctx context.Context, _ hangmanv1.GameServiceClient) error {
		return forward(ctx)
	})
}

// read serves a read at the requested consistency.
func (s *Service) read(ctx context.Context, c hangmanv1.Consistency, local func() error, forward func(context.Context, hangmanv1.GameServiceClient) error) error {
	switch c {
	case hangmanv1.Consistency_CONSISTENCY_STALE:
		return local()
	case hangmanv1.Consistency_CONSISTENCY_UNSPECIFIED, hangmanv1.Consistency_CONSISTENCY_LEADER:
		return s.route(ctx, func(ctx context.Context) error {
			if err := s.replica.LeaderRead(ctx); err != nil {
				return err
			}
			return local()
		}, forward)
	case hangmanv1.Consistency_CONSISTENCY_LINEARIZABLE:
		return s.route(ctx, func(ctx context.Context) error {
			if err := s.replica.ReadIndex(ctx); err != nil {
				return err
			}
			return local()
		}, forward)
	default:
		return status.Errorf(codes.InvalidArgument, "unknown consistency %d", c)
	}
}

// route runs local while this node leads and forward to the leader
// otherwise, retrying across leadership changes until ctx ends, or until
// no leader has been known for noLeaderTimeout. Only failures that say
// "ask the leader again" are retried; every answer from the rules is
// final.
func (s *Service) route(ctx context.Context, local func(context.Context) error, forward func(context.Context, hangmanv1.GameServiceClient) error) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	forwarded := isForwarded(ctx)
	uncertain := uncertainFrom(ctx)
	var (
		last error
		// leaderless is when this request last found no leader known
		// (zero while one is); maybeApplied, whether an attempt ended
		// with its outcome unknown.
		leaderless   time.Time
		maybeApplied bool
	)
	for attempt := 0; ; attempt++ {
		changed := s.replica.LeaderChanged()
		conn, leading := s.replica.LeaderConn(), s.replica.IsLeader()
		switch {
		case leading || conn != nil:
			leaderless = time.Time{}
		case leaderless.IsZero():
			leaderless = time.Now()
		}
		var err error
		if leading || conn == nil {
			err = local(ctx)
		} else if forwarded {
			err = ErrNotLeader
		} else {
			err = forward(ctx, hangmanv1.NewGameServiceClient(conn))
			if err == nil || !(retryableForward(err) || errors.Is(err, ErrNotLeader) || errors.Is(err, ErrUnknownOutcome)) {
				return toStatus(err)
			}
		}
		switch {
		case err == nil:
			return nil
		case errors.Is(err, ErrNotLeader):
			last = err
		case errors.Is(err, ErrUnknownOutcome), retryableForward(err):
			last, maybeApplied = err, true
			if uncertain != nil {
				*uncertain = true
			}
		default:
			return toStatus(err)
		}
		if forwarded {
			return status.Errorf(codes.Unavailable, "forwarded to a node that no longer leads: %v", err)
		}
		// Wait for leadership to move, but not forever: a leader that
		// steps down and returns sends no change this node can see.
		wait := time.Duration(min(attempt+1, 10)) * 10 * time.Millisecond
		if !leaderless.IsZero() && s.noLeaderTimeout > 0 {
			left := s.noLeaderTimeout - time.Since(leaderless)
			if left <= 0 {
				return noLeader(s.noLeaderTimeout, last, maybeApplied)
			}
			wait = min(wait, left)
		}
		s.log.Debug("retrying request", "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return unavailable(ctx.Err(), last)
		case <-changed:
		case <-time.After(wait):
		}
	}
}

// noLeader is the answer to a request that found no leader for d.
func noLeader(d time.Duration, last error, maybeApplied bool) error {
	if maybeApplied {
		return status.Errorf(codes.Unavailable, "no leader known for %v, and an earlier attempt's outcome is unknown (%v); retry with the same request_id", d, last)
	}
	return status.Errorf(codes.Unavailable, "no leader known for %v (an election is under way, or this node is cut off from the cluster): the request was not applied; retry it with the same request_id", d)
}

func unavailable(ctxErr, last error) error {
	if errors.Is(last, ErrUnknownOutcome) {
		return status.Errorf(codes.Unavailable, "%v; retry with the same request_id (%v)", last, ctxErr)
	}
	return status.Errorf(codes.Unavailable, "no leader could take the request before the deadline: %v (last error: %v); it was not applied unless an earlier attempt lost its reply, so retry with the same request_id", ctxErr, last)
}

// retryableForward reports whether a forwarded call failed in a way that
// another attempt, perhaps at a new leader, may fix.
func retryableForward(err error) bool {
	st, ok := status.FromError(err)
	return ok && st.Code() == codes.Unavailable
}

type uncertainKey struct{}

// withUncertainty lets route record, for the caller, that an attempt whose
// outcome is unknown was retried.
func withUncertainty(ctx context.Context) context.Context {
	return context.WithValue(ctx, uncertainKey{}, new(bool))
}

func uncertainFrom(ctx context.Context) *bool {
	b, _ := ctx.Value(uncertainKey{}).(*bool)
	return b
}

// retriedUncertain reports whether route retried after an attempt of
// unknown outcome.
func retriedUncertain(ctx context.Context) bool {
	b := uncertainFrom(ctx)
	return b != nil && *b
}

func isForwarded(ctx context.Context) bool {
	md, ok := metadata.FromIncomingContext(ctx)
	return ok && len(md.Get(forwardedKey)) > 0
}

// ForwardingInterceptor marks every call a node makes to another node's
// GameService as forwarded; install it on the clients behind LeaderConn.
func ForwardingInterceptor(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	return invoker(metadata.AppendToOutgoingContext(ctx, forwardedKey, "1"), method, req, reply, cc, opts...)
}

// toStatus maps errors of the rules and the replica to gRPC statuses.
func toStatus(err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	var tooOld *game.TooOldError
	if errors.As(err, &tooOld) {
		// Not FAILED_PRECONDITION, which the rules' refusals use: the
		// request asks past the start of a range, and a client can tell
		// "fetch the state instead" from the code alone.
		return status.Error(codes.OutOfRange, err.Error())
	}
	switch game.CodeOf(err) {
	case game.CodeInvalid:
		return status.Error(codes.InvalidArgument, err.Error())
	case game.CodeNotFound:
		return status.Error(codes.NotFound, err.Error())
	case game.CodeExists:
		return status.Error(codes.AlreadyExists, err.Error())
	case game.CodePrecondition:
		return status.Error(codes.FailedPrecondition, err.Error())
	case game.CodePermission:
		return status.Error(codes.PermissionDenied, err.Error())
	case game.CodeBusy:
		return status.Error(codes.ResourceExhausted, err.Error())
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	}
	return status.Error(codes.Internal, fmt.Sprintf("internal error: %v", err))
}

func clip(s string) string {
	if len(s) <= 40 {
		return s
	}
	return s[:40] + "…"
}
