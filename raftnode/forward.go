package raftnode

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hashicorp/raft"

	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
	"github.com/hangman/hangman/services/api"
	"github.com/hangman/hangman/services/game"
	"github.com/hangman/hangman/wire"
)

// Batched forwarding. A follower's callers send it writes it cannot
// commit; one forwarded gRPC call per write would cost the leader, and
// the follower, as much as serving the write a second time. The follower's
// forwarder instead gathers the writes that arrive together (the same
// group-commit loop as the leader's batcher) and hands them over in one
// ReplicaService.Propose call, which the leader feeds to its own batcher.
//
// No write outlives its caller on the way. A write whose caller gave up
// while it waited for a call is dropped, not sent (batcher.dropGone); a
// call lasts until the last of its callers' deadlines at most, and ends
// as soon as all of them have gone or the leader it went to no longer
// leads, so calls stuck on a leader that stopped answering do not hold
// the writes queued behind them; and each write carries its caller's
// remaining time, after which the leader drops it unless it has already
// entered the log. (gRPC's own deadline travels as a relative timeout,
// which a leader paused while the call waited in its socket would restart
// on waking; the leader's answer is then refused by the rules' client
// sessions if it contradicts an earlier one.)

const (
	// maxInflightForwards bounds the Propose calls a follower has open.
	maxInflightForwards = 2
	// forwardTimeout bounds one Propose call whatever its callers'
	// deadlines; a caller with more time left is told the outcome is
	// unknown and retries.
	forwardTimeout = 5 * time.Second
)

// forwarder carries this node's writes to the leader while it follows:
// the group-commit loop (the batcher it embeds) whose batches go out as
// ReplicaService.Propose calls, and the counts of those calls and the
// commands they carried, which the metrics read. It knows the node only
// through where the leader is (raft, the leadership signal, and a
// connection to the leader), which is all a call needs.
type forwarder struct {
	*batcher
	raft    *raft.Raft
	changed *leaderSignal
	// conn returns a connection to the leader, nil when there is none
	// (Node.LeaderConn).
	conn func() *grpc.ClientConn
	// calls and commands count the Propose calls and the commands they
	// carried.
	calls, commands atomic.Uint64
}

// newForwarder returns the loop that carries writes to the leader r knows.
func newForwarder(r *raft.Raft, changed *leaderSignal, conn func() *grpc.ClientConn) *forwarder {
	f := &forwarder{raft: r, changed: changed, conn: conn}
	f.batcher = newLoop(maxInflightForwards, packFirst, func(batch []*proposal) func() {
		return func() { f.send(batch) }
	})
	return f
}

// packFirst takes the first maxBatch proposals: the leader's batcher sorts
// out rooms.
func packFirst(pending []*proposal) (batch, rest []*proposal) {
	k := min(len(pending), maxBatch)
	return pending[:k:k], pending[k:]
}

// Forward commits an encoded command through the leader, batched with the
// other writes this node forwards; api.Service uses it when this node does
// not lead. It fails with api.ErrNotLeader when no leader took the command
// and api.ErrUnknownOutcome when its fate is unknown; a command whose ctx
// ends before it is sent, or before it enters the leader's log, is
// dropped, and fails with an error that wraps ctx's.
func (n *Node) Forward(ctx context.Context, room string, cmd []byte) (game.Result, uint64, error) {
	r := n.forwarder.propose(ctx, room, cmd)
	return r.res, r.index, r.err
}

// send sends one batch to the leader and answers its proposals.
func (f *forwarder) send(batch []*proposal) {
	changed := f.changed.next()
	_, leader := f.raft.LeaderWithID()
	conn := f.conn()
	if conn == nil {
		fail(batch, api.ErrNotLeader)
		return
	}
	// deposed is closed once this node sees another leader, or none.
	deposed, done := make(chan struct{}), make(chan struct{})
	defer close(done)
	go func() {
		for {
			select {
			case <-changed:
			case <-done:
				return
			}
			changed = f.changed.next()
			if _, id := f.raft.LeaderWithID(); id != leader {
				close(deposed)
				return
			}
		}
	}()
	f.calls.Add(1)
	f.commands.Add(uint64(len(batch)))
	forward(hangmanv1.NewReplicaServiceClient(conn), batch, deposed)
}

