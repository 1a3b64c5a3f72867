package upstream

import (
	"cmp"
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Resolver looks up host names; *net.Resolver satisfies it.
type Resolver interface {
	LookupHost(ctx context.Context, host string) ([]string, error)
}

// Options are a Registry's injected dependencies. Zero values take
// defaults: time.Now, net.DefaultResolver, slog.Default().
type Options struct {
	// Now is the clock used for ejections, their decay and check times.
	// Default: time.Now.
	Now func() time.Time
	// Resolver resolves endpoint host names. Default: net.DefaultResolver.
	Resolver Resolver
	// Logger receives DNS failures, health transitions and ejections.
	// Default: slog.Default().
	Logger *slog.Logger
}

// Registry holds live endpoint state and warm transports across reloads.
// Pools built over the same Registry for the same upstream name share the
// state of each endpoint address, the upstream's request and retry
// counters, and (when the connection settings match) the transport with
// its idle keep-alive connections.
//
// State nobody references is dropped when the last pool referencing it
// closes, so many reloads do not leak. A Registry is safe for concurrent
// use.
type Registry struct {
	now      func() time.Time
	resolver Resolver
	log      *slog.Logger

	// mu guards upstreams and transports, and the refs counts and endpoint
	// maps inside their values.
	mu         sync.Mutex
	upstreams  map[string]*upstreamState
	transports map[transportKey]*sharedTransport
}

// NewRegistry returns an empty registry. It starts nothing.
func NewRegistry(opts Options) *Registry {
	r := &Registry{
		now:        opts.Now,
		resolver:   opts.Resolver,
		log:        opts.Logger,
		upstreams:  make(map[string]*upstreamState),
		transports: make(map[transportKey]*sharedTransport),
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.resolver == nil {
		r.resolver = net.DefaultResolver
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	return r
}

// upstreamState is the live state of one upstream name, shared by every
// pool built for that name.
type upstreamState struct {
	name string

	// active counts requests between Acquire and Release, across pools,
	// so a reload does not double the max_requests cap.
	active atomic.Int64
	// retries counts retries between AllowRetry and RetryDone.
	retries atomic.Int64

	// ejectMu serialises ejection decisions (and their early end by an
	// active check) for the upstream, so the max_ejected_percent count and
	// the ejection it allows happen as one step.
	ejectMu sync.Mutex

	// refs counts open pools for this upstream; guarded by Registry.mu.
	refs int
	// endpoints maps an address to its state; guarded by Registry.mu.
	endpoints map[string]*endpointState
}

// endpointState is the live state of one (upstream, address). Times are
// Unix nanoseconds of the registry's clock; zero means never.
type endpointState struct {
	upstream string
	addr     string

	weight   atomic.Int64 // weight given by the newest pool that took it
	inFlight atomic.Int64 // tries between Begin and End
	failures atomic.Int64 // consecutive passive failures

	healthy       atomic.Bool  // active check verdict; true until checks say otherwise
	checkPasses   atomic.Int64 // consecutive passing active checks
	checkFailures atomic.Int64 // consecutive failing active checks
	lastCheck     atomic.Int64
	lastCheckErr  atomic.Pointer[string]

	ejectedAt    atomic.Int64  // start of the latest ejection
	ejectedUntil atomic.Int64  // end of the latest ejection; ejected while in the future
	ejections    atomic.Uint64 // ejections so far
	multiplier   atomic.Int64  // length of the latest ejection in base_ejection units

	// refs counts the open pools whose endpoint list holds this address;
	// guarded by Registry.mu.
	refs int
}

// ejected reports whether s is ejected at now (Unix nanoseconds).
func (s *endpointState) ejected(now int64) bool {
	return s.ejectedUntil.Load() > now
}

func (s *endpointState) status(now int64) EndpointStatus {
	st := EndpointStatus{
		Upstream:            s.upstream,
		Addr:                s.addr,
		Weight:              int(s.weight.Load()),
		Healthy:             s.healthy.Load(),
		Ejections:           s.ejections.Load(),
		InFlight:            s.inFlight.Load(),
		ConsecutiveFailures: s.failures.Load(),
	}
	if until := s.ejectedUntil.Load(); until > now {
		st.Ejected = true
		st.EjectedUntil = time.Unix(0, until).UTC()
	}
	if t := s.lastCheck.Load(); t != 0 {
		st.LastCheck = time.Unix(0, t).UTC()
	}
	if e := s.lastCheckErr.Load(); e != nil {
		st.LastCheckError = *e
	}
	return st
}

// EndpointStatus is one endpoint's live state, for the admin API and
// metrics.
type EndpointStatus struct {
	// Upstream is the upstream's name.
	Upstream string `json:"upstream"`
	// Addr is the endpoint's dial address, "ip:port" (or "host:port"
	// before its name first resolved).
	Addr string `json:"addr"`
	// Weight is the endpoint's configured weight.
	Weight int `json:"weight"`
	// Healthy is the active health check's verdict; true when the
	// upstream has no health checks.
	Healthy bool `json:"healthy"`
	// Ejected reports whether outlier detection has the endpoint out of
	// rotation now.
	Ejected bool `json:"ejected"`
	// EjectedUntil is when the current ejection ends; zero when not
	// ejected.
	EjectedUntil time.Time `json:"ejected_until,omitzero"`
	// Ejections counts ejections since the endpoint's state was created
	// (a counter, for metrics).
	Ejections uint64 `json:"ejections"`
	// InFlight is the number of tries in progress.
	InFlight int64 `json:"in_flight"`
	// ConsecutiveFailures counts gateway errors and 5xx since the last
	// success or ejection.
	ConsecutiveFailures int64 `json:"consecutive_failures"`
	// LastCheck is when the last active check started; zero when none ran.
	LastCheck time.Time `json:"last_check,omitzero"`
	// LastCheckError is why the last active check failed; empty when it
	// passed.
	LastCheckError string `json:"last_check_error,omitempty"`
}

// Status returns the live state of every endpoint of every pool built over
// the registry and not yet closed, sorted by upstream then address. An
// endpoint shared by several pools (an old and a new config during a
// reload) is listed once.
func (r *Registry) Status() []EndpointStatus {
	now := r.now().UnixNano()
	r.mu.Lock()
	var out []EndpointStatus
	for _, u := range r.upstreams {
		for _, s := range u.endpoints {
			out = append(out, s.status(now))
		}
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b EndpointStatus) int {
		return cmp.Or(cmp.Compare(a.Upstream, b.Upstream), cmp.Compare(a.Addr, b.Addr))
	})
	return out
}

// acquireUpstream returns the state of upstream name, taking a reference.
func (r *Registry) acquireUpstream(name string) *upstreamState {
	r.mu.Lock()
	defer r.mu.Unlock()
	u := r.upstreams[name]
	if u == nil {
		u = &upstreamState{name: name, endpoints: make(map[string]*endpointState)}
		r.upstreams[name] = u
	}
	u.refs++
	return u
}

// releaseUpstream drops a reference taken by acquireUpstream.
func (r *Registry) releaseUpstream(u *upstreamState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	u.refs--
	if u.refs <= 0 && r.upstreams[u.name] == u {
		delete(r.upstreams, u.name)
	}
}

// acquireEndpoint returns the state of addr in u, creating it healthy and
// not ejected, and takes a reference.
func (r *Registry) acquireEndpoint(u *upstreamState, addr string, weight int) *endpointState {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := u.endpoints[addr]
	if s == nil {
		s = &endpointState{upstream: u.name, addr: addr}
		s.healthy.Store(true)
		u.endpoints[addr] = s
	}
	s.weight.Store(int64(weight))
	s.refs++
	return s
}

// releaseEndpoint drops a reference taken by acquireEndpoint; the state
// goes when no pool holds it.
func (r *Registry) releaseEndpoint(u *upstreamState, s *endpointState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s.refs--
	if s.refs <= 0 && u.endpoints[s.addr] == s {
		delete(u.endpoints, s.addr)
	}
}

// sharedTransport is a transport cached across reloads with the number of
// open pools using it.
type sharedTransport struct {
	key  transportKey
	t    roundTripper
	refs int // guarded by Registry.mu
}

// acquireTransport returns the cached transport for k, building it (which
// opens nothing) on first use with tc, the TLS config k.tls describes.
func (r *Registry) acquireTransport(k transportKey, tc *tls.Config) *sharedTransport {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.transports[k]
	if st == nil {
		st = &sharedTransport{key: k, t: newTransport(k, tc)}
		r.transports[k] = st
	}
	st.refs++
	return st
}

// releaseTransport drops a reference; the last one closes the transport's
// idle connections (busy ones finish and then idle out).
func (r *Registry) releaseTransport(st *sharedTransport) {
	r.mu.Lock()
	last := false
	st.refs--
	if st.refs <= 0 && r.transports[st.key] == st {
		delete(r.transports, st.key)
		last = true
	}
	r.mu.Unlock()
	if last {
		st.t.CloseIdleConnections()
	}
}
