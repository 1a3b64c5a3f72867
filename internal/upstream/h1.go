package upstream

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"torii/internal/reqctx"
)

// h1Transport is the round tripper of HTTP/1.1 upstreams, cleartext or
// TLS: a keep-alive pool per endpoint address whose connections are used
// by the request's own goroutine. net/http's Transport runs a reader and a
// writer goroutine per connection and hands every request and response
// between three goroutines; at a gateway's request rates those hand-offs
// and the wake-ups they cause cost more than the proxying itself
// (docs/performance.md). Here a request is written with one write (head
// and a small body together), its response head is parsed in place
// (h1read.go, strictly), and the body is read by whoever reads
// Response.Body. A goroutine is started only to stream a request body
// that is not in hand, so the upstream may answer before the body ends.
//
// HTTP/2 upstreams (h2, h2c) keep net/http's Transport.
type h1Transport struct {
	dialer      net.Dialer
	tls         *tls.Config // nil: cleartext
	maxIdle     int         // idle connections kept per endpoint
	maxConns    int         // connections per endpoint; 0: no cap
	idleTimeout time.Duration
	handshake   time.Duration // TLS handshake bound
	headLimit   int           // largest response head or trailer section

	mu    sync.Mutex // guards hosts and each h1Host's fields
	hosts map[string]*h1Host
}

// h1Host is the pool of one endpoint address.
type h1Host struct {
	addr    string
	tls     *tls.Config     // with ServerName filled in; nil: cleartext
	idle    []*h1Conn       // most recently used last
	open    int             // connections dialed and not yet closed
	waiters []chan struct{} // requests waiting for a connection under maxConns
}

// Tuning of the lean transport.
const (
	// smallBody is the largest request body (with a known length, and no
	// "Expect: 100-continue") read whole and written with its head.
	smallBody = 16 << 10
	// staleAfter is how long a connection may sit idle before it is
	// checked for a close by the upstream before reuse; a busy pool reuses
	// connections sooner and skips the check (a retry covers the race).
	staleAfter = time.Second
	// continueTimeout is how long a request with "Expect: 100-continue"
	// waits for the upstream's 100 before sending its body anyway, as
	// net/http's ExpectContinueTimeout.
	continueTimeout = time.Second
	// maxStaleRetries bounds the resends of a request whose reused
	// connection turned out to be closed.
	maxStaleRetries = 3
)

func newH1Transport(k transportKey, tc *tls.Config) *h1Transport {
	t := &h1Transport{
		dialer:      net.Dialer{Timeout: k.connectTimeout, KeepAlive: tcpKeepAlive},
		maxIdle:     k.maxIdlePerEndpoint,
		maxConns:    k.maxConnsPerEndpoint,
		idleTimeout: k.idleTimeout,
		handshake:   k.connectTimeout,
		headLimit:   maxResponseHeaderBytes,
		hosts:       make(map[string]*h1Host),
	}
	if tc != nil {
		t.tls = tc.Clone()
		t.tls.NextProtos = []string{"http/1.1"}
	}
	return t
}

// CloseIdleConnections closes the idle connections; busy ones are closed
// when their response ends, or go idle and time out.
func (t *h1Transport) CloseIdleConnections() {
	t.mu.Lock()
	var idle []*h1Conn
	for _, h := range t.hosts {
		idle = append(idle, h.idle...)
		h.idle = nil
	}
	t.mu.Unlock()
	for _, c := range idle {
		c.close()
	}
}

// RoundTrip sends req on a pooled or new connection to req.URL.Host and
// returns the response once its head is in. It resends a request whose
// reused connection the upstream had closed, when that is safe (as
// net/http does): nothing of the response arrived, and the request has
// no body or one it can get again, and is idempotent or never left.
func (t *h1Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	body := req.Body
	for try := 0; ; try++ {
		c, err := t.getConn(ctx, req.URL.Host)
		if err != nil {
			closeBody(body)
			return nil, err
		}
		res, sent, err := c.roundTrip(ctx, req, body)
		if err == nil {
			return res, nil
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			closeBody(body)
			return nil, ctxErr
		}
		if !c.reused || try >= maxStaleRetries || !errors.Is(err, errStale) ||
			sent && !replayable(req) {
			closeBody(body)
			return nil, err
		}
		if body != nil && body != http.NoBody && c.bodyRead.Load() {
			if req.GetBody == nil {
				closeBody(body)
				return nil, err
			}
			if body, err = req.GetBody(); err != nil {
				return nil, fmt.Errorf("get request body: %w", err)
			}
		}
	}
}

