package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRelayStartRefusals: a relay given a NATS password file it cannot
// use, a proxy list it cannot parse or a profiler address others could
// reach refuses to start, naming the problem, before it connects to
// anything.
func TestRelayStartRefusals(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	pw := filepath.Join(dir, "pw")
	for name, data := range map[string]string{empty: " \n", pw: "s3cret\n"} {
		if err := os.WriteFile(name, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--nats-password-file", filepath.Join(dir, "missing")}, "no such file"},
		{[]string{"--nats-password-file", empty}, "is empty"},
		{[]string{"--nats-password-file", pw, "--nats-password", "other"}, "different passwords"},
		{[]string{"--trusted-proxies", "10.0.0.0/8,proxy.example"}, `"proxy.example" is neither an address nor a CIDR`},
		{[]string{"--pprof-addr", "0.0.0.0:6060"}, `pprof address "0.0.0.0:6060": not a loopback address`},
	}
	for _, tc := range cases {
		err := runRelay(context.Background(), append(tc.args, "--listen", "127.0.0.1:0"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("hangman relay %v: %v, want an error with %q", tc.args, err, tc.want)
		}
	}
}

func TestParsePrefixes(t *testing.T) {
	got, err := parsePrefixes(" 10.1.2.3/8, 192.0.2.7 ,::ffff:198.51.100.1,2001:db8::/32")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.0/8", "192.0.2.7/32", "198.51.100.1/32", "2001:db8::/32"}
	if len(got) != len(want) {
		t.Fatalf("parsed %v, want %v", got, want)
	}
	for i := range got {
		if got[i].String() != want[i] {
			t.Errorf("item %d: %s, want %s", i, got[i], want[i])
		}
	}
}
