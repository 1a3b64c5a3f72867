package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Postgres is a Store in a PostgreSQL database, shared by several torii
// replicas: each adds its own counts to the same buckets, and leases let
// one replica alone send each alert. Tables live in the first schema of
// the connection's search_path (set it with ?search_path=NAME in the DSN).
//
// Statements are prepared and cached per connection; behind a PgBouncer in
// transaction mode, add default_query_exec_mode=exec to the DSN.
type Postgres struct {
	now   func() time.Time
	conns *conns
}

// postgresConns is how many connections a Postgres keeps at most. A
// replica writes once per flush interval and reads once per evaluation, so
// a few suffice; a slow Sums never holds up Add or TryLease.
const postgresConns = 4

// migrationLock is the pg_advisory_xact_lock key that serializes schema
// migrations of replicas starting at once. Any constant would do; this is
// "torii" in ASCII.
const migrationLock = 0x746f726969

// OpenPostgres connects to the PostgreSQL database at dsn (a URL or
// key=value connection string, as libpq takes) and migrates its schema.
// Errors never include the password.
func OpenPostgres(ctx context.Context, dsn string, opts Options) (*Postgres, error) {
	opts = opts.withDefaults()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// pgx redacts passwords from what it can parse, but an unparsable
		// string may hide one anywhere: say only what went wrong.
		return nil, errors.New("store: open postgres: invalid connection string")
	}
	p := &Postgres{now: opts.Now, conns: newConns(cfg, postgresConns)}
	if err := p.migrate(ctx, opts); err != nil {
		p.Close()
		return nil, scrub(fmt.Errorf("store: open postgres: %w", err), cfg.Password)
	}
	return p, nil
}

