package config

import (
	"fmt"
	"maps"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Defaults and validation of teams, ownership, SLOs and the store (issue
// #5; docs/slo.md and docs/slo-rules.md).

// Defaults of the store and of SLOs, documented on their fields.
const (
	DefaultStoreSQLite        = "torii.db"
	DefaultStoreFlushInterval = 10 * time.Second
	DefaultStoreRetention     = 35 * 24 * time.Hour
	DefaultSLOPeriod          = 30 * 24 * time.Hour
	DefaultSLOErrorStatus     = "5xx"
	DefaultSLOMinEvents       = 10
)

// The SLO periods allowed: the burn-rate factors of the multiwindow alerts
// are defined for these (Google SRE Workbook, "Alerting on SLOs").
var sloPeriods = []time.Duration{28 * 24 * time.Hour, 30 * 24 * time.Hour}

// Bounds of the store's settings.
const (
	minFlushInterval = time.Second
	// longestAlertWindow is the longest burn-rate window (the ticket's
	// 3d); retention must keep it on top of the longest period.
	longestAlertWindow = 3 * 24 * time.Hour
	// maxSLOTarget keeps an error budget above one request in a million;
	// beyond it the budget is below what the windows can resolve.
	maxSLOTarget = 99.9999
)

func (c *Config) applySLODefaults() {
	s := &c.Store
	if s.Postgres == "" {
		setString(&s.SQLite, DefaultStoreSQLite)
	}
	setDuration(&s.FlushInterval, DefaultStoreFlushInterval)
	setDuration(&s.Retention, DefaultStoreRetention)
	c.DefaultSLO.applyDefaults()
}

func (r *Route) applySLODefaults(c *Config) {
	setString(&r.Owner, c.DefaultOwner)
	if r.SLO == nil && c.DefaultSLO != nil {
		r.SLO = c.DefaultSLO.clone()
	}
	r.SLO.applyDefaults()
}

// applyDefaults fills an SLO's period, error statuses and minimum events.
// A nil s is left nil.
func (s *SLO) applyDefaults() {
	if s == nil {
		return
	}
	setDuration(&s.Period, DefaultSLOPeriod)
	if len(s.ErrorStatuses) == 0 {
		s.ErrorStatuses = []string{DefaultSLOErrorStatus}
	}
	setInt(&s.MinEvents, DefaultSLOMinEvents)
}

// clone returns a deep copy of s, so that routes sharing default_slo do not
// share its slices and pointers.
func (s *SLO) clone() *SLO {
	out := *s
	if s.Latency != nil {
		l := *s.Latency
		out.Latency = &l
	}
	out.ErrorStatuses = slices.Clone(s.ErrorStatuses)
	return &out
}

func (v *checker) slos() {
	c := v.c
	v.store()
	for _, name := range slices.Sorted(maps.Keys(c.Teams)) {
		v.team(join("teams", name), name, c.Teams[name])
	}
	if c.DefaultOwner != "" {
		v.owner("default_owner", c.DefaultOwner)
	}
	if c.DefaultSLO != nil {
		v.slo("default_slo", c.DefaultSLO)
	}
	for i := range c.Routes {
		p := "routes[" + strconv.Itoa(i) + "]"
		r := &c.Routes[i]
		// An owner or an SLO taken from the defaults was checked there;
		// report it once, not on every route.
		if r.Owner != "" && r.Owner != c.DefaultOwner {
			v.owner(p+".owner", r.Owner)
		}
		if r.SLO != nil && !(c.DefaultSLO != nil && sameSLO(r.SLO, c.DefaultSLO)) {
			v.slo(p+".slo", r.SLO)
		}
	}
	v.retention()
}

// sameSLO reports whether a and b are equal, as a route's copy of
// default_slo is.
func sameSLO(a, b *SLO) bool {
	return a.Availability == b.Availability && a.Period == b.Period && a.MinEvents == b.MinEvents &&
		slices.Equal(a.ErrorStatuses, b.ErrorStatuses) &&
		(a.Latency == nil) == (b.Latency == nil) && (a.Latency == nil || *a.Latency == *b.Latency)
}

func (v *checker) store() {
	s := v.c.Store
	if s.SQLite != "" && s.Postgres != "" {
		v.addf("store", "set one of sqlite and postgres, not both: sqlite for one replica, postgres for several sharing counts")
	}
	if s.Postgres != "" {
		if msg := checkPostgresDSN(s.Postgres); msg != "" {
			v.addf("store.postgres", "%s", msg)
		}
	}
	if d := s.FlushInterval.D(); d > 0 && d < minFlushInterval {
		v.addf("store.flush_interval", "must be %s or more, got %s", minFlushInterval, d)
	}
}

// retention checks that old buckets outlive the longest SLO period and the
// longest alert window on top of it.
func (v *checker) retention() {
	var longest time.Duration
	consider := func(s *SLO) {
		if s != nil && slices.Contains(sloPeriods, s.Period.D()) {
			longest = max(longest, s.Period.D())
		}
	}
	consider(v.c.DefaultSLO)
	for i := range v.c.Routes {
		consider(v.c.Routes[i].SLO)
	}
	ret := v.c.Store.Retention.D()
	if need := longest + longestAlertWindow; longest > 0 && ret >= 0 && ret < need {
		v.addf("store.retention", "must be at least the longest SLO period (%s) plus the 3d alert window, %s; got %s",
			days(longest), days(need), days(ret))
	}
}

// checkPostgresDSN returns what is wrong with a PostgreSQL connection
// string, a URL or libpq key=value pairs, or "". Messages never quote the
// string: it may hold a password.
func checkPostgresDSN(dsn string) string {
	const want = `want a URL ("postgres://torii@db.internal:5432/torii") or key=value pairs ("host=db.internal user=torii dbname=torii")`
	if scheme, _, ok := strings.Cut(dsn, "://"); ok && !strings.ContainsAny(scheme, " =") {
		schemes := []string{"postgres", "postgresql"}
		if !slices.Contains(schemes, scheme) {
			return unknownValue("scheme", scheme, schemes)
		}
		u, err := url.Parse(dsn)
		if err != nil {
			return "invalid PostgreSQL URL; " + want
		}
		if _, err := url.ParseQuery(u.RawQuery); err != nil {
			return "invalid query in the PostgreSQL URL; " + want
		}
		return ""
	}
	if err := parseConnInfo(dsn); err != nil {
		return "invalid PostgreSQL connection string: " + err.Error() + "; " + want
	}
	return ""
}

// parseConnInfo checks the syntax of libpq key=value pairs (PostgreSQL
// docs, "Connection Strings", 34.1.1.1): keys are words, spaces may
// surround '=', a value is a word or single-quoted, and a backslash
// escapes the next character. Errors name keys, never values.
func parseConnInfo(s string) error {
	i, n := 0, 0
	skip := func() {
		for i < len(s) && strings.IndexByte(" \t\n\r\f\v", s[i]) >= 0 {
			i++
		}
	}
	for {
		skip()
		if i == len(s) {
			if n == 0 {
				return fmt.Errorf("no key=value pairs")
			}
			return nil
		}
		n++
		start := i
		for i < len(s) && (s[i] == '_' || s[i] >= 'a' && s[i] <= 'z' || s[i] >= 'A' && s[i] <= 'Z' || s[i] >= '0' && s[i] <= '9') {
			i++
		}
		key := s[start:i]
		if key == "" {
			return fmt.Errorf("pair %d does not start with a key", n)
		}
		skip()
		if i == len(s) || s[i] != '=' {
			return fmt.Errorf("pair %d has no '='", n)
		}
		i++
		skip()
		if i < len(s) && s[i] == '\'' {
			i++
			for i < len(s) && s[i] != '\'' {
				if s[i] == '\\' {
					i++
				}
				i++
			}
			if i >= len(s) {
				return fmt.Errorf("the value of %q has no closing quote", key)
			}
			i++
			continue
		}
		for i < len(s) && strings.IndexByte(" \t\n\r\f\v", s[i]) < 0 {
			if s[i] == '\\' {
				i++
			}
			i++
		}
	}
}

func (v *checker) team(p, name string, t *Team) {
	if !validName(name) {
		v.addf(p, "invalid team name %q; use letters, digits, '-', '_' and '.'", name)
	}
	if t == nil {
		return
	}
	for i, ch := range t.Alerts {
		ap := p + ".alerts[" + strconv.Itoa(i) + "]"
		switch {
		case count(ch.Alertmanager != "", ch.Webhook != "") != 1:
			v.addf(ap, "set exactly one of alertmanager and webhook")
		case ch.Alertmanager != "":
			if !isHTTPURL(ch.Alertmanager) {
				v.addf(ap+".alertmanager", "invalid URL %q; want an absolute http or https URL, e.g. \"http://127.0.0.1:9093\"", redactURL(ch.Alertmanager))
			}
		case !isHTTPURL(ch.Webhook):
			v.addf(ap+".webhook", "invalid URL %q; want an absolute http or https URL, e.g. \"https://chat.example.com/hooks/torii\"", redactWebhook(ch.Webhook))
		}
	}
}

// isHTTPURL reports whether s is an absolute http or https URL with a host.
func isHTTPURL(s string) bool {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return false
	}
	if u.Port() == "" {
		return validHostPort(u.Hostname()) // "[::1]" alone does not split
	}
	return validHostPort(u.Host)
}

// owner checks that a route owner or default_owner names a declared team.
func (v *checker) owner(p, name string) {
	if _, ok := v.c.Teams[name]; ok {
		return
	}
	teams := slices.Sorted(maps.Keys(v.c.Teams))
	if s := didYouMean(name, teams); s != "" {
		v.addf(p, "unknown team %q%s", name, s)
		return
	}
	v.addf(p, "unknown team %q; declare it under teams, e.g. teams: {%s: {}}", name, name)
}

func (v *checker) slo(p string, s *SLO) {
	if s.Availability == 0 && s.Latency == nil {
		v.addf(p, "set availability, latency or both; this slo measures nothing")
	}
	if s.Availability != 0 {
		v.percent(p+".availability", s.Availability)
	}
	if l := s.Latency; l != nil {
		if l.Under == 0 {
			v.addf(p+".latency.under", "under is required: the latency bound, e.g. \"300ms\"")
		}
		v.percent(p+".latency.target", l.Target)
	}
	if d := s.Period.D(); d >= 0 && !slices.Contains(sloPeriods, d) {
		v.addf(p+".period", "must be 28d or 30d, got %s", days(d))
	}
	seen := map[string]int{}
	for i, st := range s.ErrorStatuses {
		sp := p + ".error_statuses[" + strconv.Itoa(i) + "]"
		if !validErrorStatus(st) {
			if s := didYouMean(st, []string{"5xx", "4xx"}); s != "" {
				v.addf(sp, "invalid error status %q%s", st, s)
			} else {
				v.addf(sp, "invalid error status %q; want \"5xx\", \"4xx\" or a code from 400 to 599", st)
			}
		} else if j, dup := seen[st]; dup {
			v.addf(sp, "duplicate error status %q, also error_statuses[%d]", st, j)
		} else {
			seen[st] = i
		}
	}
	v.atLeast(p+".min_events", s.MinEvents, 1)
}

// percent checks an SLO target: a percentage strictly between 0 and 100,
// and at most maxSLOTarget.
func (v *checker) percent(p string, x float64) {
	switch {
	case !(x > 0 && x < 100):
		v.addf(p, "must be a percentage between 0 and 100 (both excluded), e.g. 99.9, got %v", x)
	case x > maxSLOTarget:
		v.addf(p, "%v leaves an error budget under one request in a million; at most %v", x, maxSLOTarget)
	}
}

// validErrorStatus reports whether s is "5xx", "4xx" or a code from 400 to
// 599.
func validErrorStatus(s string) bool {
	if s == "5xx" || s == "4xx" {
		return true
	}
	n, err := strconv.Atoi(s)
	return err == nil && len(s) == 3 && n >= 400 && n <= 599
}

// days formats d in whole days ("30d") when it is a whole number of them,
// and as a Go duration otherwise.
func days(d time.Duration) string {
	const day = 24 * time.Hour
	if d != 0 && d%day == 0 && d/day < math.MaxInt32 {
		return strconv.FormatInt(int64(d/day), 10) + "d"
	}
	return d.String()
}
