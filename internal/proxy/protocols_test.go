package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"torii/internal/config"
	"torii/internal/request"
	"torii/internal/telemetry"
	"torii/internal/testpki"
)

// h2Front serves h over HTTP/2 as the lead's front handler would: over
// TLS (ALPN h2) when useTLS, otherwise cleartext HTTP/2 with prior
// knowledge. Each request's Info is observed in m (when not nil) and sent
// on infos once h is done. roots verifies the TLS front; nil for h2c.
func h2Front(t testing.TB, h http.Handler, useTLS bool, m *telemetry.Metrics) (srv *httptest.Server, roots *x509.CertPool, infos <-chan *request.Info) {
	t.Helper()
	ch := make(chan *request.Info, 16)
	srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := testInfo(r, false)
		defer func() {
			if m != nil {
				m.Observe(info, time.Since(info.Start))
			}
			ch <- info
		}()
		h.ServeHTTP(w, r.WithContext(request.NewContext(r.Context(), info)))
	}))
	if useTLS {
		srv.EnableHTTP2 = true
		srv.StartTLS()
		roots = x509.NewCertPool()
		roots.AddCert(srv.Certificate())
	} else {
		var p http.Protocols
		p.SetUnencryptedHTTP2(true)
		srv.Config.Protocols = &p
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv, roots, ch
}

// h2Client returns an HTTP/2-only client for a front from h2Front.
func h2Client(roots *x509.CertPool) *http.Client {
	var p http.Protocols
	tr := &http.Transport{Protocols: &p}
	if roots != nil {
		p.SetHTTP2(true)
		tr.TLSClientConfig = &tls.Config{RootCAs: roots}
	} else {
		p.SetUnencryptedHTTP2(true)
	}
	return &http.Client{Transport: tr}
}

// protoOrigin starts an upstream of kind "http", "h2c", "https" or "h2"
// (the last two over TLS with pki's server certificate, mTLS requiring a
// client certificate) serving h.
func protoOrigin(t testing.TB, kind string, pki *testpki.PKI, mTLS bool, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
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
		srv.TLS = pki.ServerTLS(mTLS)
		srv.StartTLS()
	default:
		t.Fatalf("unknown origin kind %q", kind)
	}
	t.Cleanup(srv.Close)
	return srv
}

func TestUpstreamProtocolThroughProxy(t *testing.T) {
	pki := testpki.New(t)
	withCert := &config.UpstreamTLS{CA: pki.CAFile, Cert: pki.ClientCert, Key: pki.ClientKey}
	tests := []struct {
		name     string
		origin   string
		mTLS     bool
		protocol string
		tls      *config.UpstreamTLS
		status   int
		want     string // the body: the protocol and scheme the upstream saw
	}{
		{"http1", "http", false, "", nil, 200, "HTTP/1.1 plain"},
		{"h2c", "h2c", false, "h2c", nil, 200, "HTTP/2.0 plain"},
		{"https with ca", "https", false, "", &config.UpstreamTLS{CA: pki.CAFile}, 200, "HTTP/1.1 tls"},
		{"https without ca", "https", false, "", &config.UpstreamTLS{}, 502, ""},
		{"h2 over TLS", "h2", false, "h2", &config.UpstreamTLS{CA: pki.CAFile}, 200, "HTTP/2.0 tls"},
		{"mTLS with client certificate", "https", true, "", withCert, 200, "HTTP/1.1 tls"},
		{"mTLS without client certificate", "https", true, "", &config.UpstreamTLS{CA: pki.CAFile}, 502, ""},
		{"h2 mTLS with client certificate", "h2", true, "h2", withCert, 200, "HTTP/2.0 tls"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := protoOrigin(t, tt.origin, pki, tt.mTLS, func(w http.ResponseWriter, r *http.Request) {
				over := "plain"
				if r.TLS != nil {
					over = "tls"
				}
				io.WriteString(w, r.Proto+" "+over)
			})
			pool := newPool(t, "app", func(c *config.Upstream) { c.Protocol, c.TLS = tt.protocol, tt.tls },
				o.Listener.Addr().String())
			rec, info := serve(newHandler(t, pool, Options{}), httptest.NewRequest("GET", "/", nil))
			if rec.Code != tt.status {
				t.Fatalf("got status %d (err %v), want %d", rec.Code, info.Err, tt.status)
			}
			if tt.want != "" && rec.Body.String() != tt.want {
				t.Errorf("upstream saw %q, want %q", rec.Body, tt.want)
			}
		})
	}
}

// grpcUpstream starts a real gRPC server offering the health service,
// over TLS with pki's server certificate when pki is not nil, otherwise
// over h2c.
func grpcUpstream(t testing.TB, pki *testpki.PKI) (addr string, hs *health.Server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var opts []grpc.ServerOption
	if pki != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(pki.ServerTLS(false))))
	}
	s := grpc.NewServer(opts...)
	hs = health.NewServer()
	healthpb.RegisterHealthServer(s, hs)
	go s.Serve(ln)
	t.Cleanup(s.Stop)
	return ln.Addr().String(), hs
}

