package slo

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"torii/internal/config"
	"torii/internal/store"
)

// t0 is where scenarios start: aligned to a bucket.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// clock is a fake clock tests advance by hand.
type clock struct {
	mu sync.Mutex // guards t
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *clock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// notifier records notifications with the time they arrived.
type notifier struct {
	clock *clock
	mu    sync.Mutex // guards got and at
	got   []Notification
	at    []time.Time
}

func (n *notifier) Notify(_ context.Context, x Notification) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.got = append(n.got, x)
	n.at = append(n.at, n.clock.Now())
}

func (n *notifier) all() ([]Notification, []time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]Notification(nil), n.got...), append([]time.Time(nil), n.at...)
}

// failingStore fails Add (and optionally everything) while failing is set.
type failingStore struct {
	store.Store
	mu      sync.Mutex // guards failing
	failing bool
}

var errDown = errors.New("store down")

func (f *failingStore) set(v bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failing = v
}

func (f *failingStore) Add(ctx context.Context, bs []store.Bucket) error {
	f.mu.Lock()
	failing := f.failing
	f.mu.Unlock()
	if failing {
		return errDown
	}
	return f.Store.Add(ctx, bs)
}

// testConfig is one route "items" with backends v1 and v2 owned by edge.
func testConfig(slo *config.SLO) *config.Config {
	return &config.Config{
		Teams: map[string]*config.Team{"edge": {}},
		Upstreams: map[string]*config.Upstream{
			"v1": {}, "v2": {},
		},
		Routes: []config.Route{
			{Name: "items", Owner: "edge", SLO: slo, Backends: []config.Backend{{Upstream: "v1"}, {Upstream: "v2"}}},
			{Name: "static", Owner: "edge"},
		},
	}
}

// fixture is an engine on a Memory store with a fake clock.
type fixture struct {
	clock *clock
	mem   *store.Memory
	note  *notifier
	e     *Engine
	items *RouteSLI
}

func newFixture(t testing.TB, slo *config.SLO, opts Options) *fixture {
	t.Helper()
	f := &fixture{clock: newClock(t0)}
	f.mem = store.NewMemory(f.clock.Now)
	f.note = &notifier{clock: f.clock}
	opts.Now = f.clock.Now
	if opts.Store == nil {
		opts.Store = f.mem
	}
	opts.Notifier = f.note
	e, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(slo)
	acc := e.Accountant(cfg)
	e.Apply(cfg)
	f.e, f.items = e, acc.Route("items")
	return f
}

// prefill adds days of good traffic at rate req/s before t0 straight to
// the store: 10 s buckets for the last day, 1-minute buckets before.
func prefill(t testing.TB, s store.Store, days int, rate int64) {
	t.Helper()
	var bs []store.Bucket
	for at := t0.Add(-time.Duration(days) * day); at.Before(t0); {
		step := time.Minute
		if t0.Sub(at) <= day {
			step = store.Resolution
		}
		n := rate * int64(step/time.Second)
		bs = append(bs, store.Bucket{Series: store.Series{Route: "items"}, Start: at, Counts: store.Counts{Total: n}})
		at = at.Add(step)
	}
	if err := s.Add(context.Background(), bs); err != nil {
		t.Fatal(err)
	}
}

// sliStatus returns the named SLI of route items.
func sliStatus(t testing.TB, e *Engine, sli string) *SLIStatus {
	t.Helper()
	for _, rs := range e.Status() {
		if rs.Route == "items" {
			if sli == Latency {
				return rs.Latency
			}
			return rs.Availability
		}
	}
	t.Fatalf("no status for route items")
	return nil
}

func alertOf(s *SLIStatus, sev Severity) AlertStatus {
	for _, a := range s.Alerts {
		if a.Severity == sev {
			return a
		}
	}
	return AlertStatus{}
}

// unflushed returns the replica's counts not yet in the store, by series.
func unflushed(e *Engine) map[store.Series]store.Counts {
	e.regMu.Lock()
	defer e.regMu.Unlock()
	out := map[store.Series]store.Counts{}
	for _, b := range e.localLocked(e.now().Add(time.Hour)) {
		out[b.Series] = out[b.Series].Add(b.Counts)
	}
	return out
}
