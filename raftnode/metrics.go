package raftnode

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/hashicorp/raft"
	"github.com/hashicorp/serf/serf"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/hangman/hangman/services/api"
	"github.com/hangman/hangman/services/game"
)

// nodeMetrics are a node's Prometheus series, served on /metrics of its
// HTTP address. Each node has its own registry, never the global one:
// `hangman dev` runs several nodes in one process and each must report its
// own values.
//
// Most series are read at scrape time from the source of truth (raft, the
// member table, the publisher's counters), so they cannot drift from what
// the node reports elsewhere (ClusterService.Status, nats micro stats).
type nodeMetrics struct {
	reg *prometheus.Registry

	apply          *prometheus.HistogramVec
	grpcRequests   *prometheus.CounterVec
	grpcSeconds    *prometheus.HistogramVec
	leaderChanges  prometheus.Counter
	failedHeartbts prometheus.Counter
}

// raftStates are the values of the hangman_raft_state label.
var raftStates = []raft.RaftState{raft.Follower, raft.Candidate, raft.Leader, raft.Shutdown}

// serfStatuses are the values of the hangman_serf_members label.
var serfStatuses = []serf.MemberStatus{serf.StatusAlive, serf.StatusLeaving, serf.StatusLeft, serf.StatusFailed}

// newNodeMetrics registers the node's series. It is called once raft
// exists, before the gRPC server starts.
func newNodeMetrics(n *Node) *nodeMetrics {
	m := &nodeMetrics{reg: prometheus.NewRegistry()}
	reg := m.reg
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	gauge := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
	}
	counter := func(name, help string, labels prometheus.Labels, f func() float64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels}, f))
	}
	for _, st := range raftStates {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "hangman_raft_state",
			Help:        "1 for the raft state this node is in (follower, candidate, leader, shutdown), 0 for the others.",
			ConstLabels: prometheus.Labels{"state": stateLabel(st)},
		}, func() float64 { return b2f(n.raft.State() == st) }))
	}
	gauge("hangman_raft_term", "Current raft term.", func() float64 { return float64(n.raft.CurrentTerm()) })
	gauge("hangman_raft_commit_index", "Highest raft log index known to be committed.", func() float64 { return float64(n.raft.CommitIndex()) })
	gauge("hangman_raft_applied_index", "Highest raft log index applied to the game state machine.", func() float64 { return float64(n.raft.AppliedIndex()) })
	gauge("hangman_raft_last_log_index", "Index of the last entry in this node's raft log.", func() float64 { return float64(n.raft.LastIndex()) })
	gauge("hangman_raft_has_leader", "1 when this node knows a raft leader.", func() float64 {
		_, id := n.raft.LeaderWithID()
		return b2f(id != "")
	})
	gauge("hangman_raft_voters", "Voters in the latest raft configuration this node knows.", func() float64 {
		voters := 0
		for _, s := range n.raft.GetConfiguration().Configuration().Servers {
			if s.Suffrage == raft.Voter {
				voters++
			}
		}
		return float64(voters)
	})
	gauge("hangman_raft_last_contact_seconds", "Seconds since this node last heard from the leader (0 on the leader).", func() float64 {
		if n.raft.State() == raft.Leader {
			return 0
		}
		lc := n.raft.LastContact()
		if lc.IsZero() {
			return -1
		}
		return time.Since(lc).Seconds()
	})
	gauge("hangman_node_ready", "1 when /readyz answers 200: the node is in a raft configuration that has a leader, can write its log and trails the leader by at most MaxLag entries.", func() float64 {
		return b2f(n.Ready() == nil)
	})
	gauge("hangman_raft_log_write_failing", "1 while this node cannot append to its raft log (a full disk, an I/O error); it is not ready meanwhile.", func() float64 {
		return b2f(n.logStore.WriteHealth() != nil)
	})
	counter("hangman_raft_log_write_errors_total", "Writes to this node's raft log that failed.", nil, func() float64 {
		return float64(n.logStore.WriteErrors())
	})
	gauge("hangman_raft_leader_commit_index", "The leader's commit index as this node last sampled it (a follower asks the leader every second).", func() float64 {
		return float64(n.lag.commit.Load())
	})
	gauge("hangman_raft_lag_entries", "Entries this node's applied index trails the leader's commit index; over MaxLag the node is not ready.", func() float64 {
		return float64(n.lag.entries())
	})
	m.leaderChanges = prometheus.NewCounter(prometheus.CounterOpts{Name: "hangman_raft_leader_changes_total", Help: "Leader changes this node observed (including losing the leader)."})
	m.failedHeartbts = prometheus.NewCounter(prometheus.CounterOpts{Name: "hangman_raft_failed_heartbeats_total", Help: "Heartbeats this node, as leader, failed to deliver to a follower."})
	reg.MustRegister(m.leaderChanges, m.failedHeartbts)
	// A filter that never lets an observation through costs no channel
	// and no goroutine: raft calls it inline for every observation.
	n.raft.RegisterObserver(raft.NewObserver(nil, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.LeaderObservation:
			m.leaderChanges.Inc()
		case raft.FailedHeartbeatObservation:
			m.failedHeartbts.Inc()
		}
		return false
	}))

	m.apply = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "hangman_apply_seconds",
		Help:    "Time from proposing a command to raft until it is committed and applied here (leader only), by result: ok, not_leader, unknown (leadership lost mid-apply), dropped (its caller gave up before it entered the log), error.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"result"})
	reg.MustRegister(m.apply)

	for _, kind := range []string{"event", "state", "lobby", "cluster"} {
		counter("hangman_published_total", "Messages this node published to NATS, by kind: room events, room states, lobby lines, cluster announcements.",
			prometheus.Labels{"kind": kind}, func() float64 {
				if n.pub == nil {
					return 0
				}
				st := n.pub.Stats()
				switch kind {
				case "event":
					return float64(st.Events)
				case "state":
					return float64(st.States)
				case "lobby":
					return float64(st.Lobby)
				default:
					return float64(st.Cluster)
				}
			})
	}
	counter("hangman_publish_failures_total", "Messages the publisher failed to hand to NATS.", nil, func() float64 {
		if n.pub == nil {
			return 0
		}
		return float64(n.pub.Stats().Failures)
	})
	counter("hangman_forward_calls_total", "Calls in which this node, following, handed writes to the leader (ReplicaService.Propose).", nil, func() float64 {
		return float64(n.forwarder.calls.Load())
	})
	counter("hangman_forwarded_commands_total", "Writes this node, following, handed to the leader; over hangman_forward_calls_total, the forwarding batch size.", nil, func() float64 {
		return float64(n.forwarder.commands.Load())
	})
	for loop, b := range map[string]*batcher{"propose": n.batcher, "forward": n.forwarder.batcher} {
		counter("hangman_proposals_dropped_total", "Writes dropped unsent because their callers gave up while they waited, by loop: propose (the leader's group commit) or forward (a follower's forwarding).", prometheus.Labels{"loop": loop}, func() float64 {
			return float64(b.dropped.Load())
		})
	}
	counter("hangman_flood_refusals_total", "Writes this node, as leader, refused busy without proposing them: their room was flooded with requests and their sender had had its share (game.Machine.Admit).", nil, func() float64 {
		return float64(n.batcher.refused.Load())
	})
	counter("hangman_republishes_total", "Times this node, on becoming leader, republished every room.", nil, func() float64 {
		if n.pub == nil {
			return 0
		}
		return float64(n.pub.Stats().Republishes)
	})
	registerCapMetrics(reg, n.cfg, n)
	n.sweeper.register(reg)
	gauge("hangman_publisher_leader", "1 while this node publishes (it leads and has applied everything earlier leaders committed).", func() float64 {
		return b2f(n.pub != nil && n.pub.Stats().Leader)
	})

	for _, st := range serfStatuses {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "hangman_serf_members",
			Help:        "Game nodes serf knows, by status (alive, leaving, left, failed).",
			ConstLabels: prometheus.Labels{"status": st.String()},
		}, func() float64 {
			c := 0
			for _, mb := range n.members.all() {
				if mb.Status == st {
					c++
				}
			}
			return float64(c)
		}))
	}
	gauge("hangman_nats_clients", "Client connections to this node's embedded NATS server.", func() float64 {
		if n.nats == nil {
			return 0
		}
		return float64(n.nats.NATS().NumClients())
	})
	gauge("hangman_nats_routes", "Other nodes' NATS servers this node's embedded server has a route to.", func() float64 {
		if n.nats == nil {
			return 0
		}
		return float64(n.nats.NATS().NumRemotes())
	})

	m.grpcRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hangman_grpc_requests_total",
		Help: "gRPC requests this node served, by full method and status code.",
	}, []string{"method", "code"})
	m.grpcSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "hangman_grpc_request_seconds",
		Help:    "Time this node took to answer a gRPC request, by full method (forwarding to the leader included).",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"method"})
	reg.MustRegister(m.grpcRequests, m.grpcSeconds)
	return m
}

