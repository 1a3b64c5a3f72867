package runtime_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"torii/internal/config"
	"torii/internal/request"
	"torii/internal/router"
	"torii/internal/runtime"
	"torii/internal/upstream"
)

var discard = slog.New(slog.DiscardHandler)

// echoed is what an echo upstream saw, as it reports it in its body.
type echoed struct {
	Upstream   string      `json:"upstream"`
	Path       string      `json:"path"`
	RawPath    string      `json:"raw_path"`
	RequestURI string      `json:"request_uri"`
	Query      string      `json:"query"`
	Header     http.Header `json:"header"`
}

// startEcho starts an upstream that answers every request with a JSON
// echoed naming itself, and with fixed response headers for the header-op
// tests to edit: X-Up-Set: old, X-Up-Add: one, X-Up-Drop: 1.
func startEcho(t testing.TB, name string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("X-Up-Set", "old")
		h.Set("X-Up-Add", "one")
		h.Set("X-Up-Drop", "1")
		json.NewEncoder(w).Encode(echoed{
			Upstream:   name,
			Path:       r.URL.Path,
			RawPath:    r.URL.RawPath,
			RequestURI: r.RequestURI,
			Query:      r.URL.RawQuery,
			Header:     r.Header,
		})
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// newSnapshot parses yaml (so defaults and validation apply), builds it
// and starts it; the snapshot is closed when the test ends.
func newSnapshot(t testing.TB, yaml string) *runtime.Snapshot {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml), "test.yaml")
	if err != nil {
		t.Fatalf("parse config: %v\n%s", err, yaml)
	}
	snap, err := runtime.Build(cfg, runtime.Deps{Registry: upstream.NewRegistry(upstream.Options{Logger: discard}), Logger: discard})
	if err != nil {
		t.Fatalf("build snapshot: %v", err)
	}
	snap.Start(t.Context())
	t.Cleanup(snap.Close)
	return snap
}

// echoSnapshot starts one echo upstream named "echo" and builds a snapshot
// of routes (a YAML list, indented as under "routes:") forwarding to it.
func echoSnapshot(t testing.TB, routes string) *runtime.Snapshot {
	t.Helper()
	addr := startEcho(t, "echo")
	return newSnapshot(t, fmt.Sprintf("upstreams:\n  echo: {endpoints: [%q]}\nroutes:\n%s", addr, routes))
}

// newRequest is a request as the server hands it to the front handler.
func newRequest(method, target string) *http.Request {
	return httptest.NewRequest(method, target, nil)
}

// prepare does what internal/app's front handler does before the
// snapshot: it puts a request.Info in r's context and cleans r's path.
func prepare(t testing.TB, r *http.Request, scheme string) (*http.Request, *request.Info) {
	t.Helper()
	if scheme == "" {
		scheme = "http"
	}
	info := &request.Info{ID: "t1", Scheme: scheme, ClientIP: netip.MustParseAddr("192.0.2.1")}
	r = r.WithContext(request.NewContext(r.Context(), info))
	escaped := r.URL.EscapedPath()
	clean, err := router.CleanPath(escaped)
	if err != nil {
		t.Errorf("clean path %q: %v", escaped, err)
	}
	if clean != escaped {
		runtime.SetEscapedPath(r.URL, clean)
	}
	return r, info
}

// serve prepares r as the front handler would, serves it with h and
// returns the response and the request's Info.
func serve(t testing.TB, h http.Handler, r *http.Request, scheme string) (*httptest.ResponseRecorder, *request.Info) {
	t.Helper()
	r, info := prepare(t, r, scheme)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w, info
}

// decodeEcho decodes what the echo upstream saw from a proxied response.
func decodeEcho(t testing.TB, w *httptest.ResponseRecorder) echoed {
	t.Helper()
	if w.Code != http.StatusOK {
		t.Fatalf("got status %d, want 200 from the echo upstream; body %q", w.Code, w.Body)
	}
	var e echoed
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil {
		t.Fatalf("decode echo body %q: %v", w.Body, err)
	}
	return e
}

func TestNoRoute(t *testing.T) {
	snap := newSnapshot(t, `
routes:
  - name: only
    match: {host: api.example.com, path_prefix: /v1}
    direct_response: {status: 200, body: ok}
`)
	tests := []struct {
		name, method, target string
		wantBody             bool
	}{
		{"other host", "GET", "http://www.example.com/v1/x", true},
		{"other path", "GET", "http://api.example.com/v2", true},
		{"segment boundary", "GET", "http://api.example.com/v10", true},
		{"head", "HEAD", "http://www.example.com/", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, info := serve(t, snap, newRequest(tt.method, tt.target), "")
			if w.Code != http.StatusNotFound {
				t.Fatalf("got status %d, want 404", w.Code)
			}
			if got := w.Header().Get("Content-Type"); got != "application/json" {
				t.Errorf("got Content-Type %q, want application/json", got)
			}
			if info.Route != "" {
				t.Errorf("got info.Route %q, want none", info.Route)
			}
			if info.Status != http.StatusNotFound {
				t.Errorf("got info.Status %d, want 404", info.Status)
			}
			if !tt.wantBody {
				if w.Body.Len() != 0 {
					t.Errorf("got body %q, want none for HEAD", w.Body)
				}
				return
			}
			var body struct {
				Error  string `json:"error"`
				Status int    `json:"status"`
				ID     string `json:"id"`
			}
			dec := json.NewDecoder(w.Body)
			dec.DisallowUnknownFields()
			if err := dec.Decode(&body); err != nil {
				t.Fatalf("decode error body: %v", err)
			}
			if body.Error == "" || body.Status != 404 || body.ID != "t1" {
				t.Errorf("got body %+v, want a message, status 404 and id t1", body)
			}
		})
	}
}

