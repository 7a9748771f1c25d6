// Command hangman runs every part of the distributed Hangman game: game
// nodes (raft, serf, gRPC, embedded NATS), websocket relays, the whole system
// on one machine for development, and the load generator.
//
//	hangman dev      3 game nodes + 2 relays on loopback, in one process
//	hangman node     one game node
//	hangman relay    one websocket relay
//	hangman bench    the load generator and its report
//	hangman certs    a development PKI, gossip key and NATS passwords
//	hangman health   probe /readyz (the containers' healthcheck)
//	hangman proxy    one public entry spreading browsers over the relays
//
// Every flag can also be set from the environment as HANGMAN_<FLAG>, with
// dashes as underscores (--data-dir is HANGMAN_DATA_DIR); a flag on the
// command line wins.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// commands maps each subcommand to the function that runs it until ctx ends.
var commands = map[string]struct {
	run     func(ctx context.Context, args []string) error
	summary string
}{
	"dev":    {runDev, "the whole system on one machine: 3 game nodes + 2 relays on loopback"},
	"node":   {runNode, "one game node (raft + serf + gRPC + embedded NATS)"},
	"relay":  {runRelay, "one websocket relay serving the web page"},
	"bench":  {runBench, "start a system and measure throughput, latency, fan-out and failover"},
	"certs":  {runCerts, "make a dev CA, node and relay certificates, a gossip key and NATS passwords"},
	"health": {runHealth, "exit 0 when every URL (a /readyz) answers 200: the containers' healthcheck"},
	"proxy":  {runProxy, "spread TCP connections over the ready relays behind a DNS name: compose's public entry"},
}

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "hangman:", err)
		os.Exit(1)
	}
}

func run(args []string, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return errors.New("a command is required")
		}
		return nil
	}
	cmd, ok := commands[args[0]]
	if !ok {
		usage(stderr)
		return fmt.Errorf("unknown command %q", args[0])
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return cmd.run(ctx, args[1:])
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: hangman <command> [flags]\n\ncommands:")
	for _, name := range []string{"dev", "node", "relay", "bench", "certs", "health", "proxy"} {
		if c, ok := commands[name]; ok {
			fmt.Fprintf(w, "  %-6s %s\n", name, c.summary)
		}
	}
	fmt.Fprintln(w, "\nRun 'hangman <command> -h' for its flags; every flag is also HANGMAN_<FLAG> in the environment.")
}

// parseFlags parses args into fs after taking defaults from HANGMAN_*
// environment variables, so containers can be configured either way.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := envFlags(fs); err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// envFlags sets the flags of fs from their HANGMAN_* environment
// variables, for commands that parse their arguments themselves.
func envFlags(fs *flag.FlagSet) error {
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		key := "HANGMAN_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(key); ok && envErr == nil {
			if err := f.Value.Set(v); err != nil {
				envErr = fmt.Errorf("environment %s=%q: %w", key, v, err)
			}
		}
	})
	return envErr
}

// logFlags registers the common --log-level and --log-format flags on fs
// and returns the function that builds the process logger from them, to be
// called once fs is parsed.
func logFlags(fs *flag.FlagSet, level string) func() (*slog.Logger, error) {
	format := "text"
	fs.StringVar(&level, "log-level", level, "log level: debug, info, warn, error")
	fs.StringVar(&format, "log-format", format, "log format: text or json")
	return func() (*slog.Logger, error) { return newLogger(os.Stderr, level, format) }
}

// newLogger builds the process logger from the common --log-level and
// --log-format flags.
func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("--log-format %q: want text or json", format)
	}
}
