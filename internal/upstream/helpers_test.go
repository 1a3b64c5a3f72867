package upstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"torii/internal/config"
)

// fakeClock is a settable clock, safe for concurrent use.
type fakeClock struct {
	mu sync.Mutex // guards t
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fakeResolver answers from a table that tests change as they go.
type fakeResolver struct {
	mu    sync.Mutex // guards hosts and fail
	hosts map[string][]string
	fail  bool
	calls atomic.Int64
}

func (r *fakeResolver) LookupHost(_ context.Context, host string) ([]string, error) {
	r.calls.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail {
		return nil, errors.New("fake resolver: server misbehaving")
	}
	ips, ok := r.hosts[host]
	if !ok {
		return nil, fmt.Errorf("fake resolver: no such host %q", host)
	}
	return append([]string(nil), ips...), nil
}

func (r *fakeResolver) set(host string, ips ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.hosts == nil {
		r.hosts = make(map[string][]string)
	}
	r.hosts[host] = ips
	r.fail = false
}

func (r *fakeResolver) setFail() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fail = true
}

var discard = slog.New(slog.DiscardHandler)

func newTestRegistry(clock *fakeClock) *Registry {
	opts := Options{Logger: discard, Resolver: &fakeResolver{}}
	if clock != nil {
		opts.Now = clock.Now
	}
	return NewRegistry(opts)
}

// upstreamCfg returns an upstream with one loopback endpoint per weight,
// on ports 10001, 10002, ...
func upstreamCfg(balance string, weights ...int) *config.Upstream {
	u := &config.Upstream{Balance: balance}
	for i, w := range weights {
		u.Endpoints = append(u.Endpoints, config.Endpoint{Addr: fmt.Sprintf("127.0.0.1:%d", 10001+i), Weight: w})
	}
	if balance == "hash" {
		u.Hash = &config.HashKey{Header: "X-User"}
	}
	return u
}

// addr returns the address upstreamCfg gives endpoint i.
func addr(i int) string { return fmt.Sprintf("127.0.0.1:%d", 10001+i) }

func newTestPool(t testing.TB, name string, cfg *config.Upstream, reg *Registry) *Pool {
	t.Helper()
	p, err := NewPool(name, cfg, reg)
	if err != nil {
		t.Fatalf("NewPool(%q): %v", name, err)
	}
	t.Cleanup(p.Close)
	return p
}

// endpoint returns p's current endpoint with address a.
func endpoint(t testing.TB, p *Pool, a string) *Endpoint {
	t.Helper()
	for _, e := range p.set.Load().eps {
		if e.Addr() == a {
			return e
		}
	}
	t.Fatalf("pool %q has no endpoint %s", p.Name(), a)
	return nil
}

// addrsOf returns the addresses of p's current endpoints, in order.
func addrsOf(p *Pool) []string {
	var out []string
	for _, e := range p.set.Load().eps {
		out = append(out, e.Addr())
	}
	return out
}

// fail ends n tries on e with o.
func fail(e *Endpoint, n int, o Outcome) {
	for range n {
		e.Begin()
		e.End(o)
	}
}

// flakyServer is a real HTTP upstream whose /healthz fails on demand.
type flakyServer struct {
	*httptest.Server
	failing atomic.Bool
	hits    atomic.Int64
}

func newFlakyServer(t *testing.T) *flakyServer {
	t.Helper()
	s := &flakyServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		if s.failing.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok"))
	}))
	t.Cleanup(s.Close)
	return s
}

// addr returns the server's "127.0.0.1:port".
func (s *flakyServer) addr() string { return s.Listener.Addr().String() }

// waitFor polls cond every few milliseconds for up to 5s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