// registerCapMetrics adds the series of the caps to reg: each cap as
// configured (the gRPC and lag caps too, so that every cap of a node is a
// flag with a metric), and what the state in replica holds against them.
func registerCapMetrics(reg *prometheus.Registry, cfg Config, replica stateReplica) {
	gauge := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
	}
	counts := func() (rooms, seats int) {
		replica.Read(func(m *game.Machine) { rooms, seats = m.Counts() })
		return rooms, seats
	}
	gauge("hangman_rooms", "Rooms in this node's replica of the state; creation is refused at hangman_rooms_limit.", func() float64 {
		r, _ := counts()
		return float64(r)
	})
	gauge("hangman_rooms_limit", "The most rooms the cluster may hold, as this node proposes (--max-rooms).", func() float64 { return float64(cfg.MaxRooms) })
	gauge("hangman_seats", "Players seated in all rooms of this node's replica; a room refuses joins at hangman_room_players_limit.", func() float64 {
		_, s := counts()
		return float64(s)
	})
	gauge("hangman_room_players_limit", "The most players of a room, as this node proposes (--max-players).", func() float64 { return float64(cfg.MaxPlayers) })
	gauge("hangman_raft_max_lag_entries", "How many entries this node may trail the leader's commit index and still be ready (--max-lag); see hangman_raft_lag_entries.", func() float64 { return float64(cfg.MaxLag) })
	gauge("hangman_grpc_header_list_limit_bytes", "The largest header list one gRPC call may carry (--grpc-max-header-bytes).", func() float64 { return float64(cfg.GRPCMaxHeaderBytes) })
	gauge("hangman_grpc_streams_limit", "The most gRPC calls one connection may have open at once (--grpc-max-streams).", func() float64 { return float64(cfg.GRPCMaxStreams) })
}

