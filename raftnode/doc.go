// Package raftnode runs one game node: the consensus and membership layer
// that makes the pure game.Machine a replicated, fault-tolerant service.
//
// A Node wires together
//
//   - hashicorp/raft over the storage of package raftstore (a durable,
//     checksummed log in bbolt, the term and vote in a file of their own,
//     file snapshots, all verified before the node starts) and a TCP (or
//     TLS) transport; it applies committed commands to a game.Machine in
//     batches. Tests may give raft an in-memory transport and stores
//     instead (Config.raftTransport, Config.raftStores), to run consensus
//     without sockets or disk where timing is not the point;
//   - hashicorp/serf for membership: nodes find each other by gossip, form
//     the cluster with --bootstrap-expect, and the leader reconciles serf
//     members into raft voters the way Consul's autopilot does;
//   - the embedded nats-server of package natsembed, whose routes follow
//     serf, and package publish's publisher, which puts every committed
//     change on NATS subjects while this node leads;
//   - the gRPC server: the game service (services/api) and the cluster
//     service, with reflection and grpc.health.v1.
//
// Node is the composition root: each concept it runs is a small type of its
// own, with what it depends on in its fields, which Node builds and wires to
// the others. The forwarder carries a follower's writes to the leader; the
// sweeper proposes the leader's reclamations and turn timeouts; the
// autopilot turns serf members into raft voters; formation bootstraps the
// cluster, or says why not; membership is the serf agent; failover stands
// for election when the leader's process died; raftTransport (identity.go)
// refuses votes a server must not give and keeps raft's heartbeat fast path
// from deposing a leader beside raft's main loop (hashicorp/raft#695); the
// stallGuard makes a leader whose disk stalled give way; leaderLag says how
// far this node trails; leaderSignal wakes the waiters for a leadership
// change; grpcServer is the gRPC front with grpc.health.v1, and opsServer
// the port of probes and metrics, and the profiler. A wait on a raft future
// that nothing else bounds goes through awaitFuture (leadership.go): raft
// strands a future that a call racing Shutdown queues. (The batcher's
// callers wait with their own contexts.)
//
// The dependency arrow points inward: this package imports the game rules
// and the API, never the other way round.
package raftnode
