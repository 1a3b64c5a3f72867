package store

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"torii/internal/testpg"
)

// clock is a settable clock shared by every handle of one test database.
type clock struct {
	mu sync.Mutex // guards t
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// t0 is an aligned instant the tests measure from.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// impl is one Store implementation under test. newDB makes an empty
// database and returns a function that opens a handle on it: two handles
// are two replicas sharing the data (for Memory, the same instance).
type impl struct {
	name  string
	newDB func(t *testing.T, now func() time.Time) (open func() Store)
}

func impls(t *testing.T) []impl {
	return []impl{
		{"memory", func(t *testing.T, now func() time.Time) func() Store {
			m := NewMemory(now)
			return func() Store { return m }
		}},
		{"sqlite", func(t *testing.T, now func() time.Time) func() Store {
			path := filepath.Join(t.TempDir(), "torii.db")
			return func() Store {
				s, err := OpenSQLite(t.Context(), path, Options{Now: now})
				if err != nil {
					t.Fatalf("open sqlite: %v", err)
				}
				t.Cleanup(func() { s.Close() })
				return s
			}
		}},
		{"postgres", func(t *testing.T, now func() time.Time) func() Store {
			dsn := testpg.DSN(t)
			return func() Store {
				s, err := OpenPostgres(t.Context(), dsn, Options{Now: now})
				if err != nil {
					t.Fatalf("open postgres: %v", err)
				}
				t.Cleanup(func() { s.Close() })
				return s
			}
		}},
	}
}

func TestConformance(t *testing.T) {
	cases := []struct {
		name string
		run  func(t *testing.T, open func() Store, clk *clock)
	}{
		{"add is additive across replicas", testAdditive},
		{"sums window boundaries", testWindows},
		{"alerts round trip", testAlerts},
		{"lease", testLease},
		{"prune", testPrune},
		{"rollout versions", testRollouts},
		{"rollout save race: exactly one wins", testRolloutRace},
		{"audit order, limit and prune", testAudit},
		{"diff counts are additive", testDiffs},
		{"diff samples keep the newest", testDiffSamples},
		{"prune diffs", testPruneDiffs},
		{"concurrent diff writers", testDiffsConcurrent},
	}
	for _, im := range impls(t) {
		t.Run(im.name, func(t *testing.T) {
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					clk := &clock{t: t0}
					tc.run(t, im.newDB(t, clk.Now), clk)
				})
			}
		})
	}
}

var (
	items  = Series{Route: "items"}
	itemsA = Series{Route: "items", Backend: "a"}
	itemsB = Series{Route: "items", Backend: "b"}
)