func TestGRPC(t *testing.T) {
	pki := testpki.New(t)
	tests := []struct {
		name        string
		upstreamTLS bool // gRPC over TLS (protocol h2), otherwise h2c
		frontTLS    bool // the client reaches torii over TLS, otherwise h2c
	}{
		{"h2c all the way", false, false},
		{"TLS all the way", true, true},
		{"TLS front, h2c upstream", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var upPKI *testpki.PKI
			if tt.upstreamTLS {
				upPKI = pki
			}
			addr, hs := grpcUpstream(t, upPKI)
			pool := newPool(t, "grpc", func(c *config.Upstream) {
				c.Protocol = "h2c"
				if tt.upstreamTLS {
					c.Protocol, c.TLS = "h2", &config.UpstreamTLS{CA: pki.CAFile}
				}
			}, addr)
			reg := prometheus.NewRegistry()
			m, err := telemetry.NewMetrics(reg, nil)
			if err != nil {
				t.Fatal(err)
			}
			// A short route timeout shows a stream outlives it once its
			// head is in.
			h := newHandler(t, pool, Options{Timeout: 300 * time.Millisecond, Attempts: 1, RetryOn: DefaultRetryOn})
			srv, roots, infos := h2Front(t, h, tt.frontTLS, m)

			creds := insecure.NewCredentials()
			if tt.frontTLS {
				creds = credentials.NewTLS(&tls.Config{RootCAs: roots})
			}
			conn, err := grpc.NewClient("passthrough:///"+srv.Listener.Addr().String(), grpc.WithTransportCredentials(creds))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			client := healthpb.NewHealthClient(conn)
			ctx := testContext(t)

			// Unary: response, then trailers with grpc-status 0.
			res, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
			if err != nil || res.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Fatalf("Check: got %v, %v; want SERVING", res.GetStatus(), err)
			}
			checkInfo(t, "Check", waitInfo(t, infos), 200, "0")

			// Unary with an error: a Trailers-Only response.
			_, err = client.Check(ctx, &healthpb.HealthCheckRequest{Service: "no.such.Service"})
			if got := status.Code(err); got != codes.NotFound {
				t.Fatalf("Check unknown service: got %v (%v), want NotFound", got, err)
			}
			checkInfo(t, "Check unknown service", waitInfo(t, infos), 200, "5")

			// Server streaming: each status change arrives as it happens.
			hs.SetServingStatus("shop.Cart", healthpb.HealthCheckResponse_SERVING)
			wctx, cancel := context.WithCancel(ctx)
			stream, err := client.Watch(wctx, &healthpb.HealthCheckRequest{Service: "shop.Cart"})
			if err != nil {
				t.Fatal(err)
			}
			want := []healthpb.HealthCheckResponse_ServingStatus{
				healthpb.HealthCheckResponse_SERVING,
				healthpb.HealthCheckResponse_NOT_SERVING,
				healthpb.HealthCheckResponse_SERVING,
			}
			for i, w := range want {
				if i == 1 {
					time.Sleep(400 * time.Millisecond) // past the route timeout
				}
				if i > 0 {
					hs.SetServingStatus("shop.Cart", w)
				}
				got, err := stream.Recv()
				if err != nil || got.GetStatus() != w {
					t.Fatalf("Watch update %d: got %v, %v; want %v", i, got.GetStatus(), err, w)
				}
			}
			cancel()
			// The client gave up on the stream: CANCELLED.
			checkInfo(t, "Watch", waitInfo(t, infos), 200, "1")

			for _, s := range []struct {
				code string
				want float64
			}{{"OK", 1}, {"NOT_FOUND", 1}, {"CANCELLED", 1}} {
				if got := counter(t, reg, "torii_grpc_requests_total", "grpc_code", s.code); got != s.want {
					t.Errorf("torii_grpc_requests_total{grpc_code=%q}: got %g, want %g", s.code, got, s.want)
				}
			}
			if got := counter(t, reg, "torii_http_requests_total", "code", "200"); got != 3 {
				t.Errorf("torii_http_requests_total{code=\"200\"}: got %g, want 3", got)
			}
		})
	}
}

// checkInfo fails t unless info records status and grpcStatus.
func checkInfo(t *testing.T, call string, info *request.Info, status int, grpcStatus string) {
	t.Helper()
	if info.Status != status || info.GRPCStatus != grpcStatus {
		t.Errorf("%s: got status %d grpc-status %q (err %v), want %d %q", call, info.Status, info.GRPCStatus, info.Err, status, grpcStatus)
	}
}

// counter returns the value of the counter name whose label has value,
// summed over its other labels.
func counter(t *testing.T, reg prometheus.Gatherer, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}