func (p *Postgres) migrate(ctx context.Context, opts Options) error {
	return p.conns.with(ctx, func(c *pgx.Conn) error {
		return pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
			// Held to commit: a second replica starting at once waits,
			// then sees the versions the first applied.
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrationLock)); err != nil {
				return fmt.Errorf("migrate: lock: %w", err)
			}
			if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
				version    integer     NOT NULL PRIMARY KEY,
				name       text        NOT NULL,
				applied_at timestamptz NOT NULL DEFAULT now()
			)`); err != nil {
				return fmt.Errorf("migrate: %w", err)
			}
			rows, _ := tx.Query(ctx, `SELECT version FROM schema_migrations`)
			versions, err := pgx.CollectRows(rows, pgx.RowTo[int])
			if err != nil {
				return fmt.Errorf("migrate: %w", err)
			}
			applied := map[int]bool{}
			for _, v := range versions {
				applied[v] = true
			}
			for _, m := range pending(postgresMigrations, applied, opts.Logger, "postgres") {
				for _, stmt := range m.stmts {
					if _, err := tx.Exec(ctx, stmt); err != nil {
						return migrationError(m, err)
					}
				}
				if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.version, m.name); err != nil {
					return migrationError(m, err)
				}
				opts.Logger.Info("store: applied migration", "backend", "postgres", "version", m.version, "name", m.name)
			}
			return nil
		})
	})
}

// Add implements Store: one statement for the whole batch, which
// PostgreSQL runs as one transaction.
func (p *Postgres) Add(ctx context.Context, bs []Bucket) error {
	if len(bs) == 0 {
		return nil
	}
	rows := coalesce(bs)
	var (
		starts              = make([]int64, len(rows))
		routes, backends    = make([]string, len(rows)), make([]string, len(rows))
		totals, errs, slows = make([]int64, len(rows)), make([]int64, len(rows)), make([]int64, len(rows))
	)
	for i, r := range rows {
		starts[i], routes[i], backends[i] = r.start, r.Route, r.Backend
		totals[i], errs[i], slows[i] = r.Total, r.Errors, r.Slow
	}
	err := p.conns.with(ctx, func(c *pgx.Conn) error {
		// ORDER BY: rows are locked in the same order by every replica.
		_, err := c.Exec(ctx, `INSERT INTO slo_buckets (start, route, backend, total, errors, slow)
			SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[])
			ORDER BY 1, 2, 3
			ON CONFLICT (start, route, backend) DO UPDATE SET
				total = slo_buckets.total + excluded.total,
				errors = slo_buckets.errors + excluded.errors,
				slow = slo_buckets.slow + excluded.slow`,
			starts, routes, backends, totals, errs, slows)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: add buckets: %w", err)
	}
	return nil
}

// Sums implements Store.
func (p *Postgres) Sums(ctx context.Context, now time.Time, windows []time.Duration) (map[Series][]Counts, error) {
	out := map[Series][]Counts{}
	if len(windows) == 0 {
		return out, nil
	}
	q, args := sumsQuery(now, windows, func(i int) string { return "$" + strconv.Itoa(i) })
	err := p.conns.with(ctx, func(c *pgx.Conn) error {
		rows, _ := c.Query(ctx, q, args...)
		defer rows.Close()
		for rows.Next() {
			series, sums, err := scanSums(rows.Scan, len(windows))
			if err != nil {
				return err
			}
			out[series] = sums
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("store: sums: %w", err)
	}
	return out, nil
}

// Alerts implements Store. They come sorted by key.
func (p *Postgres) Alerts(ctx context.Context) ([]AlertState, error) {
	out := []AlertState{}
	err := p.conns.with(ctx, func(c *pgx.Conn) error {
		out = out[:0]
		rows, _ := c.Query(ctx, `SELECT "key", firing, since, notified, labels::text, annotations::text FROM alerts ORDER BY "key"`)
		defer rows.Close()
		for rows.Next() {
			var (
				a            AlertState
				since        *int64
				labels, anns string
			)
			if err := rows.Scan(&a.Key, &a.Firing, &since, &a.Notified, &labels, &anns); err != nil {
				return err
			}
			a.Since = fromUnixNano(since)
			if err := decodeLabels(a.Key, labels, anns, &a); err != nil {
				return err
			}
			out = append(out, a)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("store: alerts: %w", err)
	}
	return out, nil
}

// SaveAlert implements Store.
func (p *Postgres) SaveAlert(ctx context.Context, a AlertState) error {
	labels, anns, err := encodeLabels(a)
	if err != nil {
		return err
	}
	err = p.conns.with(ctx, func(c *pgx.Conn) error {
		_, err := c.Exec(ctx, `INSERT INTO alerts ("key", firing, since, notified, labels, annotations)
			VALUES ($1, $2, $3, $4, $5::text::jsonb, $6::text::jsonb)
			ON CONFLICT ("key") DO UPDATE SET
				firing = excluded.firing, since = excluded.since, notified = excluded.notified,
				labels = excluded.labels, annotations = excluded.annotations`,
			a.Key, a.Firing, unixNano(a.Since), a.Notified, labels, anns)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: save alert %q: %w", a.Key, err)
	}
	return nil
}

// TryLease implements Store. Expiry is judged by Options.Now, not by the
// database's clock.
func (p *Postgres) TryLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	now := p.now()
	var got string
	err := p.conns.with(ctx, func(c *pgx.Conn) error {
		return c.QueryRow(ctx, `INSERT INTO leases (name, holder, until) VALUES ($1, $2, $3)
			ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
				WHERE leases.until <= $4 OR leases.holder = excluded.holder
			RETURNING holder`,
			name, holder, now.Add(ttl).UnixNano(), now.UnixNano()).Scan(&got)
	})
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return false, nil // held by another, unexpired
	case err != nil:
		return false, fmt.Errorf("store: lease %q: %w", name, err)
	}
	return got == holder, nil
}

// Prune implements Store.
func (p *Postgres) Prune(ctx context.Context, before time.Time) error {
	err := p.conns.with(ctx, func(c *pgx.Conn) error {
		_, err := c.Exec(ctx, `DELETE FROM slo_buckets WHERE start < $1`, before.Unix())
		return err
	})
	if err != nil {
		return fmt.Errorf("store: prune buckets: %w", err)
	}
	return nil
}

// inTx runs fn in a transaction on one connection and commits if fn
// succeeds.
func (p *Postgres) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return p.conns.with(ctx, func(c *pgx.Conn) error { return pgx.BeginFunc(ctx, c, fn) })
}

// Rollouts implements Store.
func (p *Postgres) Rollouts(ctx context.Context) ([]RolloutState, error) {
	out, err := pgCollect(ctx, p, scanRollout, `SELECT `+rolloutColumns+` FROM rollouts ORDER BY route`)
	if err != nil {
		return nil, fmt.Errorf("store: rollouts: %w", err)
	}
	return out, nil
}

// SaveRollout implements Store. The conditional INSERT or UPDATE decides,
// not a read before the write: of two replicas saving over the same
// version, the second waits for the first's row lock, then finds the
// version moved on (or the row there) and changes nothing.
func (p *Postgres) SaveRollout(ctx context.Context, st RolloutState, expect int64, audit *AuditEntry) error {
	st, audit, err := prepareRollout(st, expect, audit)
	if err != nil {
		return err
	}
	args := []any{st.Route, st.Generation, st.Phase, st.Step, st.Percent, unixNano(st.StepStarted), unixNano(st.Updated), st.Reason, st.Version}
	err = p.inTx(ctx, func(tx pgx.Tx) error {
		var (
			tag pgconn.CommandTag
			err error
		)
		if expect == 0 {
			tag, err = tx.Exec(ctx, `INSERT INTO rollouts (`+rolloutColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
				ON CONFLICT (route) DO NOTHING`, args...)
		} else {
			tag, err = tx.Exec(ctx, `UPDATE rollouts SET generation = $2, phase = $3, step = $4, percent = $5,
					step_started = $6, updated = $7, reason = $8, version = $9
				WHERE route = $1 AND version = $10`, append(args, expect)...)
		}
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return conflict(st.Route, expect)
		}
		if audit == nil {
			return nil
		}
		_, err = tx.Exec(ctx, `INSERT INTO rollout_audit (`+auditColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
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
func (p *Postgres) DeleteRollout(ctx context.Context, route string) error {
	err := p.conns.with(ctx, func(c *pgx.Conn) error {
		_, err := c.Exec(ctx, `DELETE FROM rollouts WHERE route = $1`, text(route))
		return err
	})
	if err != nil {
		return fmt.Errorf("store: delete rollout %q: %w", route, err)
	}
	return nil
}

// Audit implements Store.
func (p *Postgres) Audit(ctx context.Context, route string, limit int) ([]AuditEntry, error) {
	q, args := `SELECT `+auditColumns+` FROM rollout_audit`, []any{}
	if route != "" {
		q, args = q+` WHERE route = $1`, append(args, text(route))
	}
	q += ` ORDER BY at DESC NULLS LAST, id DESC LIMIT $` + strconv.Itoa(len(args)+1)
	out, err := pgCollect(ctx, p, scanAudit, q, append(args, orDefault(limit, defaultAuditLimit))...)
	if err != nil {
		return nil, fmt.Errorf("store: audit: %w", err)
	}
	return out, nil
}

// PruneAudit implements Store.
func (p *Postgres) PruneAudit(ctx context.Context, before time.Time) error {
	if before.IsZero() {
		return nil // nothing is before the zero time
	}
	err := p.conns.with(ctx, func(c *pgx.Conn) error {
		_, err := c.Exec(ctx, `DELETE FROM rollout_audit WHERE at IS NULL OR at < $1`, before.UnixNano())
		return err
	})
	if err != nil {
		return fmt.Errorf("store: prune audit: %w", err)
	}
	return nil
}

// diffLock is the first key of the pg_advisory_xact_lock(int, int) that
// AddDiffs, AddDiffSamples and PruneDiffs take for each route they write,
// in route order, before they touch a row; the second key is the route's
// hashtext. Writers of a route's diffs thus never wait for each other's row
// locks in opposite orders (no deadlock between a flush and a prune), and a
// sample flush trims with the previous flush's samples in sight, so exactly
// keep stay. A flush happens every few seconds per replica: serializing
// them per route costs nothing that matters. The key is "diff" in ASCII.
const diffLock = 0x64696666

func lockDiffs(ctx context.Context, tx pgx.Tx, routes []string) error {
	routes = slices.Compact(slices.Sorted(slices.Values(routes)))
	for _, r := range routes {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, int32(diffLock), r); err != nil {
			return fmt.Errorf("lock %q: %w", r, err)
		}
	}
	return nil
}

