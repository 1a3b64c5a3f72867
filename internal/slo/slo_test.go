package slo

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"torii/internal/config"
	"torii/internal/store"
)

func avail999() *config.SLO { return &config.SLO{Availability: 99.9} }

// drive feeds rate req/s into route items, errFrac of them failing (503),
// in 1 s steps for d, flushing and evaluating every evalEvery. check, if
// set, runs after each evaluation.
func drive(t *testing.T, f *fixture, rate int, errFrac float64, d, evalEvery time.Duration, check func(now time.Time)) {
	t.Helper()
	ctx := context.Background()
	var owed float64
	end := f.clock.Now().Add(d)
	for now := f.clock.Now(); now.Before(end); now = f.clock.Advance(time.Second) {
		owed += errFrac * float64(rate)
		bad := int(owed + 1e-9)
		owed -= float64(bad)
		for i := range rate {
			status := 200
			if i < bad {
				status = 503
			}
			f.items.Record("v1", status, "", time.Millisecond, false)
		}
		next := now.Add(time.Second)
		if next.Sub(t0)%evalEvery == 0 {
			f.clock.Set(next)
			if next.Sub(t0)%(10*time.Second) == 0 {
				if err := f.e.Flush(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if err := f.e.Evaluate(ctx, next); err != nil {
				t.Fatal(err)
			}
			if check != nil {
				check(next)
			}
			f.clock.Set(now)
		}
	}
}

// firstFiring returns when the first firing notification of sev came,
// relative to t0, or -1.
func firstFiring(n *notifier, sev Severity) time.Duration {
	got, at := n.all()
	for i, x := range got {
		if x.Firing && x.Labels["severity"] == string(sev) {
			return at[i].Sub(t0)
		}
	}
	return -1
}

// TestAcceptanceBurnRates is acceptance 1 of issue #5: a 99.9 % route
// over 30 days with 10 req/s of steady traffic and three days of good
// history.
func TestAcceptanceBurnRates(t *testing.T) {
	tests := []struct {
		name      string
		errFrac   float64
		run       time.Duration
		evalEvery time.Duration
		wantPage  time.Duration // -1: never
		tolerance time.Duration
		wantTick  time.Duration // -1: never; 0: not checked
		noFast    bool          // the 1h/5m condition must never hold
	}{
		{"total outage", 1, 2 * time.Minute, 10 * time.Second, 51800 * time.Millisecond, 10 * time.Second, -1, false},
		{"10% errors", 0.10, 12 * time.Minute, 10 * time.Second, 8*time.Minute + 36*time.Second, 10 * time.Second, -1, false},
		{"1% errors", 0.01, 4 * time.Hour, 10 * time.Second, 216 * time.Minute, time.Minute, -1, true},
		{"0.5% errors", 0.005, 16 * time.Hour, time.Minute, -1, 0, 864 * time.Minute, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, avail999(), Options{})
			prefill(t, f.mem, 3, 10)
			fastHeld := false
			drive(t, f, 10, tt.errFrac, tt.run, tt.evalEvery, func(time.Time) {
				for _, c := range alertOf(sliStatus(t, f.e, Availability), Page).Conditions {
					fastHeld = fastHeld || c == "1h/5m"
				}
			})
			page, tick := firstFiring(f.note, Page), firstFiring(f.note, Ticket)
			t.Logf("%s: page fired at %v, ticket at %v", tt.name, page, tick)
			if tt.wantPage < 0 {
				if page >= 0 {
					t.Errorf("page fired at %v, want never", page)
				}
			} else if page < 0 || (page-tt.wantPage).Abs() > tt.tolerance {
				t.Errorf("page fired at %v, want %v ± %v", page, tt.wantPage, tt.tolerance)
			}
			if tt.wantTick < 0 && tick >= 0 {
				t.Errorf("ticket fired at %v, want never", tick)
			}
			if tt.wantTick > 0 && (tick < 0 || (tick-tt.wantTick).Abs() > 10*time.Minute) {
				t.Errorf("ticket fired at %v, want %v ± 10m", tick, tt.wantTick)
			}
			if tt.noFast && fastHeld {
				t.Errorf("the fast page condition 1h/5m held, want never")
			}
		})
	}
}