// forward hands batch to the leader in one call and answers its
// proposals. The call ends at the last of its callers' deadlines (within
// forwardTimeout), or once every caller has gone, or once deposed is
// closed; each proposal carries its caller's remaining time.
func forward(client hangmanv1.ReplicaServiceClient, batch []*proposal, deposed <-chan struct{}) {
	now := time.Now()
	deadline := now.Add(forwardTimeout)
	var latest time.Time
	req := &hangmanv1.ProposeRequest{Proposals: make([]*hangmanv1.Proposal, len(batch))}
	for i, p := range batch {
		req.Proposals[i] = &hangmanv1.Proposal{Room: p.room, Command: p.cmd}
		d, ok := p.ctx.Deadline()
		if !ok {
			latest = deadline
			continue
		}
		req.Proposals[i].TimeoutMs = timeoutMs(d.Sub(now))
		if d.After(latest) {
			latest = d
		}
	}
	if latest.Before(deadline) {
		deadline = latest
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	left := atomic.Int64{}
	left.Store(int64(len(batch)))
	stops := make([]func() bool, len(batch))
	for i, p := range batch {
		stops[i] = context.AfterFunc(p.ctx, func() {
			if left.Add(-1) == 0 {
				cancel()
			}
		})
	}
	defer func() {
		for _, stop := range stops {
			stop()
		}
	}()
	go func() {
		select {
		case <-deposed:
			cancel()
		case <-ctx.Done():
		}
	}()
	resp, err := client.Propose(ctx, req)
	if err != nil {
		// The call may have reached the leader before it failed.
		fail(batch, fmt.Errorf("%w: forward to the leader: %v", api.ErrUnknownOutcome, err))
		return
	}
	if len(resp.GetResults()) != len(batch) {
		fail(batch, fmt.Errorf("%w: the leader answered %d of %d commands", api.ErrUnknownOutcome, len(resp.GetResults()), len(batch)))
		return
	}
	for i, p := range batch {
		p.done <- fromWire(resp.GetResults()[i])
	}
}

// timeoutMs is d in whole milliseconds for Proposal.timeout_ms, rounded up
// and at least 1 (0 would mean no limit).
func timeoutMs(d time.Duration) uint32 {
	ms := (d + time.Millisecond - 1) / time.Millisecond
	return uint32(min(max(ms, 1), math.MaxUint32))
}

// replicaService is the leader's end of batched forwarding.
type replicaService struct {
	hangmanv1.UnimplementedReplicaServiceServer
	node *Node
}

func (s *replicaService) register(g *grpc.Server) { hangmanv1.RegisterReplicaServiceServer(g, s) }

// Propose commits each forwarded command through this node's batcher. The
// commands go into the batcher in the order they came, so a room's
// commands keep their order; then each waits for its own result. A
// command whose caller's time (timeout_ms) runs out before it enters the
// log is dropped and answered EXPIRED.
func (s *replicaService) Propose(ctx context.Context, req *hangmanv1.ProposeRequest) (*hangmanv1.ProposeResponse, error) {
	n := s.node
	ps := req.GetProposals()
	if len(ps) > maxPending {
		return nil, status.Errorf(codes.InvalidArgument, "%d commands in one call; at most %d", len(ps), maxPending)
	}
	out := &hangmanv1.ProposeResponse{Results: make([]*hangmanv1.Proposed, len(ps))}
	if !n.IsLeader() {
		for i := range ps {
			out.Results[i] = toWire(proposed{err: api.ErrNotLeader})
		}
		return out, nil
	}
	start := time.Now()
	defer n.stall.inflight.add(len(ps), start)()
	waits := make([]func() proposed, len(ps))
	cancels := make([]context.CancelFunc, len(ps))
	defer func() {
		for _, cancel := range cancels {
			cancel()
		}
	}()
	for i, p := range ps {
		var pctx context.Context
		pctx, cancels[i] = proposalContext(ctx, p)
		waits[i] = n.batcher.enqueue(pctx, p.GetRoom(), p.GetCommand())
	}
	for i, wait := range waits {
		r := wait()
		n.metrics.observeApply(time.Since(start), r.err)
		out.Results[i] = toWire(r)
	}
	return out, nil
}

// proposalContext is the context of forwarded proposal p at the leader,
// whose call has ctx: it ends with the call, or sooner when p's caller's
// remaining time runs out.
func proposalContext(ctx context.Context, p *hangmanv1.Proposal) (context.Context, context.CancelFunc) {
	if ms := p.GetTimeoutMs(); ms > 0 {
		return context.WithTimeout(ctx, time.Duration(ms)*time.Millisecond)
	}
	return ctx, func() {}
}

// toWire is the leader's answer for one forwarded command.
func toWire(r proposed) *hangmanv1.Proposed {
	switch {
	case r.err == nil:
	case errors.Is(r.err, errNotProposed):
		return &hangmanv1.Proposed{Failure: hangmanv1.ProposeFailure_PROPOSE_FAILURE_EXPIRED, Message: r.err.Error()}
	case errors.Is(r.err, api.ErrNotLeader):
		return &hangmanv1.Proposed{Failure: hangmanv1.ProposeFailure_PROPOSE_FAILURE_NOT_LEADER, Message: r.err.Error()}
	case errors.Is(r.err, api.ErrUnknownOutcome):
		return &hangmanv1.Proposed{Failure: hangmanv1.ProposeFailure_PROPOSE_FAILURE_UNKNOWN_OUTCOME, Message: r.err.Error()}
	default:
		return &hangmanv1.Proposed{Failure: hangmanv1.ProposeFailure_PROPOSE_FAILURE_INTERNAL, Message: r.err.Error()}
	}
	a := &hangmanv1.Applied{Room: r.res.Room, Outcome: string(r.res.Outcome), Duplicate: r.res.Duplicate, Index: r.res.Index}
	if r.res.Err != nil {
		a.ErrorCode, a.ErrorMessage = uint32(game.CodeOf(r.res.Err)), r.res.Err.Error()
	} else {
		a.State = wire.StateProto(r.res.State)
	}
	if r.res.Event != nil {
		a.Event = wire.EventProto(*r.res.Event)
	}
	return &hangmanv1.Proposed{Index: r.index, Applied: a}
}

// fromWire reads the leader's answer for one forwarded command, the
// command's event included: the leader publishes it, but the forwarding
// node's caller reads it too (a join answers whether it took a new seat).
func fromWire(p *hangmanv1.Proposed) proposed {
	switch p.GetFailure() {
	case hangmanv1.ProposeFailure_PROPOSE_FAILURE_UNSPECIFIED:
	case hangmanv1.ProposeFailure_PROPOSE_FAILURE_NOT_LEADER:
		return proposed{err: api.ErrNotLeader}
	case hangmanv1.ProposeFailure_PROPOSE_FAILURE_UNKNOWN_OUTCOME:
		return proposed{err: fmt.Errorf("%w: %s", api.ErrUnknownOutcome, p.GetMessage())}
	case hangmanv1.ProposeFailure_PROPOSE_FAILURE_EXPIRED:
		return proposed{err: fmt.Errorf("%w: the leader dropped it (%w)", errNotProposed, context.DeadlineExceeded)}
	default:
		return proposed{err: fmt.Errorf("leader: %s", p.GetMessage())}
	}
	a := p.GetApplied()
	if a == nil || (a.GetState() == nil && a.GetErrorCode() == 0) {
		// Neither a state nor a refusal: not an answer this node can read.
		return proposed{err: fmt.Errorf("%w: the leader's answer holds no result", api.ErrUnknownOutcome)}
	}
	res := game.Result{Room: a.GetRoom(), Outcome: game.Outcome(a.GetOutcome()), Duplicate: a.GetDuplicate(), Index: a.GetIndex()}
	if code := a.GetErrorCode(); code != 0 {
		res.Err = &game.Error{Code: game.Code(min(code, 255)), Msg: a.GetErrorMessage()}
	} else {
		res.State = wire.StateFromProto(a.GetState())
	}
	if e := a.GetEvent(); e != nil {
		ev, err := wire.EventFromProto(e)
		if err != nil {
			return proposed{err: fmt.Errorf("%w: the leader's answer: %w", api.ErrUnknownOutcome, err)}
		}
		res.Event = &ev
	}
	return proposed{res: res, index: p.GetIndex()}
}
