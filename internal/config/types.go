// Package config is what the user wrote: the YAML schema of torii.yaml, its
// strict decoder, its defaults and its validation. Nothing here opens a
// socket or starts a goroutine; internal/runtime compiles a validated Config
// into the immutable snapshot that serves traffic.
//
// Decoding is strict: an unknown key, a duplicate key, a value of the wrong
// kind, a second YAML document, and YAML anchors, aliases, merge keys and
// custom tags are all errors. Parse reports every problem at once, each with
// its field path and line (see Problem).
//
// Every field's doc comment gives its unit, its default and what zero means.
// docs/configuration.md is the user-facing reference and must agree.
package config

import "time"

// Config is the whole torii.yaml.
type Config struct {
	// Listen is the list of data-plane listeners. Default: one listener on
	// ":8080".
	Listen []Listener `yaml:"listen" json:"listen,omitempty"`
	// Admin is the admin listener (metrics, health, JSON API).
	Admin Admin `yaml:"admin" json:"admin"`
	// TrustedProxies lists the CIDRs (or single IPs) whose X-Forwarded-For,
	// X-Forwarded-Proto and X-Forwarded-Host headers are believed. A client
	// outside them has those headers replaced. Default: none, so every
	// client's forwarded headers are replaced.
	TrustedProxies []string `yaml:"trusted_proxies" json:"trusted_proxies,omitempty"`
	// Paths says what to do with ambiguous request paths.
	Paths Paths `yaml:"paths" json:"paths"`
	// Upstreams are the named backend pools, referenced by routes. Names
	// use letters, digits, '-', '_' and '.'.
	Upstreams map[string]*Upstream `yaml:"upstreams" json:"upstreams,omitempty"`
	// Store is where SLO counts and alert state live: SQLite by default,
	// PostgreSQL for several replicas.
	Store Store `yaml:"store" json:"store"`
	// Teams are the owners of routes and the receivers of their alerts.
	Teams map[string]*Team `yaml:"teams" json:"teams,omitempty"`
	// DefaultOwner is the team owning routes that name none. Default: "".
	DefaultOwner string `yaml:"default_owner" json:"default_owner,omitempty"`
	// DefaultSLO applies to routes that have no slo block. Nil: such
	// routes have no SLO.
	DefaultSLO *SLO `yaml:"default_slo" json:"default_slo,omitempty"`
	// Cache is the shared in-memory HTTP cache; routes opt in with their
	// own cache block.
	Cache CacheStore `yaml:"cache" json:"cache"`
	// Redis is the shared store of global rate limits. Nil: global rate
	// limits are refused by validation.
	Redis *Redis `yaml:"redis" json:"redis,omitempty"`
	// Routes are matched by the priority rule in docs/routing.md; the order
	// here is only the final tie-break.
	Routes []Route `yaml:"routes" json:"routes,omitempty"`
	// AccessLog configures the structured JSON access log.
	AccessLog AccessLog `yaml:"access_log" json:"access_log"`
	// Tracing configures OpenTelemetry tracing. Off by default.
	Tracing Tracing `yaml:"tracing" json:"tracing"`
	// Reload configures reloading on file change.
	Reload Reload `yaml:"reload" json:"reload"`
	// Shutdown configures the graceful stop on SIGTERM.
	Shutdown Shutdown `yaml:"shutdown" json:"shutdown"`

	// lines maps a field path (as in Problem.Path) to its line in the
	// source; filled by the decoder, read by Line.
	lines map[string]int
	// source is the file name the config was read from, if any.
	source string
}

