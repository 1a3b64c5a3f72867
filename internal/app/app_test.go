package app

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// testApp is a running App on loopback ports.
type testApp struct {
	*App
	path  string
	base  string // data-plane base URL
	admin string // admin base URL
}

func writeFile(t testing.TB, path, body string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// startApp writes cfg to a temp file and starts an App on it. Listener
// addresses in cfg should be 127.0.0.1:0.
func startApp(t *testing.T, cfg string) *testApp {
	t.Helper()
	path := filepath.Join(t.TempDir(), "torii.yaml")
	writeFile(t, path, cfg)
	logger := slog.New(slog.NewJSONHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	a, err := New(Options{ConfigPath: path, Logger: logger, AccessLog: io.Discard})
	if err != nil {
		t.Fatalf("new app: %v", err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatalf("start app: %v", err)
	}
	ta := &testApp{App: a, path: path, base: "http://" + a.Addrs()[0].String()}
	if ad := a.AdminAddr(); ad != nil {
		ta.admin = "http://" + ad.String()
	}
	t.Cleanup(func() {
		if !a.draining.Load() {
			a.Shutdown()
		}
	})
	return ta
}

const testListeners = `
listen: [{addr: "127.0.0.1:0"}]
admin: {addr: "127.0.0.1:0"}
shutdown: {drain_delay: 0s, grace: 5s}
access_log: {disabled: true}
`

// gauge returns a metric's value from the app's registry (first series
// whose labels include want).
func gauge(t *testing.T, a *App, name string, want map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := a.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue next
				}
			}
			return metricValue(m), true
		}
	}
	return 0, false
}

func metricValue(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return 0
}

// backend is an httptest upstream on a fixed address that can be killed
// and revived.
type backend struct {
	t    *testing.T
	addr string
	name string
	hits atomic.Int64
	mu   sync.Mutex // guards srv
	srv  *httptest.Server
}

func newBackend(t *testing.T, name string) *backend {
	b := &backend{t: t, name: name}
	b.start("127.0.0.1:0")
	t.Cleanup(b.kill)
	return b
}

func (b *backend) start(addr string) {
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		b.t.Fatalf("listen %s: %v", addr, err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			b.hits.Add(1)
		}
		w.Header().Set("X-Backend", b.name)
		fmt.Fprintf(w, "%s %s", b.name, r.URL.Path)
	}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	b.mu.Lock()
	b.srv, b.addr = srv, ln.Addr().String()
	b.mu.Unlock()
}

func (b *backend) kill() {
	b.mu.Lock()
	srv := b.srv
	b.srv = nil
	b.mu.Unlock()
	if srv != nil {
		srv.CloseClientConnections()
		srv.Close()
	}
}

func (b *backend) revive() { b.start(b.addr) }

