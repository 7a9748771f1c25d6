package tlsutil

import (
	"crypto/tls"
	"encoding/base64"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func newCA(t *testing.T) *CA {
	t.Helper()
	ca, err := NewCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func bundle(t *testing.T, ca *CA, l Leaf) *Bundle {
	t.Helper()
	b, err := ca.Bundle(l)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// handshake runs a real TLS handshake over loopback TCP between a server
// and a client config and returns the first error either side saw.
func handshake(t *testing.T, server, client *tls.Config) error {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", server)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srvErr := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			srvErr <- err
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		err = c.(*tls.Conn).Handshake()
		if err == nil {
			_, err = c.Write([]byte{1})
		}
		srvErr <- err
	}()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(), client)
	if err != nil {
		<-srvErr
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	// With TLS 1.3 the server's verdict on the client arrives on read.
	if _, err := c.Read(make([]byte, 1)); err != nil {
		<-srvErr
		return err
	}
	return <-srvErr
}

func TestPeerLinksAcceptOnlyNodesOfTheCA(t *testing.T) {
	ca := newCA(t)
	n1 := bundle(t, ca, NodeLeaf("n1"))
	n2 := bundle(t, ca, NodeLeaf("n2"))
	if err := handshake(t, n1.PeerConfig(), n2.PeerConfig()); err != nil {
		t.Fatalf("two nodes of one CA: %v", err)
	}
	relay := bundle(t, ca, RelayLeaf("relay"))
	if err := handshake(t, n1.PeerConfig(), relay.PeerConfig()); err == nil {
		t.Fatal("a relay certificate was accepted on a node-to-node link")
	}
	stranger := bundle(t, newCA(t), NodeLeaf("n3"))
	if err := handshake(t, n1.PeerConfig(), stranger.PeerConfig()); err == nil {
		t.Fatal("a node certificate from another CA was accepted")
	}
	// A client of the node's server: a relay is welcome there.
	if err := handshake(t, n1.ServerConfig(true), relay.ClientConfig()); err != nil {
		t.Fatalf("relay as a client of a node: %v", err)
	}
	noCert := &tls.Config{RootCAs: n1.Roots, ServerName: NodeName, MinVersion: tls.VersionTLS12}
	if err := handshake(t, n1.ServerConfig(true), noCert); err == nil {
		t.Fatal("a client without a certificate passed mutual TLS")
	}
	// A relay certificate cannot pose as a node's server.
	if err := handshake(t, relay.ServerConfig(true), n1.ClientConfig()); err == nil {
		t.Fatal("a relay certificate was accepted as a node's server")
	}
}

func TestLoadFromFiles(t *testing.T) {
	ca := newCA(t)
	cert, key, err := ca.Issue(NodeLeaf("n1", "node1.example", "10.1.2.3"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cf, kf, caf := write("n1.pem", cert), write("n1-key.pem", key), write("ca.pem", ca.CertPEM)
	b, err := Load(cf, kf, caf)
	if err != nil {
		t.Fatal(err)
	}
	if !b.IsNode() {
		t.Fatal("node certificate not recognised as a node's")
	}
	leaf := b.Cert.Leaf
	if len(leaf.IPAddresses) != 3 || !strings.Contains(strings.Join(leaf.DNSNames, ","), "node1.example") {
		t.Fatalf("SANs %v %v", leaf.DNSNames, leaf.IPAddresses)
	}
	if b, err := LoadOptional("", "", ""); b != nil || err != nil {
		t.Fatalf("no files: %v %v, want plaintext", b, err)
	}
	if _, err := LoadOptional(cf, "", caf); err == nil {
		t.Fatal("a missing key file was not an error")
	}
	if _, err := Load(cf, kf, cf+".missing"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing CA: %v", err)
	}
}

func TestGossipKey(t *testing.T) {
	k, err := NewGossipKey()
	if err != nil {
		t.Fatal(err)
	}
	b, err := ParseGossipKey(k + "\n")
	if err != nil || len(b) != GossipKeySize {
		t.Fatalf("ParseGossipKey(NewGossipKey()) = %d bytes, %v", len(b), err)
	}
	if b, err := ParseGossipKey(""); b != nil || err != nil {
		t.Fatalf("empty key: %v %v", b, err)
	}
	for _, bad := range []string{"not base64!", base64.StdEncoding.EncodeToString(make([]byte, 20))} {
		if _, err := ParseGossipKey(bad); err == nil {
			t.Errorf("ParseGossipKey(%q) accepted", bad)
		}
	}
}