// errStale marks a failure on a reused connection before any byte of a
// response: the upstream most likely closed it while it was idle.
var errStale = errors.New("connection closed by upstream before response")

// replayable reports whether req may be sent again after it may have
// reached the upstream (RFC 9110 §9.2.2, and net/http's rule).
func replayable(req *http.Request) bool {
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return req.Header["Idempotency-Key"] != nil || req.Header["X-Idempotency-Key"] != nil
}

func closeBody(b io.ReadCloser) {
	if b != nil {
		b.Close()
	}
}

// getConn returns an idle connection to addr, or dials one, waiting for
// a free slot under maxConns.
func (t *h1Transport) getConn(ctx context.Context, addr string) (*h1Conn, error) {
	t.mu.Lock()
	for {
		// Looked up on every turn: a host left with no connection is
		// dropped from the map while a request waits.
		h := t.hosts[addr]
		if h == nil {
			h = &h1Host{addr: addr, tls: t.hostTLS(addr)}
			t.hosts[addr] = h
		}
		if n := len(h.idle); n > 0 {
			c := h.idle[n-1]
			h.idle[n-1] = nil
			h.idle = h.idle[:n-1]
			t.mu.Unlock()
			if time.Since(c.idleAt) > staleAfter && !c.alive() {
				c.close()
				t.mu.Lock()
				continue
			}
			c.reused = true
			return c, nil
		}
		if t.maxConns <= 0 || h.open < t.maxConns {
			h.open++
			t.mu.Unlock()
			c, err := t.dial(ctx, h)
			if err != nil {
				t.mu.Lock()
				h.open--
				t.wakeLocked(h)
				t.mu.Unlock()
				return nil, err
			}
			return c, nil
		}
		ch := make(chan struct{})
		h.waiters = append(h.waiters, ch)
		t.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		t.mu.Lock()
	}
}

// wakeLocked wakes every request waiting for a connection to h; they
// race for it again. t.mu must be held.
func (t *h1Transport) wakeLocked(h *h1Host) {
	for _, ch := range h.waiters {
		close(ch)
	}
	h.waiters = nil
}

// hostTLS returns the TLS config for addr: the transport's, with the
// address's host as server name when the upstream names none.
func (t *h1Transport) hostTLS(addr string) *tls.Config {
	if t.tls == nil || t.tls.ServerName != "" {
		return t.tls
	}
	c := t.tls.Clone()
	c.ServerName, _, _ = net.SplitHostPort(addr)
	return c
}

// dial opens a connection to h, with the TLS handshake when h has TLS.
func (t *h1Transport) dial(ctx context.Context, h *h1Host) (*h1Conn, error) {
	raw, err := t.dialer.DialContext(ctx, "tcp", h.addr)
	if err != nil {
		return nil, err
	}
	conn := raw
	if h.tls != nil {
		tc := tls.Client(raw, h.tls)
		hctx, cancel := context.WithTimeout(ctx, t.handshake)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			raw.Close()
			return nil, err
		}
		conn = tc
	}
	c := &h1Conn{t: t, host: h, conn: conn, raw: raw, yield: runtime.GOMAXPROCS(0) <= yieldMaxProcs}
	c.abort = func() { conn.SetDeadline(abortTime) }
	c.br = bufio.NewReaderSize(conn, 4096)
	c.hr = headReader{br: c.br, limit: t.headLimit}
	return c, nil
}

