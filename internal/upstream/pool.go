// Package upstream holds the backend pools: endpoints, their live state
// (in-flight requests, failures, health, ejections), balancers, active health
// checks, passive outlier detection, DNS re-resolution and the keep-alive
// transport.
//
// Live state lives in a Registry keyed by (upstream name, endpoint address),
// outside any config snapshot, so it survives reloads: a reload builds new
// Pools over the same Registry (Caddy's hosts pool).
//
// docs/upstreams.md and docs/health.md describe the behaviour for users.
package upstream

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"torii/internal/config"
)

// ErrNoEndpoint is returned by Pick when no endpoint is available (all
// unhealthy, ejected or already tried).
var ErrNoEndpoint = errors.New("no healthy endpoint")

// Defaults applied to zero config values (they match internal/config).
const (
	defaultDNSRefresh          = 30 * time.Second
	defaultConnectTimeout      = 5 * time.Second
	defaultMaxIdlePerEndpoint  = 64
	defaultIdleTimeout         = 90 * time.Second
	defaultConsecutiveFailures = 5
	defaultBaseEjection        = 30 * time.Second
	defaultMaxEjection         = 300 * time.Second
	defaultMaxEjectedPercent   = 50
	defaultRetryPercent        = 20
	defaultMinRetries          = 3
)

// settings are an upstream's config with every default filled in.
type settings struct {
	dnsRefresh time.Duration
	health     *healthSettings // nil: no active checks

	consecutiveFailures int64
	baseEjection        time.Duration
	maxEjection         time.Duration
	maxEjectedPercent   int

	maxRequests  int64 // 0: no cap
	retryPercent int64
	minRetries   int64

	conn transportKey
	tls  *tls.Config // the TLS client config conn.tls describes; nil: cleartext
}

// endpointSpec is one configured endpoint, parsed.
type endpointSpec struct {
	host   string // IP literal or name
	port   string
	static bool // host is an IP literal
	weight int
}

// weightedAddr is one dialable address and its weight.
type weightedAddr struct {
	addr   string
	weight int
}

// Pool is one upstream's endpoints, balancer and transport, built from one
// config snapshot. Its methods are safe for concurrent use.
type Pool struct {
	name  string
	reg   *Registry
	up    *upstreamState
	s     settings
	bal   balancer
	tr    *sharedTransport
	specs []endpointSpec
	names []string // distinct host names among specs, to resolve

	// set is the current endpoint list, immutable, swapped on DNS change.
	set atomic.Pointer[endpointSet]

	// dnsLast holds each name's last good resolution. Only the DNS
	// goroutine touches it (or a test before Start).
	dnsLast map[string][]string

	// mu guards the fields below and serialises swaps of set.
	mu           sync.Mutex
	started      bool
	closed       bool
	runCtx       context.Context               // Start's context; nil before Start
	cancel       context.CancelFunc            // ends runCtx
	checks       map[string]context.CancelFunc // running health checks by address
	healthClient *http.Client                  // nil before Start or without checks

	wg      sync.WaitGroup // goroutines started by Start
	running atomic.Int32   // goroutines started by Start and still running
}

// NewPool builds the pool for upstream name from a validated cfg. It has no
// side effects: no goroutine, no DNS lookup, no connection; it only reads
// the files of cfg.TLS. Zero values in
// cfg take the defaults documented in internal/config. The pool takes
// references in reg, released by Close.
func NewPool(name string, cfg *config.Upstream, reg *Registry) (*Pool, error) {
	if cfg == nil {
		return nil, fmt.Errorf("build upstream %q: no config", name)
	}
	if reg == nil {
		return nil, fmt.Errorf("build upstream %q: no registry", name)
	}
	s, err := newSettings(name, cfg)
	if err != nil {
		return nil, fmt.Errorf("build upstream %q: %w", name, err)
	}
	bal, err := newBalancer(cfg)
	if err != nil {
		return nil, fmt.Errorf("build upstream %q: %w", name, err)
	}
	if len(cfg.Endpoints) == 0 {
		return nil, fmt.Errorf("build upstream %q: no endpoints", name)
	}
	p := &Pool{name: name, reg: reg, s: s, bal: bal, dnsLast: make(map[string][]string)}
	for i, ce := range cfg.Endpoints {
		host, port, err := net.SplitHostPort(ce.Addr)
		if err != nil {
			return nil, fmt.Errorf("build upstream %q: endpoints[%d]: %w", name, i, err)
		}
		if host == "" || port == "" {
			return nil, fmt.Errorf("build upstream %q: endpoints[%d]: %q needs a host and a port", name, i, ce.Addr)
		}
		spec := endpointSpec{host: host, port: port, weight: max(ce.Weight, 1)}
		if ip, err := netip.ParseAddr(host); err == nil {
			spec.host, spec.static = ip.Unmap().String(), true
		} else if !slices.Contains(p.names, host) {
			p.names = append(p.names, host)
		}
		p.specs = append(p.specs, spec)
	}

	// Everything is parsed; only now take references, so a failed build
	// leaves the registry untouched.
	p.up = reg.acquireUpstream(name)
	p.tr = reg.acquireTransport(s.conn, s.tls)
	var eps []*Endpoint
	for _, wa := range p.addrs() {
		eps = append(eps, p.newEndpoint(wa, reg.acquireEndpoint(p.up, wa.addr, wa.weight)))
	}
	p.set.Store(newEndpointSet(eps))
	return p, nil
}

