package upstream

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"torii/internal/config"
	"torii/internal/testpki"
)

// protoServer starts an upstream answering with the protocol it was
// spoken to in and whether that was over TLS ("HTTP/2.0 tls"). kind is
// "http", "h2c" (cleartext HTTP/2 with prior knowledge, and HTTP/1.1),
// "https" (TLS, HTTP/1.1 only) or "h2" (TLS, ALPN h2); tc configures TLS.
func protoServer(t testing.TB, kind string, tc *tls.Config) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		over := "plain"
		if r.TLS != nil {
			over = "tls"
		}
		io.WriteString(w, r.Proto+" "+over)
	}))
	switch kind {
	case "http":
		srv.Start()
	case "h2c":
		var p http.Protocols
		p.SetHTTP1(true)
		p.SetUnencryptedHTTP2(true)
		srv.Config.Protocols = &p
		srv.Start()
	case "https", "h2":
		srv.EnableHTTP2 = kind == "h2"
		srv.TLS = tc
		srv.StartTLS()
	default:
		t.Fatalf("unknown server kind %q", kind)
	}
	t.Cleanup(srv.Close)
	return srv
}

// get sends GET / to p's first endpoint through p's transport and returns
// the body.
func get(t testing.TB, p *Pool) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	addr := p.set.Load().eps[0].Addr()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.Scheme()+"://"+addr+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := p.Transport().RoundTrip(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return string(b), err
}