// TestRecoveryResolves: after a total outage pages, good traffic
// resolves the page and the notifier sees firing then resolved.
func TestRecoveryResolves(t *testing.T) {
	f := newFixture(t, avail999(), Options{})
	prefill(t, f.mem, 3, 10)
	drive(t, f, 10, 1, 70*time.Second, 10*time.Second, nil)
	drive(t, f, 10, 0, 15*time.Minute, 10*time.Second, nil)
	got, at := f.note.all()
	var seq []string
	for i, n := range got {
		seq = append(seq, fmt.Sprintf("%s firing=%v at %v", n.Labels["severity"], n.Firing, at[i].Sub(t0)))
	}
	t.Logf("notifications: %v", seq)
	if len(got) != 2 || !got[0].Firing || got[1].Firing || got[0].Key != "items/availability/page" || got[1].Key != got[0].Key {
		t.Fatalf("got notifications %v, want page firing then resolved", seq)
	}
	if !got[1].EndsAt.After(got[1].StartsAt) || !got[1].StartsAt.Equal(got[0].StartsAt) {
		t.Errorf("resolved: got StartsAt %v EndsAt %v, want StartsAt %v and a later EndsAt", got[1].StartsAt, got[1].EndsAt, got[0].StartsAt)
	}
	want := map[string]string{"alertname": "ToriiSLOPage", "severity": "page", "route": "items", "sli": "availability", "team": "edge"}
	for k, v := range want {
		if got[0].Labels[k] != v {
			t.Errorf("label %s: got %q, want %q", k, got[0].Labels[k], v)
		}
	}
	if got[0].Team != "edge" || !strings.Contains(got[0].Annotations["description"], "1h/5m") {
		t.Errorf("got team %q description %q, want edge and the burn rates", got[0].Team, got[0].Annotations["description"])
	}
	if s := alertOf(sliStatus(t, f.e, Availability), Page).State; s != "resolved" {
		t.Errorf("page state: got %q, want resolved", s)
	}
	states, _ := f.mem.Alerts(context.Background())
	if len(states) != 1 || states[0].Firing || !states[0].Notified {
		t.Errorf("persisted: got %+v, want the page resolved and notified", states)
	}
}

