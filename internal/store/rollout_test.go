package store

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Routes, endpoints and fields that sort one way byte-wise and the other
// way in most locales ("Zeta" < "items", "POST" < "get"), to catch a
// PostgreSQL column ordered by the database's collation.
const (
	upper    = "Zeta"
	epLower  = "get /items/{id}"
	epUpper  = "POST /items"
	dirty    = "body.\xff\x00name" // invalid UTF-8 and a NUL
	dirtyFix = "body.\uFFFD\uFFFDname"
)

func mustSave(t *testing.T, s Store, st RolloutState, expect int64, audit *AuditEntry) {
	t.Helper()
	if err := s.SaveRollout(t.Context(), st, expect, audit); err != nil {
		t.Fatalf("save %s at version %d: %v", st.Route, expect, err)
	}
}

func testRollouts(t *testing.T, open func() Store, _ *clock) {
	ctx := t.Context()
	r1, r2 := open(), open()
	started := t0.Add(123456789 * time.Nanosecond)
	start := RolloutState{
		Route: "items", Generation: "g1", Phase: "progressing", Step: -1, Percent: 0,
		StepStarted: started.In(time.FixedZone("CET", 3600)), Updated: started, Reason: "start",
	}
	advance := RolloutState{
		Route: "items", Generation: "g1", Phase: "progressing", Step: 2, Percent: 12.5,
		StepStarted: t0.Add(time.Minute), Updated: t0.Add(time.Minute), Reason: "gate passed", Version: 99, // ignored
	}
	other := RolloutState{Route: upper, Generation: "g7", Phase: "paused", Percent: 100.0 / 3} // zero times
	steps := []struct {
		name   string
		store  Store
		st     RolloutState
		expect int64
		audit  *AuditEntry
		want   error // nil, ErrConflict or errAny
	}{
		{"first save", r1, start, 0, &AuditEntry{Route: "items", Generation: "g1", At: started, Actor: "rollout", Action: "start", ToPercent: 0, Reason: "plan g1"}, nil},
		{"second create refused", r2, start, 0, &AuditEntry{Route: "items", Action: "start"}, ErrConflict},
		{"version ahead refused", r2, advance, 2, &AuditEntry{Route: "items", Action: "advance"}, ErrConflict},
		{"advance on the other replica", r2, advance, 1, &AuditEntry{Route: "items", Generation: "g1", At: t0.Add(time.Minute), Actor: "admin:ops", Action: "advance", FromPercent: 0, ToPercent: 12.5, Reason: "gate burn_rate 0.5 <= 2"}, nil},
		{"stale advance refused", r1, advance, 1, &AuditEntry{Route: "items", Action: "advance"}, ErrConflict},
		{"another route, no audit", r1, other, 0, nil, nil},
		{"missing route with a version refused", r1, RolloutState{Route: "ghost"}, 3, nil, ErrConflict},
		{"NaN percent refused", r1, RolloutState{Route: upper, Percent: math.NaN()}, 1, nil, errAny},
		{"infinite audit percent refused", r1, RolloutState{Route: upper}, 1, &AuditEntry{Route: upper, ToPercent: math.Inf(1)}, errAny},
	}
	for _, st := range steps {
		err := st.store.SaveRollout(ctx, st.st, st.expect, st.audit)
		switch {
		case st.want == nil && err != nil:
			t.Fatalf("%s: %v", st.name, err)
		case st.want == ErrConflict && !errors.Is(err, ErrConflict):
			t.Fatalf("%s: got %v, want an ErrConflict", st.name, err)
		case st.want == errAny && (err == nil || errors.Is(err, ErrConflict)):
			t.Fatalf("%s: got %v, want an error other than ErrConflict", st.name, err)
		}
	}

	wantItems := advance
	wantItems.Version = 2
	wantOther := other
	wantOther.Version = 1
	checkRollouts(t, "after saves", r1, []RolloutState{wantOther, wantItems})
	audit, err := r1.Audit(ctx, "items", 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := actions(audit); !reflect.DeepEqual(got, []string{"advance", "start"}) {
		t.Errorf("audit: got %v, want [advance start] (refused saves leave none)", got)
	}
	wantStart := AuditEntry{Route: "items", Generation: "g1", At: started, Actor: "rollout", Action: "start", Reason: "plan g1"}
	if len(audit) == 2 && !reflect.DeepEqual(audit[1], wantStart) {
		t.Errorf("audit entry: got %+v, want %+v", audit[1], wantStart)
	}

	// Delete keeps the audit; a new plan starts from version 0.
	if err := r2.DeleteRollout(ctx, "items"); err != nil {
		t.Fatal(err)
	}
	if err := r2.DeleteRollout(ctx, "items"); err != nil {
		t.Fatalf("delete missing: %v", err)
	}
	checkRollouts(t, "after delete", r1, []RolloutState{wantOther})
	if err := r1.SaveRollout(ctx, start, 2, nil); !errors.Is(err, ErrConflict) {
		t.Errorf("save over the deleted version: got %v, want an ErrConflict", err)
	}
	mustSave(t, r1, start, 0, nil)
	wantStart2 := start
	wantStart2.StepStarted, wantStart2.Version = started, 1
	checkRollouts(t, "after restart", r2, []RolloutState{wantOther, wantStart2})
	if audit, err := r2.Audit(ctx, "items", 0); err != nil || len(audit) != 2 {
		t.Errorf("audit after delete: got %d entries (%v), want 2", len(audit), err)
	}
}

var errAny = errors.New("any error")

func checkRollouts(t *testing.T, name string, s Store, want []RolloutState) {
	t.Helper()
	got, err := s.Rollouts(t.Context())
	if err != nil {
		t.Fatalf("%s: rollouts: %v", name, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s: rollouts:\n got %+v\nwant %+v", name, got, want)
	}
}

func actions(es []AuditEntry) []string {
	out := []string{}
	for _, e := range es {
		out = append(out, e.Action)
	}
	return out
}

// testRolloutRace has racers on two replicas save over the same version,
// round after round: exactly one wins each round, and only its audit entry
// is kept.
func testRolloutRace(t *testing.T, open func() Store, _ *clock) {
	const racers, rounds = 8, 5
	stores := []Store{open(), open()}
	for round := range int64(rounds) {
		var (
			wins, conflicts atomic.Int64
			winner          atomic.Value
			wg              sync.WaitGroup
		)
		ready := make(chan struct{})
		for i := range racers {
			wg.Go(func() {
				<-ready
				name := fmt.Sprintf("racer %d", i)
				st := RolloutState{Route: "items", Generation: "g1", Phase: "progressing", Step: int(round), Percent: float64(i), Reason: name}
				err := stores[i%2].SaveRollout(t.Context(), st, round, &AuditEntry{Route: "items", At: t0.Add(time.Duration(round)), Actor: name, Action: "advance"})
				switch {
				case err == nil:
					wins.Add(1)
					winner.Store(name)
				case errors.Is(err, ErrConflict):
					conflicts.Add(1)
				default:
					t.Errorf("round %d, %s: %v", round, name, err)
				}
			})
		}
		close(ready)
		wg.Wait()
		if wins.Load() != 1 || conflicts.Load() != racers-1 {
			t.Fatalf("round %d: got %d wins and %d conflicts, want 1 and %d", round, wins.Load(), conflicts.Load(), racers-1)
		}
		got, err := stores[1].Rollouts(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].Version != round+1 || got[0].Reason != winner.Load() {
			t.Fatalf("round %d: got %+v, want version %d saved by %v", round, got, round+1, winner.Load())
		}
		audit, err := stores[0].Audit(t.Context(), "items", 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(audit) != int(round)+1 || audit[0].Actor != winner.Load() {
			t.Fatalf("round %d: audit has %d entries, newest by %q; want %d, by %v", round, len(audit), audit[0].Actor, round+1, winner.Load())
		}
	}
}

func testAudit(t *testing.T, open func() Store, _ *clock) {
	ctx := t.Context()
	s := open()
	versions := map[string]int64{}
	log := func(route, action string, at time.Time) {
		t.Helper()
		mustSave(t, s, RolloutState{Route: route}, versions[route], &AuditEntry{Route: route, At: at, Action: action})
		versions[route]++
	}
	log("a", "1", t0.Add(time.Second))
	log("b", "2", t0.Add(2*time.Second))
	log("a", "3", t0.Add(time.Second)) // ties with 1, inserted later: newer
	log("a", "4", time.Time{})         // the zero time is the oldest
	log("a", "5", t0)
	for i := range 101 {
		log("c", "c", t0.Add(time.Hour+time.Duration(i)))
	}
	cases := []struct {
		name  string
		route string
		limit int
		want  int      // entries
		first []string // actions of the first entries
	}{
		{"one route", "a", 0, 4, []string{"3", "1", "5", "4"}},
		{"one route, limited", "a", 2, 2, []string{"3", "1"}},
		{"every route", "", 0, 100, []string{"c"}},
		{"default limit", "c", 0, 100, nil},
		{"negative limit", "c", -1, 100, nil},
		{"high limit", "c", 200, 101, nil},
		{"unknown route", "nope", 0, 0, nil},
	}
	for _, tc := range cases {
		got, err := s.Audit(ctx, tc.route, tc.limit)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if len(got) != tc.want || !slices.Equal(actions(got[:len(tc.first)]), tc.first) {
			t.Errorf("%s: got %d entries starting %v, want %d starting %v", tc.name, len(got), actions(got[:min(len(got), 4)]), tc.want, tc.first)
		}
	}
	all, err := s.Audit(ctx, "", 200)
	if err != nil {
		t.Fatal(err)
	}
	if got := actions(all[101:]); !reflect.DeepEqual(got, []string{"2", "3", "1", "5", "4"}) {
		t.Errorf("every route: got %v after c's, want [2 3 1 5 4]", got)
	}

	if err := s.PruneAudit(ctx, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := s.PruneAudit(ctx, t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	got, err := s.Audit(ctx, "a", 0)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(actions(got), []string{"3", "1"}) {
		t.Errorf("a after prune: got %v, want [3 1]", actions(got))
	}
	if got, _ := s.Audit(ctx, "", 200); len(got) != 104 {
		t.Errorf("every route after prune: got %d, want 104", len(got))
	}
}

func dk(route, gen, endpoint, field string) DiffKey {
	return DiffKey{Route: route, Generation: gen, Endpoint: endpoint, Field: field}
}

func testDiffs(t *testing.T, open func() Store, _ *clock) {
	ctx := t.Context()
	r1, r2 := open(), open()
	addDiffs(t, r1, []DiffCount{
		{dk("items", "g1", epLower, ""), 10, 0, 5, 0},
		{dk("items", "g1", epLower, "body.price"), 10, 3, 5, 1},
		{dk("items", "g1", epLower, "body.price"), 2, 1, 0, 0}, // twice in one batch
		{dk("items", "g1", epLower, dirty), 1, 1, 0, 0},
		{dk("items", "g2", epLower, "body.price"), 100, 100, 100, 100},
		{dk("other", "g1", epLower, "body.price"), 100, 100, 100, 100},
	})
	addDiffs(t, r2, []DiffCount{
		{dk("items", "g1", epLower, "body.price"), 1, 1, 1, 1},
		{dk("items", "g1", epLower, dirtyFix), 1, 0, 1, 1}, // the same key, cleaned
		{dk("items", "g1", epUpper, "body"), 4, 0, 0, 0},
		{dk("items", "g1", epUpper, ""), 4, 0, 0, 0},
	})
	addDiffs(t, r1, nil)
	want := []DiffCount{
		{dk("items", "g1", epUpper, ""), 4, 0, 0, 0},
		{dk("items", "g1", epUpper, "body"), 4, 0, 0, 0},
		{dk("items", "g1", epLower, ""), 10, 0, 5, 0},
		{dk("items", "g1", epLower, "body.price"), 13, 5, 6, 2},
		{dk("items", "g1", epLower, dirtyFix), 2, 1, 1, 1},
	}
	for name, s := range map[string]Store{"replica 1": r1, "replica 2": r2} {
		got, err := s.Diffs(ctx, "items", "g1")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: diffs:\n got %v\nwant %v", name, got, want)
		}
	}
	if got, err := r1.Diffs(ctx, "items", "g9"); err != nil || got == nil || len(got) != 0 {
		t.Errorf("unknown generation: got %#v, %v; want an empty slice", got, err)
	}
}

func addDiffs(t *testing.T, s Store, counts []DiffCount) {
	t.Helper()
	if err := s.AddDiffs(t.Context(), counts); err != nil {
		t.Fatalf("add diffs: %v", err)
	}
}

func addSamples(t *testing.T, s Store, samples []DiffSample, keep int) {
	t.Helper()
	if err := s.AddDiffSamples(t.Context(), samples, keep); err != nil {
		t.Fatalf("add diff samples: %v", err)
	}
}

// sample is a sample of key with request id id at t0+at (at < 0: the zero
// time).
func sample(key DiffKey, id string, at time.Duration) DiffSample {
	s := DiffSample{DiffKey: key, RequestID: id, Method: "GET", Path: "/items/1", Primary: `{"a":1}`, Candidate: `{"a":2}`}
	if at >= 0 {
		s.At = t0.Add(at)
	}
	return s
}

func requestIDs(ss []DiffSample) []string {
	out := []string{}
	for _, s := range ss {
		out = append(out, s.RequestID)
	}
	return out
}

func testDiffSamples(t *testing.T, open func() Store, _ *clock) {
	ctx := t.Context()
	r1, r2 := open(), open()
	price := dk("items", "g1", epLower, "body.price")
	name := dk("items", "g1", epUpper, "body.name")
	many := dk("items", "g1", epUpper, "body.many")
	addSamples(t, r1, []DiffSample{
		sample(price, "1", time.Second),
		sample(price, "2", 3*time.Second),
		sample(price, "3", 2*time.Second),
		sample(name, "4", time.Second),
		sample(price, "5", 3*time.Second), // ties with 2, inserted later: newer
		sample(price, "6", -1),            // the zero time is the oldest
		sample(dk("items", "g2", epLower, "body.price"), "g2", time.Hour),
		sample(dk("other", "g1", epLower, "body.price"), "other", time.Hour),
	}, 3)
	addSamples(t, r2, []DiffSample{sample(price, "7", 0)}, 3) // older than the 3 kept: dropped at once
	addSamples(t, r2, nil, 1)
	steps := []struct {
		name  string
		field string
		limit int
		want  []string
	}{
		{"one field", "body.price", 0, []string{"5", "2", "3"}},
		{"any field", "", 0, []string{"5", "2", "3", "4"}},
		{"limited", "", 2, []string{"5", "2"}},
		{"unknown field", "body.nope", 0, []string{}},
	}
	for _, st := range steps {
		got, err := r1.DiffSamples(ctx, "items", "g1", st.field, st.limit)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if !reflect.DeepEqual(requestIDs(got), st.want) {
			t.Errorf("%s: got %v, want %v", st.name, requestIDs(got), st.want)
		}
	}

	// keep <= 0 keeps 5; a key not in the batch is left alone even when
	// it holds more than keep.
	addSamples(t, r1, []DiffSample{sample(price, "8", 10*time.Second), sample(price, "9", 11*time.Second), sample(price, "10", 12*time.Second)}, 0)
	addSamples(t, r1, []DiffSample{sample(dk("items", "g1", epLower, "body.other"), "11", 0)}, 1)
	if got, _ := r2.DiffSamples(ctx, "items", "g1", "body.price", 0); !reflect.DeepEqual(requestIDs(got), []string{"10", "9", "8", "5", "2"}) {
		t.Errorf("default keep: got %v, want [10 9 8 5 2]", requestIDs(got))
	}

	// limit <= 0 returns 20.
	var lots []DiffSample
	for i := range 25 {
		lots = append(lots, sample(many, fmt.Sprint(i), time.Duration(i)))
	}
	addSamples(t, r1, lots, 30)
	if got, _ := r1.DiffSamples(ctx, "items", "g1", "body.many", 0); len(got) != 20 || got[0].RequestID != "24" {
		t.Errorf("default limit: got %d starting %v, want 20 starting 24", len(got), requestIDs(got[:min(len(got), 1)]))
	}
	if got, _ := r1.DiffSamples(ctx, "items", "g1", "body.many", 25); len(got) != 25 {
		t.Errorf("limit 25: got %d, want 25", len(got))
	}

	// A sample round-trips whole; text is cleaned, times come back UTC.
	odd := DiffSample{
		DiffKey: dk("items", "g3", epLower, dirty), At: t0.Add(987654321 * time.Nanosecond).In(time.FixedZone("X", -7200)),
		RequestID: "r\x00id", Method: "GET", Path: "/items/\xff", Primary: "\"ä\"", Candidate: "\xc3",
	}
	addSamples(t, r2, []DiffSample{odd}, 1)
	want := DiffSample{
		DiffKey: dk("items", "g3", epLower, dirtyFix), At: t0.Add(987654321 * time.Nanosecond),
		RequestID: "r\uFFFDid", Method: "GET", Path: "/items/\uFFFD", Primary: "\"ä\"", Candidate: "\uFFFD",
	}
	for _, field := range []string{dirty, dirtyFix, ""} {
		got, err := r1.DiffSamples(ctx, "items", "g3", field, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, []DiffSample{want}) {
			t.Errorf("round trip, field %q:\n got %+v\nwant [%+v]", field, got, want)
		}
	}
}

func testPruneDiffs(t *testing.T, open func() Store, _ *clock) {
	ctx := t.Context()
	s := open()
	for _, k := range []DiffKey{
		dk("items", "g1", epLower, "body"), dk("items", "g2", epLower, "body"), dk("items", "g3", epLower, ""), dk("other", "g1", epLower, "body"),
	} {
		addDiffs(t, s, []DiffCount{{DiffKey: k, Compared: 1}})
		addSamples(t, s, []DiffSample{sample(k, k.Generation, 0)}, 0)
	}
	if err := s.PruneDiffs(ctx, "items", "g2"); err != nil {
		t.Fatal(err)
	}
	if err := s.PruneDiffs(ctx, "nothing", "g2"); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		route, gen string
		want       int
	}{
		{"items", "g1", 0}, {"items", "g2", 1}, {"items", "g3", 0}, {"other", "g1", 1},
	}
	for _, tc := range cases {
		counts, err := s.Diffs(ctx, tc.route, tc.gen)
		if err != nil {
			t.Fatal(err)
		}
		samples, err := s.DiffSamples(ctx, tc.route, tc.gen, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(counts) != tc.want || len(samples) != tc.want {
			t.Errorf("%s %s: got %d counts and %d samples, want %d of each", tc.route, tc.gen, len(counts), len(samples), tc.want)
		}
	}
}

// testDiffsConcurrent has writers on two replicas flush counts and samples
// of two routes (in different orders) while another prunes: no deadlock,
// every count arrives, and exactly keep samples stay per key.
func testDiffsConcurrent(t *testing.T, open func() Store, _ *clock) {
	const writers, flushes, keep = 6, 15, 3
	stores := []Store{open(), open()}
	a, b := dk("a", "g1", epLower, "body"), dk("b", "g1", epUpper, "")
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			s := stores[i%2]
			for j := range flushes {
				counts := []DiffCount{{DiffKey: a, Compared: 1, Differ: 1}, {DiffKey: b, Compared: 2, NoiseCompared: 1}}
				samples := []DiffSample{sample(a, "x", time.Duration(j)), sample(b, "y", time.Duration(j))}
				if i%2 == 1 {
					counts[0], counts[1] = counts[1], counts[0]
					samples[0], samples[1] = samples[1], samples[0]
				}
				if err := s.AddDiffs(t.Context(), counts); err != nil {
					t.Errorf("writer %d: %v", i, err)
					return
				}
				if err := s.AddDiffSamples(t.Context(), samples, keep); err != nil {
					t.Errorf("writer %d: %v", i, err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for range flushes {
			for _, route := range []string{"a", "b"} {
				if err := stores[1].PruneDiffs(t.Context(), route, "g1"); err != nil {
					t.Errorf("prune: %v", err)
					return
				}
			}
		}
	})
	wg.Wait()
	for _, tc := range []struct {
		key  DiffKey
		want DiffCount
	}{
		{a, DiffCount{DiffKey: a, Compared: writers * flushes, Differ: writers * flushes}},
		{b, DiffCount{DiffKey: b, Compared: 2 * writers * flushes, NoiseCompared: writers * flushes}},
	} {
		got, err := stores[0].Diffs(t.Context(), tc.key.Route, "g1")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, []DiffCount{tc.want}) {
			t.Errorf("%s: got %+v, want [%+v]", tc.key.Route, got, tc.want)
		}
		samples, err := stores[0].DiffSamples(t.Context(), tc.key.Route, "g1", "", 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(samples) != keep {
			t.Errorf("%s: got %d samples, want %d", tc.key.Route, len(samples), keep)
		}
	}
}
