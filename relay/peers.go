package relay

import (
	"maps"
	"slices"
	"sync"
	"time"
)

// maxPeers bounds the relays a relay follows: heartbeats with ever new
// names cannot grow its memory.
const maxPeers = 256

// peer is another relay as its last heartbeat showed it.
type peer struct {
	url      string
	leader   bool
	sessions int64
	seen     time.Time
}

// peerTable is the relay's one table of the other relays, fed by their
// heartbeats alone (discovery.go): the browsers' failover list, readiness
// and the cluster view all read it. It also remembers the relay list the
// browsers were last sent, so that they are sent a new one only when it
// changed.
type peerTable struct {
	selfURL string // this relay's public URL, first in every list

	mu     sync.Mutex
	byName map[string]peer
	sent   []string // the relay list browsers were last sent
}

func newPeerTable(selfURL string) *peerTable {
	return &peerTable{selfURL: selfURL, byName: make(map[string]peer)}
}

// see records a relay's heartbeat, heard at now. known says the relay was
// in the table already, and old is how; ok is false when the table is
// full and a new relay was not recorded.
func (pt *peerTable) see(hb heartbeat, now time.Time) (old peer, known, ok bool) {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	old, known = pt.byName[hb.Name]
	if !known && len(pt.byName) >= maxPeers {
		return old, false, false
	}
	pt.byName[hb.Name] = peer{url: hb.URL, leader: hb.Leader, sessions: hb.Sessions, seen: now}
	return old, known, true
}

// expire forgets the relays not heard from since deadline, and returns
// them by name.
func (pt *peerTable) expire(deadline time.Time) map[string]peer {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	var gone map[string]peer
	for name, p := range pt.byName {
		if p.seen.Before(deadline) {
			if gone == nil {
				gone = make(map[string]peer)
			}
			gone[name] = p
			delete(pt.byName, name)
		}
	}
	return gone
}

// urls lists the URLs browsers may reconnect to: this relay's first,
// then the others' sorted, each once. Relays behind one public entry share
// its URL, so there the list is that one URL.
func (pt *peerTable) urls() []string {
	pt.mu.Lock()
	others := make([]string, 0, len(pt.byName))
	for _, p := range pt.byName {
		if p.url != "" && p.url != pt.selfURL {
			others = append(others, p.url)
		}
	}
	pt.mu.Unlock()
	slices.Sort(others)
	others = slices.Compact(others)
	if pt.selfURL == "" {
		return others
	}
	return append([]string{pt.selfURL}, others...)
}

// newList returns the relay list and whether it differs from the one
// browsers were last sent; if so, it is now the one sent.
func (pt *peerTable) newList() (urls []string, changed bool) {
	urls = pt.urls()
	pt.mu.Lock()
	defer pt.mu.Unlock()
	same := pt.sent != nil && slices.Equal(urls, pt.sent)
	pt.sent = urls
	return urls, !same
}

// seesLeader reports whether another live relay reaches a node that
// knows a raft leader.
func (pt *peerTable) seesLeader() bool {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	for _, p := range pt.byName {
		if p.leader {
			return true
		}
	}
	return false
}

// count is how many relays the table holds.
func (pt *peerTable) count() int {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	return len(pt.byName)
}

// snapshot returns the table's relays by name.
func (pt *peerTable) snapshot() map[string]peer {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	return maps.Clone(pt.byName)
}