// Listener is one data-plane listening socket and its http.Server.
type Listener struct {
	// Name identifies the listener in metrics and logs; unique. Default: the
	// address.
	Name string `yaml:"name" json:"name,omitempty"`
	// Addr is the host:port to listen on, e.g. ":8080" or "127.0.0.1:8080".
	// An empty host listens on every interface; port 0 picks a free port
	// (for tests). Required; no two listeners may bind the same port.
	Addr string `yaml:"addr" json:"addr,omitempty"`
	// ProxyProtocol, when set, makes the listener accept the PROXY protocol
	// (v1 and v2) from the listed load balancers. Nil: off.
	ProxyProtocol *ProxyProtocol `yaml:"proxy_protocol" json:"proxy_protocol,omitempty"`
	// Timeouts bound each phase of a client connection.
	Timeouts ListenerTimeouts `yaml:"timeouts" json:"timeouts"`
	// TLS terminates TLS on this listener. Nil: plain HTTP.
	TLS *ListenerTLS `yaml:"tls" json:"tls,omitempty"`
	// HTTP2 configures HTTP/2 (over TLS by ALPN; cleartext with h2c).
	HTTP2 HTTP2 `yaml:"http2" json:"http2"`
	// MaxConnections caps open client connections; further connections
	// are accepted and closed at once, counted in a metric. Default:
	// 10000. -1: no cap.
	MaxConnections int `yaml:"max_connections" json:"max_connections,omitempty"`
	// MaxRequests caps concurrent requests on this listener; one more gets
	// 503. Default: 0, meaning no cap.
	MaxRequests int `yaml:"max_requests" json:"max_requests,omitempty"`
	// MaxHeaderBytes is the largest request head (request line and headers)
	// accepted, in bytes; larger heads get 431. Default: 65536 (64 KiB).
	// Zero: the default.
	MaxHeaderBytes int `yaml:"max_header_bytes" json:"max_header_bytes"`
}

// ProxyProtocol configures PROXY protocol (v1 text and v2 binary) on a
// listener.
type ProxyProtocol struct {
	// Trusted lists the CIDRs (or single IPs) of the load balancers allowed to send a PROXY
	// header. A connection from elsewhere is served with its socket address
	// as the client address, and a PROXY header from it is rejected.
	// Required, non-empty.
	Trusted []string `yaml:"trusted" json:"trusted,omitempty"`
	// Timeout bounds how long to wait for the PROXY header. Default: 5s.
	// Zero: the default.
	Timeout Duration `yaml:"timeout" json:"timeout"`
}

// ListenerTimeouts are the http.Server timeouts of a listener.
type ListenerTimeouts struct {
	// ReadHeader bounds reading the request head. Default: 10s. Zero: the
	// default; there is no way to disable it (slowloris).
	ReadHeader Duration `yaml:"read_header" json:"read_header"`
	// Read bounds reading the whole request, body included. Default: 60s.
	// Zero: the default.
	Read Duration `yaml:"read" json:"read"`
	// Write bounds writing the response, from the end of the request head.
	// Default: 0, meaning none, so long streams live; the route's timeout
	// bounds the upstream exchange instead.
	Write Duration `yaml:"write" json:"write"`
	// Idle bounds how long a keep-alive connection waits for its next
	// request. Default: 120s. Zero: the default.
	Idle Duration `yaml:"idle" json:"idle"`
}

// Admin is the admin listener.
type Admin struct {
	// Addr is where the admin API listens. Default: "127.0.0.1:9901"
	// (loopback). Must not collide with a data-plane listener. Use Disabled
	// to turn the admin listener off.
	Addr string `yaml:"addr" json:"addr,omitempty"`
	// Disabled turns the admin listener off. Default: false.
	Disabled bool `yaml:"disabled" json:"disabled"`
	// Token, when set, is the bearer token that state-changing admin calls
	// (POST, PUT, DELETE) must carry in "Authorization: Bearer <token>".
	// Redacted in GET /api/v1/config. Default: "" (no token; cross-site
	// checks still apply).
	Token string `yaml:"token" json:"token,omitempty"`
}

