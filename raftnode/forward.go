package raftnode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
	"github.com/hangman/hangman/services/api"
	"github.com/hangman/hangman/services/game"
)

// Batched forwarding. A follower's callers send it writes it cannot
// commit; one forwarded gRPC call per write would cost the leader, and
// the follower, as much as serving the write a second time. The follower's
// forwarder instead gathers the writes that arrive together (the same
// group-commit loop as the leader's batcher) and hands them over in one
// ReplicaService.Propose call, which the leader feeds to its own batcher.

const (
	// maxInflightForwards bounds the Propose calls a follower has open.
	maxInflightForwards = 2
	// forwardTimeout bounds one Propose call; a caller with less time left
	// gives up on its own and is told the outcome is unknown.
	forwardTimeout = 5 * time.Second
)

// newForwarder returns the loop that carries n's writes to the leader.
func newForwarder(n *Node) *batcher {
	return newLoop(maxInflightForwards, packFirst, func(batch []*proposal) func() {
		return func() { n.forwardBatch(batch) }
	})
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
// and api.ErrUnknownOutcome when its fate is unknown.
func (n *Node) Forward(ctx context.Context, room string, cmd []byte) (game.Result, uint64, error) {
	r := n.forwarder.propose(ctx, room, cmd)
	return r.res, r.index, r.err
}

// forwardBatch sends one batch to the leader and answers its proposals.
func (n *Node) forwardBatch(batch []*proposal) {
	conn := n.LeaderConn()
	if conn == nil {
		fail(batch, api.ErrNotLeader)
		return
	}
	req := &hangmanv1.ProposeRequest{Proposals: make([]*hangmanv1.Proposal, len(batch))}
	for i, p := range batch {
		req.Proposals[i] = &hangmanv1.Proposal{Room: p.room, Command: p.cmd}
	}
	ctx, cancel := context.WithTimeout(context.Background(), forwardTimeout)
	defer cancel()
	n.forwardCalls.Add(1)
	n.forwarded.Add(uint64(len(batch)))
	resp, err := hangmanv1.NewReplicaServiceClient(conn).Propose(ctx, req)
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

// replicaService is the leader's end of batched forwarding.
type replicaService struct {
	hangmanv1.UnimplementedReplicaServiceServer
	node *Node
}

func (s *replicaService) register(g *grpc.Server) { hangmanv1.RegisterReplicaServiceServer(g, s) }

// Propose commits each forwarded command through this node's batcher. The
// commands go into the batcher in the order they came, so a room's
// commands keep their order; then each waits for its own result.
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
	if k := int64(len(ps)); n.inflight.Add(k) == k {
		n.inflightSince.Store(start.UnixNano())
	}
	defer n.inflight.Add(-int64(len(ps)))
	waits := make([]func() proposed, len(ps))
	for i, p := range ps {
		waits[i] = n.batcher.enqueue(ctx, p.GetRoom(), p.GetCommand())
	}
	for i, wait := range waits {
		r := wait()
		n.metrics.observeApply(time.Since(start), r.err)
		out.Results[i] = toWire(r)
	}
	return out, nil
}

// wireResult is a game.Result as the leader sends it back: the public
// state and event, as published on NATS, and a refusal as code and text.
type wireResult struct {
	Room      string       `json:"room,omitempty"`
	Outcome   game.Outcome `json:"outcome,omitempty"`
	Duplicate bool         `json:"duplicate,omitempty"`
	Index     uint64       `json:"index,omitempty"`
	Event     *game.Event  `json:"event,omitempty"`
	State     game.State   `json:"state"`
	ErrCode   game.Code    `json:"errCode,omitempty"`
	ErrMsg    string       `json:"errMsg,omitempty"`
}

func toWire(r proposed) *hangmanv1.Proposed {
	switch {
	case r.err == nil:
	case errors.Is(r.err, api.ErrNotLeader):
		return &hangmanv1.Proposed{Failure: hangmanv1.ProposeFailure_PROPOSE_FAILURE_NOT_LEADER, Message: r.err.Error()}
	case errors.Is(r.err, api.ErrUnknownOutcome):
		return &hangmanv1.Proposed{Failure: hangmanv1.ProposeFailure_PROPOSE_FAILURE_UNKNOWN_OUTCOME, Message: r.err.Error()}
	default:
		return &hangmanv1.Proposed{Failure: hangmanv1.ProposeFailure_PROPOSE_FAILURE_INTERNAL, Message: r.err.Error()}
	}
	w := wireResult{Room: r.res.Room, Outcome: r.res.Outcome, Duplicate: r.res.Duplicate, Index: r.res.Index, Event: r.res.Event, State: r.res.State}
	if r.res.Err != nil {
		w.ErrCode, w.ErrMsg = game.CodeOf(r.res.Err), r.res.Err.Error()
	}
	b, err := json.Marshal(w)
	if err != nil {
		return &hangmanv1.Proposed{Failure: hangmanv1.ProposeFailure_PROPOSE_FAILURE_INTERNAL, Message: fmt.Sprintf("encode result: %v", err)}
	}
	return &hangmanv1.Proposed{Result: b, Index: r.index}
}

func fromWire(p *hangmanv1.Proposed) proposed {
	switch p.GetFailure() {
	case hangmanv1.ProposeFailure_PROPOSE_FAILURE_UNSPECIFIED:
	case hangmanv1.ProposeFailure_PROPOSE_FAILURE_NOT_LEADER:
		return proposed{err: api.ErrNotLeader}
	case hangmanv1.ProposeFailure_PROPOSE_FAILURE_UNKNOWN_OUTCOME:
		return proposed{err: fmt.Errorf("%w: %s", api.ErrUnknownOutcome, p.GetMessage())}
	default:
		return proposed{err: fmt.Errorf("leader: %s", p.GetMessage())}
	}
	var w wireResult
	if err := json.Unmarshal(p.GetResult(), &w); err != nil {
		return proposed{err: fmt.Errorf("%w: undecodable result from the leader: %v", api.ErrUnknownOutcome, err)}
	}
	res := game.Result{Room: w.Room, Outcome: w.Outcome, Duplicate: w.Duplicate, Index: w.Index, Event: w.Event, State: w.State}
	if w.ErrCode != 0 {
		res.Err = &game.Error{Code: w.ErrCode, Msg: w.ErrMsg}
	}
	return proposed{res: res, index: p.GetIndex()}
}
