package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRelayPasswordFileRefusals: a relay given a NATS password file it
// cannot use refuses to start, naming the problem, before it connects to
// anything.
func TestRelayPasswordFileRefusals(t *testing.T) {
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
	}
	for _, tc := range cases {
		err := runRelay(context.Background(), append(tc.args, "--listen", "127.0.0.1:0"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("hangman relay %v: %v, want an error with %q", tc.args, err, tc.want)
		}
	}
}
