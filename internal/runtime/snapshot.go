// Package runtime compiles a validated config into an immutable Snapshot:
// the router, each route's handler and the upstream pools. A Snapshot is
// built completely before it serves a request and never changes after;
// internal/app swaps snapshots atomically on reload. Live endpoint state is
// not here: it lives in the upstream.Registry shared by all snapshots.
package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"sort"
	"strings"
	"time"

	"torii/internal/config"
	"torii/internal/middleware/cache"
	"torii/internal/middleware/compress"
	"torii/internal/middleware/forwardauth"
	"torii/internal/middleware/jwt"
	"torii/internal/middleware/ratelimit"
	"torii/internal/migrate"
	"torii/internal/proxy"
	"torii/internal/request"
	"torii/internal/router"
	"torii/internal/slo"
	"torii/internal/upstream"
)

// Deps are what a Snapshot is built with besides the config.
type Deps struct {
	// Registry holds live endpoint state across snapshots. Required.
	Registry *upstream.Registry
	// Logger receives build and per-route logs. Default: slog.Default().
	Logger *slog.Logger
	// JWTKeys caches the JWKS of every route's JWT issuer across
	// snapshots. Required when a route has auth.jwt.
	JWTKeys *jwt.Keys
	// ForwardAuth is the client that calls forward-auth services, and
	// ForwardAuthMetrics counts its outcomes. Required when a route has
	// auth.forward.
	ForwardAuth        *http.Client
	ForwardAuthMetrics *forwardauth.Metrics
	// RateLimits holds local limiter state and the Redis client across
	// snapshots. Default: a private one without Redis.
	RateLimits *ratelimit.Shared
	// Cache is the shared HTTP cache routes opt into. Default: a private
	// store with the config's limits.
	Cache *cache.Store
	// Compress counts compressed responses. Nil: counted nowhere.
	Compress *compress.Metrics
	// SLO resolves each route's SLI recorder. Nil: no SLO accounting.
	SLO *slo.Accountant
	// Shadow counts mirrored requests. Nil: counted nowhere.
	Shadow *migrate.Metrics
	// Diffs keeps the response comparisons of routes with
	// shadow.compare across snapshots. Nil: responses are not compared.
	Diffs *migrate.Diffs
	// Rollouts drives the live weights of routes with a rollout. Nil: the
	// backends' configured weights hold.
	Rollouts *migrate.Controller
	// Tunnels tracks upgraded connections (WebSocket) across snapshots so
	// shutdown can wait for and close them. Nil: not tracked.
	Tunnels *proxy.Tunnels
}

// Snapshot is one compiled config. Safe for concurrent use.
type Snapshot struct {
	deps    Deps
	cfg     *config.Config
	router  *router.Router
	routes  []*Route
	pools   map[string]*upstream.Pool
	trusted []netip.Prefix
	built   time.Time
}

// Route is one compiled route.
type Route struct {
	// Name is the route's configured name.
	Name string
	// sli records the route's requests against its SLO; nil without one.
	sli *slo.RouteSLI
	// Kind is "proxy", "redirect" or "direct".
	Kind    string
	cfg     *config.Route
	handler http.Handler
}

