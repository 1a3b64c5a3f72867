package app

import (
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestE2EGlobalRateLimitTwoInstances is acceptance point 1: two torii
// instances share one 100 req/s global limit (burst 100) through a real
// Redis. Driven well past the limit through both for 5 s, together they
// admit no more than the limit allows (burst + rate × elapsed, plus 5 %;
// at most 105 in any whole one-second window after the first) and no less
// than 70 % of it, and every refusal carries Retry-After and RateLimit.
func TestE2EGlobalRateLimitTwoInstances(t *testing.T) {
	redis := e2eRedis(t)
	up := newE2EEcho(t)
	// A fresh route name per run is a fresh Redis key (torii:rl:<route>:*),
	// so counts left by an earlier run cannot leak in.
	route := fmt.Sprintf("rl-e2e-%d", time.Now().UnixNano())
	cfg := testListeners + fmt.Sprintf(`
redis: {addr: %q, timeout: 500ms}
upstreams:
  app: {endpoints: [%q]}
routes:
  - name: %s
    backends: [{upstream: app}]
    rate_limit: {requests: 100, burst: 100, scope: global}
`, redis, up.addr(), route)
	apps := []*testApp{startApp(t, cfg), startApp(t, cfg)}

	const (
		run        = 5 * time.Second
		perApp     = 12 // concurrent clients per instance
		wantRate   = 100.0
		wantBurst  = 100.0
		windowMax  = 105
		tolerance  = 1.05
		minShare   = 0.70
		statusBusy = http.StatusTooManyRequests
	)
	var (
		mu       sync.Mutex // guards admitted and badHdr
		admitted []time.Duration
		badHdr   []string
		limited  atomic.Int64
		other    atomic.Int64
		perAppOK [2]atomic.Int64
		wg       sync.WaitGroup
		client   = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: perApp}}
		start    = time.Now()
		deadline = start.Add(run)
	)
	defer client.CloseIdleConnections()
	for i, ta := range apps {
		for w := 0; w < perApp; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(deadline) {
					sent := time.Since(start)
					resp, err := client.Get(ta.base + "/search")
					if err != nil {
						other.Add(1)
						continue
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					switch resp.StatusCode {
					case http.StatusOK:
						perAppOK[i].Add(1)
						// Redis admitted it somewhere between sending and
						// reading; the midpoint halves the error.
						at := (sent + time.Since(start)) / 2
						mu.Lock()
						admitted = append(admitted, at)
						mu.Unlock()
					case statusBusy:
						limited.Add(1)
						if resp.Header.Get("Retry-After") == "" || resp.Header.Get("RateLimit") == "" {
							mu.Lock()
							badHdr = append(badHdr, fmt.Sprintf("Retry-After %q, RateLimit %q", resp.Header.Get("Retry-After"), resp.Header.Get("RateLimit")))
							mu.Unlock()
						}
					default:
						other.Add(1)
					}
				}
			}()
		}
	}
	wg.Wait()
	// From the first request sent to the last response read: the longest
	// time the limit could have been earning requests back.
	elapsed := time.Since(start).Seconds()

	ok := float64(len(admitted))
	ceiling := (wantBurst + wantRate*elapsed) * tolerance
	floor := (wantBurst + wantRate*elapsed) * minShare
	t.Logf("%.2fs: %d admitted (app0 %d, app1 %d), %d limited, %d other; allowed %.0f..%.0f",
		elapsed, len(admitted), perAppOK[0].Load(), perAppOK[1].Load(), limited.Load(), other.Load(), floor, ceiling)
	if ok > ceiling {
		t.Errorf("admitted across both instances: got %.0f, want at most %.0f (burst %v + %v/s × %.2fs + 5%%)", ok, ceiling, wantBurst, wantRate, elapsed)
	}
	if ok < floor {
		t.Errorf("admitted across both instances: got %.0f, want at least %.0f (70%% of the limit; it starves)", ok, floor)
	}
	if perAppOK[0].Load() == 0 || perAppOK[1].Load() == 0 {
		t.Errorf("admitted per instance: got %d and %d, want both above 0", perAppOK[0].Load(), perAppOK[1].Load())
	}
	if limited.Load() == 0 {
		t.Errorf("429 responses: got 0, want some (the load must exceed the limit)")
	}
	if n := other.Load(); n != 0 {
		t.Errorf("responses other than 200 and 429: got %d, want 0", n)
	}
	if len(badHdr) > 0 {
		t.Errorf("429 responses without Retry-After or RateLimit: got %d, e.g. %s", len(badHdr), badHdr[0])
	}
	// Acceptance point 1's window rule, on the whole seconds after the first.
	windows := make([]int, int(elapsed)+1)
	for _, at := range admitted {
		windows[int(at/time.Second)]++
	}
	for s := 1; s < int(elapsed); s++ {
		if windows[s] > windowMax {
			t.Errorf("admitted in second %d: got %d, want at most %d", s, windows[s], windowMax)
		}
	}
	t.Logf("admitted per second: %v", windows)
}

// TestE2EGlobalRateLimitRedisDown: with Redis unreachable, a global limit
// with on_redis_error: closed refuses with 503, and one with open admits.
func TestE2EGlobalRateLimitRedisDown(t *testing.T) {
	up := newE2EEcho(t)
	ta := startApp(t, testListeners+fmt.Sprintf(`
redis: {addr: %q}
upstreams:
  app: {endpoints: [%q]}
routes:
  - name: closed
    match: {path_prefix: /closed}
    backends: [{upstream: app}]
    rate_limit: {requests: 100, burst: 100, scope: global, on_redis_error: closed}
  - name: open
    match: {path_prefix: /open}
    backends: [{upstream: app}]
    rate_limit: {requests: 100, burst: 100, scope: global, on_redis_error: open}
`, e2eDeadAddr(t), up.addr()))

	tests := []struct {
		name       string
		path       string
		wantStatus int
	}{
		{"fail closed", "/closed", http.StatusServiceUnavailable},
		{"fail open", "/open", http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for i := 0; i < 3; i++ {
				resp, err := http.Get(ta.base + tc.path)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != tc.wantStatus {
					t.Errorf("GET %s #%d with Redis down: got %d, want %d", tc.path, i, resp.StatusCode, tc.wantStatus)
				}
			}
			if v, ok := gauge(t, ta.App, "torii_ratelimit_redis_errors_total", map[string]string{"route": tc.path[1:]}); !ok || v < 3 {
				t.Errorf("torii_ratelimit_redis_errors_total{route=%q}: got %v (found %v), want at least 3", tc.path[1:], v, ok)
			}
		})
	}
	if v, ok := gauge(t, ta.App, "torii_ratelimit_redis_up", nil); !ok || v != 0 {
		t.Errorf("torii_ratelimit_redis_up with Redis down: got %v (found %v), want 0", v, ok)
	}
}
