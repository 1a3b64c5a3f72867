// Package upstream holds the backend pools: endpoints, their live state
// (in-flight requests, failures, health, ejections), balancers, active health
// checks, passive outlier detection, DNS re-resolution and the keep-alive
// transport.
//
// Live state lives in a Registry keyed by (upstream name, endpoint address),
// outside any config snapshot, so it survives reloads: a reload builds new
// Pools over the same Registry (Caddy's hosts pool).
//
// STUB: the exported API below is the contract used by internal/proxy and
// internal/runtime; bodies are being implemented.
package upstream

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"torii/internal/config"
)

// ErrNoEndpoint is returned by Pick when no endpoint is available (all
// unhealthy, ejected or already tried).
var ErrNoEndpoint = errors.New("no healthy endpoint")

// Outcome is how one try to an endpoint ended, as passive outlier detection
// counts it.
type Outcome int

const (
	// Success is a response with status below 500.
	Success Outcome = iota
	// Failure5xx is a response with a 5xx status.
	Failure5xx
	// GatewayError is a connect failure, reset or timeout.
	GatewayError
	// Canceled is a try abandoned because the client went away; it counts
	// neither way.
	Canceled
)

// Resolver looks up host names; *net.Resolver satisfies it.
type Resolver interface {
	LookupHost(ctx context.Context, host string) ([]string, error)
}

// Options are a Registry's injected dependencies. Zero values take
// defaults: time.Now, net.DefaultResolver, slog.Default().
type Options struct {
	Now      func() time.Time
	Resolver Resolver
	Logger   *slog.Logger
}

// Registry holds live endpoint state and warm transports across reloads.
type Registry struct{}

// NewRegistry returns an empty registry. It starts nothing.
func NewRegistry(opts Options) *Registry { panic("unimplemented") }

// Status returns the live state of every endpoint of every pool built over
// the registry and not yet closed, sorted by upstream then address.
func (r *Registry) Status() []EndpointStatus { panic("unimplemented") }

// EndpointStatus is one endpoint's live state, for the admin API and
// metrics.
type EndpointStatus struct {
	Upstream            string    `json:"upstream"`
	Addr                string    `json:"addr"`
	Weight              int       `json:"weight"`
	Healthy             bool      `json:"healthy"`
	Ejected             bool      `json:"ejected"`
	EjectedUntil        time.Time `json:"ejected_until,omitzero"`
	Ejections           uint64    `json:"ejections"`
	InFlight            int64     `json:"in_flight"`
	ConsecutiveFailures int64     `json:"consecutive_failures"`
	LastCheck           time.Time `json:"last_check,omitzero"`
	LastCheckError      string    `json:"last_check_error,omitempty"`
}

// Pool is one upstream's endpoints, balancer and transport, built from one
// config snapshot.
type Pool struct{}

// NewPool builds the pool for upstream name from a validated cfg. It has no
// side effects: no goroutine, no DNS lookup, no connection.
func NewPool(name string, cfg *config.Upstream, reg *Registry) (*Pool, error) {
	panic("unimplemented")
}

// Name returns the upstream's name.
func (p *Pool) Name() string { panic("unimplemented") }

// Start begins active health checks and DNS re-resolution; they stop when
// ctx ends or Close is called.
func (p *Pool) Start(ctx context.Context) { panic("unimplemented") }

// Close stops the pool's goroutines. Safe on a pool never started, and
// more than once. It does not close connections of the shared transport.
func (p *Pool) Close() { panic("unimplemented") }

// Pick chooses an endpoint for req by the pool's balancer, skipping
// unhealthy and ejected endpoints and those in tried. clientIP feeds
// client-IP hashing. It returns ErrNoEndpoint when none is left.
func (p *Pool) Pick(req *http.Request, clientIP netip.Addr, tried []*Endpoint) (*Endpoint, error) {
	panic("unimplemented")
}

// Acquire takes one of the pool's max_requests slots and reports whether
// one was free; a caller that got true must call Release.
func (p *Pool) Acquire() bool { panic("unimplemented") }

// Release returns a slot taken by Acquire.
func (p *Pool) Release() { panic("unimplemented") }

// AllowRetry reports whether the retry budget allows one more retry now;
// a caller that got true must call RetryDone when the retry ends.
func (p *Pool) AllowRetry() bool { panic("unimplemented") }

// RetryDone ends a retry admitted by AllowRetry.
func (p *Pool) RetryDone() { panic("unimplemented") }

// Transport returns the keep-alive round tripper for this upstream. The
// request's URL.Host must be the endpoint's Addr.
func (p *Pool) Transport() http.RoundTripper { panic("unimplemented") }

// Endpoint is one address of a pool, with its live state.
type Endpoint struct{}

// Addr returns "ip:port" (or "host:port" for a static host name that
// failed to resolve).
func (e *Endpoint) Addr() string { panic("unimplemented") }

// Begin counts a try starting on e (in-flight requests).
func (e *Endpoint) Begin() { panic("unimplemented") }

// End counts a try on e ending with o, feeding passive outlier detection.
func (e *Endpoint) End(o Outcome) { panic("unimplemented") }