// h1Conn is one upstream connection. One request uses it at a time.
type h1Conn struct {
	yield  bool // yield before reading a response head (yieldMaxProcs)
	t      *h1Transport
	host   *h1Host
	conn   net.Conn // the connection, TLS or not
	raw    net.Conn // the TCP connection under it
	br     *bufio.Reader
	hr     headReader
	idleAt time.Time   // when it last went idle
	timer  *time.Timer // closes it after idleTimeout idle; nil before first idle
	// timerSet: timer will fire (guarded by t.mu).
	timerSet bool

	// Per request, used by the request's goroutine.
	ctx      context.Context
	reused   bool                  // it served an earlier request
	bodyRead atomic.Bool           // the request body was read (so not resendable as is)
	stop     func() bool           // unregisters a context.AfterFunc watch; nil: none
	watched  *reqctx.Context       // the Context watched with Watch; nil: none
	watchID  uint64                // the watch on watched
	abort    func()                // the watch's func, made once per connection
	written  chan error            // the body writer's outcome; nil: written inline
	cont     chan struct{}         // closed on 100 Continue; nil: no Expect
	writeErr atomic.Pointer[error] // why the body writer failed

	closed bool // guarded by t.mu
}

// abortTime is a deadline in the past: setting it makes blocked reads
// and writes on the connection return at once.
var abortTime = time.Unix(1, 0)

// roundTrip sends req on c and reads the response head. sent reports
// whether any byte of the request may have reached the upstream.
func (c *h1Conn) roundTrip(ctx context.Context, req *http.Request, body io.ReadCloser) (res *http.Response, sent bool, err error) {
	c.ctx, c.written, c.cont = ctx, nil, nil
	c.bodyRead.Store(false)
	c.writeErr.Store(nil)
	if rc, ok := ctx.(*reqctx.Context); ok {
		// The proxy's context: a watch with no allocation.
		c.watched, c.watchID = rc, rc.Watch(c.abort)
	} else if ctx.Done() != nil {
		c.stop = context.AfterFunc(ctx, c.abort)
	}
	defer func() {
		if err != nil {
			c.unwatch()
			c.close()
		}
	}()

	length := req.ContentLength
	if body == http.NoBody {
		body = nil
	}
	if body != nil && length == 0 {
		length = -1 // a client request's unknown length
	}
	expect := body != nil && hasToken(req.Header["Expect"], "100-continue")
	bp := writeBufPool.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= 64<<10 {
			writeBufPool.Put(bp)
		}
	}()
	b, err := appendRequestHead((*bp)[:0], req, length)
	if err != nil {
		return nil, false, err
	}
	inline := body == nil || (!expect && length > 0 && length <= smallBody)
	if body != nil && inline {
		// The body is small and known: send it with the head.
		c.bodyRead.Store(true)
		n := len(b)
		b = append(b, make([]byte, length)...)
		if _, err := io.ReadFull(body, b[n:]); err != nil {
			return nil, false, fmt.Errorf("read request body: %w", err)
		}
	}
	*bp = b
	if _, err := c.conn.Write(b); err != nil {
		return nil, true, c.ioError(ctx, err, false)
	}
	if !inline {
		c.written = make(chan error, 1)
		if expect {
			c.cont = make(chan struct{})
		}
		go c.writeBody(req, body, length, c.cont, c.written)
	}

	if c.yield && c.hr.br.Buffered() == 0 {
		// The upstream has only just got the request: let other
		// goroutines run before reading its answer, as the listener does
		// before a request head (listener.yieldMaxProcs).
		runtime.Gosched()
	}
	x := h1Responses.Get().(*h1Response) // zeroed
	rh, err := c.readHead(ctx, req.Method)
	if err != nil {
		h1Responses.Put(x)
		return nil, true, err
	}
	return c.response(req, &rh, x), true, nil
}

// writeBufPool holds the buffers request heads are built in.
var writeBufPool = sync.Pool{New: func() any {
	b := make([]byte, 0, 4096)
	return &b
}}

// ioError explains a failed read or write: the context's end when it
// aborted the connection, errStale when a reused connection gave nothing,
// otherwise err.
func (c *h1Conn) ioError(ctx context.Context, err error, gotBytes bool) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if c.reused && !gotBytes && isClosedConn(err) {
		return fmt.Errorf("%w: %w", errStale, err)
	}
	return err
}

