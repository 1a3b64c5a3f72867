package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// migrationService answers GET /items/{id} with JSON: the fields a
// monolith and its replacement agree on, plus a timestamp and a request
// id that differ on every call (the noise). With stringPrice the price is
// a string rather than a number (the candidate's subtle difference), and
// failEvery > 0 fails one request in failEvery with a 500.
func migrationService(t *testing.T, stringPrice bool, failEvery int64, served *atomic.Int64) *httptest.Server {
	var n atomic.Int64
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := n.Add(1)
		if r.Header.Get("X-Torii-Shadow") == "" {
			served.Add(1)
		}
		if failEvery > 0 && i%failEvery == 0 {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		id := strings.TrimPrefix(r.URL.Path, "/items/")
		var price any = 42.5
		if stringPrice {
			price = "42.50"
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"id": id, "name": "item " + id, "price": price, "tags": []string{"a", "b"},
			"generated_at": time.Now().Format(time.RFC3339Nano),
			"request_id":   fmt.Sprintf("%x", rand.Uint64()),
		})
	}))
	t.Cleanup(s.Close)
	return s
}

// getJSON fetches url into v.
func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// migrationView is the part of /api/v1/migrations/{route} the test reads.
type migrationView struct {
	Route    string `json:"route"`
	Backends []struct {
		Upstream  string  `json:"upstream"`
		Candidate bool    `json:"candidate"`
		Percent   float64 `json:"percent"`
	} `json:"backends"`
	Rollout *struct {
		Phase   string  `json:"phase"`
		Percent float64 `json:"percent"`
		Step    int     `json:"step"`
	} `json:"rollout"`
	Diff *struct {
		Compared      int64   `json:"compared"`
		NoiseCompared int64   `json:"noise_compared"`
		DiffPercent   float64 `json:"diff_percent"`
		Endpoints     []struct {
			Endpoint string `json:"endpoint"`
			Fields   []struct {
				Field       string  `json:"field"`
				DiffPercent float64 `json:"diff_percent"`
				Significant bool    `json:"significant"`
			} `json:"fields"`
		} `json:"endpoints"`
	} `json:"diff"`
	Audit []struct {
		Actor     string  `json:"actor"`
		Action    string  `json:"action"`
		ToPercent float64 `json:"to_percent"`
		Reason    string  `json:"reason"`
	} `json:"audit"`
}

