// Package jwt authenticates requests with JSON Web Tokens (RFC 7519) signed
// by the Authority and verified against its JSON Web Key Set.
//
// A route's middleware takes the token from a header ("Bearer <token>") or
// a cookie, checks it is a compact JWS (RFC 7515) signed with an allowed
// asymmetric algorithm by a key of the configured JWKS, checks the iss,
// aud, exp, nbf and iat claims, the required claims and the scopes, and
// then passes selected claims upstream as headers. It follows the JWT best
// current practices of RFC 8725: "none" and HMAC are never accepted, and a
// key is only used with an algorithm of its own type.
//
// Verified tokens are cached per route, so a repeated token costs a map
// lookup; an entry dies with its token's exp and with the key that signed
// it.
package jwt

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/textproto"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/prometheus/client_golang/prometheus"

	"torii/internal/config"
	"torii/internal/proxy"
	"torii/internal/request"
)

// realm is the WWW-Authenticate realm (RFC 6750 §3).
const realm = `Bearer realm="torii"`

// middleware is one route's compiled JWT check.
type middleware struct {
	issuer     string
	audiences  []string
	algs       []jose.SignatureAlgorithm
	leeway     time.Duration
	refresh    time.Duration
	minRefresh time.Duration
	header     string // canonical header name, or "" when the cookie is used
	cookie     string
	required   []requiredClaim // sorted by name
	scopes     []string
	scopeHint  string        // scopes joined by " ", for WWW-Authenticate
	headers    []claimHeader // sorted by claim
	strip      []string      // canonical names of every claims_to_headers header
	set        *keySet
	cache      *cache
	now        func() time.Time
	counts     map[string]prometheus.Counter // result -> counter, fixed at New
}

type requiredClaim struct{ name, value string }

type claimHeader struct{ claim, header string }

// New returns the JWT middleware of route, verifying tokens as cfg says
// with keys from keys. Fields of cfg left zero take their defaults; New
// refuses a config that the config package would refuse on security
// grounds (no issuer or JWKS, "none" or HMAC algorithms). route names the
// route in metrics.
func New(route string, cfg *config.JWT, keys *Keys) (func(http.Handler) http.Handler, error) {
	m, err := newMiddleware(route, cfg, keys)
	if err != nil {
		return nil, err
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			m.serve(w, r, next)
		})
	}, nil
}

func newMiddleware(route string, cfg *config.JWT, keys *Keys) (*middleware, error) {
	if cfg == nil || keys == nil {
		return nil, errors.New("jwt: nil config or keys")
	}
	if cfg.Issuer == "" {
		return nil, errors.New("jwt: issuer is required")
	}
	if cfg.JWKS == "" {
		return nil, errors.New("jwt: jwks is required")
	}
	if cfg.Header != "" && cfg.Cookie != "" {
		return nil, errors.New("jwt: set header or cookie, not both")
	}
	m := &middleware{
		issuer:     cfg.Issuer,
		audiences:  slices.Clone(cfg.Audiences),
		leeway:     orDefault(time.Duration(cfg.Leeway), config.DefaultJWTLeeway),
		refresh:    orDefault(time.Duration(cfg.JWKSRefresh), config.DefaultJWKSRefresh),
		minRefresh: orDefault(time.Duration(cfg.JWKSMinRefresh), config.DefaultJWKSMinRefresh),
		cookie:     cfg.Cookie,
		scopes:     slices.Clone(cfg.Scopes),
		scopeHint:  strings.Join(cfg.Scopes, " "),
		set:        keys.set(cfg.JWKS),
		now:        keys.now,
		counts:     map[string]prometheus.Counter{},
	}
	if m.cookie == "" {
		m.header = textproto.CanonicalMIMEHeaderKey(cmp(cfg.Header, config.DefaultJWTHeader))
	}
	algs := cfg.Algorithms
	if len(algs) == 0 {
		algs = config.DefaultJWTAlgorithms
	}
	for _, a := range algs {
		if !slices.Contains(config.JWTAlgorithms, a) {
			return nil, fmt.Errorf("jwt: algorithm %q not allowed; use one of %s", a, strings.Join(config.JWTAlgorithms, ", "))
		}
		m.algs = append(m.algs, jose.SignatureAlgorithm(a))
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.RequiredClaims)) {
		m.required = append(m.required, requiredClaim{name, cfg.RequiredClaims[name]})
	}
	for _, claim := range slices.Sorted(maps.Keys(cfg.ClaimsToHeaders)) {
		h := textproto.CanonicalMIMEHeaderKey(cfg.ClaimsToHeaders[claim])
		if h == m.header || h == "Cookie" || h == "Host" {
			return nil, fmt.Errorf("jwt: claims_to_headers cannot write the %s header", h)
		}
		m.headers = append(m.headers, claimHeader{claim, h})
		if !slices.Contains(m.strip, h) {
			m.strip = append(m.strip, h)
		}
	}
	size := cfg.CacheSize
	if size <= 0 {
		size = config.DefaultJWTCacheSize
	}
	m.cache = newCache(size)
	for _, r := range []string{resultOK, resultCached, resultMissing, resultInvalid, resultExpired, resultUnknownKey, resultNoKeys, resultForbidden} {
		m.counts[r] = keys.verifications.WithLabelValues(route, r)
	}
	return m, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

