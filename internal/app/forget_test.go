package app

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestReloadForgetsRemovedRoutes: a route a reload removes leaves no
// per-route series behind (rate limit, cache and HTTP series alike).
func TestReloadForgetsRemovedRoutes(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer up.Close()
	cfg := func(extra string) string {
		return testListeners + `
upstreams:
  app: {endpoints: ["` + up.Listener.Addr().String() + `"]}
routes:
  - name: kept
    match: {path: /kept}
    direct_response: {status: 200}
    rate_limit: {requests: 100}
` + extra
	}
	ta := startApp(t, cfg(`
  - name: doomed
    match: {path: /doomed}
    backends: [{upstream: app}]
    rate_limit: {requests: 100}
    cache: {default_ttl: 1m}
`))
	for _, p := range []string{"/kept", "/doomed"} {
		resp, err := http.Get(ta.base + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	series := []string{"torii_ratelimit_requests_total", "torii_cache_requests_total", "torii_http_requests_total"}
	for _, name := range series {
		if _, ok := gauge(t, ta.App, name, map[string]string{"route": "doomed"}); !ok {
			t.Fatalf("%s{route=doomed} missing before the reload", name)
		}
	}
	writeFile(t, ta.path, cfg(""))
	if err := ta.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, name := range series {
		if _, ok := gauge(t, ta.App, name, map[string]string{"route": "doomed"}); ok {
			t.Errorf("%s{route=doomed} still exported after the route was removed", name)
		}
	}
	if _, ok := gauge(t, ta.App, "torii_ratelimit_requests_total", map[string]string{"route": "kept"}); !ok {
		t.Errorf("torii_ratelimit_requests_total{route=kept} gone, want it kept")
	}
}
