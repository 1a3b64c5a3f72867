package slo

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"torii/internal/store"
)

// The SLIs.
const (
	Availability = "availability"
	Latency      = "latency"
)

// RouteStatus is one route's SLOs as /api/v1/slos shows them.
type RouteStatus struct {
	// Route is the route's name.
	Route string `json:"route"`
	// Owner is the owning team; "" when none.
	Owner string `json:"owner,omitempty"`
	// Period is the SLO period, e.g. "30d".
	Period string `json:"period"`
	// MinEvents is the low-traffic guard: a window with fewer requests
	// cannot fire an alert.
	MinEvents int64 `json:"min_events"`
	// ErrorStatuses are the statuses failing availability besides gateway
	// errors.
	ErrorStatuses []string `json:"error_statuses"`
	// Availability and Latency are the SLIs; nil when not configured.
	Availability *SLIStatus `json:"availability,omitempty"`
	Latency      *SLIStatus `json:"latency,omitempty"`
	// Backends are the per-upstream SLIs, to compare the sides of a
	// migration.
	Backends []BackendStatus `json:"backends,omitempty"`
	// EvaluatedAt is the time of the evaluation shown; zero before the
	// first one.
	EvaluatedAt time.Time `json:"evaluated_at,omitzero"`
}

// SLIStatus is one SLI of a route. Maps are keyed by window ("5m", "1h",
// "30d"...); a window without events has no SLI or burn rate.
type SLIStatus struct {
	// SLI is "availability" or "latency".
	SLI string `json:"sli"`
	// Target is the objective in percent, e.g. 99.9.
	Target float64 `json:"target"`
	// Under is the latency bound, e.g. "300ms"; latency only.
	Under string `json:"under,omitempty"`
	// Events are the requests counted per window.
	Events map[string]int64 `json:"events"`
	// Bad are the failed (availability) or slow (latency) ones.
	Bad map[string]int64 `json:"bad"`
	// Ratio is the share of good events per window, 0 to 1.
	Ratio map[string]float64 `json:"sli_ratio"`
	// BurnRate is the error ratio over the allowed one (1 − target), per
	// window: 1 spends the budget exactly over the period.
	BurnRate map[string]float64 `json:"burn_rate"`
	// BudgetRemaining is 1 − bad / ((1 − target) × events) over the
	// period: 1 untouched, 0 spent, negative overspent.
	BudgetRemaining float64 `json:"budget_remaining"`
	// Alerts are the page and ticket alerts.
	Alerts []AlertStatus `json:"alerts"`
}

// AlertStatus is one alert's state.
type AlertStatus struct {
	// Severity is "page" or "ticket".
	Severity Severity `json:"severity"`
	// State is "inactive", "firing" or "resolved".
	State string `json:"state"`
	// Since is when it started firing or resolved.
	Since time.Time `json:"since,omitzero"`
	// Conditions are the window pairs holding at the last evaluation,
	// e.g. "1h/5m".
	Conditions []string `json:"conditions,omitempty"`
}

// BackendStatus is one upstream's SLIs within a route, per window.
type BackendStatus struct {
	// Upstream is the upstream's name.
	Upstream string `json:"upstream"`
	// Events are its requests per window, shadow requests included.
	Events map[string]int64 `json:"events"`
	// Availability and Latency are the good ratios per window.
	Availability map[string]float64 `json:"availability,omitempty"`
	Latency      map[string]float64 `json:"latency,omitempty"`
}

// windowsFor returns the fixed windows plus the routes' periods.
func windowsFor(routes []*routeConf) []time.Duration {
	ws := slices.Clone(Windows)
	for _, rc := range routes {
		if rc.slo != nil && !slices.Contains(ws, rc.period) {
			ws = append(ws, rc.period)
		}
	}
	return ws
}

// Evaluate computes every route's SLIs, burn rates and budgets at now
// from the store's sums plus this replica's unflushed counts, updates
// the metrics and the alerts, and notifies alert changes. Run calls it
// every EvalInterval.
func (e *Engine) Evaluate(ctx context.Context, now time.Time) error {
	e.ioMu.Lock()
	defer e.ioMu.Unlock()
	if err := e.restoreLocked(ctx); err != nil {
		return fmt.Errorf("evaluate slos: %w", err)
	}
	e.regMu.Lock()
	e.harvestLocked(now)
	local := e.localLocked(now)
	e.regMu.Unlock()

	e.mu.RLock()
	routes := e.routes
	e.mu.RUnlock()
	windows := windowsFor(routes)
	sums, err := e.store.Sums(ctx, now, windows)
	if err != nil {
		return fmt.Errorf("evaluate slos: %w", err)
	}
	if sums == nil {
		sums = map[store.Series][]store.Counts{}
	}
	for _, b := range local {
		cs := sums[b.Series]
		if cs == nil {
			cs = make([]store.Counts, len(windows))
			sums[b.Series] = cs
		}
		for i, w := range windows {
			if !b.Start.Before(now.Add(-w)) && b.Start.Before(now) {
				cs[i] = cs[i].Add(b.Counts)
			}
		}
	}

	results := map[string]*RouteStatus{}
	live := map[string]bool{}
	for _, rc := range routes {
		if rc.slo == nil {
			continue
		}
		rs := e.evaluateRoute(ctx, rc, windows, sums, now, live)
		results[rc.name] = rs
	}
	// Alerts of routes or SLIs no longer configured resolve.
	for key, a := range e.alerts {
		if live[key] {
			continue
		}
		if a.transition(false, now) || !a.notified {
			e.deliverLocked(ctx, a)
		}
		if a.notified {
			delete(e.alerts, key)
		}
	}
	e.mu.Lock()
	e.results = results
	e.mu.Unlock()
	return nil
}

