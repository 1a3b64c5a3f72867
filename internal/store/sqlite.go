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
	r   *sql.DB // read-only pool; Sums and Alerts
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
