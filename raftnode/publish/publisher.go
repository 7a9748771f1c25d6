// Package publish puts a leader's committed changes on NATS (DESIGN.md,
// NATS subjects and guarantee 4): each room's event, state and lobby line
// in log order, the cluster's leader and member announcements, and, when
// a node becomes leader or its NATS connection comes back, the state of
// every room again. It also owns the node's NATS micro service, on which
// the node adds its request endpoints.
//
// It knows nothing of raft: the node says when it leads and hands it what
// its state machine applied.
package publish

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/hangman/hangman/services/game"
	"github.com/hangman/hangman/subjects"
	"github.com/hangman/hangman/wire"
)

// Publisher puts committed changes on NATS while this node leads. The FSM
// enqueues changes under its lock, in log order; one goroutine publishes
// them, so every subscriber sees a room's messages in seq order. Messages
// carry Nats-Msg-Id <room>.<seq> and consumers drop what they have seen, so
// republishing (at-least-once) is always safe. A change that finished a
// round publishes the room's history after its state, once: a consumer
// that missed it sees the state's historySeq run ahead of the history it
// holds and reads the room (republishing every room's history on a
// leader change would send up to MaxRooms×HistoryRounds rounds at once).
// A change that alters the room's lobby line (game.Event.ChangesSummary) also publishes the line on
// hangman.lobby, after the room's own messages, with the same seq.
type Publisher struct {
	nc     *nats.Conn
	svc    micro.Service
	nodeID string
	log    *slog.Logger

	leader atomic.Bool

	mu    sync.Mutex
	queue []pubItem
	wake  chan struct{}

	events, states, histories, lobby, republishes, cluster, failures atomic.Uint64

	// reconnected is signalled when the connection to NATS comes back:
	// whatever was published while it was down may be lost, so a leader
	// republishes every room then.
	reconnected chan struct{}
}

// Change is one committed command that changed a room: the room's state
// after it and the event that says what happened, and, when it finished a
// round, the room's finished rounds.
type Change struct {
	State   game.State
	Event   game.Event
	History *game.History
}

// New connects the publisher of node nodeID to the embedded server srv as
// auth says, and registers the node's micro service.
func New(srv *natsserver.Server, nodeID string, log *slog.Logger, auth nats.Option) (*Publisher, error) {
	// Over TCP rather than in-process: the client learns the other servers
	// of the NATS cluster from its gossip, so if this node's own server
	// dies the publisher reconnects to another and publishing goes on
	// (messages published meanwhile wait in the reconnect buffer).
	reconnected := make(chan struct{}, 1)
	nc, err := nats.Connect(srv.ClientURL(), auth, nats.Name("hangman-node-"+nodeID),
		nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond), nats.DontRandomize(),
		nats.ReconnectBufSize(64<<20),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn("publisher disconnected from nats", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("publisher reconnected to nats", "server", nc.ConnectedUrlRedacted())
			select {
			case reconnected <- struct{}{}:
			default:
			}
		}))
	if err != nil {
		return nil, fmt.Errorf("connect publisher to embedded nats: %w", err)
	}
	statsSubject := "svc.hangman.node." + nodeID + ".stats"
	p := &Publisher{nc: nc, nodeID: nodeID, log: log.With("component", "publisher"), wake: make(chan struct{}, 1), reconnected: reconnected}
	p.svc, err = micro.AddService(nc, micro.Config{
		Name:        subjects.NodeService,
		Version:     "1.0.0",
		Description: "hangman game node: raft + serf + gRPC; publishes committed changes",
		Metadata:    map[string]string{"node": nodeID},
		Endpoint: &micro.EndpointConfig{
			Subject:  statsSubject,
			Handler:  micro.HandlerFunc(p.handleStats),
			Metadata: map[string]string{"description": "publisher counters"},
		},
		// The publisher's counters belong to its own endpoint, not to
		// the others the node adds (events.go).
		StatsHandler: func(e *micro.Endpoint) any {
			if e.Subject != statsSubject {
				return nil
			}
			return p.Stats()
		},
	})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("register nats micro service: %w", err)
	}
	return p, nil
}