func testAdditive(t *testing.T, open func() Store, _ *clock) {
	ctx := t.Context()
	r1, r2 := open(), open()
	mustAdd(t, r1, []Bucket{
		{Series: items, Start: t0, Counts: Counts{Total: 3, Errors: 1}},
		// The same bucket twice in one batch, and an unaligned start.
		{Series: itemsA, Start: t0.Add(2 * time.Second), Counts: Counts{Total: 1, Slow: 1}},
		{Series: itemsA, Start: t0, Counts: Counts{Total: 1}},
	})
	mustAdd(t, r2, []Bucket{
		{Series: items, Start: t0, Counts: Counts{Total: 4, Errors: 2, Slow: 1}},
		{Series: itemsB, Start: t0.Add(Resolution), Counts: Counts{Total: 5}},
	})
	mustAdd(t, r1, nil) // nothing to do
	want := map[Series][]Counts{
		items:  {{Total: 7, Errors: 3, Slow: 1}},
		itemsA: {{Total: 2, Slow: 1}},
		itemsB: {{Total: 5}},
	}
	for name, s := range map[string]Store{"replica 1": r1, "replica 2": r2} {
		got, err := s.Sums(ctx, t0.Add(time.Minute), []time.Duration{time.Hour})
		if err != nil {
			t.Fatalf("%s: sums: %v", name, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: sums: got %v, want %v", name, got, want)
		}
	}
}

func testWindows(t *testing.T, open func() Store, _ *clock) {
	s := open()
	one := Counts{Total: 1}
	mustAdd(t, s, []Bucket{
		{Series: items, Start: t0.Add(-time.Hour - Resolution), Counts: Counts{Total: 1000}}, // before every window
		{Series: items, Start: t0.Add(-time.Hour), Counts: Counts{Total: 100}},               // exactly now-1h
		{Series: items, Start: t0.Add(-5*time.Minute - Resolution), Counts: Counts{Total: 10}},
		{Series: items, Start: t0.Add(-5 * time.Minute), Counts: Counts{Total: 1, Errors: 1}}, // exactly now-5m
		{Series: items, Start: t0.Add(-Resolution), Counts: Counts{Total: 1, Slow: 1}},
		{Series: items, Start: t0, Counts: Counts{Total: 10000}}, // at now: out
		{Series: itemsA, Start: t0.Add(-2 * time.Hour), Counts: one},
		{Series: itemsB, Start: t0.Add(time.Minute), Counts: one},
	})
	windows := []time.Duration{5 * time.Minute, time.Hour, 0}
	cases := []struct {
		name    string
		now     time.Time
		windows []time.Duration
		want    map[Series][]Counts
	}{
		{"aligned now", t0, windows, map[Series][]Counts{
			items: {{Total: 2, Errors: 1, Slow: 1}, {Total: 112, Errors: 1, Slow: 1}, {}},
		}},
		{"now mid-bucket counts the bucket it is in", t0.Add(5 * time.Second), windows, map[Series][]Counts{
			// now-5m = t0-4m55s: the bucket at t0-5m starts before it.
			items: {{Total: 10001, Slow: 1}, {Total: 10012, Errors: 1, Slow: 1}, {}},
		}},
		{"long window reaches the other series", t0, []time.Duration{3 * time.Hour}, map[Series][]Counts{
			items:  {{Total: 1112, Errors: 1, Slow: 1}},
			itemsA: {one},
		}},
		{"no windows", t0, nil, map[Series][]Counts{}},
		{"nothing in the window", t0.Add(-3 * time.Hour), windows, map[Series][]Counts{}},
	}
	for _, tc := range cases {
		got, err := s.Sums(t.Context(), tc.now, tc.windows)
		if err != nil {
			t.Fatalf("%s: sums: %v", tc.name, err)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

func testAlerts(t *testing.T, open func() Store, _ *clock) {
	ctx := t.Context()
	r1, r2 := open(), open()
	page := AlertState{
		Key: "items/availability/page", Firing: true, Since: t0.Add(123456789 * time.Nanosecond), Notified: false,
		Labels:      map[string]string{"alertname": "SLOBurnRate", "route": "items", "severity": "page", "quote": `"ä"`},
		Annotations: map[string]string{"summary": "items burns its error budget 14.4× too fast"},
	}
	ticket := AlertState{Key: "items/latency/ticket"} // zero time, nil maps
	empty := AlertState{Key: "a/empty", Labels: map[string]string{}, Annotations: map[string]string{}, Notified: true}
	for _, a := range []AlertState{page, ticket, empty} {
		if err := r1.SaveAlert(ctx, a); err != nil {
			t.Fatalf("save %s: %v", a.Key, err)
		}
	}
	// Replace: resolved and delivered.
	page.Firing, page.Notified, page.Since = false, true, t0.Add(time.Hour)
	page.Labels = map[string]string{"route": "items"}
	if err := r2.SaveAlert(ctx, page); err != nil {
		t.Fatalf("save again: %v", err)
	}
	got, err := r2.Alerts(ctx)
	if err != nil {
		t.Fatalf("alerts: %v", err)
	}
	slices.SortFunc(got, func(a, b AlertState) int { return strings.Compare(a.Key, b.Key) })
	want := []AlertState{empty, page, ticket}
	if len(got) != len(want) {
		t.Fatalf("alerts: got %d, want %d: %v", len(got), len(want), got)
	}
	for i := range want {
		g, w := got[i], want[i]
		if !g.Since.Equal(w.Since) {
			t.Errorf("alert %s: since: got %v, want %v", w.Key, g.Since, w.Since)
		}
		g.Since, w.Since = time.Time{}, time.Time{}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("alert %s: got %+v, want %+v", w.Key, g, w)
		}
	}
}

func testLease(t *testing.T, open func() Store, clk *clock) {
	r1, r2 := open(), open()
	const ttl = 30 * time.Second
	steps := []struct {
		name    string
		advance time.Duration
		store   Store
		lease   string
		holder  string
		want    bool
	}{
		{"free: r1 takes it", 0, r1, "send/items", "r1", true},
		{"held: r2 refused", 0, r2, "send/items", "r2", false},
		{"another lease is independent", 0, r2, "send/other", "r2", true},
		{"holder renews", 10 * time.Second, r1, "send/items", "r1", true},
		{"renewed: still refused just before expiry", ttl - time.Nanosecond, r2, "send/items", "r2", false},
		{"expired at exactly until: r2 takes it", time.Nanosecond, r2, "send/items", "r2", true},
		{"r1 lost it", 0, r1, "send/items", "r1", false},
	}
	for _, st := range steps {
		clk.Advance(st.advance)
		got, err := st.store.TryLease(t.Context(), st.lease, st.holder, ttl)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if got != st.want {
			t.Errorf("%s: got %v, want %v", st.name, got, st.want)
		}
	}
}

func testPrune(t *testing.T, open func() Store, _ *clock) {
	s := open()
	var bs []Bucket
	for i := range 5 {
		bs = append(bs, Bucket{Series: items, Start: t0.Add(time.Duration(i) * Resolution), Counts: Counts{Total: 1 << i}})
	}
	mustAdd(t, s, bs)
	if err := s.Prune(t.Context(), t0.Add(2*Resolution)); err != nil {
		t.Fatalf("prune: %v", err)
	}
	got, err := s.Sums(t.Context(), t0.Add(time.Hour), []time.Duration{2 * time.Hour})
	if err != nil {
		t.Fatalf("sums: %v", err)
	}
	want := map[Series][]Counts{items: {{Total: 4 + 8 + 16}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("after prune: got %v, want %v", got, want)
	}
}

func mustAdd(t testing.TB, s Store, bs []Bucket) {
	t.Helper()
	if err := s.Add(context.Background(), bs); err != nil {
		t.Fatalf("add: %v", err)
	}
}

// buckets returns n series × per buckets each, ending before t0.
func buckets(n, per int) []Bucket {
	bs := make([]Bucket, 0, n*per)
	for i := range n {
		s := Series{Route: fmt.Sprintf("route-%04d", i), Backend: "main"}
		for j := range per {
			bs = append(bs, Bucket{Series: s, Start: t0.Add(-time.Duration(j+1) * Resolution), Counts: Counts{Total: 100, Errors: 1, Slow: 2}})
		}
	}
	return bs
}

func TestCoalesce(t *testing.T) {
	got := coalesce([]Bucket{
		{Series: itemsB, Start: t0, Counts: Counts{Total: 1}},
		{Series: itemsA, Start: t0.Add(Resolution), Counts: Counts{Total: 1}},
		{Series: itemsA, Start: t0.Add(9 * time.Second), Counts: Counts{Total: 2, Errors: 1}},
	})
	want := []row{
		{bucketKey{t0.Unix(), itemsA}, Counts{Total: 2, Errors: 1}},
		{bucketKey{t0.Unix(), itemsB}, Counts{Total: 1}},
		{bucketKey{t0.Add(Resolution).Unix(), itemsA}, Counts{Total: 1}},
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
