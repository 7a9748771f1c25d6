package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats.go"
	"golang.org/x/time/rate"

	"github.com/hangman/hangman/internal/harness"
	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
	"github.com/hangman/hangman/services/api"
	"github.com/hangman/hangman/subjects"
)

// WSConfig drives websocket clients through the relays.
type WSConfig struct {
	Clients, Rooms int
	// Rate is guesses/s over all rooms, spread evenly.
	Rate             float64
	Duration, Warmup time.Duration
	KillLeaderAt     time.Duration
	RawNATS          bool
}

// sample is one guess event received by one client.
type sample struct {
	seq uint64
	at  time.Time
}

// sendLog remembers when each room's guesses were sent, by the seq their
// acknowledgement reported.
type sendLog struct {
	mu    sync.Mutex
	sends []map[uint64]time.Time
}

func newSendLog(rooms int) *sendLog {
	s := &sendLog{sends: make([]map[uint64]time.Time, rooms)}
	for i := range s.sends {
		s.sends[i] = make(map[uint64]time.Time)
	}
	return s
}

func (s *sendLog) put(room int, seq uint64, sent time.Time) {
	s.mu.Lock()
	s.sends[room][seq] = sent
	s.mu.Unlock()
}

// latencies turns received samples into guess→receive latencies, counting
// only guesses sent inside the measured window.
func (s *sendLog) latencies(room int, got []sample, from, to time.Time, out *[]time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, g := range got {
		if sent, ok := s.sends[room][g.seq]; ok && !sent.Before(from) && sent.Before(to) {
			*out = append(*out, g.at.Sub(sent))
		}
	}
}

// wsClient is one browser stand-in.
type wsClient struct {
	conn    *websocket.Conn
	room    int
	guesser bool
	token   string // the guesser's, drawn before it joins
	mu      sync.Mutex
	got     []sample
	acks    chan frame
	frames  *atomic.Int64
	wmu     sync.Mutex
	// ended says the connection ended, the relay having closed it
	// unless the bench did.
	ended atomic.Bool
}

// frame is the part of a relay frame the bench reads.
type frame struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	Op   string `json:"op"`
	Code string `json:"code"`
	Msg  string `json:"message"`
	Seq  uint64 `json:"seq"`
}

var (
	eventPrefix  = []byte(`{"type":"event"`)
	statePrefix  = []byte(`{"type":"state"`)
	carriedEvent = []byte(`,"event":{`)
	guessKind    = []byte(`"kind":"guess"`)
	seqField     = []byte(`"seq":`)
)

// seqOf reads the first "seq" number of a frame without decoding it all:
// thousands of clients read every frame, and the bench shares the cores
// with the system it measures.
func seqOf(b []byte) uint64 {
	i := bytes.Index(b, seqField)
	if i < 0 {
		return 0
	}
	var n uint64
	for _, c := range b[i+len(seqField):] {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + uint64(c-'0')
	}
	return n
}

func (c *wsClient) read() {
	for {
		_, b, err := c.conn.ReadMessage()
		if err != nil {
			c.ended.Store(true)
			close(c.acks)
			return
		}
		now := time.Now()
		c.frames.Add(1)
		// A guess reaches a watcher as its state carrying its event, or
		// (when the two could not travel together) as an event frame.
		if bytes.HasPrefix(b, eventPrefix) || bytes.HasPrefix(b, statePrefix) && bytes.Contains(b, carriedEvent) {
			if bytes.Contains(b, guessKind) {
				c.mu.Lock()
				c.got = append(c.got, sample{seq: seqOf(b), at: now})
				c.mu.Unlock()
			}
			continue
		}
		if c.guesser && (bytes.Contains(b, []byte(`"type":"ack"`)) || bytes.Contains(b, []byte(`"type":"error"`))) {
			var f frame
			if json.Unmarshal(b, &f) == nil {
				select {
				case c.acks <- f:
				default:
				}
			}
		}
	}
}

func (c *wsClient) send(v any) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return c.conn.WriteJSON(v)
}

// await waits for the answer to command id.
func (c *wsClient) await(ctx context.Context, id string) (frame, error) {
	for {
		select {
		case <-ctx.Done():
			return frame{}, ctx.Err()
		case f, ok := <-c.acks:
			if !ok {
				return frame{}, fmt.Errorf("connection closed")
			}
			if f.ID != id {
				continue
			}
			if f.Type == "error" {
				return f, fmt.Errorf("%s: %s", f.Code, f.Msg)
			}
			return f, nil
		}
	}
}

// loopbackSources is how many loopback addresses (127.0.0.1 and up) the
// clients of one run dial from. One source address reaches one relay
// address through at most the kernel's ephemeral ports (about 28,000 by
// default), and a relay's 100,000 websockets need more.
const loopbackSources = 16

