package slo

import (
	"fmt"
	"time"
)

const day = 24 * time.Hour

// Windows are the fixed evaluation windows; each route's period is
// evaluated as well.
var Windows = []time.Duration{5 * time.Minute, 30 * time.Minute, time.Hour, 2 * time.Hour, 6 * time.Hour, day, 3 * day}

// DefaultPeriod is the SLO period when the config names none.
const DefaultPeriod = 30 * day

// DefaultMinEvents is the low-traffic guard when the config names none.
const DefaultMinEvents = 10

// EvalInterval is how often Run evaluates the SLOs.
const EvalInterval = 10 * time.Second

// Severity is an alert's urgency.
type Severity string

// The two severities of the Google SRE Workbook's multiwindow
// multi-burn-rate alerts.
const (
	Page   Severity = "page"
	Ticket Severity = "ticket"
)

// Condition is one multiwindow burn-rate condition: it holds when both
// windows burn at least Factor times the sustainable rate.
type Condition struct {
	Severity Severity
	// Long and Short are the windows; Short makes the alert reset soon
	// after the burning stops.
	Long, Short time.Duration
	// BudgetShare is the share of the period's budget the long window
	// consumes at the threshold: 2 %, 5 % and 10 % (SRE Workbook table 5-8).
	BudgetShare float64
}

// Conditions are the SRE Workbook's recommended pairs ("Alerting on SLOs",
// multiwindow multi-burn-rate): for a 30-day period their factors are
// 14.4, 6, 3 and 1.
var Conditions = []Condition{
	{Page, time.Hour, 5 * time.Minute, 0.02},
	{Page, 6 * time.Hour, 30 * time.Minute, 0.05},
	{Ticket, day, 2 * time.Hour, 0.10},
	{Ticket, 3 * day, 6 * time.Hour, 0.10},
}

// Factor returns the burn rate at which c fires for an SLO over period:
// BudgetShare × period / Long, as Sloth scales it. 30 days gives 14.4, 6,
// 3 and 1; 28 days 13.44, 5.6, 2.8 and 0.9333.
func (c Condition) Factor(period time.Duration) float64 {
	return c.BudgetShare * float64(period) / float64(c.Long)
}

// Name returns the condition's windows, e.g. "1h/5m".
func (c Condition) Name() string { return WindowName(c.Long) + "/" + WindowName(c.Short) }

// WindowName formats a window the way labels and the API show it: "5m",
// "1h", "3d", "30d".
func WindowName(d time.Duration) string {
	switch {
	case d%day == 0:
		return fmt.Sprintf("%dd", d/day)
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}
