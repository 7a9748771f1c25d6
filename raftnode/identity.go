package raftnode

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// A node has two names. Its node id (Config.ID) is what operators, serf,
// NATS and the API use; it survives anything. Its raft server id names one
// incarnation of its raft state, the data dir: a data dir created afresh
// gets a new one ("<node-id>-<16 hex digits>", kept in raft/server-id), so
// a node that lost its disk comes back as a new raft server and can never
// vote under its old id with a forgotten term and vote (Raft's safety
// rests on votes being durable). A data dir that has raft state but no
// id file predates this scheme and keeps raft id == node id.
//
// The member table (serf.go) is the one place that maps between the two:
// every node gossips its raft id as a serf tag.

// raftIDFile holds the raft server id, next to the raft log.
const raftIDFile = "server-id"

// raftIDRandomHex is how many hex digits follow "<node-id>-" in a raft id.
const raftIDRandomHex = 16

// newRaftID makes the raft server id of a new incarnation of nodeID.
func newRaftID(nodeID string) (raft.ServerID, error) {
	b := make([]byte, raftIDRandomHex/2)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random raft server id: %w", err)
	}
	return raft.ServerID(nodeID + "-" + hex.EncodeToString(b)), nil
}

// nodeOfRaftID is the node id a raft server id was made for, read from the
// id itself: "<node-id>-<16 hex>" gives node-id, anything else (an id from
// before raft ids were per data dir) is the node id itself. The member
// table answers from gossip first (memberTable.nodeOf); this is for ids no
// live node gossips any more.
func nodeOfRaftID(id raft.ServerID) string {
	s := string(id)
	i := len(s) - raftIDRandomHex - 1
	if i < 1 || s[i] != '-' {
		return s
	}
	for _, c := range s[i+1:] {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return s
		}
	}
	return s[:i]
}

// loadRaftID returns the raft server id of the data dir whose raft state is
// logs and stable (raftDir holds the id file). A data dir without raft
// state (no term, no log entry) gets a new id, written before raft ever
// runs under it: whatever was there before, raft votes and terms cast under
// an older id are not on this disk, so that id must not be used again. A
// snapshot alone does not count as state here, since the term and vote are
// kept in the log store: a node left with snapshots only comes back as a
// new server too (and restores its data from them).
func loadRaftID(raftDir, nodeID string, logs raft.LogStore, stable raft.StableStore, log *slog.Logger) (raft.ServerID, error) {
	hasState, err := raft.HasExistingState(logs, stable, raft.NewDiscardSnapshotStore())
	if err != nil {
		return "", fmt.Errorf("read raft state: %w", err)
	}
	path := filepath.Join(raftDir, raftIDFile)
	if !hasState {
		id, err := newRaftID(nodeID)
		if err != nil {
			return "", err
		}
		if err := writeFileSync(path, []byte(string(id)+"\n")); err != nil {
			return "", fmt.Errorf("write raft server id: %w", err)
		}
		log.Info("no raft state in the data dir: this node is a new raft server", "raft_id", id)
		return id, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return raft.ServerID(nodeID), nil
	}
	if err != nil {
		return "", fmt.Errorf("read raft server id: %w", err)
	}
	id := strings.TrimSpace(string(b))
	if id == "" || strings.ContainsAny(id, " \t\r\n") {
		return "", fmt.Errorf("raft server id file %s is damaged (%q): it must hold the id this data dir's raft state was written under", path, b)
	}
	if nodeOfRaftID(raft.ServerID(id)) != nodeID {
		return "", fmt.Errorf("data dir belongs to node %q (raft server id %s in %s), not to node %q: start it with --id %s",
			nodeOfRaftID(raft.ServerID(id)), id, path, nodeID, nodeOfRaftID(raft.ServerID(id)))
	}
	return raft.ServerID(id), nil
}

