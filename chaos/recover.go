package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// The operator's recovery after a majority lost its disks (issue 14,
// DESIGN.md guarantee 6): `hangman node --recover PEERS.json` on the nodes
// that kept their data, with a file listing the servers of the new raft
// configuration, in the shape of Consul's peers.json. These declarations
// are the harness's only knowledge of that interface.
const recoverFlag = "--recover"

// recoveredMarkers are where a node records the peers files it applied:
// a node started again with a list it applied already does not apply it
// again, and the README's procedure for recovering the same node a second
// time with the same list is to delete them first.
const recoveredMarkers = "raft/recovered-*"

// recoveryPeer is one server of the recovery file: a JSON array of these.
type recoveryPeer struct {
	// ID is the node id (--id).
	ID string `json:"id"`
	// Address is the node's raft address (--raft-addr, host:port).
	Address string `json:"address"`
	// NonVoter lists the server without a vote (false: a voter).
	NonVoter bool `json:"non_voter,omitempty"`
}

// writePeersFile writes the recovery file listing nodes as voters, under
// dir, and returns its path.
func writePeersFile(dir string, nodes []*Node) (string, error) {
	peers := make([]recoveryPeer, len(nodes))
	for i, n := range nodes {
		peers[i] = recoveryPeer{ID: n.ID, Address: n.RaftAddr()}
	}
	data, err := json.MarshalIndent(peers, "", "  ")
	if err != nil {
		return "", fmt.Errorf("encode peers: %w", err)
	}
	path := filepath.Join(dir, fmt.Sprintf("recover-peers-%d.json", time.Now().UnixNano()))
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return "", fmt.Errorf("write peers file: %w", err)
	}
	return path, nil
}

// startRecovering starts n with the recovery flag. Whether the flag runs
// a one-shot repair that exits, or a node that recovers and goes on
// serving, is the implementation's choice: a process that exits 0 has done
// its repair and is started again as usual; one that answers Status runs.
func startRecovering(ctx context.Context, n *Node, peersPath string, bound time.Duration) error {
	// An earlier wipe-majority may have recovered this node with the same
	// list; this is a new disaster, so follow the README and clear that.
	earlier, err := filepath.Glob(filepath.Join(n.Dir, recoveredMarkers))
	if err != nil {
		return fmt.Errorf("find earlier recoveries of %s: %w", n.ID, err)
	}
	for _, m := range earlier {
		if err := os.Remove(m); err != nil {
			return fmt.Errorf("clear an earlier recovery of %s: %w", n.ID, err)
		}
	}
	if err := n.Proc.startWith(recoverFlag, peersPath); err != nil {
		return err
	}
	deadline := time.Now().Add(bound)
	for {
		if st := n.Proc.waitExit(100 * time.Millisecond); st != nil {
			if st.Success() {
				return n.Proc.start()
			}
			return fmt.Errorf("%s %s %s exited (%v): %s", n.ID, recoverFlag, peersPath, st, n.Proc.crashReport(6))
		}
		if _, err := n.status(ctx); err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s %s %s neither exited nor answered within %v", n.ID, recoverFlag, peersPath, bound)
		}
	}
}
