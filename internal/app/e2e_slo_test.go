package app

// End-to-end test of issue #5, acceptance point 2: two torii replicas share
// one PostgreSQL store; the SLIs each shows are the sums of both replicas'
// counts, and an alert is sent by one replica only.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"torii/internal/slo"
	"torii/internal/testpg"
)

// e2eWebhook is an alert webhook receiver that records every POST.
type e2eWebhook struct {
	*httptest.Server
	mu    sync.Mutex
	posts []e2eWebhookPost
}

// e2eWebhookPost is the part of a webhook payload (docs/alerts.md) the
// test checks.
type e2eWebhookPost struct {
	Status string            `json:"status"`
	Key    string            `json:"key"`
	Team   string            `json:"team"`
	Labels map[string]string `json:"labels"`
}

func newE2EWebhook(t *testing.T) *e2eWebhook {
	t.Helper()
	w := &e2eWebhook{}
	w.Server = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var p e2eWebhookPost
		if r.Method != http.MethodPost || json.Unmarshal(body, &p) != nil {
			t.Errorf("webhook got %s %s with body %q", r.Method, r.URL, body)
		}
		w.mu.Lock()
		w.posts = append(w.posts, p)
		w.mu.Unlock()
	}))
	t.Cleanup(w.Close)
	return w
}

// count returns how many posts had the key and status.
func (w *e2eWebhook) count(key, status string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, p := range w.posts {
		if p.Key == key && p.Status == status {
			n++
		}
	}
	return n
}

func (w *e2eWebhook) all() []e2eWebhookPost {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]e2eWebhookPost(nil), w.posts...)
}