// isClosedConn reports whether err says the peer closed or reset the
// connection.
func isClosedConn(err error) bool {
	var op *net.OpError
	return err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &op)
}

// writeBody streams body after the head, chunked when length < 0, and
// reports the outcome on written. With cont it first waits for the
// upstream's 100 Continue, or continueTimeout.
func (c *h1Conn) writeBody(req *http.Request, body io.ReadCloser, length int64, cont chan struct{}, written chan<- error) {
	src := &errReader{r: body}
	err := func() error {
		if cont != nil {
			t := time.NewTimer(continueTimeout)
			select {
			case <-cont:
			case <-t.C:
			}
			t.Stop()
		}
		c.bodyRead.Store(true)
		bp := copyBufPool.Get().(*[]byte)
		defer copyBufPool.Put(bp)
		buf := *bp
		if length >= 0 {
			n, err := io.CopyBuffer(c.conn, io.LimitReader(src, length), buf)
			if err == nil && n < length {
				src.err = fmt.Errorf("request body: %d of %d bytes: %w", n, length, io.ErrUnexpectedEOF)
				err = src.err
			}
			return err
		}
		for {
			n, rerr := src.Read(buf[10 : len(buf)-2])
			if n > 0 {
				// Size line, data and CRLF in one write.
				head := strconv.AppendInt(buf[:0:10], int64(n), 16)
				head = append(head, '\r', '\n')
				start := 10 - len(head)
				copy(buf[start:], head)
				buf[10+n], buf[10+n+1] = '\r', '\n'
				if _, err := c.conn.Write(buf[start : 10+n+2]); err != nil {
					return err
				}
			}
			if rerr == io.EOF {
				break
			}
			if rerr != nil {
				return rerr
			}
		}
		end := append(buf[:0], "0\r\n"...)
		for name, values := range req.Trailer {
			for _, v := range values {
				if !validFieldName(name) || !validFieldValue(v) {
					src.err = fmt.Errorf("invalid trailer field %q", name)
					return src.err
				}
				end = append(append(append(append(end, name...), ": "...), v...), "\r\n"...)
			}
		}
		end = append(end, "\r\n"...)
		_, err := c.conn.Write(end)
		return err
	}()
	if src.err != nil {
		// The request cannot be sent whole: stop waiting for its
		// response; the read fails and reports why. (A failed write is
		// the upstream's doing, and a response may still be coming.)
		c.writeErr.Store(&src.err)
		c.conn.SetReadDeadline(abortTime)
	}
	written <- err
}

// errReader notes the first error of r but io.EOF.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF && e.err == nil {
		e.err = err
	}
	return n, err
}

// copyBufPool holds the buffers request bodies are streamed through.
var copyBufPool = sync.Pool{New: func() any {
	b := make([]byte, 32<<10)
	return &b
}}

// readHead reads the final response head, skipping interim ones: a 100
// lets a waiting body go; other 1xx (103 Early Hints...) are dropped, as
// net/http's client drops them; 101 is final.
func (c *h1Conn) readHead(ctx context.Context, method string) (rh responseHead, err error) {
	for interim := 0; ; interim++ {
		if err := c.hr.read(&rh); err != nil {
			if werr := c.writeErr.Load(); werr != nil {
				return rh, fmt.Errorf("write request body: %w", *werr)
			}
			if errors.Is(err, ErrResponseFraming) {
				return rh, err
			}
			return rh, c.ioError(ctx, err, interim > 0 || c.hr.n > 0)
		}
		if rh.status == http.StatusSwitchingProtocols || rh.status >= 200 {
			return rh, rh.framing(method)
		}
		if interim >= maxInterim {
			return rh, framingError("more than %d interim responses", maxInterim)
		}
		if rh.status == http.StatusContinue && c.cont != nil {
			close(c.cont)
			c.cont = nil
		}
	}
}

