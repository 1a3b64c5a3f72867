package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

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

// storedTime returns t as every backend gives it back: UTC, at nanosecond
// precision, without a monotonic clock reading, the zero time as zero.
// Memory stores times through it to stay equivalent to the databases.
func storedTime(t time.Time) time.Time { return fromUnixNano(unixNano(t)) }

// The limits of the rollout and diff methods when the caller gives none.
const (
	defaultAuditLimit  = 100 // Audit
	defaultSampleKeep  = 5   // AddDiffSamples
	defaultSampleLimit = 20  // DiffSamples
)

// orDefault returns n, or def if n <= 0.
func orDefault(n, def int) int {
	if n <= 0 {
		return def
	}
	return n
}

// text returns s as valid UTF-8 without NUL bytes, invalid bytes and NULs
// replaced with U+FFFD: PostgreSQL's text refuses both, and every backend
// stores the same. A string already fit comes back as is, unallocated.
func text(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

func (k DiffKey) clean() DiffKey {
	return DiffKey{Route: text(k.Route), Generation: text(k.Generation), Endpoint: text(k.Endpoint), Field: text(k.Field)}
}

func compareDiffKeys(a, b DiffKey) int {
	return cmp.Or(strings.Compare(a.Route, b.Route), strings.Compare(a.Generation, b.Generation),
		strings.Compare(a.Endpoint, b.Endpoint), strings.Compare(a.Field, b.Field))
}

// prepareRollout returns st and audit (a copy) as SaveRollout stores them:
// text cleaned, times as stored, st.Version set to expect+1. Non-finite
// percents are refused: SQLite would store NaN as NULL.
func prepareRollout(st RolloutState, expect int64, audit *AuditEntry) (RolloutState, *AuditEntry, error) {
	st.Route, st.Generation, st.Phase, st.Reason = text(st.Route), text(st.Generation), text(st.Phase), text(st.Reason)
	st.StepStarted, st.Updated = storedTime(st.StepStarted), storedTime(st.Updated)
	st.Version = expect + 1
	if !finite(st.Percent) {
		return st, nil, fmt.Errorf("store: save rollout %q: percent %v is not finite", st.Route, st.Percent)
	}
	if audit == nil {
		return st, nil, nil
	}
	a := *audit
	a.Route, a.Generation, a.Actor, a.Action, a.Reason = text(a.Route), text(a.Generation), text(a.Actor), text(a.Action), text(a.Reason)
	a.At = storedTime(a.At)
	if !finite(a.FromPercent) || !finite(a.ToPercent) {
		return st, nil, fmt.Errorf("store: save rollout %q: audit percents %v, %v are not finite", st.Route, a.FromPercent, a.ToPercent)
	}
	return st, &a, nil
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// conflict is SaveRollout's error when route's stored version is not
// expect.
func conflict(route string, expect int64) error {
	return fmt.Errorf("%w: route %q is not at version %d", ErrConflict, route, expect)
}

// coalesceDiffs cleans the keys, sums the counts that land on the same key
// and sorts them by key, for the same reasons as coalesce.
func coalesceDiffs(counts []DiffCount) []DiffCount {
	idx := make(map[DiffKey]int, len(counts))
	out := make([]DiffCount, 0, len(counts))
	for _, c := range counts {
		c.DiffKey = c.DiffKey.clean()
		i, ok := idx[c.DiffKey]
		if !ok {
			idx[c.DiffKey] = len(out)
			out = append(out, c)
			continue
		}
		o := &out[i]
		o.Compared += c.Compared
		o.Differ += c.Differ
		o.NoiseCompared += c.NoiseCompared
		o.Noise += c.Noise
	}
	slices.SortFunc(out, func(a, b DiffCount) int { return compareDiffKeys(a.DiffKey, b.DiffKey) })
	return out
}

// cleanSamples returns copies of the samples as AddDiffSamples stores
// them, in order, and their distinct keys, sorted.
func cleanSamples(samples []DiffSample) ([]DiffSample, []DiffKey) {
	out := make([]DiffSample, len(samples))
	var keys []DiffKey
	for i, s := range samples {
		s.DiffKey = s.DiffKey.clean()
		s.At = storedTime(s.At)
		s.RequestID, s.Method, s.Path = text(s.RequestID), text(s.Method), text(s.Path)
		s.Primary, s.Candidate = text(s.Primary), text(s.Candidate)
		out[i] = s
		keys = append(keys, s.DiffKey)
	}
	slices.SortFunc(keys, compareDiffKeys)
	return out, slices.Compact(keys)
}

// The columns the rollout and diff queries select, in the order their
// scan functions read them: one list for both SQL backends.
const (
	rolloutColumns = `route, generation, phase, step, percent, step_started, updated, reason, version`
	auditColumns   = `route, generation, at, actor, action, from_percent, to_percent, reason`
	diffColumns    = `route, generation, endpoint, field, compared, differ, noise_compared, noise`
	sampleColumns  = `route, generation, endpoint, field, at, request_id, method, path, primary_value, candidate_value`
)

func scanRollout(scan func(dest ...any) error) (RolloutState, error) {
	var (
		st               RolloutState
		started, updated *int64
	)
	err := scan(&st.Route, &st.Generation, &st.Phase, &st.Step, &st.Percent, &started, &updated, &st.Reason, &st.Version)
	st.StepStarted, st.Updated = fromUnixNano(started), fromUnixNano(updated)
	return st, err
}

func scanAudit(scan func(dest ...any) error) (AuditEntry, error) {
	var (
		a  AuditEntry
		at *int64
	)
	err := scan(&a.Route, &a.Generation, &at, &a.Actor, &a.Action, &a.FromPercent, &a.ToPercent, &a.Reason)
	a.At = fromUnixNano(at)
	return a, err
}

func scanDiff(scan func(dest ...any) error) (DiffCount, error) {
	var c DiffCount
	err := scan(&c.Route, &c.Generation, &c.Endpoint, &c.Field, &c.Compared, &c.Differ, &c.NoiseCompared, &c.Noise)
	return c, err
}

func scanSample(scan func(dest ...any) error) (DiffSample, error) {
	var (
		s  DiffSample
		at *int64
	)
	err := scan(&s.Route, &s.Generation, &s.Endpoint, &s.Field, &at, &s.RequestID, &s.Method, &s.Path, &s.Primary, &s.Candidate)
	s.At = fromUnixNano(at)
	return s, err
}
