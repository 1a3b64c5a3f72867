package cache

import (
	"fmt"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"torii/internal/config"
)

// TestCoalescing: 100 concurrent misses for one key make one upstream
// request, and every client gets its response.
func TestCoalescing(t *testing.T) {
	release := make(chan struct{})
	g := newRig(t, rigOptions{}, func(w http.ResponseWriter, r *http.Request, n int64) {
		<-release
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, body(n))
	})
	const clients = 100
	results := make(chan response, clients)
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() { results <- g.do(t, "GET", "/herd") })
	}
	waitFor(t, func() bool { return g.hits.Load() == 1 && g.waiting("/herd") == clients-1 })
	close(release)
	wg.Wait()
	close(results)
	labels := map[string]int{}
	for res := range results {
		labels[res.header.Get("X-Cache")]++
		if res.status != 200 || res.body != "v1" {
			t.Errorf("got %d %q, want 200 \"v1\"", res.status, res.body)
		}
	}
	if got := g.hits.Load(); got != 1 {
		t.Errorf("upstream requests: got %d, want 1", got)
	}
	if labels["MISS"] != 1 || labels["HIT"] != clients-1 {
		t.Errorf("X-Cache: got %v, want 1 MISS and %d HIT", labels, clients-1)
	}
}

// TestCoalescingUnshareable: when the coalesced response is private, every
// waiter goes upstream itself and gets its own response.
func TestCoalescingUnshareable(t *testing.T) {
	release := make(chan struct{})
	g := newRig(t, rigOptions{}, func(w http.ResponseWriter, r *http.Request, n int64) {
		if n == 1 {
			<-release
		}
		w.Header().Set("Cache-Control", "private, max-age=60")
		fmt.Fprint(w, "for "+r.Header.Get("X-Client"))
	})
	const clients = 50
	var wg sync.WaitGroup
	errs := make(chan string, clients)
	for i := range clients {
		wg.Go(func() {
			who := strconv.Itoa(i)
			res := g.do(t, "GET", "/mine", "X-Client: "+who)
			if res.body != "for "+who {
				errs <- fmt.Sprintf("client %s got %q, want %q", who, res.body, "for "+who)
			}
		})
	}
	waitFor(t, func() bool { return g.hits.Load() == 1 && g.waiting("/mine") == clients-1 })
	close(release)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if got := g.hits.Load(); got != clients {
		t.Errorf("upstream requests: got %d, want %d (one each)", got, clients)
	}
	// Later requests skip the queue (hit-for-miss) and still get their own.
	if res := g.do(t, "GET", "/mine", "X-Client: late"); res.body != "for late" {
		t.Errorf("late client got %q", res.body)
	}
}

