// Package proc starts the hangman binary (or any program) as a child
// process for the harnesses that need real processes: the bench's system
// under test and the e2e suites. It keeps the tail of each child's output
// for failure messages, waits for readiness (an HTTP URL answering 200, or
// a line of output) with a deadline, and stops or kills the child. The
// harnesses used to carry a copy each of this; one launcher means one
// place where a child's output, exit and shutdown are handled.
//
// The chaos harness (package chaos) keeps its own process type: its
// children are restarted as new incarnations with changed arguments, run
// inside network namespaces, are paused with SIGSTOP, and its reports read
// the output of the current incarnation since a start marker in a log file
// that survives restarts. A Proc is one run of one command, which is what
// the bench and e2e need; folding incarnations into it would give every
// user that machinery for one.
//
// The binary comes from the caller: harness.Binary builds it once per test
// binary, the bench runs itself.
package proc

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hangman/hangman/internal/harness"
)

// tailLines is how many of a child's last output lines a Proc keeps.
const tailLines = 40

// Spec says what to run.
type Spec struct {
	// Name names the child in errors and reports ("node1", "relay-2").
	Name string
	// Path is the program; Args its arguments.
	Path string
	Args []string
	// Env is added to this process's environment; Dir is the working
	// directory ("" for this process's).
	Env []string
	Dir string
	// Output, when set, receives a copy of everything the child writes
	// (stdout and stderr together), a line at a time; children that share
	// one Output write to it concurrently (an *os.File allows that).
	Output io.Writer
	// Lines, when set, receives each line of output from the first one
	// on, as long as it has room: a harness reads what a child prints
	// (addresses) without racing its start.
	Lines chan<- string
	// OwnGroup puts the child in a process group of its own, so that a
	// Ctrl-C at the terminal reaches only this process, which then stops
	// its children in order.
	OwnGroup bool
}

// Proc is one running child.
type Proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}

	mu    sync.Mutex // guards tail and subs
	tail  []string
	subs  map[chan<- string]struct{}
	state *os.ProcessState
}

// Start starts spec's program. Its output is read until it exits; Done
// closes then.
func Start(spec Spec) (*Proc, error) {
	cmd := exec.Command(spec.Path, spec.Args...)
	cmd.Dir = spec.Dir
	if len(spec.Env) > 0 {
		cmd.Env = append(os.Environ(), spec.Env...)
	}
	if spec.OwnGroup {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("start %s: output pipe: %w", spec.Name, err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	p := &Proc{name: spec.Name, cmd: cmd, done: make(chan struct{}), subs: map[chan<- string]struct{}{}}
	if spec.Lines != nil {
		p.subs[spec.Lines] = struct{}{}
	}
	if err := cmd.Start(); err != nil {
		_ = pr.Close()
		_ = pw.Close()
		return nil, fmt.Errorf("start %s: %w", spec.Name, err)
	}
	// The child holds its own copy of the write end; the reader sees EOF
	// once the child (and any grandchild that kept it) is gone.
	_ = pw.Close()
	read := make(chan struct{})
	go func() {
		defer close(read)
		p.read(pr, spec.Output)
	}()
	go func() {
		_ = cmd.Wait()
		<-read
		_ = pr.Close()
		p.mu.Lock()
		p.state = cmd.ProcessState
		p.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

func (p *Proc) read(r io.Reader, copyTo io.Writer) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if copyTo != nil {
			_, _ = io.WriteString(copyTo, line+"\n")
		}
		p.mu.Lock()
		p.tail = append(p.tail, line)
		if len(p.tail) > tailLines {
			p.tail = p.tail[len(p.tail)-tailLines:]
		}
		for c := range p.subs {
			select {
			case c <- line:
			default:
			}
		}
		p.mu.Unlock()
	}
	// A child that writes more than a line's buffer at once still has
	// its output drained, so it never blocks on a full pipe.
	_, _ = io.Copy(io.Discard, r)
}

// Name is the child's name.
func (p *Proc) Name() string { return p.name }

// Pid is the child's process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Done closes when the child has exited and its output is read to the end
// (a grandchild that inherited the output keeps it open: run programs with
// exec rather than under a shell that stays).
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the child has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// ExitState is how the child ended, nil while it runs.
func (p *Proc) ExitState() *os.ProcessState {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state
}

// Tail is the child's last lines of output, for failure messages.
func (p *Proc) Tail() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.tail, "\n")
}

// Signal sends sig to the child.
func (p *Proc) Signal(sig syscall.Signal) error {
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal %s: %w", p.name, err)
	}
	return nil
}

// Kill sends SIGKILL and waits until the child is gone.
func (p *Proc) Kill() error {
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !p.Exited() {
		return fmt.Errorf("kill %s: %w", p.name, err)
	}
	<-p.done
	return nil
}

// Stop asks the child to shut down (SIGTERM) and kills it if it still
// runs after grace.
func (p *Proc) Stop(grace time.Duration) {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	p.awaitOrKill(grace)
}

// awaitOrKill waits up to grace for the child to exit, then kills it.
func (p *Proc) awaitOrKill(grace time.Duration) {
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// StopAll stops every child at once, as Stop does, all within one grace
// period: a system's processes shut down together.
func StopAll(grace time.Duration, ps ...*Proc) {
	for _, p := range ps {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	deadline := time.Now().Add(grace)
	for _, p := range ps {
		p.awaitOrKill(time.Until(deadline))
	}
}

// WaitLine waits up to timeout for a line of the child's output for which
// match is true, among the last lines already written (Tail) or those to
// come, and returns it. It fails with harness.ErrExited if the child exits first.
func (p *Proc) WaitLine(ctx context.Context, timeout time.Duration, match func(line string) bool) (string, error) {
	lines := make(chan string, 256)
	p.mu.Lock()
	for _, l := range p.tail {
		if match(l) {
			p.mu.Unlock()
			return l, nil
		}
	}
	p.subs[lines] = struct{}{}
	p.mu.Unlock()
	defer p.unfollow(lines)
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case l := <-lines:
			if match(l) {
				return l, nil
			}
		case <-p.done:
			// The line may have come just before the end; the output
			// is read to its end by now.
			for len(lines) > 0 {
				if l := <-lines; match(l) {
					return l, nil
				}
			}
			return "", fmt.Errorf("%s %w (%v): %s", p.name, harness.ErrExited, p.ExitState(), p.Tail())
		case <-t.C:
			return "", fmt.Errorf("%s: no such line of output within %v", p.name, timeout)
		case <-ctx.Done():
			return "", fmt.Errorf("%s: %w", p.name, ctx.Err())
		}
	}
}

// unfollow stops sending lines to c.
func (p *Proc) unfollow(c chan<- string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.subs, c)
}

// WaitHTTP waits up to timeout until url answers 200 OK. It fails with
// ErrExited if the child exits first.
func (p *Proc) WaitHTTP(ctx context.Context, url string, timeout time.Duration) error {
	if err := harness.WaitHTTP(ctx, url, timeout, p.done); err != nil {
		if p.Exited() {
			return fmt.Errorf("%s %w (%v): %s", p.name, harness.ErrExited, p.ExitState(), p.Tail())
		}
		return fmt.Errorf("%s: %w", p.name, err)
	}
	return nil
}