func newSettings(name string, cfg *config.Upstream) (settings, error) {
	s := settings{
		dnsRefresh:          orDefault(cfg.DNSRefresh.D(), defaultDNSRefresh),
		consecutiveFailures: int64(orDefault(cfg.Outlier.ConsecutiveFailures, defaultConsecutiveFailures)),
		baseEjection:        orDefault(cfg.Outlier.BaseEjection.D(), defaultBaseEjection),
		maxEjection:         orDefault(cfg.Outlier.MaxEjection.D(), defaultMaxEjection),
		maxEjectedPercent:   orDefault(cfg.Outlier.MaxEjectedPercent, defaultMaxEjectedPercent),
		maxRequests:         int64(max(cfg.MaxRequests, 0)),
		retryPercent:        int64(orDefault(cfg.RetryBudget.Percent, defaultRetryPercent)),
		minRetries:          int64(orDefault(cfg.RetryBudget.MinRetries, defaultMinRetries)),
		conn: transportKey{
			upstream:            name,
			connectTimeout:      orDefault(cfg.ConnectTimeout.D(), defaultConnectTimeout),
			maxIdlePerEndpoint:  orDefault(cfg.Pool.MaxIdlePerEndpoint, defaultMaxIdlePerEndpoint),
			maxConnsPerEndpoint: max(cfg.Pool.MaxConnsPerEndpoint, 0),
			idleTimeout:         orDefault(cfg.Pool.IdleTimeout.D(), defaultIdleTimeout),
		},
	}
	s.maxEjection = max(s.maxEjection, s.baseEjection)
	var err error
	if s.conn.protocol, err = protocol(cfg); err != nil {
		return s, err
	}
	if s.tls, s.conn.tls, err = clientTLS(cfg, s.conn.protocol); err != nil {
		return s, err
	}
	if cfg.Health != nil {
		h, err := newHealthSettings(cfg.Health)
		if err != nil {
			return s, fmt.Errorf("health: %w", err)
		}
		s.health = h
	}
	return s, nil
}

// orDefault returns v, or def when v is zero or negative.
func orDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// addrs returns the dialable addresses for the specs given the last good
// resolutions: an IP literal as is, a resolved name as its sorted IPs, a
// name never resolved as "host:port". The first spec wins a duplicate.
func (p *Pool) addrs() []weightedAddr {
	var out []weightedAddr
	add := func(addr string, weight int) {
		if !slices.ContainsFunc(out, func(w weightedAddr) bool { return w.addr == addr }) {
			out = append(out, weightedAddr{addr, weight})
		}
	}
	for _, sp := range p.specs {
		ips := p.dnsLast[sp.host]
		if sp.static || len(ips) == 0 {
			add(net.JoinHostPort(sp.host, sp.port), sp.weight)
			continue
		}
		for _, ip := range ips {
			add(net.JoinHostPort(ip, sp.port), sp.weight)
		}
	}
	return out
}

func (p *Pool) newEndpoint(wa weightedAddr, st *endpointState) *Endpoint {
	return &Endpoint{addr: wa.addr, weight: wa.weight, hash: hashString(wa.addr), pool: p, st: st}
}

// update swaps in the endpoint list for addrs, keeping the Endpoint (and
// its state and health check) of every address still present, taking
// state for new ones and releasing removed ones.
func (p *Pool) update(addrs []weightedAddr) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	old := p.set.Load()
	if old.same(addrs) {
		return
	}
	prev := make(map[string]*Endpoint, len(old.eps))
	for _, e := range old.eps {
		prev[e.addr] = e
	}
	eps := make([]*Endpoint, 0, len(addrs))
	var added []*Endpoint
	for _, wa := range addrs {
		e, ok := prev[wa.addr]
		switch {
		case !ok:
			e = p.newEndpoint(wa, p.reg.acquireEndpoint(p.up, wa.addr, wa.weight))
			added = append(added, e)
		case e.weight != wa.weight:
			e.st.weight.Store(int64(wa.weight))
			e = p.newEndpoint(wa, e.st)
		}
		delete(prev, wa.addr)
		eps = append(eps, e)
	}
	p.set.Store(newEndpointSet(eps))
	for addr, e := range prev {
		if stop := p.checks[addr]; stop != nil {
			stop()
			delete(p.checks, addr)
		}
		p.reg.releaseEndpoint(p.up, e.st)
	}
	for _, e := range added {
		p.startCheckLocked(e)
	}
	p.reg.log.Info("upstream endpoints changed", "upstream", p.name, "endpoints", len(eps),
		"added", len(added), "removed", len(prev))
}

