package migrate

// Shadow traffic: a middleware that mirrors a share of a route's requests
// to a candidate upstream, after the primary request is served, so the
// client's latency and result never depend on the candidate. With
// Options.Compare it keeps the primary's response and the candidate's and
// hands them to the route's RouteDiffs (compare.go).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"torii/internal/proxy"
	"torii/internal/request"
	"torii/internal/telemetry"
	"torii/internal/upstream"
)

// HeaderShadow marks a mirrored request, so the candidate (and its logs)
// can tell it from real traffic.
const HeaderShadow = "X-Torii-Shadow"

// maxDrain bounds how much of a shadow response is read (and discarded)
// so its connection can be reused; a longer body closes the connection.
const maxDrain = 1 << 20

// Results counted by torii_shadow_requests_total.
const (
	resultSent            = "sent"              // the candidate answered, any status
	resultSkippedBody     = "skipped_body"      // body over the bound, or not read whole by the primary
	resultSkippedMethod   = "skipped_method"    // an unsafe method, or a protocol switch
	resultSkippedCapacity = "skipped_capacity"  // max_concurrent or the candidate's max_requests reached
	resultSkippedServed   = "skipped_candidate" // the split sent the request to the candidate itself
	resultError           = "error"             // no endpoint, connect failure, reset or timeout
)

// Metrics are the shadow counters, shared by every route's middleware and
// surviving reloads.
type Metrics struct {
	requests *prometheus.CounterVec
	inFlight prometheus.Gauge
}

// NewMetrics returns the metrics, registered with reg when it is not nil:
// torii_shadow_requests_total{route, result}, the requests chosen for
// mirroring by result (sent, skipped_body, skipped_method,
// skipped_capacity, error), and torii_shadow_in_flight, the shadow
// requests in progress. Metrics registered earlier with reg are reused.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "torii_shadow_requests_total",
			Help: "Requests chosen for mirroring to a shadow upstream, by route and result.",
		}, []string{"route", "result"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "torii_shadow_in_flight",
			Help: "Shadow requests in progress.",
		}),
	}
	if reg != nil {
		m.requests = telemetry.Register(reg, m.requests)
		m.inFlight = telemetry.Register(reg, m.inFlight)
	}
	return m
}

// Result is how one shadow request ended. It is the seam for response
// diffing: the diff stage will add the primary's captured response and
// the shadow's bounded body next to it.
type Result struct {
	// Upstream is the candidate upstream's name.
	Upstream string
	// Endpoint is the endpoint address tried; "" when none was picked.
	Endpoint string
	// Status is the candidate's status; 0 when Err is set.
	Status int
	// TTFB is the time from sending the request to the response head.
	TTFB time.Duration
	// Err is why no response arrived; nil when Status is set.
	Err error
}

// Options configure New. They come from a validated config.Shadow.
type Options struct {
	// Route is the route's name, for metrics and logs.
	Route string
	// Pool is the candidate upstream's pool. Required.
	Pool *upstream.Pool
	// Percent is the share of eligible requests mirrored, in percent, more
	// than 0 and at most 100.
	Percent float64
	// MaxBodyBytes is the largest request body mirrored, in bytes; a
	// larger body reaches the primary whole and is not mirrored. Zero:
	// only requests without a body are mirrored.
	MaxBodyBytes int64
	// AllowUnsafe mirrors every method. False: only safe methods (GET,
	// HEAD, OPTIONS, TRACE; RFC 9110 §9.2.1).
	AllowUnsafe bool
	// MaxConcurrent caps this middleware's shadow requests in flight; a
	// request beyond it is not mirrored. Required, above zero.
	MaxConcurrent int
	// Timeout bounds one shadow request until its response body is read.
	// Required, above zero.
	Timeout time.Duration
	// Transport sends the shadow requests. Nil: Pool.Transport().
	Transport http.RoundTripper
	// Logger receives debug records of failed shadow requests. Nil:
	// discard.
	Logger *slog.Logger
	// Metrics counts mirrored and skipped requests. Nil: not counted.
	Metrics *Metrics
	// Compare, when set, compares the candidate's responses with the
	// primary's (see Diffs.Route).
	Compare *RouteDiffs
	// Primary is the route's primary upstream, called a second time on a
	// share of compared requests to learn the noise. Required with
	// Compare.
	Primary *upstream.Pool
	// OnResult, when set, is called with each shadow request's result, in
	// the shadow's goroutine, after its response body is discarded. It
	// must not block for long: it holds a max_concurrent slot.
	OnResult func(*Result)
}

