package raftnode

import (
	"sync"
	"time"
)

// digestEvery is how often a node serialises its whole state for a
// Status digest: each is a pass over every room under the state machine's
// read lock, which holds up applying, so a client asking in a loop must not
// get one per call.
const digestEvery = time.Second

// digestLimiter bounds the state digests a node computes for Status:
// while the state has not changed it answers the last one again, and it
// computes at most one per digestEvery, one at a time. Without it, any
// client of the cluster port could stall a node with Status requests.
type digestLimiter struct {
	mu   sync.Mutex
	at   time.Time // when the last digest was computed
	key  uint64    // the last index handed to the state machine then
	last string    // the last digest, with the state index it stands for
	idx  uint64
}

// get returns a digest and the state index it stands for: the last one
// again while the state machine has been handed nothing since (key, the
// index of the last entry handed to it, is unchanged), else a new one from
// compute. ok is false when a new one may not be computed yet.
func (l *digestLimiter) get(now time.Time, key uint64, compute func() (string, uint64, error)) (digest string, index uint64, ok bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last != "" && l.key == key {
		return l.last, l.idx, true, nil
	}
	if !l.at.IsZero() && now.Sub(l.at) < digestEvery {
		return "", 0, false, nil
	}
	digest, index, err = compute()
	if err != nil {
		return "", 0, true, err
	}
	l.at, l.key, l.last, l.idx = now, key, digest, index
	return digest, index, true, nil
}
