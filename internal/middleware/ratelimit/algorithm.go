package ratelimit

import (
	"math"
	"time"

	"torii/internal/config"
)

// The two algorithms work on int64 times in one unit: nanoseconds of the
// Shared clock for local limits. The Lua scripts in redis.go do the same
// arithmetic in microseconds of the Redis clock; tests keep them in step.

// state is what a key remembers between requests.
//
// GCRA: a is the theoretical arrival time (TAT) of the next request.
// Token bucket: a is the tokens left, b the time of the last refill.
type state struct {
	a, b int64
}

// decision is the outcome of one request.
type decision struct {
	// allowed reports whether the request may proceed.
	allowed bool
	// remaining is how many more requests would be admitted right now.
	remaining int64
	// reset is the time until the whole quota is back.
	reset int64
	// retryAfter is, for a refused request, the time until a request
	// would be admitted; zero when allowed.
	retryAfter int64
	// at is when a global limit decided, by the Redis clock, in
	// nanoseconds since the Unix epoch; zero for a local limit.
	at int64
}

// algorithm is a rate-limit algorithm over states.
type algorithm interface {
	// take applies one request arriving at now to st (a zero state when
	// fresh, the key being new) and returns the state to keep and the
	// decision. A refused request leaves the state as it was.
	take(st state, fresh bool, now int64) (state, decision)
	// full reports whether st holds the whole quota at now, so forgetting
	// the key changes nothing.
	full(st state, now int64) bool
	// window is the time to earn the whole quota back from empty: the w
	// of the RateLimit-Policy header.
	window() int64
}

// newAlgorithm returns cfg's algorithm with times in units of unit.
func newAlgorithm(cfg *config.RateLimit, unit time.Duration) algorithm {
	period := int64(time.Duration(cfg.Period) / unit)
	burst := int64(cfg.Burst)
	if cfg.Algorithm == config.RateLimitTokenBucket {
		return tokenBucket{capacity: burst, perFill: int64(cfg.Requests), every: max(period, 1)}
	}
	interval := max(period/int64(cfg.Requests), 1)
	return gcra{interval: interval, limit: satMul(interval, burst)}
}

// gcra is the Generic Cell Rate Algorithm of the ATM Forum's Traffic
// Management Specification 4.0 (1996), in its "virtual scheduling" form,
// as Brandur Leach describes it for HTTP in "Rate Limiting, Cells, and
// GCRA" (brandur.org/rate-limiting). Requests are cells that should arrive
// one emission interval T = Period/Requests apart; the theoretical arrival
// time (TAT) is when the next one is due. A request at time t is admitted
// when it is at most τ = (Burst-1)·T early, that is when
//
//	max(TAT, t) + T - t <= Burst·T
//
// and then moves TAT to max(TAT, t) + T. From idle (TAT <= t) exactly
// Burst requests are admitted at once, after which one is admitted every
// T. Burst = 1 means no burst at all: strictly one request per T.
type gcra struct {
	interval int64 // T
	limit    int64 // Burst·T, the τ + T of the specification
}

func (g gcra) take(st state, fresh bool, now int64) (state, decision) {
	tat := st.a
	if fresh || tat < now {
		tat = now
	}
	next := tat + g.interval
	if next-now > g.limit {
		return st, decision{reset: tat - now, retryAfter: next - g.limit - now}
	}
	return state{a: next}, decision{
		allowed:   true,
		remaining: (g.limit - (next - now)) / g.interval,
		reset:     next - now,
	}
}

func (g gcra) full(st state, now int64) bool { return st.a <= now }

func (g gcra) window() int64 { return g.limit }

// tokenBucket is a bucket of capacity (Burst) tokens that gains perFill
// (Requests) tokens once every period, never holding more than capacity;
// each request takes a token or is refused. Unlike GCRA it lets a whole
// refill through at once at each period boundary, as Envoy's local rate
// limit does. A new key starts full, with its refills timed from its first
// request. Forgetting a full bucket (as the local store and Redis expiry
// do) restarts its refills from its next request, which can only delay
// them: never looser than remembering it.
type tokenBucket struct {
	capacity int64 // Burst
	perFill  int64 // Requests
	every    int64 // Period
}

// refill returns st brought up to now: the tokens of the refills since
// st.b, and st.b moved to the last of them.
func (tb tokenBucket) refill(st state, now int64) state {
	fills := (now - st.b) / tb.every
	if fills <= 0 {
		return st
	}
	if fills >= ceilDiv(tb.capacity-st.a, tb.perFill) {
		st.a = tb.capacity
	} else {
		st.a += fills * tb.perFill
	}
	st.b += fills * tb.every
	return st
}

// untilFull is the time from now until st, already refilled to now, holds
// capacity tokens.
func (tb tokenBucket) untilFull(st state, now int64) int64 {
	if st.a >= tb.capacity {
		return 0
	}
	return ceilDiv(tb.capacity-st.a, tb.perFill)*tb.every - (now - st.b)
}

func (tb tokenBucket) take(st state, fresh bool, now int64) (state, decision) {
	if fresh {
		st = state{a: tb.capacity, b: now}
	}
	st = tb.refill(st, now)
	if st.a < 1 {
		return st, decision{reset: tb.untilFull(st, now), retryAfter: st.b + tb.every - now}
	}
	st.a--
	return st, decision{allowed: true, remaining: st.a, reset: tb.untilFull(st, now)}
}

func (tb tokenBucket) full(st state, now int64) bool {
	return tb.refill(st, now).a >= tb.capacity
}

func (tb tokenBucket) window() int64 {
	return satMul(ceilDiv(tb.capacity, tb.perFill), tb.every)
}

// ceilDiv is a/b rounded up, for a >= 0 and b > 0.
func ceilDiv(a, b int64) int64 {
	return (a + b - 1) / b
}

// satMul is a·b for non-negative a and b, saturated well below the int64
// limit so that adding a time to it cannot overflow either: a limit
// longer than a century is as good as infinite.
func satMul(a, b int64) int64 {
	const ceiling = math.MaxInt64 / 4
	if a != 0 && b > ceiling/a {
		return ceiling
	}
	return a * b
}
