package harness

import (
	"context"
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
