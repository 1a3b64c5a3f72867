package cache

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"torii/internal/config"
	"torii/internal/proxy"
	"torii/internal/request"
	"torii/internal/upstream"
)

// clock is the test clock: real time plus an offset the test advances, so
// ages computed against the upstream's real Date stay right.
type clock struct{ offset atomic.Int64 }

func (c *clock) now() time.Time            { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) advance(d time.Duration)   { c.offset.Add(int64(d)) }
func (c *clock) nowFunc() func() time.Time { return c.now }

// rig is a cache in front of the real proxy handler and a real upstream:
// front (puts a request.Info in the context) -> [guard] -> cache -> proxy
// -> upstream.
type rig struct {
	t        *testing.T
	url      string // the front's base URL
	up       *httptest.Server
	hits     atomic.Int64 // requests the upstream received
	store    *Store
	clock    *clock
	reg      *prometheus.Registry
	handler  http.Handler // the chain below the front
	upstream http.HandlerFunc
}

type rigOptions struct {
	route    config.RouteCache
	maxBytes int64
	maxObj   int64
	// guard, when set, wraps the cache (an auth-like middleware).
	guard func(http.Handler) http.Handler
}

// newRig starts the upstream (serving up, which gets the upstream's
// request count, 1 for the first) and the front.
func newRig(t testing.TB, o rigOptions, up func(w http.ResponseWriter, r *http.Request, n int64)) *rig {
	t.Helper()
	g := &rig{clock: new(clock), reg: prometheus.NewRegistry()}
	g.up = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Date from the test clock, as an upstream whose clock agrees with
		// torii's would send it.
		w.Header().Set("Date", g.clock.now().UTC().Format(http.TimeFormat))
		up(w, r, g.hits.Add(1))
	}))
	t.Cleanup(g.up.Close)
	if o.maxBytes == 0 {
		o.maxBytes = 64 << 20
	}
	if o.maxObj == 0 {
		o.maxObj = 8 << 20
	}
	var err error
	g.store, err = NewStore(StoreOptions{MaxBytes: o.maxBytes, MaxObjectBytes: o.maxObj, Now: g.clock.now, Registerer: g.reg})
	if err != nil {
		t.Fatal(err)
	}
	reg := upstream.NewRegistry(upstream.Options{})
	pool, err := upstream.NewPool("app", &config.Upstream{Endpoints: []config.Endpoint{{Addr: g.up.Listener.Addr().String(), Weight: 1}}}, reg)
	if err != nil {
		t.Fatal(err)
	}
	px, err := proxy.New(proxy.Options{Route: "r", Backends: []proxy.Backend{{Pool: pool, Weight: 1}}, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	mw, err := New("r", &o.route, g.store, WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	g.handler = mw(px)
	if o.guard != nil {
		g.handler = o.guard(g.handler)
	}
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := &request.Info{ID: "t", Scheme: "http", Route: "r", Start: time.Now()}
		g.handler.ServeHTTP(w, r.WithContext(request.NewContext(r.Context(), info)))
	}))
	t.Cleanup(front.Close)
	g.url = front.URL
	return g
}

// response is what a client got.
type response struct {
	status int
	header http.Header
	body   string
}

// do sends method path with header fields given as "Name: value".
func (g *rig) do(t testing.TB, method, path string, fields ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, g.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fields {
		name, value, _ := strings.Cut(f, ":")
		req.Header.Add(strings.TrimSpace(name), strings.TrimSpace(value))
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: string(body)}
}

// serveDirect runs the chain below the front in process, for benchmarks.
func (g *rig) serveDirect(w http.ResponseWriter, r *http.Request) {
	info := &request.Info{ID: "b", Scheme: "http", Route: "r"}
	g.handler.ServeHTTP(w, r.WithContext(request.NewContext(context.Background(), info)))
}

// discard is a ResponseWriter that keeps nothing, for benchmarks.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) WriteHeader(int)             {}
func (d *discard) Write(p []byte) (int, error) { return len(p), nil }