// TestEndpointKilledUnderLoad is acceptance point 2: two endpoints, one
// killed during 200 req/s of GETs: no client request fails, the dead one is
// ejected within 5 failed attempts, and it returns to rotation once its
// active health check passes.
func TestEndpointKilledUnderLoad(t *testing.T) {
	b1, b2 := newBackend(t, "b1"), newBackend(t, "b2")
	ta := startApp(t, testListeners+fmt.Sprintf(`
upstreams:
  app:
    endpoints: [%q, %q]
    health: {path: /healthz, interval: 100ms, timeout: 50ms, healthy_threshold: 1, unhealthy_threshold: 2}
    outlier: {consecutive_failures: 5, base_ejection: 30s}
routes:
  - name: all
    backends: [{upstream: app}]
    retries: {attempts: 2}
`, b1.addr, b2.addr))

	client := &http.Client{Timeout: 5 * time.Second}
	var failed, total atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	// 200 req/s from one client, one request every 5 ms. One at a time, so
	// "failed attempts before ejection" is exact: with concurrent clients a
	// try already on its way when the endpoint is ejected would count too.
	for w := 0; w < 1; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				total.Add(1)
				resp, err := client.Get(ta.base + "/items")
				if err != nil {
					failed.Add(1)
					t.Logf("request error: %v", err)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failed.Add(1)
					t.Logf("status %d", resp.StatusCode)
				}
			}
		}()
	}
	time.Sleep(time.Second)
	b1.kill()
	before := b1.hits.Load()
	retriesBefore, _ := gauge(t, ta.App, "torii_upstream_retries_total", map[string]string{"route": "all"})
	time.Sleep(1500 * time.Millisecond)

	var ejectedOrDown bool
	for _, st := range ta.Endpoints() {
		if st.Addr == b1.addr && (st.Ejected || !st.Healthy) {
			ejectedOrDown = true
		}
	}
	if !ejectedOrDown {
		t.Errorf("dead endpoint %s is neither ejected nor unhealthy: %+v", b1.addr, ta.Endpoints())
	}
	retriesAfter, _ := gauge(t, ta.App, "torii_upstream_retries_total", map[string]string{"route": "all"})
	if n := retriesAfter - retriesBefore; n > 5 {
		t.Errorf("failed attempts on the dead endpoint before it left rotation: got %v, want at most 5", n)
	}

	b1.revive()
	deadline := time.Now().Add(3 * time.Second)
	for b1.hits.Load() == before && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if b1.hits.Load() == before {
		t.Errorf("revived endpoint got no traffic within 3s of its health check passing: %+v", ta.Endpoints())
	}
	if f := failed.Load(); f != 0 {
		t.Errorf("failed client requests: got %d of %d, want 0", f, total.Load())
	}
	t.Logf("%d requests, %d failed, %v retries", total.Load(), failed.Load(), retriesAfter-retriesBefore)
}

// TestReloadUnderLoad is acceptance point 3: 100 reloads alternating two
// configs under sustained load fail no request; a broken config leaves the
// old one serving and sets the reload-success metric to 0.
func TestReloadUnderLoad(t *testing.T) {
	b1, b2 := newBackend(t, "b1"), newBackend(t, "b2")
	cfgA := testListeners + fmt.Sprintf(`
upstreams:
  app: {endpoints: [%q, %q]}
routes:
  - name: all
    backends: [{upstream: app}]
    response_headers: {set: {X-Config: a}}
`, b1.addr, b2.addr)
	cfgB := testListeners + fmt.Sprintf(`
upstreams:
  app: {endpoints: [%q], balance: least_request}
  other: {endpoints: [%q]}
routes:
  - name: all
    backends: [{upstream: app, weight: 1}, {upstream: other, weight: 1}]
    response_headers: {set: {X-Config: b}}
  - name: hello
    match: {path: /hello}
    direct_response: {status: 200, body: hi}
`, b1.addr, b2.addr)
	ta := startApp(t, cfgA)

	var failed, total atomic.Int64
	seen := map[string]*atomic.Int64{"a": {}, "b": {}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 5 * time.Second}
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				total.Add(1)
				resp, err := client.Get(ta.base + "/x")
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failed.Add(1)
					continue
				}
				if c := seen[resp.Header.Get("X-Config")]; c != nil {
					c.Add(1)
				}
			}
		}()
	}
	for i := 0; i < 100; i++ {
		cfg := cfgA
		if i%2 == 0 {
			cfg = cfgB
		}
		writeFile(t, ta.path, cfg)
		if err := ta.Reload(context.Background()); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if v, ok := gauge(t, ta.App, "torii_config_last_reload_successful", nil); !ok || v != 1 {
		t.Errorf("torii_config_last_reload_successful after good reloads: got %v (found %v), want 1", v, ok)
	}

	// A broken config: the old one keeps serving.
	writeFile(t, ta.path, testListeners+`
upstreams:
  app: {endpoints: ["127.0.0.1:1"]}
routes:
  - name: all
    backends: [{upstream: ap}]
`)
	err := ta.Reload(context.Background())
	if err == nil || !strings.Contains(err.Error(), `did you mean "app"`) {
		t.Errorf("reload of a broken config: got error %v, want one naming the unknown upstream with a suggestion", err)
	}
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()

	if v, ok := gauge(t, ta.App, "torii_config_last_reload_successful", nil); !ok || v != 0 {
		t.Errorf("torii_config_last_reload_successful after a broken reload: got %v (found %v), want 0", v, ok)
	}
	resp, err := http.Get(ta.base + "/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Config") != "a" {
		t.Errorf("after a broken reload: got %d with X-Config %q, want 200 from config a", resp.StatusCode, resp.Header.Get("X-Config"))
	}
	if f := failed.Load(); f != 0 {
		t.Errorf("failed requests during 100 reloads: got %d of %d, want 0", f, total.Load())
	}
	if seen["a"].Load() == 0 || seen["b"].Load() == 0 {
		t.Errorf("both configs should have served: a=%d b=%d", seen["a"].Load(), seen["b"].Load())
	}
	t.Logf("%d requests during 100 reloads, %d failed; a=%d b=%d", total.Load(), failed.Load(), seen["a"].Load(), seen["b"].Load())
}

