package ratelimit

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"torii/internal/config"
	"torii/internal/request"
)

// testRedis returns the address of the Redis that scripts/redis started
// (TORII_TEST_REDIS). Without it the test is skipped, except in CI, which
// must skip nothing.
func testRedis(t testing.TB) string {
	t.Helper()
	addr := os.Getenv("TORII_TEST_REDIS")
	if addr != "" {
		return addr
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("TORII_TEST_REDIS is not set; scripts/test starts Redis with scripts/redis and sets it")
	}
	t.Skip("TORII_TEST_REDIS is not set; run: eval \"$(scripts/redis)\" && export TORII_TEST_REDIS")
	return ""
}

// uniqueRoute returns a route name no earlier test run has used, so counts
// left in the shared test Redis do not leak between runs.
func uniqueRoute(name string) string {
	return name + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
}

// redisServer is a redis-server this test owns, so it may stop it.
type redisServer struct {
	t    testing.TB
	port int
	dir  string
	cmd  *exec.Cmd
}

// startRedis starts a private redis-server on a free loopback port.
func startRedis(t testing.TB) *redisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("redis-server is not installed; scripts/redis installs it")
		}
		t.Skip("redis-server is not installed; run scripts/redis to install it")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	rs := &redisServer{t: t, port: port, dir: t.TempDir()}
	rs.start()
	t.Cleanup(rs.stop)
	return rs
}

func (rs *redisServer) addr() string { return "127.0.0.1:" + strconv.Itoa(rs.port) }

// start runs redis-server on rs.port and waits until it answers PING.
func (rs *redisServer) start() {
	rs.t.Helper()
	var out bytes.Buffer
	rs.cmd = exec.Command("redis-server", "--bind", "127.0.0.1", "--port", strconv.Itoa(rs.port),
		"--save", "", "--appendonly", "no", "--dir", rs.dir, "--enable-debug-command", "local")
	rs.cmd.Stdout, rs.cmd.Stderr = &out, &out
	if err := rs.cmd.Start(); err != nil {
		rs.t.Fatalf("start redis-server: %v", err)
	}
	c := redis.NewClient(&redis.Options{Addr: rs.addr(), MaxRetries: -1})
	defer c.Close()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c.Ping(context.Background()).Err() == nil {
			return
		}
	}
	rs.stop()
	rs.t.Fatalf("redis-server on %s did not answer PING within 10s:\n%s", rs.addr(), out.String())
}

// stop kills redis-server at once, as a crash or a partition would.
func (rs *redisServer) stop() {
	if rs.cmd == nil {
		return
	}
	rs.cmd.Process.Kill()
	rs.cmd.Wait()
	rs.cmd = nil
}

// globalLimit returns a validated global limit after edit.
func globalLimit(t testing.TB, edit func(*config.RateLimit)) *config.RateLimit {
	return limit(t, func(c *config.RateLimit) {
		c.Scope = config.ScopeGlobal
		edit(c)
	})
}

