package chaos

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"runtime"
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
	var missing []string
	for room, seq := range before {
		if a, ok := after[room]; !ok || a < seq {
			missing = append(missing, fmt.Sprintf("%s (seq %d, now %d)", room, seq, a))
		}
	}
	if len(missing) > 0 {
		f.expect(FaultReaddressAll, "rooms lost or gone back after the restart on new addresses: %s", clipList(missing, 10))
	}
	return what, nil
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
	for i, n := range lab.Nodes {
		if err := lab.net.readdress(i, ips[i]); err != nil {
			return err
		}
		if err := n.setIP(ips[i]); err != nil {
			return err
		}
	}
	for _, n := range lab.Nodes {
		n.Proc.setArgv(lab.nodeArgv(n))
		if err := n.Proc.start(); err != nil {
			return err
		}
		if err := f.obs.subscribeNATS(n.ID, n.NATSURL()); err != nil {
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
