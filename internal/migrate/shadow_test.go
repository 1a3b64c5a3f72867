package migrate

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"torii/internal/config"
	"torii/internal/proxy"
	"torii/internal/request"
	"torii/internal/upstream"
)

// seen is a request an upstream received.
type seen struct {
	method, uri, body string
	header            http.Header
}

// recorder is an upstream that reports every request on a channel.
func recorder(t *testing.T, status int, delay time.Duration) (*httptest.Server, chan seen) {
	t.Helper()
	ch := make(chan seen, 1000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		ch <- seen{r.Method, r.RequestURI, string(b), r.Header.Clone()}
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
			}
		}
		w.WriteHeader(status)
		io.WriteString(w, "from upstream")
	}))
	t.Cleanup(srv.Close)
	return srv, ch
}

func pool(t testing.TB, name, addr string) *upstream.Pool {
	t.Helper()
	reg := upstream.NewRegistry(upstream.Options{})
	p, err := upstream.NewPool(name, &config.Upstream{Endpoints: []config.Endpoint{{Addr: addr}}}, reg)
	if err != nil {
		t.Fatalf("NewPool(%q): %v", name, err)
	}
	t.Cleanup(p.Close)
	return p
}

// sloCall is one SLORecorder.Record call.
type sloCall struct {
	backend string
	status  int
	shadow  bool
}

type fakeSLO struct{ ch chan sloCall }

func (f fakeSLO) Record(backend string, status int, _ string, _ time.Duration, shadow bool) {
	select {
	case f.ch <- sloCall{backend, status, shadow}:
	default: // a benchmark's flood: tests read far fewer
	}
}

// gateway is a primary proxy with the shadow middleware in front of it,
// and a front handler that provides the request.Info.
type gateway struct {
	url     string
	handler http.Handler // what url serves
	metrics *prometheus.Registry
	slo     chan sloCall
}

func newGateway(t testing.TB, primary, candidate string, o Options) *gateway {
	t.Helper()
	ph, err := proxy.New(proxy.Options{Route: "r", Backends: []proxy.Backend{{Pool: pool(t, "primary", primary), Weight: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	o.Route, o.Pool, o.Metrics = "r", pool(t, "candidate", candidate), NewMetrics(reg)
	if o.Compare != nil && o.Primary == nil {
		o.Primary = pool(t, "primary", primary)
	}
	if o.Percent == 0 {
		o.Percent = 100
	}
	if o.MaxConcurrent == 0 {
		o.MaxConcurrent = 100
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = 64 << 10
	}
	mw, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	g := &gateway{metrics: reg, slo: make(chan sloCall, 1000)}
	h := mw(ph)
	g.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := &request.Info{ID: "req-1", Start: time.Now(), SLO: fakeSLO{g.slo}}
		h.ServeHTTP(w, r.WithContext(request.NewContext(r.Context(), info)))
	})
	srv := httptest.NewServer(g.handler)
	t.Cleanup(srv.Close)
	g.url = srv.URL
	return g
}

func (g *gateway) do(t *testing.T, method, path, body string, header http.Header) (*http.Response, string, time.Duration) {
	t.Helper()
	req, _ := http.NewRequest(method, g.url+path, strings.NewReader(body))
	if body == "" {
		req.Body = http.NoBody
	}
	for k, v := range header {
		req.Header[k] = v
	}
	start := time.Now()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return res, string(b), time.Since(start)
}

func (g *gateway) count(result string) float64 {
	return value(NewMetrics(g.metrics).requests.WithLabelValues("r", result))
}

func addr(s *httptest.Server) string { return s.Listener.Addr().String() }

func recv(t *testing.T, ch chan seen) seen {
	t.Helper()
	select {
	case s := <-ch:
		return s
	case <-time.After(3 * time.Second):
		t.Fatal("upstream got no request")
	}
	return seen{}
}

func none(t *testing.T, ch chan seen, what string) {
	t.Helper()
	select {
	case s := <-ch:
		t.Fatalf("%s: candidate got %s %s, want nothing", what, s.method, s.uri)
	case <-time.After(200 * time.Millisecond):
	}
}

func TestMirror(t *testing.T) {
	p, pch := recorder(t, 200, 0)
	c, cch := recorder(t, 200, 0)
	big := strings.Repeat("x", 100<<10)
	tests := []struct {
		name        string
		allowUnsafe bool
		method      string
		body        string
		mirrored    bool
		skip        string
	}{
		{name: "get", method: "GET", mirrored: true},
		{name: "post by default", method: "POST", body: "a=1", skip: resultSkippedMethod},
		{name: "put by default", method: "PUT", body: "a=1", skip: resultSkippedMethod},
		{name: "post allowed", allowUnsafe: true, method: "POST", body: "a=1", mirrored: true},
		{name: "body over bound", allowUnsafe: true, method: "POST", body: big, skip: resultSkippedBody},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGateway(t, addr(p), addr(c), Options{AllowUnsafe: tt.allowUnsafe})
			h := http.Header{"X-User": {"alice"}, "Connection": {"X-Hop"}, "X-Hop": {"secret"}}
			res, _, _ := g.do(t, tt.method, "/a/b?q=1&r=2", tt.body, h)
			if res.StatusCode != 200 {
				t.Fatalf("status: got %d, want 200", res.StatusCode)
			}
			ps := recv(t, pch)
			if ps.body != tt.body {
				t.Errorf("primary body: got %d bytes, want %d", len(ps.body), len(tt.body))
			}
			if ps.header.Get(HeaderShadow) != "" {
				t.Errorf("primary got %s", HeaderShadow)
			}
			if !tt.mirrored {
				none(t, cch, tt.name)
				if got := g.count(tt.skip); got != 1 {
					t.Errorf("%s: got %v, want 1", tt.skip, got)
				}
				return
			}
			cs := recv(t, cch)
			if cs.method != tt.method || cs.uri != "/a/b?q=1&r=2" || cs.body != tt.body {
				t.Errorf("shadow: got %s %s %q, want %s /a/b?q=1&r=2 %q", cs.method, cs.uri, cs.body, tt.method, tt.body)
			}
			for k, want := range map[string]string{HeaderShadow: "1", "X-User": "alice", "X-Request-Id": "req-1", "X-Hop": "", "Connection": ""} {
				if got := cs.header.Get(k); got != want {
					t.Errorf("shadow header %s: got %q, want %q", k, got, want)
				}
			}
			select {
			case call := <-g.slo:
				if call != (sloCall{"candidate", 200, true}) {
					t.Errorf("SLO: got %+v, want {candidate 200 true}", call)
				}
			case <-time.After(3 * time.Second):
				t.Fatal("SLO recorder not called")
			}
			waitCount(t, g, resultSent, 1)
		})
	}
}

