package runtime

import (
	"fmt"
	"net/http"

	"torii/internal/config"
	"torii/internal/middleware/bodylimit"
	"torii/internal/middleware/cache"
	"torii/internal/middleware/compress"
	"torii/internal/middleware/forwardauth"
	"torii/internal/middleware/jwt"
	"torii/internal/middleware/ratelimit"
)

// The middleware order is fixed here and nowhere else: config switches a
// middleware on per route, it cannot reorder the chain. Security before
// cost, outermost first:
//
//  1. request limits (body size): the cheapest refusal, before any work
//     is spent on a request that cannot be served;
//  2. authentication (JWT, then forward auth): nothing below may act for a
//     caller the route would refuse;
//  3. rate limits: after auth, so a limit may key on a verified claim and
//     unauthenticated floods do not spend the authenticated budget;
//  4. the HTTP cache: after auth, so nothing cached is served to a request
//     auth would refuse, and after rate limits, so hits count against them;
//  5. compression, inside the cache, so the cache stores each encoding as
//     its own variant (Vary: Accept-Encoding) and a hit costs no
//     compression;
//  6. path rewrite, then shadowing (innermost, so the candidate sees the
//     rewritten request and the primary is served first), then the
//     route's handler: split, retries, timeouts and the balancer live in
//     internal/proxy.
//
// An explicit switch builds what the config asks for: no registry, no
// init() magic.
func (s *Snapshot) chain(rc *config.Route, h http.Handler) (http.Handler, error) {
	var layers []func(http.Handler) http.Handler
	if n := rc.Limits.MaxBodyBytes; n > 0 { // config defaults it; -1 is no limit
		layers = append(layers, bodylimit.New(int64(n)))
	}
	if a := rc.Auth; a != nil && a.JWT != nil {
		mw, err := jwt.New(rc.Name, a.JWT, s.deps.JWTKeys)
		if err != nil {
			return nil, fmt.Errorf("auth.jwt: %w", err)
		}
		layers = append(layers, mw)
	}
	if a := rc.Auth; a != nil && a.Forward != nil {
		mw, err := forwardauth.New(rc.Name, a.Forward, s.deps.ForwardAuth, forwardauth.WithMetrics(s.deps.ForwardAuthMetrics))
		if err != nil {
			return nil, fmt.Errorf("auth.forward: %w", err)
		}
		layers = append(layers, mw)
	}
	if rl := rc.RateLimit; rl != nil {
		mw, err := ratelimit.New(rc.Name, rl, s.deps.RateLimits)
		if err != nil {
			return nil, fmt.Errorf("rate_limit: %w", err)
		}
		layers = append(layers, mw)
	}
	if c := rc.Cache; c != nil {
		mw, err := cache.New(rc.Name, c, s.deps.Cache, cache.WithTimeout(rc.Timeout.D()))
		if err != nil {
			return nil, fmt.Errorf("cache: %w", err)
		}
		layers = append(layers, mw)
	}
	if c := rc.Compress; c != nil {
		var opts []compress.Option
		if s.deps.Compress != nil {
			opts = append(opts, compress.WithMetrics(s.deps.Compress))
		}
		mw, err := compress.New(c, opts...) // its errors start with "compress:"
		if err != nil {
			return nil, err
		}
		layers = append(layers, mw)
	}
	// Wrap innermost first so layers[0] runs first.
	for i := len(layers) - 1; i >= 0; i-- {
		h = layers[i](h)
	}
	return h, nil
}
