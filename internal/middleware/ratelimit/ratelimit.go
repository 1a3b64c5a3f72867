// Package ratelimit limits a route's request rate per key: the client IP,
// a header, or a verified JWT claim. Limits count either in process
// (local) or in Redis, shared by every torii replica (global). Two
// algorithms are offered: GCRA, which spaces requests evenly after an
// initial burst, and a token bucket refilled once per period.
//
// A refused request gets 429 with Retry-After; every checked response
// carries the RateLimit-Policy and RateLimit fields of
// draft-ietf-httpapi-ratelimit-headers (-10, September 2025):
//
//	RateLimit-Policy: "default";q=<burst>;w=<seconds to earn it back>
//	RateLimit: "default";r=<remaining>;t=<seconds until the quota is full>
//
// State that must survive reloads (the counts of local limits, the Redis
// client, the metrics) lives in a Shared; New builds one route's
// middleware from it. docs/rate-limits.md is the user's guide.
package ratelimit

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"torii/internal/config"
	"torii/internal/proxy"
	"torii/internal/request"
)

// policyName names torii's one quota policy in the RateLimit fields.
const policyName = `"default"`

// keyBufSize is the stack buffer for a request's key; longer keys spill to
// the heap.
const keyBufSize = 128

// New returns the middleware enforcing cfg on the route named route,
// which must be unique within a config. cfg must be validated with its
// defaults applied. For a local limit it reuses the counts of a limit
// built earlier for the same route with the same settings and still in
// use, so a reload keeps them; a global limit uses the Redis client s has
// when a request arrives (see Shared.SetRedis).
func New(route string, cfg *config.RateLimit, s *Shared) (func(http.Handler) http.Handler, error) {
	if err := check(cfg); err != nil {
		return nil, fmt.Errorf("rate limit of route %q: %w", route, err)
	}
	l := &limiter{
		route:        route,
		shared:       s,
		keyer:        newKeyer(cfg.Key),
		failClosed:   cfg.OnRedisError == config.OnRedisErrorClosed,
		allowed:      s.metrics.requests.WithLabelValues(route, "allowed"),
		limited:      s.metrics.requests.WithLabelValues(route, "limited"),
		errored:      s.metrics.requests.WithLabelValues(route, "error"),
		untracked:    s.metrics.untracked.WithLabelValues(route),
		redisErrors:  s.metrics.redisErrors.WithLabelValues(route),
		redisKeyPref: "torii:rl:" + route + ":",
	}
	var window int64
	if cfg.Scope == config.ScopeGlobal {
		l.redisArgs = newRedisArgs(cfg)
		if cfg.Algorithm == config.RateLimitTokenBucket {
			// A bucket's state is not a TAT; keep the two apart should the
			// route change algorithm.
			l.redisKeyPref = "torii:rl:" + route + ":tb:"
		}
		window = newAlgorithm(cfg, time.Nanosecond).window()
	} else {
		alg := newAlgorithm(cfg, time.Nanosecond)
		l.local = s.store(storeID{
			route: route, algorithm: cfg.Algorithm, requests: cfg.Requests, burst: cfg.Burst,
			period: cfg.Period, keyKind: l.keyer.kind, keyName: l.keyer.name, maxKeys: MaxKeys,
		}, alg)
		window = alg.window()
	}
	l.policy = []string{policyName + ";q=" + strconv.Itoa(cfg.Burst) + ";w=" + strconv.FormatInt(ceilSeconds(window), 10)}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			l.serve(next, w, r)
		})
	}, nil
}

// check refuses a config that would break the arithmetic; config.Validate
// explains the same problems to the user.
func check(cfg *config.RateLimit) error {
	switch {
	case cfg == nil:
		return errors.New("no config")
	case cfg.Requests < 1 || cfg.Burst < 1 || cfg.Period <= 0:
		return fmt.Errorf("requests (%d), burst (%d) and period (%s) must be positive", cfg.Requests, cfg.Burst, cfg.Period)
	case cfg.Burst > 1_000_000_000:
		return fmt.Errorf("burst %d is over 1000000000", cfg.Burst)
	case time.Duration(cfg.Period)/time.Duration(cfg.Requests) < time.Microsecond:
		return fmt.Errorf("%d requests per %s is finer than one per microsecond", cfg.Requests, cfg.Period)
	case cfg.Algorithm != config.RateLimitGCRA && cfg.Algorithm != config.RateLimitTokenBucket:
		return fmt.Errorf("unknown algorithm %q", cfg.Algorithm)
	case cfg.Scope != config.ScopeLocal && cfg.Scope != config.ScopeGlobal:
		return fmt.Errorf("unknown scope %q", cfg.Scope)
	}
	return nil
}