// Stats are the counters of a node's publisher, shown by
// `nats micro stats hangman-node`.
type Stats struct {
	Leader      bool   `json:"leader"`
	Events      uint64 `json:"events_published"`
	States      uint64 `json:"states_published"`
	Histories   uint64 `json:"histories_published"`
	Lobby       uint64 `json:"lobby_published"`
	Republishes uint64 `json:"republishes"`
	Cluster     uint64 `json:"cluster_published"`
	Failures    uint64 `json:"publish_failures"`
}

// Stats reads the counters.
func (p *Publisher) Stats() Stats {
	return Stats{
		Leader: p.leader.Load(), Events: p.events.Load(), States: p.states.Load(), Histories: p.histories.Load(), Lobby: p.lobby.Load(),
		Republishes: p.republishes.Load(), Cluster: p.cluster.Load(), Failures: p.failures.Load(),
	}
}

func (p *Publisher) handleStats(req micro.Request) {
	_ = req.RespondJSON(p.Stats())
}

// SetLeader says whether this node leads: only a leader publishes.
func (p *Publisher) SetLeader(v bool) { p.leader.Store(v) }

// Leading reports what SetLeader said last.
func (p *Publisher) Leading() bool { return p.leader.Load() }

// Service is the node's NATS micro service, for the node's endpoints.
func (p *Publisher) Service() micro.Service { return p.svc }

// Conn is the connection the service answers on: an endpoint that answers
// after its handler returned publishes its reply there (see micro's
// Request: its methods are the handler's to call, not a later
// goroutine's).
func (p *Publisher) Conn() *nats.Conn { return p.nc }

// Reconnected is signalled when the connection to NATS comes back:
// whatever was published while it was down may be lost, so a leader
// republishes every room then.
func (p *Publisher) Reconnected() <-chan struct{} { return p.reconnected }

// pubItem is one queued publication: a ready message, or a committed
// change still to be encoded (encoding happens on the publisher's
// goroutine, not under the FSM lock on the apply path).
type pubItem struct {
	msg    *nats.Msg
	change *Change
}

// EnqueueChanges queues changes to publish, in the order given: the FSM
// calls it with its lock held, so the queue follows the log.
func (p *Publisher) EnqueueChanges(changes []Change) {
	if !p.leader.Load() {
		return
	}
	items := make([]pubItem, len(changes))
	for i := range changes {
		items[i] = pubItem{change: &changes[i]}
	}
	p.pushItems(items)
}

// EnqueueRepublish queues the recent events, current state and lobby line
// of every room, and the leader announcement. Called with the FSM lock
// held.
func (p *Publisher) EnqueueRepublish(m *game.Machine, term uint64) {
	p.republishes.Add(1)
	msgs := []*nats.Msg{jsonMsg(subjects.ClusterLeader, wire.LeaderChange{Leader: p.nodeID, Term: term, At: time.Now().UTC()})}
	for _, st := range m.States() {
		for _, ev := range m.RecentEvents(st.Room) {
			msgs = append(msgs, eventMsg(p.nodeID, &ev))
		}
		msgs = append(msgs, stateMsg(p.nodeID, &st), lobbyMsg(st.Summary()))
	}
	p.push(msgs...)
}

// PublishMember announces a membership change (leader only).
func (p *Publisher) PublishMember(node, status string) {
	if p.leader.Load() {
		p.push(jsonMsg(subjects.ClusterMember, wire.MemberChange{Node: node, Status: status, At: time.Now().UTC()}))
	}
}

// eventMsg and stateMsg are a room's messages as node publishes them, with
// the Nats-Msg-Id header DESIGN.md promises.
func eventMsg(node string, ev *game.Event) *nats.Msg {
	return roomMsg(node, subjects.RoomEvent(ev.Room), ev.Room, ev.Seq, ev.AppendJSON(nil))
}

func stateMsg(node string, st *game.State) *nats.Msg {
	return roomMsg(node, subjects.RoomState(st.Room), st.Room, st.Seq, st.AppendJSON(nil))
}

// historyMsg is a room's finished rounds, data their JSON. Its
// Nats-Msg-Id is the change's with ".history" added, so that a store
// deduplicating by id keeps it beside the change's state.
func historyMsg(node string, h *game.History, data []byte) *nats.Msg {
	return &nats.Msg{Subject: subjects.RoomHistory(h.Room), Data: data,
		Header: nats.Header{nats.MsgIdHdr: []string{h.Room + "." + strconv.FormatUint(h.Seq, 10) + ".history"}, wire.PublisherHeader: []string{node}}}
}