// Name returns the upstream's name.
func (p *Pool) Name() string { return p.name }

// Start begins active health checks and DNS re-resolution; they stop when
// ctx ends or Close is called. Host names are first resolved right away,
// in the background: until then they are dialed by name. Start returns
// at once; a second call, or one after Close, does nothing.
func (p *Pool) Start(ctx context.Context) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.started || p.closed {
		return
	}
	p.started = true
	p.runCtx, p.cancel = context.WithCancel(ctx)
	if p.s.health == nil {
		// This config has no checks: whatever an earlier config's checks
		// concluded no longer applies.
		for _, e := range p.set.Load().eps {
			e.st.healthy.Store(true)
		}
	} else {
		p.healthClient = newHealthClient(p.s.conn, p.s.tls)
		p.checks = make(map[string]context.CancelFunc)
		for _, e := range p.set.Load().eps {
			p.startCheckLocked(e)
		}
	}
	if len(p.names) > 0 {
		ctx := p.runCtx
		p.goLocked(func() { p.resolveLoop(ctx) })
	}
}

// goLocked runs f in a goroutine that Close waits for. p.mu must be held.
func (p *Pool) goLocked(f func()) {
	p.wg.Add(1)
	p.running.Add(1)
	go func() {
		defer p.wg.Done()
		defer p.running.Add(-1)
		f()
	}()
}

// Close stops the pool's goroutines and waits for them, then releases the
// pool's references in the registry: state no other open pool holds is
// dropped. Safe on a pool never started, and more than once. It does not
// close connections of the shared transport while another pool uses it.
func (p *Pool) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	if p.cancel != nil {
		p.cancel()
	}
	hc := p.healthClient
	p.mu.Unlock()

	p.wg.Wait()
	for _, e := range p.set.Load().eps {
		p.reg.releaseEndpoint(p.up, e.st)
	}
	p.reg.releaseTransport(p.tr)
	p.reg.releaseUpstream(p.up)
	if hc != nil {
		hc.CloseIdleConnections()
	}
}

// Pick chooses an endpoint for req by the pool's balancer, skipping
// unhealthy and ejected endpoints and those in tried. clientIP feeds
// client-IP hashing. It returns ErrNoEndpoint when none is left.
func (p *Pool) Pick(req *http.Request, clientIP netip.Addr, tried []*Endpoint) (*Endpoint, error) {
	a := pickArgs{
		req:      req,
		clientIP: clientIP,
		tried:    tried,
		clock:    p.reg.now,
		checked:  p.s.health != nil,
	}
	if e := p.bal.pick(p.set.Load(), a); e != nil {
		return e, nil
	}
	return nil, ErrNoEndpoint
}

// Acquire takes one of the pool's max_requests slots and reports whether
// one was free; a caller that got true must call Release. Slots are
// counted per upstream name across pools, so a reload does not double the
// cap. Without max_requests it always succeeds, and still counts the
// request for the retry budget.
func (p *Pool) Acquire() bool {
	if p.s.maxRequests <= 0 {
		p.up.active.Add(1)
		return true
	}
	for {
		n := p.up.active.Load()
		if n >= p.s.maxRequests {
			return false
		}
		if p.up.active.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// Release returns a slot taken by Acquire.
func (p *Pool) Release() { p.up.active.Add(-1) }

// AllowRetry reports whether the retry budget allows one more retry now:
// fewer retries in progress than max(min_retries, percent % of the
// upstream's active requests), as Envoy's retry budget. A caller that got
// true must call RetryDone when the retry ends.
func (p *Pool) AllowRetry() bool {
	limit := max(p.s.minRetries, p.up.active.Load()*p.s.retryPercent/100)
	for {
		n := p.up.retries.Load()
		if n >= limit {
			return false
		}
		if p.up.retries.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// RetryDone ends a retry admitted by AllowRetry.
func (p *Pool) RetryDone() { p.up.retries.Add(-1) }

// Transport returns the keep-alive round tripper for this upstream. The
// request's URL.Host must be the endpoint's Addr.
func (p *Pool) Transport() http.RoundTripper { return p.tr.t }
