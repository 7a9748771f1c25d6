package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"runtime"
	"slices"
	"syscall"
	"time"

	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
)

// The faults of a whole cluster's life: new addresses, a starved CPU, a
// long pause (issues 14 and 15).

// readdressAll stops every node and relay, gives every node a new IP,
// and starts them all again on the same data, as `docker compose down`
// and `up` (or pods recreated) do. A leader must be back within
// ReaddressBound with every room as it was; if none is, the old addresses
// come back so that the run goes on.
func (f *injector) readdressAll(ctx context.Context) (string, error) {
	lab := f.lab
	before, err := f.listRooms(ctx)
	if err != nil {
		return "", fmt.Errorf("rooms before: %w", err)
	}
	old := make([]string, len(lab.Nodes))
	for i, n := range lab.Nodes {
		old[i] = n.IP()
	}
	f.gen++
	fresh := make([]string, len(lab.Nodes))
	for i := range lab.Nodes {
		fresh[i] = lab.net.address(i, f.gen)
	}
	if err := f.moveAll(ctx, fresh); err != nil {
		return "", err
	}
	what := fmt.Sprintf("restarted every node on new addresses %v", fresh)
	if _, err := lab.WaitLeader(ctx, f.cfg.ReaddressBound); err != nil {
		f.expect(FaultReaddressAll, "no leader %v after every node restarted on a new address: %v", f.cfg.ReaddressBound, err)
		return what + "; no leader, moved back to the old addresses", f.moveAll(ctx, old)
	}
	after, err := f.listRooms(ctx)
	if err != nil {
		f.expect(FaultReaddressAll, "rooms unreadable after the restart on new addresses: %v", err)
		return what, nil
	}
	f.roomsKept(FaultReaddressAll, before, after)
	return what, nil
}

// roomsKept reports, as a failure of kind, the rooms of before that after
// lacks or holds at a lower seq.
func (f *injector) roomsKept(kind FaultKind, before, after map[string]uint64) {
	var missing []string
	for room, seq := range before {
		if a, ok := after[room]; !ok || a < seq {
			missing = append(missing, fmt.Sprintf("%s (seq %d, now %d)", room, seq, a))
		}
	}
	if len(missing) > 0 {
		f.expect(kind, "rooms lost or gone back after the restart on new addresses: %s", clipList(missing, 10))
	}
}

// readdressRolling moves the nodes to new IPs one after the other, as a
// rolling replacement of containers or pods does, and leaves the relays
// running: they were started with the old IPs, so once the last node moved
// none of their --grpc addresses reaches a node, and they serve only if
// they followed the cluster (relay/follow.go). After each move the moved
// node must be ready within RejoinBound, and at the end every relay
// must reach every node at its new address, know a leader and be ready.
func (f *injector) readdressRolling(ctx context.Context) (string, error) {
	lab := f.lab
	before, err := f.listRooms(ctx)
	if err != nil {
		return "", fmt.Errorf("rooms before: %w", err)
	}
	f.gen++
	fresh := make([]string, len(lab.Nodes))
	for i, n := range lab.Nodes {
		fresh[i] = lab.net.address(i, f.gen)
		n.Proc.stop(5 * time.Second)
		if err := f.readdress(i, fresh[i]); err != nil {
			return "", err
		}
		if err := f.startNode(n); err != nil {
			return "", err
		}
		// A node that moved alone rejoins, as a killed one does, within
		// RejoinBound: its peers find its old incarnation dead and take
		// the new address, and the leader's replication to it, which
		// raft backs off up to ten seconds while the old address fails,
		// reaches it at its next attempt.
		if err := f.waitNodeReady(ctx, n, f.cfg.RejoinBound); err != nil {
			f.expect(FaultReaddressRoll, "%s not ready %v after it moved to %s: %v", n.ID, f.cfg.RejoinBound, fresh[i], err)
		}
	}
	what := fmt.Sprintf("moved the nodes one at a time to %v, relays left running", fresh)
	if _, err := lab.WaitLeader(ctx, f.cfg.ReaddressBound); err != nil {
		f.expect(FaultReaddressRoll, "no leader %v after every node moved: %v", f.cfg.ReaddressBound, err)
		return what, nil
	}
	var want []string
	for _, n := range lab.Nodes {
		want = append(want, n.GRPCAddr())
	}
	for _, r := range lab.Relays {
		if err := waitRelayFollows(ctx, r, want, f.cfg.ReaddressBound); err != nil {
			f.expect(FaultReaddressRoll, "relay %s did not follow the nodes to %v within %v: %v", r.Name, want, f.cfg.ReaddressBound, err)
		}
	}
	after, err := f.listRooms(ctx)
	if err != nil {
		f.expect(FaultReaddressRoll, "rooms unreadable after the nodes moved: %v", err)
		return what, nil
	}
	f.roomsKept(FaultReaddressRoll, before, after)
	return what, nil
}

