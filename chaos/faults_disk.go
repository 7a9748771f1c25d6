package chaos

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	hangmanv1 "github.com/hangman/hangman/proto/hangman/v1"
)

// The faults of lost, corrupt and full disks (issue 14).

// wipeDisk kills a node, deletes its data and restarts it.
func (f *injector) wipeDisk(ctx context.Context, n *Node) (string, error) {
	oldID := f.raftID(ctx, n)
	if err := n.Proc.kill(); err != nil {
		return "", err
	}
	if err := n.wipe(); err != nil {
		return "", err
	}
	if err := n.Proc.start(); err != nil {
		return "", err
	}
	f.rejoin(ctx, FaultWipeDisk, n, oldID)
	return "wiped and restarted " + n.ID, nil
}

// raftID returns the raft server id the leader's configuration has for n
// (found by address or node id), "" if none.
func (f *injector) raftID(ctx context.Context, n *Node) string {
	servers, _ := f.configuration(ctx)
	for _, s := range servers {
		if s.GetAddress() == n.RaftAddr() || s.GetId() == n.ID {
			return s.GetId()
		}
	}
	return ""
}

// configuration returns the current leader's raft configuration and its
// commit index.
func (f *injector) configuration(ctx context.Context) ([]*hangmanv1.RaftServer, uint64) {
	i, err := f.lab.Leader(ctx)
	if err != nil {
		return nil, 0
	}
	leader := f.lab.Nodes[i]
	st, err := leader.status(ctx)
	if err != nil {
		return nil, 0
	}
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	cf, err := leader.Cluster().RaftConfiguration(cctx, &hangmanv1.RaftConfigurationRequest{})
	if err != nil {
		return nil, 0
	}
	return cf.GetServers(), st.GetCommitIndex()
}