func newGlobalStack(t testing.TB, route string, cfg *config.RateLimit, rcfg *config.Redis) *stack {
	t.Helper()
	s := newStack(t, route, cfg, SharedOptions{})
	if err := s.shared.SetRedis(rcfg); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestGlobalSequences(t *testing.T) {
	addr := testRedis(t)
	tests := []struct {
		name   string
		edit   func(*config.RateLimit)
		policy string
		steps  []step
	}{{
		// T = 20s: the few milliseconds between requests round away.
		name:   "gcra",
		edit:   func(c *config.RateLimit) { c.Requests, c.Period, c.Burst = 3, config.Duration(time.Minute), 3 },
		policy: `"default";q=3;w=60`,
		steps: []step{
			{status: 200, rateLimit: `"default";r=2;t=20`},
			{status: 200, rateLimit: `"default";r=1;t=40`},
			{status: 200, rateLimit: `"default";r=0;t=60`},
			{status: 429, retryAfter: "20", rateLimit: `"default";r=0;t=60`},
		},
	}, {
		name: "token bucket",
		edit: func(c *config.RateLimit) {
			c.Algorithm, c.Requests, c.Period, c.Burst = config.RateLimitTokenBucket, 2, config.Duration(time.Minute), 3
		},
		policy: `"default";q=3;w=120`,
		steps: []step{
			{status: 200, rateLimit: `"default";r=2;t=60`},
			{status: 200, rateLimit: `"default";r=1;t=60`},
			{status: 200, rateLimit: `"default";r=0;t=120`},
			{status: 429, retryAfter: "60", rateLimit: `"default";r=0;t=120`},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			route := uniqueRoute("seq")
			s := newGlobalStack(t, route, globalLimit(t, tt.edit), &config.Redis{Addr: addr, Timeout: config.Duration(time.Second)})
			runSteps(t, s, newFakeClock(), tt.policy, tt.steps)

			// The key is named after the route and expires with its state.
			c := redis.NewClient(&redis.Options{Addr: addr})
			defer c.Close()
			keys, err := c.Keys(context.Background(), "torii:rl:"+route+":*").Result()
			if err != nil || len(keys) != 1 {
				t.Fatalf("got keys %q (err %v), want one", keys, err)
			}
			if ttl := c.PTTL(context.Background(), keys[0]).Val(); ttl <= 0 || ttl > 2*time.Minute {
				t.Errorf("got key %s with TTL %s, want one up to the time its quota is back", keys[0], ttl)
			}
		})
	}
}

// TestGlobalLimitSharedByTwoInstances is acceptance point 1 of issue #3:
// two torii instances share a global limit of 100 req/s, burst 100,
// through one real Redis. Eight goroutines overload both for 10 s; after
// the first second, no aligned one-second window admits more than 105.
//
// Each admission is timed by the Redis clock at the moment the script
// decided it: that is the clock the limit keeps. The time the request
// reached the inner handler is logged too, for comparison; on a busy
// machine it trails the decision by however long the goroutine waited for
// a CPU, which no limiter controls.
func TestGlobalLimitSharedByTwoInstances(t *testing.T) {
	addr := testRedis(t)
	duration := 10 * time.Second
	if testing.Short() {
		duration = 3 * time.Second
	}
	cfg := globalLimit(t, func(c *config.RateLimit) {
		c.Requests, c.Burst = 100, 100
		// Refuse rather than admit when Redis answers late, so that every
		// admission below is Redis's decision; the timeout is generous
		// because the race detector slows everything down.
		c.OnRedisError = config.OnRedisErrorClosed
	})
	rcfg := &config.Redis{Addr: addr, Timeout: config.Duration(time.Second)}
	route := uniqueRoute("two-instances")

	start := time.Now()
	var (
		mu       sync.Mutex // guards decided and reached
		decided  []int64    // Redis time of each admission, ns since the epoch
		reached  []int64    // local time each admitted request reached the handler
		handlers [2]http.Handler
	)
	record := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		at := start.UnixNano() + int64(time.Since(start))
		mu.Lock()
		reached = append(reached, at)
		mu.Unlock()
	})
	for i := range handlers {
		s, err := NewShared(SharedOptions{Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		s.onDecision = func(d decision) {
			if d.allowed {
				mu.Lock()
				decided = append(decided, d.at)
				mu.Unlock()
			}
		}
		if err := s.SetRedis(rcfg); err != nil {
			t.Fatal(err)
		}
		mw, err := New(route, cfg, s)
		if err != nil {
			t.Fatal(err)
		}
		handlers[i] = mw(record)
	}

	var sent, limited, failed atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			info := &request.Info{ID: "load", ClientIP: netip.MustParseAddr("192.0.2.1")}
			ctx := request.NewContext(context.Background(), info)
			for n := 0; time.Since(start) < duration; n++ {
				r := httptest.NewRequestWithContext(ctx, http.MethodGet, "/", nil)
				w := httptest.NewRecorder()
				handlers[(g+n)%2].ServeHTTP(w, r)
				sent.Add(1)
				switch w.Code {
				case http.StatusTooManyRequests:
					limited.Add(1)
				case http.StatusServiceUnavailable:
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()

	byRedis, worst := perSecond(decided)
	byHandler, _ := perSecond(reached)
	t.Logf("%d requests in %s: %d admitted, %d limited, %d failed", sent.Load(), duration, len(decided), limited.Load(), failed.Load())
	t.Logf("admitted per aligned second, Redis clock: %v; max after the first: %d", byRedis, worst)
	t.Logf("admitted per aligned second, reaching the handler: %v", byHandler)
	if worst > 105 {
		t.Errorf("got %d requests admitted in one aligned second after the first, want at most 105", worst)
	}
	if len(reached) != len(decided) {
		t.Errorf("got %d requests through to the handler, want the %d admitted", len(reached), len(decided))
	}
	if sent.Load() < 2*int64(duration/time.Second)*100 {
		t.Errorf("got only %d requests sent, not an overload of 100 req/s", sent.Load())
	}
	// The limit must also let its rate through, or the bound above is
	// empty: 100/s plus the burst, less what late Redis answers cost.
	if least := int(duration/time.Second)*90 + 100; len(decided) < least {
		t.Errorf("got %d requests admitted in %s, want at least %d", len(decided), duration, least)
	}
	if f := failed.Load(); f > sent.Load()/100 {
		t.Errorf("got %d of %d requests failed by Redis errors, want under 1%%", f, sent.Load())
	}
}

// perSecond counts times (ns since the epoch) per aligned second, from
// the first time's second to the last's, and returns the counts and the
// largest after the first second.
func perSecond(times []int64) (counts []int, worst int) {
	if len(times) == 0 {
		return nil, 0
	}
	sec := int64(time.Second)
	first, last := slices.Min(times)/sec, slices.Max(times)/sec
	counts = make([]int, last-first+1)
	for _, at := range times {
		counts[at/sec-first]++
	}
	if len(counts) > 1 {
		worst = slices.Max(counts[1:])
	}
	return counts, worst
}

// TestRedisOutage stops Redis under a fail-open and a fail-closed limit,
// then brings it back.
func TestRedisOutage(t *testing.T) {
	srv := startRedis(t)
	rcfg := &config.Redis{Addr: srv.addr(), Timeout: config.Duration(200 * time.Millisecond)}
	open := newGlobalStack(t, "open", globalLimit(t, func(c *config.RateLimit) { c.Requests = 1000 }), rcfg)
	closed := newGlobalStack(t, "closed", globalLimit(t, func(c *config.RateLimit) {
		c.Requests, c.OnRedisError = 1000, config.OnRedisErrorClosed
	}), rcfg)

	check := func(phase string, wantOpen, wantClosed int, wantUp float64) {
		t.Helper()
		for _, tt := range []struct {
			name string
			s    *stack
			want int
		}{{"open", open, wantOpen}, {"closed", closed, wantClosed}} {
			start := time.Now()
			w := tt.s.do(req{})
			if w.Code != tt.want {
				t.Errorf("%s, on_redis_error %s: got status %d, want %d", phase, tt.name, w.Code, tt.want)
			}
			if took := time.Since(start); took > time.Second {
				t.Errorf("%s, on_redis_error %s: took %s, want about the 200ms timeout at most", phase, tt.name, took)
			}
			if w.Code == http.StatusServiceUnavailable && !bytes.Contains(w.Body.Bytes(), []byte("rate limit store unavailable")) {
				t.Errorf("%s: got body %q, want it to say the store is unavailable", phase, w.Body)
			}
			if got := metric(t, tt.s.reg, "torii_ratelimit_redis_up"); got != wantUp {
				t.Errorf("%s, on_redis_error %s: got torii_ratelimit_redis_up %g, want %g", phase, tt.name, got, wantUp)
			}
		}
	}
	check("redis up", 200, 200, 1)

	srv.stop()
	check("redis stopped", 200, 503, 0)
	for _, s := range []*stack{open, closed} {
		if got := metric(t, s.reg, "torii_ratelimit_redis_errors_total"); got < 1 {
			t.Errorf("got torii_ratelimit_redis_errors_total %g after an outage, want 1 or more", got)
		}
		if got := metric(t, s.reg, "torii_ratelimit_requests_total", "result", "error"); got < 1 {
			t.Errorf(`got torii_ratelimit_requests_total{result="error"} %g after an outage, want 1 or more`, got)
		}
	}

	// Enough failures to exhaust the pool's dial budget, after which
	// go-redis fails fast and redials in the background.
	for range 50 {
		if w := closed.do(req{}); w.Code != http.StatusServiceUnavailable {
			t.Fatalf("redis stopped: got status %d, want 503", w.Code)
		}
	}

	srv.start()
	deadline := time.Now().Add(5 * time.Second)
	for closed.do(req{}).Code != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatalf("redis back: the fail-closed limit still fails 5s after Redis returned")
		}
		time.Sleep(50 * time.Millisecond)
	}
	check("redis back", 200, 200, 1)

	// A Redis that answers too late counts as down.
	c := redis.NewClient(&redis.Options{Addr: srv.addr()})
	defer c.Close()
	slept := make(chan error, 1)
	go func() { slept <- c.Do(context.Background(), "DEBUG", "SLEEP", "1").Err() }()
	time.Sleep(100 * time.Millisecond) // let DEBUG SLEEP start
	check("redis slow", 200, 503, 0)
	if err := <-slept; err != nil {
		t.Fatalf("DEBUG SLEEP: %v", err)
	}
	check("redis fast again", 200, 200, 1)
}

// TestRedisNeverReachable points a fail-closed limit at a port where
// nothing listens.
func TestRedisNeverReachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	s := newGlobalStack(t, "r", globalLimit(t, func(c *config.RateLimit) { c.Requests, c.OnRedisError = 10, config.OnRedisErrorClosed }),
		&config.Redis{Addr: addr, Timeout: config.Duration(50 * time.Millisecond)})
	if w := s.do(req{}); w.Code != http.StatusServiceUnavailable {
		t.Errorf("got status %d, want 503", w.Code)
	}
	if got := metric(t, s.reg, "torii_ratelimit_redis_up"); got != 0 {
		t.Errorf("got torii_ratelimit_redis_up %g, want 0", got)
	}
	// Without any Redis, the same.
	if err := s.shared.SetRedis(nil); err != nil {
		t.Fatal(err)
	}
	if w := s.do(req{}); w.Code != http.StatusServiceUnavailable {
		t.Errorf("without redis: got status %d, want 503", w.Code)
	}
}

