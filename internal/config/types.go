// Package config is what the user wrote: the YAML schema of torii.yaml, its
// strict decoder, its defaults and its validation. Nothing here opens a
// socket or starts a goroutine; internal/runtime compiles a validated Config
// into the immutable snapshot that serves traffic.
//
// Every field's doc comment gives its unit, its default and what zero means.
// docs/configuration.md is the user-facing reference and must agree.
package config

import "time"

// Config is the whole torii.yaml.
type Config struct {
	// Listen is the list of data-plane listeners. Default: one listener on
	// ":8080".
	Listen []Listener `yaml:"listen"`
	// Admin is the admin listener (metrics, health, JSON API).
	Admin Admin `yaml:"admin"`
	// TrustedProxies lists the CIDRs (or single IPs) whose X-Forwarded-For,
	// X-Forwarded-Proto and X-Forwarded-Host headers are believed. A client
	// outside them has those headers replaced. Default: none, so every
	// client's forwarded headers are replaced.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// Upstreams are the named backend pools, referenced by routes.
	Upstreams map[string]*Upstream `yaml:"upstreams"`
	// Routes are matched by the priority rule in docs/routing.md; the order
	// here is only the final tie-break.
	Routes []Route `yaml:"routes"`
	// AccessLog configures the structured JSON access log.
	AccessLog AccessLog `yaml:"access_log"`
	// Tracing configures OpenTelemetry tracing. Off by default.
	Tracing Tracing `yaml:"tracing"`
	// Reload configures reloading on file change.
	Reload Reload `yaml:"reload"`
	// Shutdown configures the graceful stop on SIGTERM.
	Shutdown Shutdown `yaml:"shutdown"`

	// lines maps a field path (as in Problem.Path) to its line in the
	// source; filled by the decoder, read by Line.
	lines map[string]int
	// source is the file name the config was read from, if any.
	source string
}

// Listener is one data-plane listening socket and its http.Server.
type Listener struct {
	// Name identifies the listener in metrics and logs. Default: the address.
	Name string `yaml:"name"`
	// Addr is the host:port to listen on, e.g. ":8080" or "127.0.0.1:8080".
	// Required.
	Addr string `yaml:"addr"`
	// ProxyProtocol, when set, makes the listener accept the PROXY protocol
	// (v1 and v2) from the listed load balancers. Nil: off.
	ProxyProtocol *ProxyProtocol `yaml:"proxy_protocol"`
	// Timeouts bound each phase of a client connection.
	Timeouts ListenerTimeouts `yaml:"timeouts"`
	// MaxHeaderBytes is the largest request head (request line and headers)
	// accepted, in bytes; larger heads get 431. Default: 65536 (64 KiB).
	MaxHeaderBytes int `yaml:"max_header_bytes"`
}

// ProxyProtocol configures PROXY protocol (v1 text and v2 binary) on a
// listener.
type ProxyProtocol struct {
	// Trusted lists the CIDRs of the load balancers allowed to send a PROXY
	// header. A connection from elsewhere is served with its socket address
	// as the client address, and a PROXY header from it is rejected.
	// Required, non-empty.
	Trusted []string `yaml:"trusted"`
	// Timeout bounds how long to wait for the PROXY header. Default: 5s.
	Timeout Duration `yaml:"timeout"`
}

// ListenerTimeouts are the http.Server timeouts of a listener.
type ListenerTimeouts struct {
	// ReadHeader bounds reading the request head. Default: 10s. Zero: the
	// default; there is no way to disable it (slowloris).
	ReadHeader Duration `yaml:"read_header"`
	// Read bounds reading the whole request, body included. Default: 60s.
	Read Duration `yaml:"read"`
	// Write bounds writing the response, from the end of the request head.
	// Default: 0, meaning none, so long streams live; the route's timeout
	// bounds the upstream exchange instead.
	Write Duration `yaml:"write"`
	// Idle bounds how long a keep-alive connection waits for its next
	// request. Default: 120s.
	Idle Duration `yaml:"idle"`
}

// Admin is the admin listener.
type Admin struct {
	// Addr is where the admin API listens. Default: "127.0.0.1:9901"
	// (loopback). Use Disabled to turn the admin listener off.
	Addr string `yaml:"addr"`
	// Disabled turns the admin listener off. Default: false.
	Disabled bool `yaml:"disabled"`
	// Token, when set, is the bearer token that state-changing admin calls
	// (POST, PUT, DELETE) must carry in "Authorization: Bearer <token>".
	// Redacted in GET /api/v1/config. Default: "" (no token; cross-site
	// checks still apply).
	Token string `yaml:"token"`
}