// rejoin follows a node that lost its disk back into the cluster. It must
// come back as a new member: the leader's configuration must drop its old
// server id or take its vote, or list a new id at its address, before it
// votes again (a voter that forgot its term and vote breaks raft's
// safety); and within RejoinBound it must be a voter, as that new member,
// that has applied what the leader had committed.
func (f *injector) rejoin(ctx context.Context, kind FaultKind, n *Node, oldID string) {
	deadline := time.Now().Add(f.cfg.RejoinBound)
	oldGone := oldID == ""
	var last string
	for {
		servers, commit := f.configuration(ctx)
		oldVoter, newVoter, oldSeen := false, false, false
		for _, s := range servers {
			if s.GetAddress() != n.RaftAddr() && s.GetId() != n.ID {
				continue
			}
			voter := s.GetSuffrage() == "Voter"
			if s.GetId() == oldID {
				oldSeen = true
				oldVoter = voter
				if !voter {
					oldGone = true
				}
			} else {
				newVoter = newVoter || voter
			}
		}
		if servers != nil && !oldSeen {
			oldGone = true
		}
		st, err := n.status(ctx)
		caughtUp := err == nil && commit > 0 && st.GetAppliedIndex() >= commit && n.readyz(ctx) == nil
		switch {
		case caughtUp && (newVoter || (oldGone && oldVoter)):
			return
		case caughtUp && oldVoter:
			f.expect(kind, "%s came back with an empty disk under its old voter identity %q: it never left the configuration nor lost its vote, so it could vote with a forgotten term", n.ID, oldID)
			return
		}
		last = fmt.Sprintf("old id %q gone or demoted %t, voter %t, caught up and ready %t", oldID, oldGone, newVoter || oldVoter, caughtUp)
		if time.Now().After(deadline) || ctx.Err() != nil {
			f.expect(kind, "%s not a caught-up voter %v after losing its disk (%s)", n.ID, f.cfg.RejoinBound, last)
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// wipeMajority loses a majority's disks at once and recovers by the
// operator's act. Killing the wiped nodes first leaves the leader unable
// to commit, so every acknowledged write is in the leader's log, which
// stays intact: after recovery nothing acknowledged may be missing.
func (f *injector) wipeMajority(ctx context.Context, leader int, followers []int) (string, error) {
	lab := f.lab
	n := len(lab.Nodes)
	wipedIdx := followers[:n/2+1]
	intactIdx := f.others(wipedIdx)
	var wiped, intact []*Node
	for _, i := range wipedIdx {
		wiped = append(wiped, lab.Nodes[i])
	}
	for _, i := range intactIdx {
		if i != leader {
			intact = append(intact, lab.Nodes[i])
		}
	}
	intact = append(intact, lab.Nodes[leader]) // killed last
	if err := killAll(wiped); err != nil {
		return "", err
	}
	if err := killAll(intact); err != nil {
		return "", err
	}
	for _, w := range wiped {
		if err := w.wipe(); err != nil {
			return "", err
		}
		if err := w.Proc.start(); err != nil {
			return "", err
		}
	}
	what := fmt.Sprintf("killed all, wiped %s, kept %s", f.names(wipedIdx), f.names(intactIdx))

	// The wiped majority alone: no election, no acknowledged write, not
	// ready, for twice the hold.
	elected, served, acked := map[string]string{}, map[string]bool{}, map[string]string{}
	until := time.Now().Add(2 * f.cfg.Hold)
	for time.Now().Before(until) && ctx.Err() == nil {
		for _, w := range wiped {
			if st, err := w.status(ctx); err == nil && (st.GetState() == "Leader" || st.GetLeaderId() != "") {
				elected[w.ID] = fmt.Sprintf("%s, leader %q, term %d", st.GetState(), st.GetLeaderId(), st.GetTerm())
			}
			if w.readyz(ctx) == nil {
				served[w.ID] = true
			}
			if err := f.probe(ctx, w); err == nil {
				acked[w.ID] = "a probe write was acknowledged"
			}
		}
		f.sleep(ctx, 200*time.Millisecond)
	}
	for id, s := range elected {
		f.expect(FaultWipeMajority, "wiped %s took part in an election with no data (%s)", id, s)
	}
	for id := range served {
		f.expect(FaultWipeMajority, "wiped %s said ready with no data", id)
	}
	for id, s := range acked {
		f.expect(FaultWipeMajority, "wiped %s: %s", id, s)
	}

	// The operator's recovery on the intact nodes.
	path, err := writePeersFile(lab.Dir, intact)
	if err != nil {
		return what, err
	}
	var recErr error
	for _, in := range intact {
		if err := startRecovering(ctx, in, path, 15*time.Second); err != nil {
			recErr = errors.Join(recErr, err)
		}
	}
	if recErr != nil {
		f.expect(FaultWipeMajority, "operator recovery (%s %s) failed: %v", recoverFlag, path, recErr)
		// Go on from the intact data as a plain restart would.
		for _, in := range intact {
			if !in.Proc.running() {
				if err := in.Proc.start(); err != nil {
					return what, err
				}
			}
		}
		return what + "; recovery failed, restarted the intact nodes as usual", nil
	}
	if err := lab.WaitReady(ctx, f.cfg.RejoinBound); err != nil {
		f.expect(FaultWipeMajority, "not every node ready and caught up %v after recovery: %v", f.cfg.RejoinBound, err)
	}
	return what + "; recovered with " + recoverFlag, nil
}

// killAll kills nodes at once.
func killAll(nodes []*Node) error {
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() { errs[i] = n.Proc.kill() })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// probe sends one write (a new room) to node n with a one-second deadline.
func (f *injector) probe(ctx context.Context, n *Node) error {
	f.probes++
	room := fmt.Sprintf("probe%dx%d", os.Getpid()%1000, f.probes)
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_, err := n.Game().CreateRoom(pctx, &hangmanv1.CreateRoomRequest{Room: room, RequestId: "probe-" + room})
	return err
}

// corruptEntry flips bytes in a committed entry of a stopped follower's
// log and restarts it: it must refuse to start, saying where. Then the
// node is wiped and rejoins, so that the run goes on.
func (f *injector) corruptEntry(ctx context.Context, n *Node) (string, error) {
	st, err := n.status(ctx)
	if err != nil {
		return "", err
	}
	oldID := f.raftID(ctx, n)
	n.Proc.stop(10 * time.Second)
	snap, err := lastSnapshotIndex(n.Dir)
	if err != nil {
		return "", err
	}
	c, err := corruptEntry(filepath.Join(n.Dir, raftStorePath), snap, st.GetCommitIndex())
	if err != nil {
		return "", err
	}
	what := fmt.Sprintf("flipped %q to %q in entry %d of %s's %s (last snapshot %d)", c.Before, c.After, c.Index, n.ID, raftStoreName, snap)
	if err := n.Proc.start(); err != nil {
		return what, err
	}
	served := false
	deadline := time.Now().Add(f.cfg.RefuseBound)
	var exit *os.ProcessState
	for exit == nil && time.Now().Before(deadline) && ctx.Err() == nil {
		if n.readyz(ctx) == nil {
			served = true
		}
		exit = n.Proc.waitExit(200 * time.Millisecond)
	}
	if served {
		f.expect(FaultCorruptEntry, "%s said ready on a corrupt log (%s)", n.ID, what)
	}
	switch {
	case exit == nil:
		f.expect(FaultCorruptEntry, "%s started on a corrupt log and ran %v without refusing (%s)", n.ID, f.cfg.RefuseBound, what)
		if err := n.Proc.kill(); err != nil {
			return what, err
		}
	case exit.Success():
		f.expect(FaultCorruptEntry, "%s exited 0 on a corrupt log: a refusal must exit non-zero", n.ID)
	default:
		log := n.Proc.currentLog()
		if strings.Contains(log, "panic: ") || strings.Contains(log, "fatal error: ") {
			f.expect(FaultCorruptEntry, "%s crashed on a corrupt log instead of refusing: %s", n.ID, n.Proc.crashReport(6))
		} else if !namesEntry(log, c.Index) {
			f.expect(FaultCorruptEntry, "%s refused to start (%v) without naming %s and index %d: %s", n.ID, exit, raftStoreName, c.Index, n.Proc.crashReport(4))
		}
	}
	if err := n.wipe(); err != nil {
		return what, err
	}
	if err := n.Proc.start(); err != nil {
		return what, err
	}
	f.rejoin(ctx, FaultCorruptEntry, n, oldID)
	return what + "; then wiped it and let it rejoin", nil
}

// namesEntry reports whether a refusal's log names the store file and the
// corrupt entry's index.
func namesEntry(log string, index uint64) bool {
	return strings.Contains(log, raftStoreName) &&
		regexp.MustCompile(`(^|[^0-9])`+strconv.FormatUint(index, 10)+`([^0-9]|$)`).MatchString(log)
}

// diskFull fills a node's data tmpfs while writes go on, then frees it.
// While full, a write the node cannot persist is Unavailable (never
// Internal, never naming a path: probes on the node and every workload
// attempt meanwhile); once it fails to persist or falls far behind the
// leader, and for as long as the disk stays full, it is not ready (judged
// after a grace of ten heartbeats' worth, five seconds); with space back it
// recovers without a restart.
func (f *injector) diskFull(ctx context.Context, n *Node) (string, error) {
	if f.lab.tmpfs == "" {
		return "", errors.New("disk-full needs the data dirs on tmpfs (the lab mounts them when the fault is enabled)")
	}
	const grace = 5 * time.Second
	pid := n.Proc.pid()
	internal0, leaks0 := f.errCounts()
	fill := filepath.Join(n.Dir, "chaos-fill")
	size, err := fillDisk(fill)
	if err != nil {
		return "", err
	}
	what := fmt.Sprintf("filled %s's data tmpfs (%d MiB of filler)", n.ID, size>>20)
	var (
		distressAt time.Time
		why        string
		behind     int
		ready      []string
	)
	start := time.Now()
	for ctx.Err() == nil {
		if err := f.probe(ctx, n); err != nil {
			st, _ := status.FromError(err)
			switch {
			case st.Code() == codes.Internal:
				f.expect(FaultDiskFull, "a write on full %s failed Internal: %s", n.ID, st.Message())
			case leaksPath(st.Message(), f.lab.dataRoot):
				f.expect(FaultDiskFull, "a write on full %s failed naming a server path: %s", n.ID, st.Message())
			}
			if distressAt.IsZero() {
				distressAt, why = time.Now(), "a write on it failed "+st.Code().String()
			}
		}
		// Far behind: the node's applied index short of the leader's
		// commit by more than a thousand entries, three times running.
		if _, commit := f.configuration(ctx); commit > 0 {
			if st, err := n.status(ctx); err == nil && st.GetAppliedIndex()+1000 < commit {
				behind++
				if behind >= 3 && distressAt.IsZero() {
					distressAt, why = time.Now(), fmt.Sprintf("applied %d, leader committed %d", st.GetAppliedIndex(), commit)
				}
			} else {
				behind = 0
			}
		}
		if !distressAt.IsZero() && time.Since(distressAt) >= grace {
			if n.readyz(ctx) == nil {
				ready = append(ready, time.Now().UTC().Format("15:04:05.000"))
			}
			if time.Since(distressAt) >= grace+2*f.cfg.Hold {
				break
			}
		}
		if distressAt.IsZero() && time.Since(start) >= 4*f.cfg.Hold+10*time.Second {
			break
		}
		f.sleep(ctx, 200*time.Millisecond)
	}
	switch {
	case distressAt.IsZero():
		f.rep.note("disk-full: %s kept persisting on a full disk for %v (free pages in its store): readiness not judged", n.ID, time.Since(start).Round(time.Second))
	case len(ready) > 0:
		f.expect(FaultDiskFull, "%s said ready on a full disk %v after it stopped persisting (%s), at %s", n.ID, grace, why, strings.Join(ready, ", "))
	}
	if internal, leaks := f.errCounts(); internal > internal0 || leaks > leaks0 {
		f.expect(FaultDiskFull, "while %s's disk was full, %d client attempts failed Internal and %d named a server path", n.ID, internal-internal0, leaks-leaks0)
	}
	if err := os.Remove(fill); err != nil {
		return what, fmt.Errorf("free %s: %w", fill, err)
	}
	// Back on its own: ready and caught up, the same process.
	deadline := time.Now().Add(f.cfg.RejoinBound)
	for {
		_, commit := f.configuration(ctx)
		st, err := n.status(ctx)
		if err == nil && commit > 0 && st.GetAppliedIndex() >= commit && n.readyz(ctx) == nil {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			f.expect(FaultDiskFull, "%s not ready and caught up %v after space came back", n.ID, f.cfg.RejoinBound)
			break
		}
		f.sleep(ctx, 100*time.Millisecond)
	}
	if n.Proc.pid() != pid {
		f.expect(FaultDiskFull, "%s was restarted (or exited) while its disk was full", n.ID)
	}
	return what + " and freed it", nil
}

// fillDisk writes zeros to path until the file system is full, and
// returns how much it wrote.
func fillDisk(path string) (int64, error) {
	file, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, fmt.Errorf("create filler: %w", err)
	}
	defer file.Close()
	var total int64
	for _, chunk := range []int{1 << 20, 4 << 10} {
		buf := make([]byte, chunk)
		for {
			n, err := file.Write(buf)
			total += int64(n)
			if errors.Is(err, syscall.ENOSPC) {
				break
			}
			if err != nil {
				return total, fmt.Errorf("fill: %w", err)
			}
		}
	}
	return total, nil
}
