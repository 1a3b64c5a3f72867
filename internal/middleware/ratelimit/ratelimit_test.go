package ratelimit

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"torii/internal/config"
	"torii/internal/request"
)

// fakeClock is a settable clock for SharedOptions.Now.
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

// limit returns a validated rate limit with defaults applied, as the
// runtime would pass it, after edit.
func limit(t testing.TB, edit func(*config.RateLimit)) *config.RateLimit {
	t.Helper()
	c := &config.Config{
		Upstreams: map[string]*config.Upstream{"app": {Endpoints: []config.Endpoint{{Addr: "10.0.0.1:80"}}}},
		Redis:     &config.Redis{Addr: "127.0.0.1:6379"},
		Routes:    []config.Route{{Name: "r", Backends: []config.Backend{{Upstream: "app"}}, RateLimit: &config.RateLimit{}}},
	}
	edit(c.Routes[0].RateLimit)
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("invalid rate limit: %v", err)
	}
	return c.Routes[0].RateLimit
}

// testLogger logs to t's output, shown only when the test fails or runs
// with -v.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), nil))
}

// stack is one torii's worth of rate limiting: a Shared and one route's
// middleware around a handler that answers 200.
type stack struct {
	shared *Shared
	reg    *prometheus.Registry
	h      http.Handler
}

func newStack(t testing.TB, route string, cfg *config.RateLimit, opts SharedOptions) *stack {
	t.Helper()
	reg := prometheus.NewRegistry()
	opts.Registerer = reg
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	s, err := NewShared(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	mw, err := New(route, cfg, s)
	if err != nil {
		t.Fatal(err)
	}
	return &stack{shared: s, reg: reg, h: mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
	}))}
}

// req describes one test request.
type req struct {
	ip     string            // client IP; default 192.0.2.1
	header map[string]string // request headers
	claims map[string]any    // verified JWT claims
}

func (s *stack) do(rq req) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	for k, v := range rq.header {
		r.Header.Set(k, v)
	}
	ip := rq.ip
	if ip == "" {
		ip = "192.0.2.1"
	}
	info := &request.Info{ID: "test", ClientIP: netip.MustParseAddr(ip), Claims: rq.claims}
	r = r.WithContext(request.NewContext(r.Context(), info))
	w := httptest.NewRecorder()
	s.h.ServeHTTP(w, r)
	return w
}

// step is one request in a sequence and what it must get.
type step struct {
	after      time.Duration // advance the clock by this much first
	status     int
	retryAfter string // "" for none
	rateLimit  string // the RateLimit field, "" to skip the check
}

func runSteps(t *testing.T, s *stack, clock *fakeClock, policy string, steps []step) {
	t.Helper()
	for i, st := range steps {
		clock.Advance(st.after)
		w := s.do(req{})
		if w.Code != st.status {
			t.Fatalf("step %d: got status %d, want %d", i, w.Code, st.status)
		}
		if got := w.Header().Get("Retry-After"); got != st.retryAfter {
			t.Errorf("step %d: got Retry-After %q, want %q", i, got, st.retryAfter)
		}
		if got := w.Header().Get("RateLimit-Policy"); got != policy {
			t.Errorf("step %d: got RateLimit-Policy %q, want %q", i, got, policy)
		}
		if got := w.Header().Get("RateLimit"); st.rateLimit != "" && got != st.rateLimit {
			t.Errorf("step %d: got RateLimit %q, want %q", i, got, st.rateLimit)
		}
	}
}

