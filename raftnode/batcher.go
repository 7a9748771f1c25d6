package raftnode

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/hashicorp/raft"

	"github.com/hangman/hangman/raftnode/raftstore"
	"github.com/hangman/hangman/services/api"
	"github.com/hangman/hangman/services/game"
)

// Group commit. Every guess is a raft entry's worth of work: an append to
// the leader's log, a replication message, an fsync on each follower, an
// apply and a future. Under load the batcher packs the commands proposed
// at the same moment into one entry (game.EncodeBatch), so one entry's cost
// is shared by up to maxBatch commands.
//
// It never waits for a batch to fill: a proposal to an idle leader is
// appended at once, as its own single-command entry. Only while
// maxInflightEntries entries are on their way through raft do new
// proposals wait, and then they leave together in the next entry; the
// busier the leader, the bigger its entries. This is the group commit of
// databases, and rqlite's queued writes, without a timer.
//
// Commands of one entry are applied at the same index, so an entry holds
// at most one command per room (a room's seq is the index of the entry that
// changed it, and must grow with every change); a second command for a
// room waits for the next entry, which keeps each room's commands in the
// order they were proposed.
//
// A proposal whose caller has given up (its context ended: the client's
// deadline passed, or it went away) while it waited is dropped when the
// next batch is made, never sent: its caller was told the outcome is
// unknown, and committing it behind their back would only make a write
// nobody waits for, which the rules might by then judge differently.
const (
	maxBatch           = 256
	maxBatchBytes      = 256 << 10
	maxInflightEntries = 2
	// maxPending bounds the proposals the batcher holds; beyond it
	// proposers wait on the channel (backpressure).
	maxPending = 4 * maxBatch
)

// proposal is one command waiting for its entry.
type proposal struct {
	// ctx is the proposer's: once it ends, nobody waits for the result.
	ctx  context.Context
	room string
	cmd  []byte
	done chan proposed // buffered: the batcher never waits for a proposer
}

// errNotProposed answers a proposal dropped because its caller had given
// up before it entered the log (or, forwarded, before it was sent): it
// was never proposed, and never will be.
var errNotProposed = errors.New("not proposed: its caller gave up before it entered the log")

// notProposed is the answer to a proposal dropped because its context
// ended with err.
func notProposed(err error) proposed {
	return proposed{err: fmt.Errorf("%w (%w)", errNotProposed, err)}
}

// proposed is what became of a proposal.
type proposed struct {
	res   game.Result
	index uint64
	err   error
}

// batcher is the group-commit loop. Two of them run on a node: the one
// that packs proposals into raft entries (newBatcher, while leading) and
// the one that carries a follower's writes to the leader in batches
// (newForwarder, forward.go).
type batcher struct {
	in       chan *proposal
	inflight chan struct{} // a token per batch not answered yet
	stopped  chan struct{} // closed when run has returned
	// dropped counts the proposals dropped because their callers had
	// gone (hangman_proposals_dropped_total).
	dropped atomic.Uint64
	// admit, if set, is asked of each proposal as it is about to enter
	// an entry: a proposal it refuses is answered with the refusal as
	// its result, and never proposed. refused counts them
	// (hangman_flood_refusals_total).
	admit   func(cmd []byte) error
	refused atomic.Uint64
	// pack takes the next batch from pending; see pack.
	pack func(pending []*proposal) (batch, rest []*proposal)
	// start sends a batch on its way, in the order batches are made, and
	// returns what waits for its answers and hands them out (run on a
	// goroutine of its own).
	start func(batch []*proposal) (await func())
}

func newLoop(inflight int, pack func([]*proposal) ([]*proposal, []*proposal), start func([]*proposal) func()) *batcher {
	return &batcher{in: make(chan *proposal, maxPending), inflight: make(chan struct{}, inflight), stopped: make(chan struct{}), pack: pack, start: start}
}

// newBatcher returns the loop that packs proposals into r's log entries.
// Each entry carries self, the proposing node's id, in its Extensions: the
// node's FSM builds the states of results only for its own entries, the
// ones whose results a caller waits for (fsm.go). admit is the leader's
// flood check (Node.admit): asked as each entry is made, it sees every
// earlier command of the room applied but for those of the entries on
// their way, at most one each.
func newBatcher(r *raft.Raft, self []byte, admit func(cmd []byte) error) *batcher {
	b := newLoop(maxInflightEntries, pack, func(batch []*proposal) func() {
		entry := batch[0].cmd
		if len(batch) > 1 {
			cmds := make([][]byte, len(batch))
			for i, p := range batch {
				cmds[i] = p.cmd
			}
			entry = game.EncodeBatch(cmds)
		}
		f := r.ApplyLog(raft.Log{Data: entry, Extensions: self}, enqueueTimeout)
		return func() { answer(f, batch) }
	})
	b.admit = admit
	return b
}