// waiting returns how many requests wait on the flight of path.
func (g *rig) waiting(path string) int {
	g.store.flightMu.Lock()
	defer g.store.flightMu.Unlock()
	for key, f := range g.store.flights {
		if strings.HasSuffix(key, path) {
			return int(f.waiters.Load())
		}
	}
	return 0
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestStaleIfErrorUpstreamDown: with the upstream gone, a stale entry
// within stale-if-error is served.
func TestStaleIfErrorUpstreamDown(t *testing.T) {
	g := newRig(t, rigOptions{}, fixed("Cache-Control: max-age=1, stale-if-error=300"))
	if res := g.do(t, "GET", "/p"); res.header.Get("X-Cache") != "MISS" {
		t.Fatalf("first: X-Cache %q, want MISS", res.header.Get("X-Cache"))
	}
	g.up.Close() // connections refused from now on: the proxy answers 502
	g.clock.advance(10 * time.Second)
	res := g.do(t, "GET", "/p")
	if res.status != 200 || res.body != "v1" || res.header.Get("X-Cache") != "STALE" {
		t.Errorf("upstream down: got %d %q X-Cache %q, want 200 \"v1\" STALE", res.status, res.body, res.header.Get("X-Cache"))
	}
	if age, _ := strconv.Atoi(res.header.Get("Age")); age < 10 {
		t.Errorf("Age: got %q, want at least 10", res.header.Get("Age"))
	}
	g.clock.advance(400 * time.Second) // beyond stale-if-error
	if res := g.do(t, "GET", "/p"); res.status != http.StatusBadGateway {
		t.Errorf("beyond stale-if-error: got %d, want 502", res.status)
	}
}

// TestStaleWhileRevalidate: a slow upstream does not delay the answer, and
// it sees exactly one refresh however many requests arrive meanwhile.
func TestStaleWhileRevalidate(t *testing.T) {
	const delay = time.Second
	g := newRig(t, rigOptions{}, func(w http.ResponseWriter, r *http.Request, n int64) {
		if n > 1 {
			time.Sleep(delay)
		}
		w.Header().Set("Cache-Control", "max-age=5, stale-while-revalidate=300")
		fmt.Fprint(w, body(n))
	})
	g.do(t, "GET", "/p")
	g.clock.advance(10 * time.Second)
	for i := range 20 {
		start := time.Now()
		res := g.do(t, "GET", "/p")
		took := time.Since(start)
		if res.body != "v1" || res.header.Get("X-Cache") != "STALE" {
			t.Errorf("request %d: got %q X-Cache %q, want \"v1\" STALE", i, res.body, res.header.Get("X-Cache"))
		}
		if took > delay/4 {
			t.Errorf("request %d took %s, want well under the upstream's %s", i, took, delay)
		}
	}
	waitFor(t, func() bool { return g.waitingAny() == 0 && g.hits.Load() == 2 })
	time.Sleep(50 * time.Millisecond)
	if got := g.hits.Load(); got != 2 {
		t.Errorf("upstream requests: got %d, want 2 (the fill and one refresh)", got)
	}
	if res := g.do(t, "GET", "/p"); res.body != "v2" || res.header.Get("X-Cache") != "HIT" {
		t.Errorf("after the refresh: got %q X-Cache %q, want \"v2\" HIT", res.body, res.header.Get("X-Cache"))
	}
}

func (g *rig) waitingAny() int {
	g.store.flightMu.Lock()
	defer g.store.flightMu.Unlock()
	return len(g.store.flights)
}

// TestPoisoning: unkeyed headers and other spellings of the query sent by
// one client cannot change what a client with a normal request receives.
// The upstream reflects them all into the body.
func TestPoisoning(t *testing.T) {
	g := newRig(t, rigOptions{}, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Cache-Control", "public, max-age=60")
		fmt.Fprintf(w, "host=%s xfh=%s xou=%s xfs=%s q=%s",
			r.Host, r.Header.Get("X-Forwarded-Host"), r.Header.Get("X-Original-Url"),
			r.Header.Get("X-Forwarded-Scheme"), r.URL.RawQuery)
	})
	host := strings.TrimPrefix(g.url, "http://")
	want := "host=" + host + " xfh=" + host + " xou= xfs= q=a=1"
	attacks := []struct {
		path   string
		fields []string
	}{
		{"/p?a=1", []string{"X-Forwarded-Host: evil.example"}},
		{"/p?a=1", []string{"X-Original-URL: /admin"}},
		{"/p?a=1", []string{"X-Forwarded-Scheme: nothttps"}},
		{"/p?a=1", []string{"X-Rewrite-URL: /admin", "X-Forwarded-Host: evil.example"}},
		{"/p?a=1&a=1", nil},
		{"/p?A=1", nil},
		{"/p?a=%31", nil},
		{"/p?a=1&", nil},
	}
	for _, a := range attacks {
		g.do(t, "GET", a.path, a.fields...)
	}
	for i := range 2 {
		res := g.do(t, "GET", "/p?a=1")
		if res.body != want {
			t.Errorf("normal request %d: got %q, want %q", i, res.body, want)
		}
	}
	// And once the normal response is stored, the attacks get it too.
	for _, a := range attacks[:4] {
		if res := g.do(t, "GET", a.path, a.fields...); res.body != want {
			t.Errorf("attack %v after the fill: got %q, want %q", a.fields, res.body, want)
		}
	}
}

// TestAuthBeforeCache: with an auth-like middleware in front, as the chain
// puts it, a stored response is never served to a request auth refuses.
func TestAuthBeforeCache(t *testing.T) {
	guard := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer good" {
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	g := newRig(t, rigOptions{guard: guard}, fixed("Cache-Control: public, max-age=60"))
	if res := g.do(t, "GET", "/p", "Authorization: Bearer good"); res.header.Get("X-Cache") != "MISS" {
		t.Fatalf("fill: X-Cache %q, want MISS", res.header.Get("X-Cache"))
	}
	if res := g.do(t, "GET", "/p", "Authorization: Bearer good"); res.header.Get("X-Cache") != "HIT" {
		t.Fatalf("X-Cache %q, want HIT", res.header.Get("X-Cache"))
	}
	for _, fields := range [][]string{nil, {"Authorization: Bearer bad"}} {
		res := g.do(t, "GET", "/p", fields...)
		if res.status != http.StatusUnauthorized || res.header.Get("X-Cache") != "" || strings.Contains(res.body, "v1") {
			t.Errorf("%v: got %d X-Cache %q body %q, want 401 without the cached body", fields, res.status, res.header.Get("X-Cache"), res.body)
		}
	}
}

