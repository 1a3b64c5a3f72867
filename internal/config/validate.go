package config

import (
	"fmt"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// Validate checks c and returns every problem as a Problems, or nil. It
// expects the defaults to be filled: Parse does that and calls Validate's
// checks itself; a Config built in code should call ApplyDefaults first.
// Problems carry lines when c came from Parse.
func (c *Config) Validate() error {
	probs := c.check()
	for i := range probs {
		probs[i].Source = c.source
	}
	probs.sort()
	return probs.err()
}

// checker collects the problems of one config.
type checker struct {
	c     *Config
	probs Problems
}

func (v *checker) addf(path, format string, args ...any) {
	v.probs = append(v.probs, Problem{Path: path, Line: v.c.lineNear(path), Msg: fmt.Sprintf(format, args...)})
}

// check returns every problem of c, unsorted and without source.
func (c *Config) check() Problems {
	v := &checker{c: c}
	v.durations(reflect.ValueOf(c).Elem(), "")
	v.listeners()
	for i := range c.Listen {
		p := "listen[" + strconv.Itoa(i) + "]"
		v.listenerTLS(p, &c.Listen[i])
		v.listenerLimits(p, &c.Listen[i])
	}
	v.redis()
	v.paths()
	v.cacheStore()
	v.slos()
	v.admin()
	v.cidrs("trusted_proxies", c.TrustedProxies)
	for _, name := range slices.Sorted(maps.Keys(c.Upstreams)) {
		v.upstream(join("upstreams", name), name, c.Upstreams[name])
	}
	v.routes()
	v.fraction("access_log.sample", c.AccessLog.Sample)
	v.tracing()
	if c.Shutdown.Grace == 0 {
		v.addf("shutdown.grace", "must be positive, e.g. \"30s\"")
	}
	return v.probs
}

// durations reports every negative Duration in the value tree under rv.
func (v *checker) durations(rv reflect.Value, path string) {
	switch rv.Kind() {
	case reflect.Pointer:
		if !rv.IsNil() {
			v.durations(rv.Elem(), path)
		}
	case reflect.Slice:
		for i := range rv.Len() {
			v.durations(rv.Index(i), path+"["+strconv.Itoa(i)+"]")
		}
	case reflect.Map:
		for it := rv.MapRange(); it.Next(); {
			v.durations(it.Value(), join(path, it.Key().String()))
		}
	case reflect.Struct:
		for i := range rv.NumField() {
			f := rv.Type().Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if f.IsExported() {
				v.durations(rv.Field(i), join(path, name))
			}
		}
	case reflect.Int64:
		if rv.Type() == durationType && rv.Int() < 0 {
			v.addf(path, "negative duration %s; durations must be zero or more", Duration(rv.Int()))
		}
	}
}

func (v *checker) listeners() {
	names := map[string]int{}
	for i, l := range v.c.Listen {
		p := "listen[" + strconv.Itoa(i) + "]"
		if l.Addr == "" {
			v.addf(p+".addr", "addr is required, e.g. \":8080\"")
		} else if msg := checkAddr(l.Addr, true); msg != "" {
			v.addf(p+".addr", "%s", msg)
		} else if j := v.conflict(l.Addr, i); j >= 0 {
			v.addf(p+".addr", "address %q conflicts with listen[%d] (%q); give each listener its own port", l.Addr, j, v.c.Listen[j].Addr)
		}
		// A name defaulted from a conflicting address is already reported.
		if j, dup := names[l.Name]; dup && l.Name != "" && l.Name != l.Addr {
			v.addf(p+".name", "duplicate listener name %q, also listen[%d]; names must be unique", l.Name, j)
		} else {
			names[l.Name] = i
		}
		if l.MaxHeaderBytes <= 0 {
			v.addf(p+".max_header_bytes", "must be a positive number of bytes, e.g. 65536")
		}
		if pp := l.ProxyProtocol; pp != nil {
			if len(pp.Trusted) == 0 {
				v.addf(p+".proxy_protocol.trusted", "list the load balancers allowed to send a PROXY header, e.g. [\"10.0.0.0/8\"]")
			}
			v.cidrs(p+".proxy_protocol.trusted", pp.Trusted)
		}
	}
}

// conflict returns the index of an earlier listener (before index before)
// whose address would collide with addr when binding, or -1.
func (v *checker) conflict(addr string, before int) int {
	for j := range before {
		if sameSocket(addr, v.c.Listen[j].Addr) {
			return j
		}
	}
	return -1
}

// sameSocket reports whether two valid listen addresses would bind the same
// port: the same non-zero port, and the same host or a wildcard host.
func sameSocket(a, b string) bool {
	ha, pa, errA := net.SplitHostPort(a)
	hb, pb, errB := net.SplitHostPort(b)
	if errA != nil || errB != nil || pa != pb || pa == "0" {
		return false
	}
	return strings.EqualFold(ha, hb) || isWildcardHost(ha) || isWildcardHost(hb)
}

func isWildcardHost(h string) bool {
	ip, err := netip.ParseAddr(h)
	return h == "" || (err == nil && ip.IsUnspecified())
}

func (v *checker) admin() {
	a := v.c.Admin
	if a.Disabled {
		return
	}
	if msg := checkAddr(a.Addr, true); msg != "" {
		v.addf("admin.addr", "%s", msg)
		return
	}
	if j := v.conflict(a.Addr, len(v.c.Listen)); j >= 0 {
		v.addf("admin.addr", "admin address %q conflicts with listen[%d] (%q); give the admin listener its own port", a.Addr, j, v.c.Listen[j].Addr)
	}
}

// cidrs checks a list of CIDRs or single IPs.
func (v *checker) cidrs(path string, list []string) {
	for i, s := range list {
		if _, err := netip.ParsePrefix(s); err == nil {
			continue
		}
		if _, err := netip.ParseAddr(s); err == nil {
			continue
		}
		v.addf(path+"["+strconv.Itoa(i)+"]", "invalid CIDR or IP %q; write e.g. \"10.0.0.0/8\" or \"192.0.2.1\"", s)
	}
}

func (v *checker) upstream(p, name string, u *Upstream) {
	v.upstreamTLS(p, u)
	if !validName(name) {
		v.addf(p, "invalid upstream name %q; use letters, digits, '-', '_' and '.'", name)
	}
	if u == nil {
		v.addf(p, "upstream has no settings; add endpoints")
		return
	}
	v.endpoints(p+".endpoints", u.Endpoints)
	v.balance(p, u)
	if u.Health != nil {
		v.health(p+".health", u.Health)
	}
	v.outlier(p+".outlier", u.Outlier)
	v.atLeast(p+".max_requests", u.MaxRequests, 0)
	v.between(p+".retry_budget.percent", u.RetryBudget.Percent, 0, 100)
	v.atLeast(p+".retry_budget.min_retries", u.RetryBudget.MinRetries, 0)
	v.atLeast(p+".pool.max_idle_per_endpoint", u.Pool.MaxIdlePerEndpoint, 0)
	v.atLeast(p+".pool.max_conns_per_endpoint", u.Pool.MaxConnsPerEndpoint, 0)
}

func (v *checker) endpoints(p string, eps []Endpoint) {
	if len(eps) == 0 {
		v.addf(p, "at least one endpoint is required, e.g. [\"10.0.0.1:8080\"]")
	}
	seen := map[string]int{}
	for i, e := range eps {
		ep := p + "[" + strconv.Itoa(i) + "]"
		if e.Addr == "" {
			v.addf(ep+".addr", "addr is required, e.g. \"10.0.0.1:8080\"")
		} else if msg := checkAddr(e.Addr, false); msg != "" {
			v.addf(ep+".addr", "%s", msg)
		} else if j, dup := seen[strings.ToLower(e.Addr)]; dup {
			v.addf(ep+".addr", "duplicate endpoint %q, also endpoints[%d]; list it once and raise its weight instead", e.Addr, j)
		} else {
			seen[strings.ToLower(e.Addr)] = i
		}
		v.between(ep+".weight", e.Weight, 1, 1000)
	}
}

var balances = []string{BalanceRoundRobin, BalanceLeastRequest, BalanceHash}

func (v *checker) balance(p string, u *Upstream) {
	if !slices.Contains(balances, u.Balance) {
		v.addf(p+".balance", "%s", unknownValue("balance", u.Balance, balances))
	}
	h := u.Hash
	switch {
	case u.Balance != BalanceHash && h != nil:
		v.addf(p+".hash", "hash is only used with balance: hash; remove it or set balance: hash")
	case u.Balance != BalanceHash:
	case h == nil:
		v.addf(p+".hash", "balance hash needs a key; set one of hash.header, hash.cookie and hash.client_ip")
	case count(h.Header != "", h.Cookie != "", h.ClientIP) != 1:
		v.addf(p+".hash", "set exactly one of header, cookie and client_ip")
	case h.Header != "" && !isToken(h.Header):
		v.addf(p+".hash.header", "invalid header name %q", h.Header)
	case h.Cookie != "" && !isToken(h.Cookie):
		v.addf(p+".hash.cookie", "invalid cookie name %q", h.Cookie)
	}
}

func (v *checker) health(p string, h *HealthCheck) {
	switch {
	case h.Path == "":
		v.addf(p+".path", "path is required, e.g. \"/healthz\"")
	case !strings.HasPrefix(h.Path, "/"):
		v.addf(p+".path", "must start with \"/\", e.g. \"/healthz\"")
	case hasControl(h.Path) || strings.ContainsAny(h.Path, " #"):
		v.addf(p+".path", "invalid path %q; escape spaces and special characters", h.Path)
	}
	if h.Host != "" && !validHostPort(h.Host) {
		v.addf(p+".host", "invalid host %q; want a host name, optionally with a port", h.Host)
	}
	if h.Interval > 0 && h.Timeout >= h.Interval {
		v.addf(p+".timeout", "timeout (%s) must be less than interval (%s)", h.Timeout, h.Interval)
	}
	v.atLeast(p+".healthy_threshold", h.HealthyThreshold, 1)
	v.atLeast(p+".unhealthy_threshold", h.UnhealthyThreshold, 1)
	for i, s := range h.ExpectStatus {
		if _, _, ok := ParseStatusRange(s); !ok {
			v.addf(p+".expect_status["+strconv.Itoa(i)+"]", "invalid status %q; want a code such as \"200\" or a range such as \"200-299\", within 100-599", s)
		}
	}
}

// ParseStatusRange parses an expect_status item, "200" or "200-299", into
// its bounds. ok is false unless 100 <= lo <= hi <= 599.
func ParseStatusRange(s string) (lo, hi int, ok bool) {
	a, b, isRange := strings.Cut(s, "-")
	lo, errA := strconv.Atoi(a)
	hi, errB := lo, error(nil)
	if isRange {
		hi, errB = strconv.Atoi(b)
	}
	if errA != nil || errB != nil || len(a) != 3 || (isRange && len(b) != 3) {
		return 0, 0, false
	}
	return lo, hi, 100 <= lo && lo <= hi && hi <= 599
}

func (v *checker) outlier(p string, o Outlier) {
	v.atLeast(p+".consecutive_failures", o.ConsecutiveFailures, 1)
	if o.MaxEjection >= 0 && o.BaseEjection > o.MaxEjection {
		v.addf(p+".base_ejection", "base_ejection (%s) must not exceed max_ejection (%s)", o.BaseEjection, o.MaxEjection)
	}
	v.between(p+".max_ejected_percent", o.MaxEjectedPercent, 0, 100)
}

func (v *checker) tracing() {
	t := v.c.Tracing
	if t.Endpoint != "" {
		u, err := url.Parse(t.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.addf("tracing.endpoint", "invalid endpoint %q; want an absolute http or https URL, e.g. \"http://127.0.0.1:4318/v1/traces\"", redactURL(t.Endpoint))
		}
	}
	v.fraction("tracing.sample", t.Sample)
	for _, name := range slices.Sorted(maps.Keys(t.Headers)) {
		v.headerName(join("tracing.headers", name), name)
		if !validHeaderValue(t.Headers[name]) {
			v.addf(join("tracing.headers", name), "header value contains a control character")
		}
	}
}

// fraction checks an optional share from 0 to 1.
func (v *checker) fraction(path string, f *float64) {
	if f != nil && !(*f >= 0 && *f <= 1) {
		v.addf(path, "must be between 0 and 1, got %v; write 0.01 for 1 %%", *f)
	}
}

func (v *checker) atLeast(path string, n, lo int) {
	if n < lo {
		v.addf(path, "must be %d or more, got %d", lo, n)
	}
}

func (v *checker) between(path string, n, lo, hi int) {
	if n < lo || n > hi {
		v.addf(path, "must be between %d and %d, got %d", lo, hi, n)
	}
}

func (v *checker) headerName(path, name string) {
	if !isToken(name) {
		v.addf(path, "invalid header name %q; use letters, digits and !#$%%&'*+-.^_`|~", name)
	}
}