// Upstream is a named pool of endpoints.
type Upstream struct {
	// Endpoints are "host:port" strings, or objects {addr, weight}. A host
	// that is not an IP literal is resolved with DNS and re-resolved every
	// DNSRefresh. Required, non-empty, no address twice.
	Endpoints []Endpoint `yaml:"endpoints" json:"endpoints,omitempty"`
	// Balance is the balancing policy: "round_robin" (default, smooth
	// weighted), "least_request" (power of two choices, weighted) or
	// "hash" (consistent hash; see Hash).
	Balance string `yaml:"balance" json:"balance,omitempty"`
	// Hash selects the key for Balance "hash". Required when Balance is
	// "hash", and an error otherwise.
	Hash *HashKey `yaml:"hash" json:"hash,omitempty"`
	// DNSRefresh is how often host names in Endpoints are re-resolved.
	// Default: 30s.
	DNSRefresh Duration `yaml:"dns_refresh" json:"dns_refresh"`
	// Protocol is how torii speaks to the endpoints: "http1" (default),
	// "h2" (HTTP/2 over TLS; needs tls) or "h2c" (cleartext HTTP/2, e.g.
	// for gRPC services).
	Protocol string `yaml:"protocol" json:"protocol,omitempty"`
	// TLS, when set, makes torii connect to the endpoints over TLS.
	TLS *UpstreamTLS `yaml:"tls" json:"tls,omitempty"`
	// Health configures active health checks. Nil: none; endpoints are
	// healthy unless ejected by outlier detection.
	Health *HealthCheck `yaml:"health" json:"health,omitempty"`
	// Outlier configures passive outlier detection (always on).
	Outlier Outlier `yaml:"outlier" json:"outlier"`
	// MaxRequests caps the upstream's concurrent requests; one more gets
	// 503. Default: 0, meaning no cap.
	MaxRequests int `yaml:"max_requests" json:"max_requests"`
	// RetryBudget caps retries to a share of the upstream's active requests.
	RetryBudget RetryBudget `yaml:"retry_budget" json:"retry_budget"`
	// Pool configures the keep-alive connection pool to each endpoint.
	Pool ConnPool `yaml:"pool" json:"pool"`
	// ConnectTimeout bounds a TCP connect to an endpoint. Default: 5s.
	ConnectTimeout Duration `yaml:"connect_timeout" json:"connect_timeout"`
}

// Endpoint is one address in an upstream. In YAML it is either a
// "host:port" string or an object.
type Endpoint struct {
	// Addr is "host:port". Required.
	Addr string `yaml:"addr" json:"addr,omitempty"`
	// Weight is the endpoint's relative share of traffic. Default: 1 (zero
	// means the default). Range: 1 to 1000.
	Weight int `yaml:"weight" json:"weight"`
}

// HashKey is the key of consistent-hash balancing. Exactly one of its fields
// is set.
type HashKey struct {
	// Header hashes on this request header's value.
	Header string `yaml:"header" json:"header,omitempty"`
	// Cookie hashes on this cookie's value.
	Cookie string `yaml:"cookie" json:"cookie,omitempty"`
	// ClientIP hashes on the client's IP (trusted-proxy aware).
	ClientIP bool `yaml:"client_ip" json:"client_ip"`
}

// HealthCheck is an active HTTP health check.
type HealthCheck struct {
	// Path is the request path, starting with "/", e.g. "/healthz".
	// Required.
	Path string `yaml:"path" json:"path,omitempty"`
	// Host is the Host header sent, a host name with an optional port.
	// Default: the endpoint's address.
	Host string `yaml:"host" json:"host,omitempty"`
	// Interval is the time between checks of one endpoint. Default: 5s.
	Interval Duration `yaml:"interval" json:"interval"`
	// Timeout bounds one check. Default: 2s; must be below Interval.
	Timeout Duration `yaml:"timeout" json:"timeout"`
	// HealthyThreshold is how many consecutive passes mark an unhealthy
	// endpoint healthy. Default: 2. Zero: the default.
	HealthyThreshold int `yaml:"healthy_threshold" json:"healthy_threshold"`
	// UnhealthyThreshold is how many consecutive failures mark a healthy
	// endpoint unhealthy. Default: 3. Zero: the default.
	UnhealthyThreshold int `yaml:"unhealthy_threshold" json:"unhealthy_threshold"`
	// ExpectStatus lists the passing statuses as codes or ranges, e.g.
	// ["200-299", "304"], within 100-599. Default: ["200-399"].
	ExpectStatus []string `yaml:"expect_status" json:"expect_status,omitempty"`
}