func TestGCRASequences(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(*config.RateLimit)
		policy string
		steps  []step
	}{{
		// T = 100ms, Burst·T = 300ms.
		name:   "burst then steady rate",
		edit:   func(c *config.RateLimit) { c.Requests, c.Burst = 10, 3 },
		policy: `"default";q=3;w=1`,
		steps: []step{
			{status: 200, rateLimit: `"default";r=2;t=1`},
			{status: 200, rateLimit: `"default";r=1;t=1`},
			{status: 200, rateLimit: `"default";r=0;t=1`},
			{status: 429, retryAfter: "1", rateLimit: `"default";r=0;t=1`},
			{after: 99 * time.Millisecond, status: 429, retryAfter: "1"},
			{after: time.Millisecond, status: 200, rateLimit: `"default";r=0;t=1`},
			{status: 429, retryAfter: "1"},
			// One every T is the steady rate.
			{after: 100 * time.Millisecond, status: 200},
			{after: 100 * time.Millisecond, status: 200},
			{after: 50 * time.Millisecond, status: 429, retryAfter: "1"},
			{after: 50 * time.Millisecond, status: 200},
			// Idle for Burst·T: the whole burst is back.
			{after: 300 * time.Millisecond, status: 200, rateLimit: `"default";r=2;t=1`},
			{status: 200},
			{status: 200},
			{status: 429, retryAfter: "1"},
		},
	}, {
		name:   "burst 1 is strict spacing",
		edit:   func(c *config.RateLimit) { c.Requests, c.Burst = 2, 1 },
		policy: `"default";q=1;w=1`,
		steps: []step{
			{status: 200, rateLimit: `"default";r=0;t=1`},
			{status: 429, retryAfter: "1"},
			{after: 499 * time.Millisecond, status: 429, retryAfter: "1"},
			{after: time.Millisecond, status: 200},
		},
	}, {
		// T = 20s, Burst·T = 60s.
		name:   "retry after counts whole seconds up",
		edit:   func(c *config.RateLimit) { c.Requests, c.Period, c.Burst = 3, config.Duration(time.Minute), 3 },
		policy: `"default";q=3;w=60`,
		steps: []step{
			{status: 200, rateLimit: `"default";r=2;t=20`},
			{status: 200, rateLimit: `"default";r=1;t=40`},
			{status: 200, rateLimit: `"default";r=0;t=60`},
			{status: 429, retryAfter: "20", rateLimit: `"default";r=0;t=60`},
			{after: 5500 * time.Millisecond, status: 429, retryAfter: "15", rateLimit: `"default";r=0;t=55`},
			{after: 14500 * time.Millisecond, status: 200, rateLimit: `"default";r=0;t=60`},
			{after: 40 * time.Second, status: 200, rateLimit: `"default";r=1;t=40`},
		},
	}, {
		name:   "default burst equals requests",
		edit:   func(c *config.RateLimit) { c.Requests = 2 },
		policy: `"default";q=2;w=1`,
		steps:  []step{{status: 200}, {status: 200}, {status: 429, retryAfter: "1"}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			s := newStack(t, "r", limit(t, tt.edit), SharedOptions{Now: clock.Now})
			runSteps(t, s, clock, tt.policy, tt.steps)
		})
	}
}

func TestTokenBucketSequences(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(*config.RateLimit)
		policy string
		steps  []step
	}{{
		// Capacity 3, 2 tokens back every second: w = ceil(3/2)·1s.
		name: "refills whole periods",
		edit: func(c *config.RateLimit) {
			c.Algorithm, c.Requests, c.Burst = config.RateLimitTokenBucket, 2, 3
		},
		policy: `"default";q=3;w=2`,
		steps: []step{
			{status: 200, rateLimit: `"default";r=2;t=1`},
			{status: 200, rateLimit: `"default";r=1;t=1`},
			{status: 200, rateLimit: `"default";r=0;t=2`},
			{status: 429, retryAfter: "1", rateLimit: `"default";r=0;t=2`},
			// No tokens trickle in between refills (GCRA would admit one).
			{after: 600 * time.Millisecond, status: 429, retryAfter: "1", rateLimit: `"default";r=0;t=2`},
			// The refill at 1s brings 2 tokens at once.
			{after: 400 * time.Millisecond, status: 200, rateLimit: `"default";r=1;t=1`},
			{status: 200, rateLimit: `"default";r=0;t=2`},
			{status: 429, retryAfter: "1"},
			// Three refills later the bucket holds its capacity, no more.
			{after: 3 * time.Second, status: 200, rateLimit: `"default";r=2;t=1`},
			{status: 200},
			{status: 200},
			{status: 429, retryAfter: "1"},
		},
	}, {
		name: "retry after is the next refill",
		edit: func(c *config.RateLimit) {
			c.Algorithm, c.Requests, c.Period, c.Burst = config.RateLimitTokenBucket, 1, config.Duration(time.Minute), 1
		},
		policy: `"default";q=1;w=60`,
		steps: []step{
			{status: 200, rateLimit: `"default";r=0;t=60`},
			{after: 10 * time.Second, status: 429, retryAfter: "50", rateLimit: `"default";r=0;t=50`},
			{after: 50 * time.Second, status: 200},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			s := newStack(t, "r", limit(t, tt.edit), SharedOptions{Now: clock.Now})
			runSteps(t, s, clock, tt.policy, tt.steps)
		})
	}
}

