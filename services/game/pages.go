package game

import (
	"slices"
	"strings"
)

// RoomsAfter returns, in name order, at most limit rooms whose names sort
// after after, and whether more follow: one page of the lobby. It costs one
// pass over the rooms and memory for the page only, never a copy or a sort
// of the whole lobby, so a request for a small page is a small request
// however many rooms there are. A limit below 1 returns an empty page.
func (m *Machine) RoomsAfter(after string, limit int) (page []Summary, more bool) {
	if limit < 1 {
		return []Summary{}, false
	}
	// names holds the limit+1 smallest names after after, sorted: the
	// extra one says whether another page follows.
	names := make([]string, 0, min(limit+1, len(m.rooms)))
	for n := range m.rooms {
		if n <= after {
			continue
		}
		if len(names) == limit+1 {
			if n >= names[limit] {
				continue
			}
			names = names[:limit]
		}
		i, _ := slices.BinarySearchFunc(names, n, strings.Compare)
		names = slices.Insert(names, i, n)
	}
	if len(names) > limit {
		names, more = names[:limit], true
	}
	page = make([]Summary, len(names))
	for i, n := range names {
		page[i] = m.rooms[n].summary()
	}
	return page, more
}

// summary is the room's line in the lobby.
func (r *room) summary() Summary {
	return Summary{Room: r.name, Round: r.round, Status: r.status, Players: len(r.players), Seq: r.seq}
}
