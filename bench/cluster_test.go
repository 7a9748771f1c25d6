package bench

import (
	"os"
	"path/filepath"
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