func TestUpstreamProtocolsAndTLS(t *testing.T) {
	pki := testpki.New(t)
	tests := []struct {
		name     string
		server   string // protoServer kind
		mTLS     bool   // the server requires a client certificate
		protocol string
		tls      *config.UpstreamTLS
		want     string // the body; "" means the request must fail
		wantErr  string // part of the failure, when want is ""
	}{
		{name: "http1 by default", server: "http", want: "HTTP/1.1 plain"},
		{name: "http1 named", server: "http", protocol: "http1", want: "HTTP/1.1 plain"},
		{name: "h2c", server: "h2c", protocol: "h2c", want: "HTTP/2.0 plain"},
		{name: "https verified with ca", server: "https", tls: &config.UpstreamTLS{CA: pki.CAFile}, want: "HTTP/1.1 tls"},
		{name: "https without ca fails verification", server: "https", tls: &config.UpstreamTLS{},
			wantErr: "certificate"},
		{name: "insecure_skip_verify", server: "https", tls: &config.UpstreamTLS{InsecureSkipVerify: true}, want: "HTTP/1.1 tls"},
		{name: "server_name verified", server: "https",
			tls: &config.UpstreamTLS{CA: pki.CAFile, ServerName: "upstream.test"}, want: "HTTP/1.1 tls"},
		{name: "wrong server_name", server: "https",
			tls: &config.UpstreamTLS{CA: pki.CAFile, ServerName: "other.test"}, wantErr: "other.test"},
		{name: "http1 over TLS to an h2 server stays HTTP/1.1", server: "h2",
			tls: &config.UpstreamTLS{CA: pki.CAFile}, want: "HTTP/1.1 tls"},
		{name: "h2 over TLS", server: "h2", protocol: "h2",
			tls: &config.UpstreamTLS{CA: pki.CAFile}, want: "HTTP/2.0 tls"},
		{name: "h2 to a server without h2 fails", server: "https", protocol: "h2",
			tls: &config.UpstreamTLS{CA: pki.CAFile}, wantErr: "protocol"},
		{name: "h2 without a tls block uses TLS and the system roots", server: "h2", protocol: "h2",
			wantErr: "certificate"},
		{name: "mTLS with a client certificate", server: "https", mTLS: true,
			tls:  &config.UpstreamTLS{CA: pki.CAFile, Cert: pki.ClientCert, Key: pki.ClientKey},
			want: "HTTP/1.1 tls"},
		{name: "mTLS over h2 with a client certificate", server: "h2", mTLS: true, protocol: "h2",
			tls:  &config.UpstreamTLS{CA: pki.CAFile, Cert: pki.ClientCert, Key: pki.ClientKey},
			want: "HTTP/2.0 tls"},
		{name: "mTLS without a client certificate", server: "https", mTLS: true,
			tls: &config.UpstreamTLS{CA: pki.CAFile}, wantErr: "certificate required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := protoServer(t, tt.server, pki.ServerTLS(tt.mTLS))
			cfg := &config.Upstream{
				Endpoints: []config.Endpoint{{Addr: srv.Listener.Addr().String()}},
				Protocol:  tt.protocol,
				TLS:       tt.tls,
			}
			p := newTestPool(t, "app", cfg, newTestRegistry(nil))
			got, err := get(t, p)
			switch {
			case tt.want != "" && err != nil:
				t.Fatalf("got error %v, want %q", err, tt.want)
			case tt.want != "" && got != tt.want:
				t.Errorf("got %q, want %q", got, tt.want)
			case tt.want == "" && err == nil:
				t.Errorf("got %q, want an error containing %q", got, tt.wantErr)
			case tt.want == "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Errorf("got error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestPoolScheme(t *testing.T) {
	tests := []struct {
		name, protocol string
		tls            *config.UpstreamTLS
		scheme, proto  string
	}{
		{"default", "", nil, "http", ProtocolHTTP1},
		{"http1 over tls", "http1", &config.UpstreamTLS{InsecureSkipVerify: true}, "https", ProtocolHTTP1},
		{"h2", "h2", nil, "https", ProtocolH2},
		{"h2c", "h2c", nil, "http", ProtocolH2C},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &config.Upstream{Endpoints: []config.Endpoint{{Addr: "127.0.0.1:1"}}, Protocol: tt.protocol, TLS: tt.tls}
			p := newTestPool(t, "app", cfg, newTestRegistry(nil))
			if p.Scheme() != tt.scheme || p.Protocol() != tt.proto {
				t.Errorf("got scheme %q protocol %q, want %q %q", p.Scheme(), p.Protocol(), tt.scheme, tt.proto)
			}
		})
	}
}

func TestTransportReuseTLS(t *testing.T) {
	pki := testpki.New(t)
	base := func() *config.Upstream {
		return &config.Upstream{
			Endpoints: []config.Endpoint{{Addr: "127.0.0.1:1"}},
			Protocol:  "h2",
			TLS:       &config.UpstreamTLS{CA: pki.CAFile, Cert: pki.ClientCert, Key: pki.ClientKey},
		}
	}
	tests := []struct {
		name string
		edit func(t *testing.T, u *config.Upstream)
		same bool
	}{
		{"same settings", func(*testing.T, *config.Upstream) {}, true},
		{"protocol written out differently", func(_ *testing.T, u *config.Upstream) { u.Protocol = "h2" }, true},
		{"protocol changed", func(_ *testing.T, u *config.Upstream) { u.Protocol = "http1" }, false},
		{"server name changed", func(_ *testing.T, u *config.Upstream) { u.TLS.ServerName = "upstream.test" }, false},
		{"verification turned off", func(_ *testing.T, u *config.Upstream) { u.TLS.InsecureSkipVerify = true }, false},
		{"client certificate dropped", func(_ *testing.T, u *config.Upstream) { u.TLS.Cert, u.TLS.Key = "", "" }, false},
		{"ca file rewritten in place", func(t *testing.T, u *config.Upstream) {
			// A rotated bundle under the same path: another CA appended.
			other := testpki.New(t)
			b1, err := os.ReadFile(u.TLS.CA)
			if err != nil {
				t.Fatal(err)
			}
			b2, err := os.ReadFile(other.CAFile)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(u.TLS.CA, append(b1, b2...), 0o600); err != nil {
				t.Fatal(err)
			}
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := newTestRegistry(nil)
			cfg := base()
			caBefore, _ := os.ReadFile(cfg.TLS.CA)
			t.Cleanup(func() { os.WriteFile(pki.CAFile, caBefore, 0o600) })
			a := newTestPool(t, "app", cfg, reg)
			cfg = base()
			tt.edit(t, cfg)
			b := newTestPool(t, "app", cfg, reg)
			if got := a.Transport() == b.Transport(); got != tt.same {
				t.Errorf("got same transport %v, want %v", got, tt.same)
			}
		})
	}
}

func TestNewPoolTLSErrors(t *testing.T) {
	pki := testpki.New(t)
	notPEM := testpki.WritePEM(t, t.TempDir(), "x.pem", "X", nil)
	os.WriteFile(notPEM, []byte("not a certificate"), 0o600)
	ep := []config.Endpoint{{Addr: "127.0.0.1:443"}}
	tests := []struct {
		name string
		cfg  *config.Upstream
		want string
	}{
		{"unknown protocol", &config.Upstream{Endpoints: ep, Protocol: "spdy"}, `unknown protocol "spdy"`},
		{"h2c with tls", &config.Upstream{Endpoints: ep, Protocol: "h2c", TLS: &config.UpstreamTLS{}}, "h2c"},
		{"missing ca file", &config.Upstream{Endpoints: ep, TLS: &config.UpstreamTLS{CA: "/nonexistent/ca.pem"}}, "read ca"},
		{"ca not PEM", &config.Upstream{Endpoints: ep, TLS: &config.UpstreamTLS{CA: notPEM}}, "no PEM certificate"},
		{"cert without key", &config.Upstream{Endpoints: ep, TLS: &config.UpstreamTLS{Cert: pki.ClientCert}}, "cert and key"},
		{"key does not match", &config.Upstream{Endpoints: ep,
			TLS: &config.UpstreamTLS{Cert: pki.ClientCert, Key: notPEM}}, "client certificate"},
		{"two host names without server_name", &config.Upstream{
			Endpoints: []config.Endpoint{{Addr: "a.internal:443"}, {Addr: "b.internal:443"}},
			TLS:       &config.UpstreamTLS{CA: pki.CAFile}}, "server_name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := newTestRegistry(nil)
			p, err := NewPool("app", tt.cfg, reg)
			if err == nil {
				p.Close()
				t.Fatalf("got no error, want one containing %q", tt.want)
			}
			if !strings.HasPrefix(err.Error(), `build upstream "app": `) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got error %q, want `build upstream \"app\": ...%s...`", err, tt.want)
			}
		})
	}
}