// dialClient opens client i's websocket to relayURL, from the loopback
// address of its turn when the relay is on loopback.
func dialClient(ctx context.Context, relayURL string, i int, frames *atomic.Int64) (*wsClient, error) {
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, ReadBufferSize: 2048, WriteBufferSize: 512}
	if u, err := url.Parse(relayURL); err == nil {
		if ip := net.ParseIP(u.Hostname()); ip != nil && ip.IsLoopback() && ip.To4() != nil {
			src := &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i%loopbackSources))}
			d.NetDialContext = (&net.Dialer{LocalAddr: src}).DialContext
		}
	}
	conn, _, err := d.DialContext(ctx, "ws"+strings.TrimPrefix(relayURL, "http")+"/ws", http.Header{"Origin": {relayURL}})
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", relayURL, err)
	}
	var hello frame
	if err := conn.ReadJSON(&hello); err != nil {
		conn.Close()
		return nil, fmt.Errorf("no welcome from %s: %w", relayURL, err)
	}
	if hello.Type != "welcome" {
		conn.Close()
		return nil, fmt.Errorf("no welcome from %s: the first frame is %q", relayURL, hello.Type)
	}
	return &wsClient{conn: conn, acks: make(chan frame, 16), frames: frames}, nil
}

// RunWS measures the path players see: guess → relay → raft → NATS →
// relays → every browser of the room.
func RunWS(ctx context.Context, sys *System, cfg WSConfig) (*Report, error) {
	gc, closeGC, err := gameClients(sys.GRPCAddrs, false)
	if err != nil {
		return nil, err
	}
	defer closeGC()
	rooms, err := createRooms(ctx, gc[0], "ws", cfg.Rooms)
	if err != nil {
		return nil, err
	}
	rep := &Report{Mode: "ws", Nodes: len(sys.GRPCAddrs), Relays: len(sys.RelayURLs), Clients: cfg.Clients, Rooms: cfg.Rooms, TargetRate: cfg.Rate, Attached: !sys.Started()}
	rss0 := relayRSS(sys)
	live0, _, err := relayLiveBytes(ctx, sys)
	if err != nil {
		return nil, err
	}

	var frames atomic.Int64
	clients := make([]*wsClient, cfg.Clients)
	var dialErr error
	var emu sync.Mutex
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for i := range cfg.Clients {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c, err := dialClient(ctx, sys.RelayURLs[i%len(sys.RelayURLs)], i, &frames)
			if err != nil {
				emu.Lock()
				dialErr = err
				emu.Unlock()
				return
			}
			c.room, c.guesser = i%cfg.Rooms, i < cfg.Rooms
			clients[i] = c
			go c.read()
			id := "hello-" + strconv.Itoa(i)
			if c.guesser {
				c.token = api.NewToken()
				err = c.send(map[string]any{"type": "join", "room": rooms[c.room], "playerId": playerID("g", i), "name": fmt.Sprintf("guesser %d", i), "id": id, "token": c.token})
			} else {
				err = c.send(map[string]any{"type": "watch", "room": rooms[c.room], "id": id})
			}
			if err == nil && c.guesser {
				actx, cancel := context.WithTimeout(ctx, 20*time.Second)
				_, err = c.await(actx, id)
				cancel()
			}
			if err != nil {
				emu.Lock()
				dialErr = fmt.Errorf("client %d: %w", i, err)
				emu.Unlock()
			}
		})
	}
	wg.Wait()
	defer func() {
		for _, c := range clients {
			if c != nil {
				c.conn.Close()
			}
		}
	}()
	if dialErr != nil {
		return nil, dialErr
	}
	if rss1 := relayRSS(sys); rss1 > rss0 {
		rep.RelayIdleKiBPerConn = float64(rss1-rss0) / 1024 / float64(cfg.Clients)
	}
	live1, stacks1, err := relayLiveBytes(ctx, sys)
	if err != nil {
		return nil, err
	}
	if live1 > live0 {
		rep.RelayLiveKiBPerConn = float64(live1-live0) / 1024 / float64(cfg.Clients)
		rep.RelayStackKiBPerConn = float64(stacks1) / 1024 / float64(cfg.Clients)
	}

	sends := newSendLog(cfg.Rooms)
	acks := &ackLog{}
	perRoom := cfg.Rate / float64(cfg.Rooms)
	guess := func(lctx context.Context, acks *ackLog, kill bool) (time.Time, time.Time) {
		var wg sync.WaitGroup
		for i, c := range clients[:cfg.Rooms] {
			wg.Go(func() {
				// Spread the rooms' guesses over each period instead of
				// sending them all on the same tick.
				if !sleepCtx(lctx, stagger(i, cfg.Rooms, perRoom)) {
					return
				}
				wsGuessLoop(lctx, c, perRoom, acks, sends)
			})
		}
		if kill {
			go killLater(lctx, sys, cfg.KillLeaderAt, acks)
		}
		start := time.Now()
		wg.Wait()
		return start, time.Now()
	}
	wctx, cancel := context.WithTimeout(ctx, cfg.Warmup)
	guess(wctx, &ackLog{}, false)
	cancel()

	cpu0 := relayCPU(sys)
	f0 := frames.Load()
	mctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	from, to := guess(mctx, acks, cfg.KillLeaderAt > 0)
	cancel()
	elapsed := to.Sub(from)
	f1 := frames.Load()
	cpu1 := relayCPU(sys)
	rep.Duration = elapsed.Seconds()
	rep.Committed, rep.Errors, rep.ErrorCodes = acks.committed.Load(), acks.errors.Load(), acks.codes
	rep.CommittedPerSec = float64(rep.Committed) / elapsed.Seconds()
	rep.AckLatency = summarise(acks.latencies)
	rep.FailoverGapMS = acks.failoverGap()
	rep.DeliveredPerSec = float64(f1-f0) / elapsed.Seconds()
	rep.RelayCPUPercent = 100 * float64(cpu1-cpu0) / float64(elapsed)
	rep.RelayRSSMiB = float64(relayRSS(sys)) / (1 << 20)
	// Let the last events arrive before reading the samples.
	time.Sleep(200 * time.Millisecond)
	for _, c := range clients {
		if c.ended.Load() {
			rep.Disconnects++
		}
	}
	var lat []time.Duration
	for _, c := range clients[cfg.Rooms:] {
		c.mu.Lock()
		sends.latencies(c.room, c.got, from, to, &lat)
		c.mu.Unlock()
	}
	l := summarise(lat)
	rep.DeliveryLatency = &l
	for _, c := range clients {
		c.conn.Close()
	}
	if cfg.RawNATS && cfg.KillLeaderAt == 0 {
		delivered, raw, err := runRawNATS(ctx, sys, gc, rooms, cfg)
		if err != nil {
			return nil, fmt.Errorf("raw NATS comparison: %w", err)
		}
		rep.RawNATSDeliveredPerSec, rep.RawNATSLatency = delivered, raw
	}
	return rep, nil
}

