package slo

import (
	"context"
	"fmt"
	"time"

	"torii/internal/store"
)

// Burn is one backend's recent record within a route, as a rollout gate
// judges it.
type Burn struct {
	// Window is the span counted, rounded up to the bucket resolution.
	Window time.Duration `json:"window"`
	// Events, Errors and Slow are the backend's requests in the window,
	// shadow requests included, and the failed and slow ones.
	Events int64 `json:"events"`
	Errors int64 `json:"errors"`
	Slow   int64 `json:"slow"`
	// Availability is the availability burn rate: the error ratio over
	// the allowed one (1 − target). 0 without events or an availability
	// objective.
	Availability float64 `json:"availability_burn_rate"`
	// Latency is the latency burn rate; 0 without events or a latency
	// objective.
	Latency float64 `json:"latency_burn_rate"`
}

// BackendBurn returns backend's counts within route over the last w, from
// the store plus this replica's unflushed counts, and its burn rates
// against the route's objectives. ok is false when the route has no SLO.
// w is rounded up to whole buckets (store.Resolution), at least one, and
// ends with the bucket in progress.
func (e *Engine) BackendBurn(ctx context.Context, route, backend string, w time.Duration) (b Burn, ok bool, err error) {
	e.mu.RLock()
	rc := e.byName[route]
	e.mu.RUnlock()
	if rc == nil || rc.slo == nil {
		return Burn{}, false, nil
	}
	w = max(store.Resolution, (w + store.Resolution - 1).Truncate(store.Resolution))
	now := e.now()
	// The window is the last w/Resolution buckets, the one in progress
	// included: a gate must see what happened seconds ago.
	end := store.Align(now).Add(store.Resolution)
	series := store.Series{Route: route, Backend: backend}

	e.ioMu.Lock()
	e.regMu.Lock()
	e.harvestLocked(now)
	local := e.localLocked(now)
	e.regMu.Unlock()
	sums, err := e.store.Sums(ctx, end, []time.Duration{w})
	e.ioMu.Unlock()
	if err != nil {
		return Burn{}, true, fmt.Errorf("burn rate of %s/%s: %w", route, backend, err)
	}
	var c store.Counts
	if cs := sums[series]; len(cs) == 1 {
		c = cs[0]
	}
	for _, lb := range local {
		if lb.Series == series && !lb.Start.Before(end.Add(-w)) && lb.Start.Before(end) {
			c = c.Add(lb.Counts)
		}
	}
	b = Burn{Window: w, Events: c.Total, Errors: c.Errors, Slow: c.Slow}
	if c.Total > 0 {
		if a := rc.slo.Availability; a > 0 {
			b.Availability = float64(c.Errors) / float64(c.Total) / (1 - a/100)
		}
		if l := rc.slo.Latency; l != nil && l.Target > 0 {
			b.Latency = float64(c.Slow) / float64(c.Total) / (1 - l.Target/100)
		}
	}
	return b, true, nil
}
