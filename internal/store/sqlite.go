package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver, pure Go
)

// SQLite is a Store in one SQLite file: the embedded default for a single
// torii. The file is in WAL mode with synchronous=NORMAL: a committed
// transaction survives a crash of the process (kill -9), and only a power
// loss or OS crash can lose the last ones. Writes go through one
// connection, so they never contend with each other inside the process;
// reads use a pool of their own and run beside them. Several processes may
// open the same file (they wait for each other's writes for up to
// busyTimeout), but only one torii should write SLO counts to it.
type SQLite struct {
	now func() time.Time
	w   *sql.DB // one connection; every write
	r   *sql.DB // read-only pool; every read
}

// busyTimeout is how long a statement waits for another connection's (or
// process's) write lock before failing with SQLITE_BUSY.
const busyTimeout = 5 * time.Second

// OpenSQLite opens (creating if missing) the SQLite database at path and
// migrates its schema. The file's directory must exist.
func OpenSQLite(ctx context.Context, path string, opts Options) (*SQLite, error) {
	opts = opts.withDefaults()
	s := &SQLite{now: opts.Now}
	var err error
	// _txlock=immediate: every transaction of the writer takes the write
	// lock at BEGIN, so a read-then-write one (the migration) cannot fail
	// with SQLITE_BUSY halfway when another process writes too.
	if s.w, err = openSQLiteDB(path, "&_txlock=immediate&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"); err != nil {
		return nil, err
	}
	s.w.SetMaxOpenConns(1)
	if err := s.migrate(ctx, opts); err != nil {
		s.w.Close()
		return nil, fmt.Errorf("store: open sqlite %q: %w", path, err)
	}
	// The readers open after the migration: journal_mode=WAL is then a
	// property of the file, and query_only keeps them honest.
	if s.r, err = openSQLiteDB(path, "&_pragma=query_only(1)"); err != nil {
		s.w.Close()
		return nil, err
	}
	s.r.SetMaxOpenConns(4)
	if err := s.r.PingContext(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("store: open sqlite %q: %w", path, err)
	}
	return s, nil
}

// openSQLiteDB opens a database/sql handle on path with busy_timeout and
// the extra DSN parameters (each starting with "&").
func openSQLiteDB(path, params string) (*sql.DB, error) {
	// A file: URI, so that a path holding '?' or '#' stays a path.
	p := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(filepath.ToSlash(path))
	if strings.HasPrefix(p, "/") {
		p = "//" + p // file:///abs/path: an empty authority
	}
	dsn := fmt.Sprintf("file:%s?_pragma=busy_timeout(%d)%s", p, busyTimeout.Milliseconds(), params)
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("store: open sqlite %q: %w", path, err)
	}
	return db, nil
}

func (s *SQLite) migrate(ctx context.Context, opts Options) error {
	// BEGIN IMMEDIATE (see _txlock): a second process opening the same
	// file waits here until the first has migrated, then finds nothing to do.
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER NOT NULL PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at TEXT    NOT NULL DEFAULT CURRENT_TIMESTAMP
	) STRICT`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	applied, err := sqliteVersions(ctx, tx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for _, m := range pending(sqliteMigrations, applied, opts.Logger, "sqlite") {
		for _, stmt := range m.stmts {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return migrationError(m, err)
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name) VALUES (?, ?)`, m.version, m.name); err != nil {
			return migrationError(m, err)
		}
		opts.Logger.Info("store: applied migration", "backend", "sqlite", "version", m.version, "name", m.name)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: commit: %w", err)
	}
	return nil
}

func sqliteVersions(ctx context.Context, tx *sql.Tx) (map[int]bool, error) {
	rows, err := tx.QueryContext(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	applied := map[int]bool{}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		applied[v] = true
	}
	return applied, rows.Err()
}

// Add implements Store: one transaction, one prepared upsert per row.
func (s *SQLite) Add(ctx context.Context, bs []Bucket) error {
	if len(bs) == 0 {
		return nil
	}
	if err := s.add(ctx, coalesce(bs)); err != nil {
		return fmt.Errorf("store: add buckets: %w", err)
	}
	return nil
}

