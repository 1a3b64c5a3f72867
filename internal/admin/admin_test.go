package admin

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"torii/internal/config"
	"torii/internal/migrate"
	"torii/internal/runtime"
	"torii/internal/slo"
	"torii/internal/store"
	"torii/internal/upstream"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.json from the current output")

// backend is a real snapshot and registry behind the Backend interface,
// with a fixed reload history so responses are stable.
type backend struct {
	snap     *runtime.Snapshot
	registry *upstream.Registry
	ready    bool
	reloads  int
	reload   error
	purged   []string
	engine   *slo.Engine
	rollouts *migrate.Controller
}

func (b *backend) Snapshot() *runtime.Snapshot { return b.snap }
func (b *backend) Ready() bool                 { return b.ready }
func (b *backend) Reload(context.Context) error {
	b.reloads++
	return b.reload
}
func (b *backend) Endpoints() []upstream.EndpointStatus { return b.registry.Status() }
func (b *backend) SLOStatus() []slo.RouteStatus         { return b.engine.Status() }
func (b *backend) TeamStatus(name string) slo.TeamStatus {
	return b.engine.Team(name)
}
func (b *backend) PurgeCache(key, prefix string) int {
	b.purged = append(b.purged, key+"|"+prefix)
	return 3
}
func (b *backend) Migrations() []migrate.Migration {
	out := []migrate.Migration{}
	for _, st := range b.rollouts.Status() {
		out = append(out, migrate.Migration{Route: st.Route, Rollout: &st})
	}
	return out
}
func (b *backend) Migration(ctx context.Context, route string) (migrate.Migration, error) {
	for _, m := range b.Migrations() {
		if m.Route == route {
			es, err := b.rollouts.Audit(ctx, route, 50)
			m.Audit = migrate.AuditRecords(es)
			return m, err
		}
	}
	return migrate.Migration{}, migrate.ErrNotMigrating
}
func (b *backend) MigrationAction(ctx context.Context, route, action, actor, reason string) (migrate.Status, error) {
	return b.rollouts.Act(ctx, route, action, actor, reason)
}
func (b *backend) DiffSamples(context.Context, string, string, int) ([]migrate.SampleRecord, error) {
	return nil, nil
}
func (b *backend) LastReload() ReloadStatus {
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	return ReloadStatus{OK: true, At: at, LastSuccess: at}
}

const goldenConfig = `
admin: {addr: "127.0.0.1:9901", token: admin-secret}
teams:
  listing: {alerts: [{webhook: "https://chat.example/hooks/listing-secret"}]}
  sre-edge: {}
tracing: {endpoint: "http://user:pass@127.0.0.1:4318/v1/traces", headers: {x-api-key: trace-secret}}
upstreams:
  monolith:
    endpoints: ["127.0.0.1:8001", {addr: "127.0.0.1:8002", weight: 3}]
    balance: least_request
  listing: {endpoints: ["127.0.0.1:8003"]}
routes:
  - name: items
    match: {host: api.example.com, path_prefix: /v1/items, methods: [GET, POST]}
    backends: [{upstream: listing}]
    owner: listing
    slo: {availability: 99.9, latency: {under: 300ms, target: 99}}
  - name: monolith
    backends: [{upstream: monolith}]
  - name: old
    match: {path: /old}
    redirect: {path: /new, status: 308}
`

func newTestServer(t *testing.T) (*backend, http.Handler) {
	t.Helper()
	cfg, err := config.Parse([]byte(goldenConfig), "golden.yaml")
	if err != nil {
		t.Fatal(err)
	}
	reg := upstream.NewRegistry(upstream.Options{})
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	eng, err := slo.New(slo.Options{Store: store.NewMemory(nil), Now: func() time.Time { return at }})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := runtime.Build(cfg, runtime.Deps{Registry: reg, SLO: eng.Accountant(cfg)})
	if err != nil {
		t.Fatal(err)
	}
	eng.Apply(cfg)
	t.Cleanup(snap.Close)
	rollouts, err := migrate.NewController(migrate.ControllerOptions{Store: store.NewMemory(nil), Burn: eng})
	if err != nil {
		t.Fatal(err)
	}
	rollouts.Apply([]migrate.Plan{{Route: "items", Candidate: "listing", Generation: "g1", Steps: []float64{10, 100},
		Every: time.Minute, Window: time.Minute, MinRequests: 1, MaxBurnRate: 14.4}})
	if err := rollouts.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	b := &backend{snap: snap, registry: reg, ready: true, engine: eng, rollouts: rollouts}
	return b, New(Options{Backend: b, Gatherer: prometheus.NewRegistry()})
}

