package relay

import (
	"context"
	"sync"
)

// viewWatchers are the sessions that watch a live view (the lobby, the
// cluster view). A watcher is dropped when its connection ends, without
// the view having to hear of it. They are guarded by the view's mutex,
// which the view holds for every call.
type viewWatchers struct {
	mu *sync.Mutex             // the view's
	m  map[*client]func() bool // value stops the disconnect hook
}

func newViewWatchers(mu *sync.Mutex) viewWatchers {
	return viewWatchers{mu: mu, m: make(map[*client]func() bool)}
}

// addLocked makes c a watcher, if it is not one already, until it stops
// watching or its connection ends.
func (w *viewWatchers) addLocked(c *client) {
	if _, ok := w.m[c]; ok {
		return
	}
	w.m[c] = context.AfterFunc(c.ctx, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		delete(w.m, c)
	})
}

// removeLocked makes c a watcher no more.
func (w *viewWatchers) removeLocked(c *client) {
	if stop, ok := w.m[c]; ok {
		stop()
		delete(w.m, c)
	}
}

// countLocked is how many sessions watch.
func (w *viewWatchers) countLocked() int { return len(w.m) }

// eachLocked calls f for every watcher.
func (w *viewWatchers) eachLocked(f func(*client)) {
	for c := range w.m {
		f(c)
	}
}