// Upstream is a named pool of endpoints.
type Upstream struct {
	// Endpoints are "host:port" strings, or objects {addr, weight}. A host
	// that is not an IP literal is resolved with DNS and re-resolved every
	// DNSRefresh. Required, non-empty.
	Endpoints []Endpoint `yaml:"endpoints"`
	// Balance is the balancing policy: "round_robin" (default, smooth
	// weighted), "least_request" (power of two choices, weighted) or
	// "hash" (consistent hash; see Hash).
	Balance string `yaml:"balance"`
	// Hash selects the key for Balance "hash". Required when Balance is
	// "hash", ignored otherwise.
	Hash *HashKey `yaml:"hash"`
	// DNSRefresh is how often host names in Endpoints are re-resolved.
	// Default: 30s.
	DNSRefresh Duration `yaml:"dns_refresh"`
	// Health configures active health checks. Nil: none; endpoints are
	// healthy unless ejected by outlier detection.
	Health *HealthCheck `yaml:"health"`
	// Outlier configures passive outlier detection (always on).
	Outlier Outlier `yaml:"outlier"`
	// MaxRequests caps the upstream's concurrent requests; one more gets
	// 503. Default: 0, meaning no cap.
	MaxRequests int `yaml:"max_requests"`
	// RetryBudget caps retries to a share of the upstream's active requests.
	RetryBudget RetryBudget `yaml:"retry_budget"`
	// Pool configures the keep-alive connection pool to each endpoint.
	Pool ConnPool `yaml:"pool"`
	// ConnectTimeout bounds a TCP connect to an endpoint. Default: 5s.
	ConnectTimeout Duration `yaml:"connect_timeout"`
}

// Endpoint is one address in an upstream. In YAML it is either a
// "host:port" string or an object.
type Endpoint struct {
	// Addr is "host:port". Required.
	Addr string `yaml:"addr"`
	// Weight is the endpoint's relative share of traffic. Default: 1.
	// Range: 1 to 1000.
	Weight int `yaml:"weight"`
}

// HashKey is the key of consistent-hash balancing. Exactly one of its fields
// is set.
type HashKey struct {
	// Header hashes on this request header's value.
	Header string `yaml:"header"`
	// Cookie hashes on this cookie's value.
	Cookie string `yaml:"cookie"`
	// ClientIP hashes on the client's IP (trusted-proxy aware).
	ClientIP bool `yaml:"client_ip"`
}

// HealthCheck is an active HTTP health check.
type HealthCheck struct {
	// Path is the request path, e.g. "/healthz". Required.
	Path string `yaml:"path"`
	// Host is the Host header sent. Default: the endpoint's address.
	Host string `yaml:"host"`
	// Interval is the time between checks of one endpoint. Default: 5s.
	Interval Duration `yaml:"interval"`
	// Timeout bounds one check. Default: 2s; must be below Interval.
	Timeout Duration `yaml:"timeout"`
	// HealthyThreshold is how many consecutive passes mark an unhealthy
	// endpoint healthy. Default: 2.
	HealthyThreshold int `yaml:"healthy_threshold"`
	// UnhealthyThreshold is how many consecutive failures mark a healthy
	// endpoint unhealthy. Default: 3.
	UnhealthyThreshold int `yaml:"unhealthy_threshold"`
	// ExpectStatus lists the passing statuses as codes or ranges, e.g.
	// ["200-299", "304"]. Default: ["200-399"].
	ExpectStatus []string `yaml:"expect_status"`
}

// Outlier is passive outlier detection: consecutive failures eject an
// endpoint for a time that grows with each ejection.
type Outlier struct {
	// ConsecutiveFailures is how many consecutive gateway errors (connect
	// failure, reset, timeout) or 5xx responses eject an endpoint. Default: 5.
	ConsecutiveFailures int `yaml:"consecutive_failures"`
	// BaseEjection is the first ejection's length; the n-th ejection lasts
	// n times as long, up to MaxEjection. Default: 30s.
	BaseEjection Duration `yaml:"base_ejection"`
	// MaxEjection caps an ejection's length. Default: 300s.
	MaxEjection Duration `yaml:"max_ejection"`
	// MaxEjectedPercent is the largest share of the pool that may be ejected
	// at once, in percent. Default: 50. At least one endpoint may always be
	// ejected.
	MaxEjectedPercent int `yaml:"max_ejected_percent"`
}

// RetryBudget limits retries to a share of active requests (Envoy's retry
// budget), so retries cannot multiply load on a struggling upstream.
type RetryBudget struct {
	// Percent is the share of the upstream's active requests that may be
	// retries, in percent. Default: 20.
	Percent int `yaml:"percent"`
	// MinRetries is the number of concurrent retries always allowed,
	// whatever the share. Default: 3.
	MinRetries int `yaml:"min_retries"`
}

