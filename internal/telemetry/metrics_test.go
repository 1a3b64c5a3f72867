package telemetry

import (
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"torii/internal/request"
	"torii/internal/upstream"
)

func newTestMetrics(t testing.TB, endpoints func() []upstream.EndpointStatus) (*Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	m, err := NewMetrics(reg, endpoints)
	if err != nil {
		t.Fatal(err)
	}
	return m, reg
}

// scrape gathers reg and returns the samples of the named metrics, one
// `name{label="value",...} value` line each, sorted; a histogram gives its
// _count and _sum. (prometheus/testutil would do, but pulls in a module
// this repository does not otherwise need.)
func scrape(t testing.TB, reg prometheus.Gatherer, names ...string) string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var lines []string
	for _, mf := range mfs {
		if !slices.Contains(names, mf.GetName()) {
			continue
		}
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			series := mf.GetName() + "{" + strings.Join(labels, ",") + "}"
			switch {
			case m.GetCounter() != nil:
				lines = append(lines, fmt.Sprintf("%s %g", series, m.GetCounter().GetValue()))
			case m.GetGauge() != nil:
				lines = append(lines, fmt.Sprintf("%s %g", series, m.GetGauge().GetValue()))
			case m.GetHistogram() != nil:
				h := m.GetHistogram()
				lines = append(lines,
					fmt.Sprintf("%s_count{%s} %d", mf.GetName(), strings.Join(labels, ","), h.GetSampleCount()),
					fmt.Sprintf("%s_sum{%s} %g", mf.GetName(), strings.Join(labels, ","), h.GetSampleSum()))
			}
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// checkScrape fails t unless the named metrics' samples are exactly want
// (lines in any order, surrounding blank lines ignored).
func checkScrape(t testing.TB, reg prometheus.Gatherer, want string, names ...string) {
	t.Helper()
	wantLines := strings.Split(strings.TrimSpace(want), "\n")
	if want == "" {
		wantLines = nil
	}
	slices.Sort(wantLines)
	if got := scrape(t, reg, names...); got != strings.Join(wantLines, "\n") {
		t.Errorf("metrics %v:\ngot:\n%s\nwant:\n%s", names, got, strings.Join(wantLines, "\n"))
	}
}

func TestObserve(t *testing.T) {
	m, reg := newTestMetrics(t, nil)
	infos := []*request.Info{
		{Route: "items", Upstream: "monolith", Status: 200, Tries: 1},
		{Route: "items", Upstream: "monolith", Status: 200, Tries: 3},
		{Route: "items", Upstream: "listing", Status: 502, Tries: 2},
		{Route: "items", Upstream: "listing", Status: 499, Tries: 1},
		{Route: "", Upstream: "", Status: 404},            // no route matched
		{Route: "home", Upstream: "", Status: 301},        // a redirect
		{Route: "home", Upstream: "monolith", Status: 0},  // no status recorded
		{Route: "home", Upstream: "monolith", Status: 42}, // nonsense status
	}
	for _, info := range infos {
		m.Observe(info, 30*time.Millisecond)
	}
	checkScrape(t, reg, `
torii_http_requests_total{code="200",route="items",upstream="monolith"} 2
torii_http_requests_total{code="301",route="home",upstream="none"} 1
torii_http_requests_total{code="404",route="none",upstream="none"} 1
torii_http_requests_total{code="499",route="items",upstream="listing"} 1
torii_http_requests_total{code="502",route="items",upstream="listing"} 1
torii_http_requests_total{code="other",route="home",upstream="monolith"} 2
torii_upstream_retries_total{route="home",upstream="monolith"} 0
torii_upstream_retries_total{route="home",upstream="none"} 0
torii_upstream_retries_total{route="items",upstream="listing"} 1
torii_upstream_retries_total{route="items",upstream="monolith"} 2
torii_upstream_retries_total{route="none",upstream="none"} 0
torii_http_request_duration_seconds_count{route="home"} 3
torii_http_request_duration_seconds_count{route="items"} 4
torii_http_request_duration_seconds_count{route="none"} 1
torii_http_request_duration_seconds_sum{route="home"} 0.09
torii_http_request_duration_seconds_sum{route="items"} 0.12
torii_http_request_duration_seconds_sum{route="none"} 0.03
`, "torii_http_requests_total", "torii_upstream_retries_total", "torii_http_request_duration_seconds")
}

func TestInFlight(t *testing.T) {
	m, reg := newTestMetrics(t, nil)
	done1 := m.InFlight()
	done2 := m.InFlight()
	checkScrape(t, reg, "torii_http_requests_in_flight{} 2", "torii_http_requests_in_flight")
	done1()
	done2()
	checkScrape(t, reg, "torii_http_requests_in_flight{} 0", "torii_http_requests_in_flight")
}

func TestReloadResult(t *testing.T) {
	m, reg := newTestMetrics(t, nil)
	m.ReloadResult(true, time.Unix(1700000000, 500_000_000))
	m.ReloadResult(false, time.Unix(1700000100, 0))
	names := []string{
		"torii_config_last_reload_success_timestamp_seconds",
		"torii_config_last_reload_successful",
		"torii_config_reloads_total",
	}
	checkScrape(t, reg, `
torii_config_last_reload_success_timestamp_seconds{} 1.7000000005e+09
torii_config_last_reload_successful{} 0
torii_config_reloads_total{result="failure"} 1
torii_config_reloads_total{result="success"} 1
`, names...)
	m.ReloadResult(true, time.Unix(1700000200, 0))
	checkScrape(t, reg, `
torii_config_last_reload_success_timestamp_seconds{} 1.7000002e+09
torii_config_last_reload_successful{} 1
torii_config_reloads_total{result="failure"} 1
torii_config_reloads_total{result="success"} 2
`, names...)
}

func TestBuildInfo(t *testing.T) {
	_, reg := newTestMetrics(t, nil)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "torii_build_info" {
			continue
		}
		labels := map[string]string{}
		for _, l := range mf.GetMetric()[0].GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["goversion"] != runtime.Version() || labels["version"] == "" || labels["revision"] == "" {
			t.Errorf("torii_build_info labels %v, want version, revision and goversion %s", labels, runtime.Version())
		}
		return
	}
	t.Error("torii_build_info not exported")
}

