package config

import (
	"strings"
	"time"
)

// Defaults documented on the fields of types.go and in docs/configuration.md.
const (
	DefaultListenAddr     = ":8080"
	DefaultAdminAddr      = "127.0.0.1:9901"
	DefaultMaxHeaderBytes = 64 << 10
	DefaultBalance        = BalanceRoundRobin
	DefaultContentType    = "text/plain; charset=utf-8"
	DefaultServiceName    = "torii"
	DefaultAccessLogPath  = "stdout"
	DefaultRedirectStatus = 302
	DefaultRetryAttempts  = 1
	DefaultExpectStatus   = "200-399"
)

// Balancing policies, the values of Upstream.Balance.
const (
	BalanceRoundRobin   = "round_robin"
	BalanceLeastRequest = "least_request"
	BalanceHash         = "hash"
)

// Retry conditions, the values of Retries.On.
const (
	RetryOnConnectFailure = "connect_failure"
	RetryOnReset          = "reset"
	RetryOnTimeout        = "timeout"
)

// ApplyDefaults fills every unset field that has a documented default and
// normalises case: route hosts to lower case, methods to upper case. Parse
// calls it; call it yourself on a Config built in code before Validate. It
// is idempotent.
func (c *Config) ApplyDefaults() {
	if len(c.Listen) == 0 {
		c.Listen = []Listener{{Addr: DefaultListenAddr}}
	}
	for i := range c.Listen {
		c.Listen[i].applyDefaults()
	}
	if c.Admin.Addr == "" {
		c.Admin.Addr = DefaultAdminAddr
	}
	c.applyRedisDefaults()
	c.Paths.applyDefaults()
	c.applyCacheDefaults()
	c.applySLODefaults()
	for _, u := range c.Upstreams {
		if u != nil {
			u.applyDefaults()
		}
	}
	for i := range c.Routes {
		c.Routes[i].applyDefaults()
		c.Routes[i].applySLODefaults(c)
	}
	setFloat(&c.AccessLog.Sample, 1)
	setString(&c.AccessLog.Path, DefaultAccessLogPath)
	setFloat(&c.Tracing.Sample, 1)
	setString(&c.Tracing.ServiceName, DefaultServiceName)
	setDuration(&c.Reload.WatchInterval, 2*time.Second)
	// An explicit "drain_delay: 0s" means no delay (development, or a
	// load balancer that already stopped sending); only an absent key takes
	// the default.
	if _, set := c.lines["shutdown.drain_delay"]; !set {
		setDuration(&c.Shutdown.DrainDelay, 5*time.Second)
	}
	setDuration(&c.Shutdown.Grace, 30*time.Second)
}

func (l *Listener) applyDefaults() {
	l.applyTLSDefaults()
	l.applyLimitDefaults()
	setString(&l.Name, l.Addr)
	setInt(&l.MaxHeaderBytes, DefaultMaxHeaderBytes)
	setDuration(&l.Timeouts.ReadHeader, 10*time.Second)
	setDuration(&l.Timeouts.Read, 60*time.Second)
	setDuration(&l.Timeouts.Idle, 120*time.Second)
	if l.ProxyProtocol != nil {
		setDuration(&l.ProxyProtocol.Timeout, 5*time.Second)
	}
}

func (u *Upstream) applyDefaults() {
	u.applyTLSDefaults()
	for i := range u.Endpoints {
		setInt(&u.Endpoints[i].Weight, 1)
	}
	setString(&u.Balance, DefaultBalance)
	setDuration(&u.DNSRefresh, 30*time.Second)
	if h := u.Health; h != nil {
		setDuration(&h.Interval, 5*time.Second)
		setDuration(&h.Timeout, 2*time.Second)
		setInt(&h.HealthyThreshold, 2)
		setInt(&h.UnhealthyThreshold, 3)
		if len(h.ExpectStatus) == 0 {
			h.ExpectStatus = []string{DefaultExpectStatus}
		}
	}
	setInt(&u.Outlier.ConsecutiveFailures, 5)
	setDuration(&u.Outlier.BaseEjection, 30*time.Second)
	setDuration(&u.Outlier.MaxEjection, 300*time.Second)
	setInt(&u.Outlier.MaxEjectedPercent, 50)
	setInt(&u.RetryBudget.Percent, 20)
	setInt(&u.RetryBudget.MinRetries, 3)
	setInt(&u.Pool.MaxIdlePerEndpoint, 64)
	setDuration(&u.Pool.IdleTimeout, 90*time.Second)
	setDuration(&u.ConnectTimeout, 5*time.Second)
}

func (r *Route) applyDefaults() {
	r.applyAuthDefaults()
	r.applyRateLimitDefaults()
	r.applyLimitDefaults()
	r.applyCacheDefaults()
	r.applyCompressDefaults()
	r.Match.Host = strings.ToLower(r.Match.Host)
	for i, m := range r.Match.Methods {
		r.Match.Methods[i] = strings.ToUpper(m)
	}
	for i := range r.Backends {
		if r.Backends[i].Weight == nil {
			r.Backends[i].Weight = new(1)
		}
	}
	if r.Redirect != nil {
		setInt(&r.Redirect.Status, DefaultRedirectStatus)
	}
	if d := r.DirectResponse; d != nil && d.Body != "" {
		setString(&d.ContentType, DefaultContentType)
	}
	setDuration(&r.Timeout, 30*time.Second)
	if r.Retries.Attempts == nil {
		r.Retries.Attempts = new(DefaultRetryAttempts)
	}
	if len(r.Retries.On) == 0 {
		r.Retries.On = []string{RetryOnConnectFailure, RetryOnReset}
	}
	r.applyShadowDefaults() // last: its timeout defaults to the route's
	r.applyMigrationDefaults()
}

func setString(s *string, def string) {
	if *s == "" {
		*s = def
	}
}

func setInt(n *int, def int) {
	if *n == 0 {
		*n = def
	}
}

func setDuration(d *Duration, def time.Duration) {
	if *d == 0 {
		*d = Duration(def)
	}
}

func setFloat(f **float64, def float64) {
	if *f == nil {
		*f = new(def)
	}
}