// TestShutdownDrains is acceptance point 4, in process: readyz fails
// first, in-flight slow requests complete, then new connections are
// refused. (cmd/torii's test does the same with a real SIGTERM.)
func TestShutdownDrains(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		io.WriteString(w, "done")
	}))
	defer slow.Close()
	ta := startApp(t, fmt.Sprintf(`
listen: [{addr: "127.0.0.1:0"}]
admin: {addr: "127.0.0.1:0"}
shutdown: {drain_delay: 2s, grace: 5s}
access_log: {disabled: true}
upstreams:
  app: {endpoints: [%q]}
routes:
  - name: all
    backends: [{upstream: app}]
`, slow.Listener.Addr().String()))

	results := make(chan string, 5)
	for i := 0; i < 5; i++ {
		go func() {
			resp, err := http.Get(ta.base + "/slow")
			if err != nil {
				results <- "error: " + err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			results <- fmt.Sprintf("%d %s", resp.StatusCode, b)
		}()
	}
	time.Sleep(200 * time.Millisecond) // let them reach the upstream

	shutdownDone := make(chan struct{})
	go func() { ta.Shutdown(); close(shutdownDone) }()
	time.Sleep(100 * time.Millisecond)

	// During the drain delay: readyz fails, the data plane still accepts.
	resp, err := http.Get(ta.admin + "/readyz")
	if err != nil {
		t.Fatalf("readyz during drain: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("readyz during drain: got %d, want 503", resp.StatusCode)
	}
	resp, err = http.Get(ta.base + "/fast")
	if err != nil {
		t.Errorf("data plane during drain delay: %v, want still serving", err)
	} else {
		resp.Body.Close()
	}

	time.Sleep(2500 * time.Millisecond) // past the drain delay: listeners closed
	if c, err := net.DialTimeout("tcp", strings.TrimPrefix(ta.base, "http://"), time.Second); err == nil {
		c.Close()
		t.Errorf("new connection after the drain delay: accepted, want refused")
	}
	close(release)
	for i := 0; i < 5; i++ {
		select {
		case r := <-results:
			if r != "200 done" {
				t.Errorf("in-flight request during shutdown: got %q, want %q", r, "200 done")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("in-flight request did not complete within the grace period")
		}
	}
	select {
	case <-shutdownDone:
	case <-time.After(5 * time.Second):
		t.Fatal("shutdown did not finish")
	}
}

// TestBadInputNeverReachesUpstream is part of acceptance point 5:
// oversized headers get 431 and a bad Host gets 400, and neither reaches
// the upstream; Connection cannot strip the forwarded headers.
// It runs on both HTTP/1.1 servers (TORII_HTTP1_SERVER).
func TestBadInputNeverReachesUpstream(t *testing.T) {
	for _, server := range []string{"torii", "stdlib"} {
		t.Run(server, func(t *testing.T) {
			old := http1Server
			http1Server = server
			t.Cleanup(func() { http1Server = old })
			badInputNeverReachesUpstream(t)
		})
	}
}

func badInputNeverReachesUpstream(t *testing.T) {
	var hits atomic.Int64
	var lastHeaders atomic.Pointer[http.Header]
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		h := r.Header.Clone()
		lastHeaders.Store(&h)
	}))
	defer up.Close()
	ta := startApp(t, fmt.Sprintf(`
listen: [{addr: "127.0.0.1:0", max_header_bytes: 8192}]
admin: {addr: "127.0.0.1:0"}
shutdown: {drain_delay: 0s}
access_log: {disabled: true}
upstreams:
  app: {endpoints: [%q]}
routes:
  - name: all
    backends: [{upstream: app}]
`, up.Listener.Addr().String()))
	addr := strings.TrimPrefix(ta.base, "http://")

	raw := func(req string) string {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, req)
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return "error: " + err.Error()
		}
		return strings.TrimSpace(line)
	}

	tests := []struct {
		name, req, wantPrefix string
	}{
		{"oversized header", "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("x", 64<<10) + "\r\n\r\n", "HTTP/1.1 431"},
		{"host with space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", "HTTP/1.1 400"},
		{"host with slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", "HTTP/1.1 400"},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "HTTP/1.1 400"},
		{"no host in 1.1", "GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 400"},
		{"path escaping the root", "GET /a/%2e%2e/%2e%2e/etc HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 200"},
		{"bad percent encoding", "GET /a%zz HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 400"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := hits.Load()
			got := raw(tc.req)
			if !strings.HasPrefix(got, tc.wantPrefix) {
				t.Errorf("got %q, want %q...", got, tc.wantPrefix)
			}
			if strings.HasPrefix(tc.wantPrefix, "HTTP/1.1 4") && hits.Load() != before {
				t.Errorf("rejected request reached the upstream")
			}
		})
	}

	req, _ := http.NewRequest("GET", ta.base+"/x", nil)
	req.Header.Set("Connection", "X-Forwarded-For, X-Forwarded-Proto, X-Forwarded-Host, X-Request-Id")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Request-Id"); got == "" || got != (*lastHeaders.Load()).Get("X-Request-Id") {
		t.Errorf("X-Request-Id on the response: got %q, want the ID the upstream saw", got)
	}
	h := lastHeaders.Load()
	if h == nil {
		t.Fatal("upstream saw no request")
	}
	for _, name := range []string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Request-Id"} {
		if h.Get(name) == "" {
			t.Errorf("%s stripped by the client's Connection header; upstream headers: %v", name, *h)
		}
	}
	if got := h.Get("X-Forwarded-For"); got != "127.0.0.1" {
		t.Errorf("X-Forwarded-For: got %q, want %q", got, "127.0.0.1")
	}
}