// ConnPool is the keep-alive pool to each endpoint.
type ConnPool struct {
	// MaxIdlePerEndpoint is the most idle keep-alive connections kept per
	// endpoint. Default: 64.
	MaxIdlePerEndpoint int `yaml:"max_idle_per_endpoint"`
	// MaxConnsPerEndpoint caps connections (idle and busy) per endpoint.
	// Default: 0, meaning no cap.
	MaxConnsPerEndpoint int `yaml:"max_conns_per_endpoint"`
	// IdleTimeout closes a keep-alive connection idle this long. Default: 90s.
	IdleTimeout Duration `yaml:"idle_timeout"`
}

// Route matches requests and says what to do with them: forward to
// backends, redirect, or answer directly. Exactly one of Backends, Redirect
// and DirectResponse is set.
type Route struct {
	// Name identifies the route in metrics, logs and the API. Required,
	// unique; letters, digits, '-', '_' and '.'.
	Name string `yaml:"name"`
	// Priority overrides the specificity order: a higher priority is tried
	// first. Default: 0.
	Priority int `yaml:"priority"`
	// Match selects the requests this route serves. Empty: every request.
	Match Match `yaml:"match"`
	// Backends are the upstreams the route forwards to, chosen by weight.
	Backends []Backend `yaml:"backends"`
	// Redirect answers with a redirect instead of forwarding.
	Redirect *Redirect `yaml:"redirect"`
	// DirectResponse answers with a fixed status and body instead of
	// forwarding (Envoy's direct_response).
	DirectResponse *DirectResponse `yaml:"direct_response"`
	// StripPrefix removes this prefix from the path before forwarding, e.g.
	// "/api" turns "/api/items" into "/items". Must be a prefix of the
	// match's path_prefix. Default: "" (none).
	StripPrefix string `yaml:"strip_prefix"`
	// Rewrite rewrites the path before forwarding. Nil: none.
	Rewrite *Rewrite `yaml:"rewrite"`
	// RequestHeaders edits the request headers sent upstream.
	RequestHeaders HeaderOps `yaml:"request_headers"`
	// ResponseHeaders edits the response headers sent to the client.
	ResponseHeaders HeaderOps `yaml:"response_headers"`
	// Timeout bounds the whole exchange with the upstream, retries
	// included, until the response head arrives. Default: 30s.
	Timeout Duration `yaml:"timeout"`
	// TryTimeout bounds one try. Default: 0, meaning only Timeout applies.
	TryTimeout Duration `yaml:"try_timeout"`
	// Retries configures retries to another endpoint.
	Retries Retries `yaml:"retries"`
}

// Match is a route's request selector. Every set field must match.
type Match struct {
	// Host is an exact host ("api.example.com") or a wildcard
	// ("*.example.com", one or more labels). Compared case-insensitively,
	// without port. Empty: any host.
	Host string `yaml:"host"`
	// Path matches the whole cleaned path exactly.
	Path string `yaml:"path"`
	// PathPrefix matches the cleaned path on segment boundaries: "/v1"
	// matches "/v1" and "/v1/x" but not "/v10".
	PathPrefix string `yaml:"path_prefix"`
	// PathRegex is an RE2 regular expression matched against the whole
	// cleaned path (anchored).
	PathRegex string `yaml:"path_regex"`
	// Methods lists the accepted methods. Empty: any method.
	Methods []string `yaml:"methods"`
	// Headers are request headers that must match.
	Headers []ValueMatch `yaml:"headers"`
	// Query are query parameters that must match.
	Query []ValueMatch `yaml:"query"`
}

// ValueMatch matches one named header or query parameter. Exactly one of
// Value, Regex and Present is set.
type ValueMatch struct {
	// Name is the header or parameter name. Required.
	Name string `yaml:"name"`
	// Value must equal the value exactly.
	Value string `yaml:"value"`
	// Regex must match the whole value (RE2, anchored).
	Regex string `yaml:"regex"`
	// Present, when true, only requires the name to be present.
	Present bool `yaml:"present"`
}

// Backend is one upstream a route forwards to.
type Backend struct {
	// Upstream names an entry of upstreams. Required.
	Upstream string `yaml:"upstream"`
	// Weight is the backend's relative share of the route's traffic
	// (integers, as in the Gateway API). Default: 1. Zero: no traffic.
	Weight *int `yaml:"weight"`
}

