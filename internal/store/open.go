package store

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"time"

	"torii/internal/config"
)

// Options are what a persistent store needs besides its configuration.
type Options struct {
	// Now is the clock leases are measured against: TryLease compares
	// stored expiry times with Now(), never with the database's clock, so
	// tests can move time and replicas agree as far as their clocks do.
	// Nil: time.Now.
	Now func() time.Time
	// Logger receives one line per schema migration applied. Nil: nothing
	// is logged.
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Open opens the store cfg names and brings its schema up to date: the
// PostgreSQL database at cfg.Postgres when that is set, else the SQLite
// file at cfg.SQLite (created if missing). cfg.FlushInterval and
// cfg.Retention are the caller's to apply.
func Open(ctx context.Context, cfg config.Store, opts Options) (Store, error) {
	if cfg.Postgres != "" {
		return OpenPostgres(ctx, cfg.Postgres, opts)
	}
	if cfg.SQLite == "" {
		return nil, errors.New("store: open: neither sqlite nor postgres is set")
	}
	return OpenSQLite(ctx, cfg.SQLite, opts)
}

// bucketKey identifies one stored row of slo_buckets.
type bucketKey struct {
	start int64 // unix seconds, aligned to Resolution
	Series
}

// row is one bucket ready to be written.
type row struct {
	bucketKey
	Counts
}

// coalesce aligns the buckets, sums those that land on the same row and
// sorts the rows by (start, route, backend). Summing first keeps one upsert
// statement from touching a row twice (PostgreSQL refuses that); a fixed
// order makes concurrent writers lock rows in the same order, so two
// replicas flushing at once cannot deadlock.
func coalesce(bs []Bucket) []row {
	idx := make(map[bucketKey]int, len(bs))
	rows := make([]row, 0, len(bs))
	for _, b := range bs {
		k := bucketKey{start: Align(b.Start).Unix(), Series: b.Series}
		if i, ok := idx[k]; ok {
			rows[i].Counts = rows[i].Counts.Add(b.Counts)
			continue
		}
		idx[k] = len(rows)
		rows = append(rows, row{bucketKey: k, Counts: b.Counts})
	}
	slices.SortFunc(rows, func(a, b row) int {
		return cmp.Or(cmp.Compare(a.start, b.start), cmp.Compare(a.Route, b.Route), cmp.Compare(a.Backend, b.Backend))
	})
	return rows
}

// sumsQuery returns the query Sums runs and its arguments: one scan of the
// longest window, with one CASE sum per window, so a 30-day window and a
// 5-minute one cost one range scan of the primary key (which leads with
// start), not two. param(i) spells the i-th placeholder (1-based).
//
// Cost: the scan reads every bucket row of the longest window, 8,640 rows
// per series and day at 10 s resolution, and groups them (measured: about
// 0.8 µs a row on SQLite, 0.3 µs on PostgreSQL; BenchmarkSQLiteSums). A
// 6-hour window over 1,000 series is 2.2 million rows, a second or so; a
// 30-day one is 259 million rows, minutes on SQLite. Callers should ask for
// period-long windows rarely (the error budget changes slowly); coarser
// roll-up tables would fix this and are not built yet.
func sumsQuery(now time.Time, windows []time.Duration, param func(int) string) (string, []any) {
	end := now.Unix()
	lower := end
	var q strings.Builder
	args := []any{}
	arg := func(v int64) string {
		args = append(args, v)
		return param(len(args))
	}
	q.WriteString("SELECT route, backend")
	for _, w := range windows {
		from := end - int64(w/time.Second)
		lower = min(lower, from)
		p := arg(from)
		for _, col := range []string{"total", "errors", "slow"} {
			// CAST: PostgreSQL's sum(bigint) is numeric.
			q.WriteString(", CAST(sum(CASE WHEN start >= " + p + " THEN " + col + " ELSE 0 END) AS bigint)")
		}
	}
	q.WriteString(" FROM slo_buckets WHERE start >= " + arg(lower) + " AND start < " + arg(end) + " GROUP BY route, backend")
	return q.String(), args
}

// scanSums reads one row of sumsQuery's result.
func scanSums(scan func(dest ...any) error, n int) (Series, []Counts, error) {
	var s Series
	sums := make([]Counts, n)
	dest := make([]any, 0, 2+3*n)
	dest = append(dest, &s.Route, &s.Backend)
	for i := range sums {
		dest = append(dest, &sums[i].Total, &sums[i].Errors, &sums[i].Slow)
	}
	err := scan(dest...)
	return s, sums, err
}

// unixNano and fromUnixNano store a time as nanoseconds since the epoch,
// the zero time as NULL, so AlertState.Since round-trips exactly.
func unixNano(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	n := t.UnixNano()
	return &n
}

func fromUnixNano(n *int64) time.Time {
	if n == nil {
		return time.Time{}
	}
	return time.Unix(0, *n).UTC()
}
