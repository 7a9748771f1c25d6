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
// The websocket protocol is documented in PROTOCOL.md beside this file.
package relay