// shadow is one route's mirroring middleware state.
type shadow struct {
	route       string
	pool        *upstream.Pool
	tr          http.RoundTripper
	threshold   float64 // mirror when rand.Float64() < threshold
	maxBody     int64
	allowUnsafe bool
	maxInFlight int64
	timeout     time.Duration
	log         *slog.Logger
	onResult    func(*Result)
	compare     *RouteDiffs    // nil: responses are discarded unread
	primary     *upstream.Pool // with compare: the secondary's upstream

	inFlight atomic.Int64 // shadow requests running, at most maxInFlight

	gauge                                                       prometheus.Gauge
	sent, skipBody, skipMethod, skipCapacity, skipServed, fails prometheus.Counter
}

// New checks o and returns the mirroring middleware. It has no side
// effects; each mirrored request runs in its own goroutine, which ends
// within Timeout.
func New(o Options) (func(http.Handler) http.Handler, error) {
	errorf := func(format string, args ...any) error {
		return fmt.Errorf("build shadow for route %q: "+format, append([]any{o.Route}, args...)...)
	}
	switch {
	case o.Pool == nil:
		return nil, errorf("no pool")
	case !(o.Percent > 0 && o.Percent <= 100):
		return nil, errorf("percent %v: not above 0 and at most 100", o.Percent)
	case o.MaxBodyBytes < 0:
		return nil, errorf("negative max body bytes %d", o.MaxBodyBytes)
	case o.MaxConcurrent <= 0:
		return nil, errorf("max concurrent %d: must be above zero", o.MaxConcurrent)
	case o.Timeout <= 0:
		return nil, errorf("timeout %s: must be above zero", o.Timeout)
	case o.Compare != nil && o.Primary == nil:
		return nil, errorf("compare without a primary pool")
	}
	s := &shadow{
		route:       o.Route,
		pool:        o.Pool,
		tr:          o.Transport,
		threshold:   o.Percent / 100,
		maxBody:     o.MaxBodyBytes,
		allowUnsafe: o.AllowUnsafe,
		maxInFlight: int64(o.MaxConcurrent),
		timeout:     o.Timeout,
		log:         o.Logger,
		onResult:    o.OnResult,
		compare:     o.Compare,
		primary:     o.Primary,
	}
	if s.tr == nil {
		s.tr = o.Pool.Transport()
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	m := o.Metrics
	if m == nil {
		m = NewMetrics(nil) // unregistered: counts go nowhere
	}
	s.gauge = m.inFlight
	s.sent = m.requests.WithLabelValues(o.Route, resultSent)
	s.skipBody = m.requests.WithLabelValues(o.Route, resultSkippedBody)
	s.skipMethod = m.requests.WithLabelValues(o.Route, resultSkippedMethod)
	s.skipCapacity = m.requests.WithLabelValues(o.Route, resultSkippedCapacity)
	s.skipServed = m.requests.WithLabelValues(o.Route, resultSkippedServed)
	s.fails = m.requests.WithLabelValues(o.Route, resultError)
	return s.wrap, nil
}

// wrap returns next with mirroring around it.
func (s *shadow) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Cheap refusals first, so a request not mirrored costs one random
		// number and a few comparisons.
		if rand.Float64() >= s.threshold {
			next.ServeHTTP(w, r)
			return
		}
		if (!s.allowUnsafe && !safe(r.Method)) || r.Method == http.MethodConnect || upgrading(r) {
			s.skipMethod.Inc()
			next.ServeHTTP(w, r)
			return
		}
		if r.ContentLength > s.maxBody {
			s.skipBody.Inc()
			next.ServeHTTP(w, r)
			return
		}
		if s.inFlight.Load() >= s.maxInFlight {
			s.skipCapacity.Inc() // do not even copy the body
			next.ServeHTTP(w, r)
			return
		}

		// The primary reads the body as it always would; the tee keeps a
		// copy up to the bound. Reading it up front would delay the primary
		// by a slow upload and answer "Expect: 100-continue" for it.
		var tee *teeBody
		if r.Body != nil && r.Body != http.NoBody {
			tee = &teeBody{rc: r.Body, max: s.maxBody}
			r2 := *r // shallow: only Body differs; next must not see our change
			r2.Body = tee
			r = &r2
		}
		var capt *capture
		if s.compare != nil {
			capt = &capture{ResponseWriter: w, max: s.compare.maxBody}
			w = capt
		}
		next.ServeHTTP(w, r)

		// The primary is answered. Everything below is off its path, but
		// still in its goroutine until the go statement: keep it short.
		info := request.FromContext(r.Context())
		if info != nil && info.Upstream == s.pool.Name() {
			s.skipServed.Inc() // the user is on the candidate already
			return
		}
		body, ok := tee.result()
		if !ok {
			s.skipBody.Inc()
			return
		}
		if !s.acquire() {
			s.skipCapacity.Inc()
			return
		}
		j := s.newJob(r, body)
		if capt != nil && capt.status >= 200 {
			j.primary = capt.response()
			j.endpoint = Endpoint(r.Method, r.URL.Path)
		}
		go s.send(j)
	})
}