// TestAdminAPI covers the admin listener: read endpoints, redaction, and
// the refusal of cross-site, wrong-host and unauthenticated state changes.
func TestAdminAPI(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer up.Close()
	ta := startApp(t, fmt.Sprintf(`
listen: [{addr: "127.0.0.1:0"}]
admin: {addr: "127.0.0.1:0", token: s3cret-admin-token}
shutdown: {drain_delay: 0s}
access_log: {disabled: true}
tracing: {endpoint: "http://127.0.0.1:1/v1/traces", headers: {api-key: tracing-secret}}
upstreams:
  app: {endpoints: [%q]}
routes:
  - name: all
    backends: [{upstream: app}]
`, up.Listener.Addr().String()))

	do := func(method, path string, h map[string]string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, ta.admin+path, nil)
		for k, v := range h {
			if k == "Host" {
				req.Host = v
				continue
			}
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	auth := map[string]string{"Authorization": "Bearer s3cret-admin-token"}
	tests := []struct {
		name       string
		method     string
		path       string
		headers    map[string]string
		wantStatus int
		wantBody   string
		notInBody  []string
	}{
		{"healthz", "GET", "/healthz", nil, 200, `"ok"`, nil},
		{"readyz", "GET", "/readyz", nil, 200, `"ready"`, nil},
		{"metrics", "GET", "/metrics", nil, 200, "torii_config_last_reload_successful", nil},
		{"config redacted", "GET", "/api/v1/config", nil, 200, `"REDACTED"`, []string{"s3cret-admin-token", "tracing-secret"}},
		{"routes", "GET", "/api/v1/routes", nil, 200, `"name": "all"`, nil},
		{"upstreams", "GET", "/api/v1/upstreams", nil, 200, up.Listener.Addr().String(), nil},
		{"rebinding host refused", "GET", "/api/v1/config", map[string]string{"Host": "evil.example:9901"}, 421, "", nil},
		{"reload without token", "POST", "/api/v1/reload", nil, 401, "admin.token", nil},
		{"reload with wrong token", "POST", "/api/v1/reload", map[string]string{"Authorization": "Bearer nope"}, 401, "", nil},
		{"cross-site reload refused", "POST", "/api/v1/reload", map[string]string{"Authorization": "Bearer s3cret-admin-token", "Sec-Fetch-Site": "cross-site"}, 403, "cross-site", nil},
		{"cross-origin reload refused", "POST", "/api/v1/reload", map[string]string{"Authorization": "Bearer s3cret-admin-token", "Origin": "http://evil.example"}, 403, "", nil},
		{"reload with token", "POST", "/api/v1/reload", auth, 200, `"ok": true`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := do(tc.method, tc.path, tc.headers)
			if status != tc.wantStatus {
				t.Errorf("status: got %d, want %d; body %s", status, tc.wantStatus, body)
			}
			if !strings.Contains(body, tc.wantBody) {
				t.Errorf("body: got %s, want it to contain %q", body, tc.wantBody)
			}
			for _, s := range tc.notInBody {
				if strings.Contains(body, s) {
					t.Errorf("body leaks %q: %s", s, body)
				}
			}
		})
	}
}

