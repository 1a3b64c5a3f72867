package config

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestCheckPostgresDSN(t *testing.T) {
	tests := []struct {
		name, dsn string
		want      string // a substring of the problem; "" for none
	}{
		{"url", "postgres://torii:secret@db.internal:5432/torii?sslmode=verify-full", ""},
		{"postgresql url", "postgresql://torii@db.internal/torii", ""},
		{"url without host", "postgres:///torii?host=/var/run/postgresql", ""},
		{"key value", "host=db.internal port=5432 user=torii dbname=torii", ""},
		{"spaces around equals", "host = db.internal user= torii", ""},
		{"quoted value", `host=db password='a b\'c' dbname=torii`, ""},
		{"empty quoted value", "host=db password=''", ""},
		{"misspelt scheme", "postgress://torii:secret@db/torii", `did you mean "postgres"?`},
		{"other scheme", "mysql://torii:secret@db/torii", "want postgres or postgresql"},
		{"bad url", "postgres://torii:secret@db:port/torii", "invalid PostgreSQL URL"},
		{"bad query", "postgres://db/torii?sslmode=%zz", "invalid query"},
		{"no equals", "host=db secret", "pair 2 has no '='"},
		{"no key", "=db", "pair 1 does not start with a key"},
		{"unterminated quote", "host=db password='x", `the value of "password" has no closing quote`},
		{"only spaces", "   ", "no key=value pairs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := checkPostgresDSN(tt.dsn)
			if tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
				t.Errorf("checkPostgresDSN(%q) = %q, want %q", tt.dsn, got, tt.want)
			}
			if strings.Contains(got, "secret") {
				t.Errorf("checkPostgresDSN(%q) = %q, which leaks the password", tt.dsn, got)
			}
		})
	}
}

func TestSLODefaults(t *testing.T) {
	cfg, err := Parse([]byte(`
teams: {edge: {}, core: {}}
default_owner: edge
default_slo: {availability: 99.9, latency: {under: 300ms, target: 99}}
upstreams: {app: {endpoints: ["10.0.0.1:8000"]}}
routes:
  - {name: a, backends: [{upstream: app}]}
  - {name: b, owner: core, slo: {availability: 99.5, period: 28d, error_statuses: ["5xx", "429"], min_events: 100}, backends: [{upstream: app}]}
`), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Store
	if s.SQLite != DefaultStoreSQLite || s.FlushInterval.D() != 10*time.Second || s.Retention.D() != 35*24*time.Hour {
		t.Errorf("got store %+v, want sqlite torii.db, flush 10s, retention 35d", s)
	}
	a, b := cfg.Routes[0], cfg.Routes[1]
	if a.Owner != "edge" || b.Owner != "core" {
		t.Errorf("got owners %q and %q, want edge and core", a.Owner, b.Owner)
	}
	if a.SLO == nil || a.SLO == cfg.DefaultSLO || a.SLO.Latency == cfg.DefaultSLO.Latency {
		t.Fatalf("got route a's slo %p (default %p), want a deep copy of default_slo", a.SLO, cfg.DefaultSLO)
	}
	if a.SLO.Availability != 99.9 || a.SLO.Period.D() != 30*24*time.Hour || !slices.Equal(a.SLO.ErrorStatuses, []string{"5xx"}) || a.SLO.MinEvents != 10 {
		t.Errorf("got route a's slo %+v, want 99.9 over 30d, [5xx], min_events 10", *a.SLO)
	}
	if b.SLO.Period.D() != 28*24*time.Hour || !slices.Equal(b.SLO.ErrorStatuses, []string{"5xx", "429"}) || b.SLO.MinEvents != 100 || b.SLO.Latency != nil {
		t.Errorf("got route b's slo %+v, want its own values kept", *b.SLO)
	}

	pg, err := Parse([]byte(`store: {postgres: "postgres://torii@127.0.0.1/torii"}`), "pg.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if pg.Store.SQLite != "" {
		t.Errorf("got sqlite %q with postgres set, want none", pg.Store.SQLite)
	}
}