func TestCountingRules(t *testing.T) {
	lat := &config.LatencySLO{Under: config.Duration(100 * time.Millisecond), Target: 99}
	type rec struct {
		backend string
		status  int
		grpc    string
		ttfb    time.Duration
		shadow  bool
	}
	ok := func(s int) rec { return rec{"v1", s, "", time.Millisecond, false} }
	tests := []struct {
		name          string
		statuses      []string
		recs          []rec
		route, v1, v2 store.Counts
	}{
		{"success", nil, []rec{ok(200), ok(204), ok(301)}, store.Counts{Total: 3}, store.Counts{Total: 3}, store.Counts{}},
		{"client gone not counted", nil, []rec{ok(499), ok(200)}, store.Counts{Total: 1}, store.Counts{Total: 1}, store.Counts{}},
		{"5xx and gateway errors fail", nil, []rec{ok(500), ok(502), ok(503), ok(504), ok(599)}, store.Counts{Total: 5, Errors: 5}, store.Counts{Total: 5, Errors: 5}, store.Counts{}},
		{"4xx and 429 succeed by default", nil, []rec{ok(400), ok(404), ok(429)}, store.Counts{Total: 3}, store.Counts{Total: 3}, store.Counts{}},
		{"429 configured", []string{"5xx", "429"}, []rec{ok(429), ok(404), ok(500)}, store.Counts{Total: 3, Errors: 2}, store.Counts{Total: 3, Errors: 2}, store.Counts{}},
		{"4xx configured", []string{"4xx"}, []rec{ok(404), ok(500), ok(503)}, store.Counts{Total: 3, Errors: 2}, store.Counts{Total: 3, Errors: 2}, store.Counts{}},
		{"code configured", []string{"418"}, []rec{ok(418), ok(500), ok(502)}, store.Counts{Total: 3, Errors: 2}, store.Counts{Total: 3, Errors: 2}, store.Counts{}},
		{"grpc statuses", nil, []rec{
			{"v1", 200, "0", 0, false}, {"v1", 200, "5", 0, false}, {"v1", 200, "8", 0, false}, {"v1", 200, "3", 0, false},
			{"v1", 200, "14", 0, false}, {"v1", 200, "13", 0, false}, {"v1", 200, "4", 0, false}, {"v1", 200, "2", 0, false}, {"v1", 200, "15", 0, false},
			{"v1", 503, "", 0, false},
		}, store.Counts{Total: 10, Errors: 6}, store.Counts{Total: 10, Errors: 6}, store.Counts{}},
		{"shadow counts only for the backend", nil, []rec{ok(200), {"v2", 500, "", 0, true}, {"v2", 200, "", 0, true}}, store.Counts{Total: 1}, store.Counts{Total: 1}, store.Counts{Total: 2, Errors: 1}},
		{"unknown backend counts for the route only", nil, []rec{{"v9", 500, "", 0, false}}, store.Counts{Total: 1, Errors: 1}, store.Counts{}, store.Counts{}},
		{"latency is ttfb over the bound", nil, []rec{
			{"v1", 200, "", 100 * time.Millisecond, false}, {"v1", 200, "", 101 * time.Millisecond, false}, {"v2", 500, "", time.Second, false},
		}, store.Counts{Total: 3, Errors: 1, Slow: 2}, store.Counts{Total: 2, Slow: 1}, store.Counts{Total: 1, Errors: 1, Slow: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, &config.SLO{Availability: 99.9, Latency: lat, ErrorStatuses: tt.statuses}, Options{})
			for _, r := range tt.recs {
				f.items.Record(r.backend, r.status, r.grpc, r.ttfb, r.shadow)
			}
			got := unflushed(f.e)
			for _, c := range []struct {
				backend string
				want    store.Counts
			}{{"", tt.route}, {"v1", tt.v1}, {"v2", tt.v2}} {
				if g := got[store.Series{Route: "items", Backend: c.backend}]; g != c.want {
					t.Errorf("series %q: got %+v, want %+v", c.backend, g, c.want)
				}
			}
		})
	}
}

func TestNilRecorders(t *testing.T) {
	var a *Accountant
	a.Route("x").Record("v1", 500, "", 0, false) // must not panic
	f := newFixture(t, avail999(), Options{})
	if r := f.e.Accountant(testConfig(avail999())).Route("static"); r != nil {
		t.Errorf("route without SLO: got %v, want nil", r)
	}
}

func TestMinEventsGuard(t *testing.T) {
	tests := []struct {
		name      string
		minEvents int
		failures  int
		wantFire  bool
	}{
		{"below the default guard", 0, 9, false},
		{"at the default guard", 0, 10, true},
		{"below a configured guard", 50, 49, false},
		{"at a configured guard", 50, 50, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, &config.SLO{Availability: 99.9, MinEvents: tt.minEvents}, Options{})
			for range tt.failures {
				f.items.Record("v1", 500, "", 0, false)
			}
			now := f.clock.Advance(10 * time.Second)
			if err := f.e.Evaluate(context.Background(), now); err != nil {
				t.Fatal(err)
			}
			a := alertOf(sliStatus(t, f.e, Availability), Page)
			if got := a.State == "firing"; got != tt.wantFire {
				t.Errorf("%d failures, min_events %d: got firing %v, want %v", tt.failures, tt.minEvents, got, tt.wantFire)
			}
		})
	}
}