// AddDiffs implements Store: one upsert statement for the whole batch.
func (p *Postgres) AddDiffs(ctx context.Context, counts []DiffCount) error {
	if len(counts) == 0 {
		return nil
	}
	rows := coalesceDiffs(counts)
	var (
		routes, gens, endpoints, fields        = make([]string, len(rows)), make([]string, len(rows)), make([]string, len(rows)), make([]string, len(rows))
		compared, differ, noiseCompared, noise = make([]int64, len(rows)), make([]int64, len(rows)), make([]int64, len(rows)), make([]int64, len(rows))
	)
	for i, c := range rows {
		routes[i], gens[i], endpoints[i], fields[i] = c.Route, c.Generation, c.Endpoint, c.Field
		compared[i], differ[i], noiseCompared[i], noise[i] = c.Compared, c.Differ, c.NoiseCompared, c.Noise
	}
	err := p.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockDiffs(ctx, tx, routes); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO diff_counts (`+diffColumns+`)
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[])
			ON CONFLICT (route, generation, endpoint, field) DO UPDATE SET
				compared = diff_counts.compared + excluded.compared,
				differ = diff_counts.differ + excluded.differ,
				noise_compared = diff_counts.noise_compared + excluded.noise_compared,
				noise = diff_counts.noise + excluded.noise`,
			routes, gens, endpoints, fields, compared, differ, noiseCompared, noise)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: add diffs: %w", err)
	}
	return nil
}

// Diffs implements Store.
func (p *Postgres) Diffs(ctx context.Context, route, generation string) ([]DiffCount, error) {
	out, err := pgCollect(ctx, p, scanDiff, `SELECT `+diffColumns+` FROM diff_counts
		WHERE route = $1 AND generation = $2 ORDER BY endpoint, field`, text(route), text(generation))
	if err != nil {
		return nil, fmt.Errorf("store: diffs of %q generation %q: %w", route, generation, err)
	}
	return out, nil
}

// AddDiffSamples implements Store: one statement inserts the samples, in
// order, and one trims the keys they touched.
func (p *Postgres) AddDiffSamples(ctx context.Context, samples []DiffSample, keep int) error {
	if len(samples) == 0 {
		return nil
	}
	samples, keys := cleanSamples(samples)
	keep = orDefault(keep, defaultSampleKeep)
	n := len(samples)
	var (
		routes, gens, endpoints, fields = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		ats                             = make([]*int64, n)
		ids, methods, paths             = make([]string, n), make([]string, n), make([]string, n)
		primaries, candidates           = make([]string, n), make([]string, n)
	)
	for i, x := range samples {
		routes[i], gens[i], endpoints[i], fields[i] = x.Route, x.Generation, x.Endpoint, x.Field
		ats[i], ids[i], methods[i], paths[i] = unixNano(x.At), x.RequestID, x.Method, x.Path
		primaries[i], candidates[i] = x.Primary, x.Candidate
	}
	var kRoutes, kGens, kEndpoints, kFields []string
	for _, k := range keys {
		kRoutes, kGens = append(kRoutes, k.Route), append(kGens, k.Generation)
		kEndpoints, kFields = append(kEndpoints, k.Endpoint), append(kFields, k.Field)
	}
	err := p.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockDiffs(ctx, tx, kRoutes); err != nil {
			return err
		}
		// ORDER BY n: ids, which break ties of at, follow the slice.
		if _, err := tx.Exec(ctx, `INSERT INTO diff_samples (`+sampleColumns+`)
			SELECT `+sampleColumns+` FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[],
					$6::text[], $7::text[], $8::text[], $9::text[], $10::text[])
				WITH ORDINALITY AS s (`+sampleColumns+`, n)
			ORDER BY n`,
			routes, gens, endpoints, fields, ats, ids, methods, paths, primaries, candidates); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM diff_samples d USING (
				SELECT id, row_number() OVER (PARTITION BY route, generation, endpoint, field
					ORDER BY at DESC NULLS LAST, id DESC) AS rank
				FROM diff_samples
				WHERE (route, generation, endpoint, field) IN (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]))
			) r
			WHERE d.id = r.id AND r.rank > $5`,
			kRoutes, kGens, kEndpoints, kFields, keep)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: add diff samples: %w", err)
	}
	return nil
}