func (s *SQLite) add(ctx context.Context, rows []row) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO slo_buckets (start, route, backend, total, errors, slow)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (start, route, backend) DO UPDATE SET
			total = slo_buckets.total + excluded.total,
			errors = slo_buckets.errors + excluded.errors,
			slow = slo_buckets.slow + excluded.slow`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, r := range rows {
		if _, err := stmt.ExecContext(ctx, r.start, r.Route, r.Backend, r.Total, r.Errors, r.Slow); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// Sums implements Store.
func (s *SQLite) Sums(ctx context.Context, now time.Time, windows []time.Duration) (map[Series][]Counts, error) {
	out := map[Series][]Counts{}
	if len(windows) == 0 {
		return out, nil
	}
	q, args := sumsQuery(now, windows, func(i int) string { return "?" + strconv.Itoa(i) })
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: sums: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		series, sums, err := scanSums(rows.Scan, len(windows))
		if err != nil {
			return nil, fmt.Errorf("store: sums: %w", err)
		}
		out[series] = sums
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: sums: %w", err)
	}
	return out, nil
}

// Alerts implements Store. They come sorted by key.
func (s *SQLite) Alerts(ctx context.Context) ([]AlertState, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT "key", firing, since, notified, labels, annotations FROM alerts ORDER BY "key"`)
	if err != nil {
		return nil, fmt.Errorf("store: alerts: %w", err)
	}
	defer rows.Close()
	out := []AlertState{}
	for rows.Next() {
		var (
			a            AlertState
			since        *int64
			labels, anns string
		)
		if err := rows.Scan(&a.Key, &a.Firing, &since, &a.Notified, &labels, &anns); err != nil {
			return nil, fmt.Errorf("store: alerts: %w", err)
		}
		a.Since = fromUnixNano(since)
		if err := decodeLabels(a.Key, labels, anns, &a); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: alerts: %w", err)
	}
	return out, nil
}

// SaveAlert implements Store.
func (s *SQLite) SaveAlert(ctx context.Context, a AlertState) error {
	labels, anns, err := encodeLabels(a)
	if err != nil {
		return err
	}
	_, err = s.w.ExecContext(ctx, `INSERT INTO alerts ("key", firing, since, notified, labels, annotations)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT ("key") DO UPDATE SET
			firing = excluded.firing, since = excluded.since, notified = excluded.notified,
			labels = excluded.labels, annotations = excluded.annotations`,
		a.Key, a.Firing, unixNano(a.Since), a.Notified, labels, anns)
	if err != nil {
		return fmt.Errorf("store: save alert %q: %w", a.Key, err)
	}
	return nil
}

// TryLease implements Store. Expiry is judged by Options.Now.
func (s *SQLite) TryLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	now := s.now()
	var got string
	err := s.w.QueryRowContext(ctx, `INSERT INTO leases (name, holder, until) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
			WHERE leases.until <= ? OR leases.holder = excluded.holder
		RETURNING holder`,
		name, holder, now.Add(ttl).UnixNano(), now.UnixNano()).Scan(&got)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil // held by another, unexpired
	case err != nil:
		return false, fmt.Errorf("store: lease %q: %w", name, err)
	}
	return got == holder, nil
}

// Prune implements Store.
func (s *SQLite) Prune(ctx context.Context, before time.Time) error {
	if _, err := s.w.ExecContext(ctx, `DELETE FROM slo_buckets WHERE start < ?`, before.Unix()); err != nil {
		return fmt.Errorf("store: prune buckets: %w", err)
	}
	return nil
}

// inTx runs fn in a transaction of the writer and commits if fn succeeds.
func (s *SQLite) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// Rollouts implements Store.
func (s *SQLite) Rollouts(ctx context.Context) ([]RolloutState, error) {
	out, err := sqliteCollect(ctx, s.r, scanRollout, `SELECT `+rolloutColumns+` FROM rollouts ORDER BY route`)
	if err != nil {
		return nil, fmt.Errorf("store: rollouts: %w", err)
	}
	return out, nil
}

