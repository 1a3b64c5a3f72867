// Package cache is torii's shared HTTP cache (RFC 9111), in memory, turned
// on per route. A Store holds the entries of every route and outlives
// reloads; New builds one route's middleware from it.
//
// The middleware sits after authentication and rate limits in the chain
// (internal/runtime/chain.go): a request the route's auth refuses never
// reaches it, so nothing cached is ever served to such a request. It
// stores GET responses only, answers HEAD from them, coalesces concurrent
// misses into one upstream request, revalidates with ETag and
// Last-Modified, and serves stale entries as stale-while-revalidate and
// stale-if-error allow (RFC 5861). docs/caching.md is the user's guide.
package cache

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"torii/internal/config"
	"torii/internal/proxy"
	"torii/internal/request"
)

// DefaultTimeout bounds how long a request waits for another's fetch of
// the same key, and a background refresh, when New is given no timeout.
const DefaultTimeout = 30 * time.Second

// keyBufSize is the stack buffer for a request's URL key; longer keys
// spill to the heap.
const keyBufSize = 256

// X-Cache values. Each is a one-element, full-capacity slice shared by
// every response, so an Add downstream copies rather than overwrites.
var (
	xHit         = []string{"HIT"}
	xMiss        = []string{"MISS"}
	xStale       = []string{"STALE"}
	xRevalidated = []string{"REVALIDATED"}
	xBypass      = []string{"BYPASS"}
)

// Option configures New.
type Option func(*cache)

// WithTimeout bounds how long a request waits for a concurrent fetch of
// the same key (then it gets 504), and how long a background refresh
// runs. Pass the route's timeout. Default: DefaultTimeout.
func WithTimeout(d time.Duration) Option {
	return func(c *cache) {
		if d > 0 {
			c.timeout = d
		}
	}
}

// cache is one route's cache middleware around next.
type cache struct {
	route      string
	store      *Store
	next       http.Handler
	defaultTTL time.Duration
	keyHeaders []string // canonical names
	timeout    time.Duration

	hit, miss, stale, revalidated, bypass, stores prometheus.Counter
}

// New returns the middleware caching the responses of the route named
// route in s, as cfg says. cfg must be validated with its defaults
// applied.
func New(route string, cfg *config.RouteCache, s *Store, opts ...Option) (func(http.Handler) http.Handler, error) {
	switch {
	case cfg == nil:
		return nil, fmt.Errorf("cache of route %q: no config", route)
	case s == nil:
		return nil, fmt.Errorf("cache of route %q: no store", route)
	case cfg.DefaultTTL < 0:
		return nil, fmt.Errorf("cache of route %q: negative default_ttl %s", route, cfg.DefaultTTL)
	}
	c := &cache{
		route:       route,
		store:       s,
		defaultTTL:  time.Duration(cfg.DefaultTTL),
		timeout:     DefaultTimeout,
		hit:         s.metrics.requests.WithLabelValues(route, "hit"),
		miss:        s.metrics.requests.WithLabelValues(route, "miss"),
		stale:       s.metrics.requests.WithLabelValues(route, "stale"),
		revalidated: s.metrics.requests.WithLabelValues(route, "revalidated"),
		bypass:      s.metrics.requests.WithLabelValues(route, "bypass"),
		stores:      s.metrics.stores.WithLabelValues(route),
	}
	for _, name := range cfg.KeyHeaders {
		if name == "" || strings.ContainsAny(name, " \t\r\n:") {
			return nil, fmt.Errorf("cache of route %q: invalid key header %q", route, name)
		}
		c.keyHeaders = append(c.keyHeaders, http.CanonicalHeaderKey(name))
	}
	for _, o := range opts {
		o(c)
	}
	return func(next http.Handler) http.Handler {
		rc := *c
		rc.next = next
		return &rc
	}, nil
}