// Outlier is passive outlier detection: consecutive failures eject an
// endpoint for a time that grows with each ejection.
type Outlier struct {
	// ConsecutiveFailures is how many consecutive gateway errors (connect
	// failure, reset, timeout) or 5xx responses eject an endpoint. Default: 5.
	// Zero: the default.
	ConsecutiveFailures int `yaml:"consecutive_failures" json:"consecutive_failures"`
	// BaseEjection is the first ejection's length; the n-th ejection lasts
	// n times as long, up to MaxEjection. Default: 30s. Must not exceed
	// MaxEjection.
	BaseEjection Duration `yaml:"base_ejection" json:"base_ejection"`
	// MaxEjection caps an ejection's length. Default: 300s.
	MaxEjection Duration `yaml:"max_ejection" json:"max_ejection"`
	// MaxEjectedPercent is the largest share of the pool that may be ejected
	// at once, in percent, 0 to 100. Default: 50 (zero means the default).
	// At least one endpoint may always be ejected.
	MaxEjectedPercent int `yaml:"max_ejected_percent" json:"max_ejected_percent"`
}

// RetryBudget limits retries to a share of active requests (Envoy's retry
// budget), so retries cannot multiply load on a struggling upstream.
type RetryBudget struct {
	// Percent is the share of the upstream's active requests that may be
	// retries, in percent, 0 to 100. Default: 20 (zero means the default).
	Percent int `yaml:"percent" json:"percent"`
	// MinRetries is the number of concurrent retries always allowed,
	// whatever the share. Default: 3 (zero means the default).
	MinRetries int `yaml:"min_retries" json:"min_retries"`
}

// ConnPool is the keep-alive pool to each endpoint.
type ConnPool struct {
	// MaxIdlePerEndpoint is the most idle keep-alive connections kept per
	// endpoint. Default: 64 (zero means the default).
	MaxIdlePerEndpoint int `yaml:"max_idle_per_endpoint" json:"max_idle_per_endpoint"`
	// MaxConnsPerEndpoint caps connections (idle and busy) per endpoint.
	// Default: 0, meaning no cap.
	MaxConnsPerEndpoint int `yaml:"max_conns_per_endpoint" json:"max_conns_per_endpoint"`
	// IdleTimeout closes a keep-alive connection idle this long. Default: 90s.
	IdleTimeout Duration `yaml:"idle_timeout" json:"idle_timeout"`
}

