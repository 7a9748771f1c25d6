package harness

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// ErrExited is WaitHTTP's answer when the process behind the URL exits
// before it answers.
var ErrExited = errors.New("exited while starting")

// probeClient is WaitHTTP's client: one probe may not outlast a short
// deadline, as an address that never answers would make it.
var probeClient = &http.Client{Timeout: 2 * time.Second}

// WaitHTTP polls url until it answers 200 OK, exited closes (the process
// behind it ended; nil for none) or timeout passes. It serves processes
// this package did not start too, such as an attached system's relays.
func WaitHTTP(ctx context.Context, url string, timeout time.Duration, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("probe %s: %w", url, err)
		}
		resp, err := probeClient.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s: %s", url, resp.Status)
		}
		last = err
		select {
		case <-exited:
			return fmt.Errorf("%s: %w", url, ErrExited)
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %v: %v", url, timeout, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
