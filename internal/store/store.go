// Package store keeps what torii must remember across restarts and share
// across replicas: SLO counts in fixed time buckets, alert state, and
// short leases that let exactly one replica send each alert. SQLite is the
// embedded default; PostgreSQL serves several replicas. Memory is the same
// contract in process, for tests and for running without persistence.
package store

import (
	"context"
	"time"
)

// Resolution is the length of one bucket: fine enough that a 5-minute
// window resolves to 10 s.
const Resolution = 10 * time.Second

// Series names one SLI: a route's own, or one backend (upstream) of it.
type Series struct {
	// Route is the route's name.
	Route string
	// Backend is the upstream name for a per-backend SLI; "" for the
	// route's own.
	Backend string
}

// Counts are the events of a series over some time.
type Counts struct {
	// Total counts the requests that count toward the SLI.
	Total int64
	// Errors counts the failed ones (availability).
	Errors int64
	// Slow counts those over the latency bound (latency).
	Slow int64
}

// Add returns c plus o.
func (c Counts) Add(o Counts) Counts {
	return Counts{Total: c.Total + o.Total, Errors: c.Errors + o.Errors, Slow: c.Slow + o.Slow}
}

// Bucket is one replica's counts of one series in one bucket.
type Bucket struct {
	Series
	// Start is the bucket's start, a multiple of Resolution (UTC).
	Start time.Time
	Counts
}

// AlertState is the persisted state of one alert.
type AlertState struct {
	// Key identifies the alert, e.g. "items/availability/page".
	Key string
	// Firing reports whether the alert is firing.
	Firing bool
	// Since is when it started firing or resolved.
	Since time.Time
	// Notified reports whether the current state (firing or resolved) has
	// been delivered to every channel.
	Notified bool
	// Labels and Annotations travel with notifications.
	Labels      map[string]string
	Annotations map[string]string
}

// Store is the contract every backend meets. Methods are safe for
// concurrent use. Counts are additive: several replicas (or several
// flushes of one) adding to the same bucket sum up.
type Store interface {
	// Add adds the buckets' counts to the stored ones.
	Add(ctx context.Context, buckets []Bucket) error
	// Sums returns, for every series with events in [now-w, now) for each
	// window w, the summed counts; result[s][i] is for windows[i].
	Sums(ctx context.Context, now time.Time, windows []time.Duration) (map[Series][]Counts, error)
	// Alerts returns every persisted alert state.
	Alerts(ctx context.Context) ([]AlertState, error)
	// SaveAlert stores an alert's state, replacing the previous one.
	SaveAlert(ctx context.Context, a AlertState) error
	// TryLease makes holder the owner of name until ttl from now if no
	// other holder has an unexpired lease, and reports whether holder owns
	// it. Used so that one replica alone sends an alert.
	TryLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	// Prune deletes buckets that started before before.
	Prune(ctx context.Context, before time.Time) error
	// Close releases the store.
	Close() error
}

// Align returns the start of the bucket holding t.
func Align(t time.Time) time.Time { return t.UTC().Truncate(Resolution) }
