package bench

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRelayTakes: the bench passes a relay flag only to a build whose
// usage lists it, so that an older build still runs as a baseline.
func TestRelayTakes(t *testing.T) {
	dir := t.TempDir()
	script := func(name, usage string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\ncat >&2 <<'EOF'\n"+usage+"EOF\nexit 2\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name, usage string
		want        bool
	}{
		{"listed", "Usage of relay:\n  -listen string\n  -pprof-addr string\n    \tprofiler\n", true},
		{"listed as a bool", "Usage of relay:\n  -pprof-addr\n    \tprofiler\n", true},
		{"absent", "Usage of relay:\n  -listen string\n  -public-url string\n", false},
		{"only a longer flag", "Usage of relay:\n  -pprof-addr-file string\n", false},
		{"only mentioned in help text", "Usage of relay:\n  -listen string\n    \tnot -pprof-addr here\n", false},
	} {
		if got := relayTakes(script(tc.name, tc.usage), "pprof-addr"); got != tc.want {
			t.Errorf("%s: relayTakes = %v, want %v", tc.name, got, tc.want)
		}
	}
	if relayTakes(filepath.Join(dir, "missing"), "pprof-addr") {
		t.Error("a binary that does not run takes the flag")
	}
}

// TestStartSystemRefusesPortsInUse: a system whose ports another process
// holds, TCP or UDP, is refused before anything starts, naming the port;
// so is one too large for its 200 ports.
func TestStartSystemRefusesPortsInUse(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-binary") // starting it would fail otherwise
	held := func(t *testing.T, network string) (base int, addr string) {
		t.Helper()
		if network == "tcp" {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = ln.Close() })
			return ln.Addr().(*net.TCPAddr).Port - 5, ln.Addr().String() // node 1's HTTP port
		}
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = pc.Close() })
		return pc.LocalAddr().(*net.UDPAddr).Port - 2, pc.LocalAddr().String() // node 1's serf port
	}
	for _, network := range []string{"tcp", "udp"} {
		t.Run(network, func(t *testing.T) {
			base, addr := held(t, network)
			_, err := StartSystem(t.Context(), SystemConfig{Binary: missing, Dir: t.TempDir(), Nodes: 1, Relays: 1, BasePort: base})
			if !errors.Is(err, ErrPortInUse) {
				t.Fatalf("StartSystem with %s held: %v, want ErrPortInUse", addr, err)
			}
			if !strings.Contains(err.Error(), "choose another base port") {
				t.Fatalf("refusal %q does not say what to do", err)
			}
		})
	}
	for _, c := range []SystemConfig{{Nodes: 0, Relays: 1}, {Nodes: MaxNodes + 1}, {Nodes: 1, Relays: MaxRelays + 1}, {Nodes: 1, Relays: -1}} {
		c.Binary, c.BasePort = missing, 25000
		if _, err := StartSystem(t.Context(), c); err == nil || errors.Is(err, ErrPortInUse) || !strings.Contains(err.Error(), "want 1 to") {
			t.Errorf("%d nodes, %d relays: %v, want a refusal of the size", c.Nodes, c.Relays, err)
		}
	}
}
