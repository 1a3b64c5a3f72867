package migrate

import (
	"errors"
	"time"

	"torii/internal/config"
	"torii/internal/store"
)

// ErrNotMigrating is returned for a route that has no candidate, shadow
// or rollout.
var ErrNotMigrating = errors.New("the route has no candidate, shadow or rollout")

// Migration is one route's migration as /api/v1/migrations shows it: the
// split, the shadow, the rollout and the diff report.
type Migration struct {
	// Route is the route's name; Owner its team.
	Route string `json:"route"`
	Owner string `json:"owner,omitempty"`
	// Backends are the route's backends with their share of its traffic
	// now, in percent.
	Backends []BackendShare `json:"backends"`
	// Shadow is the route's mirroring; nil without one.
	Shadow *ShadowInfo `json:"shadow,omitempty"`
	// Rollout is the rollout's live state; nil without one.
	Rollout *Status `json:"rollout,omitempty"`
	// Diff is the comparison report; nil without shadow.compare or before
	// the first comparison is stored.
	Diff *Report `json:"diff,omitempty"`
	// Audit is the rollout's trail, newest first (the detail view only).
	Audit []AuditRecord `json:"audit,omitempty"`
}

// BackendShare is one backend of a migrating route.
type BackendShare struct {
	Upstream  string  `json:"upstream"`
	Candidate bool    `json:"candidate,omitempty"`
	Percent   float64 `json:"percent"`
}

// ShadowInfo describes a route's mirroring.
type ShadowInfo struct {
	Upstream string  `json:"upstream"`
	Percent  float64 `json:"percent"`
	Compare  bool    `json:"compare"`
}

// AuditRecord is one audit entry as the API shows it.
type AuditRecord struct {
	At          time.Time `json:"at"`
	Actor       string    `json:"actor"`
	Action      string    `json:"action"`
	FromPercent float64   `json:"from_percent"`
	ToPercent   float64   `json:"to_percent"`
	Reason      string    `json:"reason,omitempty"`
	Generation  string    `json:"generation"`
}

// AuditRecords converts stored entries.
func AuditRecords(es []store.AuditEntry) []AuditRecord {
	out := make([]AuditRecord, len(es))
	for i, e := range es {
		out[i] = AuditRecord{At: e.At, Actor: e.Actor, Action: e.Action, FromPercent: e.FromPercent,
			ToPercent: e.ToPercent, Reason: e.Reason, Generation: e.Generation}
	}
	return out
}

// SampleRecord is one diff sample as the API shows it.
type SampleRecord struct {
	At        time.Time `json:"at"`
	Endpoint  string    `json:"endpoint"`
	Field     string    `json:"field"`
	RequestID string    `json:"request_id,omitempty"`
	Method    string    `json:"method"`
	Path      string    `json:"path"`
	Primary   string    `json:"primary"`
	Candidate string    `json:"candidate"`
}

// SampleRecords converts stored samples.
func SampleRecords(ss []store.DiffSample) []SampleRecord {
	out := make([]SampleRecord, len(ss))
	for i, s := range ss {
		out[i] = SampleRecord{At: s.At, Endpoint: s.Endpoint, Field: s.Field, RequestID: s.RequestID,
			Method: s.Method, Path: s.Path, Primary: s.Primary, Candidate: s.Candidate}
	}
	return out
}

// Migrating reports whether a route takes part in a migration: it has a
// candidate backend, a shadow or a rollout.
func Migrating(r *config.Route) bool {
	if r.Shadow != nil || r.Rollout != nil {
		return true
	}
	for _, b := range r.Backends {
		if b.Candidate {
			return true
		}
	}
	return false
}

// Shares returns the backends' shares of r's traffic in percent: the
// configured weights, or with a rollout the candidate at percent and the
// others sharing the rest in proportion to their weights.
func Shares(r *config.Route, rollout *Status) []BackendShare {
	weights := make([]float64, len(r.Backends))
	total := 0.0
	for i, b := range r.Backends {
		w := 1
		if b.Weight != nil {
			w = *b.Weight
		}
		weights[i] = float64(w)
	}
	_, cand, hasCand := r.Candidate()
	if rollout != nil && hasCand {
		rest := 0.0
		for i, w := range weights {
			if i != cand {
				rest += w
			}
		}
		for i := range weights {
			switch {
			case i == cand:
				weights[i] = rollout.Percent
			case rest > 0:
				weights[i] = (100 - rollout.Percent) * weights[i] / rest
			}
		}
	}
	for _, w := range weights {
		total += w
	}
	out := make([]BackendShare, len(r.Backends))
	for i, b := range r.Backends {
		out[i] = BackendShare{Upstream: b.Upstream, Candidate: b.Candidate}
		if total > 0 {
			out[i].Percent = weights[i] * 100 / total
		}
	}
	return out
}
