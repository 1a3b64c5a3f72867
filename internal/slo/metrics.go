package slo

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the torii_slo_* metrics. The three counters are read from
// the rings at scrape time, so Record pays nothing for them.
type metrics struct {
	e *Engine

	requests, errors, slow *prometheus.Desc

	sli, burn *prometheus.GaugeVec // {route, sli, window}
	budget    *prometheus.GaugeVec // {route, sli}
	firing    *prometheus.GaugeVec // {route, sli, severity}

	flushFailures, dropped prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, e *Engine) (*metrics, error) {
	m := &metrics{
		e: e,
		requests: prometheus.NewDesc("torii_slo_requests_total",
			"Requests counted toward the route's SLO (client-gone and shadow requests excluded).", []string{"route"}, nil),
		errors: prometheus.NewDesc("torii_slo_errors_total",
			"Counted requests that failed the availability SLI.", []string{"route"}, nil),
		slow: prometheus.NewDesc("torii_slo_slow_requests_total",
			"Counted requests slower than the latency SLO's bound (time to first byte).", []string{"route"}, nil),
		sli: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "torii_slo_sli",
			Help: "Share of good events over the window (0 to 1), from every replica's counts."}, []string{"route", "sli", "window"}),
		burn: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "torii_slo_burn_rate",
			Help: "Error ratio over the window divided by the error budget ratio (1 - target)."}, []string{"route", "sli", "window"}),
		budget: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "torii_slo_error_budget_remaining",
			Help: "Share of the period's error budget left: 1 untouched, 0 spent, negative overspent."}, []string{"route", "sli"}),
		firing: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "torii_slo_alert_firing",
			Help: "1 when the burn-rate alert fires, else 0."}, []string{"route", "sli", "severity"}),
		flushFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "torii_slo_flush_failures_total",
			Help: "Flushes of SLO buckets to the store that failed (the buckets are kept and retried)."}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "torii_slo_dropped_buckets_total",
			Help: "Unflushed SLO buckets dropped because the store stayed down longer than an hour."}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m, m.sli, m.burn, m.budget, m.firing, m.flushFailures, m.dropped} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				// The metrics are registered once per process; a second
				// engine on the same registry (tests) reports through
				// the first.
				continue
			}
			return nil, err
		}
	}
	return m, nil
}

// Describe implements prometheus.Collector for the counters.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.requests
	ch <- m.errors
	ch <- m.slow
}

// Collect implements prometheus.Collector: each route's harvested counts
// plus its live slots.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	e := m.e
	e.regMu.Lock()
	defer e.regMu.Unlock()
	for s, r := range e.rings {
		if s.Backend != "" {
			continue
		}
		c := r.cum
		for i := range r.slots {
			sl := &r.slots[i]
			c.Total += sl.total.Load()
			c.Errors += sl.errors.Load()
			c.Slow += sl.slow.Load()
		}
		ch <- prometheus.MustNewConstMetric(m.requests, prometheus.CounterValue, float64(c.Total), s.Route)
		ch <- prometheus.MustNewConstMetric(m.errors, prometheus.CounterValue, float64(c.Errors), s.Route)
		ch <- prometheus.MustNewConstMetric(m.slow, prometheus.CounterValue, float64(c.Slow), s.Route)
	}
}

// deleteRoute drops every series of a route whose SLO changed or went.
func (m *metrics) deleteRoute(route string) {
	l := prometheus.Labels{"route": route}
	m.sli.DeletePartialMatch(l)
	m.burn.DeletePartialMatch(l)
	m.budget.DeletePartialMatch(l)
	m.firing.DeletePartialMatch(l)
}

// deleteWindow drops a window's SLI and burn rate when it has no events.
func (m *metrics) deleteWindow(route, sli, window string) {
	m.sli.DeleteLabelValues(route, sli, window)
	m.burn.DeleteLabelValues(route, sli, window)
}
