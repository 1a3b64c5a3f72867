// Package proxy is torii's forwarding handler: it picks a backend by weight
// and an endpoint from its pool, cleans the headers, sends the request
// through the pool's transport, retries when that is safe, and relays the
// response, streaming it as it arrives. Failures become statuses in one
// place, Status, and reach the client as WriteError's small JSON body.
//
// docs/proxy.md is the user-facing description.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"torii/internal/config"
	"torii/internal/reqctx"
	"torii/internal/request"
	"torii/internal/upstream"
)

// copyBufferSize is the size of the buffers relaying response bodies.
const copyBufferSize = 32 << 10

// maxDrain bounds how much of a response that is being retried is read
// so its connection can be reused; a longer body closes the connection.
const maxDrain = 64 << 10

// Backend is one upstream a route forwards to.
type Backend struct {
	// Pool is the upstream's pool. Required.
	Pool *upstream.Pool
	// Weight is the backend's relative share of the route's requests.
	// Zero: no requests. Negative weights are an error.
	Weight int
	// Candidate places the backend first in a sticky split (see Sticky).
	Candidate bool
}

// Options configure a Handler. They come from a validated config.Route.
type Options struct {
	// Route is the route's name, for errors and logs.
	Route string
	// Backends are chosen in proportion to their weights, which must sum
	// to more than zero: at random, or by the Sticky key.
	Backends []Backend
	// Sticky, when set, places each request by a hash of its key rather
	// than at random, so a user stays on one backend; candidates own the
	// low end of the hash space, so raising their weight only moves users
	// onto them, never back. Nil: random.
	Sticky *config.Sticky
	// Weights, when set, replace the backends' static weights with live
	// ones (one per backend, in Backends' order) that a rollout changes
	// while the route serves. Nil: the static weights.
	Weights *Weights
	// Timeout bounds all tries together, from the first try until a
	// response head is accepted; a body streaming after that is not cut.
	// Zero: no limit.
	Timeout time.Duration
	// TryTimeout bounds one try until its response head. Zero: only
	// Timeout applies.
	TryTimeout time.Duration
	// Attempts is the number of extra tries after the first. Zero: no
	// retries.
	Attempts int
	// RetryOn is the set of failures retried (see ParseRetryOn).
	RetryOn RetryOn
	// RetryStatuses are upstream statuses retried for idempotent requests.
	// Empty: none.
	RetryStatuses []int
	// RequestHeaders edits the headers sent upstream, after torii's own
	// (remove, then set, then add).
	RequestHeaders config.HeaderOps
	// ResponseHeaders edits the headers sent to the client (remove, then
	// set, then add).
	ResponseHeaders config.HeaderOps
	// Logger receives debug records of retried failures; the final error
	// goes to request.Info.Err for the access log. Nil: discard.
	Logger *slog.Logger
	// Tunnels tracks the connections of proxied protocol switches
	// (WebSocket), which net/http's Server no longer sees once they are
	// hijacked, so shutdown can close them. Share one across every
	// route's Handler and every reload. Nil: tunnels are not tracked;
	// each ends when either side closes it.
	Tunnels *Tunnels
}

// Handler forwards requests to a route's backends. It is safe for
// concurrent use and immutable once built.
type Handler struct {
	route         string
	pools         []*upstream.Pool // backends with a weight above zero
	cumWeights    []int            // running sums of their weights
	sticky        *config.Sticky   // nil: random placement
	live          *Weights         // nil: static pools and cumWeights
	all           []*upstream.Pool // with live: every backend, candidates first
	perm          []int            // with live: all[k] is Options.Backends[perm[k]]
	attempts      int
	retryOn       RetryOn
	retryStatuses []int
	replay        bool // some retry may need to resend a sent body
	reqOps        headerOps
	resOps        headerOps
	log           *slog.Logger
	tunnels       *Tunnels  // nil: untracked
	deadlines     *timeouts // Options.Timeout's; nil without one
	tryDeadlines  *timeouts // Options.TryTimeout's; nil without one
}