// TestProxyProtocolListener: a trusted load balancer's PROXY header sets
// the client address the upstream sees; an untrusted peer's is refused.
func TestProxyProtocolListener(t *testing.T) {
	var xff atomic.Value
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		xff.Store(r.Header.Get("X-Forwarded-For"))
	}))
	defer up.Close()
	cfg := func(trusted string) string {
		return fmt.Sprintf(`
listen: [{addr: "127.0.0.1:0", proxy_protocol: {trusted: [%q], timeout: 500ms}}]
admin: {addr: "127.0.0.1:0"}
shutdown: {drain_delay: 0s}
access_log: {disabled: true}
upstreams:
  app: {endpoints: [%q]}
routes:
  - name: all
    backends: [{upstream: app}]
`, trusted, up.Listener.Addr().String())
	}
	send := func(t *testing.T, base, head string) string {
		t.Helper()
		c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, head+"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return "error: " + err.Error()
		}
		return strings.TrimSpace(line)
	}

	trusted := startApp(t, cfg("127.0.0.1/32"))
	if got := send(t, trusted.base, "PROXY TCP4 203.0.113.7 192.0.2.1 51000 443\r\n"); got != "HTTP/1.1 200 OK" {
		t.Fatalf("trusted peer with PROXY header: got %q, want 200", got)
	}
	if got := xff.Load(); got != "203.0.113.7" {
		t.Errorf("X-Forwarded-For from a PROXY header: got %q, want %q", got, "203.0.113.7")
	}
	if got := send(t, trusted.base, ""); strings.HasPrefix(got, "HTTP/1.1 200") {
		t.Errorf("trusted peer without PROXY header: got %q, want the connection refused", got)
	}

	untrusted := startApp(t, cfg("192.0.2.0/24"))
	if got := send(t, untrusted.base, "PROXY TCP4 203.0.113.7 192.0.2.1 51000 443\r\n"); !strings.HasPrefix(got, "HTTP/1.1 400") {
		t.Errorf("untrusted peer sending a PROXY header: got %q, want 400", got)
	}
	if got := send(t, untrusted.base, ""); got != "HTTP/1.1 200 OK" {
		t.Errorf("untrusted peer without header: got %q, want 200", got)
	}
	if got := xff.Load(); got != "127.0.0.1" {
		t.Errorf("X-Forwarded-For from an untrusted peer: got %q, want its socket address", got)
	}
}

