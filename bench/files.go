package bench

import (
	"fmt"
	"syscall"
)

// EnsureFileLimit raises this process's open-file limit to at least n, and
// its hard limit with it where the process may (as root), so that a run
// of many websockets can open them: the bench holds one socket a client,
// and the relays it starts, which inherit the limit, one each too. It
// says what to do where it cannot.
func EnsureFileLimit(n uint64) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("read the open-file limit: %w", err)
	}
	if lim.Cur >= n {
		return nil
	}
	want := syscall.Rlimit{Cur: n, Max: max(lim.Max, n)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		return fmt.Errorf("the run needs %d open files and the limit is %d (hard %d): raise it (ulimit -n, as root for more than the hard limit): %w", n, lim.Cur, lim.Max, err)
	}
	return nil
}