// SaveRollout implements Store. The conditional statements, not a read
// before the write, decide: the writer's transactions begin IMMEDIATE, but
// another process may share the file.
func (s *SQLite) SaveRollout(ctx context.Context, st RolloutState, expect int64, audit *AuditEntry) error {
	st, audit, err := prepareRollout(st, expect, audit)
	if err != nil {
		return err
	}
	args := []any{st.Route, st.Generation, st.Phase, st.Step, st.Percent, unixNano(st.StepStarted), unixNano(st.Updated), st.Reason, st.Version}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		var (
			res sql.Result
			err error
		)
		if expect == 0 {
			res, err = tx.ExecContext(ctx, `INSERT INTO rollouts (`+rolloutColumns+`) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
				ON CONFLICT (route) DO NOTHING`, args...)
		} else {
			res, err = tx.ExecContext(ctx, `UPDATE rollouts SET generation = ?2, phase = ?3, step = ?4, percent = ?5,
					step_started = ?6, updated = ?7, reason = ?8, version = ?9
				WHERE route = ?1 AND version = ?10`, append(args, expect)...)
		}
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return conflict(st.Route, expect)
		}
		if audit == nil {
			return nil
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO rollout_audit (`+auditColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			audit.Route, audit.Generation, unixNano(audit.At), audit.Actor, audit.Action, audit.FromPercent, audit.ToPercent, audit.Reason)
		return err
	})
	switch {
	case errors.Is(err, ErrConflict):
		return err
	case err != nil:
		return fmt.Errorf("store: save rollout %q: %w", st.Route, err)
	}
	return nil
}

// DeleteRollout implements Store.
func (s *SQLite) DeleteRollout(ctx context.Context, route string) error {
	if _, err := s.w.ExecContext(ctx, `DELETE FROM rollouts WHERE route = ?`, text(route)); err != nil {
		return fmt.Errorf("store: delete rollout %q: %w", route, err)
	}
	return nil
}

// Audit implements Store.
func (s *SQLite) Audit(ctx context.Context, route string, limit int) ([]AuditEntry, error) {
	q, args := `SELECT `+auditColumns+` FROM rollout_audit`, []any{}
	if route != "" {
		q, args = q+` WHERE route = ?`, append(args, text(route))
	}
	// DESC puts NULL (the zero time) last.
	q += ` ORDER BY at DESC, id DESC LIMIT ?`
	out, err := sqliteCollect(ctx, s.r, scanAudit, q, append(args, orDefault(limit, defaultAuditLimit))...)
	if err != nil {
		return nil, fmt.Errorf("store: audit: %w", err)
	}
	return out, nil
}

// PruneAudit implements Store.
func (s *SQLite) PruneAudit(ctx context.Context, before time.Time) error {
	if before.IsZero() {
		return nil // nothing is before the zero time
	}
	if _, err := s.w.ExecContext(ctx, `DELETE FROM rollout_audit WHERE at IS NULL OR at < ?`, before.UnixNano()); err != nil {
		return fmt.Errorf("store: prune audit: %w", err)
	}
	return nil
}

// AddDiffs implements Store: one transaction, one prepared upsert per key.
func (s *SQLite) AddDiffs(ctx context.Context, counts []DiffCount) error {
	if len(counts) == 0 {
		return nil
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO diff_counts (`+diffColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (route, generation, endpoint, field) DO UPDATE SET
				compared = diff_counts.compared + excluded.compared,
				differ = diff_counts.differ + excluded.differ,
				noise_compared = diff_counts.noise_compared + excluded.noise_compared,
				noise = diff_counts.noise + excluded.noise`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, c := range coalesceDiffs(counts) {
			if _, err := stmt.ExecContext(ctx, c.Route, c.Generation, c.Endpoint, c.Field, c.Compared, c.Differ, c.NoiseCompared, c.Noise); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: add diffs: %w", err)
	}
	return nil
}

// Diffs implements Store.
func (s *SQLite) Diffs(ctx context.Context, route, generation string) ([]DiffCount, error) {
	out, err := sqliteCollect(ctx, s.r, scanDiff, `SELECT `+diffColumns+` FROM diff_counts
		WHERE route = ? AND generation = ? ORDER BY endpoint, field`, text(route), text(generation))
	if err != nil {
		return nil, fmt.Errorf("store: diffs of %q generation %q: %w", route, generation, err)
	}
	return out, nil
}

// AddDiffSamples implements Store.
func (s *SQLite) AddDiffSamples(ctx context.Context, samples []DiffSample, keep int) error {
	if len(samples) == 0 {
		return nil
	}
	samples, keys := cleanSamples(samples)
	keep = orDefault(keep, defaultSampleKeep)
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO diff_samples (`+sampleColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, x := range samples {
			if _, err := stmt.ExecContext(ctx, x.Route, x.Generation, x.Endpoint, x.Field, unixNano(x.At),
				x.RequestID, x.Method, x.Path, x.Primary, x.Candidate); err != nil {
				return err
			}
		}
		trim, err := tx.PrepareContext(ctx, `DELETE FROM diff_samples
			WHERE route = ?1 AND generation = ?2 AND endpoint = ?3 AND field = ?4 AND id NOT IN (
				SELECT id FROM diff_samples
				WHERE route = ?1 AND generation = ?2 AND endpoint = ?3 AND field = ?4
				ORDER BY at DESC, id DESC LIMIT ?5)`)
		if err != nil {
			return err
		}
		defer trim.Close()
		for _, k := range keys {
			if _, err := trim.ExecContext(ctx, k.Route, k.Generation, k.Endpoint, k.Field, keep); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: add diff samples: %w", err)
	}
	return nil
}

// DiffSamples implements Store.
func (s *SQLite) DiffSamples(ctx context.Context, route, generation, field string, limit int) ([]DiffSample, error) {
	q, args := `SELECT `+sampleColumns+` FROM diff_samples WHERE route = ? AND generation = ?`, []any{text(route), text(generation)}
	if field != "" {
		q, args = q+` AND field = ?`, append(args, text(field))
	}
	q += ` ORDER BY at DESC, id DESC LIMIT ?`
	out, err := sqliteCollect(ctx, s.r, scanSample, q, append(args, orDefault(limit, defaultSampleLimit))...)
	if err != nil {
		return nil, fmt.Errorf("store: diff samples of %q generation %q: %w", route, generation, err)
	}
	return out, nil
}

// PruneDiffs implements Store.
func (s *SQLite) PruneDiffs(ctx context.Context, route, keepGeneration string) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		for _, table := range []string{"diff_counts", "diff_samples"} {
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE route = ? AND generation <> ?`, text(route), text(keepGeneration)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: prune diffs of %q: %w", route, err)
	}
	return nil
}

// sqliteCollect runs query on db and returns the rows scan reads, an
// empty slice if there are none.
func sqliteCollect[T any](ctx context.Context, db *sql.DB, scan func(func(...any) error) (T, error), query string, args ...any) ([]T, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows.Scan)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// Close implements Store.
func (s *SQLite) Close() error {
	var errs []error
	if s.r != nil {
		errs = append(errs, s.r.Close())
	}
	if s.w != nil {
		errs = append(errs, s.w.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("store: close sqlite: %w", err)
	}
	return nil
}

// encodeLabels and decodeLabels store an alert's labels and annotations as
// JSON objects; a nil map is JSON null and comes back nil.
func encodeLabels(a AlertState) (labels, anns string, err error) {
	l, err := json.Marshal(a.Labels)
	if err != nil {
		return "", "", fmt.Errorf("store: save alert %q: labels: %w", a.Key, err)
	}
	n, err := json.Marshal(a.Annotations)
	if err != nil {
		return "", "", fmt.Errorf("store: save alert %q: annotations: %w", a.Key, err)
	}
	return string(l), string(n), nil
}

func decodeLabels(key, labels, anns string, a *AlertState) error {
	if err := json.Unmarshal([]byte(labels), &a.Labels); err != nil {
		return fmt.Errorf("store: alerts: %q: labels: %w", key, err)
	}
	if err := json.Unmarshal([]byte(anns), &a.Annotations); err != nil {
		return fmt.Errorf("store: alerts: %q: annotations: %w", key, err)
	}
	return nil
}

var _ Store = (*SQLite)(nil)
