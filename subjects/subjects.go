// Package subjects owns the NATS subject names of DESIGN.md: every
// subject the nodes publish or serve, the relays subscribe to and the
// harnesses watch is built here, so that renaming one is one edit and no
// two packages can disagree on a spelling.
//
// It is deliberately a leaf: it imports nothing, so the game nodes, the
// relays, the load generator and the chaos harness can all use it without
// depending on one another.
package subjects

// Prefix begins every hangman subject; All matches all of them.
const (
	Prefix = "hangman."
	All    = Prefix + ">"
)

// Room subjects: each committed change publishes the room's public state
// and the event that changed it, and one that finishes a round the room's
// history.
const (
	// Rooms matches the state and event of every room.
	Rooms      = Prefix + "room.>"
	roomPrefix = Prefix + "room."
)

// RoomState is the subject of room's public state.
func RoomState(room string) string { return roomPrefix + room + ".state" }

// RoomEvent is the subject of room's committed events.
func RoomEvent(room string) string { return roomPrefix + room + ".event" }

// RoomHistory is the subject of room's finished rounds, published once by
// the change that finishes a round (the state carries only historySeq,
// the seq of that change).
func RoomHistory(room string) string { return roomPrefix + room + ".history" }

// Room matches the state, the events and the history of room: what a
// relay subscribes to for the browsers watching it.
func Room(room string) string { return roomPrefix + room + ".*" }

// Lobby carries one line of the live lobby whenever a room appears,
// changes its player count, round or status, or is deleted: what a lobby
// screen needs without asking for the list again.
const Lobby = Prefix + "lobby"

// Cluster subjects: leadership and membership changes.
const (
	Cluster       = Prefix + "cluster.>"
	ClusterLeader = Prefix + "cluster.leader"
	ClusterMember = Prefix + "cluster.member"
)

// Relay subjects: the relays' heartbeats to each other and the status
// request that lists them.
const (
	Relays         = Prefix + "relay.>"
	RelayHeartbeat = Prefix + "relay.heartbeat"
	RelayStatus    = Prefix + "relay.status"
)

// API subjects: requests the nodes answer as NATS micro endpoints.
// APIEvents only reads; the others are the game commands of the gRPC
// GameService, for clients that speak NATS alone (the nats CLI).
const (
	API         = Prefix + "api.>"
	APIEvents   = Prefix + "api.events"
	APICreate   = Prefix + "api.create"
	APIJoin     = Prefix + "api.join"
	APIGuess    = Prefix + "api.guess"
	APINewRound = Prefix + "api.newround"
	APISetWord  = Prefix + "api.setword"
	APIList     = Prefix + "api.list"
)

// NATS micro service names: what `nats micro ls` lists. The nodes' is also
// the queue group of the endpoints they serve.
const (
	NodeService  = "hangman-node"
	RelayService = "hangman-relay"
)