// response builds the http.Response for rh in x, its body reading from c.
func (c *h1Conn) response(req *http.Request, rh *responseHead, x *h1Response) *http.Response {
	res, b := &x.res, &x.body
	*res = http.Response{
		Status:        statusText(rh.status, rh.reason),
		StatusCode:    rh.status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    rh.minor,
		Header:        rh.header,
		ContentLength: rh.length,
		Close:         rh.close,
		Request:       req,
	}
	if rh.minor == 0 {
		res.Proto = "HTTP/1.0"
	}
	if rh.status == http.StatusSwitchingProtocols {
		if rh.header.Get("Upgrade") != "" && hasToken(rh.header["Connection"], "upgrade") {
			// The connection is the new protocol's now: it leaves the
			// pool, and the request's context no longer governs it.
			c.unwatch()
			res.Body = &upgradedBody{c: c}
			return res
		}
		res.Body = http.NoBody
		c.finish(false)
		return res
	}
	if !rh.hasBody(req.Method) {
		if rh.status == http.StatusNoContent || rh.status == http.StatusNotModified {
			res.ContentLength = 0
		}
		res.Body = http.NoBody
		c.finish(!rh.close)
		return res
	}
	b.c, b.owner = c, x
	switch {
	case rh.chunked:
		res.ContentLength = -1
		if names := rh.header["Trailer"]; names != nil {
			delete(rh.header, "Trailer")
			res.Trailer = make(http.Header)
			for _, v := range names {
				for name := range strings.SplitSeq(v, ",") {
					if name = strings.TrimSpace(name); name != "" {
						res.Trailer[http.CanonicalHeaderKey(name)] = nil
					}
				}
			}
		}
		b.r = &chunkedReader{hr: &c.hr, trailer: &res.Trailer}
	case rh.length >= 0:
		x.length = lengthReader{br: c.br, remain: rh.length}
		b.r = &x.length
		if rh.length == 0 {
			res.Body = http.NoBody
			c.finish(!rh.close)
			return res
		}
	default:
		b.r = c.br // to the close
	}
	b.keep = !rh.close
	res.Body = b
	return res
}

// finish ends a request on c: back to the pool when keep says the
// response allows it and the request went out whole, else closed.
func (c *h1Conn) finish(keep bool) {
	if !c.unwatch() {
		keep = false // the context fired: the connection has a past deadline
	}
	if c.written != nil {
		select {
		case err := <-c.written:
			keep = keep && err == nil
		default:
			keep = false // the upstream answered before the body ended
		}
		c.written = nil
	}
	if !keep {
		c.close()
		return
	}
	c.put()
}

// unwatch stops the context watch, reporting false when it already fired.
func (c *h1Conn) unwatch() bool {
	if c.watched != nil {
		ok := c.watched.Unwatch(c.watchID)
		c.watched, c.watchID = nil, 0
		return ok
	}
	if c.stop == nil {
		return true
	}
	ok := c.stop()
	c.stop = nil
	return ok
}

// put returns c to its host's idle list, or closes it when the list is
// full.
func (c *h1Conn) put() {
	t := c.t
	c.ctx = nil // the request's; an idle connection keeps none
	c.idleAt = time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	h := c.host
	if len(h.idle) >= t.maxIdle || c.br.Buffered() > 0 {
		// Bytes nobody asked for mean the upstream broke the framing.
		c.closeLocked()
		return
	}
	h.idle = append(h.idle, c)
	t.wakeLocked(h)
	// A timer still set from an earlier idle spell is left alone: when
	// it fires, expire sets it again for what is left of this one. A
	// busy connection so costs no timer update per request.
	if t.idleTimeout > 0 && !c.timerSet {
		c.timerSet = true
		if c.timer == nil {
			c.timer = time.AfterFunc(t.idleTimeout, c.expire)
		} else {
			c.timer.Reset(t.idleTimeout)
		}
	}
}