// Route matches requests and says what to do with them: forward to
// backends, redirect, or answer directly. Exactly one of Backends, Redirect
// and DirectResponse is set.
type Route struct {
	// Name identifies the route in metrics, logs and the API. Required,
	// unique; letters, digits, '-', '_' and '.'.
	Name string `yaml:"name" json:"name,omitempty"`
	// Priority overrides the specificity order: a higher priority is tried
	// first. Default: 0.
	Priority int `yaml:"priority" json:"priority"`
	// Match selects the requests this route serves. Empty: every request.
	Match Match `yaml:"match" json:"match"`
	// Backends are the upstreams the route forwards to, chosen by weight.
	Backends []Backend `yaml:"backends" json:"backends,omitempty"`
	// Sticky keeps each user on one backend of the split. A request
	// without the key is placed at random by weight. Nil: every request is
	// placed at random by weight.
	Sticky *Sticky `yaml:"sticky" json:"sticky,omitempty"`
	// Redirect answers with a redirect instead of forwarding.
	Redirect *Redirect `yaml:"redirect" json:"redirect,omitempty"`
	// DirectResponse answers with a fixed status and body instead of
	// forwarding (Envoy's direct_response).
	DirectResponse *DirectResponse `yaml:"direct_response" json:"direct_response,omitempty"`
	// Auth authenticates requests before anything else runs (after the
	// request limits). Nil: none.
	Auth *Auth `yaml:"auth" json:"auth,omitempty"`
	// RateLimit limits the route's request rate. Nil: none.
	RateLimit *RateLimit `yaml:"rate_limit" json:"rate_limit,omitempty"`
	// Owner is the team that owns the route (a key of teams). Default:
	// default_owner.
	Owner string `yaml:"owner" json:"owner,omitempty"`
	// SLO is the route's objective. Default: default_slo.
	SLO *SLO `yaml:"slo" json:"slo,omitempty"`
	// Cache serves the route's responses from the shared HTTP cache.
	// Nil: not cached.
	Cache *RouteCache `yaml:"cache" json:"cache,omitempty"`
	// Compress compresses the route's responses. Nil: not compressed.
	Compress *Compress `yaml:"compress" json:"compress,omitempty"`
	// Shadow mirrors a share of the route's requests to a candidate
	// upstream. Nil: none.
	Shadow *Shadow `yaml:"shadow" json:"shadow,omitempty"`
	// Rollout moves the route's traffic to its candidate backend step by
	// step, gated on the candidate's burn rate and diff rate. Nil: the
	// backends' weights hold.
	Rollout *Rollout `yaml:"rollout" json:"rollout,omitempty"`
	// Limits are the route's request limits (body size).
	Limits Limits `yaml:"limits" json:"limits"`
	// StripPrefix removes this prefix from the path before forwarding, e.g.
	// "/api" turns "/api/items" into "/items". Must be a prefix of the
	// match's path_prefix ending on a segment boundary. Applied before
	// Rewrite. Default: "" (none).
	StripPrefix string `yaml:"strip_prefix" json:"strip_prefix,omitempty"`
	// Rewrite rewrites the path before forwarding. Nil: none.
	Rewrite *Rewrite `yaml:"rewrite" json:"rewrite,omitempty"`
	// RequestHeaders edits the request headers sent upstream.
	RequestHeaders HeaderOps `yaml:"request_headers" json:"request_headers"`
	// ResponseHeaders edits the response headers sent to the client.
	ResponseHeaders HeaderOps `yaml:"response_headers" json:"response_headers"`
	// Timeout bounds the whole exchange with the upstream, retries
	// included, until the response head arrives. Default: 30s. Zero: the
	// default.
	Timeout Duration `yaml:"timeout" json:"timeout"`
	// TryTimeout bounds one try; at most Timeout. Default: 0, meaning only
	// Timeout applies.
	TryTimeout Duration `yaml:"try_timeout" json:"try_timeout"`
	// Retries configures retries to another endpoint.
	Retries Retries `yaml:"retries" json:"retries"`
}

// Match is a route's request selector. Every set field must match.
type Match struct {
	// Host is an exact host ("api.example.com") or a wildcard
	// ("*.example.com", one or more labels; '*' only as the whole first
	// label). Compared case-insensitively, without port; Parse lower-cases
	// it. Empty: any host.
	Host string `yaml:"host" json:"host,omitempty"`
	// Path matches the whole cleaned path exactly. Starts with "/". At most
	// one of Path, PathPrefix and PathRegex is set.
	Path string `yaml:"path" json:"path,omitempty"`
	// PathPrefix matches the cleaned path on segment boundaries: "/v1"
	// matches "/v1" and "/v1/x" but not "/v10".
	PathPrefix string `yaml:"path_prefix" json:"path_prefix,omitempty"`
	// PathRegex is an RE2 regular expression matched against the whole
	// cleaned path (anchored).
	PathRegex string `yaml:"path_regex" json:"path_regex,omitempty"`
	// Methods lists the accepted methods, HTTP tokens such as "GET"; Parse
	// upper-cases them, so "get" is "GET". Empty: any method.
	Methods []string `yaml:"methods" json:"methods,omitempty"`
	// Headers are request headers that must match.
	Headers []ValueMatch `yaml:"headers" json:"headers,omitempty"`
	// Query are query parameters that must match.
	Query []ValueMatch `yaml:"query" json:"query,omitempty"`
}

// ValueMatch matches one named header or query parameter. Exactly one of
// Value, Regex and Present is set.
type ValueMatch struct {
	// Name is the header or parameter name. Required; a header name is an
	// HTTP token.
	Name string `yaml:"name" json:"name,omitempty"`
	// Value must equal the value exactly. To match an empty value, use
	// Regex "^$".
	Value string `yaml:"value" json:"value,omitempty"`
	// Regex must match the whole value (RE2, anchored).
	Regex string `yaml:"regex" json:"regex,omitempty"`
	// Present, when true, only requires the name to be present.
	Present bool `yaml:"present" json:"present"`
}