// wsGuessLoop guesses through one websocket, one guess at a time, paced to
// perSecond.
func wsGuessLoop(ctx context.Context, c *wsClient, perSecond float64, acks *ackLog, sends *sendLog) {
	lim := rate.NewLimiter(rate.Limit(perSecond), 1)
	var lat []time.Duration
	defer func() { acks.merge(lat) }()
	for n := 0; ; n++ {
		if err := lim.Wait(ctx); err != nil {
			return
		}
		id := fmt.Sprintf("q%d-%d", time.Now().UnixNano(), n)
		sent := time.Now()
		if err := c.send(map[string]any{"type": "guess", "letter": string(rune('a' + n%26)), "id": id, "token": c.token}); err != nil {
			acks.fail("send")
			return
		}
		actx, cancel := context.WithTimeout(ctx, 15*time.Second)
		f, err := c.await(actx, id)
		cancel()
		switch {
		case err == nil:
			acks.ack(sent, time.Now(), &lat)
			sends.put(c.room, f.Seq, sent)
		case f.Code == "precondition":
			rid := "round-" + id
			if c.send(map[string]any{"type": "newRound", "id": rid, "token": c.token}) == nil {
				actx, cancel := context.WithTimeout(ctx, 15*time.Second)
				_, _ = c.await(actx, rid)
				cancel()
			}
		case ended(ctx):
			return
		default:
			acks.fail(f.Code)
		}
	}
}

