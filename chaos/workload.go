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
)

// alphabet is what players guess: consonants without y. Every word of the
// game has a vowel, so no round is ever won, and there are 20 letters, so
// with maxWrong 26 none is ever lost (see roomModel).
const alphabet = "bcdfghjklmnpqrstvwxz"

// roomMaxWrong keeps rounds from being lost.
const roomMaxWrong = 26

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

// guessRecord is one guess as the duplicate and loss checks need it.
type guessRecord struct {
	Input
	Output
	Call int64
	// ForeignIndex marks a non-duplicate reply whose index is not the
	// entry that applied the guess (see Output.Index).
	ForeignIndex bool
}

// Workload drives players and readers against the lab's nodes.
type Workload struct {
	lab     *Lab
	hist    *History
	log     *slog.Logger
	cfg     WorkloadConfig
	mu      sync.Mutex
	guesses map[string][]*guessRecord // by player (player ids are unique across rooms)
	rooms   []string                  // every room created, in creation order

	attempts, retries, reads, readErrors atomic.Int64
}

// WorkloadConfig sizes a Workload.
type WorkloadConfig struct {
	// Slots is how many rooms are played at once; each slot moves to a new
	// room every RoomLife, so that letters keep being guessed for the
	// first time (a room's 20 letters are soon all guessed).
	Slots    int
	RoomLife time.Duration
	// Players and Readers per slot.
	Players int
	Readers int
	// Pace is the pause between one client's operations.
	Pace time.Duration
	// Timeout bounds one attempt.
	Timeout time.Duration
}

func newWorkload(lab *Lab, hist *History, log *slog.Logger, cfg WorkloadConfig) *Workload {
	return &Workload{lab: lab, hist: hist, log: log, cfg: cfg, guesses: map[string][]*guessRecord{}}
}

// slot is the room a group of clients currently plays.
type slot struct {
	room    atomic.Pointer[string]
	players []string
}

// Run plays until soft ends; operations in flight then keep retrying until
// hard ends, after which they are recorded as pending. Run returns once
// every client has stopped.
func (w *Workload) Run(soft, hard context.Context) error {
	var wg sync.WaitGroup
	errs := make(chan error, 2*w.cfg.Slots)
	for s := range w.cfg.Slots {
		sl := &slot{}
		for p := range w.cfg.Players {
			sl.players = append(sl.players, fmt.Sprintf("s%dp%d", s, p))
		}
		first, err := w.newRoom(hard, s, 0, sl.players)
		if err != nil {
			errs <- err
			continue
		}
		sl.room.Store(&first)
		for _, p := range sl.players {
			wg.Go(func() { w.player(soft, hard, sl, p) })
		}
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
				room, err := w.newRoom(soft, s, gen, sl.players)
				if err != nil {
					if soft.Err() == nil {
						errs <- err
					}
					return
				}
				sl.room.Store(&room)
			}
		})
	}
	wg.Wait()
	close(errs)
	return errors.Join(func() []error {
		var out []error
		for e := range errs {
			out = append(out, e)
		}
		return out
	}()...)
}

// Rooms lists every room created.
func (w *Workload) Rooms() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.rooms...)
}

// newRoom creates a room and joins the slot's players, retrying through
// faults with fixed request ids. The room enters the history only once all
// of this is acknowledged, so these writes precede every modelled operation.
func (w *Workload) newRoom(ctx context.Context, s, gen int, players []string) (string, error) {
	room := fmt.Sprintf("c%dg%d", s, gen)
	err := w.retry(ctx, func(ctx context.Context, c hangmanv1.GameServiceClient) error {
		_, err := c.CreateRoom(ctx, &hangmanv1.CreateRoomRequest{Room: room, MaxWrong: roomMaxWrong, RequestId: "create-" + room})
		return err
	})
	if err != nil {
		return "", fmt.Errorf("create room %s: %w", room, err)
	}
	for _, p := range players {
		err := w.retry(ctx, func(ctx context.Context, c hangmanv1.GameServiceClient) error {
			_, err := c.JoinRoom(ctx, &hangmanv1.JoinRoomRequest{Room: room, PlayerId: p, Name: p, RequestId: "join-" + room + "-" + p, Token: tokenOf(p)})
			return err
		})
		if err != nil {
			return "", fmt.Errorf("join %s to %s: %w", p, room, err)
		}
	}
	w.mu.Lock()
	w.rooms = append(w.rooms, room)
	w.mu.Unlock()
	return room, nil
}

// tokenSalt makes this run's player tokens its own.
var tokenSalt = api.NewToken()

// tokenOf is the token player brings to every call: drawn by the client,
// so that a join retried through faults is the same request.
func tokenOf(player string) string { return tokenSalt[:22] + "-" + player }