// ServeHTTP answers r from the cache or through next.
func (c *cache) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	info := request.FromContext(r.Context())
	var buf [keyBufSize]byte
	url := appendURLKey(buf[:0], schemeOf(r, info), r)
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		c.unsafe(w, r, info, url)
		return
	}
	if r.Header["Upgrade"] != nil {
		c.pass(w, r) // a WebSocket handshake is not a response to store
		return
	}
	req := requestDirectives(r.Header)
	now := c.store.now()
	e := c.store.lookup(url, c.route, r.Header)
	if e != nil {
		age := e.age(now)
		if c.fresh(e, age, req) {
			c.serve(w, r, info, e, age, xHit, c.hit)
			return
		}
		if !req.noCache && e.staleWithin(age, e.cc.staleWhileRevalidate) {
			// RFC 5861 §3: serve stale now, refresh in the background.
			c.serve(w, r, info, e, age, xStale, c.stale)
			c.refresh(r, info, string(url), e)
			return
		}
	}
	if req.onlyIfCached {
		// RFC 9111 §5.2.1.7.
		proxy.WriteError(w, r, http.StatusGatewayTimeout, "not in cache")
		return
	}
	// HEAD and Range requests are answered from a fresh entry but not used
	// to fill one; the request's no-store forbids storing (§5.2.1.5).
	if r.Method == http.MethodHead || r.Header["Range"] != nil || req.noStore || !mayFill(r, info) {
		c.pass(w, r)
		return
	}
	c.fetch(w, r, info, string(url), e, now)
}

// requestDirectives returns the request's Cache-Control directives, with
// "Pragma: no-cache" read as no-cache when there is no Cache-Control (RFC
// 9111 §5.4).
func requestDirectives(h http.Header) directives {
	cc := h["Cache-Control"]
	d := parseCacheControl(cc)
	if cc == nil {
		for _, p := range h["Pragma"] {
			if strings.Contains(strings.ToLower(p), "no-cache") {
				d.noCache = true
			}
		}
	}
	return d
}

// fresh reports whether e may answer a request with directives req
// without contacting the upstream (RFC 9111 §4.2, §5.2.1).
func (c *cache) fresh(e *entry, age time.Duration, req directives) bool {
	switch {
	case e.cc.noCache || req.noCache || age >= e.lifetime:
		return false
	case req.maxAge != absent && age > time.Duration(req.maxAge)*time.Second:
		return false
	case req.minFresh != absent && e.lifetime-age < time.Duration(req.minFresh)*time.Second:
		return false
	}
	return true
}

// serve answers r with e.
func (c *cache) serve(w http.ResponseWriter, r *http.Request, info *request.Info, e *entry, age time.Duration, label []string, n prometheus.Counter) {
	n.Inc()
	h := w.Header()
	copyHeader(h, e.header)
	h["Age"] = ageHeader(age)
	h["X-Cache"] = label
	status := e.status
	if status == http.StatusOK && notModified(r, e.header) {
		status = http.StatusNotModified
	}
	w.WriteHeader(status)
	if info != nil {
		info.Status = status
		info.BytesOut = 0
	}
	if r.Method == http.MethodHead || status == http.StatusNotModified || len(e.body) == 0 {
		return
	}
	m, _ := w.Write(e.body)
	if info != nil {
		info.BytesOut = int64(m)
	}
}

// pass sends r upstream without storing the response.
func (c *cache) pass(w http.ResponseWriter, r *http.Request) {
	c.bypass.Inc()
	h := w.Header()
	h["X-Cache"] = xBypass
	h["Age"] = smallAges[0:1:1] // the upstream's Age replaces it
	c.next.ServeHTTP(w, r)
}

// unsafe forwards a request of another method; a non-error response
// invalidates the stored responses of its URL (RFC 9111 §4.4).
func (c *cache) unsafe(w http.ResponseWriter, r *http.Request, info *request.Info, url []byte) {
	c.pass(w, r)
	switch r.Method {
	case http.MethodOptions, http.MethodTrace:
		return
	}
	if info != nil && info.Status >= 200 && info.Status < 400 {
		c.store.invalidate(url)
	}
}

// flightKey identifies the requests one fetch may answer: the route, the
// URL and the route's key headers. Variants chosen by Vary share it; a
// waiter whose Vary headers differ fetches for itself.
func (c *cache) flightKey(url string, h http.Header) string {
	if len(c.keyHeaders) == 0 {
		return c.route + "\x00" + url
	}
	var b strings.Builder
	b.WriteString(c.route)
	b.WriteByte(0)
	b.WriteString(url)
	for _, name := range c.keyHeaders {
		b.WriteByte(0)
		b.WriteString(headerValue(h[name]))
	}
	return b.String()
}

// fetch gets r's response from the upstream, or waits for a concurrent
// fetch of the same key and serves its result. stale is the matching
// entry that is too old to serve, or nil.
func (c *cache) fetch(w http.ResponseWriter, r *http.Request, info *request.Info, url string, stale *entry, now time.Time) {
	key := c.flightKey(url, r.Header)
	f, leader := c.store.join(key, now, true)
	switch {
	case f == nil: // the last response was unshareable: no queueing
		c.fetchUpstream(w, r, info, url, stale)
	case leader:
		var res result
		// Deferred so waiters wake even when next panics (a body cut by
		// the upstream aborts the handler).
		defer func() { c.store.land(key, f, res, c.store.now()) }()
		res = c.fetchUpstream(w, r, info, url, stale)
	default:
		c.wait(w, r, info, url, stale, f)
	}
}