// New checks o and builds its Handler. It has no side effects.
func New(o Options) (*Handler, error) {
	h := &Handler{
		route:         o.Route,
		attempts:      o.Attempts,
		retryOn:       o.RetryOn,
		retryStatuses: slices.Clone(o.RetryStatuses),
		log:           o.Logger,
		tunnels:       o.Tunnels,
	}
	errorf := func(format string, args ...any) error {
		return fmt.Errorf("build proxy for route %q: "+format, append([]any{o.Route}, args...)...)
	}
	// Candidates first: in a sticky split they own the start of the hash
	// space, which only grows as their weight does.
	perm := make([]int, len(o.Backends))
	for i := range perm {
		perm[i] = i
	}
	slices.SortStableFunc(perm, func(a, b int) int {
		switch ca, cb := o.Backends[a].Candidate, o.Backends[b].Candidate; {
		case ca == cb:
			return 0
		case ca:
			return -1
		}
		return 1
	})
	h.sticky = o.Sticky
	for i, b := range o.Backends {
		switch {
		case b.Pool == nil:
			return nil, errorf("backends[%d]: no pool", i)
		case b.Weight < 0:
			return nil, errorf("backends[%d]: negative weight %d", i, b.Weight)
		}
	}
	if o.Weights != nil {
		if o.Weights.n != len(o.Backends) {
			return nil, errorf("%d live weights for %d backends", o.Weights.n, len(o.Backends))
		}
		h.live, h.perm = o.Weights, perm
		for _, i := range perm {
			h.all = append(h.all, o.Backends[i].Pool)
		}
	} else {
		total := 0
		for _, i := range perm {
			b := o.Backends[i]
			if b.Weight == 0 {
				continue
			}
			total += b.Weight
			h.pools = append(h.pools, b.Pool)
			h.cumWeights = append(h.cumWeights, total)
		}
		if total == 0 {
			return nil, errorf("no backend with a weight above zero")
		}
	}
	if o.Timeout < 0 || o.TryTimeout < 0 {
		return nil, errorf("negative timeout")
	}
	if o.Attempts < 0 {
		return nil, errorf("negative retry attempts %d", o.Attempts)
	}
	for _, s := range o.RetryStatuses {
		if s < 100 || s > 599 {
			return nil, errorf("retry status %d: not an HTTP status", s)
		}
	}
	// Resending a body that was sent is needed only for idempotent
	// requests retried after a reset, a try timeout or a status; connect
	// failures never sent it.
	h.replay = o.Attempts > 0 && (o.RetryOn&(RetryReset|RetryTimeout) != 0 || len(o.RetryStatuses) > 0)
	var err error
	if h.reqOps, err = compileHeaderOps(o.RequestHeaders); err != nil {
		return nil, errorf("request_headers: %w", err)
	}
	if h.resOps, err = compileHeaderOps(o.ResponseHeaders); err != nil {
		return nil, errorf("response_headers: %w", err)
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	h.deadlines = newTimeouts(o.Timeout, ErrTimeout)
	h.tryDeadlines = newTimeouts(o.TryTimeout, ErrTryTimeout)
	return h, nil
}

// pickPool chooses a backend by weight: by the request's sticky key when
// the route has one and the request carries it, else at random.
func (h *Handler) pickPool(r *http.Request, info *request.Info) *upstream.Pool {
	if h.live != nil {
		return h.pickLive(r, info)
	}
	if len(h.pools) == 1 {
		return h.pools[0]
	}
	total := h.cumWeights[len(h.cumWeights)-1]
	i, _ := slices.BinarySearch(h.cumWeights, h.point(r, info, total)+1)
	return h.pools[i]
}

// pickLive is pickPool with live weights: a linear walk, as a split has
// few backends.
func (h *Handler) pickLive(r *http.Request, info *request.Info) *upstream.Pool {
	ws := h.live.load()
	total := 0
	for _, i := range h.perm {
		total += ws[i]
	}
	n := h.point(r, info, total)
	for k, i := range h.perm {
		if n < ws[i] {
			return h.all[k]
		}
		n -= ws[i]
	}
	return h.all[len(h.all)-1] // unreachable: n < total
}

// point places r in [0, total): by its sticky key when the route has one
// and the request carries it, else at random. The key's fixed point in
// [0, 1) is scaled to the weights, so a point below the candidates' share
// stays below it as that share grows.
func (h *Handler) point(r *http.Request, info *request.Info, total int) int {
	if key, ok := stickyKey(h.sticky, r, info); ok {
		return int((uint64(total) * (fnv64(key) >> 32)) >> 32)
	}
	return rand.IntN(total)
}

// stickyKey returns the request's sticky key, if the route has one and
// the request carries it.
func stickyKey(st *config.Sticky, r *http.Request, info *request.Info) (string, bool) {
	switch {
	case st == nil:
		return "", false
	case st.Header != "":
		v := r.Header.Get(st.Header)
		return v, v != ""
	case st.Cookie != "":
		c, err := r.Cookie(st.Cookie)
		if err != nil || c.Value == "" {
			return "", false
		}
		return c.Value, true
	case st.Claim != "":
		v, ok := info.Claims[st.Claim]
		if !ok || v == nil {
			return "", false
		}
		if s, ok := v.(string); ok {
			return s, s != ""
		}
		return fmt.Sprint(v), true
	case st.ClientIP:
		if !info.ClientIP.IsValid() {
			return "", false
		}
		return info.ClientIP.String(), true
	}
	return "", false
}

// fnv64 is 64-bit FNV-1a with splitmix64's finalizer, so the high bits
// are well mixed even for short keys: stable across replicas and restarts,
// so every torii places a user on the same backend.
func fnv64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	return h ^ h>>31
}