// run makes and sends batches until ctx ends; proposals it still holds
// then were never sent, and are told to find the leader again.
func (b *batcher) run(ctx context.Context) {
	var pending []*proposal
	defer func() {
		for _, p := range pending {
			p.done <- proposed{err: api.ErrNotLeader}
		}
		close(b.stopped)
	}()
	for {
		if len(pending) == 0 {
			select {
			case p := <-b.in:
				pending = append(pending, p)
			case <-ctx.Done():
				return
			}
		}
		// Proposals that arrive while the earlier batches are on their
		// way join this one.
		select {
		case b.inflight <- struct{}{}:
		case <-ctx.Done():
			return
		}
	drain:
		for len(pending) < maxPending {
			select {
			case p := <-b.in:
				pending = append(pending, p)
			default:
				break drain
			}
		}
		if pending = b.dropGone(pending); len(pending) == 0 {
			<-b.inflight
			continue
		}
		var batch []*proposal
		batch, pending = b.pack(pending)
		if batch = b.admitted(batch); len(batch) == 0 {
			<-b.inflight
			continue
		}
		await := b.start(batch)
		go func() {
			await()
			<-b.inflight
		}()
	}
}

// dropGone answers the proposals of pending whose callers have gone, and
// returns the others, in order.
func (b *batcher) dropGone(pending []*proposal) []*proposal {
	kept := pending[:0]
	for _, p := range pending {
		if err := p.ctx.Err(); err != nil {
			p.done <- notProposed(err)
			b.dropped.Add(1)
			continue
		}
		kept = append(kept, p)
	}
	clear(pending[len(kept):])
	return kept
}

// admitted answers the proposals of batch that admit refuses, and returns
// the others, in order.
func (b *batcher) admitted(batch []*proposal) []*proposal {
	if b.admit == nil {
		return batch
	}
	kept := batch[:0]
	for _, p := range batch {
		if err := b.admit(p.cmd); err != nil {
			p.done <- proposed{res: game.Result{Room: p.room, Err: err}}
			b.refused.Add(1)
			continue
		}
		kept = append(kept, p)
	}
	clear(batch[len(kept):])
	return kept
}

// pack takes the next entry's proposals from pending, in order: at most
// one per room, at most maxBatch and maxBatchBytes. It returns the entry's
// proposals and those left for later, still in order.
func pack(pending []*proposal) (batch, rest []*proposal) {
	rooms := make(map[string]bool, min(len(pending), maxBatch))
	size := 0
	for _, p := range pending {
		if len(batch) == maxBatch || rooms[p.room] || (len(batch) > 0 && size+len(p.cmd) > maxBatchBytes) {
			rest = append(rest, p)
			continue
		}
		rooms[p.room] = true
		size += len(p.cmd)
		batch = append(batch, p)
	}
	return batch, rest
}

// answer waits for an entry's future and gives each proposal its result.
func answer(f raft.ApplyFuture, batch []*proposal) {
	err := f.Error()
	if err != nil {
		fail(batch, applyError(err))
		return
	}
	r, ok := f.Response().(*applyResult)
	if !ok || len(r.results) != len(batch) {
		fail(batch, fmt.Errorf("apply: unexpected response %T for %d commands", f.Response(), len(batch)))
		return
	}
	for i, p := range batch {
		p.done <- proposed{res: r.results[i], index: r.index}
	}
}

// fail answers every proposal of batch with err.
func fail(batch []*proposal, err error) {
	for _, p := range batch {
		p.done <- proposed{err: err}
	}
}

// applyError says what a failed raft future means for its callers.
func applyError(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress), errors.Is(err, raft.ErrEnqueueTimeout):
		return api.ErrNotLeader
	case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrRaftShutdown), errors.Is(err, raft.ErrAbortedByRestore):
		return fmt.Errorf("%w: %v", api.ErrUnknownOutcome, err)
	case errors.Is(err, raftstore.ErrNotPersisted):
		// The leader could not write the entry (a full disk) and steps
		// down; the store has logged the full error. Callers are told
		// only that much: the text below names no server path.
		return fmt.Errorf("%w: the leader could not write the entry to its disk", api.ErrUnknownOutcome)
	default:
		return fmt.Errorf("apply: %w", err)
	}
}

// propose hands cmd, addressed to room, to the loop and waits for its
// result.
func (b *batcher) propose(ctx context.Context, room string, cmd []byte) proposed {
	return b.enqueue(ctx, room, cmd)()
}

// enqueue hands cmd, addressed to room, to the loop and returns what waits
// for its result: proposals enqueued one after another keep their order.
func (b *batcher) enqueue(ctx context.Context, room string, cmd []byte) func() proposed {
	if err := ctx.Err(); err != nil {
		return func() proposed { return notProposed(err) }
	}
	p := &proposal{ctx: ctx, room: room, cmd: cmd, done: make(chan proposed, 1)}
	select {
	case b.in <- p:
	case <-b.stopped:
		return func() proposed { return proposed{err: api.ErrNotLeader} }
	case <-ctx.Done():
		err := ctx.Err()
		return func() proposed { return notProposed(err) }
	}
	return func() proposed {
		select {
		case r := <-p.done:
			return r
		case <-b.stopped:
			// It may have been sent before the loop stopped.
			select {
			case r := <-p.done:
				return r
			default:
				return proposed{err: fmt.Errorf("%w: node stopped", api.ErrUnknownOutcome)}
			}
		case <-ctx.Done():
			// A stalled leader: the caller is answered "outcome unknown"
			// instead of waiting forever.
			return proposed{err: fmt.Errorf("%w: %v", api.ErrUnknownOutcome, ctx.Err())}
		}
	}
}
