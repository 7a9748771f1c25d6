package raftnode

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"github.com/hashicorp/serf/serf"

	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
)

// Forming a cluster is the one thing raft cannot undo, so a node only
// does it when it is certain no cluster exists (Consul's bootstrap_expect
// rule): BootstrapExpect nodes started with the same value are alive, and
// every node it knows of answers, over gRPC, that it has no raft state
// (log, snapshot or configuration). One peer with state vetoes it for the
// life of the process, and this node waits to be added by that cluster's
// leader, unless the peer only just bootstrapped the very configuration
// that lists this node (it asked a moment earlier), which this node then
// bootstraps with too. Without the rule, nodes whose disks were wiped
// would found a fresh cluster next to the intact one, acknowledge writes
// in it, and lose them when the intact node took over.
//
// When a majority of a configuration's voters came back without their
// state no leader can ever be elected (their old raft ids cannot vote
// again, see identity.go), and nothing automatic may paper over it: every
// node that sees it says so once, in the log and in /readyz, naming what
// it found and the operator's way out (`hangman node --recover`,
// recover.go).

// formationPoll is how often a node without raft state looks for a
// cluster to form, or why it cannot.
const formationPoll = 500 * time.Millisecond

// errWaitingToBeAdded is a node's reason to be unready while it has no raft
// state and is not meant to form a cluster itself.
var errWaitingToBeAdded = errors.New("no raft state: waiting to be added to the cluster by its leader")

// lostMajorityError says that a majority of a configuration's voters lost
// their raft state.
type lostMajorityError struct {
	lost, voters []string // node ids; voters as many as the configuration has
	holder       string   // whose log it is: "n1's" or "this node's"
	survivors    []string
	index        uint64
}

func (e *lostMajorityError) Error() string {
	return fmt.Sprintf("%d of %d raft voters (%s) came back without their raft state: no leader can be elected, and no new cluster will be bootstrapped over %s log at index %d; "+
		"recover with `hangman node --recover PEERS.json` on %s (README, \"When nodes lose their data\")",
		len(e.lost), len(e.voters), strings.Join(e.lost, ", "), e.holder, e.index, strings.Join(e.survivors, ", "))
}

// formation is one node's part in forming the cluster (as above): its
// loop, what it has learnt from its peers, and its reason not to serve
// yet, which Node.Ready reports. It is apart from Node so that what it
// reads and changes is in sight: raft, the member table and the peers it
// asks.
type formation struct {
	raft    *raft.Raft
	members *memberTable
	peers   *connPool
	// id is this node's id, self its raft server id, and expect its
	// BootstrapExpect.
	id     string
	self   raft.ServerID
	expect int
	log    *slog.Logger
	// why is why the cluster cannot be formed or cannot elect, as far as
	// this node can tell; nil when there is none.
	why atomic.Pointer[error]

	// vetoed is set once a peer reported raft state: from then on this
	// process never bootstraps. Only the loop reads and writes it, and
	// warned.
	vetoed bool
	// warned are the members already reported for expecting another
	// cluster size.
	warned map[string]bool
}

// newFormation returns the formation of a node with cfg whose raft server
// id is self.
func newFormation(r *raft.Raft, members *memberTable, peers *connPool, self raft.ServerID, cfg Config, log *slog.Logger) *formation {
	return &formation{raft: r, members: members, peers: peers, id: cfg.ID, self: self, expect: cfg.BootstrapExpect, log: log,
		warned: make(map[string]bool)}
}

