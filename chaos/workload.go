package chaos

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anishathalye/porcupine"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
	"github.com/hangman/hangman/services/api"
	"github.com/hangman/hangman/services/game"
)

// alphabet is what players guess: consonants without y. Every word of the
// game has a vowel, so no round is ever won (see roomModel).
const alphabet = "bcdfghjklmnpqrstvwxz"

// roomMaxWrong ends a round after a few wrong letters, so that rounds end
// often and guesses after the end, and new rounds racing each other, are
// common refusals.
const roomMaxWrong = 4

// History records the operations of every client with monotonic
// timestamps relative to its start.
type History struct {
	start   time.Time
	mu      sync.Mutex
	ops     []porcupine.Operation
	clients atomic.Int64
}

func newHistory() *History { return &History{start: time.Now()} }

func (h *History) now() int64 { return int64(time.Since(h.start)) }

func (h *History) newClient() int { return int(h.clients.Add(1) - 1) }

func (h *History) add(op porcupine.Operation) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

// Operations returns the history; pending operations return after every
// other one.
func (h *History) Operations() []porcupine.Operation {
	h.mu.Lock()
	defer h.mu.Unlock()
	var end int64
	for _, op := range h.ops {
		end = max(end, op.Call, op.Return)
	}
	out := make([]porcupine.Operation, len(h.ops))
	for i, op := range h.ops {
		if op.Return < 0 {
			op.Return = end + 1
		}
		out[i] = op
	}
	return out
}

// opRecord is one write as the loss, duplicate and refusal checks need it.
type opRecord struct {
	Input
	Output
	Call int64
	// Node is the node that gave the definite answer.
	Node int
	// ForeignIndex marks a non-duplicate guess reply whose index is not
	// the entry that applied the guess (see Output.Index).
	ForeignIndex bool
	// ReplyRound is the round a guess applied in, when its reply proves
	// its index (0 otherwise).
	ReplyRound uint64
}

// applied reports whether the write was acknowledged.
func (r *opRecord) applied() bool { return !r.Unknown && r.Err == "" }

// Workload drives players, a crowd filling rooms, and readers against the
// lab's nodes, and sends refused requests again later to check that their
// refusal is final.
type Workload struct {
	lab     *Lab
	hist    *History
	log     *slog.Logger
	cfg     WorkloadConfig
	classes *letterClasses
	// dataRoot is the directory holding every node's data: no error a
	// client gets may name a path under it.
	dataRoot string

	mu    sync.Mutex
	ops   map[string][]*opRecord // by room
	rooms []string               // every room created, in creation order
	// errs counts failed attempts by gRPC code; leaks and internal keep
	// examples of messages naming a server path and of Internal errors.
	errs             map[codes.Code]int
	leaks, internals []string
	leakCount        int

	rechecks chan recheck
	// rechecksDropped counts refusals not rechecked because the queue was
	// full.
	rechecksDropped atomic.Int64
	// rechecksLate counts refusals not rechecked because the rechecker
	// reached them more than recheckLateBy after their due time.
	rechecksLate atomic.Int64

	attempts, retries, reads, readErrors atomic.Int64
}

// WorkloadConfig sizes a Workload.
type WorkloadConfig struct {
	// Slots is how many rooms are played at once; each slot moves to a new
	// room every RoomLife.
	Slots    int
	RoomLife time.Duration
	// Players per slot; the last of them is a latecomer who tries to join
	// only once the crowd fills the room (in half the rooms, once it is
	// full), so that "room full" refusals happen.
	Players int
	// Readers per slot.
	Readers int
	// Pace is the pause between one client's operations.
	Pace time.Duration
	// Timeout bounds one attempt.
	Timeout time.Duration
	// RecheckShare is the share of refusals sent again (every refusal that
	// followed an attempt of unknown outcome is).
	RecheckShare float64
	// RecheckAfter is how long after a refusal its recheck is sent.
	RecheckAfter time.Duration
}

func newWorkload(lab *Lab, hist *History, classes *letterClasses, log *slog.Logger, cfg WorkloadConfig) *Workload {
	return &Workload{lab: lab, hist: hist, log: log, cfg: cfg, classes: classes, dataRoot: lab.dataRoot,
		ops: map[string][]*opRecord{}, errs: map[codes.Code]int{}, rechecks: make(chan recheck, 4096)}
}