// job is what a shadow request needs, copied from the primary request
// before its handler returns: the request.Info and the request itself may
// be reused afterwards.
type job struct {
	req      *http.Request
	clientIP netip.Addr
	slo      request.SLORecorder // nil: the route has no SLO
	primary  *Response           // the primary's captured response; nil: not compared
	endpoint string              // with primary: the request's endpoint
}

// newJob builds the shadow request for r with body.
func (s *shadow) newJob(r *http.Request, body []byte) *job {
	h := r.Header.Clone()
	if h == nil {
		h = make(http.Header)
	}
	proxy.RemoveHopByHop(h)
	h.Del("Expect") // the body is in hand: nothing to wait for
	h.Set(HeaderShadow, "1")
	j := &job{}
	if info := request.FromContext(r.Context()); info != nil {
		j.clientIP, j.slo = info.ClientIP, info.SLO
		if info.ID != "" {
			h.Set("X-Request-Id", info.ID)
		}
	}
	// Detached from the client: the shadow outlives the primary's
	// request. Its deadline starts in send.
	req := (&http.Request{
		Method:     r.Method,
		URL:        new(*r.URL),
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     h,
		Host:       r.Host,
	}).WithContext(context.WithoutCancel(r.Context()))
	req.URL.User = nil
	if body != nil {
		req.ContentLength = int64(len(body))
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.GetBody = func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(body)), nil
		}
	} else {
		req.Body = http.NoBody
	}
	j.req = req
	return j
}

// send makes the shadow request j, discards its response, and reports
// it. It runs in its own goroutine and holds an in-flight slot.
func (s *shadow) send(j *job) {
	defer s.release()
	res, cand := s.exchange(j, s.pool, j.primary != nil)
	switch {
	case errors.Is(res.Err, errAtCapacity):
		s.skipCapacity.Inc()
	case res.Err != nil:
		s.fails.Inc()
		s.log.Debug("shadow request failed", "route", s.route, "upstream", res.Upstream,
			"endpoint", res.Endpoint, "id", j.req.Header.Get("X-Request-Id"), "err", res.Err)
	default:
		s.sent.Inc()
	}
	if j.slo != nil && res.Status != 0 {
		j.slo.Record(res.Upstream, res.Status, "", res.TTFB, true)
	}
	if j.primary != nil && cand != nil {
		s.compareWith(j, cand)
	}
	if s.onResult != nil {
		s.onResult(res)
	}
}