func TestServerNameDefault(t *testing.T) {
	tests := []struct {
		name      string
		endpoints []string
		tls       config.UpstreamTLS
		want      string
	}{
		{"ip literals: verified by address", []string{"127.0.0.1:443", "[::1]:443"}, config.UpstreamTLS{}, ""},
		{"one name", []string{"api.internal:443", "api.internal:8443"}, config.UpstreamTLS{}, "api.internal"},
		{"a name and an ip", []string{"api.internal:443", "10.0.0.1:443"}, config.UpstreamTLS{}, "api.internal"},
		{"explicit wins", []string{"a.internal:443", "b.internal:443"}, config.UpstreamTLS{ServerName: "svc.test"}, "svc.test"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &config.Upstream{TLS: &tt.tls}
			for _, e := range tt.endpoints {
				cfg.Endpoints = append(cfg.Endpoints, config.Endpoint{Addr: e})
			}
			tc, k, err := clientTLS(cfg, ProtocolHTTP1)
			if err != nil {
				t.Fatal(err)
			}
			if tc.ServerName != tt.want || k.serverName != tt.want {
				t.Errorf("got server name %q (key %q), want %q", tc.ServerName, k.serverName, tt.want)
			}
			if tc.MinVersion != tls.VersionTLS12 {
				t.Errorf("got min version %x, want TLS 1.2", tc.MinVersion)
			}
		})
	}
}

func TestHealthCheckProtocols(t *testing.T) {
	pki := testpki.New(t)
	tests := []struct {
		name     string
		server   string
		mTLS     bool
		protocol string
		tls      *config.UpstreamTLS
	}{
		{"h2c", "h2c", false, "h2c", nil},
		{"https with mTLS", "https", true, "", &config.UpstreamTLS{CA: pki.CAFile, Cert: pki.ClientCert, Key: pki.ClientKey}},
		{"h2", "h2", false, "h2", &config.UpstreamTLS{CA: pki.CAFile}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen := make(chan string, 8)
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				seen <- r.Proto
				io.WriteString(w, "ok")
			}))
			switch tt.server {
			case "h2c":
				var p http.Protocols
				p.SetUnencryptedHTTP2(true)
				srv.Config.Protocols = &p
				srv.Start()
			default:
				srv.EnableHTTP2 = tt.server == "h2"
				srv.TLS = pki.ServerTLS(tt.mTLS)
				srv.StartTLS()
			}
			t.Cleanup(srv.Close)
			addr := srv.Listener.Addr().String()
			clock := newFakeClock()
			reg := newTestRegistry(clock)
			cfg := &config.Upstream{
				Endpoints: []config.Endpoint{{Addr: addr}},
				Protocol:  tt.protocol,
				TLS:       tt.tls,
				Health:    &config.HealthCheck{Path: "/healthz", HealthyThreshold: 1, UnhealthyThreshold: 1},
			}
			p := newTestPool(t, "app", cfg, reg)
			p.healthClient = newHealthClient(p.s.conn, p.s.tls) // as Start would, without its loop
			e := endpoint(t, p, addr)
			p.checkOnce(context.Background(), e.st, e.addr)
			if st := statusOf(t, reg, "app", addr); !st.Healthy || st.LastCheckError != "" {
				t.Errorf("got healthy %v, last error %q; want healthy, no error", st.Healthy, st.LastCheckError)
			}
			wantProto := "HTTP/1.1"
			if tt.protocol == "h2" || tt.protocol == "h2c" {
				wantProto = "HTTP/2.0"
			}
			select {
			case got := <-seen:
				if got != wantProto {
					t.Errorf("check spoke %s, want %s", got, wantProto)
				}
			default:
				t.Error("the check never reached the upstream")
			}
		})
	}
}
