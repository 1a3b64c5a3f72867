package store

import (
	"fmt"
	"log/slog"
)

// A migration is one numbered step of a schema. Each is applied once, in
// a transaction with its row in schema_migrations, in version order.
// Migrations are append-only: a released one is never edited; a change is a
// new one. They only add (tables, columns, indexes), so a replica still
// running the previous torii keeps working against a schema a newer one has
// moved on; Open logs a warning when it meets such a schema and carries on.
type migration struct {
	version int
	name    string
	stmts   []string
}

// Times in the schema: slo_buckets.start is unix seconds (a multiple of
// 10); alerts.since and leases.until are unix nanoseconds, since NULL for
// the zero time. The bucket key leads with start so that the range scans
// of Sums and Prune read one contiguous stretch of the primary key; it is
// the key (route, backend, start) the issue asks for, in that order.
//
// Version 2 keeps rollouts and diffs. rollouts.step_started and updated,
// rollout_audit.at and diff_samples.at are unix nanoseconds, NULL for the
// zero time, which therefore sorts as the oldest: last when newest come
// first (SQLite's DESC puts NULLs last by itself; PostgreSQL is told
// NULLS LAST). An audit entry's or sample's id is its insertion order,
// which breaks ties of at. In PostgreSQL, the text columns that results
// are ordered or grouped by are COLLATE "C": byte order, as in SQLite and
// Memory, whatever the database's locale.

var sqliteMigrations = []migration{
	{1, "slo buckets, alerts and leases", []string{
		`CREATE TABLE slo_buckets (
			start   INTEGER NOT NULL,
			route   TEXT    NOT NULL,
			backend TEXT    NOT NULL,
			total   INTEGER NOT NULL,
			errors  INTEGER NOT NULL,
			slow    INTEGER NOT NULL,
			PRIMARY KEY (start, route, backend)
		) WITHOUT ROWID, STRICT`,
		`CREATE TABLE alerts (
			"key"       TEXT    NOT NULL PRIMARY KEY,
			firing      INTEGER NOT NULL,
			since       INTEGER,
			notified    INTEGER NOT NULL,
			labels      TEXT    NOT NULL,
			annotations TEXT    NOT NULL
		) STRICT`,
		`CREATE TABLE leases (
			name   TEXT    NOT NULL PRIMARY KEY,
			holder TEXT    NOT NULL,
			until  INTEGER NOT NULL
		) STRICT`,
	}},
	{2, "rollouts, rollout audit, diff counts and samples", []string{
		`CREATE TABLE rollouts (
			route        TEXT    NOT NULL PRIMARY KEY,
			generation   TEXT    NOT NULL,
			phase        TEXT    NOT NULL,
			step         INTEGER NOT NULL,
			percent      REAL    NOT NULL,
			step_started INTEGER,
			updated      INTEGER,
			reason       TEXT    NOT NULL,
			version      INTEGER NOT NULL
		) STRICT`,
		`CREATE TABLE rollout_audit (
			id           INTEGER NOT NULL PRIMARY KEY,
			route        TEXT    NOT NULL,
			generation   TEXT    NOT NULL,
			at           INTEGER,
			actor        TEXT    NOT NULL,
			action       TEXT    NOT NULL,
			from_percent REAL    NOT NULL,
			to_percent   REAL    NOT NULL,
			reason       TEXT    NOT NULL
		) STRICT`,
		`CREATE INDEX rollout_audit_route_at ON rollout_audit (route, at, id)`,
		`CREATE INDEX rollout_audit_at ON rollout_audit (at, id)`,
		`CREATE TABLE diff_counts (
			route          TEXT    NOT NULL,
			generation     TEXT    NOT NULL,
			endpoint       TEXT    NOT NULL,
			field          TEXT    NOT NULL,
			compared       INTEGER NOT NULL,
			differ         INTEGER NOT NULL,
			noise_compared INTEGER NOT NULL,
			noise          INTEGER NOT NULL,
			PRIMARY KEY (route, generation, endpoint, field)
		) WITHOUT ROWID, STRICT`,
		`CREATE TABLE diff_samples (
			id              INTEGER NOT NULL PRIMARY KEY,
			route           TEXT    NOT NULL,
			generation      TEXT    NOT NULL,
			endpoint        TEXT    NOT NULL,
			field           TEXT    NOT NULL,
			at              INTEGER,
			request_id      TEXT    NOT NULL,
			method          TEXT    NOT NULL,
			path            TEXT    NOT NULL,
			primary_value   TEXT    NOT NULL,
			candidate_value TEXT    NOT NULL
		) STRICT`,
		`CREATE INDEX diff_samples_key_at ON diff_samples (route, generation, endpoint, field, at, id)`,
	}},
}

