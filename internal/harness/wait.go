package harness

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// pollEvery is how often Poll asks its condition again.
const pollEvery = 20 * time.Millisecond

// Poll asks cond until it returns nil, ctx ends or timeout passes; the
// error then says why cond last failed. Harnesses wait on conditions
// like this rather than sleeping a guessed time.
func Poll(ctx context.Context, timeout time.Duration, cond func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		err := cond()
		if err == nil {
			return nil
		}
		t.Reset(pollEvery)
		select {
		case <-ctx.Done():
			return fmt.Errorf("after %v: %w", timeout, err)
		case <-t.C:
		}
	}
}

// Eventually fails the test unless cond returns nil within timeout; what
// names the awaited condition in the failure.
func Eventually(t TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	if err := Poll(context.Background(), timeout, cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// EventuallyTrue is Eventually for a condition that only says yes or no.
func EventuallyTrue(t TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	Eventually(t, timeout, what, func() error {
		if !cond() {
			return errNotYet
		}
		return nil
	})
}

// errNotYet is why a yes-or-no condition last failed.
var errNotYet = errors.New("not yet")

// Throughout fails the test at the first of cond's errors while it asks
// cond, as often as Poll does, for d: a bounded observation that
// something never happens.
func Throughout(t TB, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		if err := cond(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if !time.Now().Before(deadline) {
			return
		}
		<-tick.C
	}
}
