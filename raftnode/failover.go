package raftnode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"syscall"
	"time"

	"github.com/hashicorp/raft"
)

// Fast failover after a leader's process died (DESIGN.md, guarantee 7).
//
// A follower cannot tell a leader that died from one that is merely
// starved of CPU by its silence alone: both stop heartbeating. The raft
// timeouts are therefore sized for a busy machine (a second, config.go),
// and a follower does not call an election on silence shorter than that.
// But a leader whose process is gone leaves a definite trace: its raft
// port refuses connections, or, when its network went with it (a killed
// container), the connections it had opened to this follower were closed
// from its end and its port does not answer. A starved or paused process
// leaves neither: the kernel keeps its connections open and answers on
// its port; nor does a leader cut off by the network, whose connections
// stay open. So a follower that has not heard from its leader for a
// fraction of the heartbeat timeout dials the leader's raft port, and when
// the leader is gone, it may stand for election at once, as the target of
// a leadership transfer does (raft's TimeoutNow): its vote request is
// granted by voters that have not yet noticed the loss, if its log is up
// to date. Like ZooKeeper's followers, which look for a new leader as soon
// as the old one's connection breaks, this turns a crash into a failover
// of a few round trips, while a starved, paused or partitioned leader
// still gets the whole heartbeat timeout and pre-vote's protection.
//
// Survivors must not split the vote by standing together, nor stand with
// a log the others refuse. So they take turns, in ID order among the
// voters, stagger apart; a survivor that sees the vote request of one
// whose log is behind its own (which it refuses) stands at once instead
// of waiting for its turn; and one that sees a candidate it would vote
// for leaves the election to it.

// crashWatch decides when this follower stands for election because the
// leader it knew is gone. It reads nothing itself, so tests drive it.
type crashWatch struct {
	self    raft.ServerID
	suspect time.Duration // silence after which the leader is probed
	stagger time.Duration // between the survivors' turns

	leader     raft.ServerID
	leaderAddr raft.ServerAddress
	// goneSince is when a probe first found the leader's port closed;
	// zero while it has not.
	goneSince time.Time
	// stood: this node called an election for the lost leader; yielded:
	// it saw a candidate it would vote for. Either ends its part.
	stood, yielded bool
}

// crashTiming is when a follower probes and stands, from the heartbeat
// timeout ht: it probes once it has heard nothing for ht/4 (a leader
// heartbeats every ht/10 to ht/5), every ht/20, giving the leader's
// kernel ht/10 to answer (it answers for a starved or paused process in
// far less), and the survivors' turns come ht/2 apart, longer than a vote
// request takes on a starved machine.
func crashTiming(ht time.Duration) (suspect, every, probe, stagger time.Duration) {
	return ht / 4, ht / 20, ht / 10, ht / 2
}

// follower is what the watch reads of this node's raft.
type follower struct {
	// leader and leaderAddr are the leader raft knows, if any.
	leader     raft.ServerID
	leaderAddr raft.ServerAddress
	// following is whether raft is in the follower state.
	following bool
	// silence is the time since the leader was last heard from.
	silence time.Duration
}

// observe records the leader raft knows and whether it is heard from. It
// reports whether the watch has a lost leader to act on.
func (w *crashWatch) observe(f follower) bool {
	if f.leader != "" && f.leader != w.leader {
		*w = crashWatch{self: w.self, suspect: w.suspect, stagger: w.stagger, leader: f.leader, leaderAddr: f.leaderAddr}
	}
	if f.silence < w.suspect {
		w.goneSince, w.stood, w.yielded = time.Time{}, false, false
		return false
	}
	return !w.stood && !w.yielded && f.following && w.leader != "" && w.leader != w.self
}

// tick says whether to stand now: the leader is gone (gone looks) and it
// is this node's turn (turn returns its place among the
// surviving voters, -1 if it is not one).
func (w *crashWatch) tick(now time.Time, f follower, turn func() int, gone func() bool) bool {
	if !w.observe(f) {
		return false
	}
	if !gone() {
		w.goneSince = time.Time{}
		return false
	}
	if w.goneSince.IsZero() {
		w.goneSince = now
	}
	if t := turn(); t < 0 || now.Sub(w.goneSince) < time.Duration(t)*w.stagger {
		return false
	}
	w.stood = true
	return true
}

// vote says whether to stand now, on seeing a request for votes: at once
// if the candidate's log is behind this node's (it refused the vote, so
// the candidate may not win), the leader is gone and this node is a
// voter; never for this lost leader if this node would vote for the
// candidate.
func (w *crashWatch) vote(f follower, req raft.RequestVoteRequest, lastTerm, lastIndex uint64, turn func() int, gone func() bool) bool {
	if !w.observe(f) {
		return false
	}
	behind := req.LastLogTerm < lastTerm || req.LastLogTerm == lastTerm && req.LastLogIndex < lastIndex
	if !behind {
		w.yielded = true
		return false
	}
	if turn() < 0 || !gone() {
		return false
	}
	w.stood = true
	return true
}