// Backend is one upstream a route forwards to.
type Backend struct {
	// Upstream names an entry of upstreams. Required.
	Upstream string `yaml:"upstream" json:"upstream,omitempty"`
	// Weight is the backend's relative share of the route's traffic
	// (integers, as in the Gateway API), 0 to 1000000. Default: 1. Zero: no
	// traffic; a route's weights must not all be zero.
	Weight *int `yaml:"weight" json:"weight,omitempty"`
	// Candidate marks the new side of a migration. With sticky set on the
	// route, candidates take the first share of the hash space, so a user
	// moved to a candidate stays there as its weight grows. Default: false.
	Candidate bool `yaml:"candidate" json:"candidate,omitempty"`
}

// Sticky keeps a user on one backend of a weighted split: the user's key
// is hashed to a fixed point, and each backend owns a share of the points
// in proportion to its weight, candidates first. At most one field is set.
type Sticky struct {
	// Header keys on a request header's value, e.g. "Authorization".
	Header string `yaml:"header" json:"header,omitempty"`
	// Cookie keys on a cookie's value.
	Cookie string `yaml:"cookie" json:"cookie,omitempty"`
	// Claim keys on a verified JWT claim, e.g. "sub"; needs auth.jwt.
	Claim string `yaml:"claim" json:"claim,omitempty"`
	// ClientIP keys on the client's IP (trusted-proxy aware).
	ClientIP bool `yaml:"client_ip" json:"client_ip,omitempty"`
}

// Redirect answers with a redirect.
type Redirect struct {
	// Scheme replaces the scheme ("http" or "https"). Default: unchanged.
	Scheme string `yaml:"scheme" json:"scheme,omitempty"`
	// Host replaces the host (a host name or IP, without port; see Port).
	// Default: unchanged.
	Host string `yaml:"host" json:"host,omitempty"`
	// Port replaces the port, 1 to 65535. Default: 0, unchanged.
	Port int `yaml:"port" json:"port"`
	// Path replaces the whole path; starts with "/". Default: unchanged.
	Path string `yaml:"path" json:"path,omitempty"`
	// Status is 301, 302, 303, 307 or 308. Default: 302 (zero means the
	// default).
	Status int `yaml:"status" json:"status"`
	// StripQuery drops the query string. Default: false.
	StripQuery bool `yaml:"strip_query" json:"strip_query"`
}

// DirectResponse answers without an upstream.
type DirectResponse struct {
	// Status is the response status, 200 to 599. Required.
	Status int `yaml:"status" json:"status"`
	// Body is the response body. Default: empty.
	Body string `yaml:"body" json:"body,omitempty"`
	// ContentType is the Content-Type of Body. Default: "text/plain;
	// charset=utf-8" when Body is set.
	ContentType string `yaml:"content_type" json:"content_type,omitempty"`
}

// Rewrite rewrites the request path. Exactly one of Path, Prefix and Regex
// is set.
type Rewrite struct {
	// Path replaces the whole path; starts with "/".
	Path string `yaml:"path" json:"path,omitempty"`
	// Prefix replaces the part of the path matched by the route's
	// path_prefix (Envoy's prefix_rewrite); starts with "/" and requires
	// match.path_prefix.
	Prefix string `yaml:"prefix" json:"prefix,omitempty"`
	// Regex is an RE2 pattern; matches in the path are replaced by
	// Replace, which may use $1-style references.
	Regex string `yaml:"regex" json:"regex,omitempty"`
	// Replace is the substitution for Regex; only allowed with Regex. Empty:
	// matches are deleted.
	Replace string `yaml:"replace" json:"replace,omitempty"`
}