// retry calls f on node after node until it succeeds, fails for good, or
// ctx ends.
func (w *Workload) retry(ctx context.Context, f func(context.Context, hangmanv1.GameServiceClient) error) error {
	node := rand.IntN(len(w.lab.Nodes))
	for {
		actx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
		err := f(actx, w.lab.Nodes[node].Game())
		cancel()
		if err == nil || !uncertain(err) {
			return err
		}
		node = (node + 1) % len(w.lab.Nodes)
		select {
		case <-ctx.Done():
			return fmt.Errorf("gave up: %w (last: %w)", ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// uncertain reports whether a failed call may still have been applied, so
// that it must be retried with the same request id.
func uncertain(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.Unknown, codes.Internal, codes.Aborted, codes.ResourceExhausted:
		return true
	}
	return false
}

// player guesses letters one at a time in its slot's current room.
func (w *Workload) player(soft, hard context.Context, sl *slot, player string) {
	client := w.hist.newClient()
	var n int
	var recent []byte
	for soft.Err() == nil {
		room := *sl.room.Load()
		letter := pickLetter(recent)
		recent = append(recent, letter)
		if len(recent) > 3 {
			recent = recent[1:]
		}
		n++
		in := Input{Room: room, Kind: opGuess, Player: player, Letter: string(letter), RequestID: fmt.Sprintf("%s-%s-%d", room, player, n)}
		w.guess(soft, hard, client, in)
		select {
		case <-soft.Done():
		case <-time.After(w.cfg.Pace):
		}
	}
}

// pickLetter picks a letter unlike the last few of the same player, so that
// an event can be told from its neighbours (see checkDuplicates).
func pickLetter(recent []byte) byte {
	for {
		l := alphabet[rand.IntN(len(alphabet))]
		if !strings.ContainsRune(string(recent), rune(l)) {
			return l
		}
	}
}

// guess runs one guess to completion and records it: retried with the same
// request id on the next node while its outcome is unknown.
func (w *Workload) guess(soft, hard context.Context, client int, in Input) {
	rec := &guessRecord{Input: in, Call: w.hist.now()}
	req := &hangmanv1.GuessRequest{Room: in.Room, PlayerId: in.Player, Letter: in.Letter, RequestId: in.RequestID, Token: tokenOf(in.Player)}
	node := rand.IntN(len(w.lab.Nodes))
	wasUncertain := false
	for attempt := 0; ; attempt++ {
		w.attempts.Add(1)
		if attempt > 0 {
			w.retries.Add(1)
		}
		actx, cancel := context.WithTimeout(hard, w.cfg.Timeout)
		resp, err := w.lab.Nodes[node].Game().Guess(actx, req)
		cancel()
		if err == nil {
			rec.Outcome, rec.Duplicate = resp.GetOutcome(), resp.GetDuplicate()
			switch {
			case resp.GetDuplicate():
			case resp.GetState().GetSeq() == resp.GetIndex():
				rec.Index = resp.GetIndex()
				rec.Guessed = strings.Join(resp.GetState().GetGuessed(), "")
			default:
				// The node retried an attempt of unknown outcome itself and
				// met its own earlier application: index names the no-op
				// retry entry, above the room's seq.
				rec.ForeignIndex = true
			}
			break
		}
		if !uncertain(err) {
			if wasUncertain {
				// An earlier attempt may yet apply: the fate is unknown.
				rec.Unknown = true
			} else {
				rec.Err = err.Error()
			}
			w.log.Warn("guess refused", "room", in.Room, "player", in.Player, "letter", in.Letter, "id", in.RequestID, "err", err)
			break
		}
		wasUncertain = true
		node = (node + 1) % len(w.lab.Nodes)
		if hard.Err() != nil {
			rec.Unknown = true
			break
		}
		select {
		case <-hard.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
	ret := w.hist.now()
	if rec.Unknown {
		ret = -1
	}
	w.hist.add(porcupine.Operation{ClientId: client, Input: in, Call: rec.Call, Output: rec.Output, Return: ret})
	w.mu.Lock()
	w.guesses[in.Player] = append(w.guesses[in.Player], rec)
	w.mu.Unlock()
}

// reader reads its slot's current room with CONSISTENCY_LINEARIZABLE; a
// read that fails is not recorded (it observed nothing).
func (w *Workload) reader(soft context.Context, sl *slot) {
	client := w.hist.newClient()
	for soft.Err() == nil {
		room := *sl.room.Load()
		if _, err := w.read(soft, client, room, rand.IntN(len(w.lab.Nodes))); err != nil {
			w.readErrors.Add(1)
		}
		select {
		case <-soft.Done():
		case <-time.After(w.cfg.Pace):
		}
	}
}

// read does one linearizable read on node i and records it.
func (w *Workload) read(ctx context.Context, client int, room string, i int) (*hangmanv1.RoomState, error) {
	w.reads.Add(1)
	call := w.hist.now()
	actx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	resp, err := w.lab.Nodes[i].Game().GetRoom(actx, &hangmanv1.GetRoomRequest{Room: room, Consistency: hangmanv1.Consistency_CONSISTENCY_LINEARIZABLE})
	cancel()
	if err != nil {
		return nil, err
	}
	st := resp.GetState()
	out := Output{Guessed: strings.Join(st.GetGuessed(), ""), Seq: st.GetSeq()}
	if lg := st.GetLastGuess(); lg != nil {
		out.Last = lg.GetPlayer() + "/" + lg.GetLetter() + "/" + lg.GetOutcome()
	}
	w.hist.add(porcupine.Operation{ClientId: client, Input: Input{Room: room, Kind: opRead}, Call: call, Output: out, Return: w.hist.now()})
	return st, nil
}

// Guesses returns every recorded guess by player.
func (w *Workload) Guesses() map[string][]*guessRecord {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string][]*guessRecord, len(w.guesses))
	for k, v := range w.guesses {
		out[k] = append([]*guessRecord(nil), v...)
	}
	return out
}