// TestEndpointMetrics shows the endpoint metrics follow the endpoints
// function at each scrape: an endpoint removed by a reload disappears.
func TestEndpointMetrics(t *testing.T) {
	var mu sync.Mutex // guards eps
	eps := []upstream.EndpointStatus{
		{Upstream: "monolith", Addr: "10.0.0.11:8000", Healthy: true, InFlight: 3, Ejections: 1},
		{Upstream: "monolith", Addr: "10.0.0.12:8000", Healthy: false, Ejected: true, Ejections: 4},
	}
	_, reg := newTestMetrics(t, func() []upstream.EndpointStatus {
		mu.Lock()
		defer mu.Unlock()
		return eps
	})
	names := []string{
		"torii_upstream_endpoint_healthy", "torii_upstream_endpoint_ejected",
		"torii_upstream_endpoint_in_flight", "torii_upstream_ejections_total",
	}
	checkScrape(t, reg, `
torii_upstream_ejections_total{endpoint="10.0.0.11:8000",upstream="monolith"} 1
torii_upstream_ejections_total{endpoint="10.0.0.12:8000",upstream="monolith"} 4
torii_upstream_endpoint_ejected{endpoint="10.0.0.11:8000",upstream="monolith"} 0
torii_upstream_endpoint_ejected{endpoint="10.0.0.12:8000",upstream="monolith"} 1
torii_upstream_endpoint_healthy{endpoint="10.0.0.11:8000",upstream="monolith"} 1
torii_upstream_endpoint_healthy{endpoint="10.0.0.12:8000",upstream="monolith"} 0
torii_upstream_endpoint_in_flight{endpoint="10.0.0.11:8000",upstream="monolith"} 3
torii_upstream_endpoint_in_flight{endpoint="10.0.0.12:8000",upstream="monolith"} 0
`, names...)

	mu.Lock()
	eps = eps[:1]
	mu.Unlock()
	checkScrape(t, reg, `
torii_upstream_ejections_total{endpoint="10.0.0.11:8000",upstream="monolith"} 1
torii_upstream_endpoint_ejected{endpoint="10.0.0.11:8000",upstream="monolith"} 0
torii_upstream_endpoint_healthy{endpoint="10.0.0.11:8000",upstream="monolith"} 1
torii_upstream_endpoint_in_flight{endpoint="10.0.0.11:8000",upstream="monolith"} 3
`, names...)
}

func TestForgetRoutes(t *testing.T) {
	m, reg := newTestMetrics(t, nil)
	for _, route := range []string{"keep", "drop", ""} {
		m.Observe(&request.Info{Route: route, Upstream: "u", Status: 200, Tries: 1}, time.Millisecond)
	}
	m.ForgetRoutes(func(route string) bool { return route == "keep" })
	names := []string{"torii_http_requests_total", "torii_http_request_duration_seconds"}
	checkScrape(t, reg, `
torii_http_requests_total{code="200",route="keep",upstream="u"} 1
torii_http_requests_total{code="200",route="none",upstream="u"} 1
torii_http_request_duration_seconds_count{route="keep"} 1
torii_http_request_duration_seconds_count{route="none"} 1
torii_http_request_duration_seconds_sum{route="keep"} 0.001
torii_http_request_duration_seconds_sum{route="none"} 0.001
`, names...)
	// A forgotten route that comes back is counted afresh.
	m.Observe(&request.Info{Route: "drop", Upstream: "u", Status: 200, Tries: 1}, time.Millisecond)
	if got := scrape(t, reg, "torii_http_requests_total"); !strings.Contains(got, `torii_http_requests_total{code="200",route="drop",upstream="u"} 1`) {
		t.Errorf("requests after a forgotten route returns:\n%s\nwant a drop series at 1", got)
	}
}

// TestMemoryPerRoute creates the series of 10,000 routes, each seen with
// two status codes, and bounds the heap they take.
func TestMemoryPerRoute(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates tens of megabytes")
	}
	const routes = 10_000
	const limit = 20 << 10 // bytes per route
	names := make([]string, routes)
	for i := range names {
		names[i] = "route-" + strconv.Itoa(i)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	m, reg := newTestMetrics(t, nil)
	info := &request.Info{Upstream: "monolith", Tries: 1}
	for _, name := range names {
		info.Route = name
		for _, code := range []int{200, 503} {
			info.Status = code
			m.Observe(info, 20*time.Millisecond)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(m)
	runtime.KeepAlive(reg)

	perRoute := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / routes
	t.Logf("heap per route (2 codes, 1 upstream, histogram of %d buckets): %d bytes", len(DurationBuckets), perRoute)
	if perRoute > limit {
		t.Errorf("heap per route = %d bytes, want < %d", perRoute, limit)
	}
}

func BenchmarkObserve(b *testing.B) {
	m, _ := newTestMetrics(b, nil)
	info := &request.Info{Route: "items", Upstream: "monolith", Status: 200, Tries: 2}
	m.Observe(info, time.Millisecond) // create the series
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			done := m.InFlight()
			m.Observe(info, 12*time.Millisecond)
			done()
		}
	})
}
