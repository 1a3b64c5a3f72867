package admin

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"torii/internal/request"
	"torii/internal/telemetry"
)

// TestStats: GET /api/v1/stats reads the real telemetry metrics, per
// configured route in config order with its owner, counts 5xx as errors,
// leaves out requests that matched no route, and gives the duration
// histogram without its +Inf bucket. Compared with
// testdata/stats.golden.json (-update rewrites it).
func TestStats(t *testing.T) {
	b, _ := newTestServer(t)
	reg := prometheus.NewRegistry()
	m, err := telemetry.NewMetrics(reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []struct {
		route, upstream string
		status          int
		dur             time.Duration
	}{
		{"items", "listing", 200, 3 * time.Millisecond},
		{"items", "listing", 200, 20 * time.Millisecond},
		{"items", "listing", 503, 2 * time.Second},
		{"items", "", 502, 40 * time.Millisecond},
		{"items", "listing", 499, 30 * time.Second},
		{"monolith", "monolith", 404, 7 * time.Millisecond},
		{"", "", 404, time.Millisecond}, // no route: not in the answer
	} {
		m.Observe(&request.Info{Route: o.route, Upstream: o.upstream, Status: o.status}, o.dur)
	}
	h := New(Options{Backend: b, Gatherer: reg})
	rec := serve(h, "GET", "/api/v1/stats", nil)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /api/v1/stats: got %d, want 200: %s", rec.Code, rec.Body)
	}
	golden := filepath.Join("testdata", "stats.golden.json")
	if *update {
		if err := os.WriteFile(golden, rec.Body.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("read golden (run with -update to create it): %v", err)
	}
	if got := rec.Body.String(); got != string(want) {
		t.Errorf("GET /api/v1/stats: got\n%s\nwant (%s)\n%s", got, golden, want)
	}
	for _, s := range []string{`"requests": 5`, `"errors": 2`, `"owner": "listing"`, `"teams": [`} {
		if !strings.Contains(rec.Body.String(), s) {
			t.Errorf("GET /api/v1/stats: want %s in\n%s", s, rec.Body)
		}
	}
}

// TestDashboardMount: the admin listener serves the dashboard at / and
// its files under /ui/ with a strict CSP, behind the same Host check as
// the API, and every other unknown path still gets the JSON 404.
func TestDashboardMount(t *testing.T) {
	_, h := newTestServer(t)
	tests := []struct {
		name, path string
		header     map[string]string
		wantStatus int
		wantType   string
		wantBody   string
	}{
		{"page", "/", nil, 200, "text/html; charset=utf-8", `<script src="/ui/app.js"`},
		{"script", "/ui/app.js", nil, 200, "text/javascript; charset=utf-8", "/api/v1/stats"},
		{"style", "/ui/style.css", nil, 200, "text/css; charset=utf-8", ":focus-visible"},
		{"unknown asset", "/ui/nope.js", nil, 404, "application/json", `"error": "not found"`},
		{"asset directory", "/ui/", nil, 404, "application/json", `"error": "not found"`},
		{"unknown path", "/nope", nil, 404, "application/json", `"error": "not found"`},
		{"index by name elsewhere", "/index.html", nil, 404, "application/json", `"error": "not found"`},
		{"rebinding name", "/", map[string]string{"Host": "attacker.example"}, 421, "application/json", "not this admin listener"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := serve(h, "GET", tc.path, tc.header)
			if rec.Code != tc.wantStatus {
				t.Fatalf("GET %s: got %d, want %d: %s", tc.path, rec.Code, tc.wantStatus, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != tc.wantType {
				t.Errorf("Content-Type: got %q, want %q", ct, tc.wantType)
			}
			if !strings.Contains(rec.Body.String(), tc.wantBody) {
				t.Errorf("GET %s: body lacks %q", tc.path, tc.wantBody)
			}
			if rec.Code == 200 {
				csp := rec.Header().Get("Content-Security-Policy")
				if !strings.Contains(csp, "default-src 'self'") || strings.Contains(csp, "unsafe-inline") {
					t.Errorf("Content-Security-Policy: got %q, want default-src 'self' and no unsafe-inline", csp)
				}
			}
		})
	}
}
