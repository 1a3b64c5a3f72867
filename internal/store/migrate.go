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