// runRawNATS repeats the load with plain NATS subscribers in place of the
// websocket clients: the ceiling a relay is compared against.
func runRawNATS(ctx context.Context, sys *System, gc []hangmanv1.GameServiceClient, rooms []string, cfg WSConfig) (float64, *Latency, error) {
	var delivered atomic.Int64
	type sub struct {
		nc   *nats.Conn
		room int
		mu   sync.Mutex
		got  []sample
	}
	subs := make([]*sub, 0, cfg.Clients-cfg.Rooms)
	defer func() {
		for _, s := range subs {
			s.nc.Close()
		}
	}()
	for i := cfg.Rooms; i < cfg.Clients; i++ {
		nc, err := nats.Connect(sys.NATSURLs[i%len(sys.NATSURLs)], nats.NoReconnect())
		if err != nil {
			return 0, nil, fmt.Errorf("connect subscriber %d: %w", i, err)
		}
		s := &sub{nc: nc, room: i % cfg.Rooms}
		subs = append(subs, s)
		_, err = nc.Subscribe(subjects.Room(rooms[s.room]), func(m *nats.Msg) {
			now := time.Now()
			delivered.Add(1)
			if strings.HasSuffix(m.Subject, ".event") && bytes.Contains(m.Data, guessKind) {
				s.mu.Lock()
				s.got = append(s.got, sample{seq: seqOf(m.Data), at: now})
				s.mu.Unlock()
			}
		})
		if err != nil {
			return 0, nil, err
		}
	}
	for _, s := range subs {
		if err := s.nc.Flush(); err != nil {
			return 0, nil, err
		}
	}
	sends := newSendLog(cfg.Rooms)
	raw := make([]player, cfg.Rooms)
	for r := range raw {
		raw[r] = newPlayer(playerID("raw", r))
		if err := raw[r].join(ctx, gc[0], rooms[r], "raw"); err != nil {
			return 0, nil, err
		}
	}
	run := func(d time.Duration, acks *ackLog) (time.Time, time.Time) {
		lctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		var wg sync.WaitGroup
		for r := range cfg.Rooms {
			lim := rate.NewLimiter(rate.Limit(cfg.Rate/float64(cfg.Rooms)), 1)
			wg.Go(func() {
				if !sleepCtx(lctx, stagger(r, cfg.Rooms, cfg.Rate/float64(cfg.Rooms))) {
					return
				}
				guessLoop(lctx, gc, r, rooms[r], raw[r], &roundGate{room: rooms[r]}, lim, acks, func(seq uint64, sent time.Time) { sends.put(r, seq, sent) })
			})
		}
		start := time.Now()
		wg.Wait()
		return start, time.Now()
	}
	run(cfg.Warmup, &ackLog{})
	d0 := delivered.Load()
	from, to := run(cfg.Duration, &ackLog{})
	rate := float64(delivered.Load()-d0) / to.Sub(from).Seconds()
	time.Sleep(200 * time.Millisecond)
	var lat []time.Duration
	for _, s := range subs {
		s.mu.Lock()
		sends.latencies(s.room, s.got, from, to, &lat)
		s.mu.Unlock()
	}
	l := summarise(lat)
	return rate, &l, nil
}

// stagger is guesser i's offset into the period of perSecond, so that n
// guessers at the same rate take turns rather than firing together.
func stagger(i, n int, perSecond float64) time.Duration {
	if perSecond <= 0 {
		return 0
	}
	return time.Duration(float64(time.Second) / perSecond * float64(i) / float64(n))
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func relayRSS(sys *System) int64 {
	var total int64
	for _, pid := range sys.RelayPIDs() {
		if _, rss, err := procStat(pid); err == nil {
			total += rss
		}
	}
	return total
}

// relayLiveBytes sums the relays' Go heap and stacks in use, read from
// their /metrics, and returns the stacks' share apart. Where the bench
// started a relay with a profiler, it first makes the relay collect its
// garbage (a heap profile with gc=1), so that the reading is live memory
// only: objects still referenced, and stacks as the collector shrank
// them. A relay without one is read as it is, garbage and all.
//
// Only the relays the bench started are read: those of a running system
// may share their process with others (hangman dev runs everything in
// one), and the reading would count that process once per relay.
func relayLiveBytes(ctx context.Context, sys *System) (live, stacks int64, err error) {
	if !sys.Started() {
		return 0, 0, nil
	}
	for _, u := range sys.RelayPprofURLs {
		if err := collectGarbage(ctx, u); err != nil {
			return 0, 0, err
		}
	}
	for _, u := range sys.RelayURLs {
		m, err := harness.Scrape(ctx, u+"/metrics")
		if err != nil {
			continue
		}
		live += int64(m["go_memstats_heap_inuse_bytes"] + m["go_memstats_stack_inuse_bytes"])
		stacks += int64(m["go_memstats_stack_inuse_bytes"])
	}
	return live, stacks, nil
}

// collectGarbage makes the process serving the profiler at pprofURL run a
// full garbage collection, by asking for a heap profile after one.
func collectGarbage(ctx context.Context, pprofURL string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, pprofURL+"heap?gc=1", nil)
	if err != nil {
		return fmt.Errorf("collect a relay's garbage: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("collect a relay's garbage: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("collect a relay's garbage at %s: %s", pprofURL, resp.Status)
	}
	return nil
}

func relayCPU(sys *System) time.Duration {
	var total time.Duration
	for _, pid := range sys.RelayPIDs() {
		if cpu, _, err := procStat(pid); err == nil {
			total += cpu
		}
	}
	return total
}