func TestFactors(t *testing.T) {
	tests := []struct {
		period time.Duration
		want   []float64
	}{
		{30 * day, []float64{14.4, 6, 3, 1}},
		{28 * day, []float64{13.44, 5.6, 2.8, 0.9333}},
	}
	for _, tt := range tests {
		for i, c := range Conditions {
			if got := c.Factor(tt.period); math.Abs(got-tt.want[i]) > 1e-4 {
				t.Errorf("%s over %s: got factor %.4f, want %.4f", c.Name(), WindowName(tt.period), got, tt.want[i])
			}
		}
	}
}

// Test28DayPeriod: over 28 days the fast page fires at 13.44×: 10 %
// errors reach it after 0.01344 × 3600 / 0.1 = 483.8 s.
func Test28DayPeriod(t *testing.T) {
	f := newFixture(t, &config.SLO{Availability: 99.9, Period: config.Duration(28 * day)}, Options{})
	prefill(t, f.mem, 3, 10)
	drive(t, f, 10, 0.10, 10*time.Minute, 10*time.Second, nil)
	page := firstFiring(f.note, Page)
	t.Logf("28d: page fired at %v", page)
	if want := 483800 * time.Millisecond; page < 0 || (page-want).Abs() > 10*time.Second {
		t.Errorf("page fired at %v, want %v ± 10s", page, want)
	}
	if p := sliStatus(t, f.e, Availability); p == nil || p.BurnRate["28d"] == 0 {
		t.Errorf("got no 28d burn rate in %+v", p)
	}
}

func TestLatencySLI(t *testing.T) {
	f := newFixture(t, &config.SLO{Latency: &config.LatencySLO{Under: config.Duration(100 * time.Millisecond), Target: 99}}, Options{})
	for i := range 100 {
		ttfb := 10 * time.Millisecond
		if i < 20 {
			ttfb = time.Second
		}
		f.items.Record("v1", 500, "", ttfb, false)
	}
	now := f.clock.Advance(10 * time.Second)
	if err := f.e.Evaluate(context.Background(), now); err != nil {
		t.Fatal(err)
	}
	rs := f.e.Status()[0]
	if rs.Availability != nil {
		t.Errorf("got an availability SLI without a target")
	}
	if got := rs.Latency.BurnRate["5m"]; math.Abs(got-20) > 1e-9 {
		t.Errorf("latency burn rate 5m: got %v, want 20", got)
	}
	if a := alertOf(rs.Latency, Page); a.State != "firing" {
		t.Errorf("latency page: got %q, want firing", a.State)
	}
}

func TestBudgetRemaining(t *testing.T) {
	f := newFixture(t, avail999(), Options{})
	// 100000 requests in the period, 25 failed: a quarter of the budget.
	if err := f.mem.Add(context.Background(), []store.Bucket{{Series: store.Series{Route: "items"}, Start: t0.Add(-10 * day), Counts: store.Counts{Total: 100000, Errors: 25}}}); err != nil {
		t.Fatal(err)
	}
	if err := f.e.Evaluate(context.Background(), t0); err != nil {
		t.Fatal(err)
	}
	if got := sliStatus(t, f.e, Availability).BudgetRemaining; math.Abs(got-0.75) > 1e-9 {
		t.Errorf("budget remaining: got %v, want 0.75", got)
	}
	ts := f.e.Team("edge")
	if !ts.Known || len(ts.Routes) != 2 || ts.Routes[0].Availability == nil || math.Abs(*ts.Routes[0].Availability-0.75) > 1e-9 || ts.Routes[1].HasSLO {
		t.Errorf("team edge: got %+v, want items with 0.75 left and static without SLO", ts)
	}
	if ts := f.e.Team("nobody"); ts.Known || len(ts.Routes) != 0 {
		t.Errorf("team nobody: got %+v, want unknown and empty", ts)
	}
}