// TestPurge purges by key and by prefix.
func TestPurge(t *testing.T) {
	g := newRig(t, rigOptions{}, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "Accept-Language")
		fmt.Fprint(w, body(n))
	})
	host := strings.TrimPrefix(g.url, "http://")
	paths := []string{"/v1/a", "/v1/b?x=1", "/v2/c"}
	for _, p := range paths {
		g.do(t, "GET", p)
		g.do(t, "GET", p, "Accept-Language: fr") // a second variant
	}
	if n := g.store.Purge("GET " + host + "/v1/a"); n != 2 {
		t.Errorf("Purge: got %d, want 2 (both variants)", n)
	}
	if res := g.do(t, "GET", "/v1/a"); res.header.Get("X-Cache") != "MISS" {
		t.Errorf("after Purge: X-Cache %q, want MISS", res.header.Get("X-Cache"))
	}
	if n := g.store.Purge("http://" + strings.ToUpper(host) + "/v1/b?x=1"); n != 2 {
		t.Errorf("Purge by URL: got %d, want 2", n)
	}
	if n := g.store.PurgePrefix(host + "/v1/"); n != 1 {
		t.Errorf("PurgePrefix: got %d, want 1 (the refilled /v1/a)", n)
	}
	if res := g.do(t, "GET", "/v2/c"); res.header.Get("X-Cache") != "HIT" {
		t.Errorf("/v2/c after purging /v1/: X-Cache %q, want HIT", res.header.Get("X-Cache"))
	}
	if n := g.store.PurgePrefix("https://" + host + "/"); n != 0 {
		t.Errorf("PurgePrefix of https: got %d, want 0", n)
	}
	if g.store.Len() != 2 {
		t.Errorf("entries left: got %d, want 2", g.store.Len())
	}
}

// TestHeapBound fills the cache to ten times its byte bound; the heap in
// use after GC stays within the bound plus 16 MiB.
func TestHeapBound(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 320 MiB")
	}
	const bound, object = 32 << 20, 64 << 10
	payload := strings.Repeat("x", object)
	g := newRig(t, rigOptions{maxBytes: bound, maxObj: 1 << 20}, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Content-Length", strconv.Itoa(object))
		w.Write([]byte(payload))
	})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range 10 * bound / object {
		res := g.do(t, "GET", "/o/"+strconv.Itoa(i))
		if res.header.Get("X-Cache") != "MISS" || len(res.body) != object {
			t.Fatalf("object %d: X-Cache %q, %d bytes", i, res.header.Get("X-Cache"), len(res.body))
		}
	}
	http.DefaultClient.CloseIdleConnections()
	runtime.GC()
	runtime.ReadMemStats(&after)
	grew := int64(after.HeapInuse) - int64(before.HeapInuse)
	t.Logf("heap in use: %d MiB before, %d MiB after (grew %d MiB); cache accounts %d MiB in %d entries",
		before.HeapInuse>>20, after.HeapInuse>>20, grew>>20, g.store.Bytes()>>20, g.store.Len())
	if g.store.Bytes() > bound {
		t.Errorf("accounted bytes: got %d, want at most %d", g.store.Bytes(), bound)
	}
	if grew > bound+16<<20 {
		t.Errorf("heap in use grew by %d MiB, want at most %d MiB", grew>>20, (bound+16<<20)>>20)
	}
	if n := metricValue(t, g, "torii_cache_evictions_total"); n < 4000 {
		t.Errorf("evictions: got %v, want most of the 5120 objects", n)
	}
}

// TestSetLimits lowers the bound and evicts at once.
func TestSetLimits(t *testing.T) {
	g := newRig(t, rigOptions{route: config.RouteCache{DefaultTTL: config.Duration(time.Minute)}}, fixed())
	for i := range 10 {
		g.do(t, "GET", "/"+strconv.Itoa(i))
	}
	if g.store.Len() != 10 {
		t.Fatalf("entries: got %d, want 10", g.store.Len())
	}
	g.store.SetLimits(3*entryOverhead, 1024)
	if g.store.Len() > 2 || g.store.Bytes() > 3*entryOverhead {
		t.Errorf("after SetLimits: %d entries, %d bytes, want at most %d bytes", g.store.Len(), g.store.Bytes(), 3*entryOverhead)
	}
}

func metricValue(t *testing.T, g *rig, name string) float64 {
	t.Helper()
	mfs, err := g.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			var sum float64
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
			return sum
		}
	}
	return 0
}
