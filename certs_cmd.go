package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hangman/hangman/tlsutil"
)

// runCerts makes a development PKI for a secured cluster: a CA, one
// certificate per node (server and client), a relay client certificate, a
// gossip key and NATS passwords. Production may use any CA instead, as
// long as node certificates carry the name tlsutil.NodeName.
func runCerts(_ context.Context, args []string) error {
	fset := flag.NewFlagSet("hangman certs", flag.ContinueOnError)
	var (
		dir, nodes, hosts string
		validFor          time.Duration
		force             bool
	)
	fset.StringVar(&dir, "dir", "certs", "directory to write the CA, certificates, keys, gossip key and NATS passwords to")
	fset.StringVar(&nodes, "nodes", "node1,node2,node3", "comma-separated node ids: one certificate each, with the id as a DNS name")
	fset.StringVar(&hosts, "hosts", "", "comma-separated extra DNS names or IPs for every node certificate (localhost, 127.0.0.1 and "+tlsutil.NodeName+" are always in)")
	fset.DurationVar(&validFor, "valid-for", 365*24*time.Hour, "lifetime of the CA and certificates")
	fset.BoolVar(&force, "force", false, "overwrite files that already exist")
	if err := parseFlags(fset, args); err != nil {
		return err
	}
	ids := splitList(nodes)
	if len(ids) == 0 {
		return errors.New("--nodes: at least one node id is required")
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("certs dir: %w", err)
	}
	if !force {
		// Refuse before writing anything, so a second run never leaves
		// a mix of old and new files that do not trust each other.
		names := []string{"ca.pem", "ca-key.pem", "relay.pem", "relay-key.pem", "gossip.key", "security.env"}
		for _, id := range ids {
			names = append(names, id+".pem", id+"-key.pem")
		}
		for _, name := range names {
			if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
				return fmt.Errorf("%s exists (use --force to overwrite): %w", filepath.Join(dir, name), fs.ErrExist)
			}
		}
	}
	w := &pkiWriter{dir: dir, force: force}
	ca, err := tlsutil.NewCA("hangman dev CA", validFor)
	if err != nil {
		return err
	}
	caKey, err := ca.KeyPEM()
	if err != nil {
		return err
	}
	w.write("ca.pem", ca.CertPEM, 0o644)
	w.write("ca-key.pem", caKey, 0o600)
	for _, id := range ids {
		leaf := tlsutil.NodeLeaf(id, append([]string{id}, splitList(hosts)...)...)
		leaf.ValidFor = validFor
		w.issue(ca, id, leaf)
	}
	relayLeaf := tlsutil.RelayLeaf("relay")
	relayLeaf.ValidFor = validFor
	w.issue(ca, "relay", relayLeaf)

	key, err := tlsutil.NewGossipKey()
	if err != nil {
		return err
	}
	w.write("gossip.key", []byte(key+"\n"), 0o600)
	env := []string{"HANGMAN_GOSSIP_KEY=" + key}
	relayPW := ""
	for _, v := range []string{"HANGMAN_NATS_NODE_PASSWORD", "HANGMAN_NATS_RELAY_PASSWORD", "HANGMAN_NATS_WATCHER_PASSWORD", "HANGMAN_NATS_PLAYER_PASSWORD"} {
		pw, err := newPassword()
		if err != nil {
			return err
		}
		if v == "HANGMAN_NATS_RELAY_PASSWORD" {
			relayPW = pw
		}
		env = append(env, v+"="+pw)
	}
	// The relay's own variable, so one file configures nodes and relays.
	env = append(env, "HANGMAN_NATS_PASSWORD="+relayPW)
	w.write("security.env", []byte(strings.Join(env, "\n")+"\n"), 0o600)
	if w.err != nil {
		return w.err
	}
	fmt.Printf("wrote to %s: ca.pem ca-key.pem %s relay.pem relay-key.pem gossip.key security.env\n",
		dir, strings.Join(mapList(ids, func(id string) string { return id + ".pem " + id + "-key.pem" }), " "))
	fmt.Printf("node:  hangman node --id %s --tls-cert %s --tls-key %s --tls-ca %s --gossip-key-file %s (and the NATS passwords of security.env)\n",
		ids[0], filepath.Join(dir, ids[0]+".pem"), filepath.Join(dir, ids[0]+"-key.pem"), filepath.Join(dir, "ca.pem"), filepath.Join(dir, "gossip.key"))
	fmt.Printf("relay: hangman relay --tls-cert %s --tls-key %s --tls-ca %s --nats-password <HANGMAN_NATS_RELAY_PASSWORD>\n",
		filepath.Join(dir, "relay.pem"), filepath.Join(dir, "relay-key.pem"), filepath.Join(dir, "ca.pem"))
	return nil
}

