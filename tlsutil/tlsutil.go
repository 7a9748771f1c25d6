// Package tlsutil is the one shape of TLS every hangman link uses: the
// gRPC servers and clients, the raft transport, the NATS routes and client
// port. It loads PEM files into a Bundle (this process's certificate and
// the cluster CA) and turns a Bundle into tls.Configs; it also makes the
// development CA, certificates and gossip key of `hangman certs`.
//
// Identity is by role, not by address: nodes dial each other by IP, relays
// dial nodes by name, Kubernetes by a headless service, so instead of
// depending on how a peer was reached, every node certificate carries the
// DNS name NodeName, clients verify a node server against that name, and
// node-to-node links (raft, NATS routes) accept only peers presenting it.
// Only the cluster CA can issue such certificates, so a certificate from any
// other CA, or a relay's client certificate, cannot join raft or the NATS
// cluster.
//
// It imports nothing of raft, NATS or gRPC: they import it.
package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"slices"
)

// NodeName is the DNS name in every game node's certificate. Clients of a
// node (relays, other nodes, the publisher) verify the node's certificate
// against it, whatever address they dialled.
const NodeName = "hangman-node"

// RelayName is the DNS name in a relay's client certificate, naming its
// role for logs and audits; it grants nothing on node-to-node links.
const RelayName = "hangman-relay"

// Bundle is what one process needs for TLS: its own certificate and key,
// and the pool of CAs it trusts for peers.
type Bundle struct {
	Cert  tls.Certificate
	Roots *x509.CertPool
}

// Load reads a certificate, its key and the CA bundle from PEM files.
func Load(certFile, keyFile, caFile string) (*Bundle, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load certificate %s with key %s: %w", certFile, keyFile, err)
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("read CA %s: %w", caFile, err)
	}
	return NewBundle(cert, caPEM)
}

// LoadOptional is Load when any of the files is named and nil when none
// is (plaintext: dev mode and tests). Naming only some is an error: a
// half-configured TLS setup must not silently fall back to plaintext.
func LoadOptional(certFile, keyFile, caFile string) (*Bundle, error) {
	if certFile == "" && keyFile == "" && caFile == "" {
		return nil, nil
	}
	if certFile == "" || keyFile == "" || caFile == "" {
		return nil, errors.New("TLS needs all of --tls-cert, --tls-key and --tls-ca")
	}
	return Load(certFile, keyFile, caFile)
}

// NewBundle builds a Bundle from a parsed certificate and the CA PEM.
func NewBundle(cert tls.Certificate, caPEM []byte) (*Bundle, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("CA file holds no PEM certificate")
	}
	if cert.Leaf == nil && len(cert.Certificate) > 0 {
		leaf, err := x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			return nil, fmt.Errorf("parse certificate: %w", err)
		}
		cert.Leaf = leaf
	}
	return &Bundle{Cert: cert, Roots: pool}, nil
}

// IsNode reports whether the bundle's own certificate is a node's.
func (b *Bundle) IsNode() bool {
	return b != nil && b.Cert.Leaf != nil && slices.Contains(b.Cert.Leaf.DNSNames, NodeName)
}

// ServerConfig is a server's TLS config. With requireClient, clients must
// present a certificate from the CA (mutual TLS); without, they need none
// (the NATS client port, where users authenticate with passwords).
func (b *Bundle) ServerConfig(requireClient bool) *tls.Config {
	c := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{b.Cert},
		ClientCAs:    b.Roots,
	}
	if requireClient {
		c.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return c
}

// ClientConfig is the TLS config of a client of a node: it presents this
// bundle's certificate and verifies the server as a node of the cluster.
func (b *Bundle) ClientConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{b.Cert},
		RootCAs:      b.Roots,
		ServerName:   NodeName,
	}
}

// PeerConfig is the TLS config of a node-to-node link (raft, NATS routes),
// used on both ends: certificates are required and verified both ways and
// the peer's must be a node's, so a relay's certificate, or any from
// another CA, is refused.
func (b *Bundle) PeerConfig() *tls.Config {
	c := b.ClientConfig()
	c.ClientCAs = b.Roots
	c.ClientAuth = tls.RequireAndVerifyClientCert
	c.VerifyConnection = VerifyNodePeer
	return c
}

// VerifyNodePeer refuses a connection whose verified peer certificate is
// not a node's. It runs after chain verification.
func VerifyNodePeer(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("peer presented no certificate")
	}
	leaf := cs.PeerCertificates[0]
	if !slices.Contains(leaf.DNSNames, NodeName) {
		return fmt.Errorf("peer certificate %q is not a hangman node's (no %s name)", leaf.Subject.CommonName, NodeName)
	}
	return nil
}