// lobbyMsg is a room's line of the live lobby.
func lobbyMsg(line game.Summary) *nats.Msg {
	return jsonMsg(subjects.Lobby, line)
}

// roomMsg is a room's message as node publishes it: with its Nats-Msg-Id
// and the node's name (wire.PublisherHeader).
func roomMsg(node, subject, room string, seq uint64, data []byte) *nats.Msg {
	return setRoomMsg(&nats.Msg{Header: nats.Header{nats.MsgIdHdr: []string{""}, wire.PublisherHeader: []string{node}}}, subject, room, seq, data)
}

// setRoomMsg makes m, which has a Nats-Msg-Id header, the message of
// room's change seq on subject.
func setRoomMsg(m *nats.Msg, subject, room string, seq uint64, data []byte) *nats.Msg {
	m.Subject, m.Data = subject, data
	m.Header[nats.MsgIdHdr][0] = room + "." + strconv.FormatUint(seq, 10)
	return m
}

func jsonMsg(subject string, v any) *nats.Msg {
	data, err := json.Marshal(v)
	if err != nil {
		// Every value published is a plain struct of strings and numbers.
		panic(fmt.Sprintf("encode %s: %v", subject, err))
	}
	return &nats.Msg{Subject: subject, Data: data}
}

func (p *Publisher) push(msgs ...*nats.Msg) {
	items := make([]pubItem, len(msgs))
	for i, m := range msgs {
		items[i] = pubItem{msg: m}
	}
	p.pushItems(items)
}

func (p *Publisher) pushItems(items []pubItem) {
	p.mu.Lock()
	p.queue = append(p.queue, items...)
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Run publishes queued messages in order until ctx ends. Every change's
// two messages are built in one message, header and buffer that the loop
// reuses: the connection copies a message out before PublishMsg returns,
// and a fresh header map per message was a good part of publishing.
// Histories are encoded by one game.HistoryEncoder, which encodes each
// finished round once rather than in every later history of its room.
func (p *Publisher) Run(ctx context.Context) {
	var (
		batch     []pubItem
		histories game.HistoryEncoder
	)
	buf := make([]byte, 0, 1024)
	m := roomMsg(p.nodeID, "", "", 0, nil)
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.wake:
		}
		p.mu.Lock()
		batch, p.queue = p.queue, batch[:0]
		p.mu.Unlock()
		for _, it := range batch {
			if c := it.change; c != nil {
				ev, st := &c.Event, &c.State
				buf = ev.AppendJSON(buf[:0])
				p.publish(setRoomMsg(m, subjects.RoomEvent(ev.Room), ev.Room, ev.Seq, buf))
				buf = st.AppendJSON(buf[:0])
				p.publish(setRoomMsg(m, subjects.RoomState(st.Room), st.Room, st.Seq, buf))
				if h := c.History; h != nil {
					p.publish(historyMsg(p.nodeID, h, histories.AppendJSON(buf[:0], h)))
				}
				if ev.Kind == game.EventRoomDeleted {
					histories.Forget(ev.Room)
				}
				if ev.ChangesSummary() {
					p.publish(lobbyMsg(st.Summary()))
				}
				continue
			}
			p.publish(it.msg)
		}
		clear(batch)
	}
}

func (p *Publisher) publish(m *nats.Msg) {
	if err := p.nc.PublishMsg(m); err != nil {
		p.failures.Add(1)
		p.log.Warn("publish", "subject", m.Subject, "err", err)
		return
	}
	p.count(m.Subject)
}

func (p *Publisher) count(subject string) {
	switch {
	case subject == subjects.ClusterLeader || subject == subjects.ClusterMember:
		p.cluster.Add(1)
	case subject == subjects.Lobby:
		p.lobby.Add(1)
	case strings.HasSuffix(subject, ".event"):
		p.events.Add(1)
	case strings.HasSuffix(subject, ".history"):
		p.histories.Add(1)
	default:
		p.states.Add(1)
	}
}

// Close stops the micro service and closes the connection.
func (p *Publisher) Close() {
	if p.svc != nil {
		_ = p.svc.Stop()
	}
	p.nc.Close()
}
