package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
	"github.com/hangman/hangman/services/api"
	"github.com/hangman/hangman/services/gameclient"
)

// ackLog collects what guessers saw, merged after the run.
type ackLog struct {
	committed, errors atomic.Int64
	// codes counts failed guesses by gRPC status code (or relay error code).
	codesMu   sync.Mutex
	codes     map[string]int64
	mu        sync.Mutex
	latencies []time.Duration
	// firstAfterKill is the earliest acknowledgement of a guess sent after
	// the kill, in Unix nanoseconds.
	killAt         atomic.Int64
	firstAfterKill atomic.Int64
}

func (a *ackLog) ack(sent, now time.Time, lat *[]time.Duration) {
	a.committed.Add(1)
	*lat = append(*lat, now.Sub(sent))
	if k := a.killAt.Load(); k != 0 && sent.UnixNano() >= k {
		a.firstAfterKill.CompareAndSwap(0, now.UnixNano())
	}
}

func (a *ackLog) fail(code string) {
	a.errors.Add(1)
	a.codesMu.Lock()
	if a.codes == nil {
		a.codes = map[string]int64{}
	}
	a.codes[code]++
	a.codesMu.Unlock()
}

func (a *ackLog) merge(lat []time.Duration) {
	a.mu.Lock()
	a.latencies = append(a.latencies, lat...)
	a.mu.Unlock()
}

func (a *ackLog) failoverGap() float64 {
	k, f := a.killAt.Load(), a.firstAfterKill.Load()
	if k == 0 || f == 0 {
		return 0
	}
	return float64(f-k) / float64(time.Millisecond)
}

// gameClients dials every node once; guessers spread over them. With
// stream, guesses share one Guesses stream per node, as a relay's do;
// otherwise each is a unary call.
func gameClients(addrs []string, stream bool) ([]hangmanv1.GameServiceClient, func(), error) {
	var conns []*grpc.ClientConn
	var out []hangmanv1.GameServiceClient
	closeAll := func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}
	for _, a := range addrs {
		c, err := grpc.NewClient(a, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("dial %s: %w", a, err)
		}
		conns = append(conns, c)
		if stream {
			out = append(out, gameclient.New(c))
		} else {
			out = append(out, hangmanv1.NewGameServiceClient(c))
		}
	}
	return out, closeAll, nil
}

// createRooms creates rooms named prefix-0.. (maxWrong 26, so rounds last)
// and joins one player per worker.
func createRooms(ctx context.Context, cl hangmanv1.GameServiceClient, prefix string, rooms int) ([]string, error) {
	names := make([]string, rooms)
	for i := range rooms {
		names[i] = fmt.Sprintf("%s-%d", prefix, i)
		_, err := cl.CreateRoom(ctx, &hangmanv1.CreateRoomRequest{Room: names[i], MaxWrong: 26, RequestId: "create-" + names[i]})
		if err != nil && status.Code(err) != codes.AlreadyExists {
			return nil, fmt.Errorf("create room %s: %w", names[i], err)
		}
	}
	return names, nil
}

// player is one player the load generator speaks for: its id and the
// token it joined with (drawn here, as a browser draws its own).
type player struct {
	id, token string
}

func newPlayer(id string) player { return player{id: id, token: api.NewToken()} }

// runTag sets this run's players apart from an earlier run's in the same
// rooms: a seat belongs to the token it was joined with, so a second run
// attached to the same system, with fresh tokens, could not play as the
// first run's players.
var runTag = fmt.Sprintf("%06x", rand.Uint32()&0xffffff)

// playerID names the i-th player of a kind ("w" for a gRPC worker, "g"
// for a websocket guesser, "raw" for the raw NATS comparison) in this run.
func playerID(kind string, i int) string { return fmt.Sprintf("%s%d-%s", kind, i, runTag) }

// join seats p in room.
func (p player) join(ctx context.Context, cl hangmanv1.GameServiceClient, room, name string) error {
	_, err := cl.JoinRoom(ctx, &hangmanv1.JoinRoomRequest{Room: room, PlayerId: p.id, Name: name, Token: p.token})
	return err
}

// guessLoop guesses in room as player until ctx ends, paced by lim (nil:
// as fast as answers come), starting a new round through rounds when one
// ends. It starts with clients[first] and moves to the next node when one
// fails, as a client of a real deployment would.
func guessLoop(ctx context.Context, clients []hangmanv1.GameServiceClient, first int, room string, player player, rounds *roundGate, lim *rate.Limiter, acks *ackLog, onAck func(seq uint64, sent time.Time)) {
	next := first
	var lat []time.Duration
	defer func() { acks.merge(lat) }()
	rng := rand.New(rand.NewPCG(rand.Uint64(), 0))
	var seen uint64 // the latest round this guesser knows of
	for n := 0; ; n++ {
		if lim != nil {
			if err := lim.Wait(ctx); err != nil {
				return
			}
		}
		if ctx.Err() != nil {
			return
		}
		letter := string(rune('a' + rng.IntN(26)))
		cl := clients[next%len(clients)]
		sent := time.Now()
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		r, err := cl.Guess(cctx, &hangmanv1.GuessRequest{Room: room, PlayerId: player.id, Letter: letter, RequestId: fmt.Sprintf("%s-%d-%d", player.id, sent.UnixNano(), n), Token: player.token})
		cancel()
		switch {
		case err == nil:
			acks.ack(sent, time.Now(), &lat)
			if onAck != nil {
				onAck(r.GetIndex(), sent)
			}
			seen = max(seen, r.GetState().GetRound())
			if r.GetState().GetStatus() != "playing" {
				seen = rounds.after(ctx, cl, player, seen)
			}
		case status.Code(err) == codes.FailedPrecondition:
			seen = rounds.after(ctx, cl, player, seen)
		case ended(ctx):
			return
		default:
			acks.fail(status.Code(err).String())
			next++
		}
	}
}