func cmp(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (m *middleware) serve(w http.ResponseWriter, r *http.Request, next http.Handler) {
	// Client-sent copies of the claim headers never reach the upstream,
	// whatever happens next: an upstream must be able to trust them.
	for _, h := range m.strip {
		delete(r.Header, h)
	}
	token, f := m.token(r)
	if f != nil {
		m.refuse(w, r, f)
		return
	}
	now := m.now()
	result := resultCached
	e := m.cache.get(token)
	if e != nil && !m.fresh(e, now) {
		m.cache.remove(token, e)
		e = nil
	}
	if e == nil {
		if e, f = m.verify(r.Context(), token, now); f != nil {
			m.refuse(w, r, f)
			return
		}
		m.cache.put(token, e, now)
		result = resultOK
	}
	for i, v := range e.values {
		if v != "" {
			r.Header[m.headers[i].header] = []string{v}
		}
	}
	if info := request.FromContext(r.Context()); info != nil {
		info.Claims = e.claims
	}
	m.counts[result].Inc()
	next.ServeHTTP(w, r)
}

// fresh reports whether a cached entry still holds at now: the token has
// not expired (a token may expire while cached) and the key that verified
// it is still in the key set (a key the issuer withdrew stops its tokens
// once torii refetches the set).
func (m *middleware) fresh(e *entry, now time.Time) bool {
	if !now.Before(e.expires) {
		return false
	}
	km := m.set.cur.Load()
	if km == nil {
		return false
	}
	_, ok := km.members[e.key]
	return ok
}

// token extracts the raw token from the configured header or cookie.
func (m *middleware) token(r *http.Request) (string, *failure) {
	if m.cookie != "" {
		c, err := r.Cookie(m.cookie)
		if err != nil || c.Value == "" {
			return "", &failure{status: 401, desc: "no token", result: resultMissing}
		}
		return c.Value, nil
	}
	vs := r.Header[m.header]
	switch {
	case len(vs) == 0:
		return "", &failure{status: 401, desc: "no token", result: resultMissing}
	case len(vs) > 1:
		// RFC 6750 §3.1: more than one credential is an invalid request.
		return "", &failure{status: 400, code: "invalid_request", desc: "more than one " + m.header + " header", result: resultInvalid}
	}
	// RFC 6750 §2.1: "Bearer" 1*SP b64token; the scheme is
	// case-insensitive (RFC 9110 §11.1).
	const scheme = "bearer "
	v := vs[0]
	if len(v) < len(scheme) || !strings.EqualFold(v[:len(scheme)], scheme) {
		// Another scheme (Basic, ...) carries no bearer token: answer as
		// for a missing one, with the challenge.
		return "", &failure{status: 401, desc: "no bearer token", result: resultMissing}
	}
	token := strings.TrimLeft(v[len(scheme):], " ")
	if token == "" || strings.ContainsAny(token, " \t") {
		return "", invalid(resultInvalid, "malformed token", nil)
	}
	return token, nil
}

// refuse answers a refused request: the status, a WWW-Authenticate
// challenge (RFC 6750 §3) and torii's JSON error body.
func (m *middleware) refuse(w http.ResponseWriter, r *http.Request, f *failure) {
	m.counts[f.result].Inc()
	if info := request.FromContext(r.Context()); info != nil {
		info.Err = f
	}
	if f.status != http.StatusServiceUnavailable {
		challenge := realm
		if f.code != "" {
			challenge += `, error="` + f.code + `", error_description="` + attrValue(f.desc) + `"`
		}
		if f.code == "insufficient_scope" && m.scopeHint != "" {
			challenge += `, scope="` + attrValue(m.scopeHint) + `"`
		}
		w.Header().Set("WWW-Authenticate", challenge)
	}
	proxy.WriteError(w, r, f.status, msgFor(f))
}

// attrValue makes s fit a WWW-Authenticate attribute value of RFC 6750
// §3: printable ASCII without '"' and '\' (no escapes are allowed).
func attrValue(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return -1
		}
		return r
	}, s)
}

// msgFor is the client-facing message of f.
func msgFor(f *failure) string {
	switch f.status {
	case http.StatusUnauthorized:
		if f.code == "" {
			return "authentication required"
		}
		return "invalid token: " + f.desc
	case http.StatusForbidden:
		return "forbidden: " + f.desc
	}
	return f.desc
}
