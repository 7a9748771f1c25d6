package raftnode

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/raft"
)

// When a majority of a cluster's voters lost their data, no leader can be
// elected and nothing automatic may change that (formation.go). The way
// back is an operator's act, as with Consul's peers.json: on each node that
// kept its data, `hangman node --recover PEERS.json` rewrites the raft
// configuration to the servers the file lists (raft.RecoverCluster: the
// node's log is replayed into a snapshot that carries the new
// configuration), then the node starts normally. Once a listed voter
// majority runs, it elects a leader, and the nodes that lost their data
// join as new servers, non-voters first, promoted once caught up.
//
// Recovery commits whatever the survivors' logs hold, including entries
// that were never acknowledged; entries acknowledged only by the nodes that
// lost their disks are gone. The file is read and checked before anything
// is touched, and a file applied once is not applied again by a restart
// with the same flag (a marker in the raft directory records it).

// Peers is a parsed peers file: the servers of a recovered configuration.
type Peers struct {
	// Path is where the file was read from, for messages (or what else
	// the list came from).
	Path string
	// Servers are the file's entries, in order.
	Servers []Peer
	// digest identifies the file's content, for the applied-once marker.
	digest string
}

// Peer is one entry of a peers file, in the format of Consul's peers.json
// (version 3): id, address, non_voter.
type Peer struct {
	// ID is a node id, or a raft server id of the node's configuration.
	ID string `json:"id"`
	// Address is the server's raft address; empty takes the one in the
	// node's raft configuration (or its own, for itself).
	Address string `json:"address,omitempty"`
	// NonVoter makes the server a non-voter.
	NonVoter bool `json:"non_voter,omitempty"`
}

// ReadPeersFile reads and checks a peers file (see ParsePeers). It only
// reads.
func ReadPeersFile(path string) (*Peers, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("peers file: %w", err)
	}
	return ParsePeers(path, b)
}

