package config

// This file holds the schema of edge security and protocols (issue #3):
// TLS, HTTP/2, upstream protocols, authentication, rate limits, request
// limits and load shedding. Each feature's defaults and validation live in
// its own file (tls.go, auth.go, ratelimit.go, limits.go).

// ListenerTLS terminates TLS on a listener.
type ListenerTLS struct {
	// Certificates are the certificate/key pairs served, chosen by SNI
	// (the client's server name against each certificate's DNS names);
	// the first is the default for clients that send no or an unknown
	// name. Reloaded with the config. Required, non-empty.
	Certificates []Certificate `yaml:"certificates" json:"certificates"`
	// MinVersion is the lowest TLS version accepted: "1.2" or "1.3".
	// Default: "1.2".
	MinVersion string `yaml:"min_version" json:"min_version,omitempty"`
}

// Certificate is one PEM certificate chain and its private key.
type Certificate struct {
	// Cert is the path of the PEM certificate chain. Required.
	Cert string `yaml:"cert" json:"cert"`
	// Key is the path of the PEM private key. Required. Never shown by the
	// admin API (only its path is).
	Key string `yaml:"key" json:"key"`
}

// HTTP2 configures HTTP/2 on a listener: over TLS (negotiated by ALPN)
// and, with H2C, in cleartext.
type HTTP2 struct {
	// Disabled turns HTTP/2 off; only HTTP/1.1 is served. Default: false.
	Disabled bool `yaml:"disabled" json:"disabled,omitempty"`
	// H2C accepts cleartext HTTP/2 (prior knowledge) on a listener without
	// TLS. Default: false.
	H2C bool `yaml:"h2c" json:"h2c,omitempty"`
	// MaxConcurrentStreams caps the streams one client connection may have
	// open. Default: 100.
	MaxConcurrentStreams int `yaml:"max_concurrent_streams" json:"max_concurrent_streams,omitempty"`
}

// UpstreamTLS configures TLS from torii to an upstream's endpoints.
type UpstreamTLS struct {
	// CA is the path of a PEM bundle of CAs that sign the endpoints'
	// certificates. Default: "" (the system roots).
	CA string `yaml:"ca" json:"ca,omitempty"`
	// Cert and Key are the paths of a client certificate and key torii
	// presents (mTLS). Default: none. Both or neither.
	Cert string `yaml:"cert" json:"cert,omitempty"`
	Key  string `yaml:"key" json:"key,omitempty"`
	// ServerName is the name verified in the endpoints' certificates and
	// sent as SNI. Default: the endpoint's host.
	ServerName string `yaml:"server_name" json:"server_name,omitempty"`
	// InsecureSkipVerify turns off certificate verification. For tests
	// only; torii logs a warning at every load. Default: false.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify" json:"insecure_skip_verify,omitempty"`
}

// Auth is a route's authentication. Both may be set: JWT runs first.
type Auth struct {
	// JWT verifies a JSON Web Token issued by the Authority.
	JWT *JWT `yaml:"jwt" json:"jwt,omitempty"`
	// Forward asks an external auth service about each request.
	Forward *ForwardAuth `yaml:"forward" json:"forward,omitempty"`
}

// JWT verifies bearer tokens against keys from a JWKS URL.
type JWT struct {
	// Issuer is the required "iss" claim. Required.
	Issuer string `yaml:"issuer" json:"issuer"`
	// Audiences lists accepted "aud" values; a token must carry one of
	// them. Default: none (aud not checked).
	Audiences []string `yaml:"audiences" json:"audiences,omitempty"`
	// JWKS is the URL of the issuer's JSON Web Key Set. Required.
	JWKS string `yaml:"jwks" json:"jwks"`
	// JWKSRefresh is how often the key set is refetched. Default: 10m. An
	// unknown "kid" triggers an early refetch, at most once per
	// JWKSMinRefresh.
	JWKSRefresh Duration `yaml:"jwks_refresh" json:"jwks_refresh,omitempty"`
	// JWKSMinRefresh is the shortest time between two fetches of the key
	// set. Default: 30s.
	JWKSMinRefresh Duration `yaml:"jwks_min_refresh" json:"jwks_min_refresh,omitempty"`
	// Algorithms lists the accepted "alg" values. Default: ["RS256",
	// "ES256"]. "none" and HMAC algorithms are refused.
	Algorithms []string `yaml:"algorithms" json:"algorithms,omitempty"`
	// Leeway is the clock skew tolerated on exp, nbf and iat. Default: 30s.
	Leeway Duration `yaml:"leeway" json:"leeway,omitempty"`
	// Header is the request header carrying "Bearer <token>". Default:
	// "Authorization" (unless Cookie is set).
	Header string `yaml:"header" json:"header,omitempty"`
	// Cookie, when set, is the cookie carrying the token.
	Cookie string `yaml:"cookie" json:"cookie,omitempty"`
	// RequiredClaims are claims that must be present with these exact
	// string values.
	RequiredClaims map[string]string `yaml:"required_claims" json:"required_claims,omitempty"`
	// Scopes are required scopes, all of them, from the "scope"
	// (space-separated) or "scp" (list) claim.
	Scopes []string `yaml:"scopes" json:"scopes,omitempty"`
	// ClaimsToHeaders passes claims upstream: claim name -> header name,
	// e.g. {sub: X-User-Id}. Client-sent copies of those headers are
	// always removed.
	ClaimsToHeaders map[string]string `yaml:"claims_to_headers" json:"claims_to_headers,omitempty"`
	// CacheSize bounds the cache of verified tokens (entries). Default:
	// 10000. Entries expire with their token.
	CacheSize int `yaml:"cache_size" json:"cache_size,omitempty"`
}

