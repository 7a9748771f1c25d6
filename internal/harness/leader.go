package harness

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
)

// statusTimeout bounds one node's answer to Leader: a paused or cut-off
// node must not hold up the question.
const statusTimeout = time.Second

// ErrNoLeader is wrapped by Leader's answer when no node says it leads,
// with what each node said instead.
var ErrNoLeader = errors.New("no node reports itself leader")

// Leader asks every node for its raft status and returns the index of the
// one that leads: of the nodes that say they lead, the one with the
// highest term (a deposed leader may not know it yet). A nil client is a
// node that is not running, and is not asked. When none leads, the error
// wraps ErrNoLeader and says, node by node, what each answered: a
// follower's state and term, or why the question failed.
func Leader(ctx context.Context, nodes []hangmanv1.ClusterServiceClient) (int, error) {
	best, term := -1, uint64(0)
	var said []string
	for i, c := range nodes {
		if c == nil {
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, statusTimeout)
		st, err := c.Status(sctx, &hangmanv1.StatusRequest{})
		cancel()
		switch {
		case err != nil:
			said = append(said, fmt.Sprintf("node %d: %v", i, err))
		case st.GetState() == "Leader" && st.GetTerm() >= term:
			best, term = i, st.GetTerm()
		default:
			said = append(said, fmt.Sprintf("node %d: %s in term %d", i, st.GetState(), st.GetTerm()))
		}
	}
	if best < 0 {
		return -1, fmt.Errorf("%w (%s)", ErrNoLeader, strings.Join(said, "; "))
	}
	return best, nil
}
