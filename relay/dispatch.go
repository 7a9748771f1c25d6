package relay

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"

	"github.com/gorilla/websocket"
	"github.com/olahol/melody"
	"golang.org/x/time/rate"

	"github.com/hangman/hangman/services/game"
)

// frameHandler handles one type of client frame. A queued handler waits on
// the cluster, so it runs on the client's worker, one command at a time in
// the order sent; the others answer at once on the frame pool.
type frameHandler struct {
	queued bool
	run    func(c *client, in *inbound)
}

// frameTypes is the relay's one dispatch table: every client frame type, in
// the order PROTOCOL.md lists them, with its handler.
var frameTypes = []struct {
	typ string
	h   frameHandler
}{
	{typeJoin, frameHandler{true, (*client).join}},
	{typeWatch, frameHandler{true, (*client).watch}},
	{typeLeave, frameHandler{true, (*client).leave}},
	{typeGuess, frameHandler{true, (*client).guess}},
	{typeCreate, frameHandler{true, (*client).create}},
	{typeNewRound, frameHandler{true, (*client).newRound}},
	{typeSetWord, frameHandler{true, (*client).setWord}},
	{typeList, frameHandler{true, (*client).list}},
	{typeLobby, frameHandler{false, (*client).lobby}},
	{typeCluster, frameHandler{false, (*client).cluster}},
	{typePing, frameHandler{false, (*client).ping}},
}

// frameHandlers indexes frameTypes by type; frameTypeList names them for
// the error frame of an unknown type.
var frameHandlers, frameTypeList = func() (map[string]frameHandler, string) {
	m := make(map[string]frameHandler, len(frameTypes))
	var list string
	for i, t := range frameTypes {
		m[t.typ] = t.h
		switch {
		case i == 0:
		case i == len(frameTypes)-1:
			list += " or "
		default:
			list += ", "
		}
		list += t.typ
	}
	return m, list
}()

// frameJob is one frame on its way to the frame pool.
type frameJob struct {
	c    *client
	data []byte
}

// frameGate is a connection's state on the frame pool, which handles one
// frame of a connection at a time: its frame rate limit, the rate-limited
// frames in a row (strikes), whether it is being closed for flooding, and
// the signal that its frame was handled.
type frameGate struct {
	limiter *rate.Limiter
	strikes int
	closing bool
	handled chan struct{}
}

func newFrameGate(cfg Config) frameGate {
	return frameGate{limiter: rate.NewLimiter(rate.Limit(cfg.MessageRate), cfg.MessageBurst), handled: make(chan struct{}, 1)}
}

// admit applies the rate limit to one frame: ok if it may be handled;
// flood if it is the rate-limited frame in a row that closes the
// connection, which is from then on closing.
func (g *frameGate) admit(floodStrikes int) (ok, flood bool) {
	if g.limiter.Allow() {
		g.strikes = 0
		return true, false
	}
	g.strikes++
	if g.strikes >= floodStrikes {
		g.closing = true
		return false, true
	}
	return false, false
}

// dispatcher is the one path of a client frame to its handler: a few
// goroutines, the frame pool, take every connection's frames in turn,
// apply the connection's frame rate limit, parse the frame and hand it to
// its type's handler in frameTypes, at once or through the client's
// command queue.
//
// Decoding JSON and encoding answers needs more than the 4 KiB stack a
// goroutine that has read from a socket already holds; done on a
// connection's read goroutine, it would double that stack for as long as
// the connection lives, idle or not, since the runtime shrinks a stack only
// while little of it is in use. Run on a few goroutines that keep their
// grown stacks, the read goroutine stays small. Each read goroutine waits
// for its frame to be handled, so a client's frames keep their order and a
// fast sender is held back by its own socket.
type dispatcher struct {
	jobs chan frameJob
	// floodStrikes, rate and burst are Config.FloodStrikes, MessageRate
	// and MessageBurst.
	floodStrikes int
	rate         float64
	burst        int
	stats        *counters
	out          *sender
}

func newDispatcher(cfg Config, stats *counters, out *sender) *dispatcher {
	return &dispatcher{jobs: make(chan frameJob), floodStrikes: cfg.FloodStrikes, rate: cfg.MessageRate, burst: cfg.MessageBurst, stats: stats, out: out}
}

// start starts the frame pool, with spawn, until ctx ends.
func (d *dispatcher) start(ctx context.Context, spawn func(func())) {
	for range max(4, 2*runtime.GOMAXPROCS(0)) {
		spawn(func() {
			for {
				select {
				case j := <-d.jobs:
					d.handle(j.c, j.data)
					j.c.gate.handled <- struct{}{}
				case <-ctx.Done():
					return
				}
			}
		})
	}
}

// onMessage hands a text frame to the frame pool and waits until it has
// been handled, or ctx ends.
func (d *dispatcher) onMessage(ctx context.Context, s *melody.Session, data []byte) {
	c := clientOf(s)
	select {
	case d.jobs <- frameJob{c: c, data: data}:
		<-c.gate.handled
	case <-ctx.Done():
	}
}

// handle limits, parses and dispatches one text frame of c: limits
// first, then the command.
func (d *dispatcher) handle(c *client, data []byte) {
	d.stats.framesIn.Add(1)
	if c.gate.closing {
		return
	}
	if ok, flood := c.gate.admit(d.floodStrikes); !ok {
		d.stats.rateLimited.Add(1)
		if flood {
			d.out.send(c, errFrame(CodeFlood, "too many frames after being rate limited; closing", ""))
			d.out.queue(c, outItem{kind: outClose, frame: websocket.FormatCloseMessage(websocket.ClosePolicyViolation, "flood")})
			return
		}
		d.out.send(c, errFrame(CodeRateLimited, fmt.Sprintf("slow down: at most %g frames per second (bursts of %d); this frame was ignored", d.rate, d.burst), idOf(data)))
		return
	}
	var in inbound
	if err := json.Unmarshal(data, &in); err != nil {
		d.stats.badFrames.Add(1)
		d.out.send(c, errFrame(CodeBadJSON, "frame is not a JSON object: "+clipString(err.Error(), 120), ""))
		return
	}
	if !game.ValidRequestID(in.ID) {
		d.stats.badFrames.Add(1)
		d.out.send(c, errFrame(CodeBadRequest, fmt.Sprintf("id must be at most %d printable ASCII characters", game.MaxRequestIDLen), ""))
		return
	}
	if in.Type == "" {
		d.stats.badFrames.Add(1)
		d.out.send(c, errFrame(CodeBadRequest, `frame has no "type"`, in.ID))
		return
	}
	h, ok := frameHandlers[in.Type]
	switch {
	case !ok:
		d.stats.badFrames.Add(1)
		d.out.send(c, errFrame(CodeUnknownType, fmt.Sprintf("unknown frame type %q; expected %s", clipString(in.Type, 32), frameTypeList), in.ID))
	case !h.queued:
		h.run(c, &in)
	case !c.cmds.push(&in, c.runQueued):
		d.out.send(c, errFrame(CodeBusy, fmt.Sprintf("%d commands are already waiting; wait for their answers", maxQueued), in.ID))
	}
}

// idOf pulls the id out of a frame that will not be processed, so even a
// refusal can be matched to its request.
func idOf(data []byte) string {
	var v struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(data, &v) != nil || !game.ValidRequestID(v.ID) {
		return ""
	}
	return v.ID
}
