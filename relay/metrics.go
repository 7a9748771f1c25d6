package relay

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// newMetrics builds the relay's Prometheus registry. Each relay has its own
// (never the global default): `hangman dev` runs two relays in one process
// and each /metrics must report its own values. Every series is read at
// scrape time from the same counters /readyz and `nats micro stats` show,
// so the three never disagree.
func (r *Relay) newMetrics() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	gauge := func(name, help string, labels prometheus.Labels, f func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: labels}, f))
	}
	counter := func(name, help string, labels prometheus.Labels, f func() float64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels}, f))
	}
	load := func(v interface{ Load() int64 }) func() float64 {
		return func() float64 { return float64(v.Load()) }
	}
	s := &r.stats

	gauge("hangman_relay_connections", "Open websocket sessions.", nil, load(&s.sessions))
	gauge("hangman_relay_rooms", "Rooms watched by at least one session (one NATS subscription each).", nil, func() float64 {
		return float64(r.rooms.count())
	})
	gauge("hangman_relay_cluster_watchers", "Sessions watching the cluster view.", nil, func() float64 {
		return float64(r.cluster.watcherCount())
	})
	gauge("hangman_relay_peers", "Other relays this relay heard from recently (failover targets for its browsers).", nil, func() float64 {
		return float64(r.peers.count())
	})
	gauge("hangman_relay_nats_connected", "1 while the relay is connected to NATS.", nil, func() float64 {
		if r.nc.IsConnected() {
			return 1
		}
		return 0
	})
	gauge("hangman_relay_nodes_reachable", "Game nodes whose gRPC connection is ready.", nil, func() float64 {
		return float64(r.nodes.readyCount())
	})
	gauge("hangman_relay_leader_known", "1 while a game node this relay reaches knows a raft leader (0: an election or a lost quorum; /readyz state no_leader).", nil, func() float64 {
		if r.nodes.leaderKnown() {
			return 1
		}
		return 0
	})
	gauge("hangman_relay_ready", "1 when /readyz answers 200: NATS connected, a game node reachable, and not cut off from a leader other relays see.", nil, func() float64 {
		if ready, _, _ := r.readiness(); ready {
			return 1
		}
		return 0
	})

	counter("hangman_relay_messages_out_total", "Frames queued to browsers.", nil, load(&s.framesOut))
	counter("hangman_relay_messages_in_total", "Frames received from browsers.", nil, load(&s.framesIn))
	const droppedHelp = "Websockets the relay closed on a client, by reason: slow_reader (answers and lobby lines, which nothing supersedes, piled up past --send-buffer), frame_too_large."
	counter("hangman_relay_dropped_total", droppedHelp, prometheus.Labels{"reason": "slow_reader"}, load(&s.slowDropped))
	counter("hangman_relay_dropped_total", droppedHelp, prometheus.Labels{"reason": "frame_too_large"}, load(&s.tooBig))
	counter("hangman_relay_superseded_total", "Frames replaced by a newer one while they waited for a slow socket: a room's states and events by its next state, a cluster view or relay list by the next.", nil, load(&s.superseded))
	counter("hangman_relay_socket_writes_total", "Writes to browsers' sockets; each carries every frame that waited for it, so under load there are fewer writes than frames.", nil, load(&s.writes))
	const refusedHelp = "Websocket upgrades refused, by reason: origin, too_many_connections (--max-conns), too_many_from_address (--max-conns-per-addr)."
	counter("hangman_relay_refused_total", refusedHelp, prometheus.Labels{"reason": "origin"}, load(&s.originRefused))
	counter("hangman_relay_refused_total", refusedHelp, prometheus.Labels{"reason": "too_many_connections"}, load(&s.connsRefused))
	counter("hangman_relay_refused_total", refusedHelp, prometheus.Labels{"reason": "too_many_from_address"}, load(&s.addrRefused))
	counter("hangman_relay_rate_limited_total", "Client frames ignored by the per-connection rate limit.", nil, load(&s.rateLimited))
	r.admit.registerMetrics(reg)
	counter("hangman_relay_bad_frames_total", "Client frames refused as malformed (bad JSON, unknown type, binary).", nil, load(&s.badFrames))
	counter("hangman_relay_commands_failed_total", "Browser commands the game cluster refused or could not take.", nil, load(&s.commandsFailed))
	counter("hangman_relay_duplicates_total", "NATS messages dropped as already seen (by seq), by kind.",
		prometheus.Labels{"kind": "state"}, load(&s.dupStates))
	counter("hangman_relay_duplicates_total", "NATS messages dropped as already seen (by seq), by kind.",
		prometheus.Labels{"kind": "event"}, load(&s.dupEvents))
	counter("hangman_relay_seq_gaps_total", "Events showing a missed change, each answered by a state fetch.", nil, load(&s.gaps))
	counter("hangman_relay_histories_total", "Room histories (a room's finished rounds, which change when a round finishes) sent to the room's sessions.", nil, load(&s.histories))
	counter("hangman_relay_state_fetches_total", "Room states read over gRPC (cold cache, after a gap, or a quiet room's check).", nil, load(&s.fetches))
	counter("hangman_relay_anti_entropy_sweeps_total", "Passes of the sweep that reads watched rooms quiet for a second.", nil, load(&s.sweeps))
	counter("hangman_relay_unconfirmed_total", "Room messages dropped because no node vouched for their seq (NATS without users: forged, or held too long).", nil, load(&s.unconfirmed))
	return reg
}

func metricsHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}
