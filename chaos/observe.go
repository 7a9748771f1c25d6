package chaos

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats.go"

	"github.com/hangman/hangman/services/game"
	"github.com/hangman/hangman/subjects"
	"github.com/hangman/hangman/wire"
)

// seenMsg is one room message as an observer received it.
type seenMsg struct {
	Kind string // "event" or "state"
	Room string
	Seq  uint64
	Prev uint64
	// Key is the message's content in a canonical form: two messages with
	// the same room, kind and seq must have the same key.
	Key string
	At  time.Time
	// From is who sent it: the publishing node (wire.PublisherHeader) on
	// NATS, the relay for a websocket frame.
	From string
	// Event fields, for the duplicate check.
	EventKind, Player, Letter, Outcome string
	// State fields, for the letter classes.
	Round                uint64
	Guessed, Wrong, Word string
}

// stream is what one observer connection saw of one room and kind: the
// order check runs per stream.
type stream struct {
	last     uint64
	received int
	// healedBase is set once the stream got an event after the heal.
	healedBase bool
	// recent remembers the contents of the last streamWindow seqs, enough
	// to recognise a republished message (a new leader republishes the 32
	// most recent events of a room) without growing over a soak.
	recent map[uint64]string
	order  []uint64
}

const streamWindow = 256

func (s *stream) remember(seq uint64, key string) {
	if _, ok := s.recent[seq]; !ok {
		s.order = append(s.order, seq)
		if len(s.order) > streamWindow {
			delete(s.recent, s.order[0])
			s.order = s.order[1:]
		}
	}
	s.recent[seq] = key
}

// Observers records every room message reaching the harness, over NATS
// (one subscriber per node, pinned to that node's server) and over every
// relay's websocket (one connection per relay and room), and checks order
// as messages arrive.
type Observers struct {
	log *slog.Logger

	mu sync.Mutex
	// streams by observer/epoch/room/kind.
	streams map[string]*stream
	// latest state seq per observer (not epoch) and room: what convergence
	// compares with the leader's.
	latest map[string]map[string]uint64
	// every event by room, merged over observers, by seq; and the
	// content of every state by room and seq.
	events map[string]map[uint64]seenMsg
	states map[string]map[uint64]seenMsg
	// violations found so far.
	orderViolations, conflicts, gapsAfterHeal, lateNATS, lateNATSStates, repeatedStates int
	examples                                                                            []string
	healedAt                                                                            time.Time
	// natsConns are the subscribers by node, natsEpoch how often each was
	// replaced (a node on a new address).
	natsConns map[string]*nats.Conn
	natsEpoch map[string]int
	// classes learns from every state seen; monitor from every
	// hangman.cluster.leader message. Either may be nil.
	classes  *letterClasses
	monitor  *leaderMonitor
	wsWatch  map[string]bool // relay/room watched
	wg       sync.WaitGroup
	received int
}

func newObservers(log *slog.Logger, classes *letterClasses, monitor *leaderMonitor) *Observers {
	return &Observers{log: log, streams: map[string]*stream{}, latest: map[string]map[string]uint64{},
		events: map[string]map[uint64]seenMsg{}, states: map[string]map[uint64]seenMsg{}, wsWatch: map[string]bool{},
		natsConns: map[string]*nats.Conn{}, natsEpoch: map[string]int{}, classes: classes, monitor: monitor}
}

// parse decodes a state or event payload.
func parse(kind string, data []byte) (seenMsg, error) {
	m := seenMsg{Kind: kind}
	switch kind {
	case "state":
		var st game.State
		if err := json.Unmarshal(data, &st); err != nil {
			return m, fmt.Errorf("decode state: %w", err)
		}
		last := ""
		if st.LastGuess != nil {
			last = st.LastGuess.Player + "/" + st.LastGuess.Letter + "/" + string(st.LastGuess.Outcome)
		}
		m.Room, m.Seq, m.Prev = st.Room, st.Seq, st.Prev
		m.Round, m.Guessed, m.Wrong, m.Word = st.Round, strings.Join(st.Guessed, ""), strings.Join(st.Wrong, ""), st.Word
		m.Key = fmt.Sprintf("r%d p%d %s g%s w%s %s %s %s %d", st.Round, st.Prev, st.Masked, strings.Join(st.Guessed, ""), strings.Join(st.Wrong, ""), st.Status, st.Word, last, len(st.Players))
	case "event":
		var ev game.Event
		if err := json.Unmarshal(data, &ev); err != nil {
			return m, fmt.Errorf("decode event: %w", err)
		}
		m.Room, m.Seq, m.Prev = ev.Room, ev.Seq, ev.Prev
		m.EventKind, m.Player, m.Letter, m.Outcome = ev.Kind, ev.Player, ev.Letter, string(ev.Outcome)
		m.Key = fmt.Sprintf("r%d p%d %s %s %s %s %s %s", ev.Round, ev.Prev, ev.Kind, ev.Player, ev.Name, ev.Letter, ev.Outcome, ev.Status)
	default:
		return m, fmt.Errorf("unknown kind %q", kind)
	}
	return m, nil
}

