// Package store keeps what torii must remember across restarts and share
// across replicas: SLO counts in fixed time buckets, alert state, short
// leases that let exactly one replica send each alert, the live state and
// audit log of migration rollouts, and the counts and samples of response
// comparisons (diffs) between a route's primary and candidate. SQLite is the
// embedded default; PostgreSQL serves several replicas. Memory is the same
// contract in process, for tests and for running without persistence.
package store

import (
	"context"
	"errors"
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

// ErrConflict is returned by SaveRollout when the stored version is not the expected one.
var ErrConflict = errors.New("store: rollout state changed concurrently")

// RolloutState is the live state of one route's rollout.
type RolloutState struct {
	Route       string    // route name; the key
	Generation  string    // identifies the route's rollout plan; opaque to the store
	Phase       string    // opaque to the store, e.g. "progressing", "paused", "rolled_back"
	Step        int       // index into the plan's steps; may be -1
	Percent     float64   // the candidate's share, in percent
	StepStarted time.Time // when the current step (or phase) began
	Updated     time.Time // when the state was saved
	Reason      string    // why the last change happened
	Version     int64     // set by the store: 1 after the first save, +1 on each save
}

// AuditEntry is one change of a rollout, kept forever (until pruned by PruneAudit).
type AuditEntry struct {
	Route       string
	Generation  string
	At          time.Time
	Actor       string // who: "rollout" for the controller, "admin" or "admin:<name>" for an operator
	Action      string // e.g. "start", "advance", "rollback", "pause", "resume", "promote", "abort", "complete"
	FromPercent float64
	ToPercent   float64
	Reason      string // e.g. "gate burn_rate 12.5 > 2"
}

// DiffKey names one aggregate of response comparisons.
type DiffKey struct {
	Route      string
	Generation string
	Endpoint   string // e.g. "GET /items/{id}"
	Field      string // e.g. "body.items[*].price"; "" holds the endpoint's totals
}

// DiffCount holds additive counters of one key. Like SLO buckets, several
// replicas (or several flushes of one) adding to the same key sum up.
type DiffCount struct {
	DiffKey
	Compared      int64 // primary vs candidate comparisons
	Differ        int64 // of those, where the field differed
	NoiseCompared int64 // primary vs secondary (a second primary call) comparisons
	Noise         int64 // of those, where the field differed
}

// DiffSample is one redacted example of a difference.
type DiffSample struct {
	DiffKey
	At        time.Time
	RequestID string
	Method    string
	Path      string
	Primary   string // the primary's value at the field, redacted, already bounded by the caller
	Candidate string // the candidate's value at the field
}

// Store is the contract every backend meets. Methods are safe for
// concurrent use. Counts are additive: several replicas (or several
// flushes of one) adding to the same bucket sum up.
//
// Text given to the rollout and diff methods is stored as valid UTF-8
// without NUL bytes, which is all PostgreSQL's text holds: every backend
// alike replaces invalid bytes and NULs with U+FFFD (diff samples quote
// response bodies, and operator names come from requests). Their results
// are ordered by byte-wise string comparison; their times come back in UTC
// at nanosecond precision, the zero time as the zero time.
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

	// Rollouts returns every stored rollout state, ordered by route.
	Rollouts(ctx context.Context) ([]RolloutState, error)
	// SaveRollout replaces the rollout state of st.Route with st at
	// version expect+1 and, when audit is not nil, appends audit to the
	// audit log, in one transaction, if the stored version is expect (0:
	// no state is stored). Otherwise it changes nothing and returns an
	// error wrapping ErrConflict: of several replicas saving over the same
	// version at once, exactly one wins. st.Version is ignored. Percents
	// must be finite.
	SaveRollout(ctx context.Context, st RolloutState, expect int64, audit *AuditEntry) error
	// DeleteRollout removes the rollout state of route, if there is one.
	// Its audit entries stay.
	DeleteRollout(ctx context.Context, route string) error
	// Audit returns the audit entries of route ("": of every route),
	// newest first (by At, then by insertion), at most limit (<= 0: 100).
	Audit(ctx context.Context, route string, limit int) ([]AuditEntry, error)
	// PruneAudit deletes the audit entries whose At is before before.
	PruneAudit(ctx context.Context, before time.Time) error

	// AddDiffs adds the counts to the stored ones, in one transaction.
	AddDiffs(ctx context.Context, counts []DiffCount) error
	// Diffs returns the counts of every key of route and generation,
	// ordered by endpoint, then field.
	Diffs(ctx context.Context, route, generation string) ([]DiffCount, error)
	// AddDiffSamples stores samples and then, for each DiffKey among them,
	// keeps only the keep (<= 0: 5) newest (by At, then by insertion), in
	// one transaction. Keys absent from samples are left alone.
	AddDiffSamples(ctx context.Context, samples []DiffSample, keep int) error
	// DiffSamples returns the samples of route and generation at field
	// ("": at any field), newest first (by At, then by insertion), at most
	// limit (<= 0: 20).
	DiffSamples(ctx context.Context, route, generation, field string, limit int) ([]DiffSample, error)
	// PruneDiffs deletes the diff counts and samples of route whose
	// generation is not keepGeneration, so that a new plan starts clean.
	PruneDiffs(ctx context.Context, route, keepGeneration string) error

	// Close releases the store.
	Close() error
}

// Align returns the start of the bucket holding t.
func Align(t time.Time) time.Time { return t.UTC().Truncate(Resolution) }
