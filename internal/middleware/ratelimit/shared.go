package ratelimit

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"weak"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"torii/internal/config"
)

// retireDelay is how long a Redis client replaced by a reload stays open,
// so requests of the old snapshot still in flight can finish with it.
const retireDelay = 10 * time.Second

// SharedOptions configures NewShared. Every field is optional.
type SharedOptions struct {
	// Now is the clock of local limits. Default: time.Now. Global limits
	// use the Redis server's clock.
	Now func() time.Time
	// Registerer receives the rate-limit metrics. Nil: they are not
	// registered anywhere (tests).
	Registerer prometheus.Registerer
	// Logger receives Redis outages and recoveries. Default:
	// slog.Default().
	Logger *slog.Logger
}

// Shared is the rate-limit state that outlives config reloads: the counts
// of local limits, the Redis client of global ones, and the metrics. Build
// one per process with NewShared; its methods are safe for concurrent use.
type Shared struct {
	now     func() time.Time
	epoch   time.Time // local times are nanoseconds since epoch
	log     *slog.Logger
	metrics *metrics

	// redis is the client of global limits; nil when none is configured.
	redis atomic.Pointer[redisStore]
	// up reports whether the last Redis call succeeded, so outages and
	// recoveries are logged once each.
	up atomic.Bool

	// onDecision, when set (by tests, before New), sees every decision
	// of every limit built from s.
	onDecision func(decision)

	mu sync.Mutex // guards the fields below
	// stores are the local limits' states by identity. They are weak: a
	// store lives as long as a snapshot's middleware uses it, and a reload
	// that builds the same limit again finds it while the old snapshot
	// still serves.
	stores map[storeID]weak.Pointer[localStore]
	// redisCfg is the config the current redis client was built from.
	redisCfg *config.Redis
	// retiring are replaced Redis clients waiting to be closed.
	retiring map[*redis.Client]*time.Timer
	closed   bool
}

// storeID identifies a local limit: the same route with the same settings
// keeps its counts across reloads; any change starts afresh.
type storeID struct {
	route           string
	algorithm       string
	requests, burst int
	period          config.Duration
	keyKind         byte
	keyName         string
	maxKeys         int
}

// NewShared returns a Shared and registers its metrics with
// opts.Registerer. It starts nothing and connects to nothing.
func NewShared(opts SharedOptions) (*Shared, error) {
	s := &Shared{
		now:      opts.Now,
		log:      opts.Logger,
		stores:   make(map[storeID]weak.Pointer[localStore]),
		retiring: make(map[*redis.Client]*time.Timer),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.epoch = s.now()
	s.up.Store(true)
	m, err := newMetrics(opts.Registerer, s)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	return s, nil
}

// SetRedis makes cfg the store of global limits; nil means none. Called at
// start and at every reload, it builds a new client only when cfg differs
// from the current one, and closes the old client a little later so that
// requests still using it finish. It does no network I/O: the client
// connects on first use.
func (s *Shared) SetRedis(cfg *config.Redis) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("set redis: rate limits are closed")
	}
	if sameRedis(cfg, s.redisCfg) {
		return nil
	}
	var next *redisStore
	if cfg != nil {
		if cfg.Addr == "" {
			return errors.New("set redis: addr is required")
		}
		next = newRedisStore(cfg)
		c := *cfg
		s.redisCfg = &c
	} else {
		s.redisCfg = nil
	}
	if old := s.redis.Swap(next); old != nil {
		client := old.client
		s.retiring[client] = time.AfterFunc(retireDelay, func() {
			s.mu.Lock()
			delete(s.retiring, client)
			s.mu.Unlock()
			client.Close()
		})
	}
	return nil
}

func sameRedis(a, b *config.Redis) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// Close closes the Redis clients. Limits built from s must not be used
// afterwards.
func (s *Shared) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	for client, t := range s.retiring {
		if t.Stop() {
			errs = append(errs, client.Close())
		}
	}
	clear(s.retiring)
	if cur := s.redis.Swap(nil); cur != nil {
		errs = append(errs, cur.client.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close redis: %w", err)
	}
	return nil
}

// store returns the local store of id, making one when no live limit
// holds it.
func (s *Shared) store(id storeID, alg algorithm) *localStore {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.stores[id].Value(); st != nil {
		return st
	}
	st := newLocalStore(alg, id.maxKeys)
	wp := weak.Make(st)
	s.stores[id] = wp
	runtime.AddCleanup(st, func(id storeID) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.stores[id] == wp {
			delete(s.stores, id)
		}
	}, id)
	return st
}

// localNow is the time of local limits: nanoseconds since s was built,
// monotonic when Now is time.Now.
func (s *Shared) localNow() int64 {
	return int64(s.now().Sub(s.epoch))
}

// redisResult records the outcome of one Redis call for route, whose
// error counter is errs.
func (s *Shared) redisResult(route string, errs prometheus.Counter, err error) {
	if err == nil {
		if !s.up.Swap(true) {
			s.log.Info("rate limit store reachable again")
		}
		return
	}
	errs.Inc()
	if s.up.Swap(false) {
		s.log.Warn("rate limit store unavailable; global limits follow on_redis_error", "route", route, "err", err)
	}
}

// metrics are the rate-limit collectors, shared by every limit.
type metrics struct {
	requests    *prometheus.CounterVec // route, result
	untracked   *prometheus.CounterVec // route
	redisErrors *prometheus.CounterVec // route
	redisUp     *upCollector
}

// upCollector exports torii_ratelimit_redis_up only while a Redis is
// configured, so an instance without global limits does not report a
// store that is "down".
type upCollector struct {
	desc *prometheus.Desc
	s    *Shared
}

func (c *upCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *upCollector) Collect(ch chan<- prometheus.Metric) {
	if c.s.redis.Load() == nil {
		return
	}
	v := 0.0
	if c.s.up.Load() {
		v = 1
	}
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, v)
}

func newMetrics(reg prometheus.Registerer, s *Shared) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "torii_ratelimit_requests_total",
			Help: "Requests checked by a rate limit, by route and result: allowed, limited (429), or error (the Redis of a global limit failed).",
		}, []string{"route", "result"}),
		untracked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "torii_ratelimit_untracked_total",
			Help: "Requests admitted without being counted because the route's local limit already tracks its maximum of keys.",
		}, []string{"route"}),
		redisErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "torii_ratelimit_redis_errors_total",
			Help: "Redis calls of global rate limits that failed or timed out, by route.",
		}, []string{"route"}),
		redisUp: &upCollector{s: s, desc: prometheus.NewDesc("torii_ratelimit_redis_up",
			"1 when the last Redis call of a global rate limit succeeded (or none was made yet), 0 when it failed; absent without a redis block.",
			nil, nil)},
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.requests, m.untracked, m.redisErrors, m.redisUp} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register rate limit metrics: %w", err)
		}
	}
	return m, nil
}

// ForgetRoute deletes the series of a route a reload removed, so they stop
// being exported.
func (s *Shared) ForgetRoute(route string) {
	l := prometheus.Labels{"route": route}
	s.metrics.requests.DeletePartialMatch(l)
	s.metrics.untracked.DeletePartialMatch(l)
	s.metrics.redisErrors.DeletePartialMatch(l)
}