func TestWeightedBackends(t *testing.T) {
	a, b, c := startEcho(t, "a"), startEcho(t, "b"), startEcho(t, "c")
	snap := newSnapshot(t, fmt.Sprintf(`
upstreams:
  a: {endpoints: [%q]}
  b: {endpoints: [%q]}
  c: {endpoints: [%q]}
routes:
  - name: split
    backends:
      - {upstream: a, weight: 3}
      - {upstream: b, weight: 1}
      - {upstream: c, weight: 0}
`, a, b, c))

	const n = 4000
	counts := map[string]int{}
	for range n {
		w, info := serve(t, snap, newRequest("GET", "http://example.com/x"), "")
		e := decodeEcho(t, w)
		if info.Upstream != e.Upstream {
			t.Fatalf("got info.Upstream %q, want %q (the upstream that answered)", info.Upstream, e.Upstream)
		}
		counts[e.Upstream]++
	}
	// The share is checked within 5 percentage points: at n = 4000 one
	// standard deviation of b's share is 0.7 points, so this does not flake.
	for _, want := range []struct {
		upstream string
		share    float64
	}{{"a", 0.75}, {"b", 0.25}} {
		got := float64(counts[want.upstream]) / n
		if got < want.share-0.05 || got > want.share+0.05 {
			t.Errorf("upstream %s: got share %.3f (%d of %d), want %.2f ± 0.05", want.upstream, got, counts[want.upstream], n, want.share)
		}
	}
	if counts["c"] != 0 {
		t.Errorf("upstream c (weight 0): got %d requests, want 0", counts["c"])
	}
}

func TestRoutes(t *testing.T) {
	addr := startEcho(t, "echo")
	// The order in the file differs from the order routing tries them in.
	snap := newSnapshot(t, fmt.Sprintf(`
upstreams:
  echo: {endpoints: [%q]}
routes:
  - name: fallback
    backends: [{upstream: echo}]
  - name: old-login
    match: {path: /signin}
    redirect: {path: /login}
  - name: robots
    priority: 5
    match: {path: /robots.txt}
    direct_response: {status: 200, body: "User-agent: *\n"}
  - name: api
    match: {host: api.example.com, path_prefix: /v1}
    backends: [{upstream: echo, weight: 2}]
`, addr))
	type route struct{ name, kind string }
	want := []route{{"fallback", "proxy"}, {"old-login", "redirect"}, {"robots", "direct"}, {"api", "proxy"}}
	var got []route
	for _, rs := range snap.Routes() {
		got = append(got, route{rs.Name, rs.Kind})
		if rs.Status != "ok" {
			t.Errorf("route %s: got status %q, want ok", rs.Name, rs.Status)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got routes %v, want %v", got, want)
	}
	rs := snap.Routes()
	if rs[2].Priority != 5 {
		t.Errorf("route robots: got priority %d, want 5", rs[2].Priority)
	}
	if rs[3].Match.Host != "api.example.com" || rs[3].Match.PathPrefix != "/v1" {
		t.Errorf("route api: got match %+v, want host api.example.com and path_prefix /v1", rs[3].Match)
	}
	if len(rs[3].Backends) != 1 || rs[3].Backends[0].Upstream != "echo" || *rs[3].Backends[0].Weight != 2 {
		t.Errorf("route api: got backends %+v, want echo with weight 2", rs[3].Backends)
	}
	if rs[1].Backends != nil {
		t.Errorf("route old-login: got backends %+v, want none", rs[1].Backends)
	}
}

// nopWriter is a ResponseWriter that keeps nothing but its header map, so
// the benchmark measures the snapshot and not a recorder.
type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *nopWriter) WriteHeader(int)             {}

func BenchmarkSnapshotServe(b *testing.B) {
	const n = 1000
	var sb strings.Builder
	sb.WriteString("routes:\n")
	for i := range n {
		fmt.Fprintf(&sb, "  - name: r%d\n", i)
		fmt.Fprintf(&sb, "    match: {host: svc%02d.example.com, path_prefix: /api/v%d/res%d}\n", i%50, 1+i%3, i)
		fmt.Fprintf(&sb, "    direct_response: {status: 200, body: \"route %d\\n\"}\n", i)
	}
	snap := newSnapshot(b, sb.String())

	const target = 737
	r := newRequest("GET", fmt.Sprintf("http://svc%02d.example.com/api/v%d/res%d/items/42", target%50, 1+target%3, target))
	info := &request.Info{ID: "t1", Scheme: "http", ClientIP: netip.MustParseAddr("192.0.2.1")}
	r = r.WithContext(request.NewContext(r.Context(), info))
	w := &nopWriter{h: make(http.Header)}

	snap.ServeHTTP(w, r)
	if want := fmt.Sprintf("r%d", target); info.Route != want {
		b.Fatalf("got route %q, want %q", info.Route, want)
	}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		snap.ServeHTTP(w, r)
	}
}