// TestSetRedis checks that the client is rebuilt only when its config
// changes, and that a replaced client keeps working for a while.
func TestSetRedis(t *testing.T) {
	addr := testRedis(t)
	s, err := NewShared(SharedOptions{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	cfg := &config.Redis{Addr: addr, Timeout: config.Duration(time.Second)}
	if err := s.SetRedis(cfg); err != nil {
		t.Fatal(err)
	}
	first := s.redis.Load()
	same := *cfg
	if err := s.SetRedis(&same); err != nil {
		t.Fatal(err)
	}
	if s.redis.Load() != first {
		t.Errorf("got a new client for an unchanged config, want the same")
	}
	changed := same
	changed.DB = 1
	if err := s.SetRedis(&changed); err != nil {
		t.Fatal(err)
	}
	if s.redis.Load() == first {
		t.Fatalf("got the same client for a changed config, want a new one")
	}
	if err := first.client.Ping(context.Background()).Err(); err != nil {
		t.Errorf("replaced client: got %v, want it open until retired", err)
	}
	if err := s.SetRedis(&config.Redis{}); err == nil {
		t.Errorf("got no error for a Redis without addr, want one")
	}
	if err := s.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if err := first.client.Ping(context.Background()).Err(); err == nil {
		t.Errorf("replaced client: got it open after Close, want closed")
	}
	if err := s.SetRedis(cfg); err == nil {
		t.Errorf("got no error for SetRedis after Close, want one")
	}
}

// TestRedisMatchesLocal runs the same burst through a local and a global
// limit; with a long period the Redis clock moving between requests does
// not change a decision.
func TestRedisMatchesLocal(t *testing.T) {
	addr := testRedis(t)
	for _, alg := range []string{config.RateLimitGCRA, config.RateLimitTokenBucket} {
		t.Run(alg, func(t *testing.T) {
			edit := func(c *config.RateLimit) {
				c.Algorithm, c.Requests, c.Burst, c.Period = alg, 7, 5, config.Duration(time.Hour)
			}
			local := newStack(t, "r", limit(t, edit), SharedOptions{Now: newFakeClock().Now})
			global := newGlobalStack(t, uniqueRoute("match"), globalLimit(t, edit), &config.Redis{Addr: addr, Timeout: config.Duration(time.Second)})
			for i := range 8 {
				l, g := local.do(req{}), global.do(req{})
				for _, h := range []string{"RateLimit-Policy", "RateLimit", "Retry-After"} {
					if l.Header().Get(h) != g.Header().Get(h) || l.Code != g.Code {
						t.Errorf("request %d: local got %d %s %q, global got %d %q", i, l.Code, h, l.Header().Get(h), g.Code, g.Header().Get(h))
					}
				}
			}
		})
	}
}

func BenchmarkRedis(b *testing.B) {
	addr := testRedis(b)
	cfg := globalLimit(b, func(c *config.RateLimit) { c.Requests = 1000 })
	s := newGlobalStack(b, uniqueRoute("bench"), cfg, &config.Redis{Addr: addr, Timeout: config.Duration(time.Second)})
	benchmark(b, s.h)
	if got := metric(b, s.reg, "torii_ratelimit_requests_total", "result", "error"); got > 0 {
		b.Errorf("got %g Redis errors, want none", got)
	}
}

// benchmark runs h in parallel, each goroutine cycling through its own
// 65,536 client IPs, with a request and a ResponseWriter reused between
// requests. It fails unless every request is admitted: this measures the
// common path, not refusals.
func benchmark(b *testing.B, h http.Handler) {
	var goroutine, refused atomic.Int32
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		g := byte(goroutine.Add(1))
		info := &request.Info{ID: "bench"}
		r := httptest.NewRequestWithContext(request.NewContext(context.Background(), info), http.MethodGet, "/", nil)
		w := &discardWriter{h: make(http.Header)}
		for i := 0; pb.Next(); i++ {
			clear(w.h)
			w.code = http.StatusOK
			info.ClientIP = netip.AddrFrom4([4]byte{10, g, byte(i >> 8), byte(i)})
			h.ServeHTTP(w, r)
			if w.code != http.StatusOK {
				refused.Add(1)
			}
		}
	})
	if n := refused.Load(); n > 0 {
		b.Errorf("got %d requests refused, want none", n)
	}
}

// discardWriter is a ResponseWriter that keeps nothing but its headers
// and status.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }
