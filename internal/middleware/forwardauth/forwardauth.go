// Package forwardauth asks an external auth service whether to let each
// request through, as Traefik's ForwardAuth and nginx's auth_request do.
//
// For every request the middleware calls the service's URL with the
// request's original method, no body, the request's identity in
// X-Forwarded-* headers and the client headers the route names (by
// default Authorization and Cookie). A 2xx answer lets the request
// through, carrying the response headers the route names; any other answer
// (a 302 to a login page, a 401 with a challenge, a 403) is sent back to
// the client as the service wrote it. When the service cannot be reached
// in time, the request is refused with 503: auth fails closed.
package forwardauth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"torii/internal/config"
	"torii/internal/proxy"
	"torii/internal/request"
	"torii/internal/telemetry"
)

// maxDenyBody caps the body of a refusal relayed to the client; a longer
// one is cut there. Login pages and error bodies are small.
const maxDenyBody = 64 << 10

// Results, the result label of torii_forward_auth_checks_total.
const (
	resultAllowed = "allowed"
	resultDenied  = "denied"
	resultError   = "error"
)

// Metrics are the forward-auth counters, shared by every route's
// middleware and surviving reloads.
type Metrics struct {
	checks *prometheus.CounterVec
}

// NewMetrics returns the metrics, registered with reg when it is not nil:
// torii_forward_auth_checks_total{route,result}, result being allowed,
// denied or error (service unreachable or timed out: the client got 503).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{checks: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "torii_forward_auth_checks_total",
		Help: "Forward auth checks by route and result: allowed (2xx), denied (the service's answer relayed), error (unreachable or timed out; 503).",
	}, []string{"route", "result"})}
	if reg != nil {
		m.checks = telemetry.Register(reg, m.checks)
	}
	return m
}

// Option configures New.
type Option func(*middleware)

// WithMetrics counts checks in m. Without it the counts are kept but not
// exported.
func WithMetrics(m *Metrics) Option {
	return func(mw *middleware) { mw.metrics = m }
}

type middleware struct {
	url       string
	timeout   time.Duration
	reqHeads  []string // canonical client headers sent to the service
	respHeads []string // canonical service headers copied upstream
	client    *http.Client
	metrics   *Metrics
	counts    map[string]prometheus.Counter // result -> counter, fixed at New
}

// New returns the forward-auth middleware of route, calling cfg.URL with
// client (default: http.DefaultClient's transport). Fields of cfg left
// zero take their defaults. The client's redirects are never followed and
// its cookie jar is never used: the service's answer goes back to the
// client as it is, and one user's cookies cannot leak into another's
// check. route names the route in metrics.
func New(route string, cfg *config.ForwardAuth, client *http.Client, opts ...Option) (func(http.Handler) http.Handler, error) {
	if cfg == nil {
		return nil, errors.New("forward auth: nil config")
	}
	if u, err := http.NewRequest(http.MethodGet, cfg.URL, nil); err != nil || (u.URL.Scheme != "http" && u.URL.Scheme != "https") || u.URL.Host == "" {
		return nil, fmt.Errorf("forward auth: invalid url %q; want an absolute http or https URL", cfg.URL)
	}
	if client == nil {
		client = http.DefaultClient
	}
	c := *client
	c.Jar = nil
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	m := &middleware{url: cfg.URL, timeout: time.Duration(cfg.Timeout), client: &c}
	if m.timeout <= 0 {
		m.timeout = config.DefaultForwardTimeout
	}
	reqHeads := cfg.RequestHeaders
	if len(reqHeads) == 0 {
		reqHeads = []string{"Authorization", "Cookie"}
	}
	for _, h := range reqHeads {
		m.reqHeads = append(m.reqHeads, textproto.CanonicalMIMEHeaderKey(h))
	}
	for _, h := range cfg.ResponseHeaders {
		h = textproto.CanonicalMIMEHeaderKey(h)
		if isHopByHop(h) || h == "Host" {
			return nil, fmt.Errorf("forward auth: response header %s cannot be copied upstream", h)
		}
		m.respHeads = append(m.respHeads, h)
	}
	for _, o := range opts {
		o(m)
	}
	if m.metrics == nil {
		m.metrics = NewMetrics(nil)
	}
	m.counts = map[string]prometheus.Counter{}
	for _, res := range []string{resultAllowed, resultDenied, resultError} {
		m.counts[res] = m.metrics.checks.WithLabelValues(route, res)
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			m.serve(w, r, next)
		})
	}, nil
}

func (m *middleware) serve(w http.ResponseWriter, r *http.Request, next http.Handler) {
	// The headers the service vouches for never come from the client,
	// whatever the outcome.
	for _, h := range m.respHeads {
		delete(r.Header, h)
	}
	info := request.FromContext(r.Context())
	ctx, cancel := context.WithTimeout(r.Context(), m.timeout)
	defer cancel()
	resp, err := m.client.Do(m.authRequest(ctx, r, info))
	if err != nil {
		m.count(resultError)
		if info != nil {
			info.Err = fmt.Errorf("forward auth %s: %w", m.url, err)
		}
		if r.Context().Err() != nil {
			proxy.WriteError(w, r, proxy.StatusClientClosedRequest, "client closed request")
			return
		}
		proxy.WriteError(w, r, http.StatusServiceUnavailable, "authentication service unavailable")
		return
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		m.count(resultAllowed)
		for _, h := range m.respHeads {
			if vs := resp.Header[h]; len(vs) > 0 {
				r.Header[h] = slices.Clone(vs)
			}
		}
		// Drain a little so the connection to the service is reused.
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		next.ServeHTTP(w, r)
	case resp.StatusCode < 200:
		// A 1xx final answer (a 101 protocol switch) cannot be relayed.
		m.count(resultError)
		if info != nil {
			info.Err = fmt.Errorf("forward auth %s: unexpected status %d", m.url, resp.StatusCode)
		}
		proxy.WriteError(w, r, http.StatusServiceUnavailable, "authentication service unavailable")
	default:
		m.count(resultDenied)
		m.relay(w, r, resp, info)
	}
}

// authRequest builds the question to the auth service: the original
// method, no body, the request's identity in X-Forwarded-* headers (from
// what torii established, never from the client's own copies) and the
// configured client headers.
func (m *middleware) authRequest(ctx context.Context, r *http.Request, info *request.Info) *http.Request {
	// cfg.URL was checked in New, so this cannot fail; a nil request
	// would make client.Do fail closed anyway.
	req, _ := http.NewRequestWithContext(ctx, r.Method, m.url, nil)
	h := req.Header
	for _, name := range m.reqHeads {
		if vs := r.Header[name]; len(vs) > 0 {
			h[name] = slices.Clone(vs)
		}
	}
	uri := r.URL.EscapedPath()
	if r.URL.RawQuery != "" || r.URL.ForceQuery {
		uri += "?" + r.URL.RawQuery
	}
	h.Set("X-Forwarded-Method", r.Method)
	h.Set("X-Forwarded-Uri", uri)
	h.Set("X-Forwarded-Host", r.Host)
	h.Set("X-Forwarded-Proto", scheme(r, info))
	if ip := clientIP(r, info); ip != "" {
		h.Set("X-Forwarded-For", ip)
	}
	if info != nil && info.ID != "" {
		h.Set("X-Request-Id", info.ID)
	}
	h.Set("User-Agent", "torii-forward-auth")
	return req
}

func scheme(r *http.Request, info *request.Info) string {
	switch {
	case info != nil && info.Scheme != "":
		return info.Scheme
	case r.TLS != nil:
		return "https"
	}
	return "http"
}

func clientIP(r *http.Request, info *request.Info) string {
	if info != nil && info.ClientIP.IsValid() {
		return info.ClientIP.String()
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return ""
	}
	return host
}

// relay sends the service's refusal to the client: its status, its
// end-to-end headers and up to maxDenyBody of its body.
func (m *middleware) relay(w http.ResponseWriter, r *http.Request, resp *http.Response, info *request.Info) {
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDenyBody))
	if info != nil {
		info.Status = resp.StatusCode
		info.Err = fmt.Errorf("forward auth %s: denied with status %d", m.url, resp.StatusCode)
		if err != nil {
			info.Err = fmt.Errorf("%w; reading its body: %v", info.Err, err)
		}
	}
	dst := w.Header()
	hop := connectionHeaders(resp.Header)
	for name, vs := range resp.Header {
		if isHopByHop(name) || slices.Contains(hop, name) || name == "Content-Length" {
			continue
		}
		dst[name] = slices.Clone(vs)
	}
	dst.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(resp.StatusCode)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

func (m *middleware) count(result string) {
	m.counts[result].Inc()
}

// hopByHop are the headers of one connection (RFC 9110 §7.6.1), never
// relayed.
var hopByHop = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

func isHopByHop(canonical string) bool { return slices.Contains(hopByHop, canonical) }

// connectionHeaders returns the canonical names a Connection header lists,
// which are hop-by-hop too (RFC 9110 §7.6.1).
func connectionHeaders(h http.Header) []string {
	var out []string
	for _, v := range h["Connection"] {
		for name := range strings.SplitSeq(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				out = append(out, textproto.CanonicalMIMEHeaderKey(name))
			}
		}
	}
	return out
}

// ForgetRoute deletes the series of a route a reload removed, so they stop
// being exported.
func (m *Metrics) ForgetRoute(route string) {
	m.checks.DeletePartialMatch(prometheus.Labels{"route": route})
}
