package tlsutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"strings"
	"time"
)

// CA is a certificate authority held in memory: the development CA of
// `hangman certs`, and the throwaway CAs of tests.
type CA struct {
	Cert    *x509.Certificate
	Key     *ecdsa.PrivateKey
	CertPEM []byte
}

// NewCA makes a self-signed ECDSA P-256 CA valid for validFor.
func NewCA(commonName string, validFor time.Duration) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"hangman"}},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(validFor),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse CA certificate: %w", err)
	}
	return &CA{Cert: cert, Key: key, CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// KeyPEM returns the CA's private key in PEM.
func (ca *CA) KeyPEM() ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(ca.Key)
	if err != nil {
		return nil, fmt.Errorf("marshal CA key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}

// Leaf says what certificate to issue.
type Leaf struct {
	// CommonName names the holder (a node id, "relay").
	CommonName string
	// Hosts are DNS names and IP addresses to put in the SANs.
	Hosts []string
	// Server and Client select the extended key usages.
	Server, Client bool
	// ValidFor is the lifetime; zero means a year.
	ValidFor time.Duration
}

// NodeLeaf is the certificate of a game node: server and client (it
// serves gRPC, raft and NATS and dials its peers), with NodeName, the
// given hosts, localhost and 127.0.0.1 in its SANs.
func NodeLeaf(id string, hosts ...string) Leaf {
	return Leaf{CommonName: id, Hosts: append([]string{NodeName, "localhost", "127.0.0.1", "::1"}, hosts...), Server: true, Client: true}
}

// RelayLeaf is the client certificate of a relay.
func RelayLeaf(name string) Leaf {
	return Leaf{CommonName: name, Hosts: []string{RelayName}, Client: true}
}

// Issue signs a certificate for l and returns it and its key in PEM.
func (ca *CA) Issue(l Leaf) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("key for %s: %w", l.CommonName, err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	if l.ValidFor == 0 {
		l.ValidFor = 365 * 24 * time.Hour
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: l.CommonName, Organization: []string{"hangman"}},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(l.ValidFor),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	if l.Server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	if l.Client {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	seen := map[string]bool{}
	for _, h := range l.Hosts {
		h = strings.TrimSpace(h)
		if h == "" || seen[h] {
			continue
		}
		seen[h] = true
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("sign certificate for %s: %w", l.CommonName, err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("marshal key for %s: %w", l.CommonName, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), nil
}

// Bundle issues a certificate for l and returns it, with this CA as the
// trusted root, ready to use (tests use it to skip the files).
func (ca *CA) Bundle(l Leaf) (*Bundle, error) {
	certPEM, keyPEM, err := ca.Issue(l)
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load issued certificate: %w", err)
	}
	return NewBundle(cert, ca.CertPEM)
}

func newSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	return n, nil
}

// GossipKeySize is the length of the serf gossip key: 32 bytes selects
// AES-256 in memberlist.
const GossipKeySize = 32

// NewGossipKey returns a fresh random gossip key, base64-encoded as
// --gossip-key takes it (the same format as `consul keygen`).
func NewGossipKey() (string, error) {
	b := make([]byte, GossipKeySize)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("gossip key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// ParseGossipKey decodes a base64 gossip key; memberlist accepts 16, 24 or
// 32 bytes (AES-128, -192, -256). Empty means no key (dev mode).
func ParseGossipKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("gossip key is not base64: %w", err)
	}
	switch len(b) {
	case 16, 24, 32:
		return b, nil
	default:
		return nil, fmt.Errorf("gossip key is %d bytes; want 16, 24 or 32 (make one with `hangman certs`)", len(b))
	}
}
