package slo

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"time"

	"torii/internal/store"
)

// Notifier delivers alert changes to the owning team's channels
// (internal/alert implements it). Notify must not block for long: it
// queues the notification and retries delivery on its own.
type Notifier interface {
	Notify(ctx context.Context, n Notification)
}

// Notification is one alert change, shaped like an Alertmanager v2 alert.
type Notification struct {
	// Key identifies the alert: "route/sli/severity", e.g.
	// "items/availability/page".
	Key string `json:"key"`
	// Firing reports whether the alert fires (false: it resolved).
	Firing bool `json:"firing"`
	// StartsAt is when it started firing.
	StartsAt time.Time `json:"starts_at"`
	// EndsAt is when it resolved; zero while firing.
	EndsAt time.Time `json:"ends_at,omitzero"`
	// Labels are alertname (ToriiSLOPage or ToriiSLOTicket), severity
	// (page or ticket), route, sli (availability or latency) and team.
	Labels map[string]string `json:"labels"`
	// Annotations are summary and description (with the burn rates).
	Annotations map[string]string `json:"annotations"`
	// Team is the owning team, whose channels receive it; "" when the
	// route has no owner.
	Team string `json:"team"`
}

// alert is the state of one (route, sli, severity) alert. Guarded by
// Engine.ioMu.
type alert struct {
	key      string
	firing   bool
	started  time.Time // when it last started firing
	since    time.Time // when it last changed; zero: never fired
	notified bool      // the current state was sent (or another replica holds it)
	reason   string    // the conditions holding at the last evaluation
	team     string
	labels   map[string]string
	annots   map[string]string
}

func alertKey(route, sli string, sev Severity) string {
	return route + "/" + sli + "/" + string(sev)
}

// state returns the alert's state for the API: inactive, firing or
// resolved.
func (a *alert) state() string {
	switch {
	case a == nil || a.since.IsZero():
		return "inactive"
	case a.firing:
		return "firing"
	}
	return "resolved"
}

// restore loads the persisted alert states, once.
func (e *Engine) restoreLocked(ctx context.Context) error {
	if e.restored {
		return nil
	}
	states, err := e.store.Alerts(ctx)
	if err != nil {
		return fmt.Errorf("restore slo alerts: %w", err)
	}
	for _, s := range states {
		a := &alert{key: s.Key, firing: s.Firing, since: s.Since, notified: s.Notified,
			labels: maps.Clone(s.Labels), annots: maps.Clone(s.Annotations)}
		if a.firing {
			a.started = s.Since
		}
		a.team = a.labels["team"]
		e.alerts[s.Key] = a
	}
	e.restored = true
	return nil
}

// transition records that a's condition holds (or not) at now and
// reports whether its state changed.
func (a *alert) transition(holds bool, now time.Time) bool {
	switch {
	case holds && !a.firing:
		a.firing, a.started, a.since = true, now, now
	case !holds && a.firing:
		a.firing, a.since = false, now
	default:
		return false
	}
	a.notified = false
	return true
}

// deliverLocked sends a's state if it has not been sent: only the
// replica holding the alert's lease sends it, then persists the state.
// A failed lease (store down) is retried at the next evaluation.
func (e *Engine) deliverLocked(ctx context.Context, a *alert) {
	if a.notified {
		return
	}
	ok, err := e.store.TryLease(ctx, "alert:"+a.key, e.replica, 2*EvalInterval)
	if err != nil {
		e.log.Warn("slo alert lease failed; retrying at the next evaluation", "alert", a.key, "err", err)
		return
	}
	a.notified = true
	if !ok {
		return // another replica sends it and persists the state
	}
	// A lease only spans two evaluations, and replicas see each other's
	// counts a flush late, so another replica may have sent this very
	// change already under an earlier lease: the stored state says so.
	if st, found := e.storedAlert(ctx, a.key); found && st.Notified && st.Firing == a.firing {
		return
	}
	if e.notifier != nil {
		n := Notification{Key: a.key, Firing: a.firing, StartsAt: a.started, Labels: maps.Clone(a.labels), Annotations: maps.Clone(a.annots), Team: a.team}
		if !a.firing {
			n.EndsAt = a.since
		}
		e.notifier.Notify(ctx, n)
	}
	st := store.AlertState{Key: a.key, Firing: a.firing, Since: a.since, Notified: true, Labels: a.labels, Annotations: a.annots}
	if err := e.store.SaveAlert(ctx, st); err != nil {
		e.log.Warn("save slo alert state", "alert", a.key, "err", err)
	}
}

// storedAlert returns the persisted state of the alert key, if any.
func (e *Engine) storedAlert(ctx context.Context, key string) (store.AlertState, bool) {
	all, err := e.store.Alerts(ctx)
	if err != nil {
		return store.AlertState{}, false
	}
	for _, st := range all {
		if st.Key == key {
			return st, true
		}
	}
	return store.AlertState{}, false
}

// describe fills a's labels and annotations from the evaluation.
func (a *alert) describe(rc *routeConf, s *SLIStatus, sev Severity) {
	name := "ToriiSLOPage"
	if sev == Ticket {
		name = "ToriiSLOTicket"
	}
	a.team = rc.owner
	a.labels = map[string]string{"alertname": name, "severity": string(sev), "route": rc.name, "sli": s.SLI, "team": rc.owner}
	var b strings.Builder
	fmt.Fprintf(&b, "SLO %g%% %s over %s; burn rates", s.Target, s.SLI, WindowName(rc.period))
	for _, c := range Conditions {
		if c.Severity != sev {
			continue
		}
		f := c.Factor(rc.period)
		fmt.Fprintf(&b, " %s %.3g×/%.3g× (fires at %.3g×);", c.Name(), s.BurnRate[WindowName(c.Long)], s.BurnRate[WindowName(c.Short)], f)
	}
	fmt.Fprintf(&b, " error budget remaining %.1f%%.", 100*s.BudgetRemaining)
	what := "burning its " + s.SLI + " error budget"
	if a.reason != "" {
		what += " (" + a.reason + ")"
	}
	a.annots = map[string]string{
		"summary":     fmt.Sprintf("Route %s is %s", rc.name, what),
		"description": b.String(),
	}
}