// expire closes c if it is still idle and has been for idleTimeout, and
// sets the timer again when it has been idle for less.
func (c *h1Conn) expire() {
	t := c.t
	t.mu.Lock()
	h := c.host
	i := -1
	for j, ic := range h.idle {
		if ic == c {
			i = j
			break
		}
	}
	if i < 0 {
		c.timerSet = false // in use; put sets it again
		t.mu.Unlock()
		return
	}
	if left := t.idleTimeout - time.Since(c.idleAt); left > 0 {
		c.timer.Reset(left)
		t.mu.Unlock()
		return
	}
	h.idle = append(h.idle[:i], h.idle[i+1:]...)
	c.closeLocked()
	t.mu.Unlock()
}

// close closes the connection and frees its slot. Idempotent. The
// request's context watch must be off (unwatch): an idle connection has
// none.
func (c *h1Conn) close() {
	c.t.mu.Lock()
	defer c.t.mu.Unlock()
	c.closeLocked()
}

// closeLocked is close with t.mu held.
func (c *h1Conn) closeLocked() {
	if c.closed {
		return
	}
	c.closed = true
	t, h := c.t, c.host
	h.open--
	t.wakeLocked(h)
	if h.open == 0 && len(h.idle) == 0 && len(h.waiters) == 0 && t.hosts[h.addr] == h {
		delete(t.hosts, h.addr)
	}
	if c.timer != nil {
		c.timer.Stop()
	}
	// Closing a socket does not block; the lock keeps the count and the
	// descriptor in step.
	c.conn.Close()
}

// h1Response is a response with its body and the body's reader: one
// allocation, reused once the caller is done with it (ReleaseResponse).
type h1Response struct {
	res    http.Response
	body   h1Body
	length lengthReader
}

// h1Responses holds zeroed h1Responses.
var h1Responses = sync.Pool{New: func() any { return new(h1Response) }}

// ReleaseResponse gives back the memory of res for a later response, when
// res came from torii's HTTP/1.1 transport and its body has been read to
// the end or closed; other responses are left alone. Nothing may use res
// or its body afterwards; its Header map and field values are not part
// of it and stay valid. A proxy that relays res calls it when done: the
// response is a fifth of what a proxied request allocates, and the
// collector's work grows with the bytes allocated.
func ReleaseResponse(res *http.Response) {
	b, ok := res.Body.(*h1Body)
	if !ok || !b.done || b.owner == nil || &b.owner.res != res {
		return
	}
	x := b.owner
	*x = h1Response{}
	h1Responses.Put(x)
}

// h1Body is a response body read from its connection. At its end the
// connection goes back to the pool; closed early, the connection closes.
type h1Body struct {
	c     *h1Conn
	owner *h1Response // the body's response
	r     io.Reader
	keep  bool // the response lets the connection be reused
	done  bool
	err   error // sticky read error
}

func (b *h1Body) Read(p []byte) (int, error) {
	if b.done {
		if b.err != nil {
			return 0, b.err
		}
		return 0, io.EOF
	}
	n, err := b.r.Read(p)
	if err == nil {
		return n, nil
	}
	b.done = true
	if err == io.EOF {
		if b.r == io.Reader(b.c.br) {
			b.keep = false // read to the close
		}
		b.c.finish(b.keep)
		return n, io.EOF
	}
	if ctxErr := b.c.ctxErr(); ctxErr != nil {
		err = ctxErr
	}
	b.err = err
	b.c.finish(false)
	return n, err
}

// Close ends the body; unread, its connection cannot be reused.
func (b *h1Body) Close() error {
	if !b.done {
		b.done, b.err = true, errBodyClosed
		b.c.finish(false)
	}
	return nil
}

var errBodyClosed = errors.New("read on closed response body")

// ctxErr is the error to report for a read that the context's watch
// aborted, or nil.
func (c *h1Conn) ctxErr() error {
	if c.ctx != nil {
		return c.ctx.Err()
	}
	return nil
}

// lengthReader reads exactly remain bytes, then EOF.
type lengthReader struct {
	br     *bufio.Reader
	remain int64
}

