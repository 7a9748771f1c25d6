package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// runHealth asks HTTP health endpoints (a node's or relay's /readyz or
// /healthz) and fails unless every one answers 200. It exists for container
// healthchecks: the image is FROM scratch, with no shell or curl to run, so
// docker-compose's healthcheck runs `/hangman health URL` instead.
func runHealth(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("hangman health", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: hangman health [--timeout D] URL...\n\nExits 0 when every URL answers 200, else 1 with the reason.")
		fs.PrintDefaults()
	}
	timeout := fs.Duration("timeout", 2*time.Second, "longest wait for each answer")
	if err := envFlags(fs); err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("health: at least one URL is required")
	}
	client := &http.Client{Timeout: *timeout}
	for _, u := range fs.Args() {
		if err := checkHealth(ctx, client, u); err != nil {
			return err
		}
	}
	return nil
}

// checkHealth GETs one URL and returns nil on 200, or an error naming the
// URL, the status and the first line of the body (which says why).
func checkHealth(ctx context.Context, client *http.Client, url string) error {
	if !strings.HasPrefix(url, "http://") && !strings.HasPrefix(url, "https://") {
		return fmt.Errorf("health: %q is not an http(s) URL", url)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		line, _, _ := strings.Cut(strings.TrimSpace(string(body)), "\n")
		return fmt.Errorf("health: %s answered %s: %s", url, resp.Status, line)
	}
	return nil
}
