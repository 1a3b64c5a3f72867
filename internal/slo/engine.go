// Package slo measures every route against its service level objective:
// it counts requests in 10 s buckets on the hot path, flushes them to the
// store, evaluates SLIs, burn rates and error budgets over fixed windows,
// runs the multiwindow multi-burn-rate alerts of the Google SRE Workbook
// and hands their changes to a Notifier (issue #5, docs/slo.md).
package slo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"torii/internal/config"
	"torii/internal/store"
)

// Options are an Engine's dependencies. Store is required; zero values
// of the others take defaults.
type Options struct {
	// Now is the clock of buckets, windows and alerts. Default: time.Now.
	Now func() time.Time
	// Store keeps buckets, alert state and leases. Required.
	Store store.Store
	// Notifier receives every alert change. Nil: alerts are evaluated,
	// shown and persisted, not sent.
	Notifier Notifier
	// Logger receives flush, evaluation and notification failures from
	// Run. Default: slog.Default().
	Logger *slog.Logger
	// Registerer receives the torii_slo_* metrics. Nil: not registered.
	Registerer prometheus.Registerer
	// ReplicaID names this replica in alert leases, so that one replica
	// alone sends each notification. Default: "torii".
	ReplicaID string
}

// MaxPending is how much history of unflushed buckets a replica keeps
// while the store is down; older buckets are dropped (and counted in
// torii_slo_dropped_buckets_total).
const MaxPending = time.Hour

// pruneEvery is how often Run deletes buckets older than the retention.
const pruneEvery = time.Hour

// Default store timings, used while the config leaves them zero.
const (
	defaultFlushInterval = 10 * time.Second
	defaultRetention     = 35 * day
)

// Engine accounts, evaluates and alerts on the SLOs of the applied
// config. It is safe for concurrent use.
type Engine struct {
	now      func() time.Time
	store    store.Store
	notifier Notifier
	log      *slog.Logger
	replica  string
	m        *metrics

	// ioMu serialises Flush and Evaluate, so a batch being written is
	// never missing from (or counted twice in) an evaluation; it guards
	// alerts, restored and lastPrune. Lock order: ioMu, regMu, mu.
	ioMu      sync.Mutex
	alerts    map[string]*alert
	restored  bool
	lastPrune time.Time

	// regMu guards rings, each ring's last and cum, and pending.
	regMu sync.Mutex
	rings map[store.Series]*ring
	// pending are harvested buckets not yet in the store, oldest first.
	pending []store.Bucket

	// mu guards the fields below: the applied config and the results of
	// the last evaluation.
	mu            sync.RWMutex
	routes        []*routeConf
	byName        map[string]*routeConf
	teams         map[string]bool
	flushInterval time.Duration
	retention     time.Duration
	results       map[string]*RouteStatus
}

// routeConf is a route as the engine evaluates it.
type routeConf struct {
	name, owner string
	slo         *config.SLO // nil: no SLO
	period      time.Duration
	minEvents   int64
	backends    []string
}

