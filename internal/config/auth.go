package config

// Defaults and validation of route authentication: JWT and forward auth.

import (
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// JWTAlgorithms are the JWS algorithms auth.jwt.algorithms may list:
// asymmetric signatures only. "none" and HMAC are refused (RFC 8725 §3.1,
// §3.2).
var JWTAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// DefaultJWTAlgorithms are the algorithms accepted when none are listed.
var DefaultJWTAlgorithms = []string{"RS256", "ES256"}

// Defaults of auth.jwt and auth.forward, documented on their fields.
const (
	DefaultJWTHeader      = "Authorization"
	DefaultJWTCacheSize   = 10000
	DefaultJWKSRefresh    = 10 * time.Minute
	DefaultJWKSMinRefresh = 30 * time.Second
	DefaultJWTLeeway      = 30 * time.Second
	DefaultForwardTimeout = 2 * time.Second
)

// maxJWTLeeway bounds auth.jwt.leeway: more than clock skew would keep
// expired tokens alive.
const maxJWTLeeway = 5 * time.Minute

func (r *Route) applyAuthDefaults() {
	if r.Auth == nil {
		return
	}
	if j := r.Auth.JWT; j != nil {
		setDuration(&j.JWKSRefresh, DefaultJWKSRefresh)
		setDuration(&j.JWKSMinRefresh, DefaultJWKSMinRefresh)
		setDuration(&j.Leeway, DefaultJWTLeeway)
		if len(j.Algorithms) == 0 {
			j.Algorithms = slices.Clone(DefaultJWTAlgorithms)
		}
		if j.Header == "" && j.Cookie == "" {
			j.Header = DefaultJWTHeader
		}
		setInt(&j.CacheSize, DefaultJWTCacheSize)
	}
	if f := r.Auth.Forward; f != nil {
		if len(f.RequestHeaders) == 0 {
			f.RequestHeaders = []string{"Authorization", "Cookie"}
		}
		setDuration(&f.Timeout, DefaultForwardTimeout)
	}
}

func (v *checker) routeAuth(p string, r *Route) {
	if r.Auth == nil {
		return
	}
	p += ".auth"
	if r.Auth.JWT == nil && r.Auth.Forward == nil {
		v.addf(p, "auth is empty; set jwt, forward or both, or remove auth")
	}
	if j := r.Auth.JWT; j != nil {
		v.jwt(p+".jwt", j)
	}
	if f := r.Auth.Forward; f != nil {
		v.forwardAuth(p+".forward", f)
	}
}

func (v *checker) jwt(p string, j *JWT) {
	if j.Issuer == "" {
		v.addf(p+".issuer", "issuer is required; it must equal the tokens' \"iss\" claim, e.g. \"https://authority.internal\"")
	}
	for i, a := range j.Audiences {
		if a == "" {
			v.addf(p+".audiences["+strconv.Itoa(i)+"]", "audience must not be empty")
		}
	}
	switch {
	case j.JWKS == "":
		v.addf(p+".jwks", "jwks is required: the URL of the issuer's key set, e.g. \"https://authority.internal/jwks.json\"")
	case !absHTTPURL(j.JWKS):
		v.addf(p+".jwks", "invalid jwks URL %q; want an absolute http or https URL", redactURL(j.JWKS))
	}
	if j.JWKSMinRefresh > j.JWKSRefresh {
		v.addf(p+".jwks_min_refresh", "jwks_min_refresh (%s) must not exceed jwks_refresh (%s)", j.JWKSMinRefresh, j.JWKSRefresh)
	}
	if j.Leeway > Duration(maxJWTLeeway) {
		v.addf(p+".leeway", "leeway %s is more than %s; leeway absorbs clock skew, a larger one keeps expired tokens alive", j.Leeway, Duration(maxJWTLeeway))
	}
	for i, a := range j.Algorithms {
		ap := p + ".algorithms[" + strconv.Itoa(i) + "]"
		switch {
		case strings.EqualFold(a, "none"):
			v.addf(ap, "algorithm \"none\" means an unsigned token, which anyone can forge; it is never accepted")
		case len(a) > 2 && strings.EqualFold(a[:2], "HS"):
			v.addf(ap, "HMAC algorithm %q is refused: its key is a shared secret, but torii verifies with public keys from a JWKS, so anyone could sign (RFC 8725 §2.1); use RS256, PS256, ES256 or EdDSA", a)
		case !slices.Contains(JWTAlgorithms, a):
			v.addf(ap, "%s", unknownValue("algorithm", a, JWTAlgorithms))
		}
	}
	if j.Header != "" && j.Cookie != "" {
		v.addf(p, "set header or cookie, not both; the token comes from one place")
	}
	if j.Header != "" {
		v.headerName(p+".header", j.Header)
	}
	if j.Cookie != "" && !isToken(j.Cookie) {
		v.addf(p+".cookie", "invalid cookie name %q", j.Cookie)
	}
	for _, name := range slices.Sorted(maps.Keys(j.RequiredClaims)) {
		if name == "" {
			v.addf(p+".required_claims", "a required claim has an empty name")
		}
	}
	for i, s := range j.Scopes {
		// RFC 6749 §3.3: a scope token is non-empty and has no spaces.
		if s == "" || strings.ContainsAny(s, " \t\"\\") || hasControl(s) {
			v.addf(p+".scopes["+strconv.Itoa(i)+"]", "invalid scope %q; a scope is a non-empty word without spaces or quotes", s)
		}
	}
	v.claimsToHeaders(p+".claims_to_headers", j)
	v.atLeast(p+".cache_size", j.CacheSize, 1)
}

// claimsToHeaders checks the headers claims are written to: valid, one
// claim each, and none the proxy or the token itself needs.
func (v *checker) claimsToHeaders(p string, j *JWT) {
	seen := map[string]string{}
	for _, claim := range slices.Sorted(maps.Keys(j.ClaimsToHeaders)) {
		cp := join(p, claim)
		name := j.ClaimsToHeaders[claim]
		if claim == "" {
			v.addf(p, "a claim name is empty")
			continue
		}
		if !v.editableHeader(cp, name) {
			continue
		}
		c := canonicalHeader(name)
		switch {
		case j.Header != "" && c == canonicalHeader(j.Header):
			v.addf(cp, "%q carries the token; a claim cannot be written to it", name)
		case c == "Cookie":
			v.addf(cp, "the Cookie header cannot carry a claim; pick a header of its own, e.g. \"X-User-Id\"")
		case seen[c] != "":
			v.addf(cp, "header %q is also written from claim %q; give each claim its own header", name, seen[c])
		}
		seen[c] = claim
	}
}

func (v *checker) forwardAuth(p string, f *ForwardAuth) {
	switch {
	case f.URL == "":
		v.addf(p+".url", "url is required: the auth service's endpoint, e.g. \"http://127.0.0.1:9100/check\"")
	case !absHTTPURL(f.URL):
		v.addf(p+".url", "invalid url %q; want an absolute http or https URL", redactURL(f.URL))
	}
	for i, name := range f.RequestHeaders {
		v.headerName(p+".request_headers["+strconv.Itoa(i)+"]", name)
	}
	for i, name := range f.ResponseHeaders {
		v.editableHeader(p+".response_headers["+strconv.Itoa(i)+"]", name)
	}
	if f.Timeout == 0 {
		v.addf(p+".timeout", "must be positive, e.g. \"2s\"")
	}
}

// absHTTPURL reports whether s is an absolute http or https URL with a
// host.
func absHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}
