// Package testpki makes throwaway certificate authorities for tests: a CA,
// a server certificate for 127.0.0.1 and "upstream.test", and a client
// certificate, as PEM files in the test's temporary directory. Only tests
// import it.
package testpki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// PKI is a CA made for one test, with a server certificate for 127.0.0.1
// and "upstream.test", and a client certificate, written as PEM files in a
// temporary directory.
type PKI struct {
	// Roots holds the CA.
	Roots *x509.CertPool
	// Server is the server certificate and key.
	Server tls.Certificate
	// CAFile, ClientCert and ClientKey are PEM file paths.
	CAFile     string
	ClientCert string
	ClientKey  string
}

// New makes a PKI in t's temporary directory.
func New(t testing.TB) *PKI {
	t.Helper()
	dir := t.TempDir()
	caKey := newKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "torii test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(serial int64, usage x509.ExtKeyUsage, name string) ([]byte, *ecdsa.PrivateKey) {
		key := newKey(t)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: name},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		}
		if usage == x509.ExtKeyUsageServerAuth {
			tmpl.DNSNames = []string{"upstream.test"}
			tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, key
	}
	p := &PKI{Roots: x509.NewCertPool()}
	p.Roots.AddCert(ca)
	serverDER, serverKey := issue(2, x509.ExtKeyUsageServerAuth, "upstream.test")
	p.Server = tls.Certificate{Certificate: [][]byte{serverDER}, PrivateKey: serverKey}
	clientDER, clientKey := issue(3, x509.ExtKeyUsageClientAuth, "torii")

	p.CAFile = WritePEM(t, dir, "ca.pem", "CERTIFICATE", caDER)
	p.ClientCert = WritePEM(t, dir, "client.pem", "CERTIFICATE", clientDER)
	keyDER, err := x509.MarshalPKCS8PrivateKey(clientKey)
	if err != nil {
		t.Fatal(err)
	}
	p.ClientKey = WritePEM(t, dir, "client-key.pem", "PRIVATE KEY", keyDER)
	return p
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// WritePEM writes one PEM block to dir/name and returns the path.
func WritePEM(t testing.TB, dir, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// ServerTLS returns the TLS config of an upstream serving p's server
// certificate; mTLS makes it require a client certificate from p's CA.
func (p *PKI) ServerTLS(mTLS bool) *tls.Config {
	c := &tls.Config{Certificates: []tls.Certificate{p.Server}, MinVersion: tls.VersionTLS12}
	if mTLS {
		c.ClientAuth = tls.RequireAndVerifyClientCert
		c.ClientCAs = p.Roots
	}
	return c
}