// TestWatchReloads: with reload.watch on, editing the file reloads it.
func TestWatchReloads(t *testing.T) {
	cfg := func(body string) string {
		return testListeners + fmt.Sprintf(`
reload: {watch: true, watch_interval: 50ms}
routes:
  - name: hello
    direct_response: {status: 200, body: %q}
`, body)
	}
	ta := startApp(t, cfg("one"))
	get := func() string {
		resp, err := http.Get(ta.base + "/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if got := get(); got != "one" {
		t.Fatalf("before the edit: got %q, want %q", got, "one")
	}
	writeFile(t, ta.path, cfg("two"))
	deadline := time.Now().Add(5 * time.Second)
	for get() != "two" {
		if time.Now().After(deadline) {
			t.Fatalf("file change not picked up within 5s; last reload: %+v", ta.LastReload())
		}
		time.Sleep(20 * time.Millisecond)
	}
	writeFile(t, ta.path, "routes: [{name: broken}]\n")
	deadline = time.Now().Add(5 * time.Second)
	for ta.LastReload().OK {
		if time.Now().After(deadline) {
			t.Fatal("broken file change not reported within 5s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := get(); got != "two" {
		t.Errorf("after a broken edit: got %q, want the old config's %q", got, "two")
	}
}

// TestPathsAgree: the path torii routes on (and authenticates, since auth
// runs on the matched route) is exactly the path the upstream receives,
// for every encoding trick; ambiguous forms are refused, not guessed.
func TestPathsAgree(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Seen", r.RequestURI)
	}))
	defer up.Close()
	cfg := func(paths string) string {
		return testListeners + paths + fmt.Sprintf(`
upstreams:
  echo: {endpoints: [%q]}
routes:
  - name: admin
    match: {path_prefix: /admin}
    direct_response: {status: 403, body: admin}
  - name: moved
    match: {path_prefix: /moved}
    redirect: {scheme: https}
  - name: public
    backends: [{upstream: echo}]
`, up.Listener.Addr().String())
	}
	send := func(t *testing.T, base, target string) (int, string, string) {
		t.Helper()
		c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "GET "+target+" HTTP/1.1\r\nHost: gw.example\r\nConnection: close\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("GET %s: %v", target, err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("X-Seen"), resp.Header.Get("Location")
	}
	tests := []struct {
		paths      string
		target     string
		wantStatus int
		wantSeen   string // the upstream's request-target; "" when it must see nothing
	}{
		{"", "/public/x", 200, "/public/x"},
		{"", "/public/../admin", 403, ""},
		{"", "/public/%2e%2e/admin", 403, ""},
		{"", "/public/%2E%2e/admin/", 403, ""},
		{"", "//admin", 403, ""},
		{"", "/./admin", 403, ""},
		{"", "/public//x", 200, "/public/x"},
		{"", "/pub%6Cic/x?q=1", 200, "/public/x?q=1"},
		{"", "/public/%7euser", 200, "/public/~user"},
		{"", "/public/a%3fb", 200, "/public/a%3Fb"},
		{"", "/admin%2Fx", 400, ""},
		{"", "/admin%2fx", 400, ""},
		{"", "/admin%5Cx", 400, ""},
		{"", `/admin\x`, 400, ""},
		{"", "/admin;x", 400, ""},
		{"", "/public;jsessionid=1/x", 400, ""},
		{"paths: {encoded_slashes: keep, semicolons: keep}\n", "/admin%2fx", 200, "/admin%2Fx"},
		{"paths: {encoded_slashes: keep, semicolons: keep}\n", "/admin;x", 200, "/admin;x"},
		{"paths: {encoded_slashes: keep, semicolons: keep}\n", "/public/a%2Fb/../c", 200, "/public/c"},
	}
	apps := map[string]*testApp{}
	for _, tc := range tests {
		if apps[tc.paths] == nil {
			apps[tc.paths] = startApp(t, cfg(tc.paths))
		}
	}
	for _, tc := range tests {
		t.Run(tc.paths+tc.target, func(t *testing.T) {
			ta := apps[tc.paths]
			status, seen, _ := send(t, ta.base, tc.target)
			if status != tc.wantStatus || seen != tc.wantSeen {
				t.Errorf("GET %s: got %d, upstream saw %q; want %d, %q", tc.target, status, seen, tc.wantStatus, tc.wantSeen)
			}
		})
	}
	// No open redirect: a path that looks like a network-path reference
	// stays a path on the request's own host.
	ta := apps[""]
	for _, target := range []string{"//evil.example/moved", "/moved/..//evil.example", "/moved//evil.example/x"} {
		status, _, loc := send(t, ta.base, target)
		if status == 302 && !strings.HasPrefix(loc, "https://gw.example/") {
			t.Errorf("GET %s: redirect to %q, want a path on https://gw.example/", target, loc)
		}
	}
}
