package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestE2ETLS covers listener TLS through the app: the certificate chosen
// by SNI (two names plus a default), TLS 1.1 refused, HTTP/2 by ALPN, and
// certificate rotation by replacing the files and reloading.
func TestE2ETLS(t *testing.T) {
	up := newE2EEcho(t)
	ca := newE2ECA(t)
	defCrt, defKey, defSerial := ca.issue(t, "default", "default.e2e.test")
	aCrt, aKey, aSerial := ca.issue(t, "a", "a.e2e.test")
	bCrt, bKey, bSerial := ca.issue(t, "b", "b.e2e.test", "*.b.e2e.test")
	cfg := fmt.Sprintf(`
listen:
  - addr: "127.0.0.1:0"
    tls:
      certificates:
        - {cert: %q, key: %q}
        - {cert: %q, key: %q}
        - {cert: %q, key: %q}
admin: {addr: "127.0.0.1:0"}
shutdown: {drain_delay: 0s, grace: 5s}
access_log: {disabled: true}
upstreams:
  app: {endpoints: [%q]}
routes:
  - name: all
    backends: [{upstream: app}]
`, defCrt, defKey, aCrt, aKey, bCrt, bKey, up.addr())
	ta := startApp(t, cfg)
	addr := e2eAddr(ta, 0)

	// handshake connects with conf and returns the serial of the leaf
	// certificate the server presented.
	handshake := func(t *testing.T, conf *tls.Config) (*big.Int, error) {
		t.Helper()
		d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: conf}
		c, err := d.DialContext(context.Background(), "tcp", addr)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		return c.(*tls.Conn).ConnectionState().PeerCertificates[0].SerialNumber, nil
	}

	t.Run("certificate by SNI", func(t *testing.T) {
		tests := []struct {
			name       string
			serverName string // sent as SNI; "" sends none
			verifyAs   string // the name the client verifies
			want       *big.Int
		}{
			{"exact name a", "a.e2e.test", "a.e2e.test", aSerial},
			{"exact name b", "b.e2e.test", "b.e2e.test", bSerial},
			{"wildcard of b", "x.b.e2e.test", "x.b.e2e.test", bSerial},
			{"name case and trailing dot", "A.E2E.TEST.", "a.e2e.test", aSerial},
			{"unknown name gets the default", "other.e2e.test", "default.e2e.test", defSerial},
			{"no SNI gets the default", "", "default.e2e.test", defSerial},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				conf := e2eTLSClient(ca, tc.verifyAs)
				if tc.serverName != tc.verifyAs {
					// Send one name, verify the leaf against another.
					conf.ServerName = tc.serverName
					conf.InsecureSkipVerify = true
					conf.VerifyConnection = func(cs tls.ConnectionState) error {
						_, err := cs.PeerCertificates[0].Verify(x509Opts(ca, tc.verifyAs))
						return err
					}
				}
				got, err := handshake(t, conf)
				if err != nil {
					t.Fatalf("handshake: %v", err)
				}
				if got.Cmp(tc.want) != 0 {
					t.Errorf("certificate serial for SNI %q: got %v, want %v", tc.serverName, got, tc.want)
				}
			})
		}
	})

	t.Run("versions", func(t *testing.T) {
		tests := []struct {
			name    string
			max     uint16
			wantErr bool
		}{
			{"TLS 1.0 refused", tls.VersionTLS10, true},
			{"TLS 1.1 refused", tls.VersionTLS11, true},
			{"TLS 1.2 accepted", tls.VersionTLS12, false},
			{"TLS 1.3 accepted", tls.VersionTLS13, false},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				conf := e2eTLSClient(ca, "a.e2e.test")
				conf.MinVersion, conf.MaxVersion = tls.VersionTLS10, tc.max
				_, err := handshake(t, conf)
				if gotErr := err != nil; gotErr != tc.wantErr {
					t.Errorf("handshake with at most %s: got error %v, want error: %v", tls.VersionName(tc.max), err, tc.wantErr)
				}
				// The server must be the one refusing (its alert), not the
				// client declining to offer an old version.
				if tc.wantErr && err != nil && !strings.Contains(err.Error(), "remote error: tls: protocol version not supported") {
					t.Errorf("handshake with at most %s: got %v, want the server's protocol_version alert", tls.VersionName(tc.max), err)
				}
			})
		}
	})

	t.Run("HTTP/2 by ALPN", func(t *testing.T) {
		tests := []struct {
			name      string
			transport *http.Transport
			wantMajor int
		}{
			{"h2 client", &http.Transport{TLSClientConfig: e2eTLSClient(ca, "a.e2e.test"), ForceAttemptHTTP2: true}, 2},
			{"http/1.1 client", &http.Transport{TLSClientConfig: e2eTLSClient(ca, "a.e2e.test"), TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}, 1},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				defer tc.transport.CloseIdleConnections()
				client := &http.Client{Transport: tc.transport, Timeout: 5 * time.Second}
				resp, err := client.Get("https://" + addr + "/proto")
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || resp.ProtoMajor != tc.wantMajor {
					t.Errorf("GET over TLS: got %d %s, want 200 HTTP/%d", resp.StatusCode, resp.Proto, tc.wantMajor)
				}
				if got := up.last.Load().Header.Get("X-Forwarded-Proto"); got != "https" {
					t.Errorf("upstream X-Forwarded-Proto: got %q, want %q", got, "https")
				}
			})
		}
	})

	t.Run("rotation by reload", func(t *testing.T) {
		// An open connection keeps the certificate it got.
		conf := e2eTLSClient(ca, "a.e2e.test")
		old, err := tls.Dial("tcp", addr, conf)
		if err != nil {
			t.Fatal(err)
		}
		defer old.Close()

		_, _, newA := ca.issue(t, "a", "a.e2e.test") // same paths, new files
		if newA.Cmp(aSerial) == 0 {
			t.Fatal("the new certificate has the old serial")
		}
		if err := ta.Reload(context.Background()); err != nil {
			t.Fatalf("reload: %v", err)
		}
		got, err := handshake(t, e2eTLSClient(ca, "a.e2e.test"))
		if err != nil {
			t.Fatalf("handshake after reload: %v", err)
		}
		if got.Cmp(newA) != 0 {
			t.Errorf("certificate for a.e2e.test after rotation: got serial %v, want the new %v (old %v)", got, newA, aSerial)
		}
		if got, _ := handshake(t, e2eTLSClient(ca, "b.e2e.test")); got == nil || got.Cmp(bSerial) != 0 {
			t.Errorf("certificate for b.e2e.test after rotating a: got serial %v, want unchanged %v", got, bSerial)
		}
		if got := old.ConnectionState().PeerCertificates[0].SerialNumber; got.Cmp(aSerial) != 0 {
			t.Errorf("connection opened before the reload: got serial %v, want the old %v", got, aSerial)
		}
		// The old connection still serves.
		old.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(old, "GET /still HTTP/1.1\r\nHost: a.e2e.test\r\nConnection: close\r\n\r\n")
		line := make([]byte, 12)
		if _, err := io.ReadFull(old, line); err != nil || string(line) != "HTTP/1.1 200" {
			t.Errorf("request on the pre-reload connection: got %q (err %v), want HTTP/1.1 200", line, err)
		}
	})

	t.Run("rotation to a broken file keeps the old certificate", func(t *testing.T) {
		before, err := handshake(t, e2eTLSClient(ca, "a.e2e.test"))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, aKey, "not a key")
		if err := ta.Reload(context.Background()); err == nil {
			t.Errorf("reload with a broken key file: got nil error, want one")
		}
		got, err := handshake(t, e2eTLSClient(ca, "a.e2e.test"))
		if err != nil || got.Cmp(before) != 0 {
			t.Errorf("certificate after a failed reload: got serial %v (err %v), want the previous %v", got, err, before)
		}
	})
}

// x509Opts verifies a server certificate for name against ca.
func x509Opts(ca *e2eCA, name string) x509.VerifyOptions {
	return x509.VerifyOptions{Roots: ca.pool, DNSName: name}
}
