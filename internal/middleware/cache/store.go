package cache

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// entryOverhead is what one entry costs besides its body, headers and key,
// in bytes: the entry struct, its map slot and slices. A round figure that
// errs high, so the byte bound holds for many small entries too.
const entryOverhead = 512

// maxVariants bounds the variants (Vary, key_headers, routes) kept for one
// URL; storing another evicts the oldest.
const maxVariants = 32

// StoreOptions configure NewStore.
type StoreOptions struct {
	// MaxBytes bounds the memory held by entries (bodies, headers, keys and
	// a fixed overhead each), in bytes. Required, positive.
	MaxBytes int64
	// MaxObjectBytes is the largest response body stored, in bytes.
	// Required, positive, at most MaxBytes.
	MaxObjectBytes int64
	// Now is the clock of ages and freshness. Default: time.Now.
	Now func() time.Time
	// Registerer receives the cache metrics. Nil: they are not registered
	// anywhere (tests).
	Registerer prometheus.Registerer
	// Logger receives background refresh failures. Default: slog.Default().
	Logger *slog.Logger
}

// Store is the process-wide HTTP cache. It outlives reloads: the app
// builds one, hands it to every snapshot's cache middleware (New), and
// calls SetLimits when the config changes. Its methods are safe for
// concurrent use.
//
// Eviction is CLOCK (second chance), an approximation of LRU: a hit only
// sets an atomic "referenced" bit under the read lock, where a true LRU
// would take the write lock on every hit to move the entry to the front.
// The eviction hand sweeps the ring, clearing set bits and evicting the
// first entry whose bit is clear.
type Store struct {
	now     func() time.Time
	log     *slog.Logger
	metrics *metrics

	maxBytes       atomic.Int64
	maxObjectBytes atomic.Int64
	// purges counts Purge and PurgePrefix calls, so a response fetched
	// before a purge is not stored after it.
	purges atomic.Uint64
	// bytes and entries mirror the totals under mu for lock-free reads.
	bytes, entries atomic.Int64

	mu sync.RWMutex // guards urls, hand, and every entry's ring links
	// urls maps a URL key (see appendURLKey) to the variants stored for it.
	urls map[string][]*entry
	// hand is the CLOCK hand: the next entry considered for eviction; nil
	// when the store is empty. New entries go just behind it.
	hand *entry

	flightMu sync.Mutex // guards flights and passes
	// flights are the upstream fetches in progress, by flight key.
	flights map[string]*flight
	// passes remembers flight keys whose last response could not be
	// shared, until the time given, so requests for them go upstream at
	// once instead of queueing behind each other (Varnish's hit-for-miss).
	passes map[string]time.Time
}

