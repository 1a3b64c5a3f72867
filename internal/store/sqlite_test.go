package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"torii/internal/config"
)

func TestOpenSQLiteByConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "odd?name#1%.db")
	s, err := Open(t.Context(), config.Store{SQLite: path}, Options{})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer s.Close()
	if _, ok := s.(*SQLite); !ok {
		t.Errorf("got %T, want *SQLite", s)
	}
	if matches, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "odd?name#1%.db")); len(matches) != 1 {
		t.Errorf("file %q not created (found %v)", path, matches)
	}
}

func TestOpenErrors(t *testing.T) {
	cases := []struct {
		name string
		cfg  config.Store
	}{
		{"nothing configured", config.Store{}},
		{"missing directory", config.Store{SQLite: filepath.Join(t.TempDir(), "no", "such", "dir", "torii.db")}},
	}
	for _, tc := range cases {
		s, err := Open(t.Context(), tc.cfg, Options{})
		if err == nil {
			s.Close()
			t.Errorf("%s: opened", tc.name)
		}
	}
}

// TestSQLiteReopen: what was written survives Close and Open.
func TestSQLiteReopen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "torii.db")
	clk := &clock{t: t0}
	s, err := OpenSQLite(ctx, path, Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	mustAdd(t, s, []Bucket{{Series: items, Start: t0.Add(-Resolution), Counts: Counts{Total: 9, Errors: 2}}})
	alert := AlertState{Key: "k", Firing: true, Since: t0, Labels: map[string]string{"a": "b"}}
	if err := s.SaveAlert(ctx, alert); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.TryLease(ctx, "l", "r1", time.Minute); !ok || err != nil {
		t.Fatalf("lease: got %v, %v", ok, err)
	}
	rollout := RolloutState{Route: "items", Generation: "g1", Phase: "progressing", Step: 1, Percent: 5, StepStarted: t0, Updated: t0, Reason: "gate passed"}
	mustSave(t, s, rollout, 0, &AuditEntry{Route: "items", Generation: "g1", At: t0, Actor: "rollout", Action: "start"})
	diff := DiffCount{DiffKey: dk("items", "g1", epLower, "body.price"), Compared: 3, Differ: 1}
	addDiffs(t, s, []DiffCount{diff})
	addSamples(t, s, []DiffSample{sample(diff.DiffKey, "r1", 0)}, 0)
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}

	s, err = OpenSQLite(ctx, path, Options{Now: clk.Now})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	sums, err := s.Sums(ctx, t0, []time.Duration{time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if want := (map[Series][]Counts{items: {{Total: 9, Errors: 2}}}); !reflect.DeepEqual(sums, want) {
		t.Errorf("sums: got %v, want %v", sums, want)
	}
	alerts, err := s.Alerts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(alerts) != 1 || !alerts[0].Since.Equal(t0) || alerts[0].Labels["a"] != "b" || !alerts[0].Firing {
		t.Errorf("alerts: got %+v, want [%+v]", alerts, alert)
	}
	if ok, _ := s.TryLease(ctx, "l", "r2", time.Minute); ok {
		t.Error("lease: r2 took r1's unexpired lease after reopen")
	}
	rollout.Version = 1
	checkRollouts(t, "after reopen", s, []RolloutState{rollout})
	if err := s.SaveRollout(ctx, rollout, 0, nil); !errors.Is(err, ErrConflict) {
		t.Errorf("save over version 1 as new after reopen: got %v, want an ErrConflict", err)
	}
	if audit, err := s.Audit(ctx, "items", 0); err != nil || len(audit) != 1 {
		t.Errorf("audit after reopen: got %v, %v; want 1 entry", audit, err)
	}
	if got, err := s.Diffs(ctx, "items", "g1"); err != nil || !reflect.DeepEqual(got, []DiffCount{diff}) {
		t.Errorf("diffs after reopen: got %v, %v; want [%v]", got, err, diff)
	}
	if got, err := s.DiffSamples(ctx, "items", "g1", "", 0); err != nil || len(got) != 1 {
		t.Errorf("diff samples after reopen: got %v, %v; want 1", got, err)
	}
}

// TestSQLiteUpgrade opens a file written at schema version 1 with this
// torii: version 2 is applied and what version 1 held stays.
func TestSQLiteUpgrade(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "torii.db")
	all := sqliteMigrations
	sqliteMigrations = all[:1] // no test of this package runs in parallel
	s, err := OpenSQLite(ctx, path, Options{})
	sqliteMigrations = all
	if err != nil {
		t.Fatal(err)
	}
	mustAdd(t, s, []Bucket{{Series: items, Start: t0.Add(-Resolution), Counts: Counts{Total: 9}}})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = OpenSQLite(ctx, path, Options{})
	if err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	defer s.Close()
	if sums, err := s.Sums(ctx, t0, []time.Duration{time.Minute}); err != nil || sums[items][0].Total != 9 {
		t.Errorf("sums after upgrade: got %v, %v; want a total of 9", sums, err)
	}
	mustSave(t, s, RolloutState{Route: "items"}, 0, &AuditEntry{Route: "items", Action: "start"})
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil || n != 2 {
		t.Errorf("schema_migrations: got %d rows (%v), want 2", n, err)
	}
}

// TestSQLiteMigrationsIdempotent opens one file many times, some at once.
func TestSQLiteMigrationsIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "torii.db")
	openConcurrently(t, 4, func() (Store, error) { return OpenSQLite(t.Context(), path, Options{}) })
	s, err := OpenSQLite(t.Context(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var n int
	if err := s.r.QueryRowContext(t.Context(), `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != len(sqliteMigrations) {
		t.Errorf("schema_migrations has %d rows, want %d", n, len(sqliteMigrations))
	}
	var mode string
	if err := s.r.QueryRowContext(t.Context(), `PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode: got %q (%v), want wal", mode, err)
	}
}

// BenchmarkSQLiteAdd measures one flush of 1,000 buckets (1,000 series,
// one bucket each), the size a busy replica writes every 10 s.
func BenchmarkSQLiteAdd(b *testing.B) {
	s, err := OpenSQLite(context.Background(), filepath.Join(b.TempDir(), "torii.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	bs := buckets(1000, 1)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		for j := range bs {
			bs[j].Start = t0.Add(time.Duration(i) * Resolution)
		}
		mustAdd(b, s, bs)
	}
}

// BenchmarkSQLiteSums reads the SLO windows over 100 series × 6 hours of
// buckets (216,000 rows); the cost grows with rows in the longest window.
func BenchmarkSQLiteSums(b *testing.B) {
	s, err := OpenSQLite(context.Background(), filepath.Join(b.TempDir(), "torii.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	mustAdd(b, s, buckets(100, 6*360))
	windows := []time.Duration{5 * time.Minute, 30 * time.Minute, time.Hour, 6 * time.Hour}
	b.ReportAllocs()
	for b.Loop() {
		got, err := s.Sums(context.Background(), t0, windows)
		if err != nil || len(got) != 100 {
			b.Fatalf("sums: %d series, %v", len(got), err)
		}
	}
}

// openConcurrently opens (and closes) n stores at once with open, as
// replicas starting together do, and fails t for each that fails.
func openConcurrently(t *testing.T, n int, open func() (Store, error)) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			s, err := open()
			if err != nil {
				errs <- fmt.Errorf("open %d: %w", i, err)
				return
			}
			errs <- s.Close()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}