// retryStatus reports whether status is one of the route's retry statuses.
func (h *Handler) retryStatus(status int) bool {
	return slices.Contains(h.retryStatuses, status)
}

// ServeHTTP forwards r and relays the response. It fills the request.Info
// in r's context (Upstream, Endpoint, Tries, Status, BytesOut, GRPCStatus,
// Err). When the upstream fails after the response head was sent it
// aborts the response with panic(http.ErrAbortHandler), as net/http
// expects. A request that asks for a protocol switch the upstream grants
// (101) becomes a tunnel: ServeHTTP hijacks the client's connection and
// returns when either side closes.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	info := request.FromContext(r.Context())
	if info == nil {
		// The front handler always provides one; be safe without it.
		info = &request.Info{Start: time.Now(), ClientIP: request.ParsePeer(r.RemoteAddr)}
		r = r.WithContext(request.NewContext(r.Context(), info))
	}
	if r.Method == http.MethodConnect {
		fail(w, r, info, fmt.Errorf("forward %s request: %w", r.Method, ErrMethod))
		return
	}
	grpc := isGRPC(r.Header.Get("Content-Type"))
	if grpc && r.ProtoMajor == 1 {
		// gRPC streams both ways at once. HTTP/2 always allows it; an
		// HTTP/1 server must be told, or it would stop reading the
		// request body once the response begins.
		_ = http.NewResponseController(w).EnableFullDuplex()
	}
	upgrade := upgradeProtocols(r)

	// Read a replayable body before taking a slot, so a slow client does
	// not hold the upstream's capacity while it uploads.
	b, err := prepareBody(r, h.replay && idempotent(r.Method) && upgrade == "")
	if err != nil {
		fail(w, r, info, err)
		return
	}

	pool := h.pickPool(r, info)
	info.Upstream = pool.Name()
	if upgrade != "" && pool.Protocol() != upstream.ProtocolHTTP1 {
		// HTTP/2 has no Upgrade: RFC 9113 §8.2.2 forbids the field.
		fail(w, r, info, fmt.Errorf("forward upgrade to %q: upstream %q speaks %s: %w",
			upgrade, pool.Name(), pool.Protocol(), ErrUpgrade))
		return
	}
	if !pool.Acquire() {
		fail(w, r, info, fmt.Errorf("forward to upstream %q: %w", pool.Name(), ErrAtCapacity))
		return
	}
	defer pool.Release()

	x := exchanges.Get().(*exchange) // zeroed
	ctx := &x.ctxBuf
	reuse := false
	defer func() {
		// Last: everything else that touches x is done.
		if reuse {
			upstream.ReleaseResponse(x.res) // its body is closed
			if ctx.Release() {
				*x = exchange{}
				exchanges.Put(x)
				return
			}
		}
		ctx.Cancel(nil) // a no-op after Release
	}()
	x.h, x.r, x.info, x.pool = h, r, info, pool
	x.body, x.grpc, x.upgrade = b, grpc, upgrade
	x.header = h.outgoingHeader(r, info, b.none || b.buffered, upgrade, x.valBuf[:0])
	if pool.Protocol() == upstream.ProtocolHTTP1 && upgrade == "" {
		// torii's HTTP/1.1 transport has written the head by the time
		// it returns and never reads it after; the HTTP/2 one may.
		defer upstream.RecycleHeader(x.header)
	}
	ctx.Init(r.Context())
	x.ctx = ctx
	x.tried = x.triedBuf[:0]
	if h.deadlines != nil {
		h.deadlines.start(&x.deadline, ctx)
		defer x.deadline.stop()
	}

	res, err := x.forward()
	if err != nil {
		fail(w, r, info, err)
		return
	}
	x.res = res
	defer res.Body.Close()
	// The response is chosen: from here the route timeout no longer
	// applies, so a long stream lives on.
	if h.deadlines != nil && !x.deadline.stop() {
		x.end(upstream.GatewayError)
		fail(w, r, info, x.wrap(ErrTimeout))
		return
	}
	if res.StatusCode == http.StatusSwitchingProtocols {
		x.switchProtocols(w, res)
		return
	}
	x.relay(w, res)
	if pool.Protocol() == upstream.ProtocolHTTP1 && upgrade == "" {
		// The HTTP/1.1 transport reads no more of the head, and relay
		// has copied the field values (not the map) into w's header.
		upstream.RecycleHeader(res.Header)
		reuse = x.reusable()
	}
}