// HeaderOps edits headers: Remove first, then Set, then Add. Names are HTTP
// tokens; hop-by-hop headers (Connection, Keep-Alive, Proxy-Connection,
// Transfer-Encoding, TE, Trailer, Upgrade) and Host cannot be edited.
type HeaderOps struct {
	// Set replaces each named header with the value.
	Set map[string]string `yaml:"set" json:"set,omitempty"`
	// Add appends the value to each named header.
	Add map[string]string `yaml:"add" json:"add,omitempty"`
	// Remove deletes the named headers.
	Remove []string `yaml:"remove" json:"remove,omitempty"`
}

// Retries configures retrying a failed try on a different endpoint. A retry
// happens only when safe: after a connect failure (the request was never
// sent), or for idempotent methods (GET, HEAD, OPTIONS, TRACE, PUT, DELETE).
type Retries struct {
	// Attempts is the number of extra tries after the first, 0 to 10.
	// Default: 1. Zero: no retries (write "attempts: 0").
	Attempts *int `yaml:"attempts" json:"attempts,omitempty"`
	// On lists the failures retried: "connect_failure" (never sent; any
	// method), "reset" (connection lost after sending) and "timeout" (try
	// timeout). Default: ["connect_failure", "reset"].
	On []string `yaml:"on" json:"on,omitempty"`
	// Statuses lists upstream statuses retried for idempotent requests, e.g.
	// [502, 503, 504], each 100 to 599. Default: none.
	Statuses []int `yaml:"statuses" json:"statuses,omitempty"`
}

// AccessLog configures the JSON access log.
type AccessLog struct {
	// Disabled turns the access log off. Default: false.
	Disabled bool `yaml:"disabled" json:"disabled"`
	// Sample is the share of successful requests logged, 0 to 1; errors
	// (status >= 500) are always logged. Default: 1 (all). Write a value
	// such as 0.01 for 1 %.
	Sample *float64 `yaml:"sample" json:"sample,omitempty"`
	// Path is the file to write to; "stdout" or "stderr" name those
	// streams. Default: "stdout".
	Path string `yaml:"path" json:"path,omitempty"`
}

// Tracing configures OpenTelemetry tracing with W3C trace-context
// propagation. Off unless Endpoint is set.
type Tracing struct {
	// Endpoint is the OTLP/HTTP collector URL, absolute http or https, e.g.
	// "http://127.0.0.1:4318/v1/traces". Empty: tracing off (incoming
	// traceparent headers are still forwarded untouched). A password (or
	// a lone user name) in it is redacted in GET /api/v1/config.
	Endpoint string `yaml:"endpoint" json:"endpoint,omitempty"`
	// Sample is the share of new traces sampled, 0 to 1; a sampled parent
	// is always followed. Default: 1.
	Sample *float64 `yaml:"sample" json:"sample,omitempty"`
	// ServiceName is the service.name resource attribute. Default: "torii".
	ServiceName string `yaml:"service_name" json:"service_name,omitempty"`
	// Headers are extra HTTP headers sent to the collector (e.g. an API
	// key). Redacted in GET /api/v1/config.
	Headers map[string]string `yaml:"headers" json:"headers,omitempty"`
}

// Reload configures automatic reloads.
type Reload struct {
	// Watch reloads when the config file changes. Default: false.
	Watch bool `yaml:"watch" json:"watch"`
	// WatchInterval is how often the file is checked. Default: 2s. Zero: the
	// default.
	WatchInterval Duration `yaml:"watch_interval" json:"watch_interval"`
}

// Shutdown configures the graceful stop on SIGTERM or SIGINT.
type Shutdown struct {
	// DrainDelay is how long /readyz fails before listeners stop accepting,
	// so load balancers stop sending. Default: 5s. An explicit 0s: no
	// delay.
	DrainDelay Duration `yaml:"drain_delay" json:"drain_delay"`
	// Grace bounds the wait for in-flight requests (streams included) after
	// listeners close; then connections are cut. Default: 30s. Zero: the
	// default.
	Grace Duration `yaml:"grace" json:"grace"`
}

// Duration is a time.Duration written in YAML as a Go duration string
// ("250ms", "5s", "1h30m"). Days are accepted as "30d" or "1d12h". A bare
// number other than 0 is an error (its unit would be a guess), and so is a
// negative duration. It is encoded in JSON and YAML as a string like "5s".
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }
