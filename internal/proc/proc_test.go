package proc

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hangman/hangman/internal/harness"
)

func sh(t *testing.T, script string, lines chan<- string) *Proc {
	t.Helper()
	p, err := Start(Spec{Name: "sh", Path: "/bin/sh", Args: []string{"-c", script}, Lines: lines})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Kill() })
	return p
}

func TestWaitLineSeesTheLineOrTheExit(t *testing.T) {
	ctx := context.Background()
	p := sh(t, `sleep 0.2; echo starting; echo listening on 127.0.0.1:1234; exec sleep 30`, nil)
	got, err := p.WaitLine(ctx, 10*time.Second, func(l string) bool { return strings.HasPrefix(l, "listening") })
	if err != nil || got != "listening on 127.0.0.1:1234" {
		t.Fatalf("WaitLine = %q, %v", got, err)
	}

	q := sh(t, `echo "bind: address in use" >&2; exit 3`, nil)
	_, err = q.WaitLine(ctx, 10*time.Second, func(l string) bool { return strings.HasPrefix(l, "listening") })
	if !errors.Is(err, harness.ErrExited) || !strings.Contains(err.Error(), "address in use") {
		t.Fatalf("WaitLine on a child that fails = %v; want harness.ErrExited with its output", err)
	}
	if st := q.ExitState(); st == nil || st.ExitCode() != 3 {
		t.Fatalf("exit state %v, want code 3", st)
	}

	r := sh(t, `exec sleep 30`, nil)
	if _, err := r.WaitLine(ctx, 100*time.Millisecond, func(string) bool { return true }); err == nil || errors.Is(err, harness.ErrExited) {
		t.Fatalf("WaitLine on a silent child = %v; want a timeout", err)
	}
}

func TestLinesFromTheFirstOnAndTheTail(t *testing.T) {
	lines := make(chan string, 100)
	p := sh(t, `for i in $(seq 1 50); do echo line $i; done`, lines)
	<-p.Done()
	if first := <-lines; first != "line 1" {
		t.Fatalf("first line %q, want line 1", first)
	}
	tail := strings.Split(p.Tail(), "\n")
	if len(tail) != tailLines || tail[0] != "line 11" || tail[len(tail)-1] != "line 50" {
		t.Fatalf("tail has %d lines, %q … %q; want the last %d", len(tail), tail[0], tail[len(tail)-1], tailLines)
	}
}

func TestWaitHTTPAndStop(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String() + "/readyz"
	ready := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		select {
		case <-ready:
		default:
			http.Error(w, "not yet", http.StatusServiceUnavailable)
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	p := sh(t, `trap 'exit 0' TERM; echo trapping; while :; do sleep 0.05; done`, nil)
	if _, err := p.WaitLine(context.Background(), 10*time.Second, func(l string) bool { return l == "trapping" }); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitHTTP(context.Background(), url, 200*time.Millisecond); err == nil || errors.Is(err, harness.ErrExited) {
		t.Fatalf("WaitHTTP while 503 = %v; want a timeout", err)
	}
	time.AfterFunc(100*time.Millisecond, func() { close(ready) })
	if err := p.WaitHTTP(context.Background(), url, 10*time.Second); err != nil {
		t.Fatalf("WaitHTTP once ready: %v", err)
	}
	p.Stop(10 * time.Second)
	if st := p.ExitState(); st == nil || !st.Success() {
		t.Fatalf("stopped child exit state %v, want a clean exit on SIGTERM", st)
	}

	q := sh(t, `trap '' TERM; echo ignoring; while :; do sleep 0.05; done`, nil)
	if _, err := q.WaitLine(context.Background(), 10*time.Second, func(l string) bool { return l == "ignoring" }); err != nil {
		t.Fatal(err)
	}
	StopAll(200*time.Millisecond, q)
	if st := q.ExitState(); st == nil || st.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child ignoring SIGTERM: exit state %v, want killed", st)
	}

	dead := sh(t, `exit 1`, nil)
	if err := dead.WaitHTTP(context.Background(), "http://127.0.0.1:1/readyz", 10*time.Second); !errors.Is(err, harness.ErrExited) {
		t.Fatalf("WaitHTTP on an exited child = %v, want harness.ErrExited", err)
	}
}

func TestEnvAndDirReachTheChild(t *testing.T) {
	dir := t.TempDir()
	lines := make(chan string, 4)
	p, err := Start(Spec{Name: "sh", Path: "/bin/sh", Args: []string{"-c", `echo "$HANGMAN_PROC_TEST $(pwd)"`},
		Env: []string{"HANGMAN_PROC_TEST=seen"}, Dir: dir, Lines: lines})
	if err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	if got := <-lines; got != "seen "+dir {
		t.Fatalf("child printed %q, want %q", got, "seen "+dir)
	}
}
