// Package testpg gives tests a PostgreSQL schema of their own on the
// server that scripts/postgres starts (TORII_TEST_POSTGRES), so reruns and
// parallel packages never see each other's rows.
package testpg

import (
	"context"
	"crypto/rand"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DSN returns TORII_TEST_POSTGRES pointed (search_path) at a new schema,
// dropped when the test ends; register it before anything that connects,
// so the drop runs after those connections close. Without the variable
// the test is skipped, except under CI=true, where it fails: CI runs
// every test.
func DSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv("TORII_TEST_POSTGRES")
	if dsn == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("TORII_TEST_POSTGRES is not set; scripts/test starts PostgreSQL with scripts/postgres and sets it")
		}
		t.Skip(`TORII_TEST_POSTGRES is not set; run: eval "$(scripts/postgres)" && export TORII_TEST_POSTGRES`)
	}
	schema := "test_" + strings.ToLower(rand.Text()[:12])
	exec := func(stmt string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return err
		}
		defer c.Close(context.Background())
		_, err = c.Exec(ctx, stmt)
		return err
	}
	if err := exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatalf("create schema %s in TORII_TEST_POSTGRES: %v", schema, err)
	}
	t.Cleanup(func() {
		if err := exec("DROP SCHEMA " + schema + " CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	return dsn + sep + "search_path=" + schema
}