func waitCount(t *testing.T, g *gateway, result string, want float64) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for g.count(result) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s: got %v, want %v", result, g.count(result), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestPercent(t *testing.T) {
	p, _ := recorder(t, 200, 0)
	for _, tt := range []struct {
		name    string
		percent float64
		want    int
	}{{"almost none", 0.0001, 0}, {"all", 100, 200}} {
		t.Run(tt.name, func(t *testing.T) {
			c, cch := recorder(t, 200, 0)
			g := newGateway(t, addr(p), addr(c), Options{Percent: tt.percent})
			for range 200 {
				g.do(t, "GET", "/", "", nil)
			}
			waitCount(t, g, resultSent, float64(tt.want))
			if got := len(cch); got != tt.want {
				t.Errorf("mirrored: got %d, want %d", got, tt.want)
			}
		})
	}
}

// down returns the address of a closed listener.
func down(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := l.Addr().String()
	l.Close()
	return a
}

func TestShadowNeverAffectsPrimary(t *testing.T) {
	p, _ := recorder(t, 201, 0)
	slow, _ := recorder(t, 200, 2*time.Second)
	failing, _ := recorder(t, 500, 0)
	for _, tt := range []struct {
		name, candidate string
		result          string
		sloStatus       int
	}{
		{"slow", addr(slow), resultError, 504},
		{"failing", addr(failing), resultSent, 500},
		{"down", down(t), resultError, 502},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := newGateway(t, addr(p), tt.candidate, Options{Timeout: 500 * time.Millisecond})
			res, body, took := g.do(t, "GET", "/", "", nil)
			if res.StatusCode != 201 || body != "from upstream" {
				t.Errorf("primary: got %d %q, want 201 %q", res.StatusCode, body, "from upstream")
			}
			if took > 200*time.Millisecond {
				t.Errorf("primary latency: got %s, want under 200ms", took)
			}
			select {
			case call := <-g.slo:
				if call != (sloCall{"candidate", tt.sloStatus, true}) {
					t.Errorf("SLO: got %+v, want {candidate %d true}", call, tt.sloStatus)
				}
			case <-time.After(3 * time.Second):
				t.Fatal("SLO recorder not called")
			}
			waitCount(t, g, tt.result, 1)
		})
	}
}

func TestCapacity(t *testing.T) {
	p, _ := recorder(t, 200, 0)
	release := make(chan struct{})
	var once sync.Once
	arrived := make(chan struct{}, 10)
	c := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
	}))
	t.Cleanup(c.Close)
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	g := newGateway(t, addr(p), addr(c), Options{MaxConcurrent: 2})
	for range 5 {
		g.do(t, "GET", "/", "", nil)
	}
	for range 2 {
		<-arrived
	}
	if got := g.count(resultSkippedCapacity); got != 3 {
		t.Errorf("skipped_capacity: got %v, want 3", got)
	}
	if got := value(NewMetrics(g.metrics).inFlight); got != 2 {
		t.Errorf("in flight: got %v, want 2", got)
	}
	once.Do(func() { close(release) })
	waitCount(t, g, resultSent, 2)
}

func TestTeeBody(t *testing.T) {
	for _, tt := range []struct {
		name   string
		body   string
		max    int64
		readTo int // bytes the primary reads; -1: all
		ok     bool
	}{
		{"whole", "hello", 5, -1, true},
		{"over", "hello!", 5, -1, false},
		{"partly read", "hello", 5, 2, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tee := &teeBody{rc: io.NopCloser(strings.NewReader(tt.body)), max: tt.max}
			var got []byte
			if tt.readTo < 0 {
				got, _ = io.ReadAll(tee)
			} else {
				got = make([]byte, tt.readTo)
				io.ReadFull(tee, got)
			}
			if tt.readTo < 0 && string(got) != tt.body {
				t.Errorf("primary read %q, want %q", got, tt.body)
			}
			b, ok := tee.result()
			if ok != tt.ok || (ok && !bytes.Equal(b, []byte(tt.body))) {
				t.Errorf("result: got %q %v, want %q %v", b, ok, tt.body, tt.ok)
			}
		})
	}
}

// value reads a counter or gauge.
func value(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		return -1
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}