// Redirect answers with a redirect.
type Redirect struct {
	// Scheme replaces the scheme ("http" or "https"). Default: unchanged.
	Scheme string `yaml:"scheme"`
	// Host replaces the host. Default: unchanged.
	Host string `yaml:"host"`
	// Port replaces the port. Default: 0, unchanged.
	Port int `yaml:"port"`
	// Path replaces the whole path. Default: unchanged.
	Path string `yaml:"path"`
	// Status is 301, 302, 303, 307 or 308. Default: 302.
	Status int `yaml:"status"`
	// StripQuery drops the query string. Default: false.
	StripQuery bool `yaml:"strip_query"`
}

// DirectResponse answers without an upstream.
type DirectResponse struct {
	// Status is the response status, 200 to 599. Required.
	Status int `yaml:"status"`
	// Body is the response body. Default: empty.
	Body string `yaml:"body"`
	// ContentType is the Content-Type of Body. Default: "text/plain;
	// charset=utf-8" when Body is set.
	ContentType string `yaml:"content_type"`
}

// Rewrite rewrites the request path. Exactly one of Path, Prefix and Regex
// is set.
type Rewrite struct {
	// Path replaces the whole path.
	Path string `yaml:"path"`
	// Prefix replaces the part of the path matched by the route's
	// path_prefix (Envoy's prefix_rewrite).
	Prefix string `yaml:"prefix"`
	// Regex is an RE2 pattern; matches in the path are replaced by
	// Replace, which may use $1-style references.
	Regex string `yaml:"regex"`
	// Replace is the substitution for Regex.
	Replace string `yaml:"replace"`
}

// HeaderOps edits headers: Remove first, then Set, then Add.
type HeaderOps struct {
	// Set replaces each named header with the value.
	Set map[string]string `yaml:"set"`
	// Add appends the value to each named header.
	Add map[string]string `yaml:"add"`
	// Remove deletes the named headers.
	Remove []string `yaml:"remove"`
}

// Retries configures retrying a failed try on a different endpoint. A retry
// happens only when safe: after a connect failure (the request was never
// sent), or for idempotent methods (GET, HEAD, OPTIONS, TRACE, PUT, DELETE).
type Retries struct {
	// Attempts is the number of extra tries after the first. Default: 1.
	// Zero: no retries (write "attempts: 0").
	Attempts *int `yaml:"attempts"`
	// On lists the failures retried: "connect_failure" (never sent; any
	// method), "reset" (connection lost after sending) and "timeout" (try
	// timeout). Default: ["connect_failure", "reset"].
	On []string `yaml:"on"`
	// Statuses lists upstream statuses retried for idempotent requests, e.g.
	// [502, 503, 504]. Default: none.
	Statuses []int `yaml:"statuses"`
}

// AccessLog configures the JSON access log.
type AccessLog struct {
	// Disabled turns the access log off. Default: false.
	Disabled bool `yaml:"disabled"`
	// Sample is the share of successful requests logged, 0 to 1; errors
	// (status >= 500) are always logged. Default: 1 (all). Write a value
	// such as 0.01 for 1 %.
	Sample *float64 `yaml:"sample"`
	// Path is the file to write to; "stdout" or "stderr" name those
	// streams. Default: "stdout".
	Path string `yaml:"path"`
}

// Tracing configures OpenTelemetry tracing with W3C trace-context
// propagation. Off unless Endpoint is set.
type Tracing struct {
	// Endpoint is the OTLP/HTTP collector URL, e.g.
	// "http://127.0.0.1:4318/v1/traces". Empty: tracing off (incoming
	// traceparent headers are still forwarded untouched).
	Endpoint string `yaml:"endpoint"`
	// Sample is the share of new traces sampled, 0 to 1; a sampled parent
	// is always followed. Default: 1.
	Sample *float64 `yaml:"sample"`
	// ServiceName is the service.name resource attribute. Default: "torii".
	ServiceName string `yaml:"service_name"`
	// Headers are extra HTTP headers sent to the collector (e.g. an API
	// key). Redacted in GET /api/v1/config.
	Headers map[string]string `yaml:"headers"`
}

// Reload configures automatic reloads.
type Reload struct {
	// Watch reloads when the config file changes. Default: false.
	Watch bool `yaml:"watch"`
	// WatchInterval is how often the file is checked. Default: 2s.
	WatchInterval Duration `yaml:"watch_interval"`
}

// Shutdown configures the graceful stop on SIGTERM or SIGINT.
type Shutdown struct {
	// DrainDelay is how long /readyz fails before listeners stop accepting,
	// so load balancers stop sending. Default: 5s.
	DrainDelay Duration `yaml:"drain_delay"`
	// Grace bounds the wait for in-flight requests (streams included) after
	// listeners close; then connections are cut. Default: 30s.
	Grace Duration `yaml:"grace"`
}

// Duration is a time.Duration written in YAML as a Go duration string
// ("250ms", "5s", "1h30m"). Days are accepted as "30d".
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }
