package config

// The schema of ownership, SLOs, the store and alerting (issue #5).
// Defaults and validation live in slo_check.go.

// Store is where torii keeps SLO buckets and alert state.
type Store struct {
	// SQLite is the path of the embedded database file. Default:
	// "torii.db" when Postgres is empty.
	SQLite string `yaml:"sqlite" json:"sqlite,omitempty"`
	// Postgres is a PostgreSQL connection string, for several replicas
	// sharing SLO counts. Redacted in the admin API. Default: "" (SQLite).
	Postgres string `yaml:"postgres" json:"postgres,omitempty"`
	// FlushInterval is how often in-memory counts are written to the
	// store; a crash loses at most this much. Default: 10s.
	FlushInterval Duration `yaml:"flush_interval" json:"flush_interval,omitempty"`
	// Retention is how long buckets are kept. Default: 35d (longer than
	// the longest SLO period).
	Retention Duration `yaml:"retention" json:"retention,omitempty"`
}

// Team is a team that owns routes and receives their alerts.
type Team struct {
	// Alerts are the team's alert channels. Default: none (alerts are
	// evaluated and shown, not sent).
	Alerts []AlertChannel `yaml:"alerts" json:"alerts,omitempty"`
}

// AlertChannel is one destination. Exactly one field is set.
type AlertChannel struct {
	// Alertmanager is the base URL of a Prometheus Alertmanager; alerts
	// are POSTed to <url>/api/v2/alerts.
	Alertmanager string `yaml:"alertmanager" json:"alertmanager,omitempty"`
	// Webhook is a URL that receives a JSON POST per alert change.
	// Redacted in the admin API (it often embeds a token).
	Webhook string `yaml:"webhook" json:"webhook,omitempty"`
}

// SLO is a route's service level objective.
type SLO struct {
	// Availability is the target share of requests that do not fail, in
	// percent, e.g. 99.9. Default: 0, meaning no availability SLO.
	Availability float64 `yaml:"availability" json:"availability,omitempty"`
	// Latency is the latency objective. Nil: none.
	Latency *LatencySLO `yaml:"latency" json:"latency,omitempty"`
	// Period is the SLO period: 28d or 30d. Default: 30d.
	Period Duration `yaml:"period" json:"period,omitempty"`
	// ErrorStatuses are the statuses that count as failures besides
	// gateway errors: "5xx" (default), "4xx", "429" or any code.
	ErrorStatuses []string `yaml:"error_statuses" json:"error_statuses,omitempty"`
	// MinEvents is the fewest requests a window needs before its burn
	// rate can fire an alert (the low-traffic guard). Default: 10.
	MinEvents int `yaml:"min_events" json:"min_events,omitempty"`
}

// LatencySLO is a share of requests that must be faster than a bound.
type LatencySLO struct {
	// Under is the latency bound (time to first byte for streams).
	// Required.
	Under Duration `yaml:"under" json:"under"`
	// Target is the share that must be under it, in percent, e.g. 99.
	// Required.
	Target float64 `yaml:"target" json:"target"`
}