// limiter is one route's rate limit.
type limiter struct {
	route  string
	shared *Shared
	keyer  keyer
	// local is the state of a local limit; nil for a global one.
	local *localStore
	// redisArgs and redisKeyPref drive a global limit.
	redisArgs    redisArgs
	redisKeyPref string
	failClosed   bool
	// policy is the RateLimit-Policy field value. Every response shares
	// it; len == cap, so an Add elsewhere copies rather than writes into
	// it.
	policy []string
	// values caches RateLimit field values by (remaining, reset), so the
	// usual response allocates nothing.
	values [valueCacheSize]atomic.Pointer[fieldValue]

	allowed, limited, errored, untracked, redisErrors prometheus.Counter
}

func (l *limiter) serve(next http.Handler, w http.ResponseWriter, r *http.Request) {
	var buf [keyBufSize]byte
	key := l.keyer.appendKey(buf[:0], r)
	var d decision
	if l.local != nil {
		var tracked bool
		d, tracked = l.local.take(key, l.shared.localNow())
		if !tracked {
			l.untracked.Inc()
		}
	} else {
		var err error
		d, err = l.global(r, key)
		if err != nil {
			l.errored.Inc()
			if l.failClosed {
				if info := request.FromContext(r.Context()); info != nil {
					info.Err = fmt.Errorf("rate limit store: %w", err) // for the access log
				}
				proxy.WriteError(w, r, http.StatusServiceUnavailable, "rate limit store unavailable")
				return
			}
			next.ServeHTTP(w, r)
			return
		}
	}
	if l.shared.onDecision != nil {
		l.shared.onDecision(d)
	}
	h := w.Header()
	h["Ratelimit-Policy"] = l.policy
	h["Ratelimit"] = l.fieldValue(d.remaining, ceilSeconds(d.reset))
	if !d.allowed {
		l.limited.Inc()
		h["Retry-After"] = []string{strconv.FormatInt(max(ceilSeconds(d.retryAfter), 1), 10)}
		proxy.WriteError(w, r, http.StatusTooManyRequests, "rate limit exceeded")
		return
	}
	l.allowed.Inc()
	next.ServeHTTP(w, r)
}

// global takes key through Redis, recording the outcome in the metrics.
func (l *limiter) global(r *http.Request, key []byte) (decision, error) {
	rs := l.shared.redis.Load()
	if rs == nil {
		l.shared.redisResult(l.route, l.redisErrors, errNoRedis)
		return decision{}, errNoRedis
	}
	d, err := rs.take(r.Context(), l.redisArgs, redisKey(l.redisKeyPref, key))
	l.shared.redisResult(l.route, l.redisErrors, err)
	return d, err
}

// valueCacheSize is the number of RateLimit field values a limit keeps.
const valueCacheSize = 256

// fieldValue is one formatted RateLimit field value.
type fieldValue struct {
	remaining, reset int64
	v                []string
}

// fieldValue returns the RateLimit field value for remaining and reset
// (seconds), from a direct-mapped cache: under steady load the same few
// pairs repeat. The returned slice is shared; len == cap, so appending to
// it copies.
func (l *limiter) fieldValue(remaining, reset int64) []string {
	slot := &l.values[uint64(remaining*31+reset)%valueCacheSize]
	if fv := slot.Load(); fv != nil && fv.remaining == remaining && fv.reset == reset {
		return fv.v
	}
	v := policyName + ";r=" + strconv.FormatInt(remaining, 10) + ";t=" + strconv.FormatInt(reset, 10)
	fv := &fieldValue{remaining: remaining, reset: reset, v: []string{v}}
	slot.Store(fv)
	return fv.v
}

// ceilSeconds is d nanoseconds in whole seconds, rounded up: a client told
// to wait less than it must would only be refused again.
func ceilSeconds(d int64) int64 {
	if d <= 0 {
		return 0
	}
	return ceilDiv(d, int64(time.Second))
}
