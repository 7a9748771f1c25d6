package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/hangman/hangman/devcluster"
)

// runDev runs the whole system in one process (package devcluster): game
// nodes that bootstrap together and relays in front of them, on loopback.
// This command only turns flags into devcluster.Options.
func runDev(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("hangman dev", flag.ContinueOnError)
	var opts devcluster.Options
	fs.StringVar(&opts.DataDir, "data-dir", "", "data directory (default: a fresh temporary directory, removed on exit)")
	fs.IntVar(&opts.Nodes, "nodes", 3, "number of game nodes (1-9)")
	fs.IntVar(&opts.Relays, "relays", 2, "number of relays (0-9)")
	fs.IntVar(&opts.PortOffset, "port-offset", 0, "added to every port, to run several dev systems side by side")
	logger := logFlags(fs, "warn")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := opts.Validate(); err != nil {
		return err
	}
	log, err := logger()
	if err != nil {
		return err
	}
	opts.Logger = log
	if opts.DataDir == "" {
		if opts.DataDir, err = os.MkdirTemp("", "hangman-dev-"); err != nil {
			return fmt.Errorf("temporary data dir: %w", err)
		}
		defer os.RemoveAll(opts.DataDir)
	}
	sys, err := devcluster.Start(ctx, opts)
	if err != nil {
		return err
	}
	defer sys.Close()
	sys.PrintURLs(os.Stdout)
	<-ctx.Done()
	fmt.Fprintln(os.Stdout, "stopping…")
	return nil
}