// wait waits for flight f and serves its result, or fetches alone when
// the result is not r's to have.
func (c *cache) wait(w http.ResponseWriter, r *http.Request, info *request.Info, url string, stale *entry, f *flight) {
	t := time.NewTimer(c.timeout)
	defer t.Stop()
	select {
	case <-f.done:
	case <-r.Context().Done():
		if info != nil {
			info.Err = fmt.Errorf("wait for a concurrent fetch: %w", proxy.ErrClientGone)
		}
		proxy.WriteError(w, r, proxy.StatusClientClosedRequest, "")
		return
	case <-t.C:
		if info != nil {
			info.Err = fmt.Errorf("wait for a concurrent fetch: %w", proxy.ErrTimeout)
		}
		proxy.WriteError(w, r, http.StatusGatewayTimeout, "upstream timed out")
		return
	}
	res := f.res
	now := c.store.now()
	if e := res.entry; e != nil && e.matches(c.route, r.Header) {
		if res.revalidated {
			c.serve(w, r, info, e, e.age(now), xRevalidated, c.revalidated)
		} else {
			c.serve(w, r, info, e, e.age(now), xHit, c.hit)
		}
		return
	}
	if res.failed && stale != nil && stale.staleWithin(stale.age(now), stale.cc.staleIfError) {
		c.serve(w, r, info, stale, stale.age(now), xStale, c.stale)
		return
	}
	// Nothing shareable came back: this request's response is its own.
	c.fetchUpstream(w, r, info, url, stale)
}

// refresh revalidates stale in the background, once per key at a time,
// with a context detached from the client's and bounded by the timeout.
func (c *cache) refresh(r *http.Request, info *request.Info, url string, stale *entry) {
	key := c.flightKey(url, r.Header)
	f, leader := c.store.join(key, c.store.now(), false)
	if !leader {
		return
	}
	// The client's Info belongs to the client's goroutine; the refresh
	// gets its own.
	bg := &request.Info{Start: c.store.now(), Route: c.route}
	if info != nil {
		bg.ID, bg.ClientIP, bg.PeerTrusted, bg.Scheme, bg.TLS, bg.Claims = info.ID, info.ClientIP, info.PeerTrusted, info.Scheme, info.TLS, info.Claims
	}
	ctx, cancel := context.WithTimeout(request.NewContext(context.WithoutCancel(r.Context()), bg), c.timeout)
	out := r.Clone(ctx)
	out.Body = http.NoBody
	go func() {
		var res result
		defer func() {
			cancel()
			if p := recover(); p != nil && p != http.ErrAbortHandler {
				c.store.log.Error("cache refresh panicked", "route", c.route, "url", url, "panic", p)
			}
			c.store.land(key, f, res, c.store.now())
		}()
		res = c.fetchUpstream(nil, out, bg, url, stale)
		if res.failed || bg.Err != nil {
			c.store.log.Debug("cache refresh failed", "route", c.route, "url", url, "id", bg.ID, "status", bg.Status, "err", bg.Err)
		}
	}()
}

// conditionalHeaders are the request fields stripped from a fetch that
// may fill the cache, so the upstream sends a full response to store;
// the client's own conditions are then evaluated by torii (notModified).
var conditionalHeaders = []string{"If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since", "If-Range"}

