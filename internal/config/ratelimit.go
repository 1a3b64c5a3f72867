package config

import (
	"slices"
	"time"
)

// Defaults and validation of rate limits and the Redis they share
// (docs/rate-limits.md).

// Rate-limit algorithms, the values of RateLimit.Algorithm.
const (
	// RateLimitGCRA is the Generic Cell Rate Algorithm: requests are
	// spaced Period/Requests apart, with Burst admitted at once from idle.
	RateLimitGCRA = "gcra"
	// RateLimitTokenBucket is a bucket of Burst tokens refilled with
	// Requests tokens once every Period.
	RateLimitTokenBucket = "token_bucket"
)

// Rate-limit scopes, the values of RateLimit.Scope.
const (
	// ScopeLocal counts in each torii process alone.
	ScopeLocal = "local"
	// ScopeGlobal counts in Redis, shared by every replica.
	ScopeGlobal = "global"
)

// What a global rate limit does when Redis fails, the values of
// RateLimit.OnRedisError.
const (
	// OnRedisErrorOpen admits the request.
	OnRedisErrorOpen = "open"
	// OnRedisErrorClosed refuses the request with 503.
	OnRedisErrorClosed = "closed"
)

// DefaultRedisTimeout bounds each Redis call of a global rate limit.
const DefaultRedisTimeout = 50 * time.Millisecond

// minEmissionInterval is the finest rate a limit may ask for: one request
// per microsecond, the resolution of the Redis clock (TIME) global limits
// count with.
const minEmissionInterval = time.Microsecond

// maxBurst bounds RateLimit.Burst, keeping the limits' arithmetic far from
// overflow.
const maxBurst = 1_000_000_000

var (
	rateLimitAlgorithms = []string{RateLimitGCRA, RateLimitTokenBucket}
	rateLimitScopes     = []string{ScopeLocal, ScopeGlobal}
	onRedisErrors       = []string{OnRedisErrorOpen, OnRedisErrorClosed}
)

func (c *Config) applyRedisDefaults() {
	if c.Redis != nil {
		setDuration(&c.Redis.Timeout, DefaultRedisTimeout)
	}
}

func (r *Route) applyRateLimitDefaults() {
	rl := r.RateLimit
	if rl == nil {
		return
	}
	setString(&rl.Algorithm, RateLimitGCRA)
	setDuration(&rl.Period, time.Second)
	setInt(&rl.Burst, rl.Requests)
	setString(&rl.Scope, ScopeLocal)
	setString(&rl.OnRedisError, OnRedisErrorOpen)
	if k := &rl.Key; k.Header == "" && k.Claim == "" {
		k.ClientIP = true
	}
}

func (v *checker) redis() {
	rd := v.c.Redis
	if rd == nil {
		return
	}
	if rd.Addr == "" {
		v.addf("redis.addr", "addr is required, e.g. \"127.0.0.1:6379\"")
	} else if msg := checkAddr(rd.Addr, false); msg != "" {
		v.addf("redis.addr", "%s", msg)
	}
	v.atLeast("redis.db", rd.DB, 0)
}

func (v *checker) routeRateLimit(p string, r *Route) {
	rl := r.RateLimit
	if rl == nil {
		return
	}
	p += ".rate_limit"
	if !slices.Contains(rateLimitAlgorithms, rl.Algorithm) {
		v.addf(p+".algorithm", "%s", unknownValue("algorithm", rl.Algorithm, rateLimitAlgorithms))
	}
	switch {
	case rl.Requests < 1:
		v.addf(p+".requests", "must be 1 or more, got %d; it is how many requests each key may make per period", rl.Requests)
	case rl.Period > 0 && time.Duration(rl.Period)/time.Duration(rl.Requests) < minEmissionInterval:
		v.addf(p+".requests", "%d requests per %s is finer than one request per microsecond; use fewer requests or a longer period", rl.Requests, rl.Period)
	}
	// A burst defaulted from an invalid requests is not reported twice.
	if rl.Requests >= 1 || rl.Burst != 0 {
		v.between(p+".burst", rl.Burst, 1, maxBurst)
	}
	v.rateLimitKey(p+".key", r)
	if !slices.Contains(rateLimitScopes, rl.Scope) {
		v.addf(p+".scope", "%s", unknownValue("scope", rl.Scope, rateLimitScopes))
	} else if rl.Scope == ScopeGlobal && v.c.Redis == nil {
		v.addf(p+".scope", "a global rate limit counts in Redis; set redis.addr at the top level, e.g. redis: {addr: \"127.0.0.1:6379\"}")
	}
	if !slices.Contains(onRedisErrors, rl.OnRedisError) {
		v.addf(p+".on_redis_error", "%s", unknownValue("on_redis_error", rl.OnRedisError, onRedisErrors))
	}
}

func (v *checker) rateLimitKey(p string, r *Route) {
	k := r.RateLimit.Key
	if count(k.ClientIP, k.Header != "", k.Claim != "") > 1 {
		v.addf(p, "set only one of client_ip, header and claim")
	}
	if k.Header != "" {
		v.headerName(p+".header", k.Header)
	}
	if k.Claim != "" && (r.Auth == nil || r.Auth.JWT == nil) {
		v.addf(p+".claim", "keying on claim %q needs auth.jwt on this route, which verifies the token the claim comes from", k.Claim)
	}
}