// exchanges holds zeroed exchanges for reuse. An exchange is about a
// kilobyte, a third of what a proxied request allocates, and the
// collector's work grows with the bytes allocated (docs/performance.md).
var exchanges = sync.Pool{New: func() any { return new(exchange) }}

// reusable reports whether nothing can touch x once ServeHTTP returns,
// so it may go back to exchanges: one try over torii's HTTP/1.1
// transport, which keeps no part of a request after its response body
// is closed when there is no request body (a body may still be being
// written by a goroutine of the transport), and timeout entries stopped
// (fire unlinks an entry before it cancels). Its context must also be
// quiet (reqctx.Context.Release): no parent or timer still canceling it.
// A retried exchange is left to the garbage collector: the rare case is
// not worth the reasoning.
func (x *exchange) reusable() bool {
	return x.body.none && len(x.tried) == 1 && !x.try.timed && x.deadline.shard == nil && x.try.timer.shard == nil
}

// exchange is one request's trip through the upstream: its tries and the
// relayed response. One goroutine (the request's) uses it.
type exchange struct {
	h        *Handler
	r        *http.Request
	info     *request.Info
	pool     *upstream.Pool
	ctx      *reqctx.Context // r's context, canceled with ErrTimeout by deadline
	deadline timeout         // the route timeout's entry, with one
	body     body
	grpc     bool        // the request is gRPC (application/grpc*)
	upgrade  string      // the protocols the client asks to switch to; "" : none
	header   http.Header // sent on every try; http.Transport never changes it

	tried    []*upstream.Endpoint
	triedBuf [4]*upstream.Endpoint
	try      try            // the open try
	res      *http.Response // the response relayed
	out      http.Request   // the first try's request, here to save an allocation
	url      url.URL        // its URL
	ctxBuf   reqctx.Context // ctx, here to save an allocation
	valBuf   [12]string     // header's values, when they fit
}

