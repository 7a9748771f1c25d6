package wire

import "time"

// LeaderChange is the payload of hangman.cluster.leader: a node became
// the leader of a term (DESIGN.md, NATS subjects).
type LeaderChange struct {
	Leader string    `json:"leader"`
	Term   uint64    `json:"term"`
	At     time.Time `json:"at"`
}

// MemberChange is the payload of hangman.cluster.member: serf saw a node
// join, leave or fail; Status is serf's word for it ("alive", "left",
// "failed").
type MemberChange struct {
	Node   string    `json:"node"`
	Status string    `json:"status"`
	At     time.Time `json:"at"`
}