// ParsePeers checks a peers list: a JSON array of at least one entry, with
// ids that are set and distinct, valid addresses, and at least one voter.
// path names where it came from, in messages.
func ParsePeers(path string, b []byte) (*Peers, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var servers []Peer
	if err := dec.Decode(&servers); err != nil {
		return nil, fmt.Errorf("peers file %s: want a JSON array like [{\"id\": \"node1\"}, {\"id\": \"node2\", \"address\": \"10.0.0.2:7001\"}]: %w", path, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("peers file %s: unexpected data after the JSON array", path)
	}
	if len(servers) == 0 {
		return nil, fmt.Errorf("peers file %s lists no servers", path)
	}
	seen := make(map[string]bool)
	voters := 0
	for i, p := range servers {
		if strings.TrimSpace(p.ID) == "" || p.ID != strings.TrimSpace(p.ID) {
			return nil, fmt.Errorf("peers file %s: entry %d has no id (or one with surrounding spaces)", path, i+1)
		}
		if seen[p.ID] {
			return nil, fmt.Errorf("peers file %s lists %q twice", path, p.ID)
		}
		seen[p.ID] = true
		if p.Address != "" {
			if _, _, err := net.SplitHostPort(p.Address); err != nil {
				return nil, fmt.Errorf("peers file %s: address %q of %q: %w", path, p.Address, p.ID, err)
			}
		}
		if !p.NonVoter {
			voters++
		}
	}
	if voters == 0 {
		return nil, fmt.Errorf("peers file %s lists no voter", path)
	}
	sum := sha256.Sum256(b)
	return &Peers{Path: path, Servers: servers, digest: hex.EncodeToString(sum[:8])}, nil
}

// recoverCluster applies cfg.Recover, if set, to the raft state in
// raftDir before raft starts. rc is the raft configuration the node will
// run with.
func (n *Node) recoverCluster(rc *raft.Config, raftDir string, logs raft.LogStore, stable raft.StableStore, snaps raft.SnapshotStore) error {
	p := n.cfg.Recover
	if p == nil {
		return nil
	}
	marker := filepath.Join(raftDir, "recovered-"+p.digest)
	if b, err := os.ReadFile(marker); err == nil {
		n.log.Warn("this peers file was already applied; starting normally (remove --recover; delete the marker to apply the file again)",
			"peers", p.Path, "marker", marker, "applied", strings.TrimSpace(string(b)))
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("recover: %w", err)
	}
	hasState, err := raft.HasExistingState(logs, stable, snaps)
	if err != nil {
		return fmt.Errorf("recover: read raft state: %w", err)
	}
	if !hasState {
		// Nothing to rewrite: this node joins the recovered cluster as a
		// new server by itself. Starting normally lets one setting (a
		// StatefulSet's environment) serve every node.
		n.log.Warn("--recover: this data dir has no raft state, so there is nothing to recover here; starting normally, to join as a new server", "peers", p.Path)
		return nil
	}
	_, trans := raft.NewInmemTransport("")
	readConf := *rc
	current, err := raft.GetConfiguration(&readConf, newFSM(), logs, stable, snaps, trans)
	if err != nil {
		return fmt.Errorf("recover: read the raft configuration: %w", err)
	}
	servers, err := n.resolvePeers(p, current)
	if err != nil {
		return err
	}
	last, err := logs.LastIndex()
	if err != nil {
		return fmt.Errorf("recover: read the raft log: %w", err)
	}
	recoverConf := *rc
	if err := raft.RecoverCluster(&recoverConf, newFSM(), logs, stable, snaps, trans, raft.Configuration{Servers: servers}); err != nil {
		return fmt.Errorf("recover with %s: %w", p.Path, err)
	}
	record := fmt.Sprintf("%s %s", time.Now().UTC().Format(time.RFC3339), p.Path)
	if err := writeFileSync(marker, []byte(record+"\n")); err != nil {
		return fmt.Errorf("recover: record that %s was applied: %w", p.Path, err)
	}
	ids := make([]string, len(servers))
	for i, s := range servers {
		ids[i] = fmt.Sprintf("%s (%s)", s.ID, s.Suffrage)
	}
	n.log.Warn("recovered the raft configuration from a peers file: everything in this node's log is now committed",
		"peers", p.Path, "servers", ids, "was", len(current.Servers), "last_index", last)
	return nil
}

// resolvePeers maps a peers file's entries to raft servers, by this node's
// configuration: an entry names this node, or a server of it by raft id
// or by node id.
func (n *Node) resolvePeers(p *Peers, current raft.Configuration) ([]raft.Server, error) {
	var out []raft.Server
	seen := make(map[raft.ServerID]string)
	self := false
	for _, e := range p.Servers {
		var s raft.Server
		switch {
		case e.ID == n.cfg.ID || e.ID == string(n.ident.raftID):
			s = raft.Server{ID: n.ident.raftID, Address: n.ident.addr}
			self = true
		default:
			var byNode []raft.Server
			for _, c := range current.Servers {
				if string(c.ID) == e.ID {
					byNode = []raft.Server{c}
					break
				}
				if nodeOfRaftID(c.ID) == e.ID {
					byNode = append(byNode, c)
				}
			}
			switch len(byNode) {
			case 0:
				return nil, fmt.Errorf("peers file %s: %q is neither this node nor a server of its raft configuration (%s)", p.Path, e.ID, describeServers(current))
			case 1:
				s = byNode[0]
			default:
				return nil, fmt.Errorf("peers file %s: node %q has several raft servers in this node's configuration (%s): name one by its raft id", p.Path, e.ID, describeServers(current))
			}
		}
		if prev, dup := seen[s.ID]; dup {
			return nil, fmt.Errorf("peers file %s: %q and %q are the same raft server %s", p.Path, prev, e.ID, s.ID)
		}
		seen[s.ID] = e.ID
		if e.Address != "" {
			s.Address = raft.ServerAddress(e.Address)
		}
		s.Suffrage = raft.Voter
		if e.NonVoter {
			s.Suffrage = raft.Nonvoter
		}
		out = append(out, s)
	}
	if !self {
		return nil, fmt.Errorf("peers file %s does not list this node (%s): run --recover only on nodes the recovered configuration keeps", p.Path, n.cfg.ID)
	}
	return out, nil
}

// describeServers lists a configuration's servers for messages.
func describeServers(c raft.Configuration) string {
	if len(c.Servers) == 0 {
		return "it has none"
	}
	parts := make([]string, len(c.Servers))
	for i, s := range c.Servers {
		parts[i] = fmt.Sprintf("%s of node %s, %s", s.ID, nodeOfRaftID(s.ID), s.Suffrage)
	}
	return strings.Join(parts, "; ")
}