// e2eSLOStatus returns route's entry of the app's GET /api/v1/slos.
func e2eSLOStatus(t *testing.T, ta *testApp, route string) slo.RouteStatus {
	t.Helper()
	resp, err := http.Get(ta.admin + "/api/v1/slos")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/v1/slos: %s", resp.Status)
	}
	var body struct {
		SLOs []slo.RouteStatus `json:"slos"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("GET /api/v1/slos: %v", err)
	}
	for _, rs := range body.SLOs {
		if rs.Route == route {
			return rs
		}
	}
	t.Fatalf("GET /api/v1/slos: no route %q in %+v", route, body.SLOs)
	return slo.RouteStatus{}
}

// e2eAvailability returns the 5m events and errors and the page alert's
// state of rs's availability SLI.
func e2eAvailability(rs slo.RouteStatus) (events, bad int64, page string) {
	a := rs.Availability
	if a == nil {
		return 0, 0, ""
	}
	for _, al := range a.Alerts {
		if al.Severity == slo.Page {
			page = al.State
		}
	}
	return a.Events["5m"], a.Bad["5m"], page
}

// TestE2ESLOTwoReplicasPostgres is acceptance point 2 of issue #5: two
// torii instances on one PostgreSQL serve traffic to a route whose
// upstream always fails; each instance's /api/v1/slos shows the sum of
// both instances' requests, and the owning team's webhook receives the
// page once, not once per instance.
func TestE2ESLOTwoReplicasPostgres(t *testing.T) {
	dsn := testpg.DSN(t) // first: its cleanup runs after the apps stop
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		http.Error(w, "down", http.StatusInternalServerError)
	}))
	t.Cleanup(failing.Close)
	hook := newE2EWebhook(t)

	const route, team = "slo-e2e", "t"
	cfg := testListeners + fmt.Sprintf(`
store: {postgres: %q, flush_interval: 1s}
teams:
  %s:
    alerts: [{webhook: %q}]
upstreams:
  failing:
    endpoints: [%q]
    outlier: {consecutive_failures: 1000} # every response is a 500: never eject
routes:
  - name: %s
    owner: %s
    backends: [{upstream: failing}]
    slo: {availability: 99.9, min_events: 10}
`, dsn, team, hook.URL+"/torii-alerts", failing.Listener.Addr().String(), route, team)
	a := startApp(t, cfg)
	b := startApp(t, cfg)
	start := time.Now()

	// Traffic starts once both replicas have evaluated (and restored the
	// store's alert states, none): from then on only the alert lease keeps
	// the second replica from sending the page too. Each replica gets at
	// least min_events on its own, so both see the page condition at their
	// next evaluation, within milliseconds of each other, and race for
	// the lease.
	for _, ta := range []*testApp{a, b} {
		for e2eSLOStatus(t, ta, route).EvaluatedAt.IsZero() {
			if time.Since(start) > 2*slo.EvalInterval {
				t.Fatalf("replica at %s did not evaluate within %v", ta.base, 2*slo.EvalInterval)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if got := hook.all(); len(got) != 0 {
		t.Fatalf("webhook got %+v before any traffic", got)
	}
	const n, m = 20, 30
	client := &http.Client{Timeout: 5 * time.Second}
	send := func(ta *testApp, count int) {
		for i := range count {
			resp, err := client.Get(fmt.Sprintf("%s/item/%d", ta.base, i))
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusInternalServerError {
				t.Fatalf("request %d through %s: status %d, want 500 from the upstream", i, ta.base, resp.StatusCode)
			}
		}
	}
	send(a, n)
	send(b, m)

	// The SLIs are the sums: each replica shows its own counts at once
	// and the other's once that one has flushed its completed bucket
	// (within flush_interval plus 20 s) and it has evaluated again.
	pageKey := route + "/" + slo.Availability + "/" + string(slo.Page)
	deadline := time.Now().Add(40 * time.Second)
	for i, ta := range []*testApp{a, b} {
		for {
			events, bad, page := e2eAvailability(e2eSLOStatus(t, ta, route))
			if events == n+m && bad == n+m && page == "firing" {
				break
			}
			if events > n+m {
				t.Fatalf("replica %d: 5m window shows %d events, more than the %d sent through both", i, events, n+m)
			}
			if time.Now().After(deadline) {
				t.Fatalf("replica %d after %v: 5m window shows %d events, %d bad, page %q; want %d, %d, firing (the sum of both replicas)",
					i, time.Since(start).Round(time.Second), events, bad, page, n+m, n+m)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	t.Logf("both replicas show %d+%d=%d events after %v", n, m, n+m, time.Since(start).Round(100*time.Millisecond))

	// The page reached the webhook...
	for hook.count(pageKey, "firing") == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("webhook got no firing %s after %v; it got %+v", pageKey, time.Since(start).Round(time.Second), hook.all())
		}
		time.Sleep(200 * time.Millisecond)
	}
	fired := time.Now()
	t.Logf("webhook got the page after %v", fired.Sub(start).Round(100*time.Millisecond))

	// ...and stays sent once while both replicas evaluate twice more with
	// the alert firing (past the 20 s lease, too).
	evaluated := func(ta *testApp) time.Time { return e2eSLOStatus(t, ta, route).EvaluatedAt }
	for _, ta := range []*testApp{a, b} {
		for !evaluated(ta).After(fired.Add(slo.EvalInterval)) {
			if time.Since(fired) > 3*slo.EvalInterval {
				t.Fatalf("replica at %s did not evaluate twice within %v of the page", ta.base, 3*slo.EvalInterval)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	for i, ta := range []*testApp{a, b} {
		if _, _, page := e2eAvailability(e2eSLOStatus(t, ta, route)); page != "firing" {
			t.Errorf("replica %d: page %q, want firing", i, page)
		}
	}

	// One notification per alert key across both replicas. At 1000× the
	// ticket fires too; it is deduplicated the same way.
	ticketKey := route + "/" + slo.Availability + "/" + string(slo.Ticket)
	for _, key := range []string{pageKey, ticketKey} {
		if got := hook.count(key, "firing"); got != 1 {
			t.Errorf("webhook got %d firing notifications of %s from the two replicas, want 1", got, key)
		}
	}
	for _, p := range hook.all() {
		if p.Status != "firing" || p.Team != team || p.Labels["route"] != route {
			t.Errorf("unexpected webhook post %+v", p)
		}
	}
	t.Logf("webhook posts after %v: %+v", time.Since(start).Round(100*time.Millisecond), hook.all())
}