// TestStoreOutage: while Add fails, counts stay in memory, evaluations
// still see them, and the next successful flush writes them all.
func TestStoreOutage(t *testing.T) {
	fs := &failingStore{}
	f := newFixture(t, avail999(), Options{Store: fs, Registerer: prometheus.NewRegistry()})
	fs.Store = f.mem
	fs.set(true)
	ctx := context.Background()
	var flushErrs int
	for range 60 { // ten minutes, one request per second per step of 10 s
		for range 10 {
			f.items.Record("v1", 500, "", 0, false)
		}
		now := f.clock.Advance(10 * time.Second)
		if err := f.e.Flush(ctx); err != nil {
			flushErrs++
		}
		if err := f.e.Evaluate(ctx, now); err != nil {
			t.Fatal(err)
		}
	}
	if got := sliStatus(t, f.e, Availability).Events["5m"]; got != 300 {
		t.Errorf("during the outage, 5m events: got %d, want 300", got)
	}
	if flushErrs == 0 {
		t.Fatalf("got no flush errors, want the outage to show")
	}
	fs.set(false)
	f.clock.Advance(20 * time.Second)
	if err := f.e.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	sums, err := f.mem.Sums(ctx, f.clock.Now(), []time.Duration{time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if got := sums[store.Series{Route: "items"}][0]; got.Total != 600 || got.Errors != 600 {
		t.Errorf("after recovery, stored: got %+v, want 600 requests, 600 errors", got)
	}
	if got := counterValue(t, f.e, "torii_slo_flush_failures_total"); got != float64(flushErrs) {
		t.Errorf("torii_slo_flush_failures_total: got %v, want %d", got, flushErrs)
	}
}

// TestStoreOutageBounded: beyond MaxPending, the oldest buckets go and
// are counted.
func TestStoreOutageBounded(t *testing.T) {
	fs := &failingStore{}
	reg := prometheus.NewRegistry()
	f := newFixture(t, avail999(), Options{Store: fs, Registerer: reg})
	fs.Store = f.mem
	fs.set(true)
	for range 2 * 360 { // two hours of 10 s steps
		f.items.Record("v1", 200, "", 0, false)
		f.clock.Advance(10 * time.Second)
		_ = f.e.Flush(context.Background())
	}
	f.e.regMu.Lock()
	n := len(f.e.pending)
	f.e.regMu.Unlock()
	if n > 2*int(MaxPending/store.Resolution) { // route and one backend
		t.Errorf("pending buckets: got %d, want at most an hour's worth", n)
	}
	if got := counterValue(t, f.e, "torii_slo_dropped_buckets_total"); got < 700 {
		t.Errorf("torii_slo_dropped_buckets_total: got %v, want about 720", got)
	}
}

func counterValue(t *testing.T, e *Engine, name string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(e.m.flushFailures, e.m.dropped, e.m)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestTwoReplicas: two engines on one store sum their counts and send one
// notification between them.
func TestTwoReplicas(t *testing.T) {
	c := newClock(t0)
	mem := store.NewMemory(c.Now)
	prefill(t, mem, 3, 10)
	note := &notifier{clock: c}
	var engines []*Engine
	var recs []*RouteSLI
	for _, id := range []string{"a", "b"} {
		e, err := New(Options{Now: c.Now, Store: mem, Notifier: note, ReplicaID: id})
		if err != nil {
			t.Fatal(err)
		}
		cfg := testConfig(avail999())
		recs = append(recs, e.Accountant(cfg).Route("items"))
		e.Apply(cfg)
		engines = append(engines, e)
	}
	ctx := context.Background()
	for s := 1; s <= 100; s++ {
		for i := range 10 {
			recs[i%2].Record("v1", 503, "", 0, false)
		}
		now := c.Advance(time.Second)
		if s%10 == 0 {
			for _, e := range engines {
				if err := e.Flush(ctx); err != nil {
					t.Fatal(err)
				}
			}
			for _, e := range engines {
				if err := e.Evaluate(ctx, now); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	// Each replica sees the other's counts once flushed: let the last
	// buckets complete and flush.
	now := c.Advance(30 * time.Second)
	for _, e := range engines {
		if err := e.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range engines {
		if err := e.Evaluate(ctx, now); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := note.all()
	if len(got) != 1 || !got[0].Firing {
		t.Errorf("got %d notifications %+v, want one page firing", len(got), got)
	}
	for i, e := range engines {
		if s := alertOf(sliStatus(t, e, Availability), Page).State; s != "firing" {
			t.Errorf("replica %d: page %q, want firing on both", i, s)
		}
		if got := sliStatus(t, e, Availability).Bad["30m"]; got != 1000 {
			t.Errorf("replica %d: 30m errors %d, want 1000 (both replicas' sum)", i, got)
		}
	}
}

// TestRestore: a new engine on the same store takes up a firing alert
// without notifying it again, and notifies its resolution.
func TestRestore(t *testing.T) {
	f := newFixture(t, avail999(), Options{})
	prefill(t, f.mem, 1, 10)
	drive(t, f, 10, 1, 70*time.Second, 10*time.Second, nil)
	if firstFiring(f.note, Page) < 0 {
		t.Fatal("page did not fire")
	}
	note := &notifier{clock: f.clock}
	e2, err := New(Options{Now: f.clock.Now, Store: f.mem, Notifier: note, ReplicaID: "restarted"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(avail999())
	e2.Accountant(cfg)
	e2.Apply(cfg)
	f.clock.Advance(30 * time.Second) // the old replica's lease ran out
	if err := e2.Evaluate(context.Background(), f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if s := alertOf(sliStatus(t, e2, Availability), Page).State; s != "firing" {
		t.Errorf("restored page: got %q, want firing", s)
	}
	if got, _ := note.all(); len(got) != 0 {
		t.Errorf("got %d notifications after restore, want none", len(got))
	}
	if err := e2.Evaluate(context.Background(), f.clock.Advance(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got, _ := note.all(); len(got) != 1 || got[0].Firing {
		t.Errorf("after recovery: got %+v, want one resolved", got)
	}
}

// TestReload: counters survive a reload for an unchanged route; a removed
// route's firing alert resolves and its metrics go.
func TestReload(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := newFixture(t, avail999(), Options{Registerer: reg})
	for range 20 {
		f.items.Record("v1", 500, "", 0, false)
	}
	cfg := testConfig(avail999())
	r2 := f.e.Accountant(cfg).Route("items")
	f.e.Apply(cfg)
	r2.Record("v1", 200, "", 0, false)
	if got := unflushed(f.e)[store.Series{Route: "items"}]; got.Total != 21 || got.Errors != 20 {
		t.Errorf("after reload: got %+v, want 21 requests, 20 errors", got)
	}
	now := f.clock.Advance(10 * time.Second)
	if err := f.e.Evaluate(context.Background(), now); err != nil {
		t.Fatal(err)
	}
	if firstFiring(f.note, Page) < 0 {
		t.Fatal("page did not fire")
	}
	gone := testConfig(nil)
	f.e.Accountant(gone)
	f.e.Apply(gone)
	if err := f.e.Evaluate(context.Background(), f.clock.Advance(10*time.Second)); err != nil {
		t.Fatal(err)
	}
	firing := map[string]bool{}
	got, _ := f.note.all()
	for _, n := range got {
		firing[n.Key] = n.Firing
	}
	if len(firing) == 0 || firing["items/availability/page"] || firing["items/availability/ticket"] {
		t.Errorf("after removing the SLO: got %+v, want the alerts resolved", got)
	}
	if len(f.e.Status()) != 0 {
		t.Errorf("got status %+v, want none", f.e.Status())
	}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "torii_slo_") && len(mf.GetMetric()) > 0 && len(mf.GetMetric()[0].GetLabel()) > 0 {
			t.Errorf("metric %s still has series after the route lost its SLO", mf.GetName())
		}
	}
	// The removed series' counts were harvested for the store.
	if err := f.e.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	sums, _ := f.mem.Sums(context.Background(), f.clock.Now(), []time.Duration{time.Hour})
	if got := sums[store.Series{Route: "items"}][0].Total; got != 21 {
		t.Errorf("stored after removal: got %d, want 21", got)
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := newFixture(t, &config.SLO{Availability: 99.9, Latency: &config.LatencySLO{Under: config.Duration(time.Millisecond), Target: 99}}, Options{Registerer: reg})
	for range 10 {
		f.items.Record("v1", 500, "", time.Second, false)
	}
	f.items.Record("v1", 200, "", 0, false)
	if err := f.e.Evaluate(context.Background(), f.clock.Advance(10*time.Second)); err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			got[mf.GetName()+"{"+strings.Join(labels, ",")+"}"] = v
		}
	}
	want := map[string]float64{
		"torii_slo_requests_total{route=items}":                              11,
		"torii_slo_errors_total{route=items}":                                10,
		"torii_slo_slow_requests_total{route=items}":                         10,
		"torii_slo_sli{route=items,sli=availability,window=5m}":              1.0 / 11,
		"torii_slo_burn_rate{route=items,sli=latency,window=30d}":            (10.0 / 11) / 0.01,
		"torii_slo_alert_firing{route=items,severity=page,sli=availability}": 1,
		"torii_slo_alert_firing{route=items,severity=ticket,sli=latency}":    1,
		"torii_slo_error_budget_remaining{route=items,sli=availability}":     1 - (10.0/11)/0.001,
		"torii_slo_flush_failures_total{}":                                   0,
		"torii_slo_dropped_buckets_total{}":                                  0,
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || math.Abs(g-v) > 1e-6 {
			t.Errorf("%s: got %v (present %v), want %v", k, g, ok, v)
		}
	}
}

// BenchmarkRecord measures the accounting a request pays: a route and a
// backend series, with the real clock.
func BenchmarkRecord(b *testing.B) {
	e, err := New(Options{Store: store.NewMemory(nil)})
	if err != nil {
		b.Fatal(err)
	}
	cfg := testConfig(&config.SLO{Availability: 99.9, Latency: &config.LatencySLO{Under: config.Duration(100 * time.Millisecond), Target: 99}})
	r := e.Accountant(cfg).Route("items")
	e.Apply(cfg)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r.Record("v2", 200, "", time.Millisecond, false)
		}
	})
}

// TestRunFlushesOnShutdown: Run's last flush writes the bucket in
// progress too.
func TestRunFlushesOnShutdown(t *testing.T) {
	f := newFixture(t, avail999(), Options{})
	f.clock.Advance(3 * time.Second)
	for range 7 {
		f.items.Record("v1", 200, "", 0, false)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f.e.Run(ctx)
	sums, err := f.mem.Sums(context.Background(), f.clock.Now().Add(time.Minute), []time.Duration{time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if got := sums[store.Series{Route: "items"}][0].Total; got != 7 {
		t.Errorf("stored after shutdown: got %d, want 7", got)
	}
}

// TestConcurrent exercises Record against every reader under -race.
func TestConcurrent(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := newFixture(t, avail999(), Options{Registerer: reg})
	ctx := context.Background()
	done := make(chan struct{})
	for g := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 2000 {
				f.items.Record("v1", 200+g*100, "", time.Duration(i), i%2 == 0)
			}
		}()
	}
	for range 50 {
		now := f.clock.Advance(time.Second)
		_ = f.e.Flush(ctx)
		_ = f.e.Evaluate(ctx, now)
		_ = f.e.Status()
		_ = f.e.Team("edge")
		if _, err := reg.Gather(); err != nil {
			t.Fatal(err)
		}
		cfg := testConfig(avail999())
		f.e.Accountant(cfg)
		f.e.Apply(cfg)
	}
	for range 4 {
		<-done
	}
	f.clock.Advance(time.Minute)
	if err := f.e.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	sums, _ := f.mem.Sums(ctx, f.clock.Now(), []time.Duration{time.Hour})
	if got := sums[store.Series{Route: "items", Backend: "v1"}][0].Total; got != 8000 {
		t.Errorf("backend v1 stored: got %d, want 8000", got)
	}
}