// Build compiles cfg. It starts nothing: call Start before serving and
// Close when the snapshot is retired. On error, nothing needs closing.
func Build(cfg *config.Config, deps Deps) (*Snapshot, error) {
	if deps.Registry == nil {
		return nil, errors.New("build snapshot: nil upstream registry")
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	// Tools that build a snapshot only to check it (tests, docs examples)
	// get unexported stand-ins; the app passes shared, registered ones.
	if deps.JWTKeys == nil {
		deps.JWTKeys = jwt.NewKeys(jwt.KeysOptions{Logger: deps.Logger})
	}
	if deps.ForwardAuth == nil {
		deps.ForwardAuth = &http.Client{}
	}
	if deps.ForwardAuthMetrics == nil {
		deps.ForwardAuthMetrics = forwardauth.NewMetrics(nil)
	}
	if deps.Cache == nil {
		st, err := cache.NewStore(cache.StoreOptions{
			MaxBytes:       int64(cfg.Cache.MaxBytes),
			MaxObjectBytes: int64(cfg.Cache.MaxObjectBytes),
			Logger:         deps.Logger,
		})
		if err != nil {
			return nil, fmt.Errorf("build snapshot: cache: %w", err)
		}
		deps.Cache = st
	}
	if deps.RateLimits == nil {
		rl, err := ratelimit.NewShared(ratelimit.SharedOptions{Logger: deps.Logger})
		if err != nil {
			return nil, fmt.Errorf("build snapshot: %w", err)
		}
		deps.RateLimits = rl
	}
	s := &Snapshot{deps: deps, cfg: cfg, pools: make(map[string]*upstream.Pool, len(cfg.Upstreams)), built: time.Now()}

	trusted, err := ParsePrefixes(cfg.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("build snapshot: trusted_proxies: %w", err)
	}
	s.trusted = trusted

	names := make([]string, 0, len(cfg.Upstreams))
	for name := range cfg.Upstreams {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		p, err := upstream.NewPool(name, cfg.Upstreams[name], deps.Registry)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("build snapshot: upstreams.%s: %w", name, err)
		}
		s.pools[name] = p
	}

	rules := make([]router.Rule, len(cfg.Routes))
	s.routes = make([]*Route, len(cfg.Routes))
	for i := range cfg.Routes {
		rc := &cfg.Routes[i]
		rules[i] = ruleFor(rc)
		rt, err := s.buildRoute(rc, deps)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("build snapshot: routes[%d] (%s): %w", i, rc.Name, err)
		}
		s.routes[i] = rt
	}
	r, err := router.New(rules)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("build snapshot: %w", err)
	}
	s.router = r
	return s, nil
}

func ruleFor(rc *config.Route) router.Rule {
	m := rc.Match
	rule := router.Rule{
		Host:       strings.ToLower(m.Host),
		Path:       m.Path,
		PathPrefix: m.PathPrefix,
		PathRegex:  m.PathRegex,
		Methods:    m.Methods,
		Priority:   rc.Priority,
	}
	for _, h := range m.Headers {
		rule.Headers = append(rule.Headers, router.ValueMatch{Name: h.Name, Value: h.Value, Regex: h.Regex, Present: h.Present})
	}
	for _, q := range m.Query {
		rule.Query = append(rule.Query, router.ValueMatch{Name: q.Name, Value: q.Value, Regex: q.Regex, Present: q.Present})
	}
	return rule
}

func (s *Snapshot) buildRoute(rc *config.Route, deps Deps) (*Route, error) {
	rt := &Route{Name: rc.Name, cfg: rc}
	if deps.SLO != nil {
		rt.sli = deps.SLO.Route(rc.Name)
	}
	switch {
	case rc.Redirect != nil:
		rt.Kind = "redirect"
		rt.handler = redirectHandler(rc.Redirect, rc.ResponseHeaders)
	case rc.DirectResponse != nil:
		rt.Kind = "direct"
		rt.handler = directHandler(rc.DirectResponse, rc.ResponseHeaders)
	default:
		rt.Kind = "proxy"
		backends := make([]proxy.Backend, 0, len(rc.Backends))
		for _, b := range rc.Backends {
			p, ok := s.pools[b.Upstream]
			if !ok {
				return nil, fmt.Errorf("unknown upstream %q", b.Upstream)
			}
			w := 1
			if b.Weight != nil {
				w = *b.Weight
			}
			backends = append(backends, proxy.Backend{Pool: p, Weight: w, Candidate: b.Candidate})
		}
		attempts := 1
		if rc.Retries.Attempts != nil {
			attempts = *rc.Retries.Attempts
		}
		retryOn, err := proxy.ParseRetryOn(rc.Retries.On)
		if err != nil {
			return nil, err
		}
		var live *proxy.Weights
		if ro := rc.Rollout; ro != nil && deps.Rollouts != nil {
			_, cand, _ := rc.Candidate()
			base := make([]int, len(backends))
			for i, b := range backends {
				base[i] = b.Weight
			}
			split, err := deps.Rollouts.Split(rc.Name, rc.Generation(), base, cand, ro.Steps[0])
			if err != nil {
				return nil, fmt.Errorf("rollout: %w", err)
			}
			live = split.Weights()
		}
		h, err := proxy.New(proxy.Options{
			Route:           rc.Name,
			Backends:        backends,
			Sticky:          rc.Sticky,
			Weights:         live,
			Timeout:         rc.Timeout.D(),
			TryTimeout:      rc.TryTimeout.D(),
			Attempts:        attempts,
			RetryOn:         retryOn,
			RetryStatuses:   rc.Retries.Statuses,
			RequestHeaders:  rc.RequestHeaders,
			ResponseHeaders: rc.ResponseHeaders,
			Logger:          deps.Logger,
			Tunnels:         deps.Tunnels,
		})
		if err != nil {
			return nil, err
		}
		rw, err := newRewriter(rc)
		if err != nil {
			return nil, err
		}
		var inner http.Handler = h
		if sc := rc.Shadow; sc != nil {
			var diffs *migrate.RouteDiffs
			var primary *upstream.Pool
			if sc.Compare != nil && deps.Diffs != nil {
				if diffs, err = deps.Diffs.Route(rc); err != nil {
					return nil, err
				}
				primary = s.pools[primaryUpstream(rc)]
			}
			mw, err := migrate.New(migrate.Options{
				Compare:       diffs,
				Primary:       primary,
				Route:         rc.Name,
				Pool:          s.pools[sc.Upstream],
				Percent:       sc.Percent,
				MaxBodyBytes:  int64(sc.MaxBodyBytes),
				AllowUnsafe:   sc.AllowUnsafe,
				MaxConcurrent: sc.MaxConcurrent,
				Timeout:       sc.Timeout.D(),
				Logger:        deps.Logger,
				Metrics:       deps.Shadow,
			})
			if err != nil {
				return nil, fmt.Errorf("shadow: %w", err)
			}
			inner = mw(inner)
		}
		rt.handler = rw.wrap(inner)
	}
	h, err := s.chain(rc, rt.handler)
	if err != nil {
		return nil, err
	}
	rt.handler = h
	return rt, nil
}