// New returns an Engine with no config applied. It starts nothing and
// touches no store.
func New(opts Options) (*Engine, error) {
	if opts.Store == nil {
		return nil, errors.New("new slo engine: no store")
	}
	e := &Engine{
		now:           opts.Now,
		store:         opts.Store,
		notifier:      opts.Notifier,
		log:           opts.Logger,
		replica:       opts.ReplicaID,
		alerts:        map[string]*alert{},
		rings:         map[store.Series]*ring{},
		byName:        map[string]*routeConf{},
		teams:         map[string]bool{},
		flushInterval: defaultFlushInterval,
		retention:     defaultRetention,
		results:       map[string]*RouteStatus{},
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.log == nil {
		e.log = slog.Default()
	}
	if e.replica == "" {
		e.replica = "torii"
	}
	m, err := newMetrics(opts.Registerer, e)
	if err != nil {
		return nil, fmt.Errorf("new slo engine: %w", err)
	}
	e.m = m
	return e, nil
}

// routeConfs returns the routes of cfg as the engine sees them, with
// default_owner and default_slo applied to routes naming none.
func routeConfs(cfg *config.Config) []*routeConf {
	out := make([]*routeConf, 0, len(cfg.Routes))
	for i := range cfg.Routes {
		r := &cfg.Routes[i]
		rc := &routeConf{name: r.Name, owner: r.Owner, slo: r.SLO}
		if rc.owner == "" {
			rc.owner = cfg.DefaultOwner
		}
		if rc.slo == nil {
			rc.slo = cfg.DefaultSLO
		}
		if rc.slo != nil && rc.slo.Availability <= 0 && rc.slo.Latency == nil {
			rc.slo = nil
		}
		if rc.slo != nil {
			s := *rc.slo
			rc.slo = &s
			rc.period = time.Duration(s.Period)
			if rc.period <= 0 {
				rc.period = DefaultPeriod
			}
			rc.minEvents = int64(s.MinEvents)
			if rc.minEvents <= 0 {
				rc.minEvents = DefaultMinEvents
			}
			for _, b := range r.Backends {
				if b.Upstream != "" && !contains(rc.backends, b.Upstream) {
					rc.backends = append(rc.backends, b.Upstream)
				}
			}
			// A shadow-only candidate has SLIs too: its mirrored requests
			// are what a rollout's first gate judges.
			if r.Shadow != nil && r.Shadow.Upstream != "" && !contains(rc.backends, r.Shadow.Upstream) {
				rc.backends = append(rc.backends, r.Shadow.Upstream)
			}
		}
		out = append(out, rc)
	}
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Accountant returns the recorders for a snapshot built from cfg. The
// counters behind them live in the engine, keyed by route and backend,
// so a route unchanged by a reload keeps counting where it was. Call it
// while building a snapshot, and Apply once that snapshot serves.
func (e *Engine) Accountant(cfg *config.Config) *Accountant {
	a := &Accountant{routes: map[string]*RouteSLI{}}
	now := e.now()
	e.regMu.Lock()
	defer e.regMu.Unlock()
	for _, rc := range routeConfs(cfg) {
		if rc.slo == nil {
			continue
		}
		rs := &RouteSLI{now: e.now, rules: compileRules(rc.slo)}
		rs.route = e.ringLocked(store.Series{Route: rc.name}, now)
		for _, b := range rc.backends {
			rs.backends = append(rs.backends, backendRing{upstream: b, ring: e.ringLocked(store.Series{Route: rc.name, Backend: b}, now)})
		}
		a.routes[rc.name] = rs
	}
	return a
}

func (e *Engine) ringLocked(s store.Series, now time.Time) *ring {
	r := e.rings[s]
	if r == nil {
		r = &ring{series: s, last: bucketOf(now) - 1}
		e.rings[s] = r
	}
	return r
}

// Apply makes cfg the config the engine evaluates: routes, SLOs, owners,
// teams and store timings. Counters of series cfg no longer has are
// harvested into the pending buckets and dropped, and their metrics
// deleted. Call it on every (re)load, after the new snapshot serves.
func (e *Engine) Apply(cfg *config.Config) {
	confs := routeConfs(cfg)
	keep := map[store.Series]bool{}
	byName := map[string]*routeConf{}
	for _, rc := range confs {
		byName[rc.name] = rc
		if rc.slo == nil {
			continue
		}
		keep[store.Series{Route: rc.name}] = true
		for _, b := range rc.backends {
			keep[store.Series{Route: rc.name, Backend: b}] = true
		}
	}
	now := e.now()
	e.regMu.Lock()
	cb := bucketOf(now)
	for s, r := range e.rings {
		if keep[s] {
			continue
		}
		for b := max(r.last+1, cb-ringSlots+1); b <= cb; b++ {
			e.takeLocked(r, b)
		}
		delete(e.rings, s)
	}
	e.regMu.Unlock()

	teams := map[string]bool{}
	for name := range cfg.Teams {
		teams[name] = true
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, old := range e.routes {
		if nc := byName[old.name]; old.slo != nil && (nc == nil || !reflect.DeepEqual(nc.slo, old.slo)) {
			e.m.deleteRoute(old.name)
			delete(e.results, old.name)
		}
	}
	e.routes, e.byName, e.teams = confs, byName, teams
	e.flushInterval = time.Duration(cfg.Store.FlushInterval)
	if e.flushInterval <= 0 {
		e.flushInterval = defaultFlushInterval
	}
	e.retention = time.Duration(cfg.Store.Retention)
	if e.retention <= 0 {
		e.retention = defaultRetention
	}
}

// takeLocked moves bucket b of r into pending and the cumulative counts.
func (e *Engine) takeLocked(r *ring, b int64) {
	s := &r.slots[b&(ringSlots-1)]
	c := store.Counts{Total: s.total.Swap(0), Errors: s.errors.Swap(0), Slow: s.slow.Swap(0)}
	if c == (store.Counts{}) {
		return
	}
	r.cum = r.cum.Add(c)
	e.pending = append(e.pending, store.Bucket{Series: r.series, Start: bucketStart(b), Counts: c})
}

// harvestLocked moves every completed bucket of every ring into pending.
// A bucket is complete one bucket after it ends, so a Record that read
// the clock just before the boundary has landed.
func (e *Engine) harvestLocked(now time.Time) {
	cb := bucketOf(now)
	for _, r := range e.rings {
		for b := max(r.last+1, cb-ringSlots+2); b <= cb-2; b++ {
			e.takeLocked(r, b)
		}
		r.last = max(r.last, cb-2)
	}
	e.dropOldLocked(now)
}

// dropOldLocked drops pending buckets older than MaxPending.
func (e *Engine) dropOldLocked(now time.Time) {
	cut := now.Add(-MaxPending)
	n := 0
	for _, b := range e.pending {
		if b.Start.Before(cut) {
			e.m.dropped.Inc()
			continue
		}
		e.pending[n] = b
		n++
	}
	clear(e.pending[n:])
	e.pending = e.pending[:n]
}

// localLocked returns this replica's counts not in the store: pending
// buckets and the live ones of the rings.
func (e *Engine) localLocked(now time.Time) []store.Bucket {
	out := append([]store.Bucket(nil), e.pending...)
	cb := bucketOf(now)
	for _, r := range e.rings {
		for b := max(r.last+1, cb-ringSlots+1); b <= cb; b++ {
			s := &r.slots[b&(ringSlots-1)]
			c := store.Counts{Total: s.total.Load(), Errors: s.errors.Load(), Slow: s.slow.Load()}
			if c != (store.Counts{}) {
				out = append(out, store.Bucket{Series: r.series, Start: bucketStart(b), Counts: c})
			}
		}
	}
	return out
}

// Flush writes every count recorded so far to the store, the buckets in
// progress included (their slots are swapped to zero and the store adds
// up later writes to the same bucket), so a crash loses at most one flush
// interval of counts (issue #5). When the store fails the counts stay in
// memory (at most MaxPending of them) for the next Flush; Record is never
// affected.
func (e *Engine) Flush(ctx context.Context) error { return e.flush(ctx, true) }

// flush is Flush; all also writes the buckets in progress, for shutdown.
// Counts recorded into them afterwards are written by a later flush, and
// the store adds them up.
func (e *Engine) flush(ctx context.Context, all bool) error {
	e.ioMu.Lock()
	defer e.ioMu.Unlock()
	now := e.now()
	e.regMu.Lock()
	e.harvestLocked(now)
	if all {
		for _, r := range e.rings {
			for b := r.last + 1; b <= bucketOf(now); b++ {
				e.takeLocked(r, b)
			}
		}
	}
	batch := e.pending
	e.pending = nil
	e.regMu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	if err := e.store.Add(ctx, batch); err != nil {
		e.m.flushFailures.Inc()
		e.regMu.Lock()
		e.pending = append(batch, e.pending...)
		e.dropOldLocked(now)
		e.regMu.Unlock()
		return fmt.Errorf("flush slo buckets: %w", err)
	}
	return nil
}

// prune deletes buckets older than the retention, at most once per
// pruneEvery.
func (e *Engine) prune(ctx context.Context) error {
	now := e.now()
	e.mu.RLock()
	retention := e.retention
	e.mu.RUnlock()
	e.ioMu.Lock()
	defer e.ioMu.Unlock()
	if now.Sub(e.lastPrune) < pruneEvery {
		return nil
	}
	if err := e.store.Prune(ctx, now.Add(-retention)); err != nil {
		return fmt.Errorf("prune slo buckets: %w", err)
	}
	e.lastPrune = now
	return nil
}

// Run flushes every flush interval, evaluates every EvalInterval and
// prunes hourly until ctx ends, then flushes every count, the current
// bucket's too, once more (for at most 5 s).
// Failures are logged; the loops go on.
func (e *Engine) Run(ctx context.Context) {
	e.mu.RLock()
	interval := e.flushInterval
	e.mu.RUnlock()
	flush := time.NewTimer(interval)
	defer flush.Stop()
	eval := time.NewTicker(EvalInterval)
	defer eval.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := e.flush(fctx, true); err != nil {
				e.log.Error("final slo flush failed", "err", err)
			}
			return
		case <-flush.C:
			e.runOnce(ctx, interval, func(ctx context.Context) error {
				return errors.Join(e.Flush(ctx), e.prune(ctx))
			})
			e.mu.RLock()
			interval = e.flushInterval
			e.mu.RUnlock()
			flush.Reset(interval)
		case <-eval.C:
			e.runOnce(ctx, EvalInterval, func(ctx context.Context) error {
				return e.Evaluate(ctx, e.now())
			})
		}
	}
}

// runOnce runs f bounded by timeout and logs its error.
func (e *Engine) runOnce(ctx context.Context, timeout time.Duration, f func(context.Context) error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := f(ctx); err != nil && !errors.Is(err, context.Canceled) {
		e.log.Warn("slo engine", "err", err)
	}
}
