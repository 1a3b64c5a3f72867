package migrate

import (
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"torii/internal/config"
	"torii/internal/proxy"
	"torii/internal/request"
	"torii/internal/store"
)

// TestClientsNeverWaitForTheShadow is issue 6's second acceptance point:
// with a candidate that answers after 1 s, every client response arrives
// before the candidate has answered any shadow request.
func TestClientsNeverWaitForTheShadow(t *testing.T) {
	p, _ := recorder(t, 200, 0)
	var firstAnswer atomic.Int64 // unix nanoseconds of the candidate's first answer
	c := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(time.Second)
		firstAnswer.CompareAndSwap(0, time.Now().UnixNano())
		io.WriteString(w, "late")
	}))
	t.Cleanup(c.Close)
	g := newGateway(t, addr(p), addr(c), Options{Timeout: 5 * time.Second})
	const clients, each = 10, 5
	done := make(chan time.Time, clients*each)
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				res, body, _ := g.do(t, "GET", "/items", "", nil)
				if res.StatusCode != 200 || body != "from upstream" {
					t.Errorf("client got %d %q", res.StatusCode, body)
				}
				done <- time.Now()
			}
		}()
	}
	wg.Wait()
	close(done)
	var last time.Time
	for at := range done {
		if at.After(last) {
			last = at
		}
	}
	if first := firstAnswer.Load(); first != 0 && !last.Before(time.Unix(0, first)) {
		t.Errorf("the last client response came %s after the candidate's first answer", last.Sub(time.Unix(0, first)))
	}
	waitCount(t, g, resultSent, clients*each)
}

// TestLargeUploadNotMirrored: a 100 MB upload reaches the primary whole,
// is not mirrored, and the shadow holds at most its bound of it: the heap
// grows by less than 32 MiB.
func TestLargeUploadNotMirrored(t *testing.T) {
	var got atomic.Int64
	p := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		got.Store(n)
		io.WriteString(w, "stored")
	}))
	t.Cleanup(p.Close)
	cand, seenByCandidate := recorder(t, 200, 0)
	g := newGateway(t, addr(p), addr(cand), Options{AllowUnsafe: true, MaxBodyBytes: 1 << 20})

	const size = 100 << 20
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() { // sample the heap while the upload streams
		defer close(sampled)
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
		}
	}()
	// A chunked body: the shadow cannot know its size up front.
	req, _ := http.NewRequest("PUT", g.url+"/upload", io.LimitReader(zeros{}, size))
	req.ContentLength = -1
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	close(stop)
	<-sampled
	if res.StatusCode != 200 || got.Load() != size {
		t.Fatalf("primary: status %d, %d bytes, want 200 and %d", res.StatusCode, got.Load(), size)
	}
	none(t, seenByCandidate, "100 MB upload")
	waitCount(t, g, resultSkippedBody, 1)
	growth := int64(peak.Load()) - int64(before.HeapInuse)
	t.Logf("heap in use grew by at most %.1f MiB while 100 MiB went through", float64(growth)/(1<<20))
	if growth > 32<<20 {
		t.Errorf("heap grew by %.1f MiB, want under 32 MiB", float64(growth)/(1<<20))
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// BenchmarkShadowLatency measures the client's latency through a proxied
// route without a shadow, and with every request mirrored (and compared)
// to a candidate that answers after 1 s (max_concurrent at its default,
// 100). Requests arrive open-loop at 1,000 per second, as a service's
// traffic does, each iteration one request; it reports the p50 and p99 in
// microseconds. Issue 6 wants the shadow's p99 within 1 ms of the
// no-shadow run: go test -run '^$' -bench ShadowLatency -benchtime 5000x.
func BenchmarkShadowLatency(b *testing.B) {
	p := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id": 7, "name": "item", "price": 42.5}`)
	}))
	b.Cleanup(p.Close)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(time.Second)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id": 7, "name": "item", "price": "42.50"}`)
	}))
	b.Cleanup(slow.Close)
	const rate = 1000 // requests per second
	for _, mode := range []string{"none", "shadow"} {
		b.Run(mode, func(b *testing.B) {
			var h http.Handler
			if mode == "none" {
				h = primaryOnly(b, addr(p))
			} else {
				h = shadowed(b, addr(p), addr(slow))
			}
			srv := httptest.NewServer(h)
			defer srv.Close()
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
			lat := make([]time.Duration, b.N)
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for i := range b.N {
				time.Sleep(time.Until(start.Add(time.Duration(i) * time.Second / rate)))
				wg.Add(1)
				go func() {
					defer wg.Done()
					t0 := time.Now()
					res, err := client.Get(srv.URL + "/items/7")
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
					lat[i] = time.Since(t0)
				}()
			}
			wg.Wait()
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}

// primaryOnly serves a proxy to primary with a request.Info, and no
// shadow.
func primaryOnly(b *testing.B, primary string) http.Handler {
	ph, err := proxy.New(proxy.Options{Route: "r", Backends: []proxy.Backend{{Pool: pool(b, "primary", primary), Weight: 1}}})
	if err != nil {
		b.Fatal(err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := &request.Info{ID: "req-1", Start: time.Now()}
		ph.ServeHTTP(w, r.WithContext(request.NewContext(r.Context(), info)))
	})
}

// shadowed serves the same proxy mirroring every request, compared, to
// candidate.
func shadowed(b *testing.B, primary, candidate string) http.Handler {
	d, err := NewDiffs(DiffsOptions{Store: store.NewMemory(nil)})
	if err != nil {
		b.Fatal(err)
	}
	rd, err := d.Route(&config.Route{Name: "r", Backends: []config.Backend{{Upstream: "primary"}},
		Shadow: &config.Shadow{Upstream: "candidate", Compare: &config.Compare{SecondaryPercent: 20,
			Headers: []string{"Content-Type"}, MaxBodyBytes: 1 << 20, RelativeThreshold: 20, AbsoluteThreshold: 0.03, Samples: 5}}})
	if err != nil {
		b.Fatal(err)
	}
	return newGateway(b, primary, candidate, Options{Compare: rd, MaxConcurrent: 100}).handler
}