// writeFileSync writes a small file durably: to a temporary file, synced,
// renamed over path, with the directory synced.
func writeFileSync(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// identity is this node as raft sees it: its raft server id, and how it
// finds the address of another server by its id.
type identity struct {
	raftID  raft.ServerID
	addr    raft.ServerAddress // this node's advertised raft address
	members *memberTable
	// raft is set once raft runs; until then votes are refused and
	// addresses come from gossip only.
	raft atomic.Pointer[raft.Raft]
	log  *slog.Logger
}

// ServerAddr resolves a raft server id to the address it can be reached
// at now, at every dial (raft.ServerAddressProvider): the raft address its
// node gossips, else the address stored in the raft configuration. A node
// is its id, not its address: the stored address goes stale when every
// node restarts on new addresses (containers and pods get new IPs), and a
// follower cannot update it, only a leader could, and no leader can be
// elected while every node dials stale addresses.
func (id *identity) ServerAddr(sid raft.ServerID) (raft.ServerAddress, error) {
	if sid == id.raftID {
		return id.addr, nil
	}
	if m, ok := id.members.byRaftID(sid); ok && m.Raft != "" {
		return raft.ServerAddress(m.Raft), nil
	}
	if r := id.raft.Load(); r != nil {
		for _, s := range r.GetConfiguration().Configuration().Servers {
			if s.ID == sid {
				return s.Address, nil
			}
		}
	}
	return "", fmt.Errorf("no address known for raft server %s", sid)
}

// isVoter reports whether this server is a voter of the latest raft
// configuration it knows (false before raft runs).
func (id *identity) isVoter() bool {
	r := id.raft.Load()
	if r == nil {
		return false
	}
	for _, s := range r.GetConfiguration().Configuration().Servers {
		if s.ID == id.raftID {
			return s.Suffrage == raft.Voter
		}
	}
	return false
}

// currentTerm is raft's current term, 0 before raft runs.
func (id *identity) currentTerm() uint64 {
	if r := id.raft.Load(); r != nil {
		return r.CurrentTerm()
	}
	return 0
}

// raftTransport is raft's transport with two rules added where RPCs
// arrive. Only routine heartbeats take raft's fast path
// (SetHeartbeatHandler). And a server that is not a voter of its own
// latest configuration answers every vote and pre-vote request with a
// refusal itself, and raft never sees the request. Refusing a vote is
// always safe in Raft; what this rules out:
//
//   - a node with an empty log (a wiped disk, a node waiting to be added)
//     granting votes: hashicorp/raft grants any vote while its
//     configuration is empty, as if the cluster were being bootstrapped;
//   - a new raft server answering a vote request meant for the server that
//     used to listen at its address (its node's old incarnation, which is
//     still in other nodes' configurations until the leader removes it):
//     the candidate would count the answer as the old server's vote.
//
// A new server becomes a voter only once the leader has removed the old
// incarnation from the configuration (autopilot.go); after that, a
// candidate that still counts the old id has a log without that committed
// removal, so the new server, whose log has it, never grants it a vote.
//
// It wraps whatever carries the RPCs (baseTransport), so the rules, and
// the refusal to pipeline below, hold for a transport a test injects too.
type raftTransport struct {
	baseTransport
	ident *identity

	startOnce sync.Once
	out       chan raft.RPC
	done      chan struct{}
	closeOnce sync.Once
}

// baseTransport is what carries raft's RPCs under raftTransport: a
// raft.NetworkTransport over TCP or TLS in production, a
// raft.InmemTransport in tests (Config.raftTransport). Raft sends
// pre-votes only through a transport that has RequestPreVote, and closes
// on shutdown only one that has Close, so both are required here: the
// wrapper must not hide them.
type baseTransport interface {
	raft.Transport
	raft.WithPreVote
	raft.WithClose
}

func newRaftTransportGuard(t baseTransport, ident *identity) *raftTransport {
	return &raftTransport{baseTransport: t, ident: ident, out: make(chan raft.RPC), done: make(chan struct{})}
}

// AppendEntriesPipeline refuses, so raft replicates to every follower
// with one AppendEntries at a time. hashicorp/raft's pipelined
// replication can deadlock when a follower answers an append with
// Success=false, as one with a full disk does (hashicorp/raft#612): the
// pipeline's decoder ends while its sender is parked on the next send, so
// the leader's replicator for that follower stops for good while its
// heartbeats go on, and the follower, which never times out, is never sent
// another entry until the leader restarts. One append in flight per
// follower costs some throughput to a follower far away; the batcher's
// batches keep the hot path's entries per append high.
func (t *raftTransport) AppendEntriesPipeline(raft.ServerID, raft.ServerAddress) (raft.AppendPipeline, error) {
	return nil, raft.ErrPipelineReplicationNotSupported
}

// SetHeartbeatHandler installs raft's fast path for heartbeats, which
// raft answers on the transport's goroutine so that they never wait
// behind the disk, for the heartbeats that cannot change this server's
// term or role: those of its current term while it follows. Every other
// heartbeat goes to raft's main loop with the other RPCs.
//
// hashicorp/raft 1.8 runs its whole appendEntries handler on the fast
// path, the term change and the step-down included, beside the main loop
// (hashicorp/raft#695). A leader deposed there is still parked in the
// leader's select, takes the next command and writes it under the new
// term, at an index where the new term's leader wrote another: the two
// logs agree on every term and differ in content, so no replica notices,
// and each applies its own. The chaos suite saw it after a SIGSTOP and
// SIGCONT of the leader, whose first read was the new leader's heartbeat.
func (t *raftTransport) SetHeartbeatHandler(fn func(raft.RPC)) {
	if fn == nil {
		t.baseTransport.SetHeartbeatHandler(nil)
		return
	}
	t.baseTransport.SetHeartbeatHandler(func(rpc raft.RPC) {
		if r := t.ident.raft.Load(); r != nil && routineHeartbeat(r.State(), r.CurrentTerm(), rpc) {
			fn(rpc)
			return
		}
		select {
		case t.out <- rpc:
		case <-t.done:
			rpc.Respond(nil, raft.ErrTransportShutdown)
		}
	})
}

// routineHeartbeat reports whether a heartbeat can only confirm what a
// server in state with term knows: it follows, and the heartbeat is of
// its term. Terms only grow, so a heartbeat that passes here cannot raise
// the term however the main loop moves on meanwhile (an older one is
// refused without a change).
func routineHeartbeat(state raft.RaftState, term uint64, rpc raft.RPC) bool {
	req, ok := rpc.Command.(*raft.AppendEntriesRequest)
	return ok && state == raft.Follower && req.Term == term
}

// Consumer is what raft reads incoming RPCs from: the transport's, less
// the vote requests this server refuses.
func (t *raftTransport) Consumer() <-chan raft.RPC {
	t.startOnce.Do(func() { go t.filter(t.baseTransport.Consumer()) })
	return t.out
}

func (t *raftTransport) filter(in <-chan raft.RPC) {
	for {
		select {
		case <-t.done:
			return
		case rpc := <-in:
			if t.refused(rpc) {
				continue
			}
			select {
			case t.out <- rpc:
			case <-t.done:
				return
			}
		}
	}
}

// refused answers rpc itself when it asks for a vote this server must not
// give, and says so.
func (t *raftTransport) refused(rpc raft.RPC) bool {
	var candidate []byte
	var term uint64
	switch req := rpc.Command.(type) {
	case *raft.RequestVoteRequest:
		candidate, term = req.ID, req.Term
	case *raft.RequestPreVoteRequest:
		candidate, term = req.ID, req.Term
	default:
		return false
	}
	if t.ident.isVoter() {
		return false
	}
	header := raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(t.ident.raftID), Addr: []byte(t.ident.addr)}
	current := t.ident.currentTerm()
	if _, pre := rpc.Command.(*raft.RequestPreVoteRequest); pre {
		rpc.Respond(&raft.RequestPreVoteResponse{RPCHeader: header, Term: current}, nil)
	} else {
		rpc.Respond(&raft.RequestVoteResponse{RPCHeader: header, Term: current}, nil)
	}
	t.ident.log.Debug("refused a vote: this server is not a voter of its raft configuration", "candidate", string(candidate), "term", term)
	return true
}

// Close stops the transport (raft calls it on shutdown, and so does
// Node.Close).
func (t *raftTransport) Close() error {
	t.closeOnce.Do(func() { close(t.done) })
	return t.baseTransport.Close()
}

// advertiseAddr is an advertised host:port as raft's stream layer reports
// it: kept as given, a DNS name included, since it is what peers store
// and dial.
type advertiseAddr string

// Network is always tcp.
func (advertiseAddr) Network() string { return "tcp" }

// String is the host:port.
func (a advertiseAddr) String() string { return string(a) }

var _ net.Addr = advertiseAddr("")

// resolveIP returns host if it is an IP, else the first address it
// resolves to (IPv4 preferred), for what needs an IP: gossip.
func resolveIP(host string) (string, error) {
	if net.ParseIP(host) != nil {
		return host, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return "", fmt.Errorf("resolve %q: %w", host, err)
	}
	for _, ip := range ips {
		if ip.IP.To4() != nil {
			return ip.IP.String(), nil
		}
	}
	if len(ips) == 0 {
		return "", fmt.Errorf("resolve %q: no addresses", host)
	}
	return ips[0].IP.String(), nil
}