// record takes one message from observer obs (connection epoch epoch).
func (o *Observers) record(obs string, epoch int, m seenMsg) {
	if m.Kind == "state" && o.classes != nil {
		o.classes.learn(m.Room, m.Round, m.Guessed, m.Wrong, m.Word)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.received++
	example := func(format string, args ...any) {
		if len(o.examples) < 20 {
			o.examples = append(o.examples, fmt.Sprintf(format, args...))
		}
	}
	// Same seq, different content, anywhere: two different commits at one
	// index, or a corrupt message.
	first := o.states
	if m.Kind == "event" {
		first = o.events
	}
	if first[m.Room] == nil {
		first[m.Room] = map[uint64]seenMsg{}
	}
	prev, seen := first[m.Room][m.Seq]
	if !seen {
		first[m.Room][m.Seq] = m
	}
	if seen && prev.Key != m.Key {
		o.conflicts++
		example("conflict: %s %s seq %d: %q from %s vs %q from %s (%s)", m.Room, m.Kind, m.Seq, prev.Key, prev.From, m.Key, m.From, obs)
	}
	// Per stream: strictly increasing once exact duplicates are dropped.
	sk := fmt.Sprintf("%s#%d/%s/%s", obs, epoch, m.Room, m.Kind)
	s := o.streams[sk]
	if s == nil {
		s = &stream{recent: map[uint64]string{}}
		o.streams[sk] = s
	}
	s.received++
	if k, ok := s.recent[m.Seq]; ok && k == m.Key {
		// A duplicate, which the seq lets consumers drop; but a relay
		// promises never to send a session the same state twice.
		if m.Kind == "state" && strings.HasPrefix(obs, "relay-") {
			o.repeatedStates++
			example("repeated state: %s sent %s seq %d twice on one websocket", obs, m.Room, m.Seq)
		}
		return
	}
	s.remember(m.Seq, m.Key)
	if m.Seq <= s.last {
		// NATS is at-least-once and a new leader republishes recent
		// events, so a subscriber that missed one may get it late; the
		// relays must never show a websocket an older seq.
		if strings.HasPrefix(obs, "nats-") {
			o.lateNATS++
			if m.Kind == "state" {
				o.lateNATSStates++
				if o.lateNATSStates <= 3 {
					example("late state: %s got %s state seq %d after seq %d at %s", obs, m.Room, m.Seq, s.last, m.At.UTC().Format("15:04:05.000"))
				}
			}
			return
		}
		o.orderViolations++
		example("order: %s got %s %s seq %d after seq %d at %s", obs, m.Room, m.Kind, m.Seq, s.last, m.At.UTC().Format("15:04:05.000"))
		return
	}
	// Once healed, events must chain by prev. The first event a stream
	// gets after the heal may still reveal what it missed during the
	// faults; from the second on, a gap is a message lost while healthy.
	if m.Kind == "event" && !o.healedAt.IsZero() && m.At.After(o.healedAt) {
		if s.healedBase && m.Prev != s.last {
			o.gapsAfterHeal++
			example("gap after heal: %s got %s event seq %d prev %d after seq %d", obs, m.Room, m.Seq, m.Prev, s.last)
		}
		s.healedBase = true
	}
	s.last = m.Seq
	if m.Kind == "state" {
		if o.latest[obs] == nil {
			o.latest[obs] = map[string]uint64{}
		}
		o.latest[obs][m.Room] = max(o.latest[obs][m.Room], m.Seq)
	}
}

// markHealed starts the gap check: events arriving from now on must chain.
func (o *Observers) markHealed() {
	o.mu.Lock()
	o.healedAt = time.Now()
	o.mu.Unlock()
}

// subscribeNATS subscribes to every room and to hangman.cluster.leader on
// one node's NATS server, and only that server: the subscriber sees what
// that node's server delivers. Subscribing again for the same node (on a
// new address) replaces the old subscriber with a new stream epoch.
func (o *Observers) subscribeNATS(name, url string) error {
	nc, err := nats.Connect(url, nats.Name("chaos-"+name), nats.MaxReconnects(-1),
		nats.ReconnectWait(100*time.Millisecond), nats.RetryOnFailedConnect(true),
		func(opts *nats.Options) error { opts.IgnoreDiscoveredServers = true; return nil })
	if err != nil {
		return fmt.Errorf("nats subscriber on %s: %w", url, err)
	}
	o.mu.Lock()
	if old := o.natsConns[name]; old != nil {
		old.Close()
		o.natsEpoch[name]++
	}
	o.natsConns[name] = nc
	epoch := o.natsEpoch[name]
	o.mu.Unlock()
	_, err = nc.Subscribe(subjects.Rooms, func(msg *nats.Msg) {
		parts := strings.Split(msg.Subject, ".")
		if len(parts) != 4 || parts[3] == "history" {
			// A room's finished rounds say nothing the checks use: the
			// states and events before them said it all.
			return
		}
		m, err := parse(parts[3], msg.Data)
		if err != nil {
			o.log.Warn("bad nats message", "subject", msg.Subject, "err", err)
			return
		}
		m.At, m.From = time.Now(), "node "+msg.Header.Get(wire.PublisherHeader)
		o.record("nats-"+name, epoch, m)
	})
	if err == nil && o.monitor != nil {
		_, err = nc.Subscribe(subjects.ClusterLeader, func(msg *nats.Msg) { o.monitor.observeMessage(msg.Data, "nats-"+name) })
	}
	if err != nil {
		return fmt.Errorf("subscribe on %s: %w", url, err)
	}
	return nil
}

// watchRelay keeps a websocket open to relay r watching room until ctx
// ends, reconnecting (a new epoch) whenever the connection drops.
func (o *Observers) watchRelay(ctx context.Context, r *Relay, room string) {
	o.mu.Lock()
	if o.wsWatch[r.Name+"/"+room] {
		o.mu.Unlock()
		return
	}
	o.wsWatch[r.Name+"/"+room] = true
	o.mu.Unlock()
	obs := "relay-" + r.Name
	o.wg.Go(func() {
		var refusedSince time.Time // start of the refusals in a row
		warned := false
		for epoch := 0; ctx.Err() == nil; epoch++ {
			err := o.watchOnce(ctx, r, room, obs, epoch)
			if ctx.Err() != nil {
				return
			}
			// A relay that keeps answering the upgrade with a refusal
			// leaves the room unwatched there, which the convergence check
			// would only report as a room never shown: say why, once. A
			// relay shutting down refuses too, but not for long.
			var re *refusedError
			switch {
			case !errors.As(err, &re):
				refusedSince, warned = time.Time{}, false
			case refusedSince.IsZero():
				refusedSince = time.Now()
			case !warned && time.Since(refusedSince) >= refusalWarnAfter:
				warned = true
				o.log.Warn("relay keeps refusing an observer's websocket", "relay", r.Name, "room", room, "for", time.Since(refusedSince).Round(time.Second), "err", err)
			}
			o.log.Debug("websocket closed", "relay", r.Name, "room", room, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
}

func (o *Observers) watchOnce(ctx context.Context, r *Relay, room, obs string, epoch int) error {
	d := websocket.Dialer{HandshakeTimeout: 2 * time.Second}
	h := http.Header{"Origin": []string{r.URL()}}
	c, resp, err := d.DialContext(ctx, "ws://"+r.Addr+"/ws", h)
	if err != nil {
		if resp != nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			_ = resp.Body.Close()
			return &refusedError{relay: r.Name, status: resp.StatusCode, body: strings.TrimSpace(string(body))}
		}
		return fmt.Errorf("dial %s: %w", r.Name, err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer stop()
	if err := c.WriteJSON(map[string]string{"type": "watch", "room": room}); err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	for {
		var f struct {
			Type string          `json:"type"`
			Data json.RawMessage `json:"data"`
			// Event is the change a state frame carries with it
			// (relay/PROTOCOL.md): it comes before the state.
			Event json.RawMessage `json:"event"`
		}
		if err := c.ReadJSON(&f); err != nil {
			return fmt.Errorf("read: %w", err)
		}
		if f.Type != "state" && f.Type != "event" {
			continue
		}
		at := time.Now()
		if f.Type == "state" && len(f.Event) > 0 {
			ev, err := parse("event", f.Event)
			if err != nil {
				o.log.Warn("bad event in a state frame", "relay", r.Name, "err", err)
			} else {
				ev.At, ev.From = at, obs
				o.record(obs, epoch, ev)
			}
		}
		m, err := parse(f.Type, f.Data)
		if err != nil {
			o.log.Warn("bad websocket frame", "relay", r.Name, "err", err)
			continue
		}
		m.At, m.From = at, obs
		o.record(obs, epoch, m)
	}
}

// refusalWarnAfter is how long a relay may refuse an observer's
// websocket before the observer warns.
const refusalWarnAfter = 5 * time.Second

// refusedError is a relay's answer to an observer's websocket upgrade
// other than the upgrade: it is up, and says no.
type refusedError struct {
	relay  string
	status int
	body   string
}

func (e *refusedError) Error() string {
	return fmt.Sprintf("relay %s refused the websocket: HTTP %d %s", e.relay, e.status, e.body)
}

// Latest returns, per observer, the highest state seq seen for room.
func (o *Observers) Latest(room string) map[string]uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[string]uint64{}
	for obs, rooms := range o.latest {
		out[obs] = rooms[room]
	}
	return out
}

// Events returns the guess events seen for room, merged over observers,
// in seq order.
func (o *Observers) Events(room string) []seenMsg {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []seenMsg
	for _, m := range o.events[room] {
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b seenMsg) int { return cmp.Compare(a.Seq, b.Seq) })
	return out
}

// close stops every observer connection.
func (o *Observers) close() {
	o.mu.Lock()
	for _, nc := range o.natsConns {
		nc.Close()
	}
	o.mu.Unlock()
	o.wg.Wait()
}