// roomPlay is one room a slot plays, and how far its crowd got.
type roomPlay struct {
	name    string
	created time.Time
	// crowding is set once the crowd started filling the room, full once
	// a crowd join was refused as "room full".
	crowding, full atomic.Bool
	// lateWhenFull makes the latecomer wait until the room is full, so that
	// its joins are refused; otherwise it tries once the crowd comes.
	lateWhenFull bool
}

// latecomerMayJoin reports whether the room is far enough along for its
// latecomer to try joining.
func (rp *roomPlay) latecomerMayJoin() bool {
	if rp.lateWhenFull {
		return rp.full.Load()
	}
	return rp.crowding.Load()
}

// slot is the room a group of clients currently plays.
type slot struct {
	idx  int
	room atomic.Pointer[roomPlay]
}

// Run plays until soft ends; operations in flight then keep retrying until
// hard ends, after which they are recorded as pending. Run returns once
// every client has stopped.
func (w *Workload) Run(soft, hard context.Context) error {
	var wg sync.WaitGroup
	errs := make(chan error, 2*w.cfg.Slots)
	for range 4 {
		wg.Go(func() { w.rechecker(soft, hard) })
	}
	for s := range w.cfg.Slots {
		sl := &slot{idx: s}
		first, err := w.newRoom(hard, s, 0)
		if err != nil {
			errs <- err
			continue
		}
		sl.room.Store(first)
		for p := range w.cfg.Players {
			late := p == w.cfg.Players-1
			wg.Go(func() { w.player(soft, hard, sl, fmt.Sprintf("s%dp%d", s, p), late) })
		}
		wg.Go(func() { w.crowd(soft, hard, sl) })
		for range w.cfg.Readers {
			wg.Go(func() { w.reader(soft, sl) })
		}
		wg.Go(func() {
			for gen := 1; ; gen++ {
				select {
				case <-soft.Done():
					return
				case <-time.After(w.cfg.RoomLife):
				}
				rp, err := w.newRoom(soft, s, gen)
				if err != nil {
					if soft.Err() == nil {
						errs <- err
					}
					return
				}
				sl.room.Store(rp)
			}
		})
	}
	wg.Wait()
	close(errs)
	var out []error
	for e := range errs {
		out = append(out, e)
	}
	return errors.Join(out...)
}

// Rooms lists every room created.
func (w *Workload) Rooms() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.rooms...)
}

// newRoom creates a room, recorded in the history before any other
// operation on it.
func (w *Workload) newRoom(ctx context.Context, s, gen int) (*roomPlay, error) {
	room := fmt.Sprintf("c%dg%d", s, gen)
	in := Input{Room: room, Kind: opCreate, RequestID: "create-" + room}
	rec := w.command(ctx, w.hist.newClient(), in, rand.IntN(len(w.lab.Nodes)), func(ctx context.Context, c hangmanv1.GameServiceClient) (*hangmanv1.RoomState, error) {
		resp, err := c.CreateRoom(ctx, &hangmanv1.CreateRoomRequest{Room: room, MaxWrong: roomMaxWrong, RequestId: in.RequestID})
		return resp.GetState(), err
	})
	if !rec.applied() {
		return nil, fmt.Errorf("create room %s: %s (unknown outcome: %t)", room, rec.Err, rec.Unknown)
	}
	w.mu.Lock()
	w.rooms = append(w.rooms, room)
	w.mu.Unlock()
	return &roomPlay{name: room, created: time.Now(), lateWhenFull: rand.IntN(2) == 0}, nil
}

// uncertain reports whether a failed call may still have been applied, so
// that it must be retried with the same request id. Every other error is a
// definite refusal: the request's one outcome (DESIGN.md guarantee 2).
func uncertain(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.Unknown, codes.Internal, codes.Aborted, codes.ResourceExhausted:
		return true
	}
	return false
}

// writeAnswer is how one write ended.
type writeAnswer struct {
	// err is the definite refusal; nil with unknown false means applied.
	err error
	// unknown is set when hard ended before any definite answer.
	unknown bool
	// node answered definitely.
	node int
	// uncertainBefore is set when an attempt before the answer had an
	// unknown outcome.
	uncertainBefore bool
}