func TestRefusalBody(t *testing.T) {
	s := newStack(t, "r", limit(t, func(c *config.RateLimit) { c.Requests = 1 }), SharedOptions{Now: newFakeClock().Now})
	s.do(req{})
	w := s.do(req{})
	if w.Code != http.StatusTooManyRequests {
		t.Fatalf("got status %d, want 429", w.Code)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("got Content-Type %q, want application/json", ct)
	}
	if body := w.Body.String(); !strings.Contains(body, `"rate limit exceeded"`) || !strings.Contains(body, `"id":"test"`) {
		t.Errorf("got body %q, want the error and the request id", body)
	}
}

// TestKeys checks which requests share a count. Each limit admits one
// request per key; the second request gets 429 when it shares the first
// one's key.
func TestKeys(t *testing.T) {
	tests := []struct {
		name        string
		key         config.RateLimitKey
		first, then req
		shared      bool
	}{
		{"same IPv4", config.RateLimitKey{}, req{ip: "192.0.2.1"}, req{ip: "192.0.2.1"}, true},
		{"other IPv4", config.RateLimitKey{}, req{ip: "192.0.2.1"}, req{ip: "192.0.2.2"}, false},
		{"IPv4-mapped is IPv4", config.RateLimitKey{ClientIP: true}, req{ip: "192.0.2.1"}, req{ip: "::ffff:192.0.2.1"}, true},
		{"same IPv6 /64", config.RateLimitKey{}, req{ip: "2001:db8::1"}, req{ip: "2001:db8::ffff:1"}, true},
		{"other IPv6 /64", config.RateLimitKey{}, req{ip: "2001:db8::1"}, req{ip: "2001:db8:0:1::1"}, false},
		{"same header", config.RateLimitKey{Header: "x-api-key"}, req{header: map[string]string{"X-Api-Key": "a"}}, req{ip: "192.0.2.9", header: map[string]string{"X-Api-Key": "a"}}, true},
		{"other header", config.RateLimitKey{Header: "X-Api-Key"}, req{header: map[string]string{"X-Api-Key": "a"}}, req{header: map[string]string{"X-Api-Key": "b"}}, false},
		{"missing header is one key", config.RateLimitKey{Header: "X-Api-Key"}, req{ip: "192.0.2.1"}, req{ip: "192.0.2.2"}, true},
		{"empty header is the missing key", config.RateLimitKey{Header: "X-Api-Key"}, req{header: map[string]string{"X-Api-Key": ""}}, req{}, true},
		{"same claim", config.RateLimitKey{Claim: "sub"}, req{claims: map[string]any{"sub": "alice"}}, req{ip: "192.0.2.9", claims: map[string]any{"sub": "alice"}}, true},
		{"other claim", config.RateLimitKey{Claim: "sub"}, req{claims: map[string]any{"sub": "alice"}}, req{claims: map[string]any{"sub": "bob"}}, false},
		{"numeric claim", config.RateLimitKey{Claim: "uid"}, req{claims: map[string]any{"uid": 42.0}}, req{ip: "192.0.2.9", claims: map[string]any{"uid": 42.0}}, true},
		{"missing claim falls back to the IP", config.RateLimitKey{Claim: "sub"}, req{ip: "192.0.2.1"}, req{ip: "192.0.2.1", claims: map[string]any{"other": "x"}}, true},
		{"missing claims of other IPs", config.RateLimitKey{Claim: "sub"}, req{ip: "192.0.2.1"}, req{ip: "192.0.2.2"}, false},
		{"claim is not an IP", config.RateLimitKey{Claim: "sub"}, req{ip: "192.0.2.1"}, req{ip: "192.0.2.1", claims: map[string]any{"sub": "192.0.2.1"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &config.RateLimit{Algorithm: config.RateLimitGCRA, Requests: 1, Burst: 1,
				Period: config.Duration(time.Hour), Scope: config.ScopeLocal, OnRedisError: config.OnRedisErrorOpen, Key: tt.key}
			s := newStack(t, "r", cfg, SharedOptions{Now: newFakeClock().Now})
			if w := s.do(tt.first); w.Code != 200 {
				t.Fatalf("first request: got status %d, want 200", w.Code)
			}
			want := 200
			if tt.shared {
				want = 429
			}
			if w := s.do(tt.then); w.Code != want {
				t.Errorf("second request: got status %d, want %d", w.Code, want)
			}
		})
	}
}

func TestRedisKey(t *testing.T) {
	if got, want := redisKey("torii:rl:api:", []byte("i192.0.2.1")), "torii:rl:api:i192.0.2.1"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	long := "h" + strings.Repeat("x", 1000)
	got := redisKey("torii:rl:api:", []byte(long))
	if len(got) != len("torii:rl:api:h#")+32 || !strings.HasPrefix(got, "torii:rl:api:h#") {
		t.Errorf("got %q for a long key, want the prefix, the kind and a 32-digit hash", got)
	}
	if got == redisKey("torii:rl:api:", []byte(long+"y")) {
		t.Errorf("two long keys got the same Redis key %q", got)
	}
}

// TestReloadKeepsCounts builds a route's limit twice from one Shared, as
// a reload does while the old snapshot still serves.
func TestReloadKeepsCounts(t *testing.T) {
	clock := newFakeClock()
	s, err := NewShared(SharedOptions{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	build := func(route string, requests int) http.Handler {
		mw, err := New(route, limit(t, func(c *config.RateLimit) { c.Requests = requests; c.Period = config.Duration(time.Hour) }), s)
		if err != nil {
			t.Fatal(err)
		}
		return mw(ok)
	}
	status := func(h http.Handler) int {
		st := &stack{h: h}
		return st.do(req{}).Code
	}
	old := build("api", 1)
	if got := status(old); got != 200 {
		t.Fatalf("first request: got %d, want 200", got)
	}
	tests := []struct {
		name     string
		route    string
		requests int
		want     int
	}{
		{"unchanged route keeps its count", "api", 1, 429},
		{"changed limit starts afresh", "api", 2, 200},
		{"other route starts afresh", "web", 1, 200},
	}
	for _, tt := range tests {
		if got := status(build(tt.route, tt.requests)); got != tt.want {
			t.Errorf("%s: got %d, want %d", tt.name, got, tt.want)
		}
	}
	runtime.KeepAlive(old)
}

// TestStoreForgetsFullKeys checks that a local limit's memory is bounded:
// keys back at their full quota are swept, and past the cap new keys are
// admitted untracked.
func TestStoreForgetsFullKeys(t *testing.T) {
	alg := gcra{interval: int64(time.Second), limit: int64(time.Second)} // 1/s, burst 1
	st := newLocalStore(alg, 2*shardCount)                               // two keys a shard
	now := int64(time.Hour)
	tracked, untracked := 0, 0
	for i := range 10_000 {
		_, ok := st.take([]byte{byte(i), byte(i >> 8)}, now)
		if ok {
			tracked++
		} else {
			untracked++
		}
	}
	if tracked != 2*shardCount || untracked != 10_000-2*shardCount {
		t.Errorf("got %d tracked and %d untracked keys, want %d and the rest", tracked, untracked, 2*shardCount)
	}
	if n := st.len(); n != 2*shardCount {
		t.Errorf("got %d keys kept, want %d", n, 2*shardCount)
	}
	// A key over the cap is not limited (it is not counted).
	if d, ok := st.take([]byte{0xff, 0xff, 0xff}, now); !d.allowed || ok {
		t.Errorf("got allowed %v tracked %v for a key over the cap, want admitted untracked", d.allowed, ok)
	}
	// A tracked key is limited.
	if d, _ := st.take([]byte{0, 0}, now); d.allowed {
		t.Errorf("got a second request of a tracked key admitted, want refused")
	}
	// A second later every key is back at its full quota: the next new key
	// sweeps its shard and is tracked.
	now += int64(time.Second)
	if _, ok := st.take([]byte{0xff, 0xff, 0xff}, now); !ok {
		t.Errorf("got a new key untracked after the others were due to be forgotten, want tracked")
	}
	for i := range 20_000 { // touch every shard
		st.take([]byte{byte(i), byte(i >> 8), 1}, now+int64(time.Minute))
	}
	if n := st.len(); n > 2*shardCount {
		t.Errorf("got %d keys kept, want at most %d", n, 2*shardCount)
	}
}

func TestMetrics(t *testing.T) {
	s := newStack(t, "api", limit(t, func(c *config.RateLimit) { c.Requests = 2 }), SharedOptions{Now: newFakeClock().Now})
	for range 5 {
		s.do(req{})
	}
	for _, tt := range []struct {
		result string
		want   float64
	}{{"allowed", 2}, {"limited", 3}, {"error", 0}} {
		if got := metric(t, s.reg, "torii_ratelimit_requests_total", "route", "api", "result", tt.result); got != tt.want {
			t.Errorf("got torii_ratelimit_requests_total{result=%q} %g, want %g", tt.result, got, tt.want)
		}
	}
	if _, err := NewShared(SharedOptions{Registerer: s.reg}); err == nil {
		t.Errorf("got a second Shared registered with the same registry, want an error")
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	s, err := NewShared(SharedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bad := []*config.RateLimit{
		nil,
		{Algorithm: "gcra", Scope: "local", Requests: 0, Burst: 1, Period: config.Duration(time.Second)},
		{Algorithm: "gcra", Scope: "local", Requests: 1, Burst: 1},
		{Algorithm: "leaky", Scope: "local", Requests: 1, Burst: 1, Period: config.Duration(time.Second)},
		{Algorithm: "gcra", Scope: "galactic", Requests: 1, Burst: 1, Period: config.Duration(time.Second)},
		{Algorithm: "gcra", Scope: "local", Requests: 1e7, Burst: 1, Period: config.Duration(time.Second)},
	}
	for i, cfg := range bad {
		if _, err := New("r", cfg, s); err == nil {
			t.Errorf("case %d: got no error, want one", i)
		}
	}
}

// metric returns the value of the counter or gauge name whose labels
// include the given name/value pairs, or -1 when there is none.
func metric(t testing.TB, reg prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue next
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return -1
}

// BenchmarkLocal is the cost of a local limit on an admitted request: key,
// decision and headers.
func BenchmarkLocal(b *testing.B) {
	for _, alg := range []string{config.RateLimitGCRA, config.RateLimitTokenBucket} {
		b.Run(alg, func(b *testing.B) {
			s := newStack(b, "bench", limit(b, func(c *config.RateLimit) { c.Algorithm, c.Requests = alg, 1000 }), SharedOptions{})
			benchmark(b, s.h)
		})
	}
}

// TestStoresAreReleased checks that a local limit no snapshot uses any
// more is dropped from the Shared, so removed routes do not leak.
func TestStoresAreReleased(t *testing.T) {
	s, err := NewShared(SharedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if _, err := New("r"+strconv.Itoa(i), limit(t, func(c *config.RateLimit) { c.Requests = 1 }), s); err != nil {
			t.Fatal(err)
		}
	}
	stores := func() int {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.stores)
	}
	for deadline := time.Now().Add(5 * time.Second); stores() > 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("got %d stores kept 5s after their limits were dropped, want 0", stores())
		}
		runtime.GC()
	}
}
