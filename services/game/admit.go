package game

// Fair shares of a room's memory of answers. A room remembers the answer
// to every request younger than SessionMinAge, up to SessionCap, and
// beyond that refuses requests as busy rather than forget one (guarantee
// 2). So a flood of requests to one room, from one seat over many
// connections or from many tokens without a seat, would keep the room busy
// for everybody in it. A leader therefore proposes a request to a room
// under pressure (PressureAt young answers or more) only from a scope
// within its share: a seat while the room remembers fewer than SeatShare
// answers to it, those without a seat while, all together, fewer than
// OutsiderShare. Whoever floods a room busies only themselves, and the
// seats that play at a person's pace play on.
//
// This is the proposer's choice, not a rule of the state machine: a
// request the leader does not admit never reaches the log, so replicas of
// any build apply the same entries the same way, and the request may be
// sent again with the same id (it was not answered).
const (
	// SeatShare is what one seat may have remembered in a room under
	// pressure: more than a person plays in SessionMinAge.
	SeatShare = 32
	// OutsiderShare is what the requests of tokens without a seat in the
	// room (joins, spectators' mistakes, strangers) may have remembered
	// in a room under pressure, all together.
	OutsiderShare = 512
	// InflightMargin bounds the commands to one room a leader may have
	// admitted and not yet applied when it asks again (raftnode asks as
	// it makes each log entry, which holds at most one command per room).
	InflightMargin = 64
	// PressureAt is how many young answers put a room under pressure:
	// what leaves room for every seat's share, the outsiders' and the
	// margin, so that those who keep to their share are never refused
	// for the room being full. A room's players below it may send about
	// PressureAt/SessionMinAge (185) requests a second, sustained.
	PressureAt = SessionCap - MaxPlayers*SeatShare - OutsiderShare - InflightMargin
)

// Admit says whether a leader should propose c now: nil, or a CodeBusy
// refusal when c's room is under pressure and c's scope has had its share
// (see PressureAt). A command without a request id is never remembered,
// and always admitted, as is one to a room that does not exist.
func (m *Machine) Admit(c Command) error {
	r := m.rooms[c.Room]
	if r == nil || c.RequestID == "" || r.sessions.young(c.At, roomRetention) < PressureAt {
		return nil
	}
	held := r.sessions.scopes
	if c.TokenHash != "" && r.seatOf(c.TokenHash) != nil {
		if held[c.TokenHash] >= SeatShare {
			return errorf(CodeBusy, "room %q is flooded with requests, and this player already sent %d in the last %v: send the request again with the same id in a few seconds", c.Room, SeatShare, SessionMinAge)
		}
		return nil
	}
	outsiders := len(r.sessions.order)
	for _, p := range r.players {
		if p.hash != "" {
			outsiders -= held[p.hash]
		}
	}
	if outsiders >= OutsiderShare {
		return errorf(CodeBusy, "room %q is flooded with requests, and those without a seat in it already sent %d in the last %v: send the request again with the same id in a few seconds", c.Room, OutsiderShare, SessionMinAge)
	}
	return nil
}

// seatOf returns the seat whose token hashes to hash, or nil.
func (r *room) seatOf(hash string) *seat {
	for _, p := range r.players {
		if p.hash == hash {
			return p
		}
	}
	return nil
}