// run bootstraps the cluster when it may, and keeps the node's reason to
// be unready (problem) up to date: waiting for peers, waiting to be
// added, or a lost majority.
func (f *formation) run(ctx context.Context) {
	tick := time.NewTicker(formationPoll)
	defer tick.Stop()
	for {
		var why error
		if hasState(f.raft) {
			why = f.lostMajority()
		} else {
			why = f.step(ctx)
		}
		f.setProblem(why)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// hasState reports whether the node of r already belongs to a raft
// cluster.
func hasState(r *raft.Raft) bool {
	return r.LastIndex() > 0 || len(r.GetConfiguration().Configuration().Servers) > 0
}

// problem says why this node cannot serve as far as forming the cluster
// goes, or nil.
func (f *formation) problem() error {
	if p := f.why.Load(); p != nil {
		return *p
	}
	return nil
}

// setProblem records why, logging it when it changes: a lost majority as
// an error, once.
func (f *formation) setProblem(why error) {
	var old error
	if p := f.why.Load(); p != nil {
		old = *p
	}
	if why == nil {
		f.why.Store(nil)
		if old != nil {
			f.log.Info("cluster formation settled", "was", old.Error())
		}
		return
	}
	f.why.Store(&why)
	if old != nil && old.Error() == why.Error() {
		return
	}
	var lost *lostMajorityError
	if errors.As(why, &lost) {
		f.log.Error(why.Error())
	} else {
		f.log.Info("not serving yet", "reason", why.Error())
	}
}

// lostMajority checks, on a node with state and no leader, whether a
// majority of its configuration's voters came back as new servers.
func (f *formation) lostMajority() error {
	if _, id := f.raft.LeaderWithID(); id != "" {
		return nil
	}
	var voters []raft.ServerID
	for _, s := range f.raft.GetConfiguration().Configuration().Servers {
		if s.Suffrage == raft.Voter {
			voters = append(voters, s.ID)
		}
	}
	return f.lostVoters(voters, "this node's", f.raft.LastIndex())
}

// lostVoters returns a lostMajorityError when a majority of voters are
// superseded (their nodes are alive under new raft ids), nil otherwise.
func (f *formation) lostVoters(voters []raft.ServerID, holder string, index uint64) error {
	e := &lostMajorityError{holder: holder, index: index}
	for _, v := range voters {
		node := f.members.nodeOf(v)
		e.voters = append(e.voters, node)
		if _, ok := f.members.superseded(v); ok {
			e.lost = append(e.lost, node)
		} else {
			e.survivors = append(e.survivors, node)
		}
	}
	if len(voters) == 0 || len(e.survivors) >= len(voters)/2+1 {
		return nil
	}
	slices.Sort(e.lost)
	slices.Sort(e.survivors)
	return e
}

// step is one attempt of a node without raft state to form the cluster;
// it returns why the node is not serving yet (nil once it bootstrapped).
func (f *formation) step(ctx context.Context) error {
	if f.expect == 0 {
		// Never forms a cluster; asks the peers only to say why it waits.
		f.vetoed = true
	}
	members := f.members.all()
	var servers []raft.Server
	var names []string
	var ask []member
	for _, m := range members {
		if m.ID != f.id && m.Status != serf.StatusLeft {
			ask = append(ask, m)
		}
		if m.Status != serf.StatusAlive {
			continue
		}
		if m.Expect != f.expect {
			if m.Expect != 0 && !f.warned[m.ID] {
				f.warned[m.ID] = true
				f.log.Warn("member expects a different cluster size", "member", m.ID, "expect", m.Expect, "mine", f.expect)
			}
			continue
		}
		servers = append(servers, raft.Server{ID: m.RaftID, Address: raft.ServerAddress(m.Raft), Suffrage: raft.Voter})
		names = append(names, m.ID)
	}
	answers := f.askState(ctx, ask)
	var unreachable []string
	var holders []*hangmanv1.StatusResponse
	for i, st := range answers {
		switch {
		case st == nil:
			unreachable = append(unreachable, ask[i].ID)
		case st.GetHasState():
			holders = append(holders, st)
		}
	}
	if len(holders) > 0 {
		return f.withHolders(holders)
	}
	if f.vetoed {
		return errWaitingToBeAdded
	}
	if len(servers) < f.expect {
		return fmt.Errorf("no raft state: waiting for %d nodes started with --bootstrap-expect %d to form a cluster (%d in sight: %s)",
			f.expect, f.expect, len(servers), strings.Join(names, ", "))
	}
	if len(unreachable) > 0 {
		slices.Sort(unreachable)
		return fmt.Errorf("no raft state: not forming a cluster until every known node says it has none (no answer from %s)", strings.Join(unreachable, ", "))
	}
	return f.bootstrap(raft.Configuration{Servers: servers})
}

// withHolders is step's answer when peers have raft state. A peer that
// bootstrapped a cluster this node belongs to (its log is that one
// configuration entry at index 1, and it lists this node's raft id)
// is the same formation, only a moment ahead: this node bootstraps with
// the very same configuration, so the first entry is the same everywhere.
// A peer further on that lists this node needs nothing from it: its
// leader replicates the log here. Any other peer with state vetoes
// forming a cluster for good, and this node waits to be added, saying why,
// or that a majority of the voters lost their data.
func (f *formation) withHolders(holders []*hangmanv1.StatusResponse) error {
	slices.SortFunc(holders, func(a, b *hangmanv1.StatusResponse) int {
		return -cmp.Compare(a.GetLastLogIndex(), b.GetLastLogIndex())
	})
	var lists []*hangmanv1.StatusResponse
	for _, h := range holders {
		for _, s := range h.GetConfiguration() {
			if s.GetId() == string(f.self) {
				lists = append(lists, h)
			}
		}
	}
	if len(lists) > 0 && !f.vetoed {
		return f.joinFormation(lists)
	}
	h := holders[0]
	if !f.vetoed {
		f.vetoed = true
		f.log.Info("a peer has raft state: this node will not form a cluster, and waits to be added by the leader",
			"peer", h.GetNodeId(), "last_index", h.GetLastLogIndex())
	}
	var voters []raft.ServerID
	for _, s := range h.GetConfiguration() {
		if s.GetSuffrage() == raft.Voter.String() {
			voters = append(voters, raft.ServerID(s.GetId()))
		}
	}
	if err := f.lostVoters(voters, h.GetNodeId()+"'s", h.GetLastLogIndex()); err != nil {
		return err
	}
	return fmt.Errorf("no raft state, and %s has (log index %d): not forming a new cluster; waiting to be added by the leader",
		h.GetNodeId(), h.GetLastLogIndex())
}

// joinFormation bootstraps this node with the configuration peers that
// list it bootstrapped with, when they are still at that first entry and
// agree on it; otherwise it waits for their leader.
func (f *formation) joinFormation(lists []*hangmanv1.StatusResponse) error {
	first := lists[0]
	for _, h := range lists {
		if h.GetLastLogIndex() != 1 {
			return fmt.Errorf("no raft state yet, but %s's raft configuration lists this node: waiting for the leader to replicate the log here", first.GetNodeId())
		}
		if !slices.EqualFunc(h.GetConfiguration(), first.GetConfiguration(), func(a, b *hangmanv1.RaftServer) bool {
			return a.GetId() == b.GetId() && a.GetAddress() == b.GetAddress() && a.GetSuffrage() == b.GetSuffrage()
		}) {
			return fmt.Errorf("peers %s and %s bootstrapped different raft configurations; not joining either: stop the nodes, wipe the data dirs of the new cluster and start again",
				first.GetNodeId(), h.GetNodeId())
		}
	}
	var c raft.Configuration
	for _, s := range first.GetConfiguration() {
		suffrage := raft.Voter
		if s.GetSuffrage() != raft.Voter.String() {
			suffrage = raft.Nonvoter
		}
		c.Servers = append(c.Servers, raft.Server{ID: raft.ServerID(s.GetId()), Address: raft.ServerAddress(s.GetAddress()), Suffrage: suffrage})
	}
	f.log.Info("a peer bootstrapped a cluster that lists this node: bootstrapping with the same configuration", "peer", first.GetNodeId())
	return f.bootstrap(c)
}

// bootstrap forms the cluster with configuration c, unless this node has
// state by now.
func (f *formation) bootstrap(c raft.Configuration) error {
	if hasState(f.raft) {
		return nil
	}
	if err := f.raft.BootstrapCluster(c).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
		return fmt.Errorf("bootstrap: %w", err)
	}
	ids := make([]string, len(c.Servers))
	for i, s := range c.Servers {
		ids[i] = string(s.ID)
	}
	f.log.Info("bootstrapped cluster", "raft_ids", ids)
	return nil
}

// askState asks every member in ms for its raft status, at once; a member
// that does not answer (or answers as someone else) has a nil answer.
func (f *formation) askState(ctx context.Context, ms []member) []*hangmanv1.StatusResponse {
	out := make([]*hangmanv1.StatusResponse, len(ms))
	var wg sync.WaitGroup
	for i, m := range ms {
		wg.Go(func() {
			st, err := f.peers.status(ctx, m)
			if err != nil {
				f.log.Debug("cannot ask a member for its raft state", "member", m.ID, "err", err)
				return
			}
			out[i] = st
		})
	}
	wg.Wait()
	return out
}
