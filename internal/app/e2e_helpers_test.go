package app

// Helpers shared by the end-to-end tests in e2e_*_test.go: a throwaway PKI
// written to files (listeners load certificates from paths), a Redis
// address from the environment, raw-socket exchanges and a counting echo
// upstream.

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// e2eCA is a test certificate authority that issues leaf certificates
// into files.
type e2eCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
	dir  string
}

func newE2ECA(t *testing.T) *e2eCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "torii e2e test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &e2eCA{cert: cert, key: key, pool: pool, dir: t.TempDir()}
}

// issue writes a leaf certificate for names (and 127.0.0.1) signed by the
// CA to <dir>/<file>.crt and .key, replacing any files there (so a second
// call rotates it), and returns the paths and the leaf's serial number.
func (ca *e2eCA) issue(t *testing.T, file string, names ...string) (certPath, keyPath string, serial *big.Int) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err = rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath = filepath.Join(ca.dir, file+".crt")
	keyPath = filepath.Join(ca.dir, file+".key")
	writeFile(t, certPath, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeFile(t, keyPath, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})))
	return certPath, keyPath, serial
}

// e2eRedis returns the address of the test Redis from TORII_TEST_REDIS.
// Without it the test is skipped, except in CI, where it fails.
func e2eRedis(t *testing.T) string {
	t.Helper()
	if addr := os.Getenv("TORII_TEST_REDIS"); addr != "" {
		return addr
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("TORII_TEST_REDIS is not set; scripts/test starts Redis with scripts/redis and sets it")
	}
	t.Skip(`TORII_TEST_REDIS is not set; run: eval "$(scripts/redis)" && export TORII_TEST_REDIS`)
	return ""
}

// e2eDeadAddr returns a loopback address where nothing listens.
func e2eDeadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// e2eEcho is an upstream that counts the requests it sees and echoes
// their path and selected headers back.
type e2eEcho struct {
	*httptest.Server
	hits atomic.Int64
	last atomic.Pointer[http.Request]
}

func newE2EEcho(t *testing.T) *e2eEcho {
	t.Helper()
	e := &e2eEcho{}
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.hits.Add(1)
		io.Copy(io.Discard, r.Body)
		e.last.Store(r.Clone(r.Context()))
		w.Header().Set("X-Seen-Path", r.URL.Path)
		io.WriteString(w, "ok "+r.URL.Path)
	}))
	t.Cleanup(e.Close)
	return e
}

func (e *e2eEcho) addr() string { return e.Listener.Addr().String() }

// e2eAddr returns the host:port of the app's i-th data listener.
func e2eAddr(ta *testApp, i int) string { return ta.Addrs()[i].String() }

// e2eRawResult is what a raw-socket exchange produced.
type e2eRawResult struct {
	statuses []int  // status codes of the responses read, in order
	closed   bool   // whether the connection reached EOF after them
	after    string // why not, when closed is false
}

// e2eRaw writes req to addr in one piece and reads responses until the
// connection ends or nothing arrives for a second. It reports the
// statuses and whether the server closed the connection (EOF or reset)
// after its last response.
func e2eRaw(t *testing.T, addr, req string) e2eRawResult {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatalf("write request: %v", err)
	}
	var res e2eRawResult
	br := bufio.NewReader(c)
	for {
		c.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := br.Peek(1); err != nil {
			var ne net.Error
			switch {
			case errors.Is(err, io.EOF), isReset(err):
				res.closed = true
			case errors.As(err, &ne) && ne.Timeout():
				res.after = "connection still open 1s after the last response"
			default:
				res.after = "read: " + err.Error()
			}
			return res
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			res.after = "read response: " + err.Error()
			return res
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		res.statuses = append(res.statuses, resp.StatusCode)
	}
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe"))
}

// e2eTLSClient returns a TLS config that trusts ca and sends serverName.
func e2eTLSClient(ca *e2eCA, serverName string) *tls.Config {
	return &tls.Config{RootCAs: ca.pool, ServerName: serverName}
}