func (l *lengthReader) Read(p []byte) (int, error) {
	if l.remain <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > l.remain {
		p = p[:l.remain]
	}
	n, err := l.br.Read(p)
	l.remain -= int64(n)
	if l.remain == 0 {
		return n, io.EOF
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// upgradedBody is the connection after a 101: bytes the upstream sent
// after its response head come first.
type upgradedBody struct {
	c *h1Conn
}

func (u *upgradedBody) Read(p []byte) (int, error)  { return u.c.br.Read(p) }
func (u *upgradedBody) Write(p []byte) (int, error) { return u.c.conn.Write(p) }
func (u *upgradedBody) Close() error {
	u.c.close()
	return nil
}

// appendRequestHead appends req's request line and fields to b: Host
// first, then req.Header except the fields the message's framing owns,
// then the framing for a body of length (-1: chunked; 0 with no body:
// none, or "Content-Length: 0" for methods that expect a body).
func appendRequestHead(b []byte, req *http.Request, length int64) ([]byte, error) {
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	if !validFieldName(method) {
		return nil, fmt.Errorf("invalid method %q", method)
	}
	b = append(b, method...)
	b = append(b, ' ')
	u := req.URL
	start := len(b)
	if u.Opaque != "" {
		b = append(b, u.RequestURI()...)
	} else {
		p := u.EscapedPath()
		if p == "" {
			p = "/"
		}
		b = append(b, p...)
		if u.ForceQuery || u.RawQuery != "" {
			b = append(b, '?')
			b = append(b, u.RawQuery...)
		}
	}
	for _, c := range b[start:] {
		if c <= ' ' || c == 0x7f {
			return nil, fmt.Errorf("invalid request target %q", b[start:])
		}
	}
	b = append(b, " HTTP/1.1\r\nHost: "...)
	host := req.Host
	if host == "" {
		host = u.Host
	}
	if !validFieldValue(host) {
		return nil, fmt.Errorf("invalid Host %q", host)
	}
	b = append(b, host...)
	b = append(b, "\r\n"...)
	for name, values := range req.Header {
		switch name {
		case "Host", "Content-Length", "Transfer-Encoding", "Trailer":
			continue
		}
		if !validFieldName(name) {
			return nil, fmt.Errorf("invalid header field name %q", name)
		}
		for _, v := range values {
			if !validFieldValue(v) {
				return nil, fmt.Errorf("invalid header field value for %q", name)
			}
			b = append(b, name...)
			b = append(b, ": "...)
			b = append(b, v...)
			b = append(b, "\r\n"...)
		}
	}
	switch {
	case length > 0:
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, length, 10)
		b = append(b, "\r\n"...)
	case length < 0:
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
		if len(req.Trailer) > 0 {
			b = append(b, "Trailer: "...)
			first := true
			for name := range req.Trailer {
				if !validFieldName(name) {
					return nil, fmt.Errorf("invalid trailer name %q", name)
				}
				if !first {
					b = append(b, ", "...)
				}
				first = false
				b = append(b, name...)
			}
			b = append(b, "\r\n"...)
		}
	case method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch:
		b = append(b, "Content-Length: 0\r\n"...)
	}
	if req.Close {
		b = append(b, "Connection: close\r\n"...)
	}
	return append(b, "\r\n"...), nil
}

// validFieldName reports whether s is a token.
func validFieldName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			return false
		}
	}
	return true
}

// validFieldValue reports whether s holds no control character but HTAB
// (RFC 9110 §5.5), so it cannot end the field line early.
func validFieldValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// statusText returns "code reason", without allocating for standard
// reasons.
func statusText(code int, reason string) string {
	if code >= 100 && code < 600 && reason == http.StatusText(code) {
		if s := statusLines[code]; s != "" {
			return s
		}
	}
	return strconv.Itoa(code) + " " + reason
}

// statusLines holds "code reason" for every standard status.
var statusLines = func() (s [600]string) {
	for code := 100; code < 600; code++ {
		if text := http.StatusText(code); text != "" {
			s[code] = strconv.Itoa(code) + " " + text
		}
	}
	return s
}()

// yieldMaxProcs: with this many Ps or fewer, a request yields once
// before reading the response head (see the listener's yieldMaxProcs).
const yieldMaxProcs = 2
