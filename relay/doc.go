// Package relay is the stateless websocket fan-out between browsers and the
// game cluster.
//
// A relay serves the embedded web page and a websocket endpoint (melody). It
// subscribes on NATS only to the rooms its browsers watch, keeps the latest
// state of each watched room (ordered by seq, the raft index), hands it to a
// joining browser at once, and forwards each change of a room (its event
// and its state, as one frame built once and shared by all of them) to
// that room's sessions, and a room's finished rounds, which change only
// when a round ends, once in a frame of their own (history.go). Each
// session's frames wait in its outbox, where a
// newer state replaces an older one a slow browser has not read yet, and
// leave in one write (outbox.go). Browser
// commands become gRPC calls to the game nodes, each with a request id so a
// retry (across nodes, leader changes or relays) is applied at most once.
//
// The --grpc addresses are seeds. A relay asks the nodes it reaches where
// the cluster's members serve gRPC (ClusterService.Members) every few
// seconds and when the leader announces a change, dials the new addresses
// and drops the ones no longer listed (follow.go), so nodes that come
// back on new IPs one at a time are followed without a restart.
//
// Nothing a relay holds matters: killing one loses no state, its browsers
// reconnect to another relay, whose address they learnt from the relays
// themselves (relays find each other with heartbeats on NATS and register as
// the NATS micro service "hangman-relay").
//
// Relay is the composition root: each concept it runs is a small type of
// its own, with what it depends on in its fields, which New builds and
// wires to the others. The browser side: sessionSet keeps the websockets,
// their connections and handlers; origins says which pages may open one
// and which relays browsers may fail over to; admission and
// trustedProxies limit what one client address may hold and do; the
// dispatcher is the one path of a client frame, through one dispatch
// table, to its handler, and each client's frameGate and cmdQueue its
// state there; command[R] is the one path of a command to the cluster;
// the sender and each session's outbox are the write path. The cluster
// side: nodes are the gRPC links with their failover and health, the
// follower keeps them in step with the cluster's addresses; roomSet is the
// watched rooms, each a room with its roomFeed (the cursor and
// historyCursor decide what is news; freshness when to read the room
// again), and the confirmer says which seqs may be adopted. Between
// relays: discovery announces this relay and feeds the peerTable, the one
// table of the others; spectators sums the spectator counts. lobbyView and
// clusterView are the live views browsers may watch, each with its
// viewWatchers.
//
// The websocket protocol is documented in PROTOCOL.md beside this file.
package relay
