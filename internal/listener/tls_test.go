package listener

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/net/http2"

	"torii/internal/config"
)

func mustCerts(t *testing.T, certs ...tls.Certificate) *atomic.Pointer[Certs] {
	t.Helper()
	cs, err := NewCerts(certs...)
	if err != nil {
		t.Fatal(err)
	}
	var p atomic.Pointer[Certs]
	p.Store(cs)
	return &p
}

// whoami answers with the protocol and the TLS state the handler sees.
var whoami = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	tlsInfo := "none"
	if r.TLS != nil {
		tlsInfo = fmt.Sprintf("%s/%s", r.TLS.ServerName, r.TLS.NegotiatedProtocol)
	}
	fmt.Fprintf(w, "%s %s", r.Proto, tlsInfo)
})

func TestSNI(t *testing.T) {
	pki := newPKI(t)
	def := pki.issue(t, "default.example")
	a := pki.issue(t, "a.example", "A2.example")
	wild := pki.issue(t, "*.wild.example")
	ts := startServer(t, whoami, Options{TLS: ServerTLS(&config.ListenerTLS{}, mustCerts(t, def, a, wild)), HTTP2: NewHTTP2(100, nil)})
	tests := []struct{ sni, want string }{
		{"a.example", "a.example"},
		{"A.EXAMPLE", "a.example"},
		{"a2.example", "a.example"},
		{"a.example.", "a.example"},
		{"api.wild.example", "*.wild.example"},
		{"wild.example", "default.example"},
		{"a.b.wild.example", "default.example"},
		{"unknown.example", "default.example"},
		{"", "default.example"},
	}
	for _, tt := range tests {
		t.Run(tt.sni, func(t *testing.T) {
			c, err := tls.Dial("tcp", ts.addr, &tls.Config{ServerName: tt.sni, InsecureSkipVerify: true})
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer c.Close()
			if got := c.ConnectionState().PeerCertificates[0].Subject.CommonName; got != tt.want {
				t.Errorf("got certificate %q, want %q", got, tt.want)
			}
		})
	}
}

func TestProtocols(t *testing.T) {
	pki := newPKI(t)
	certs := mustCerts(t, pki.issue(t, "a.example"))
	tlsSrv := startServer(t, whoami, Options{TLS: ServerTLS(nil, certs), HTTP2: NewHTTP2(100, nil)})
	tlsNoH2 := startServer(t, whoami, Options{TLS: ServerTLS(nil, certs)})
	h2c := startServer(t, whoami, Options{HTTP2: NewHTTP2(100, nil), H2C: true})
	plain := startServer(t, whoami, Options{HTTP2: NewHTTP2(100, nil)})

	h1TLS := &http.Transport{TLSClientConfig: pki.clientTLS("a.example", "http/1.1")}
	h2TLS := &http2.Transport{TLSClientConfig: pki.clientTLS("a.example")}
	h2cClient := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}
	tests := []struct {
		name    string
		rt      http.RoundTripper
		url     string
		want    string
		wantErr bool
	}{
		{name: "HTTP/1.1 over TLS", rt: h1TLS, url: "https://" + tlsSrv.addr, want: "HTTP/1.1 a.example/http/1.1"},
		{name: "HTTP/2 over TLS", rt: h2TLS, url: "https://" + tlsSrv.addr, want: "HTTP/2.0 a.example/h2"},
		{name: "HTTP/2 off: TLS clients get HTTP/1.1", rt: &http.Transport{TLSClientConfig: pki.clientTLS("a.example"), ForceAttemptHTTP2: true}, url: "https://" + tlsNoH2.addr, want: "HTTP/1.1 a.example/http/1.1"},
		{name: "h2c", rt: h2cClient, url: "http://" + h2c.addr, want: "HTTP/2.0 none"},
		{name: "HTTP/1.1 on an h2c listener", rt: &http.Transport{}, url: "http://" + h2c.addr, want: "HTTP/1.1 none"},
		{name: "h2c refused without H2C", rt: h2cClient, url: "http://" + plain.addr, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := (&http.Client{Transport: tt.rt}).Get(tt.url + "/")
			if tt.wantErr {
				if err == nil {
					resp.Body.Close()
					t.Fatalf("got status %d, want an error", resp.StatusCode)
				}
				return
			}
			if err != nil {
				t.Fatalf("get: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(body) != tt.want {
				t.Errorf("got %q, want %q", body, tt.want)
			}
		})
	}
}

// TestCertificateReload swaps the certificate set: new handshakes get the
// new certificate, without rebinding.
func TestCertificateReload(t *testing.T) {
	pki := newPKI(t)
	certs := mustCerts(t, pki.issue(t, "old.example"))
	ts := startServer(t, whoami, Options{TLS: ServerTLS(nil, certs)})
	name := func() string {
		c, err := tls.Dial("tcp", ts.addr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	if got := name(); got != "old.example" {
		t.Fatalf("got %q, want old.example", got)
	}
	next, _ := NewCerts(pki.issue(t, "new.example"))
	certs.Store(next)
	if got := name(); got != "new.example" {
		t.Errorf("after reload: got %q, want new.example", got)
	}
}

func TestMinVersion(t *testing.T) {
	pki := newPKI(t)
	certs := mustCerts(t, pki.issue(t, "a.example"))
	ts := startServer(t, whoami, Options{TLS: ServerTLS(&config.ListenerTLS{MinVersion: "1.3"}, certs)})
	cfg := pki.clientTLS("a.example")
	cfg.MaxVersion = tls.VersionTLS12
	if c, err := tls.Dial("tcp", ts.addr, cfg); err == nil {
		c.Close()
		t.Fatalf("TLS 1.2 handshake succeeded against min_version 1.3")
	}
	cfg.MaxVersion = 0
	c, err := tls.Dial("tcp", ts.addr, cfg)
	if err != nil {
		t.Fatalf("TLS 1.3: %v", err)
	}
	c.Close()
}

func TestLoadCerts(t *testing.T) {
	pki := newPKI(t)
	dir := t.TempDir()
	aCert, aKey := writePair(t, dir, "a", pki.issue(t, "a.example"))
	bCert, bKey := writePair(t, dir, "b", pki.issue(t, "b.example"))
	garbage := filepath.Join(dir, "garbage.pem")
	os.WriteFile(garbage, []byte("not PEM"), 0o600)

	cs, err := LoadCerts([]config.Certificate{{Cert: aCert, Key: aKey}, {Cert: bCert, Key: bKey}})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if got := cs.Get("b.example").Leaf.Subject.CommonName; got != "b.example" {
		t.Errorf("got %q for b.example, want b.example", got)
	}
	if got := cs.Get("zzz").Leaf.Subject.CommonName; got != "a.example" {
		t.Errorf("got %q as default, want the first, a.example", got)
	}

	tests := []struct {
		name string
		cfgs []config.Certificate
		want string // in the error
	}{
		{"none", nil, "none configured"},
		{"missing file", []config.Certificate{{Cert: filepath.Join(dir, "nope.crt"), Key: aKey}}, "nope.crt"},
		{"garbage cert", []config.Certificate{{Cert: garbage, Key: aKey}}, "garbage.pem"},
		{"mismatched key", []config.Certificate{{Cert: aCert, Key: bKey}}, "a.crt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadCerts(tt.cfgs)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got error %v, want one naming %q", err, tt.want)
			}
		})
	}
}