var postgresMigrations = []migration{
	{1, "slo buckets, alerts and leases", []string{
		`CREATE TABLE slo_buckets (
			start   bigint NOT NULL,
			route   text   NOT NULL,
			backend text   NOT NULL,
			total   bigint NOT NULL,
			errors  bigint NOT NULL,
			slow    bigint NOT NULL,
			PRIMARY KEY (start, route, backend)
		)`,
		`CREATE TABLE alerts (
			"key"       text    NOT NULL PRIMARY KEY,
			firing      boolean NOT NULL,
			since       bigint,
			notified    boolean NOT NULL,
			labels      jsonb   NOT NULL,
			annotations jsonb   NOT NULL
		)`,
		`CREATE TABLE leases (
			name   text   NOT NULL PRIMARY KEY,
			holder text   NOT NULL,
			until  bigint NOT NULL
		)`,
	}},
	{2, "rollouts, rollout audit, diff counts and samples", []string{
		`CREATE TABLE rollouts (
			route        text COLLATE "C" NOT NULL PRIMARY KEY,
			generation   text             NOT NULL,
			phase        text             NOT NULL,
			step         bigint           NOT NULL,
			percent      double precision NOT NULL,
			step_started bigint,
			updated      bigint,
			reason       text             NOT NULL,
			version      bigint           NOT NULL
		)`,
		`CREATE TABLE rollout_audit (
			id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
			route        text             NOT NULL,
			generation   text             NOT NULL,
			at           bigint,
			actor        text             NOT NULL,
			action       text             NOT NULL,
			from_percent double precision NOT NULL,
			to_percent   double precision NOT NULL,
			reason       text             NOT NULL
		)`,
		`CREATE INDEX rollout_audit_route_at ON rollout_audit (route, at DESC NULLS LAST, id DESC)`,
		`CREATE INDEX rollout_audit_at ON rollout_audit (at DESC NULLS LAST, id DESC)`,
		`CREATE TABLE diff_counts (
			route          text COLLATE "C" NOT NULL,
			generation     text COLLATE "C" NOT NULL,
			endpoint       text COLLATE "C" NOT NULL,
			field          text COLLATE "C" NOT NULL,
			compared       bigint NOT NULL,
			differ         bigint NOT NULL,
			noise_compared bigint NOT NULL,
			noise          bigint NOT NULL,
			PRIMARY KEY (route, generation, endpoint, field)
		)`,
		`CREATE TABLE diff_samples (
			id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
			route           text COLLATE "C" NOT NULL,
			generation      text COLLATE "C" NOT NULL,
			endpoint        text COLLATE "C" NOT NULL,
			field           text COLLATE "C" NOT NULL,
			at              bigint,
			request_id      text NOT NULL,
			method          text NOT NULL,
			path            text NOT NULL,
			primary_value   text NOT NULL,
			candidate_value text NOT NULL
		)`,
		`CREATE INDEX diff_samples_key_at ON diff_samples (route, generation, endpoint, field, at DESC NULLS LAST, id DESC)`,
	}},
}

// pending returns the migrations of all not yet applied, in order, and
// logs a warning if the database has versions this torii does not know.
func pending(all []migration, applied map[int]bool, log *slog.Logger, backend string) []migration {
	known := map[int]bool{}
	var out []migration
	for _, m := range all {
		known[m.version] = true
		if !applied[m.version] {
			out = append(out, m)
		}
	}
	for v := range applied {
		if !known[v] {
			log.Warn("store: database schema is newer than this torii", "backend", backend, "version", v)
			break
		}
	}
	return out
}

func migrationError(m migration, err error) error {
	return fmt.Errorf("migrate to version %d (%s): %w", m.version, m.name, err)
}