// waitNodeReady waits until node n's /readyz answers 200.
func (f *injector) waitNodeReady(ctx context.Context, n *Node, bound time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	for {
		err := n.readyz(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// relayReadyz is what the lab reads of a relay's /readyz.
type relayReadyz struct {
	Ready  bool              `json:"ready"`
	Leader bool              `json:"leader"`
	Nodes  map[string]string `json:"nodes"`
}

// waitRelayFollows waits until relay r is ready, knows a leader and holds
// a ready connection to every address of want.
func waitRelayFollows(ctx context.Context, r *Relay, want []string, bound time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	var last relayReadyz
	for {
		st, err := readRelayReadyz(ctx, r)
		if err == nil {
			last = st
			if st.Ready && st.Leader && !slices.ContainsFunc(want, func(a string) bool { return st.Nodes[a] != "READY" }) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("last /readyz: ready %v, leader %v, nodes %v (%v)", last.Ready, last.Leader, last.Nodes, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func readRelayReadyz(ctx context.Context, r *Relay) (relayReadyz, error) {
	var st relayReadyz
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.URL()+"/readyz", nil)
	if err != nil {
		return st, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&st); err != nil {
		return st, fmt.Errorf("relay %s /readyz: %w", r.Name, err)
	}
	return st, nil
}

// listRooms reads every room's seq linearizably, through any node.
func (f *injector) listRooms(ctx context.Context) (map[string]uint64, error) {
	var errs []error
	for _, n := range f.lab.Nodes {
		lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		rooms, err := allRooms(lctx, n.Game(), hangmanv1.Consistency_CONSISTENCY_LINEARIZABLE)
		cancel()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out := map[string]uint64{}
		for _, r := range rooms {
			out[r.GetRoom()] = r.GetSeq()
		}
		return out, nil
	}
	return nil, errors.Join(errs...)
}

// moveAll stops every node and relay, moves the nodes to ips, and starts
// everything again pointed at them, with NATS observers following.
func (f *injector) moveAll(ctx context.Context, ips []string) error {
	lab := f.lab
	lab.stopAll()
	for i := range lab.Nodes {
		if err := f.readdress(i, ips[i]); err != nil {
			return err
		}
	}
	for _, n := range lab.Nodes {
		if err := f.startNode(n); err != nil {
			return err
		}
	}
	for _, r := range lab.Relays {
		r.Proc.setArgv(lab.relayArgv(r))
		if err := r.Proc.start(); err != nil {
			return err
		}
	}
	return nil
}

// readdress gives stopped node i the address ip.
func (f *injector) readdress(i int, ip string) error {
	if err := f.lab.net.readdress(i, ip); err != nil {
		return err
	}
	return f.lab.Nodes[i].setIP(ip)
}

// startNode starts node n on its current address, with the NATS observers
// following it there.
func (f *injector) startNode(n *Node) error {
	n.Proc.setArgv(f.lab.nodeArgv(n))
	if err := n.Proc.start(); err != nil {
		return err
	}
	return f.obs.subscribeNATS(n.ID, n.NATSURL())
}

// cpuHog runs busy loops, four per core, in processes of their own at
// normal priority for HogHold. The leader monitor judges it: no leader
// change may happen during the hog or Settle after it.
func (f *injector) cpuHog(ctx context.Context) (string, error) {
	k := 4 * runtime.NumCPU()
	var hogs []*exec.Cmd
	defer func() {
		for _, h := range hogs {
			_ = syscall.Kill(-h.Process.Pid, syscall.SIGKILL)
			_ = h.Wait()
		}
	}()
	for range k {
		h := exec.Command("sh", "-c", "while :; do :; done")
		h.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := h.Start(); err != nil {
			return "", fmt.Errorf("start a busy loop: %w", err)
		}
		hogs = append(hogs, h)
	}
	f.sleep(ctx, f.cfg.HogHold)
	return fmt.Sprintf("ran %d busy loops on %d cores for %v", k, runtime.NumCPU(), f.cfg.HogHold), nil
}

// pauseLeaderLong stops the leader for PauseLong under writes: every node
// must be ready within PauseRecover of SIGCONT, the paused one included,
// and stay ready (watched for two seconds more: a node that steps down or
// cuts itself off right after SIGCONT is ready for a moment first), with no
// restart.
func (f *injector) pauseLeaderLong(ctx context.Context, n *Node) (string, error) {
	pid := n.Proc.pid()
	if err := n.Proc.signal(syscall.SIGSTOP); err != nil {
		return "", err
	}
	f.sleep(ctx, f.cfg.PauseLong)
	if err := n.Proc.signal(syscall.SIGCONT); err != nil {
		return "", err
	}
	cont := time.Now()
	var lastUnready time.Time
	var why string
	for end := cont.Add(f.cfg.PauseRecover + 2*time.Second); time.Now().Before(end) && ctx.Err() == nil; {
		for _, m := range f.lab.Nodes {
			if err := m.readyz(ctx); err != nil {
				lastUnready, why = time.Now(), fmt.Sprintf("%s: %v", m.ID, err)
			}
		}
		f.sleep(ctx, 100*time.Millisecond)
	}
	what := fmt.Sprintf("paused leader %s for %v", n.ID, f.cfg.PauseLong)
	if n.Proc.pid() != pid || !n.Proc.running() {
		f.expect(FaultPauseLeaderLong, "%s exited after SIGCONT", n.ID)
	}
	if after := lastUnready.Sub(cont); after > f.cfg.PauseRecover {
		f.expect(FaultPauseLeaderLong, "a node still not ready %v after SIGCONT (%s)", after.Round(10*time.Millisecond), why)
		return what, nil
	}
	return fmt.Sprintf("%s; every node ready for good %v after SIGCONT", what, max(0, lastUnready.Sub(cont)).Round(10*time.Millisecond)), nil
}