// compareWith compares the candidate's response with the primary's and,
// on a share of safe requests, a second primary response with the first.
func (s *shadow) compareWith(j *job, cand *Response) {
	var second *Response
	if safe(j.req.Method) && s.compare.sampleSecondary() {
		req := j.req.Clone(j.req.Context())
		req.Header.Set(HeaderShadow, "secondary")
		if j.req.GetBody != nil {
			req.Body, _ = j.req.GetBody()
		}
		res, resp := s.exchange(&job{req: req, clientIP: j.clientIP}, s.primary, true)
		if res.Err != nil {
			s.log.Debug("secondary request failed", "route", s.route, "upstream", res.Upstream, "err", res.Err)
		}
		second = resp
	}
	meta := sampleMeta{id: j.req.Header.Get("X-Request-Id"), method: j.req.Method, path: j.req.URL.Path}
	s.compare.observe(j.endpoint, j.primary, cand, second, meta)
}

// exchange sends j.req to an endpoint of pool and reads the response,
// keeping it (up to the compare bound) when keep is set, else discarding
// it. A failure after the pool was reached carries the status the proxy
// would have answered (502, or 504 for a timeout), for the SLO.
func (s *shadow) exchange(j *job, pool *upstream.Pool, keep bool) (*Result, *Response) {
	res := &Result{Upstream: pool.Name()}
	if !pool.Acquire() { // the upstream's max_requests protects it from us too
		res.Err = fmt.Errorf("shadow to upstream %q: %w", pool.Name(), errAtCapacity)
		return res, nil
	}
	defer pool.Release()
	ep, err := pool.Pick(j.req, j.clientIP, nil)
	if err != nil {
		res.Err = fmt.Errorf("pick endpoint of upstream %q: %w", pool.Name(), err)
		return res, nil
	}
	res.Endpoint = ep.Addr()
	ctx, cancel := context.WithTimeout(j.req.Context(), s.timeout)
	defer cancel()
	req := j.req.WithContext(ctx)
	req.URL.Scheme, req.URL.Host = pool.Scheme(), ep.Addr()

	tr := s.tr
	if pool != s.pool {
		tr = pool.Transport()
	}
	ep.Begin()
	start := time.Now()
	resp, err := tr.RoundTrip(req)
	res.TTFB = time.Since(start)
	if err != nil {
		ep.End(upstream.GatewayError)
		res.Status = http.StatusBadGateway
		if ctx.Err() != nil {
			res.Status = http.StatusGatewayTimeout
		}
		res.Err = fmt.Errorf("shadow to upstream %q endpoint %s: %w", pool.Name(), ep.Addr(), err)
		return res, nil
	}
	var kept *Response
	if keep {
		kept = &Response{Status: resp.StatusCode, Header: resp.Header}
		kept.Body, err = io.ReadAll(io.LimitReader(resp.Body, int64(s.compare.maxBody)+1))
		if len(kept.Body) > s.compare.maxBody {
			kept.Body, kept.Truncated = kept.Body[:s.compare.maxBody], true
		}
	} else {
		_, err = io.CopyN(io.Discard, resp.Body, maxDrain)
	}
	resp.Body.Close()
	res.Status = resp.StatusCode
	if err != nil && err != io.EOF && ctx.Err() != nil {
		// The head arrived, the body did not in time: the upstream was
		// too slow, which the SLO should see.
		ep.End(upstream.GatewayError)
		res.Status = http.StatusGatewayTimeout
		res.Err = fmt.Errorf("shadow to upstream %q endpoint %s: read body: %w", pool.Name(), ep.Addr(), err)
		return res, nil
	}
	if err != nil && err != io.EOF {
		kept = nil // a body cut short by a reset compares as nothing
	}
	if resp.StatusCode >= 500 {
		ep.End(upstream.Failure5xx)
	} else {
		ep.End(upstream.Success)
	}
	return res, kept
}

