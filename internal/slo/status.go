package slo

import "slices"

// Status returns every route with an SLO, in config order, with the
// results of the last evaluation (a route not yet evaluated has its
// targets and no data). For /api/v1/slos.
func (e *Engine) Status() []RouteStatus {
	e.mu.RLock()
	defer e.mu.RUnlock()
	out := []RouteStatus{}
	for _, rc := range e.routes {
		if rc.slo == nil {
			continue
		}
		if rs := e.results[rc.name]; rs != nil {
			out = append(out, *rs)
			continue
		}
		rs := RouteStatus{Route: rc.name, Owner: rc.owner, Period: WindowName(rc.period), MinEvents: rc.minEvents, ErrorStatuses: rc.slo.ErrorStatuses}
		if len(rs.ErrorStatuses) == 0 {
			rs.ErrorStatuses = []string{"5xx"}
		}
		if rc.slo.Availability > 0 {
			rs.Availability = &SLIStatus{SLI: Availability, Target: rc.slo.Availability, BudgetRemaining: 1}
		}
		if l := rc.slo.Latency; l != nil {
			rs.Latency = &SLIStatus{SLI: Latency, Target: l.Target, Under: l.Under.String(), BudgetRemaining: 1}
		}
		out = append(out, rs)
	}
	return out
}

// TeamStatus is a team's coverage map, for /api/v1/teams/{team}.
type TeamStatus struct {
	// Team is the team's name.
	Team string `json:"team"`
	// Known reports whether the config declares the team; the admin API
	// answers 404 for an unknown team that owns no route.
	Known bool `json:"known"`
	// Routes are the routes it owns, in config order, with or without SLO.
	Routes []TeamRoute `json:"routes"`
}

// TeamRoute is one route of a team.
type TeamRoute struct {
	// Route is the route's name.
	Route string `json:"route"`
	// HasSLO reports whether the route has an SLO (coverage).
	HasSLO bool `json:"has_slo"`
	// Availability and Latency are the error budgets remaining over the
	// period (1 untouched, 0 spent); nil without that SLI.
	Availability *float64 `json:"availability_budget_remaining,omitempty"`
	Latency      *float64 `json:"latency_budget_remaining,omitempty"`
	// Firing are the keys of its firing alerts, e.g. "items/latency/page".
	Firing []string `json:"firing,omitempty"`
}

// Team returns the routes the named team owns and their budgets.
func (e *Engine) Team(name string) TeamStatus {
	e.mu.RLock()
	defer e.mu.RUnlock()
	ts := TeamStatus{Team: name, Known: e.teams[name], Routes: []TeamRoute{}}
	for _, rc := range e.routes {
		if rc.owner != name {
			continue
		}
		tr := TeamRoute{Route: rc.name, HasSLO: rc.slo != nil}
		if rs := e.results[rc.name]; rs != nil {
			for _, s := range []*SLIStatus{rs.Availability, rs.Latency} {
				if s == nil {
					continue
				}
				b := s.BudgetRemaining
				if s.SLI == Availability {
					tr.Availability = &b
				} else {
					tr.Latency = &b
				}
				for _, a := range s.Alerts {
					if a.State == "firing" {
						tr.Firing = append(tr.Firing, alertKey(rc.name, s.SLI, a.Severity))
					}
				}
			}
		}
		slices.Sort(tr.Firing)
		ts.Routes = append(ts.Routes, tr)
	}
	return ts
}