// ForwardAuth asks an auth service whether to let a request through.
type ForwardAuth struct {
	// URL is the auth service's endpoint. Required.
	URL string `yaml:"url" json:"url"`
	// RequestHeaders are the client headers sent to the auth service.
	// Default: ["Authorization", "Cookie"].
	RequestHeaders []string `yaml:"request_headers" json:"request_headers,omitempty"`
	// ResponseHeaders are the auth service's response headers copied onto
	// the upstream request on success (client copies removed). Default:
	// none.
	ResponseHeaders []string `yaml:"response_headers" json:"response_headers,omitempty"`
	// Timeout bounds the auth call; on timeout the client gets 503.
	// Default: 2s.
	Timeout Duration `yaml:"timeout" json:"timeout,omitempty"`
}

// RateLimit limits a route's request rate per key.
type RateLimit struct {
	// Algorithm is "gcra" (default) or "token_bucket".
	Algorithm string `yaml:"algorithm" json:"algorithm,omitempty"`
	// Requests per Period is the sustained rate. Required, positive.
	Requests int `yaml:"requests" json:"requests"`
	// Period is the rate's time unit. Default: 1s.
	Period Duration `yaml:"period" json:"period,omitempty"`
	// Burst is how many requests a key may send at once after being idle.
	// Default: equal to Requests.
	Burst int `yaml:"burst" json:"burst,omitempty"`
	// Key selects what is limited. Default: the client IP.
	Key RateLimitKey `yaml:"key" json:"key"`
	// Scope is "local" (each torii counts alone, the default) or "global"
	// (all replicas share counts through redis).
	Scope string `yaml:"scope" json:"scope,omitempty"`
	// OnRedisError is "open" (admit, the default) or "closed" (refuse with
	// 503) when Redis cannot be reached for a global limit.
	OnRedisError string `yaml:"on_redis_error" json:"on_redis_error,omitempty"`
}

// RateLimitKey selects the rate-limit key. At most one field is set;
// none means the client IP.
type RateLimitKey struct {
	// ClientIP keys on the client's IP (trusted-proxy aware).
	ClientIP bool `yaml:"client_ip" json:"client_ip,omitempty"`
	// Header keys on a request header's value; requests without it share
	// one key.
	Header string `yaml:"header" json:"header,omitempty"`
	// Claim keys on a verified JWT claim; needs auth.jwt on the route.
	Claim string `yaml:"claim" json:"claim,omitempty"`
}

// Redis is the shared store of global rate limits.
type Redis struct {
	// Addr is host:port of the Redis server. Required.
	Addr string `yaml:"addr" json:"addr"`
	// Username and Password authenticate (ACL). Password is redacted in
	// the admin API.
	Username string `yaml:"username" json:"username,omitempty"`
	Password string `yaml:"password" json:"password,omitempty"`
	// DB is the database number. Default: 0.
	DB int `yaml:"db" json:"db,omitempty"`
	// Timeout bounds each Redis call; a slower answer counts as Redis
	// unreachable. Default: 50ms.
	Timeout Duration `yaml:"timeout" json:"timeout,omitempty"`
}

// Limits are a route's request limits.
type Limits struct {
	// MaxBodyBytes caps the request body; a larger one gets 413, also when
	// it is streamed without Content-Length. Default: 0, meaning 10 MiB;
	// -1 means no limit.
	MaxBodyBytes int `yaml:"max_body_bytes" json:"max_body_bytes,omitempty"`
}