// TestE2EMigration is issue 6 through the whole app, in real time: a
// route splits users between the monolith and a candidate that changes
// one JSON field and fails 5 % of its requests, shadows every request to
// it with comparison, and rolls out [25, 100]. At 100 req/s the rollout
// reaches 25 % and rolls back to 0 within 60 s, with the tripped gate in
// the audit trail; the diff report names body.price and never the noisy
// fields; the state survives a restart; an operator's resume and abort
// work through the admin API.
func TestE2EMigration(t *testing.T) {
	var monoServed, candServed atomic.Int64
	mono := migrationService(t, false, 0, &monoServed)
	cand := migrationService(t, true, 20, &candServed)
	hooks := make(chan string, 100)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		hooks <- string(b)
	}))
	defer hook.Close()
	dir := t.TempDir()
	cfg := testListeners + fmt.Sprintf(`
store: {sqlite: %q, flush_interval: 1s}
teams: {listing: {alerts: [{webhook: %q}]}}
upstreams:
  monolith: {endpoints: [%q]}
  listing: {endpoints: [%q]}
routes:
  - name: items
    owner: listing
    match: {path_prefix: /items}
    slo: {availability: 99.9}
    backends: [{upstream: monolith}, {upstream: listing, candidate: true}]
    sticky: {header: X-User}
    shadow:
      upstream: listing
      compare: {secondary_percent: 50}
    rollout: {steps: [25, 100], every: 10s, window: 10s, min_requests: 50}
`, filepath.Join(dir, "torii.db"), hook.URL, mono.Listener.Addr().String(), cand.Listener.Addr().String())
	ta := startApp(t, cfg)

	// 100 req/s from 500 users until the rollout rolls back.
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var wg sync.WaitGroup
	var sent, failed atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ctx.Err() == nil; i++ {
			<-tick.C
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest("GET", fmt.Sprintf("%s/items/%d", ta.base, i%50), nil)
				req.Header.Set("X-User", fmt.Sprintf("user-%d", rand.IntN(500)))
				resp, err := http.DefaultClient.Do(req)
				sent.Add(1)
				if err != nil {
					failed.Add(1)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}()
		}
	}()

	start := time.Now()
	var m migrationView
	var reached25 time.Time
	for {
		getJSON(t, ta.admin+"/api/v1/migrations/items", &m)
		if m.Rollout == nil {
			t.Fatalf("no rollout in %+v", m)
		}
		if m.Rollout.Percent == 25 && reached25.IsZero() {
			reached25 = time.Now()
		}
		if m.Rollout.Phase == "rolled_back" {
			break
		}
		if time.Since(start) > 60*time.Second {
			t.Fatalf("after 60 s the rollout is %+v, want rolled_back", *m.Rollout)
		}
		time.Sleep(200 * time.Millisecond)
	}
	rolledBack := time.Since(start)
	stop()
	wg.Wait()
	t.Logf("rolled back %.1fs after start (%.1fs after 25%% was seen); %d requests, %d transport errors; monolith served %d, candidate %d",
		rolledBack.Seconds(), time.Since(reached25).Seconds(), sent.Load(), failed.Load(), monoServed.Load(), candServed.Load())
	if m.Rollout.Percent != 0 {
		t.Errorf("rolled back to %v%%, want 0", m.Rollout.Percent)
	}
	for _, b := range m.Backends {
		if b.Candidate && b.Percent != 0 {
			t.Errorf("candidate backend still has %v%% after the rollback", b.Percent)
		}
	}
	var rollback string
	for _, e := range m.Audit {
		if e.Action == "rollback" {
			rollback = e.Reason
			break
		}
	}
	if !strings.Contains(rollback, "availability_burn_rate") {
		t.Errorf("audit trail %+v: want a rollback naming availability_burn_rate", m.Audit)
	}
	t.Logf("rollback reason: %s", rollback)

	// The owning team hears of it on its channel.
	deadline := time.Now().Add(10 * time.Second)
	for heard := false; !heard; {
		select {
		case body := <-hooks:
			heard = strings.Contains(body, "ToriiRollout") && strings.Contains(body, `"rollback"`)
		case <-time.After(time.Until(deadline)):
			t.Fatal("the team's webhook got no rollback notification")
		}
	}

	// After the rollback no user reaches the candidate: only shadows do.
	before := candServed.Load()
	for i := range 50 {
		req, _ := http.NewRequest("GET", fmt.Sprintf("%s/items/%d", ta.base, i), nil)
		req.Header.Set("X-User", fmt.Sprintf("user-%d", i))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if n := candServed.Load() - before; n != 0 {
		t.Errorf("%d client requests reached the candidate after the rollback", n)
	}

	// The diff report, once flushed: body.price, and nothing noisy.
	deadline = time.Now().Add(10 * time.Second)
	for {
		getJSON(t, ta.admin+"/api/v1/migrations/items", &m)
		if m.Diff != nil && m.Diff.Compared > 300 && m.Diff.NoiseCompared > 50 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no diff report with enough comparisons: %+v", m.Diff)
		}
		time.Sleep(200 * time.Millisecond)
	}
	var significant []string
	for _, ep := range m.Diff.Endpoints {
		for _, f := range ep.Fields {
			if f.Significant {
				significant = append(significant, ep.Endpoint+" "+f.Field)
			}
		}
	}
	t.Logf("diff report: %d compared, %d noise comparisons, diff %.2f%%, significant %v", m.Diff.Compared, m.Diff.NoiseCompared, m.Diff.DiffPercent, significant)
	// body.price is the change; status, body and Content-Type are the
	// candidate's 500s (a real difference too); the timestamp and the
	// request id differ on every call, and are noise.
	want := []string{"GET /items/{id} body.price", "GET /items/{id} body", "GET /items/{id} header.Content-Type", "GET /items/{id} status"}
	if !slices.Equal(significant, want) {
		t.Errorf("significant fields %q, want %q", significant, want)
	}
	var samples struct {
		Samples []struct {
			Field     string `json:"field"`
			Primary   string `json:"primary"`
			Candidate string `json:"candidate"`
		} `json:"samples"`
	}
	getJSON(t, ta.admin+"/api/v1/migrations/items/samples?field=body.price", &samples)
	if len(samples.Samples) == 0 || samples.Samples[0].Primary != "42.5" || samples.Samples[0].Candidate != `"42.50"` {
		t.Errorf("samples of body.price: %+v, want 42.5 against \"42.50\"", samples.Samples)
	}

	// The rollback stands across a restart on the same SQLite file.
	ta.Shutdown()
	ta2 := startApp(t, cfg)
	getJSON(t, ta2.admin+"/api/v1/migrations/items", &m)
	if m.Rollout.Phase != "rolled_back" || m.Rollout.Percent != 0 {
		t.Errorf("after a restart the rollout is %+v, want rolled_back at 0", *m.Rollout)
	}

	// An operator resumes (back to 25 %), then aborts (0), through the API.
	for _, step := range []struct {
		action, phase string
		percent       float64
	}{{"resume", "progressing", 25}, {"abort", "aborted", 0}} {
		resp, err := http.Post(ta2.admin+"/api/v1/migrations/items/"+step.action, "application/json",
			strings.NewReader(`{"reason": "test", "actor": "alice"}`))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", step.action, resp.StatusCode, b)
		}
		getJSON(t, ta2.admin+"/api/v1/migrations/items", &m)
		if m.Rollout.Phase != step.phase || m.Rollout.Percent != step.percent {
			t.Errorf("after %s: %+v, want %s at %v%%", step.action, *m.Rollout, step.phase, step.percent)
		}
		if len(m.Audit) == 0 || m.Audit[0].Action != step.action || m.Audit[0].Actor != "admin:alice" {
			t.Errorf("after %s the newest audit entry is %+v", step.action, m.Audit[0])
		}
	}
	resp, err := http.Post(ta2.admin+"/api/v1/migrations/items/explode", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusConflict {
		t.Errorf("unknown action: %d, want 409", resp.StatusCode)
	}
	resp, err = http.Post(ta2.admin+"/api/v1/migrations/nope/pause", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown route: %d, want 404", resp.StatusCode)
	}
}