// TestFullDuplex streams a request body and its echo at once over
// HTTP/2, as a bidirectional gRPC call does: each line sent comes back
// before the next is written, so neither direction is buffered. The
// upstream's trailers, declared or not, reach the client.
func TestFullDuplex(t *testing.T) {
	for _, frontTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("front TLS %v", frontTLS), func(t *testing.T) {
			o := protoOrigin(t, "h2c", nil, false, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Trailer", "X-Declared")
				w.Header().Set("Content-Type", "application/grpc")
				w.WriteHeader(200)
				w.(http.Flusher).Flush()
				br := bufio.NewReader(r.Body)
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						break
					}
					io.WriteString(w, "echo "+line)
					w.(http.Flusher).Flush()
				}
				w.Header().Set("X-Declared", "d")
				w.Header().Set(http.TrailerPrefix+"Grpc-Status", "0")
			})
			pool := newPool(t, "app", func(c *config.Upstream) { c.Protocol = "h2c" }, o.Listener.Addr().String())
			srv, roots, infos := h2Front(t, newHandler(t, pool, Options{}), frontTLS, nil)

			pr, pw := io.Pipe()
			req, _ := http.NewRequestWithContext(testContext(t), "POST", srv.URL+"/echo.Echo/Stream", pr)
			req.Header.Set("Content-Type", "application/grpc")
			req.Header.Set("Te", "trailers")
			res, err := h2Client(roots).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			br := bufio.NewReader(res.Body)
			for i := range 3 {
				fmt.Fprintf(pw, "line %d\n", i)
				got, err := br.ReadString('\n')
				if want := fmt.Sprintf("echo line %d\n", i); err != nil || got != want {
					t.Fatalf("echo %d: got %q, %v; want %q", i, got, err, want)
				}
			}
			pw.Close()
			if _, err := io.ReadAll(br); err != nil {
				t.Fatal(err)
			}
			for name, want := range map[string]string{"X-Declared": "d", "Grpc-Status": "0"} {
				if got := res.Trailer.Get(name); got != want {
					t.Errorf("trailer %s: got %q, want %q", name, got, want)
				}
			}
			checkInfo(t, "stream", waitInfo(t, infos), 200, "0")
		})
	}
}

// TestGRPCNotRetried shows a gRPC call that reached an upstream which
// died before answering is not sent again, even with retries on.
func TestGRPCNotRetried(t *testing.T) {
	reset := newOrigin(t, behaviour(t, "reset"))
	ok := newOrigin(t, behaviour(t, "ok"))
	pool := newPool(t, "app", nil, reset.addr(), ok.addr())
	h := newHandler(t, pool, Options{Attempts: 2, RetryOn: DefaultRetryOn | RetryTimeout})
	r := httptest.NewRequest("POST", "/svc/Call", strings.NewReader("\x00\x00\x00\x00\x02hi"))
	r.Header.Set("Content-Type", "application/grpc")
	rec, info := serve(h, r)
	if rec.Code != 502 || info.Tries != 1 || ok.hits.Load() != 0 {
		t.Errorf("got status %d after %d tries, %d hits on the second endpoint; want 502, 1, 0",
			rec.Code, info.Tries, ok.hits.Load())
	}
}

func TestServerSentEventsOverH2C(t *testing.T) {
	next := make(chan struct{})
	o := protoOrigin(t, "h2c", nil, false, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-next:
		case <-r.Context().Done():
			return
		}
		fmt.Fprint(w, "data: two\n\n")
	})
	pool := newPool(t, "app", func(c *config.Upstream) { c.Protocol = "h2c" }, o.Listener.Addr().String())
	srv, infos := front(t, newHandler(t, pool, Options{}))
	req, _ := http.NewRequestWithContext(testContext(t), "GET", srv.URL+"/events", nil)
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	br := bufio.NewReader(res.Body)
	// Event one arrives while the upstream still holds event two back.
	if ev := readEvent(t, br); ev != "data: one" {
		t.Fatalf("first event: got %q, want %q", ev, "data: one")
	}
	close(next)
	if ev := readEvent(t, br); ev != "data: two" {
		t.Fatalf("second event: got %q, want %q", ev, "data: two")
	}
	if info := waitInfo(t, infos); info.Err != nil || info.Status != 200 {
		t.Errorf("info: got status %d err %v, want 200 and no error", info.Status, info.Err)
	}
}

func BenchmarkProxyH2C(b *testing.B) {
	o := protoOrigin(b, "h2c", nil, false, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("hello, world\n"))
	})
	pool := newPool(b, "app", func(c *config.Upstream) { c.Protocol = "h2c" }, o.Listener.Addr().String())
	h := newHandler(b, pool, Options{Timeout: 5 * time.Second, Attempts: 1, RetryOn: DefaultRetryOn})
	r := httptest.NewRequest("GET", "http://app.example.com/items?id=1", nil)
	r.Header.Set("User-Agent", "bench")
	r.Header.Set("Accept", "*/*")
	info := testInfo(r, false)
	r = r.WithContext(requestContext(r, info))
	b.ReportAllocs()
	for b.Loop() {
		info.Tries = 0
		w := &discardWriter{h: make(http.Header)}
		h.ServeHTTP(w, r)
		if w.status != 200 {
			b.Fatalf("status %d", w.status)
		}
	}
}