// failover runs the fast failover on a follower: it reads raft and the
// leader's port, and stands for election through its own transport. It is
// apart from Node so that what it touches is in sight.
type failover struct {
	raft *raft.Raft
	// ident is this node's raft server id and address, and where raft
	// dials a server now.
	ident *identity
	// logs is this node's raft log, whose last entry a vote compares.
	logs      raft.LogStore
	transport *raftTransport
	// layer tells a leader that closed its connections to this node.
	layer     *cuttableLayer
	heartbeat time.Duration // raft's heartbeat timeout
	log       *slog.Logger
}

// run watches for a lost leader and stands when it is this node's turn.
func (fo *failover) run(ctx context.Context) {
	suspect, every, probe, stagger := crashTiming(fo.heartbeat)
	w := crashWatch{self: fo.ident.raftID, suspect: suspect, stagger: stagger}
	votes, stop := observe[raft.RequestVoteRequest](fo.raft, 8)
	defer stop()
	tick := time.NewTicker(every)
	defer tick.Stop()
	// The leader's IPs, resolved while it is alive: a container's name
	// may stop resolving once it is gone.
	var (
		resolved raft.ServerAddress
		ips      []net.IP
	)
	gone := func() bool {
		refused, answered := probePort(string(w.leaderAddr), probe)
		if refused || answered || resolved != w.leaderAddr {
			return refused
		}
		return fo.layer.peerClosedSince(ips, fo.raft.LastContact().Add(-suspect))
	}
	turn := func() int { return fo.successorTurn(w.leader) }
	for {
		var stand bool
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			f := fo.followerState()
			if f.leader != "" && f.leaderAddr != resolved && f.silence < suspect {
				resolved, ips = f.leaderAddr, resolveHost(ctx, string(f.leaderAddr), suspect)
			}
			stand = w.tick(time.Now(), f, turn, gone)
		case o := <-votes:
			req := o.Data.(raft.RequestVoteRequest)
			if term, index, err := fo.lastLog(); err == nil {
				stand = w.vote(fo.followerState(), req, term, index, turn, gone)
			}
		}
		if !stand {
			continue
		}
		fo.log.Warn("the leader's process is gone (its raft port refuses connections, or it closed its connections and does not answer); calling an election now",
			"leader", w.leader, "addr", w.leaderAddr)
		if err := fo.electNow(); err != nil {
			fo.log.Warn("could not call an election; raft's heartbeat timeout will", "err", err)
		}
	}
}

// followerState reads what crashWatch needs of raft. The leader's address
// is the one its node gossips now, as raft dials it (identity.ServerAddr).
func (fo *failover) followerState() follower {
	addr, id := fo.raft.LeaderWithID()
	if id != "" {
		if now, err := fo.ident.ServerAddr(id); err == nil {
			addr = now
		}
	}
	return follower{leader: id, leaderAddr: addr, following: fo.raft.State() == raft.Follower,
		silence: time.Since(fo.raft.LastContact())}
}

// lastLog returns the term and index of this node's last log entry, what
// raft compares to grant a vote.
func (fo *failover) lastLog() (term, index uint64, err error) {
	index = fo.raft.LastIndex()
	var l raft.Log
	if err := fo.logs.GetLog(index, &l); err != nil {
		return 0, 0, fmt.Errorf("read last log entry %d: %w", index, err)
	}
	return l.Term, index, nil
}

// probePort dials addr: refused means no process listens there; answered,
// that one does (alive, if perhaps starved or paused). Neither: no answer
// in time, or no route.
func probePort(addr string, timeout time.Duration) (refused, answered bool) {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err == nil {
		_ = conn.Close()
		return false, true
	}
	return errors.Is(err, syscall.ECONNREFUSED), false
}

// resolveHost returns the IPs of addr's host, none if it does not resolve
// within timeout.
func resolveHost(ctx context.Context, addr string, timeout time.Duration) []net.IP {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil {
		return []net.IP{ip}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return nil
	}
	ips := make([]net.IP, len(addrs))
	for i, a := range addrs {
		ips[i] = a.IP
	}
	return ips
}

// successorTurn is this node's place among the voters other than the dead
// leader, in ID order, or -1 if it is not one of them.
func (fo *failover) successorTurn(dead raft.ServerID) int {
	f := fo.raft.GetConfiguration()
	if f.Error() != nil {
		return -1
	}
	var ids []string
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter && s.ID != dead {
			ids = append(ids, string(s.ID))
		}
	}
	slices.Sort(ids)
	return slices.Index(ids, string(fo.ident.raftID))
}

// electNow makes this node's raft a candidate at once, through the RPC a
// leader sends the target of a leadership transfer, addressed to itself.
func (fo *failover) electNow() error {
	self, addr := fo.ident.raftID, fo.ident.addr
	req := &raft.TimeoutNowRequest{RPCHeader: raft.RPCHeader{
		ProtocolVersion: raft.ProtocolVersionMax,
		ID:              []byte(self),
		Addr:            fo.transport.EncodePeer(self, addr),
	}}
	if err := fo.transport.TimeoutNow(self, addr, req, &raft.TimeoutNowResponse{}); err != nil {
		return fmt.Errorf("timeout-now to itself: %w", err)
	}
	return nil
}