// pkiWriter writes files, remembering the first error.
type pkiWriter struct {
	dir   string
	force bool
	err   error
}

func (w *pkiWriter) write(name string, data []byte, mode fs.FileMode) {
	if w.err != nil {
		return
	}
	path := filepath.Join(w.dir, name)
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if !w.force {
		flags |= os.O_EXCL
	}
	f, err := os.OpenFile(path, flags, mode)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			err = fmt.Errorf("%s exists (use --force to overwrite): %w", path, err)
		}
		w.err = err
		return
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		w.err = fmt.Errorf("write %s: %w", path, err)
		return
	}
	if err := f.Close(); err != nil {
		w.err = fmt.Errorf("close %s: %w", path, err)
	}
}

func (w *pkiWriter) issue(ca *tlsutil.CA, name string, leaf tlsutil.Leaf) {
	if w.err != nil {
		return
	}
	cert, key, err := ca.Issue(leaf)
	if err != nil {
		w.err = err
		return
	}
	w.write(name+".pem", cert, 0o644)
	w.write(name+"-key.pem", key, 0o600)
}

func newPassword() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("password: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func mapList(in []string, f func(string) string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = f(s)
	}
	return out
}

// securityFlags are a node's TLS and gossip key flags (each also
// HANGMAN_<FLAG> in the environment, e.g. HANGMAN_GOSSIP_KEY).
type securityFlags struct {
	cert, key, ca          string
	gossipKey, gossipKeyFn string
}

func (s *securityFlags) register(fset *flag.FlagSet) {
	fset.StringVar(&s.cert, "tls-cert", "", "PEM node certificate: turns on mutual TLS for gRPC, raft and NATS routes, TLS for NATS clients (with --tls-key and --tls-ca; see \"hangman certs\")")
	fset.StringVar(&s.key, "tls-key", "", "PEM key of --tls-cert")
	fset.StringVar(&s.ca, "tls-ca", "", "PEM CA every peer's and client's certificate must chain to")
	fset.StringVar(&s.gossipKey, "gossip-key", "", "base64 serf gossip encryption key (32 bytes, as made by \"hangman certs\"); nodes without it cannot join")
	fset.StringVar(&s.gossipKeyFn, "gossip-key-file", "", "file holding the base64 gossip key (instead of --gossip-key)")
}

func (s *securityFlags) load() (*tlsutil.Bundle, []byte, error) {
	b, err := tlsutil.LoadOptional(s.cert, s.key, s.ca)
	if err != nil {
		return nil, nil, err
	}
	keyText := s.gossipKey
	if s.gossipKeyFn != "" {
		raw, err := os.ReadFile(s.gossipKeyFn)
		if err != nil {
			return nil, nil, fmt.Errorf("read gossip key: %w", err)
		}
		// Both may be set when security.env is in the environment; they
		// must then agree.
		if keyText != "" && strings.TrimSpace(keyText) != strings.TrimSpace(string(raw)) {
			return nil, nil, errors.New("--gossip-key and --gossip-key-file hold different keys: set one")
		}
		keyText = string(raw)
	}
	key, err := tlsutil.ParseGossipKey(keyText)
	if err != nil {
		return nil, nil, fmt.Errorf("--gossip-key: %w", err)
	}
	return b, key, nil
}