var errAtCapacity = errors.New("upstream at max_requests")

// acquire takes an in-flight slot, reporting whether one was free.
func (s *shadow) acquire() bool {
	for {
		n := s.inFlight.Load()
		if n >= s.maxInFlight {
			return false
		}
		if s.inFlight.CompareAndSwap(n, n+1) {
			s.gauge.Inc()
			return true
		}
	}
}

// release returns a slot taken by acquire.
func (s *shadow) release() {
	s.inFlight.Add(-1)
	s.gauge.Dec()
}

// safe reports whether method is safe (RFC 9110 §9.2.1): mirroring it
// cannot change the candidate's state, however late it lands.
func safe(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

// upgrading reports whether r asks for a protocol switch (WebSocket),
// which cannot be mirrored.
func upgrading(r *http.Request) bool {
	return r.Header.Get("Upgrade") != ""
}

// teeBody passes a request body to the primary and keeps a copy of it up
// to max bytes. The primary's transport may still read or close it from
// its own goroutine after the handler returns (http.RoundTripper's
// contract), hence the lock.
type teeBody struct {
	rc  io.ReadCloser
	max int64

	mu   sync.Mutex // guards the fields below
	buf  []byte
	over bool // more than max bytes went by: buf is dropped
	eof  bool // the body was read to its end
}

func (t *teeBody) Read(p []byte) (int, error) {
	n, err := t.rc.Read(p)
	t.mu.Lock()
	if !t.over && n > 0 {
		if int64(len(t.buf)+n) > t.max {
			t.over, t.buf = true, nil
		} else {
			t.buf = append(t.buf, p[:n]...)
		}
	}
	if err == io.EOF {
		t.eof = true
	}
	t.mu.Unlock()
	return n, err
}

func (t *teeBody) Close() error { return t.rc.Close() }

// result returns the whole body and true, or false when the body was over
// the bound or not read to its end. A nil t is an empty body.
func (t *teeBody) result() ([]byte, bool) {
	if t == nil {
		return nil, true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.over || !t.eof {
		return nil, false
	}
	if t.buf == nil {
		return []byte{}, true
	}
	return t.buf, true
}

// capture passes the primary's response to the client and keeps a copy
// of its status, the headers a comparison reads, and its body up to max
// bytes.
type capture struct {
	http.ResponseWriter
	max       int
	status    int // the final status; 0 until the head is written
	header    http.Header
	body      []byte
	truncated bool
}

func (c *capture) WriteHeader(code int) {
	if c.status == 0 && code >= 200 {
		c.status = code
		c.header = c.ResponseWriter.Header().Clone()
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *capture) Write(p []byte) (int, error) {
	if c.status == 0 {
		c.WriteHeader(http.StatusOK)
	}
	if !c.truncated {
		if room := c.max - len(c.body); len(p) > room {
			c.body = append(c.body, p[:room]...)
			c.truncated = true
		} else {
			c.body = append(c.body, p...)
		}
	}
	return c.ResponseWriter.Write(p)
}

// Flush implements http.Flusher for handlers that assert it.
func (c *capture) Flush() { _ = http.NewResponseController(c.ResponseWriter).Flush() }

// Unwrap lets http.ResponseController reach the connection's writer.
func (c *capture) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// response returns what was captured.
func (c *capture) response() *Response {
	return &Response{Status: c.status, Header: c.header, Body: c.body, Truncated: c.truncated}
}

// ForgetRoute deletes the series of a route a reload removed, so they stop
// being exported.
func (m *Metrics) ForgetRoute(route string) {
	m.requests.DeletePartialMatch(prometheus.Labels{"route": route})
}