// NewStore returns an empty Store and registers its metrics with
// opts.Registerer.
func NewStore(opts StoreOptions) (*Store, error) {
	if err := checkLimits(opts.MaxBytes, opts.MaxObjectBytes); err != nil {
		return nil, fmt.Errorf("new cache store: %w", err)
	}
	s := &Store{
		now:     opts.Now,
		log:     opts.Logger,
		urls:    make(map[string][]*entry),
		flights: make(map[string]*flight),
		passes:  make(map[string]time.Time),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.maxBytes.Store(opts.MaxBytes)
	s.maxObjectBytes.Store(opts.MaxObjectBytes)
	m, err := newMetrics(opts.Registerer, s)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	return s, nil
}

func checkLimits(maxBytes, maxObjectBytes int64) error {
	switch {
	case maxBytes <= 0 || maxObjectBytes <= 0:
		return fmt.Errorf("max bytes (%d) and max object bytes (%d) must be positive", maxBytes, maxObjectBytes)
	case maxObjectBytes > maxBytes:
		return fmt.Errorf("max object bytes (%d) exceeds max bytes (%d)", maxObjectBytes, maxBytes)
	}
	return nil
}

// SetLimits applies new bounds (on reload), evicting at once down to a
// lower maxBytes. Invalid bounds (see StoreOptions) are ignored; config
// validation refuses them first.
func (s *Store) SetLimits(maxBytes, maxObjectBytes int64) {
	if checkLimits(maxBytes, maxObjectBytes) != nil {
		return
	}
	s.maxObjectBytes.Store(maxObjectBytes)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.maxBytes.Store(maxBytes)
	s.evictLocked()
}

// Bytes returns the memory accounted to entries, in bytes.
func (s *Store) Bytes() int64 { return s.bytes.Load() }

// Len returns the number of entries.
func (s *Store) Len() int { return int(s.entries.Load()) }

// Purge removes every entry stored for the URL key and returns how many
// there were (one per variant). key is the URL as a client asked for it:
// "https://api.example.com/v1/items?id=1". Without a scheme
// ("api.example.com/v1/items?id=1") both http and https are purged. A
// leading method ("GET ") is allowed and ignored: only GET responses are
// stored, and HEAD is answered from them. The host is compared in lower
// case, without a default port; path and query must match byte for byte.
func (s *Store) Purge(key string) int {
	s.purges.Add(1)
	scheme, rest := splitPurgeKey(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, sc := range []string{"http", "https"} {
		if scheme == "" || scheme == sc {
			n += s.removeURLLocked(sc + "://" + rest)
		}
	}
	return n
}

// PurgePrefix removes every entry whose URL key starts with prefix, in the
// form Purge takes ("api.example.com/v1/" purges everything under /v1/ of
// that host, over http and https, every variant), and returns how many it
// removed. It scans every URL, which is fine for an admin action.
func (s *Store) PurgePrefix(prefix string) int {
	s.purges.Add(1)
	scheme, rest := splitPurgeKey(prefix)
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for url := range s.urls {
		sc, tail, _ := strings.Cut(url, "://")
		if (scheme == "" || scheme == sc) && strings.HasPrefix(tail, rest) {
			n += s.removeURLLocked(url)
		}
	}
	return n
}

// splitPurgeKey splits a purge key into its scheme ("" when none) and the
// rest with the host lower-cased and a default port removed.
func splitPurgeKey(key string) (scheme, rest string) {
	key = strings.TrimSpace(key)
	if m, after, ok := strings.Cut(key, " "); ok && (m == "GET" || m == "HEAD") {
		key = strings.TrimSpace(after)
	}
	if sc, after, ok := strings.Cut(key, "://"); ok {
		scheme, key = strings.ToLower(sc), after
	}
	host, path := key, ""
	if i := strings.IndexAny(key, "/?"); i >= 0 {
		host, path = key[:i], key[i:]
	}
	host = strings.ToLower(host)
	if scheme != "" {
		host = stripDefaultPort(host, scheme)
	} else {
		host = strings.TrimSuffix(strings.TrimSuffix(host, ":80"), ":443")
	}
	return scheme, host + path
}

// lookup returns the variant of url that answers a request with header h
// on route, or nil, and marks it referenced. It takes only the read lock.
func (s *Store) lookup(url []byte, route string, h http.Header) *entry {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, e := range s.urls[string(url)] {
		if e.matches(route, h) {
			e.referenced.Store(true)
			return e
		}
	}
	return nil
}

// invalidate removes every variant of url (RFC 9111 §4.4) without
// counting as a purge.
func (s *Store) invalidate(url []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.urls[string(url)]; ok {
		s.removeURLLocked(string(url))
	}
}

// flight is one upstream fetch that concurrent requests for the same key
// wait for instead of making their own.
type flight struct {
	done    chan struct{} // closed when res is set
	res     result
	waiters atomic.Int32 // requests waiting, for tests
}

// result is what a fetch produced, for the requests that waited for it.
type result struct {
	// entry is the stored response; nil when nothing was stored, and the
	// waiters must not be given the fetcher's response.
	entry *entry
	// revalidated reports whether entry came from a 304.
	revalidated bool
	// failed reports whether the upstream failed (5xx or a gateway error),
	// so a waiter may fall back to its stale entry (stale-if-error).
	failed bool
	// unshareable reports whether the response could never be shared
	// (private, no-store, Set-Cookie, Vary: *, too large, a stream).
	unshareable bool
}

// passTTL is how long a key whose response was unshareable skips
// coalescing; maxPasses bounds how many such keys are remembered.
const (
	passTTL   = 10 * time.Second
	maxPasses = 10000
)

// join returns the flight for key and whether the caller leads it (and
// must call land). With usePass, it returns nil when key's last response
// was unshareable: the caller fetches alone.
func (s *Store) join(key string, now time.Time, usePass bool) (f *flight, leader bool) {
	s.flightMu.Lock()
	defer s.flightMu.Unlock()
	if until, ok := s.passes[key]; ok && usePass {
		if now.Before(until) {
			return nil, false
		}
		delete(s.passes, key)
	}
	if f := s.flights[key]; f != nil {
		f.waiters.Add(1)
		return f, false
	}
	f = &flight{done: make(chan struct{})}
	s.flights[key] = f
	return f, true
}

// land ends flight f of key with res and wakes its waiters.
func (s *Store) land(key string, f *flight, res result, now time.Time) {
	s.flightMu.Lock()
	if s.flights[key] == f {
		delete(s.flights, key)
	}
	if res.unshareable {
		if len(s.passes) >= maxPasses {
			clear(s.passes)
		}
		s.passes[key] = now.Add(passTTL)
	}
	s.flightMu.Unlock()
	f.res = res
	close(f.done)
}

// errStale means a purge ran while the response was being fetched.
var errStale = errors.New("purged while fetching")

// insert stores e, replacing the variant with the same selecting values,
// and evicts down to the byte bound. gen is s.purges as it was when the
// fetch began.
func (s *Store) insert(e *entry, gen uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.purges.Load() != gen {
		return errStale
	}
	vs := s.urls[e.url]
	for i, old := range vs {
		if old.sameVariant(e) {
			s.unlinkLocked(old)
			vs = append(vs[:i], vs[i+1:]...)
			break
		}
	}
	if len(vs) >= maxVariants {
		s.unlinkLocked(vs[0])
		vs = append(vs[:0], vs[1:]...)
	}
	s.urls[e.url] = append(vs, e)
	s.linkLocked(e)
	s.evictLocked()
	return nil
}

// remove drops e if it is still stored.
func (s *Store) remove(e *entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !e.linked {
		return
	}
	s.dropLocked(e)
}

// removeURLLocked drops every variant of url and returns how many.
func (s *Store) removeURLLocked(url string) int {
	vs := s.urls[url]
	for _, e := range vs {
		s.unlinkLocked(e)
	}
	delete(s.urls, url)
	return len(vs)
}

// dropLocked unlinks e and removes it from its URL's variants.
func (s *Store) dropLocked(e *entry) {
	s.unlinkLocked(e)
	vs := s.urls[e.url]
	for i, v := range vs {
		if v == e {
			vs = append(vs[:i], vs[i+1:]...)
			break
		}
	}
	if len(vs) == 0 {
		delete(s.urls, e.url)
	} else {
		s.urls[e.url] = vs
	}
}

// linkLocked puts e into the ring just behind the hand, so it is the last
// the hand reaches.
func (s *Store) linkLocked(e *entry) {
	if s.hand == nil {
		e.prev, e.next = e, e
		s.hand = e
	} else {
		e.next, e.prev = s.hand, s.hand.prev
		e.prev.next, s.hand.prev = e, e
	}
	e.linked = true
	s.bytes.Add(e.size)
	s.entries.Add(1)
}

// unlinkLocked takes e out of the ring; e stays in urls (callers fix that).
func (s *Store) unlinkLocked(e *entry) {
	if !e.linked {
		return
	}
	if e.next == e {
		s.hand = nil
	} else {
		e.prev.next, e.next.prev = e.next, e.prev
		if s.hand == e {
			s.hand = e.next
		}
	}
	e.prev, e.next, e.linked = nil, nil, false
	s.bytes.Add(-e.size)
	s.entries.Add(-1)
}

// evictLocked sweeps the CLOCK hand until the store fits its byte bound.
func (s *Store) evictLocked() {
	limit := s.maxBytes.Load()
	for s.bytes.Load() > limit && s.hand != nil {
		e := s.hand
		if e.referenced.Swap(false) {
			s.hand = e.next
			continue
		}
		s.dropLocked(e)
		s.metrics.evictions.Inc()
	}
}

// metrics are the store's Prometheus collectors.
type metrics struct {
	requests  *prometheus.CounterVec // route, result
	stores    *prometheus.CounterVec // route
	evictions prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, s *Store) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "torii_cache_requests_total",
			Help: "Requests to cached routes, by route and result: hit, miss, stale (a stale entry served), revalidated (a 304 from the upstream refreshed the entry) or bypass (not cacheable: method, Range, request directives).",
		}, []string{"route", "result"}),
		stores: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "torii_cache_stores_total",
			Help: "Responses stored in the cache, by route.",
		}, []string{"route"}),
		evictions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "torii_cache_evictions_total",
			Help: "Entries evicted to keep the cache within cache.max_bytes.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	collectors := []prometheus.Collector{
		m.requests, m.stores, m.evictions,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "torii_cache_bytes",
			Help: "Memory accounted to cached entries (bodies, headers, keys and a fixed overhead each), in bytes.",
		}, func() float64 { return float64(s.bytes.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "torii_cache_entries",
			Help: "Entries in the cache (one per stored variant).",
		}, func() float64 { return float64(s.entries.Load()) }),
	}
	for _, c := range collectors {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register cache metrics: %w", err)
		}
	}
	return m, nil
}

// ForgetRoute deletes the series of a route a reload removed, so they stop
// being exported. Its cached entries age out like any others.
func (s *Store) ForgetRoute(route string) {
	l := prometheus.Labels{"route": route}
	s.metrics.requests.DeletePartialMatch(l)
	s.metrics.stores.DeletePartialMatch(l)
}