// handler serves the registry in the Prometheus text format.
func (m *nodeMetrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// observeApply records one Propose. A nil receiver (a node built without
// metrics) records nothing.
func (m *nodeMetrics) observeApply(d time.Duration, err error) {
	if m == nil {
		return
	}
	result := "ok"
	switch {
	case err == nil:
	case errors.Is(err, api.ErrNotLeader):
		result = "not_leader"
	case errors.Is(err, api.ErrUnknownOutcome):
		result = "unknown"
	case errors.Is(err, errNotProposed):
		result = "dropped"
	default:
		result = "error"
	}
	m.apply.WithLabelValues(result).Observe(d.Seconds())
}

// grpcOptions are the server options that count and time every call.
func (m *nodeMetrics) grpcOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(m.unaryInterceptor),
		grpc.ChainStreamInterceptor(m.streamInterceptor),
	}
}

func (m *nodeMetrics) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := handler(ctx, req)
	m.observeRPC(info.FullMethod, start, err)
	return resp, err
}

func (m *nodeMetrics) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	start := time.Now()
	err := handler(srv, ss)
	m.observeRPC(info.FullMethod, start, err)
	return err
}

func (m *nodeMetrics) observeRPC(method string, start time.Time, err error) {
	m.grpcRequests.WithLabelValues(method, status.Code(err).String()).Inc()
	m.grpcSeconds.WithLabelValues(method).Observe(time.Since(start).Seconds())
}

func stateLabel(s raft.RaftState) string {
	switch s {
	case raft.Follower:
		return "follower"
	case raft.Candidate:
		return "candidate"
	case raft.Leader:
		return "leader"
	default:
		return "shutdown"
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