// try is one attempt on one endpoint.
type try struct {
	ep    *upstream.Endpoint
	retry bool            // admitted by AllowRetry, so RetryDone is owed
	ctx   *reqctx.Context // the exchange's, or its own with a try timeout
	timed bool            // with a try timeout: ctx is the try's own
	timer timeout         // the try timeout's entry, when timed
}

// wrap prefixes err with the open try's upstream and endpoint.
func (x *exchange) wrap(err error) error {
	return fmt.Errorf("forward to upstream %q endpoint %s: %w", x.pool.Name(), x.try.ep.Addr(), err)
}

// forward makes the first try and any retries. It returns the response to
// relay, its try still open, or the failure that ended the tries.
func (x *exchange) forward() (*http.Response, error) {
	ep, err := x.pool.Pick(x.r, x.info.ClientIP, nil)
	if err != nil {
		return nil, fmt.Errorf("pick endpoint of upstream %q: %w", x.pool.Name(), err)
	}
	retry := false
	for n := 0; ; n++ {
		x.begin(ep, retry)
		res, err := x.roundTrip()
		if err != nil {
			kind, err := x.failure(err)
			if kind == failClient {
				x.end(upstream.Canceled)
			} else {
				x.end(upstream.GatewayError)
			}
			if n < x.h.attempts && x.mayRetry(kind) {
				if ep, retry = x.next(); retry {
					x.h.log.Debug("retrying failed try", "id", x.info.ID, "route", x.h.route, "try", n+1, "err", err)
					continue
				}
			}
			return nil, err
		}
		if n < x.h.attempts && x.h.retryStatus(res.StatusCode) && x.upgrade == "" &&
			idempotent(x.r.Method) && x.body.replayable() {
			if ep, retry = x.next(); retry {
				x.h.log.Debug("retrying status", "id", x.info.ID, "route", x.h.route, "try", n+1,
					"endpoint", x.try.ep.Addr(), "status", res.StatusCode)
				// Drain a little so the connection can be reused.
				io.CopyN(io.Discard, res.Body, maxDrain)
				res.Body.Close()
				x.end(outcome(res.StatusCode))
				continue
			}
		}
		return res, nil
	}
}

// begin opens a try on ep.
func (x *exchange) begin(ep *upstream.Endpoint, retry bool) {
	x.tried = append(x.tried, ep)
	x.info.Tries++
	x.info.Endpoint = ep.Addr()
	ep.Begin()
	x.try = try{ep: ep, retry: retry, ctx: x.ctx}
	if x.h.tryDeadlines != nil {
		ctx := reqctx.New(x.ctx)
		x.try.ctx, x.try.timed = ctx, true
		x.h.tryDeadlines.start(&x.try.timer, ctx)
	}
}

// end closes the open try, counting o against its endpoint.
func (x *exchange) end(o upstream.Outcome) {
	t := &x.try
	if t.timed {
		t.timer.stop()
		t.ctx.Cancel(nil)
	}
	t.ep.End(o)
	if t.retry {
		x.pool.RetryDone()
	}
	*t = try{ep: t.ep} // keep ep for wrap
}

// next picks an untried endpoint for a retry and takes a retry from the
// budget. It reports false when there is no such endpoint or no budget.
func (x *exchange) next() (*upstream.Endpoint, bool) {
	ep, err := x.pool.Pick(x.r, x.info.ClientIP, x.tried)
	if err != nil || !x.pool.AllowRetry() {
		return nil, false
	}
	return ep, true
}