// fetchUpstream sends r through next, relays the response to w (nil for a
// background refresh) and stores it when it may be shared. With stale
// (whose validators it sends) a 304 refreshes stale and an upstream
// failure may be answered with stale.
func (c *cache) fetchUpstream(w http.ResponseWriter, r *http.Request, info *request.Info, url string, stale *entry) result {
	gen := c.store.purges.Load()
	requestTime := c.store.now()
	out := r.Clone(r.Context())
	for _, name := range conditionalHeaders {
		delete(out.Header, name)
	}
	cw := &capture{c: c, w: w, r: out, client: r, stale: stale, header: make(http.Header)}
	if stale != nil {
		// RFC 9111 §4.3.1: validate with the stored validators.
		if stale.etag != "" {
			out.Header["If-None-Match"] = []string{stale.etag}
		}
		if stale.lastModified != "" {
			out.Header["If-Modified-Since"] = []string{stale.lastModified}
		}
		cw.conditional = stale.hasValidator()
		cw.fallback = w != nil && stale.staleWithin(stale.age(requestTime), stale.cc.staleIfError)
	}
	defer cw.release()
	c.next.ServeHTTP(cw, out)
	responseTime := c.store.now()

	switch cw.mode {
	case modeRevalidated:
		return c.revalidate(w, r, info, stale, cw.header, requestTime, responseTime, gen)
	case modeFallback:
		// RFC 5861 §4: the upstream failed; serve the stale entry.
		if info != nil {
			info.Status = cw.status
		}
		c.serve(w, r, info, stale, stale.age(responseTime), xStale, c.stale)
		return result{failed: true}
	}
	if w != nil {
		c.miss.Inc()
		if cw.toClient {
			relayTrailers(w.Header(), cw.header)
		}
	}
	res := result{failed: isFailure(cw.status) || !cw.wroteHeader, unshareable: cw.unshare}
	if !cw.complete() {
		return res
	}
	e := c.newEntry(url, r, cw.status, cw.header, cw.body(), cw.plan, requestTime, responseTime)
	if err := c.store.insert(e, gen); err != nil {
		return res
	}
	c.stores.Inc()
	res.entry = e
	return res
}

// relayTrailers copies the trailers the inner handler set after the body
// from its header map to the client's.
func relayTrailers(dst, src http.Header) {
	declared := src["Trailer"]
	for k, v := range src {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			dst[k] = v
			continue
		}
		for _, line := range declared {
			for name := range strings.SplitSeq(line, ",") {
				if http.CanonicalHeaderKey(strings.TrimSpace(name)) == k {
					dst[k] = v
				}
			}
		}
	}
}

// revalidate handles a 304 answering torii's conditional request: the
// stored header fields are updated from it (RFC 9111 §3.2, §4.3.4), the
// refreshed entry replaces stale, and the client gets the stored body.
func (c *cache) revalidate(w http.ResponseWriter, r *http.Request, info *request.Info, stale *entry, h304 http.Header, requestTime, responseTime time.Time, gen uint64) result {
	merged := stale.header.Clone()
	for k, v := range h304 {
		switch k {
		// The stored body's own framing and coding stay.
		case "Content-Length", "Content-Encoding", "Content-Type", "Content-Range", "X-Cache":
			continue
		}
		merged[k] = v
	}
	res := result{}
	p, ok, unshare := c.storable(r, stale.status, merged)
	var e *entry
	if ok {
		e = c.newEntry(stale.url, r, stale.status, merged, stale.body, p, requestTime, responseTime)
		if c.store.insert(e, gen) == nil {
			c.stores.Inc()
			res = result{entry: e, revalidated: true}
		}
	} else {
		// The upstream now says the response may not be shared.
		c.store.remove(stale)
		res.unshareable = unshare
		e = &entry{status: stale.status, header: merged, body: stale.body}
	}
	if w != nil {
		age := time.Duration(0)
		if ok {
			age = e.age(responseTime)
		}
		c.serve(w, r, info, e, age, xRevalidated, c.revalidated)
	}
	return res
}

// cacheableStatus reports whether a response with status may be stored:
// the statuses RFC 9110 §15.1 makes heuristically cacheable, less 206
// (torii stores only whole responses).
func cacheableStatus(status int) bool {
	switch status {
	case 200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501:
		return true
	}
	return false
}

// plan is what storing a response needs, worked out at its head.
type plan struct {
	cc       directives
	lifetime time.Duration
	vary     []string // canonical names from Vary
}

// storable decides whether the response to r with status and header h may
// be stored (RFC 9111 §3) and returns its plan. unshare reports whether
// the response itself forbids sharing, whatever the request.
func (c *cache) storable(r *http.Request, status int, h http.Header) (p plan, ok, unshare bool) {
	if !cacheableStatus(status) {
		return p, false, false
	}
	p.cc = parseCacheControl(h["Cache-Control"])
	switch {
	case p.cc.noStore || p.cc.private: // §5.2.2.5, §5.2.2.7
		return p, false, true
	case h["Set-Cookie"] != nil: // one client's session, never another's
		return p, false, true
	case h["Trailer"] != nil || isEventStream(h.Get("Content-Type")): // streams pass through
		return p, false, true
	case r.Header["Authorization"] != nil && !p.cc.public && p.cc.sMaxAge == absent:
		// §3.5, stricter: must-revalidate alone does not make an
		// authenticated response shareable here.
		return p, false, false
	}
	for _, line := range h["Vary"] {
		for name := range strings.SplitSeq(line, ",") {
			name = strings.TrimSpace(name)
			switch name {
			case "":
				continue
			case "*": // §4.1: never matches
				return p, false, true
			}
			p.vary = append(p.vary, http.CanonicalHeaderKey(name))
		}
	}
	var explicit bool
	p.lifetime, explicit = c.freshnessLifetime(p.cc, h)
	hasValidator := h["Etag"] != nil || h["Last-Modified"] != nil
	if p.lifetime <= 0 && !(hasValidator && (explicit || p.cc.noCache)) {
		return p, false, false
	}
	return p, true, false
}

