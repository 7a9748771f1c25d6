package relay

import "sync"

// background is the relay's goroutines that Close waits for: the loops
// (heartbeats, the sweep, the confirmer, the cluster view), the room
// fetches, the frame pool and the node links' watches. Once Close has
// begun waiting it starts no more, so a fetch that a late NATS message
// asks for cannot race the wait.
type background struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// run runs f in a goroutine that close waits for, unless close has begun.
func (b *background) run(f func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.wg.Go(f)
}

// close starts no more goroutines and waits for those running.
func (b *background) close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.wg.Wait()
}
