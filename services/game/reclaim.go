package game

import "time"

// Reclaiming. Rooms and seats are bounded (MaxRooms, MaxPlayers, or the
// proposers' lower caps), so abandoned ones must be given back, or a few
// idle clients would block creation and joining for good. Time enters the
// state only through commands: every applied command stamps its room (and
// its player's seat) with its At, and the leader, comparing those stamps
// with its own clock, proposes a KindDeleteRoom or KindReclaimSeat for
// what has been idle too long. Each carries a cutoff that applying it
// checks again, so a player who acts while the command is on its way
// keeps their room and seat. Replicas never read a clock.

// ReclaimPolicy says how long rooms and seats may stay idle. A zero
// duration never reclaims that kind.
type ReclaimPolicy struct {
	// RoomIdle is how long a room in which a round is being played, by
	// seated players, may go without any command before it is deleted.
	RoomIdle time.Duration
	// RoomOverIdle is the same for a room whose round is over, or which
	// has no players: nobody is in the middle of anything there, so it
	// goes sooner (the shorter of the two applies).
	RoomOverIdle time.Duration
	// SeatIdle is how long a player may go without acting while others in
	// the room play on (someone acted within SeatIdle) before their seat
	// is freed. In a room where nobody acts, seats stay until the room
	// itself is reclaimed: a pause of the whole table costs nobody their
	// score.
	SeatIdle time.Duration
}

// Reclaimable returns the commands that reclaim what policy p finds idle
// at time now: a KindDeleteRoom for each idle room, then a KindReclaimSeat
// for each idle seat of the rooms that stay. Rooms are visited in name
// order until limit commands are found; what is left is found by the next
// call. The commands carry At now and their cutoff: the proposer adds
// nothing.
func (m *Machine) Reclaimable(now time.Time, p ReclaimPolicy, limit int) []Command {
	at := min(max(now.UnixMilli(), 0), maxAt)
	cutoff := func(d time.Duration) int64 {
		if d <= 0 {
			return -1
		}
		return max(at-d.Milliseconds(), 0)
	}
	playing, over, seats := cutoff(p.RoomIdle), cutoff(p.RoomOverIdle), cutoff(p.SeatIdle)
	over = max(over, playing) // the shorter idle time: the later cutoff
	var out []Command
	var seatCmds []Command
	for _, name := range m.roomNames() {
		if len(out)+len(seatCmds) >= limit {
			break
		}
		r := m.rooms[name]
		c := playing
		if r.status != StatusPlaying && r.status != StatusSetting || len(r.players) == 0 {
			c = over
		}
		if c >= 0 && r.lastAt <= c {
			out = append(out, Command{Kind: KindDeleteRoom, Room: name, At: at, Cutoff: c})
			continue
		}
		if seats < 0 || r.lastAt <= seats {
			continue
		}
		for _, s := range r.players {
			if s.lastAt <= seats && len(out)+len(seatCmds) < limit {
				seatCmds = append(seatCmds, Command{Kind: KindReclaimSeat, Room: name, Player: s.ID, At: at, Cutoff: seats})
			}
		}
	}
	return append(out, seatCmds...)
}