// freshnessLifetime returns a response's freshness_lifetime (RFC 9111
// §4.2.1) and whether it was explicit: s-maxage (shared caches), max-age,
// Expires minus Date, or else the route's default_ttl as the heuristic
// (§4.2.2).
func (c *cache) freshnessLifetime(cc directives, h http.Header) (time.Duration, bool) {
	switch {
	case cc.sMaxAge != absent:
		return time.Duration(cc.sMaxAge) * time.Second, true
	case cc.maxAge != absent:
		return time.Duration(cc.maxAge) * time.Second, true
	case h["Expires"] != nil:
		exp, err := http.ParseTime(h.Get("Expires"))
		if err != nil {
			return 0, true // §5.3: an invalid Expires means already expired
		}
		date, err := http.ParseTime(h.Get("Date"))
		if err != nil {
			date = c.store.now()
		}
		return max(0, exp.Sub(date)), true
	}
	return c.defaultTTL, false
}

// newEntry builds the entry for a response to r.
func (c *cache) newEntry(url string, r *http.Request, status int, h http.Header, body []byte, p plan, requestTime, responseTime time.Time) *entry {
	header := h.Clone()
	delete(header, "Age")
	delete(header, "X-Cache")
	if status != http.StatusNoContent && status != http.StatusNotModified {
		header["Content-Length"] = []string{fmt.Sprint(len(body))}
	}
	e := &entry{
		url:          url,
		route:        c.route,
		status:       status,
		header:       header,
		body:         body,
		cc:           p.cc,
		etag:         h.Get("Etag"),
		lastModified: h.Get("Last-Modified"),
		responseTime: responseTime,
		lifetime:     p.lifetime,
	}
	for _, name := range c.keyHeaders {
		e.selecting = append(e.selecting, field{name, headerValue(r.Header[name])})
	}
	for _, name := range p.vary {
		e.selecting = append(e.selecting, field{name, headerValue(r.Header[name])})
	}
	// RFC 9111 §4.2.3.
	var ageValue time.Duration
	if n, ok := deltaSeconds(strings.TrimSpace(h.Get("Age"))); ok {
		ageValue = time.Duration(n) * time.Second
	}
	dateValue, err := http.ParseTime(h.Get("Date"))
	if err != nil {
		dateValue = responseTime
	}
	apparentAge := max(0, responseTime.Sub(dateValue))
	correctedAge := ageValue + responseTime.Sub(requestTime)
	e.initialAge = max(apparentAge, correctedAge)
	e.size = sizeOf(e)
	return e
}

// notModified reports whether a GET or HEAD request's conditions say the
// client already has the response with header h (RFC 9110 §13.2.2):
// If-None-Match matching its ETag (weak comparison), or, without
// If-None-Match, If-Modified-Since no older than its Last-Modified.
func notModified(r *http.Request, h http.Header) bool {
	if inm := r.Header["If-None-Match"]; inm != nil {
		etag := h.Get("Etag")
		return etag != "" && etagMatches(inm, etag)
	}
	ims := r.Header.Get("If-Modified-Since")
	lm := h.Get("Last-Modified")
	if ims == "" || lm == "" {
		return false
	}
	since, err1 := http.ParseTime(ims)
	mod, err2 := http.ParseTime(lm)
	return err1 == nil && err2 == nil && !mod.After(since)
}

// etagMatches reports whether an If-None-Match list names etag, by weak
// comparison (RFC 9110 §8.8.3.2), or is "*".
func etagMatches(lines []string, etag string) bool {
	etag = strings.TrimPrefix(etag, "W/")
	for _, line := range lines {
		for tag := range strings.SplitSeq(line, ",") {
			tag = strings.TrimSpace(tag)
			if tag == "*" || strings.TrimPrefix(tag, "W/") == etag {
				return true
			}
		}
	}
	return false
}

// isEventStream reports whether contentType is text/event-stream.
func isEventStream(contentType string) bool {
	const es = "text/event-stream"
	return len(contentType) >= len(es) && strings.EqualFold(contentType[:len(es)], es)
}