// TestE2ERolloutAcrossReloads: "the config declares the plan; the store
// holds the live state". An operator's pause stands across a reload that
// leaves the rollout block alone; changing the block starts a new plan
// from its first step; removing it returns the route to its configured
// weights.
func TestE2ERolloutAcrossReloads(t *testing.T) {
	var monoServed, candServed atomic.Int64
	mono := migrationService(t, false, 0, &monoServed)
	cand := migrationService(t, false, 0, &candServed)
	db := filepath.Join(t.TempDir(), "torii.db")
	cfg := func(timeout, rollout string) string {
		return testListeners + fmt.Sprintf(`
store: {sqlite: %q, flush_interval: 1s}
upstreams:
  monolith: {endpoints: [%q]}
  listing: {endpoints: [%q]}
routes:
  - name: items
    match: {path_prefix: /items}
    slo: {availability: 99.9}
    timeout: %s
    backends: [{upstream: monolith, weight: 1}, {upstream: listing, weight: 0, candidate: true}]
%s`, db, mono.Listener.Addr().String(), cand.Listener.Addr().String(), timeout, rollout)
	}
	const plan = "    rollout: {steps: [10, 100], every: 1h}\n"
	ta := startApp(t, cfg("5s", plan))
	view := func() migrationView {
		var m migrationView
		getJSON(t, ta.admin+"/api/v1/migrations/items", &m)
		return m
	}
	waitPhase := func(phase string, percent float64) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			m := view()
			if m.Rollout != nil && m.Rollout.Phase == phase && m.Rollout.Percent == percent {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("rollout %+v, want %s at %v%%", m.Rollout, phase, percent)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitPhase("progressing", 10)
	resp, err := http.Post(ta.admin+"/api/v1/migrations/items/pause", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	waitPhase("paused", 10)

	// A reload that changes something else: still paused, same weights.
	writeFile(t, ta.path, cfg("7s", plan))
	if err := ta.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(6 * time.Second) // a controller tick or more
	waitPhase("paused", 10)

	// A new plan: it starts from its first step.
	writeFile(t, ta.path, cfg("7s", "    rollout: {steps: [30, 100], every: 1h}\n"))
	if err := ta.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitPhase("progressing", 30)
	m := view()
	if len(m.Audit) == 0 || m.Audit[0].Action != "start" {
		t.Errorf("after a new plan the newest audit entry is %+v, want a start", m.Audit)
	}

	// No rollout: the configured weights (the candidate's 0) hold again.
	writeFile(t, ta.path, cfg("7s", ""))
	if err := ta.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	before := candServed.Load()
	for i := range 100 {
		resp, err := http.Get(fmt.Sprintf("%s/items/%d", ta.base, i))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if n := candServed.Load() - before; n != 0 {
		t.Errorf("without the rollout, %d of 100 requests reached the weight-0 candidate", n)
	}
}