// mayRetry reports whether a try that failed as kind may be retried:
// connect failures for any method (nothing was sent), resets and try
// timeouts for idempotent methods only (RFC 9110 §9.2.2), and in every
// case only when the whole body can be sent again. A gRPC call or an
// upgrade is retried only when nothing of it was sent: a gRPC body streams
// as it comes, and the upstream may have acted on the part it saw.
func (x *exchange) mayRetry(kind failKind) bool {
	on := x.h.retryOn
	if (x.grpc || x.upgrade != "") && kind != failConnect {
		return false
	}
	switch kind {
	case failConnect:
		return on&RetryConnectFailure != 0 && x.body.replayable()
	case failReset:
		return on&RetryReset != 0 && idempotent(x.r.Method) && x.body.replayable()
	case failTryTimeout:
		return on&RetryTimeout != 0 && idempotent(x.r.Method) && x.body.replayable()
	}
	return false
}

// roundTrip sends the request on the open try and waits for the head.
func (x *exchange) roundTrip() (*http.Response, error) {
	rc, getBody, err := x.body.reader()
	if err != nil {
		return nil, err
	}
	out, u := &x.out, &x.url
	if len(x.tried) > 1 {
		// A failed try's request may still be read by its transport's
		// goroutines; a retry gets its own request and URL.
		out, u = new(http.Request), new(url.URL)
	}
	// WithContext is the one way to set a request's context; its copy
	// stays on the stack.
	*out = *x.r.WithContext(x.try.ctx)
	*u = *x.r.URL
	u.Scheme, u.Host, u.User = x.pool.Scheme(), x.try.ep.Addr(), nil
	out.URL = u
	out.Host = x.r.Host // the client's Host goes upstream unchanged
	out.Header = x.header
	out.Body, out.GetBody, out.ContentLength = rc, getBody, x.body.length
	out.TransferEncoding = nil
	out.Close = false
	out.RequestURI = ""
	out.Proto, out.ProtoMajor, out.ProtoMinor = "HTTP/1.1", 1, 1
	if x.body.none {
		out.Trailer = nil
	}
	res, err := x.pool.Transport().RoundTrip(out)
	if err == nil && x.try.timed && !x.try.timer.stop() {
		// The try timed out as the head arrived: its body is cut anyway.
		res.Body.Close()
		return nil, x.try.ctx.Cause()
	}
	return res, err
}

// failure explains a failed try: the error to record and its kind.
func (x *exchange) failure(err error) (failKind, error) {
	// A body the strict framing check refused mid-stream also cancels the
	// request context (net/http does on any connection read error), so it
	// must be told apart from a client that left before the context is
	// consulted: it is a bad request (400), not a 499.
	if berr := x.body.readErr(); berr != nil && isFraming(berr) {
		return failClient, fmt.Errorf("read request body: %w: %w", ErrRequestBody, berr)
	}
	if cerr := x.r.Context().Err(); cerr != nil {
		if errors.Is(cerr, context.DeadlineExceeded) {
			return failTimeout, x.wrap(fmt.Errorf("%w (request context)", ErrTimeout))
		}
		return failClient, x.wrap(ErrClientGone)
	}
	if berr := x.body.readErr(); berr != nil {
		return failClient, fmt.Errorf("read request body: %w: %w", ErrRequestBody, berr)
	}
	// The transport reports our own cancellations as plain context
	// errors; the cause says which timer fired. Its text adds nothing.
	if x.ctx.Cause() == ErrTimeout {
		return failTimeout, x.wrap(ErrTimeout)
	}
	if x.try.ctx.Cause() == ErrTryTimeout {
		return failTryTimeout, x.wrap(ErrTryTimeout)
	}
	switch {
	case isConnectFailure(err):
		return failConnect, x.wrap(err)
	case isReset(err):
		return failReset, x.wrap(err)
	}
	return failOther, x.wrap(err)
}

// outcome is how outlier detection counts a response with status.
func outcome(status int) upstream.Outcome {
	if status >= 500 {
		return upstream.Failure5xx
	}
	return upstream.Success
}

// bufPool holds the response copy buffers.
var bufPool = sync.Pool{New: func() any {
	b := make([]byte, copyBufferSize)
	return &b
}}