// evaluateRoute evaluates one route and its alerts; live collects the
// keys of its alerts.
func (e *Engine) evaluateRoute(ctx context.Context, rc *routeConf, windows []time.Duration, sums map[store.Series][]store.Counts, now time.Time, live map[string]bool) *RouteStatus {
	rs := &RouteStatus{Route: rc.name, Owner: rc.owner, Period: WindowName(rc.period), MinEvents: rc.minEvents,
		ErrorStatuses: rc.slo.ErrorStatuses, EvaluatedAt: now}
	if len(rs.ErrorStatuses) == 0 {
		rs.ErrorStatuses = []string{"5xx"}
	}
	counts := sums[store.Series{Route: rc.name}]
	if counts == nil {
		counts = make([]store.Counts, len(windows))
	}
	if rc.slo.Availability > 0 {
		rs.Availability = e.evaluateSLI(ctx, rc, Availability, rc.slo.Availability, windows, counts, now, live)
	}
	if l := rc.slo.Latency; l != nil {
		rs.Latency = e.evaluateSLI(ctx, rc, Latency, l.Target, windows, counts, now, live)
		rs.Latency.Under = l.Under.String()
	}
	for _, b := range rc.backends {
		bs := BackendStatus{Upstream: b, Events: map[string]int64{}}
		bc := sums[store.Series{Route: rc.name, Backend: b}]
		for i, w := range windows {
			if bc == nil || bc[i].Total == 0 {
				continue
			}
			name := WindowName(w)
			bs.Events[name] = bc[i].Total
			if rs.Availability != nil {
				if bs.Availability == nil {
					bs.Availability = map[string]float64{}
				}
				bs.Availability[name] = 1 - float64(bc[i].Errors)/float64(bc[i].Total)
			}
			if rs.Latency != nil {
				if bs.Latency == nil {
					bs.Latency = map[string]float64{}
				}
				bs.Latency[name] = 1 - float64(bc[i].Slow)/float64(bc[i].Total)
			}
		}
		rs.Backends = append(rs.Backends, bs)
	}
	return rs
}

// evaluateSLI computes one SLI's ratios, burn rates and budget, updates
// its metrics and runs its alerts.
func (e *Engine) evaluateSLI(ctx context.Context, rc *routeConf, sli string, targetPct float64, windows []time.Duration, counts []store.Counts, now time.Time, live map[string]bool) *SLIStatus {
	allowed := 1 - targetPct/100 // the error budget as a ratio
	s := &SLIStatus{SLI: sli, Target: targetPct, Events: map[string]int64{}, Bad: map[string]int64{},
		Ratio: map[string]float64{}, BurnRate: map[string]float64{}, BudgetRemaining: 1}
	bad := func(c store.Counts) int64 {
		if sli == Latency {
			return c.Slow
		}
		return c.Errors
	}
	burn := make([]float64, len(windows))
	for i, w := range windows {
		c := counts[i]
		name := WindowName(w)
		if c.Total == 0 {
			e.m.deleteWindow(rc.name, sli, name)
			continue
		}
		ratio := float64(bad(c)) / float64(c.Total)
		burn[i] = ratio / allowed
		s.Events[name], s.Bad[name] = c.Total, bad(c)
		s.Ratio[name], s.BurnRate[name] = 1-ratio, burn[i]
		e.m.sli.WithLabelValues(rc.name, sli, name).Set(1 - ratio)
		e.m.burn.WithLabelValues(rc.name, sli, name).Set(burn[i])
		if w == rc.period {
			s.BudgetRemaining = 1 - float64(bad(c))/(allowed*float64(c.Total))
		}
	}
	e.m.budget.WithLabelValues(rc.name, sli).Set(s.BudgetRemaining)

	// holds reports whether window w has enough events (the low-traffic
	// guard) and burns at least f. The tolerance keeps a burn rate exactly
	// at the factor from missing it by a floating-point rounding.
	holds := func(w time.Duration, f float64) bool {
		i := slices.Index(windows, w)
		return counts[i].Total >= rc.minEvents && burn[i] >= f*(1-1e-9)
	}
	for _, sev := range []Severity{Page, Ticket} {
		var reasons []string
		for _, c := range Conditions {
			f := c.Factor(rc.period)
			if c.Severity == sev && holds(c.Long, f) && holds(c.Short, f) {
				reasons = append(reasons, c.Name())
			}
		}
		key := alertKey(rc.name, sli, sev)
		live[key] = true
		a := e.alerts[key]
		if a == nil {
			a = &alert{key: key, notified: true}
			e.alerts[key] = a
		}
		a.reason = strings.Join(reasons, ", ")
		if a.transition(len(reasons) > 0, now) || !a.notified {
			a.describe(rc, s, sev)
			e.deliverLocked(ctx, a)
		}
		firing := 0.0
		if a.firing {
			firing = 1
		}
		e.m.firing.WithLabelValues(rc.name, sli, string(sev)).Set(firing)
		s.Alerts = append(s.Alerts, AlertStatus{Severity: sev, State: a.state(), Since: a.since, Conditions: reasons})
	}
	return s
}