// write runs one write to its first definite answer: the retry rule of
// every write of the harness, in this one place. An attempt whose outcome
// is unknown is retried with the same request id (the call closes over it)
// on the next node, until one answers definitely or hard ends.
func (w *Workload) write(hard context.Context, first int, call func(context.Context, hangmanv1.GameServiceClient) error) writeAnswer {
	node := first
	var ans writeAnswer
	for attempt := 0; ; attempt++ {
		w.attempts.Add(1)
		if attempt > 0 {
			w.retries.Add(1)
		}
		actx, cancel := context.WithTimeout(hard, w.cfg.Timeout)
		err := call(actx, w.lab.Nodes[node].Game())
		cancel()
		if err != nil && hard.Err() == nil {
			w.noteError(err)
		}
		if err == nil || !uncertain(err) {
			ans.err, ans.node = err, node
			return ans
		}
		ans.uncertainBefore = true
		node = (node + 1) % len(w.lab.Nodes)
		if hard.Err() != nil {
			ans.unknown = true
			return ans
		}
		select {
		case <-hard.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// noteError counts a failed attempt by code and keeps what breaks the
// rules for errors: Internal (a write whose fate the node could not tell
// is Unavailable) and a server path in a message.
func (w *Workload) noteError(err error) {
	st, _ := status.FromError(err)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.errs[st.Code()]++
	if st.Code() == codes.Internal && len(w.internals) < 5 {
		w.internals = append(w.internals, st.Message())
	}
	if leaksPath(st.Message(), w.dataRoot) {
		w.leakCount++
		if len(w.leaks) < 5 {
			w.leaks = append(w.leaks, st.Message())
		}
	}
}

// errCounts returns how many attempts so far failed Internal and how many
// named a server path.
func (w *Workload) errCounts() (internal, leaks int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.errs[codes.Internal], w.leakCount
}

// leaksPath reports whether an error message names a file of a node: its
// data directory, or the raft store.
func leaksPath(msg, dataRoot string) bool {
	return (dataRoot != "" && strings.Contains(msg, dataRoot)) || strings.Contains(msg, raftStoreName)
}

// command runs one write to completion and records it in the history and
// among the records of its room; reply extracts the state the reply shows.
func (w *Workload) command(hard context.Context, client int, in Input, first int,
	call func(context.Context, hangmanv1.GameServiceClient) (*hangmanv1.RoomState, error)) *opRecord {
	return w.commandWith(hard, client, in, first, func(ctx context.Context, c hangmanv1.GameServiceClient, rec *opRecord) error {
		st, err := call(ctx, c)
		if err == nil {
			w.classes.learnState(st)
			if in.Kind == opCreate {
				rec.View = viewOf(st)
			}
		}
		return err
	})
}

// commandWith is command for a caller that fills the record from the
// reply itself (guesses).
func (w *Workload) commandWith(hard context.Context, client int, in Input, first int,
	call func(context.Context, hangmanv1.GameServiceClient, *opRecord) error) *opRecord {
	rec := &opRecord{Input: in, Call: w.hist.now()}
	ans := w.write(hard, first, func(ctx context.Context, c hangmanv1.GameServiceClient) error {
		return call(ctx, c, rec)
	})
	rec.Node = ans.node
	switch {
	case ans.unknown:
		rec.Output = Output{Unknown: true}
	case ans.err != nil:
		st, _ := status.FromError(ans.err)
		rec.Output = Output{Err: st.Message(), Refusal: classifyRefusal(st.Code(), st.Message())}
	}
	ret := w.hist.now()
	if rec.Unknown {
		ret = -1
	}
	w.hist.add(porcupine.Operation{ClientId: client, Input: in, Call: rec.Call, Output: rec.Output, Return: ret})
	w.mu.Lock()
	w.ops[in.Room] = append(w.ops[in.Room], rec)
	w.mu.Unlock()
	if rec.Err != "" && !in.Recheck && (ans.uncertainBefore || rand.Float64() < w.cfg.RecheckShare) {
		select {
		case w.rechecks <- recheck{rec: rec, refused: time.Now(), due: time.Now().Add(w.cfg.RecheckAfter)}:
		default:
			w.rechecksDropped.Add(1)
		}
	}
	return rec
}

// player plays its slot's current room: joins (the latecomer only once
// the crowd is filling the room), guesses, and starts new rounds, acting
// on what its replies told it, so that refusals of every kind are common.
func (w *Workload) player(soft, hard context.Context, sl *slot, player string, late bool) {
	client := w.hist.newClient()
	var (
		cur          *roomPlay
		joined, over bool
		letters      []byte
		n            int
	)
	for soft.Err() == nil {
		rp := sl.room.Load()
		if rp != cur {
			cur, joined, over = rp, false, false
			letters = []byte(alphabet)
			rand.Shuffle(len(letters), func(i, j int) { letters[i], letters[j] = letters[j], letters[i] })
		}
		n++
		in := Input{Room: rp.name, Player: player, RequestID: fmt.Sprintf("%s-%s-%d", rp.name, player, n)}
		node := rand.IntN(len(w.lab.Nodes))
		r := rand.Float64()
		switch {
		case !joined && (!late || rp.latecomerMayJoin()) && r < 0.3, joined && r < 0.02:
			in.Kind = opJoin
			rec := w.command(hard, client, in, node, func(ctx context.Context, c hangmanv1.GameServiceClient) (*hangmanv1.RoomState, error) {
				resp, err := c.JoinRoom(ctx, &hangmanv1.JoinRoomRequest{Room: in.Room, PlayerId: player, Name: player, RequestId: in.RequestID, Token: tokenOf(player)})
				return resp.GetState(), err
			})
			joined = joined || rec.applied()
		case joined && ((over && r < 0.6) || (!over && r < 0.05)):
			in.Kind = opNewRound
			rec := w.command(hard, client, in, node, func(ctx context.Context, c hangmanv1.GameServiceClient) (*hangmanv1.RoomState, error) {
				resp, err := c.NewRound(ctx, &hangmanv1.NewRoundRequest{Room: in.Room, PlayerId: player, RequestId: in.RequestID, Token: tokenOf(player)})
				return resp.GetState(), err
			})
			if rec.applied() || rec.Refusal == refRoundPlaying {
				over = false
			}
		default:
			in.Kind, in.Letter = opGuess, string(letters[n%len(letters)])
			rec := w.guess(hard, client, in, node)
			switch {
			case rec.applied():
				joined, over = true, rec.View != nil && rec.View.Status != "playing"
			case rec.Refusal == refRoundOver:
				joined, over = true, true
			case rec.Refusal == refNotJoined:
				joined = false
			}
		}
		select {
		case <-soft.Done():
		case <-time.After(w.cfg.Pace):
		}
	}
}

// guess runs one guess to completion and records it.
func (w *Workload) guess(hard context.Context, client int, in Input, node int) *opRecord {
	req := &hangmanv1.GuessRequest{Room: in.Room, PlayerId: in.Player, Letter: in.Letter, RequestId: in.RequestID, Token: tokenOf(in.Player)}
	return w.commandWith(hard, client, in, node, func(ctx context.Context, c hangmanv1.GameServiceClient, rec *opRecord) error {
		resp, err := c.Guess(ctx, req)
		if err != nil {
			return err
		}
		st := resp.GetState()
		w.classes.learnState(st)
		rec.Outcome, rec.Duplicate = resp.GetOutcome(), resp.GetDuplicate()
		switch {
		case resp.GetDuplicate():
			// The state is today's, the outcome that of an earlier
			// application, perhaps in an earlier round.
		case st.GetSeq() == resp.GetIndex():
			rec.Index, rec.View, rec.ReplyRound = resp.GetIndex(), viewOf(st), st.GetRound()
		default:
			// The node retried an attempt of unknown outcome itself and
			// met its own earlier application: index names the no-op
			// retry entry, above the room's seq.
			rec.ForeignIndex = true
		}
		return nil
	})
}

// crowd fills its slot's room with new players once a third of its life
// has passed, until a join is refused as "room full".
func (w *Workload) crowd(soft, hard context.Context, sl *slot) {
	client := w.hist.newClient()
	var cur *roomPlay
	var n int
	for soft.Err() == nil {
		rp := sl.room.Load()
		if rp != cur {
			cur, n = rp, 0
		}
		if time.Since(rp.created) >= w.cfg.RoomLife/3 && !rp.full.Load() {
			rp.crowding.Store(true)
			n++
			player := fmt.Sprintf("%sf%d", rp.name, n)
			in := Input{Room: rp.name, Kind: opJoin, Player: player, RequestID: "join-" + player}
			rec := w.command(hard, client, in, rand.IntN(len(w.lab.Nodes)), func(ctx context.Context, c hangmanv1.GameServiceClient) (*hangmanv1.RoomState, error) {
				resp, err := c.JoinRoom(ctx, &hangmanv1.JoinRoomRequest{Room: in.Room, PlayerId: player, Name: player, RequestId: in.RequestID, Token: tokenOf(player)})
				return resp.GetState(), err
			})
			if rec.Refusal == refRoomFull {
				rp.full.Store(true)
			}
		}
		select {
		case <-soft.Done():
		case <-time.After(w.cfg.Pace):
		}
	}
}

// recheckWithin is how long after its refusal a recheck may still be
// sent: a room remembers every answer for game.SessionMinAge, whatever
// its number, so a recheck sent within it must meet the refusal. The
// margin covers the refusal's answer being stamped (by the leader's
// clock, when proposed) before the workload saw it. A recheck held up
// longer, behind rechecks a fault stalled, is counted and not sent: it
// would test the count of answers a room keeps past that age, not the
// guarantee.
const recheckWithin = game.SessionMinAge - 5*time.Second

// recheck is a refused request waiting to be sent again.
type recheck struct {
	rec     *opRecord
	refused time.Time
	due     time.Time
}

// rechecker sends refused requests again, RecheckAfter after their
// refusal and to another node, with the same request id: the answer must
// be the same refusal (DESIGN.md guarantee 2), within the time the rooms
// remember every answer (see recheckWithin).
func (w *Workload) rechecker(soft, hard context.Context) {
	client := w.hist.newClient()
	for {
		var rc recheck
		select {
		case <-soft.Done():
			return
		case rc = <-w.rechecks:
		}
		select {
		case <-soft.Done():
			return
		case <-time.After(time.Until(rc.due)):
		}
		if time.Since(rc.refused) > recheckWithin {
			w.rechecksLate.Add(1)
			continue
		}
		rec := rc.rec
		in := rec.Input
		in.Recheck = true
		node := (rec.Node + 1) % len(w.lab.Nodes)
		switch in.Kind {
		case opGuess:
			w.guess(hard, client, in, node)
		case opJoin:
			w.command(hard, client, in, node, func(ctx context.Context, c hangmanv1.GameServiceClient) (*hangmanv1.RoomState, error) {
				resp, err := c.JoinRoom(ctx, &hangmanv1.JoinRoomRequest{Room: in.Room, PlayerId: in.Player, Name: in.Player, RequestId: in.RequestID, Token: tokenOf(in.Player)})
				return resp.GetState(), err
			})
		case opNewRound:
			w.command(hard, client, in, node, func(ctx context.Context, c hangmanv1.GameServiceClient) (*hangmanv1.RoomState, error) {
				resp, err := c.NewRound(ctx, &hangmanv1.NewRoundRequest{Room: in.Room, PlayerId: in.Player, RequestId: in.RequestID, Token: tokenOf(in.Player)})
				return resp.GetState(), err
			})
		}
	}
}

// reader reads its slot's current room with CONSISTENCY_LINEARIZABLE; a
// read that fails is not recorded (it observed nothing).
func (w *Workload) reader(soft context.Context, sl *slot) {
	client := w.hist.newClient()
	for soft.Err() == nil {
		room := sl.room.Load().name
		if _, err := w.read(soft, client, room, rand.IntN(len(w.lab.Nodes))); err != nil {
			w.readErrors.Add(1)
		}
		select {
		case <-soft.Done():
		case <-time.After(w.cfg.Pace):
		}
	}
}

// read does one linearizable read on node i and records it: the room's
// state, or that it does not exist (every room read was created before).
func (w *Workload) read(ctx context.Context, client int, room string, i int) (*hangmanv1.RoomState, error) {
	w.reads.Add(1)
	call := w.hist.now()
	actx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	resp, err := w.lab.Nodes[i].Game().GetRoom(actx, &hangmanv1.GetRoomRequest{Room: room, Consistency: hangmanv1.Consistency_CONSISTENCY_LINEARIZABLE})
	cancel()
	if st, _ := status.FromError(err); st.Code() == codes.NotFound {
		w.hist.add(porcupine.Operation{ClientId: client, Input: Input{Room: room, Kind: opRead}, Call: call,
			Output: Output{Err: st.Message(), Refusal: refNoRoom}, Return: w.hist.now()})
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	st := resp.GetState()
	w.classes.learnState(st)
	w.hist.add(porcupine.Operation{ClientId: client, Input: Input{Room: room, Kind: opRead}, Call: call, Output: Output{View: viewOf(st)}, Return: w.hist.now()})
	return st, nil
}

// Records returns every recorded write by room.
func (w *Workload) Records() map[string][]*opRecord {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string][]*opRecord, len(w.ops))
	for k, v := range w.ops {
		out[k] = append([]*opRecord(nil), v...)
	}
	return out
}

// tokenSalt makes this run's player tokens its own.
var tokenSalt = api.NewToken()

// tokenOf is the token a player brings to every call: drawn by the client,
// so that a join retried through faults is the same request (a token drawn
// by the node would be lost with a lost reply).
func tokenOf(player string) string { return tokenSalt[:22] + "-" + player }
