package store

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"torii/internal/config"
	"torii/internal/testpg"
)

func TestPostgresConcurrentOpen(t *testing.T) {
	dsn := testpg.DSN(t)
	openConcurrently(t, 6, func() (Store, error) {
		return Open(t.Context(), config.Store{Postgres: dsn}, Options{})
	})
	// And once more, after the fact.
	s, err := OpenPostgres(t.Context(), dsn, Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	var n int
	if err := s.conns.with(t.Context(), func(c *pgx.Conn) error {
		return c.QueryRow(t.Context(), `SELECT count(*) FROM schema_migrations`).Scan(&n)
	}); err != nil {
		t.Fatal(err)
	}
	if n != len(postgresMigrations) {
		t.Errorf("schema_migrations has %d rows, want %d", n, len(postgresMigrations))
	}
}

// TestPostgresConcurrentAdd has two replicas flush overlapping buckets at
// once, many times: no deadlock, and every count arrives.
func TestPostgresConcurrentAdd(t *testing.T) {
	dsn := testpg.DSN(t)
	r1, err := OpenPostgres(t.Context(), dsn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r1.Close()
	r2, err := OpenPostgres(t.Context(), dsn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	const flushes = 20
	bs := buckets(50, 6)
	var wg sync.WaitGroup
	for _, s := range []Store{r1, r2, r1, r2} {
		wg.Go(func() {
			for range flushes {
				if err := s.Add(t.Context(), bs); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	got, err := r1.Sums(t.Context(), t0, []time.Duration{time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 50 {
		t.Fatalf("got %d series, want 50", len(got))
	}
	want := Counts{Total: 4 * flushes * 6 * 100, Errors: 4 * flushes * 6, Slow: 4 * flushes * 6 * 2}
	for s, c := range got {
		if c[0] != want {
			t.Errorf("%v: got %+v, want %+v", s, c[0], want)
		}
	}
}

func TestPostgresErrorsHidePassword(t *testing.T) {
	cases := []struct{ name, dsn string }{
		{"unreachable", "postgres://torii:s3cretpw@127.0.0.1:1/torii?sslmode=disable&connect_timeout=2"},
		{"unparsable url", "postgres://torii:s3cretpw@127.0.0.1:notaport/torii"},
		{"unparsable key=value", "host=127.0.0.1 password=s3cretpw port=x"},
	}
	for _, tc := range cases {
		_, err := Open(t.Context(), config.Store{Postgres: tc.dsn}, Options{})
		if err == nil {
			t.Errorf("%s: opened", tc.name)
			continue
		}
		if strings.Contains(err.Error(), "s3cretpw") {
			t.Errorf("%s: error shows the password: %v", tc.name, err)
		}
		if !strings.HasPrefix(err.Error(), "store: ") {
			t.Errorf("%s: got %q, want it to start with \"store: \"", tc.name, err)
		}
	}
}

// TestPostgresUpgrade has a replica of this torii open a database at
// schema version 1 that another replica keeps using: version 2 is applied,
// what version 1 held stays, and the old replica still works.
func TestPostgresUpgrade(t *testing.T) {
	ctx := t.Context()
	dsn := testpg.DSN(t)
	all := postgresMigrations
	postgresMigrations = all[:1] // no test of this package runs in parallel
	old, err := OpenPostgres(ctx, dsn, Options{})
	postgresMigrations = all
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	mustAdd(t, old, []Bucket{{Series: items, Start: t0.Add(-Resolution), Counts: Counts{Total: 9}}})

	s, err := OpenPostgres(ctx, dsn, Options{})
	if err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	defer s.Close()
	mustAdd(t, old, []Bucket{{Series: items, Start: t0.Add(-Resolution), Counts: Counts{Total: 1}}})
	if sums, err := s.Sums(ctx, t0, []time.Duration{time.Minute}); err != nil || sums[items][0].Total != 10 {
		t.Errorf("sums after upgrade: got %v, %v; want a total of 10", sums, err)
	}
	mustSave(t, s, RolloutState{Route: "items"}, 0, &AuditEntry{Route: "items", Action: "start"})
	addDiffs(t, s, []DiffCount{{DiffKey: dk("items", "g1", "GET /", ""), Compared: 1}})
}