func serve(h http.Handler, method, target string, header map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, nil)
	req.Host = "127.0.0.1:9901"
	for k, v := range header {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// TestGolden compares the JSON API's answers with testdata/*.golden.json;
// run with -update to rewrite them after a deliberate change.
func TestGolden(t *testing.T) {
	_, h := newTestServer(t)
	tests := []struct{ name, path string }{
		{"config", "/api/v1/config"},
		{"routes", "/api/v1/routes"},
		{"upstreams", "/api/v1/upstreams"},
		{"reload", "/api/v1/reload"},
		{"slos", "/api/v1/slos"},
		{"team", "/api/v1/teams/listing"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := serve(h, "GET", tc.path, nil)
			if rec.Code != http.StatusOK {
				t.Fatalf("GET %s: got %d, want 200: %s", tc.path, rec.Code, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type: got %q, want application/json", ct)
			}
			golden := filepath.Join("testdata", tc.name+".golden.json")
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
				t.Errorf("GET %s: got\n%s\nwant (%s)\n%s", tc.path, got, golden, want)
			}
		})
	}
}

func TestConfigRedacted(t *testing.T) {
	_, h := newTestServer(t)
	body := serve(h, "GET", "/api/v1/config", nil).Body.String()
	for _, secret := range []string{"admin-secret", "trace-secret", "pass@"} {
		if strings.Contains(body, secret) {
			t.Errorf("GET /api/v1/config leaks %q:\n%s", secret, body)
		}
	}
}

func TestGuards(t *testing.T) {
	auth := "Bearer admin-secret"
	tests := []struct {
		name       string
		method     string
		path       string
		header     map[string]string
		reloadErr  error
		wantStatus int
		wantReload bool
	}{
		{"loopback host reads", "GET", "/api/v1/routes", nil, nil, 200, false},
		{"localhost reads", "GET", "/api/v1/routes", map[string]string{"Host": "localhost:9901"}, nil, 200, false},
		{"IPv6 loopback reads", "GET", "/api/v1/routes", map[string]string{"Host": "[::1]:9901"}, nil, 200, false},
		{"rebinding name refused", "GET", "/api/v1/routes", map[string]string{"Host": "attacker.example"}, nil, 421, false},
		{"rebinding name refused on POST", "POST", "/api/v1/reload", map[string]string{"Host": "attacker.example", "Authorization": auth}, nil, 421, false},
		{"POST without token", "POST", "/api/v1/reload", nil, nil, 401, false},
		{"POST with lower-case scheme", "POST", "/api/v1/reload", map[string]string{"Authorization": "bearer admin-secret"}, nil, 200, true},
		{"POST with a prefix of the token", "POST", "/api/v1/reload", map[string]string{"Authorization": "Bearer admin"}, nil, 401, false},
		{"cross-site fetch", "POST", "/api/v1/reload", map[string]string{"Authorization": auth, "Sec-Fetch-Site": "cross-site"}, nil, 403, false},
		{"same-site fetch", "POST", "/api/v1/reload", map[string]string{"Authorization": auth, "Sec-Fetch-Site": "same-site"}, nil, 403, false},
		{"foreign Origin", "POST", "/api/v1/reload", map[string]string{"Authorization": auth, "Origin": "https://evil.example"}, nil, 403, false},
		{"same-origin fetch", "POST", "/api/v1/reload", map[string]string{"Authorization": auth, "Sec-Fetch-Site": "same-origin"}, nil, 200, true},
		{"failed reload is 422", "POST", "/api/v1/reload", map[string]string{"Authorization": auth}, errors.New("reload: broken"), 422, true},
		{"GET on reload reads status", "GET", "/api/v1/reload", nil, nil, 200, false},
		{"unknown path", "GET", "/api/v1/nope", nil, nil, 404, false},
		{"wrong method", "DELETE", "/api/v1/routes", map[string]string{"Authorization": auth}, nil, 405, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, h := newTestServer(t)
			b.reload = tc.reloadErr
			rec := serve(h, tc.method, tc.path, tc.header)
			if rec.Code != tc.wantStatus {
				t.Errorf("status: got %d, want %d; body %s", rec.Code, tc.wantStatus, rec.Body)
			}
			if got := b.reloads > 0; got != tc.wantReload {
				t.Errorf("reload called: got %v, want %v", got, tc.wantReload)
			}
		})
	}
}