// roundGate starts a room's next round once, however many of its guessers
// see the round end: each NewRound is a raft entry, and one that a round
// already started refuses takes a place in the log all the same.
type roundGate struct {
	room    string
	mu      sync.Mutex
	started uint64 // the latest round a guesser of the room started
}

// after makes sure a round later than seen has started, and returns the
// latest round the gate knows of. When another guesser has started one
// already, it only reports it.
func (g *roundGate) after(ctx context.Context, cl hangmanv1.GameServiceClient, player player, seen uint64) uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.started > seen {
		return g.started
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// Refused when the round is still playing (the guess that ended it
	// was not this guesser's latest): the next answer tells the round.
	if r, err := cl.NewRound(cctx, &hangmanv1.NewRoundRequest{Room: g.room, PlayerId: player.id, Token: player.token}); err == nil {
		g.started = max(g.started, r.GetState().GetRound())
	}
	return max(seen, g.started)
}

// ended reports whether the run behind ctx is over. A call can fail with
// DeadlineExceeded a moment before ctx.Err() says so: gRPC compares the
// deadline with the clock, while ctx learns of it from a timer that fires
// late on a busy machine. Those are the run ending, not failed guesses.
func ended(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}

// GRPCConfig drives raw commit throughput.
type GRPCConfig struct {
	Workers, Rooms int
	// Rate caps guesses/s over all workers; 0 is as fast as possible.
	Rate         float64
	Duration     time.Duration
	Warmup       time.Duration
	KillLeaderAt time.Duration
	// LeaderOnly sends every guess to the leader instead of spreading them
	// over all nodes (followers forward, at the cost of a hop).
	LeaderOnly bool
	// Unary sends each guess as its own Guess call instead of over the
	// Guesses stream relays use.
	Unary bool
}

// RunGRPC measures raw commit throughput over gRPC.
func RunGRPC(ctx context.Context, sys *System, cfg GRPCConfig) (*Report, error) {
	clients, closeClients, err := gameClients(sys.GRPCAddrs, !cfg.Unary)
	if err != nil {
		return nil, err
	}
	defer closeClients()
	if cfg.LeaderOnly {
		l, err := sys.Leader(ctx)
		if err != nil {
			return nil, err
		}
		clients = clients[l : l+1]
	}
	rooms, err := createRooms(ctx, clients[0], "grpc", cfg.Rooms)
	if err != nil {
		return nil, err
	}
	workers := make([]player, cfg.Workers)
	for w := range workers {
		room := rooms[w%len(rooms)]
		workers[w] = newPlayer(playerID("w", w))
		if err := workers[w].join(ctx, clients[0], room, fmt.Sprintf("worker %d", w)); err != nil {
			return nil, fmt.Errorf("join %s: %w", room, err)
		}
	}
	gates := make([]*roundGate, len(rooms))
	for i, room := range rooms {
		gates[i] = &roundGate{room: room}
	}
	var lim *rate.Limiter
	if cfg.Rate > 0 {
		lim = rate.NewLimiter(rate.Limit(cfg.Rate), max(1, int(cfg.Rate/100)))
	}
	run := func(d time.Duration, acks *ackLog, kill bool) time.Duration {
		lctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		var wg sync.WaitGroup
		for w := range cfg.Workers {
			wg.Go(func() {
				guessLoop(lctx, clients, w, rooms[w%len(rooms)], workers[w], gates[w%len(rooms)], lim, acks, nil)
			})
		}
		if kill {
			go killLater(lctx, sys, cfg.KillLeaderAt, acks)
		}
		start := time.Now()
		wg.Wait()
		return time.Since(start)
	}
	api := "stream"
	if cfg.Unary {
		api = "unary"
	}
	run(cfg.Warmup, &ackLog{}, false)
	clock := cpuClock{sys: sys, leader: -1}
	if l, err := sys.Leader(ctx); err == nil {
		clock.leader = l
	}
	acks := &ackLog{}
	before := clock.read()
	elapsed := run(cfg.Duration, acks, cfg.KillLeaderAt > 0)
	after := clock.read()
	return &Report{
		Mode: "grpc", Duration: elapsed.Seconds(), Nodes: len(sys.GRPCAddrs), Relays: len(sys.RelayURLs), Rooms: cfg.Rooms, Attached: !sys.Started(),
		Workers: cfg.Workers, API: api, TargetRate: cfg.Rate, Committed: acks.committed.Load(),
		CommittedPerSec: float64(acks.committed.Load()) / elapsed.Seconds(), Errors: acks.errors.Load(), ErrorCodes: acks.codes,
		AckLatency: summarise(acks.latencies), FailoverGapMS: acks.failoverGap(),
		CPU: clock.shares(before, after, elapsed, acks.committed.Load()),
	}, nil
}

func killLater(ctx context.Context, sys *System, after time.Duration, acks *ackLog) {
	select {
	case <-ctx.Done():
		return
	case <-time.After(after):
	}
	// The clock starts once the leader is dead (KillLeader waits for the
	// process to exit), so guesses the old leader still answered before
	// the signal do not count as recovered.
	if _, err := sys.KillLeader(ctx); err == nil {
		acks.killAt.Store(time.Now().UnixNano())
	}
}
