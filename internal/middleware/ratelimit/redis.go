package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"torii/internal/config"
)

// Global limits run the algorithm inside Redis, one script call per
// request (EVALSHA, falling back to EVAL when Redis answers NOSCRIPT, as
// redis.Script.Run does), so that every replica's read-modify-write of a
// key is atomic. The scripts read the time with TIME, so replicas' clocks
// do not matter, and keep it in microseconds: an exact integer in Lua's
// doubles until the year 2255. Redis 5 or later is needed, for scripts
// that call TIME before writing (effects replication). Each script
// returns {allowed (0/1), remaining, reset µs, retry-after µs, now µs}.

// gcraScript is gcra.take. KEYS[1]: the key, holding the TAT in µs.
// ARGV: the emission interval T in µs, the burst.
var gcraScript = redis.NewScript(`
local interval = tonumber(ARGV[1])
local limit = interval * tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local nxt = tat + interval
if nxt - now > limit then
  return {0, 0, tat - now, nxt - limit - now, now}
end
redis.call('SET', KEYS[1], string.format('%.0f', nxt), 'PX', math.ceil((nxt - now) / 1000))
return {1, math.floor((limit - (nxt - now)) / interval), nxt - now, 0, now}
`)

// tokenBucketScript is tokenBucket.take. KEYS[1]: a hash of n (tokens)
// and f (time of the last refill, µs). ARGV: capacity, tokens per refill,
// refill period in µs. The key expires when the bucket would be full
// again, which is the same as a fresh key.
var tokenBucketScript = redis.NewScript(`
local capacity = tonumber(ARGV[1])
local per = tonumber(ARGV[2])
local every = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local st = redis.call('HMGET', KEYS[1], 'n', 'f')
local n, f = tonumber(st[1]), tonumber(st[2])
if not n or not f then n, f = capacity, now end
local fills = math.floor((now - f) / every)
if fills > 0 then
  n = math.min(capacity, n + fills * per)
  f = f + fills * every
end
local function untilFull()
  if n >= capacity then return 0 end
  return math.ceil((capacity - n) / per) * every - (now - f)
end
if n < 1 then
  return {0, 0, untilFull(), f + every - now, now}
end
n = n - 1
local full = untilFull()
redis.call('HSET', KEYS[1], 'n', n, 'f', string.format('%.0f', f))
redis.call('PEXPIRE', KEYS[1], math.max(1, math.ceil(full / 1000)))
return {1, n, full, 0, now}
`)

// errNoRedis is the error of a global limit when no Redis is configured.
var errNoRedis = errors.New("no redis configured")

// redisStore is a Redis client and the bound on each call.
type redisStore struct {
	client  *redis.Client
	timeout time.Duration
}

// quietRedis sends go-redis's own log (a line per failed dial, a flood
// during an outage) to slog.Default at debug level; Shared logs each
// outage and recovery once. go-redis has one logger per process, and this
// package is torii's only go-redis user.
var quietRedis = sync.OnceFunc(func() { redis.SetLogger(debugLogger{}) })

type debugLogger struct{}

func (debugLogger) Printf(ctx context.Context, format string, v ...any) {
	slog.DebugContext(ctx, fmt.Sprintf(format, v...), "component", "go-redis")
}

func newRedisStore(cfg *config.Redis) *redisStore {
	quietRedis()
	timeout := time.Duration(cfg.Timeout)
	if timeout <= 0 {
		timeout = config.DefaultRedisTimeout
	}
	return &redisStore{
		timeout: timeout,
		client: redis.NewClient(&redis.Options{
			Addr:     cfg.Addr,
			Username: cfg.Username,
			Password: cfg.Password,
			DB:       cfg.DB,
			// Every call is bounded by its context (timeout); a retry
			// would only spend that budget twice.
			MaxRetries:            -1,
			DialTimeout:           timeout,
			DialerRetries:         1,
			ReadTimeout:           timeout,
			WriteTimeout:          timeout,
			PoolTimeout:           timeout,
			ContextTimeoutEnabled: true,
			// Nothing on connect beyond AUTH and SELECT: no CLIENT SETINFO,
			// no maintenance notifications.
			DisableIdentity:          true,
			MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
		}),
	}
}

// redisArgs are a global limit's script and its arguments.
type redisArgs struct {
	script *redis.Script
	args   []any
}

func newRedisArgs(cfg *config.RateLimit) redisArgs {
	switch alg := newAlgorithm(cfg, time.Microsecond).(type) {
	case tokenBucket:
		return redisArgs{script: tokenBucketScript, args: []any{alg.capacity, alg.perFill, alg.every}}
	case gcra:
		return redisArgs{script: gcraScript, args: []any{alg.interval, cfg.Burst}}
	default:
		panic(fmt.Sprintf("ratelimit: no script for %T", alg))
	}
}

// take runs one request for key through Redis. Times in the decision are
// converted to nanoseconds.
func (rs *redisStore) take(ctx context.Context, a redisArgs, key string) (decision, error) {
	// The client going away must not count as a Redis failure.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rs.timeout)
	defer cancel()
	vals, err := a.script.Run(ctx, rs.client, []string{key}, a.args...).Int64Slice()
	if err != nil {
		return decision{}, err
	}
	if len(vals) != 5 {
		return decision{}, fmt.Errorf("rate limit script returned %d values, want 5", len(vals))
	}
	const us = int64(time.Microsecond)
	return decision{allowed: vals[0] == 1, remaining: vals[1], reset: vals[2] * us, retryAfter: vals[3] * us, at: vals[4] * us}, nil
}