// DiffSamples implements Store.
func (p *Postgres) DiffSamples(ctx context.Context, route, generation, field string, limit int) ([]DiffSample, error) {
	q, args := `SELECT `+sampleColumns+` FROM diff_samples WHERE route = $1 AND generation = $2`, []any{text(route), text(generation)}
	if field != "" {
		q, args = q+` AND field = $3`, append(args, text(field))
	}
	q += ` ORDER BY at DESC NULLS LAST, id DESC LIMIT $` + strconv.Itoa(len(args)+1)
	out, err := pgCollect(ctx, p, scanSample, q, append(args, orDefault(limit, defaultSampleLimit))...)
	if err != nil {
		return nil, fmt.Errorf("store: diff samples of %q generation %q: %w", route, generation, err)
	}
	return out, nil
}

// PruneDiffs implements Store.
func (p *Postgres) PruneDiffs(ctx context.Context, route, keepGeneration string) error {
	route, keepGeneration = text(route), text(keepGeneration)
	err := p.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockDiffs(ctx, tx, []string{route}); err != nil {
			return err
		}
		for _, table := range []string{"diff_counts", "diff_samples"} {
			if _, err := tx.Exec(ctx, `DELETE FROM `+table+` WHERE route = $1 AND generation <> $2`, route, keepGeneration); err != nil {
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

// pgCollect runs query on a connection of p and returns the rows scan
// reads, an empty slice if there are none.
func pgCollect[T any](ctx context.Context, p *Postgres, scan func(func(...any) error) (T, error), query string, args ...any) ([]T, error) {
	var out []T
	err := p.conns.with(ctx, func(c *pgx.Conn) error {
		out = []T{} // with may run this twice
		rows, _ := c.Query(ctx, query, args...)
		defer rows.Close()
		for rows.Next() {
			v, err := scan(rows.Scan)
			if err != nil {
				return err
			}
			out = append(out, v)
		}
		return rows.Err()
	})
	return out, err
}

// Close implements Store. Connections in use close when their call ends.
func (p *Postgres) Close() error {
	p.conns.close()
	return nil
}

var _ Store = (*Postgres)(nil)

// conns is a small pool of connections. pgxpool would be the usual choice,
// but it needs github.com/jackc/puddle/v2, which go.mod does not carry;
// the store's needs (a handful of connections, no per-connection state
// beyond pgx's statement cache) fit in this.
type conns struct {
	cfg   *pgx.ConnConfig
	slots chan struct{} // a token per connection in use or being dialled

	mu     sync.Mutex // guards idle and closed
	idle   []*pgx.Conn
	closed bool
}

var errClosed = errors.New("store is closed")

func newConns(cfg *pgx.ConnConfig, size int) *conns {
	return &conns{cfg: cfg, slots: make(chan struct{}, size)}
}

// with runs fn on a connection. If fn fails on a reused connection before
// anything reached the server (the server restarted while the connection
// sat idle), it runs once more on a fresh one.
func (p *conns) with(ctx context.Context, fn func(*pgx.Conn) error) error {
	for attempt := 0; ; attempt++ {
		c, reused, err := p.get(ctx, attempt == 0)
		if err != nil {
			return err
		}
		err = fn(c)
		p.put(c)
		if err != nil && reused && attempt == 0 && pgconn.SafeToRetry(err) && ctx.Err() == nil {
			continue
		}
		return err
	}
}

// get returns an idle connection if reuse allows and there is one, else a
// new one, waiting while the pool's size are in use.
func (p *conns) get(ctx context.Context, reuse bool) (c *pgx.Conn, reused bool, err error) {
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		<-p.slots
		return nil, false, errClosed
	}
	if n := len(p.idle); reuse && n > 0 {
		c = p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return c, true, nil
	}
	p.mu.Unlock()
	c, err = pgx.ConnectConfig(ctx, p.cfg)
	if err != nil {
		<-p.slots
		return nil, false, fmt.Errorf("connect: %w", err)
	}
	return c, false, nil
}

// put returns c to the pool, or closes it if it is broken, mid-transaction
// or the pool is closed.
func (p *conns) put(c *pgx.Conn) {
	p.mu.Lock()
	keep := !p.closed && !c.IsClosed() && c.PgConn().TxStatus() == 'I'
	if keep {
		p.idle = append(p.idle, c)
	}
	p.mu.Unlock()
	if !keep {
		closeConn(c)
	}
	<-p.slots
}

func (p *conns) close() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	for _, c := range idle {
		closeConn(c)
	}
}

func closeConn(c *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c.Close(ctx)
}

// scrub hides secret in err's message. The chain stays intact for
// errors.Is and errors.As.
func scrub(err error, secret string) error {
	if err == nil || secret == "" || !strings.Contains(err.Error(), secret) {
		return err
	}
	return scrubbed{err, secret}
}

type scrubbed struct {
	err    error
	secret string
}

func (e scrubbed) Error() string { return strings.ReplaceAll(e.err.Error(), e.secret, "xxxxx") }
func (e scrubbed) Unwrap() error { return e.err }