// relay writes res to w: the cleaned head, the body as it arrives, then
// the trailers. It closes the open try.
func (x *exchange) relay(w http.ResponseWriter, res *http.Response) {
	RemoveHopByHop(res.Header)
	dst := w.Header()
	for name, values := range res.Header {
		// Replace rather than append, so a field set earlier in the chain
		// (a default Content-Type, say) is not doubled.
		dst[name] = values
	}
	declared := make([]string, 0, len(res.Trailer))
	for name := range res.Trailer {
		declared = append(declared, name)
	}
	if len(declared) > 0 {
		dst["Trailer"] = declared // RFC 9110 §6.6.2: announce them in the head
	}
	x.h.resOps.apply(dst)
	w.WriteHeader(res.StatusCode)
	x.info.Status = res.StatusCode

	// Streams (gRPC, Server-Sent Events, bodies of unknown length) are
	// flushed after every read so each piece reaches the client as it
	// comes.
	contentType := res.Header.Get("Content-Type")
	grpc := isGRPC(contentType)
	flush := grpc || res.ContentLength < 0 || isEventStream(contentType)
	rc := http.NewResponseController(w)
	// A gRPC "Trailers-Only" response carries grpc-status in its only
	// HEADERS frame, which must end the stream; flushing the head early
	// would send it without END_STREAM and a client would wait for
	// trailers that never come.
	trailersOnly := grpc && res.Header["Grpc-Status"] != nil
	if flush && !trailersOnly {
		rc.Flush()
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for {
		n, rerr := res.Body.Read(buf)
		if n > 0 {
			m, werr := w.Write(buf[:n])
			x.info.BytesOut += int64(m)
			if werr == nil && flush {
				if ferr := rc.Flush(); ferr != nil && !errors.Is(ferr, http.ErrNotSupported) {
					werr = ferr
				}
			}
			if werr != nil {
				if grpc {
					x.info.GRPCStatus = grpcCanceled
				}
				x.info.Err = x.wrap(fmt.Errorf("write response body: %w (%v)", ErrClientGone, werr))
				x.end(upstream.Canceled)
				return
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			if x.r.Context().Err() != nil {
				// The client left mid-body; the status stays the one sent.
				if grpc {
					x.info.GRPCStatus = grpcCanceled
				}
				x.info.Err = x.wrap(fmt.Errorf("relay response body: %w", ErrClientGone))
				x.end(upstream.Canceled)
				return
			}
			x.info.Err = x.wrap(fmt.Errorf("read response body: %w", rerr))
			x.end(upstream.GatewayError)
			// The head is out: the only honest signal left is to cut the
			// connection (HTTP/1.1) or reset the stream (HTTP/2).
			panic(http.ErrAbortHandler)
		}
	}
	for name, values := range res.Trailer {
		if !slices.Contains(declared, name) {
			// Undeclared trailers are sent with net/http's prefix.
			name = http.TrailerPrefix + name
		}
		dst[name] = values
	}
	if grpc {
		// The status is in the trailers, or in the head of a
		// Trailers-Only response.
		x.info.GRPCStatus = res.Trailer.Get("Grpc-Status")
		if x.info.GRPCStatus == "" {
			x.info.GRPCStatus = res.Header.Get("Grpc-Status")
		}
	}
	x.end(outcome(res.StatusCode))
}

// grpcCanceled is the gRPC status CANCELLED, recorded when the client
// went away in the middle of a gRPC response.
const grpcCanceled = "1"

// isGRPC reports whether contentType is gRPC's: application/grpc, alone
// or with a suffix (+proto, +json, -web...).
func isGRPC(contentType string) bool {
	const g = "application/grpc"
	return len(contentType) >= len(g) && strings.EqualFold(contentType[:len(g)], g)
}

// isEventStream reports whether contentType is text/event-stream.
func isEventStream(contentType string) bool {
	const es = "text/event-stream"
	return len(contentType) >= len(es) && strings.EqualFold(contentType[:len(es)], es)
}