func TestPurge(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		header     map[string]string
		wantStatus int
		wantPurged []string
	}{
		{"by key", `{"key": "GET a.example/x"}`, map[string]string{"Authorization": "Bearer admin-secret"}, 200, []string{"GET a.example/x|"}},
		{"by prefix", `{"prefix": "a.example/"}`, map[string]string{"Authorization": "Bearer admin-secret"}, 200, []string{"|a.example/"}},
		{"both", `{"key": "k", "prefix": "p"}`, map[string]string{"Authorization": "Bearer admin-secret"}, 400, nil},
		{"neither", `{}`, map[string]string{"Authorization": "Bearer admin-secret"}, 400, nil},
		{"unknown field", `{"url": "x"}`, map[string]string{"Authorization": "Bearer admin-secret"}, 400, nil},
		{"without token", `{"key": "k"}`, nil, 401, nil},
		{"cross-site", `{"key": "k"}`, map[string]string{"Authorization": "Bearer admin-secret", "Sec-Fetch-Site": "cross-site"}, 403, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, h := newTestServer(t)
			req := httptest.NewRequest("POST", "/api/v1/cache/purge", strings.NewReader(tc.body))
			req.Host = "127.0.0.1:9901"
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.wantStatus {
				t.Errorf("status: got %d, want %d; body %s", rec.Code, tc.wantStatus, rec.Body)
			}
			if strings.Join(b.purged, ",") != strings.Join(tc.wantPurged, ",") {
				t.Errorf("purged: got %q, want %q", b.purged, tc.wantPurged)
			}
			if tc.wantStatus == 200 && !strings.Contains(rec.Body.String(), `"purged": 3`) {
				t.Errorf("body: got %s, want the purged count", rec.Body)
			}
		})
	}
}

func TestReadyz(t *testing.T) {
	b, h := newTestServer(t)
	if got := serve(h, "GET", "/readyz", nil).Code; got != 200 {
		t.Errorf("ready: got %d, want 200", got)
	}
	b.ready = false
	rec := serve(h, "GET", "/readyz", nil)
	if rec.Code != 503 {
		t.Errorf("draining: got %d, want 503", rec.Code)
	}
	body, _ := io.ReadAll(rec.Body)
	if !strings.Contains(string(body), "not ready") {
		t.Errorf("draining body: got %s", body)
	}
}

// TestMigrationActions: the operator's actions reach the rollout, with
// the actor and reason in the audit trail, and its refusals map to
// statuses: 404 for a route without a rollout, 409 for an action the
// phase does not allow or an unknown one, 400 for a bad body; the admin
// token and the cross-site checks guard them like every POST.
func TestMigrationActions(t *testing.T) {
	_, h := newTestServer(t)
	auth := map[string]string{"Authorization": "Bearer admin-secret"}
	post := func(path, body string, header map[string]string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("POST", path, strings.NewReader(body))
		req.Host = "127.0.0.1:9901"
		for k, v := range header {
			req.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	tests := []struct {
		name, path, body string
		header           map[string]string
		want             int
		phase            string
	}{
		{"no token", "/api/v1/migrations/items/pause", "", nil, 401, ""},
		{"cross-site", "/api/v1/migrations/items/pause", "", map[string]string{"Authorization": "Bearer admin-secret", "Sec-Fetch-Site": "cross-site"}, 403, ""},
		{"bad body", "/api/v1/migrations/items/pause", `{"why": 1}`, auth, 400, ""},
		{"pause", "/api/v1/migrations/items/pause", `{"reason": "looking\ninto it", "actor": "alice"}`, auth, 200, "paused"},
		{"pause twice", "/api/v1/migrations/items/pause", "", auth, 409, ""},
		{"unknown action", "/api/v1/migrations/items/explode", "", auth, 409, ""},
		{"unknown route", "/api/v1/migrations/nope/pause", "", auth, 404, ""},
		{"abort", "/api/v1/migrations/items/abort", "", auth, 200, "aborted"},
		{"resume", "/api/v1/migrations/items/resume", "", auth, 200, "progressing"},
		{"promote", "/api/v1/migrations/items/promote", "", auth, 200, "promoted"},
	}
	for _, tc := range tests {
		rec := post(tc.path, tc.body, tc.header)
		if rec.Code != tc.want {
			t.Errorf("%s: status %d, want %d: %s", tc.name, rec.Code, tc.want, rec.Body)
			continue
		}
		if tc.phase != "" {
			var st migrate.Status
			if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil || st.Phase != tc.phase {
				t.Errorf("%s: phase %q (%v), want %q", tc.name, st.Phase, err, tc.phase)
			}
		}
	}
	rec := serve(h, "GET", "/api/v1/migrations/items", nil)
	var m migrate.Migration
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range m.Audit {
		actions = append(actions, e.Action+" by "+e.Actor)
	}
	want := []string{"promote by admin", "resume by admin", "abort by admin", "pause by admin:alice", "start by rollout"}
	if !slices.Equal(actions, want) {
		t.Errorf("audit trail %q, want %q", actions, want)
	}
	for _, e := range m.Audit {
		if e.Action == "pause" && e.Reason != "lookinginto it" {
			t.Errorf("pause reason %q: control characters should be dropped", e.Reason)
		}
	}
	if rec := serve(h, "GET", "/api/v1/migrations/monolith", nil); rec.Code != 404 {
		t.Errorf("a route without a migration: %d, want 404", rec.Code)
	}
	if rec := serve(h, "GET", "/api/v1/migrations/items/samples?limit=0", nil); rec.Code != 400 {
		t.Errorf("limit=0: %d, want 400", rec.Code)
	}
}