// primaryUpstream is the upstream a comparison's secondary calls: the
// first backend that is neither a candidate nor the shadow's upstream.
func primaryUpstream(rc *config.Route) string {
	for _, b := range rc.Backends {
		if !b.Candidate && b.Upstream != rc.Shadow.Upstream {
			return b.Upstream
		}
	}
	return rc.Backends[0].Upstream
}

// Start starts the pools' health checks and DNS re-resolution.
func (s *Snapshot) Start(ctx context.Context) {
	for _, p := range s.pools {
		p.Start(ctx)
	}
}

// Close stops the snapshot's goroutines. Requests still running on it
// finish normally: connections belong to the registry's shared transports.
func (s *Snapshot) Close() {
	for _, p := range s.pools {
		p.Close()
	}
}

// Config returns the config the snapshot was built from. Callers must not
// modify it.
func (s *Snapshot) Config() *config.Config { return s.cfg }

// Trusted returns the trusted proxy prefixes.
func (s *Snapshot) Trusted() []netip.Prefix { return s.trusted }

// Built returns when the snapshot was built.
func (s *Snapshot) Built() time.Time { return s.built }

// ServeHTTP routes r and runs the route's handler. The caller (the front
// handler) has put a request.Info in the context and cleaned the path.
func (s *Snapshot) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	i := s.router.Match(r)
	if i < 0 {
		proxy.WriteError(w, r, http.StatusNotFound, "no route matches the request")
		return
	}
	rt := s.routes[i]
	if info := request.FromContext(r.Context()); info != nil {
		info.Route = rt.Name
		if rt.sli != nil {
			info.SLO = rt.sli
		}
	}
	rt.handler.ServeHTTP(w, r)
}

// RouteStatus is one route as the admin API shows it.
type RouteStatus struct {
	Name     string           `json:"name"`
	Kind     string           `json:"kind"`
	Priority int              `json:"priority"`
	Match    config.Match     `json:"match"`
	Backends []config.Backend `json:"backends,omitempty"`
	Status   string           `json:"status"`
}

// Routes lists the compiled routes in config order.
func (s *Snapshot) Routes() []RouteStatus {
	out := make([]RouteStatus, len(s.routes))
	for i, rt := range s.routes {
		out[i] = RouteStatus{
			Name:     rt.Name,
			Kind:     rt.Kind,
			Priority: rt.cfg.Priority,
			Match:    rt.cfg.Match,
			Backends: rt.cfg.Backends,
			Status:   "ok",
		}
	}
	return out
}

// ParsePrefixes parses CIDRs or single IPs ("10.0.0.0/8", "192.0.2.1").
func ParsePrefixes(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		if strings.Contains(s, "/") {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, err
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, err
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}
