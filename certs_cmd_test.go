package main

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hangman/hangman/tlsutil"
)

// TestCertsMakesAUsablePKI: the files of `hangman certs` load as the node
// and relay flags load them, and a second run does not clobber them.
func TestCertsMakesAUsablePKI(t *testing.T) {
	dir := t.TempDir()
	if err := runCerts(context.Background(), []string{"--dir", dir, "--nodes", "a,b", "--hosts", "a.example,10.9.8.7"}); err != nil {
		t.Fatal(err)
	}
	file := func(name string) string { return filepath.Join(dir, name) }
	node, err := tlsutil.Load(file("a.pem"), file("a-key.pem"), file("ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if !node.IsNode() || !strings.Contains(strings.Join(node.Cert.Leaf.DNSNames, ","), "a.example") {
		t.Fatalf("node certificate names %v", node.Cert.Leaf.DNSNames)
	}
	relay, err := tlsutil.Load(file("relay.pem"), file("relay-key.pem"), file("ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if relay.IsNode() {
		t.Fatal("the relay certificate passes as a node's")
	}
	sec := securityFlags{gossipKeyFn: file("gossip.key")}
	if _, key, err := sec.load(); err != nil || len(key) != tlsutil.GossipKeySize {
		t.Fatalf("gossip key: %d bytes, %v", len(key), err)
	}
	env, err := os.ReadFile(file("security.env"))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"HANGMAN_GOSSIP_KEY=", "HANGMAN_NATS_NODE_PASSWORD=", "HANGMAN_NATS_RELAY_PASSWORD=", "HANGMAN_NATS_WATCHER_PASSWORD=", "HANGMAN_NATS_PLAYER_PASSWORD=", "HANGMAN_NATS_PASSWORD="} {
		if !strings.Contains(string(env), v) {
			t.Errorf("security.env lacks %s", v)
		}
	}
	if info, err := os.Stat(file("a-key.pem")); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v", info.Mode(), err)
	}
	if err := runCerts(context.Background(), []string{"--dir", dir, "--nodes", "a,b"}); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second run: %v, want a refusal to overwrite", err)
	}
}
