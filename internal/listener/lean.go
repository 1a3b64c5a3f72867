package listener

// This file is torii's own HTTP/1.1 server for plaintext listeners: the
// "lean" server. net/http's server parses every request head again after
// the strict check has (strict.go), reads in the background while each
// handler runs to notice a client that goes away (a goroutine switch,
// two deadline changes and an empty read per request), and holds 8 KiB of
// buffers per idle connection. The lean server builds the *http.Request
// from the strict check's own parse, watches for a departed client only
// when a handler has run for watchDelay, and holds no buffer while a
// connection idles. It keeps net/http's contract with handlers: the
// request's context ends when the client goes or the handler returns,
// the ResponseWriter implements Flusher, Hijacker and the
// ResponseController methods, and the server's timeouts mean what they
// mean there. TLS and h2c listeners stay on net/http's server.
//
// Where it differs on purpose: it does not sniff a Content-Type for a
// response without one (a gateway should not invent one for an upstream),
// it computes a Content-Length for responses of up to 4 KiB that end
// before a flush (net/http: 2 KiB), and it closes the connection after a
// request whose body framing failed.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"torii/internal/reqctx"
	"torii/internal/request"
)

// leanBufSize is the size of the read and write buffers, taken from
// pools while a request is in progress. A request head that does not fit
// grows its connection's read buffer up to the head limit.
const leanBufSize = 4096

// watchDelay is how long a handler runs, at least, before the server
// starts watching its connection for the client going away: between one
// and two watchDelays. Shorter handlers (nearly all) never pay for the
// watch, nor for a timer update: the connection's timer is left running
// from request to request and ticks every watchDelay while requests
// keep coming, so a busy connection costs one timer update per tick
// rather than two per request.
const watchDelay = 50 * time.Millisecond

// maxDrain is how much of a request body the handler left unread is read
// and discarded so the connection can serve the next request; a longer
// rest closes the connection (net/http: 256 KiB as well).
const maxDrain = 256 << 10

var (
	leanReadPool  = sync.Pool{New: func() any { return new([leanBufSize]byte) }}
	leanWritePool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, leanBufSize) }}
)

// aLongTimeAgo is a deadline in the past: it makes a blocked read return
// at once.
var aLongTimeAgo = time.Unix(1, 0)

// Connection states, for Shutdown.
const (
	connActive int32 = iota // reading or serving a request
	connIdle                // waiting for the first byte of a request
	connDone                // told to close by Shutdown while idle
)

// leanServer is one listener served by the lean server.
type leanServer struct {
	srv       *http.Server
	ln        net.Listener
	handler   http.Handler
	max       int64
	headLimit int
	metrics   *Recorder
	logger    interface {
		Debug(msg string, args ...any)
	}
	baseCtx context.Context

	open    atomic.Int64 // open connections, hijacked ones included
	closing atomic.Bool
	done    chan struct{} // closed by shutdown and close

	mu     sync.Mutex
	conns  map[*leanConn]struct{} // not hijacked
	active sync.WaitGroup         // one per connection in conns
	once   sync.Once
}

func newLeanServer(srv *http.Server, ln net.Listener, o Options) *leanServer {
	s := &leanServer{
		srv:       srv,
		ln:        ln,
		handler:   srv.Handler,
		max:       int64(o.MaxConnections),
		headLimit: srv.MaxHeaderBytes,
		metrics:   o.Metrics,
		done:      make(chan struct{}),
		conns:     map[*leanConn]struct{}{},
	}
	if o.Logger != nil {
		s.logger = o.Logger
	}
	if s.handler == nil {
		s.handler = http.DefaultServeMux
	}
	if s.headLimit <= 0 {
		s.headLimit = http.DefaultMaxHeaderBytes
	}
	s.baseCtx = context.WithValue(context.Background(), http.ServerContextKey, srv)
	return s
}

// serve accepts connections until the listener fails or the server stops.
func (s *leanServer) serve() error {
	var delay time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return http.ErrServerClosed
			}
			var te interface{ Temporary() bool }
			if errors.As(err, &te) && te.Temporary() {
				// Out of file descriptors and the like: back off as
				// net/http does, up to a second.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				select {
				case <-time.After(delay):
				case <-s.done:
				}
				continue
			}
			return err
		}
		delay = 0
		if s.max > 0 && s.open.Load() >= s.max {
			// Counted before the close: a client that sees the close can
			// already read the count.
			s.metrics.connRejected()
			c.Close()
			continue
		}
		lc := &leanConn{s: s, rwc: c}
		s.mu.Lock()
		if s.closing.Load() {
			s.mu.Unlock()
			c.Close()
			return http.ErrServerClosed
		}
		s.open.Add(1)
		s.metrics.connOpened()
		s.conns[lc] = struct{}{}
		s.active.Add(1)
		s.mu.Unlock()
		go lc.serve()
	}
}

// stop refuses new connections and tells idle ones to close.
func (s *leanServer) stop() {
	s.once.Do(func() {
		s.mu.Lock()
		s.closing.Store(true)
		close(s.done)
		s.mu.Unlock()
		s.ln.Close()
	})
	s.mu.Lock()
	for c := range s.conns {
		if c.state.CompareAndSwap(connIdle, connDone) || c.state.Load() == connDone {
			c.rwc.SetReadDeadline(aLongTimeAgo)
		}
	}
	s.mu.Unlock()
}

// shutdown stops the server and waits for its connections to finish
// their requests and close, or for ctx to end.
func (s *leanServer) shutdown(ctx context.Context) error {
	s.stop()
	drained := make(chan struct{})
	go func() {
		s.active.Wait()
		close(drained)
	}()
	// A connection that was between a read and its idle mark when stop
	// looked is told again.
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-drained:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			s.stop()
		}
	}
}

// close stops the server and closes every connection at once.
func (s *leanServer) close() error {
	s.stop()
	s.mu.Lock()
	for c := range s.conns {
		c.rwc.Close()
		c.watchMu.Lock()
		if c.inHandler && c.reqCtx != nil {
			c.reqCtx.Cancel(nil)
		}
		c.watchMu.Unlock()
	}
	s.mu.Unlock()
	return nil
}

// leanConn is one client connection, served by one goroutine.
type leanConn struct {
	s     *leanServer
	rwc   net.Conn
	raw   syscall.RawConn // nil: reads hold a buffer while they wait
	state atomic.Int32

	// buf[r:w] are bytes read and not yet used; buf is nil while nothing
	// is buffered between requests.
	buf  []byte
	r, w int
	own  bool // buf was grown here, not taken from leanReadPool

	bw *bufio.Writer // while a response is written; nil between requests

	header http.Header // the last response's header map, cleared for the next

	remote string
	// ctx is the parent of every request's context: never canceled
	// itself, so a request's context costs no registration with it. The
	// request's own is canceled when its handler returns, its client
	// goes, or the server closes (reqCtx).
	ctx context.Context
	// headDeadline is the read deadline last set for a head; zero when
	// another deadline has replaced it.
	headDeadline time.Time

	// wmu orders an interim "100 Continue" (sent by the body's reader)
	// against the response head (written by the handler).
	wmu sync.Mutex

	// The watch for a client that goes away while a handler runs.
	watchMu   sync.Mutex
	watchT    *time.Timer
	timerSet  bool   // watchT will fire
	armSeq    uint64 // counts arms: which request the watch is for
	seenSeq   uint64 // armSeq at the watch timer's last tick
	inHandler bool
	armed     bool
	watching  bool
	watchDone chan struct{}
	peek      [1]byte
	peeked    bool
	gone      atomic.Bool
	reqCtx    *reqctx.Context // the request's, while its handler runs

	hijacked bool
	yield    bool        // yield before reading a head (yieldMaxProcs)
	broken   bool        // the connection cannot carry another request
	cur      *leanWriter // the response in progress, while its handler runs

	// The raw read's results (see fillRaw).
	rawFn  func(fd uintptr) bool
	rawN   int
	rawErr error
}

// serve serves the connection's requests until it closes.
func (c *leanConn) serve() {
	defer func() {
		if p := recover(); p != nil && p != http.ErrAbortHandler {
			c.s.logf("http: panic serving %s: %v\n%s", c.remote, p, debug.Stack())
		}
		if c.hijacked {
			return
		}
		c.disarm()
		if c.bw != nil && c.cur != nil && c.cur.headDone {
			// What the handler sent before it failed: the client sees a
			// body cut short. A head not complete yet is dropped.
			c.bw.Flush()
		}
		c.finish()
	}()
	c.remote = c.rwc.RemoteAddr().String()
	c.yield = runtime.GOMAXPROCS(0) <= yieldMaxProcs
	ctx := context.WithValue(c.s.baseCtx, http.LocalAddrContextKey, c.rwc.LocalAddr())
	c.ctx = request.WithPeer(ctx, c.remote)
	if sc, ok := c.rwc.(syscall.Conn); ok && rawReads {
		if raw, err := sc.SyscallConn(); err == nil {
			c.raw = raw
			c.rawFn = c.readRaw
		}
	}
	srv := c.s.srv
	for first := true; ; first = false {
		// The first head must come within ReadHeaderTimeout; a later one
		// within IdleTimeout, and then whole within ReadHeaderTimeout of
		// its first byte. The deadline is set before the idle mark, so
		// the one stop sets for an idle connection stands.
		if d := c.headTimeout(first); d > 0 {
			c.setHeadDeadline(d)
		}
		c.state.Store(connIdle)
		if c.s.closing.Load() {
			return
		}
		c.releaseIdle()
		if c.yield && !first && c.r == c.w {
			// See yieldMaxProcs.
			runtime.Gosched()
		}
		h, n, err := c.readHead(first)
		if err != nil {
			if n < 0 {
				c.refuse(err)
			}
			return
		}
		x, err := c.newRequest(h, n)
		if err != nil {
			c.refuse(err)
			return
		}
		req := x.req
		if req.ContentLength != 0 {
			// The body's deadline; a request without one reads nothing
			// more until the next head, which sets its own.
			var t time.Time
			if d := srv.ReadTimeout; d > 0 {
				t = time.Now().Add(d)
			}
			c.rwc.SetReadDeadline(t)
			c.headDeadline = time.Time{}
		}
		if d := srv.WriteTimeout; d > 0 {
			c.rwc.SetWriteDeadline(time.Now().Add(d))
		}
		if !c.serveRequest(x) {
			return
		}
	}
}

// serveRequest runs the handler for one request and completes its
// response; false means the connection must close.
func (c *leanConn) serveRequest(x *leanExchange) bool {
	ctx := &x.ctx
	defer ctx.Cancel(nil)
	req, w := x.req, &x.w
	c.watchMu.Lock()
	c.reqCtx = ctx
	c.inHandler = true
	c.watchMu.Unlock()
	if x.body.done {
		c.arm()
	}
	h := c.s.handler
	if req.Method == http.MethodOptions && req.RequestURI == "*" {
		h = optionsStar
	}
	c.cur = w
	h.ServeHTTP(w, req)
	c.disarm()
	if c.hijacked {
		return false
	}
	x.body.seal()
	c.cur = nil
	ok := w.finish()
	if len(w.header) <= reuseHeaderMax {
		// A handler must not use its ResponseWriter once it returns (as
		// http.ResponseWriter says), so the header map can serve the
		// connection's next response: two allocations fewer a request.
		clear(w.header)
		c.header = w.header
	}
	if !ok || w.closeAfter || c.broken || c.gone.Load() || c.s.closing.Load() {
		return false
	}
	// A response that went out before the handler returned said nothing
	// about the body it left; read it now, or close.
	return x.body.done && x.body.err == nil || x.body.drain()
}

// setHeadDeadline sets the read deadline for the next head, d from now.
// A deadline set less than a hundredth of d ago (d of 10s or more) is
// left as it is: on a busy keep-alive connection that saves a timer
// update per request, and the timeout ends at most 1 % early.
func (c *leanConn) setHeadDeadline(d time.Duration) {
	t := time.Now().Add(d)
	if d >= 10*time.Second && !c.headDeadline.IsZero() && t.Sub(c.headDeadline) < d/100 {
		return
	}
	c.rwc.SetReadDeadline(t)
	c.headDeadline = t
}

// optionsStar answers "OPTIONS *" (RFC 9110 §9.3.7) with an empty 200, as
// net/http's server does, rather than routing it.
var optionsStar = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Length", "0")
	if r.ContentLength != 0 {
		io.Copy(io.Discard, io.LimitReader(r.Body, 4<<10))
	}
})

// headTimeout is the read deadline while waiting for a head.
func (c *leanConn) headTimeout(first bool) time.Duration {
	srv := c.s.srv
	if !first {
		if d := srv.IdleTimeout; d > 0 {
			return d
		}
	}
	if d := srv.ReadHeaderTimeout; d > 0 {
		return d
	}
	return srv.ReadTimeout
}

// finish closes the connection and gives back its buffers.
func (c *leanConn) finish() {
	c.rwc.Close()
	c.watchMu.Lock()
	if c.watchT != nil {
		c.watchT.Stop()
		c.timerSet = false
	}
	c.watchMu.Unlock()
	c.releaseBuffers()
	s := c.s
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.open.Add(-1)
	s.metrics.connClosed()
	s.active.Done()
}

// releaseIdle gives the read buffer back when nothing is buffered, so an
// idle connection holds none.
func (c *leanConn) releaseIdle() {
	if c.r == c.w && c.buf != nil {
		c.putBuf()
	}
}

func (c *leanConn) releaseBuffers() {
	if c.buf != nil {
		c.putBuf()
	}
	if c.bw != nil {
		c.bw.Reset(nil)
		leanWritePool.Put(c.bw)
		c.bw = nil
	}
}

func (c *leanConn) putBuf() {
	if !c.own {
		leanReadPool.Put((*[leanBufSize]byte)(c.buf[:leanBufSize]))
	}
	c.buf, c.r, c.w, c.own = nil, 0, 0, false
}

// ensureBuf gives the connection a read buffer.
func (c *leanConn) ensureBuf() {
	if c.buf == nil {
		c.buf = leanReadPool.Get().(*[leanBufSize]byte)[:]
		c.r, c.w, c.own = 0, 0, false
	}
}

// fill reads more bytes into the buffer, making room first. It returns
// the number read.
func (c *leanConn) fill() (int, error) {
	if c.buf == nil && c.raw != nil {
		return c.fillRaw()
	}
	c.ensureBuf()
	if c.r > 0 {
		c.w = copy(c.buf, c.buf[c.r:c.w])
		c.r = 0
	}
	if c.w == len(c.buf) {
		nb := make([]byte, 2*len(c.buf))
		copy(nb, c.buf[:c.w])
		if !c.own {
			leanReadPool.Put((*[leanBufSize]byte)(c.buf[:leanBufSize]))
		}
		c.buf, c.own = nb, true
	}
	n, err := c.rwc.Read(c.buf[c.w:])
	c.w += n
	return n, err
}

// fillRaw reads with no buffer held while it waits: the buffer is taken
// from the pool when the socket has bytes, and given back when it has
// none and the read parks in the poller.
func (c *leanConn) fillRaw() (int, error) {
	c.rawN, c.rawErr = 0, nil
	if err := c.raw.Read(c.rawFn); err != nil {
		return 0, err
	}
	return c.rawN, c.rawErr
}

// logf writes to the server's error log, as net/http does.
func (s *leanServer) logf(format string, args ...any) {
	if s.srv.ErrorLog != nil {
		s.srv.ErrorLog.Printf(format, args...)
	}
}

// readHead reads until the buffer holds a whole head that passes the
// strict check, and returns it with its length. With an error, n < 0
// means the request is refused (answer it), n == 0 that the connection
// closes quietly (EOF, timeout, shutdown).
func (c *leanConn) readHead(first bool) (head, int, error) {
	// timed: the head's deadline is set (the first head's was set when
	// the connection was accepted).
	idle, timed := true, first
	for {
		if c.w > c.r {
			if idle {
				// The first byte of a request: the connection is busy.
				idle = false
				if !c.state.CompareAndSwap(connIdle, connActive) {
					return head{}, 0, http.ErrServerClosed
				}
			}
			h, n, err := checkHead(c.buf[c.r:c.w], c.s.headLimit)
			if err != nil {
				return head{}, -1, err
			}
			if n > 0 && !h.chunked || n > 0 && h.expectContinue {
				return h, n, nil
			}
			if n > 0 {
				// As the strict check does for net/http: a chunked head
				// waits for its first chunk-size line, so a malformed one
				// is refused before the handler runs.
				_, m, err := parseChunkLine(c.buf[c.r+n : c.w])
				if err != nil {
					return head{}, -1, err
				}
				if m > 0 {
					return h, n, nil
				}
				if c.w-c.r-n > maxChunkLine {
					return head{}, -1, errChunkSize
				}
			}
		}
		if !idle && !timed {
			// Part of a head is here: the rest is due within
			// ReadHeaderTimeout. A head that arrives whole, as nearly
			// all do, never needs this deadline (a timer update saved
			// per request); its connection keeps the idle one.
			timed = true
			if d := c.s.srv.ReadHeaderTimeout; d > 0 {
				c.rwc.SetReadDeadline(time.Now().Add(d))
				c.headDeadline = time.Time{}
			}
		}
		// A head cut short by EOF or the header timeout closes the
		// connection without an answer, as net/http does.
		if n, err := c.fill(); n == 0 && err != nil {
			return head{}, 0, err
		}
	}
}

// refuse answers a request the strict check or the request parser
// refused, and the connection closes.
func (c *leanConn) refuse(err error) {
	status := http.StatusBadRequest
	var fe *FramingError
	switch {
	case errors.Is(err, errTooLarge):
		status = http.StatusRequestHeaderFieldsTooLarge
		c.s.metrics.requestRejected(ReasonHeaderTooLarge)
	case errors.As(err, &fe):
		c.s.metrics.requestRejected(ReasonFraming)
	case errors.Is(err, errExpectation):
		status = http.StatusExpectationFailed
	}
	if c.s.logger != nil {
		c.s.logger.Debug("request refused", "remote", c.remote, "err", err)
	}
	if c.bw == nil {
		c.bw = leanWritePool.Get().(*bufio.Writer)
		c.bw.Reset(c.rwc)
	}
	text := http.StatusText(status)
	fmt.Fprintf(c.bw, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%d %s",
		status, text, len(text)+4, status, text)
	c.bw.Flush()
}

// arm starts the client watch's delay; the request's body has been read
// (or it has none).
func (c *leanConn) arm() {
	if c.w > c.r {
		return // the client has sent more already: it is there
	}
	c.watchMu.Lock()
	if !c.inHandler || c.armed {
		c.watchMu.Unlock()
		return
	}
	c.armed = true
	c.armSeq++
	if !c.timerSet {
		// From rest: this request is watched at the first tick.
		c.timerSet = true
		c.seenSeq = c.armSeq
		if c.watchT == nil {
			c.watchT = time.AfterFunc(watchDelay, c.watch)
		} else {
			c.watchT.Reset(watchDelay)
		}
	}
	c.watchMu.Unlock()
}

// watch runs when a handler has run for watchDelay: it reads from the
// connection until the handler ends (disarm) or the client goes away,
// which cancels the request's context. A byte the client sends meanwhile
// (a pipelined request) is kept for the next head.
func (c *leanConn) watch() {
	c.watchMu.Lock()
	if !c.armed || c.watching {
		c.timerSet = false // no handler to watch: rest until the next arm
		c.watchMu.Unlock()
		return
	}
	if c.armSeq != c.seenSeq {
		// This handler began after the last tick: look again at the
		// next.
		c.seenSeq = c.armSeq
		c.watchT.Reset(watchDelay)
		c.watchMu.Unlock()
		return
	}
	c.timerSet = false
	c.watching = true
	c.headDeadline = time.Time{}
	c.watchDone = make(chan struct{})
	// The handler's read deadlines were for its request's body.
	c.rwc.SetReadDeadline(time.Time{})
	c.watchMu.Unlock()
	n, err := c.rwc.Read(c.peek[:])
	if n == 1 {
		c.peeked = true
	} else if err != nil && !isTimeout(err) {
		c.gone.Store(true)
		if c.reqCtx != nil {
			c.reqCtx.Cancel(nil)
		}
	}
	close(c.watchDone)
}

// disarm ends the watch; it returns when the watch's read has.
func (c *leanConn) disarm() {
	c.watchMu.Lock()
	c.inHandler = false
	watching := c.armed && c.watching
	c.armed, c.watching = false, false // the timer runs on: watch finds nothing armed
	if !watching {
		// The request's context, and through it its exchange, is not
		// kept while the connection idles.
		c.reqCtx = nil
	}
	c.watchMu.Unlock()
	if watching {
		c.rwc.SetReadDeadline(aLongTimeAgo)
		<-c.watchDone
		c.rwc.SetReadDeadline(time.Time{})
		c.headDeadline = time.Time{}
		c.reqCtx = nil // the watch, its only other reader, is done
	}
	if c.peeked {
		c.peeked = false
		c.ensureBuf()
		if c.r == c.w {
			c.r, c.w = 0, 0
		}
		if c.w == len(c.buf) {
			c.fillRoom()
		}
		c.buf[c.w] = c.peek[0]
		c.w++
	}
}

// fillRoom makes room for one more byte at the end of the buffer.
func (c *leanConn) fillRoom() {
	if c.r > 0 {
		c.w = copy(c.buf, c.buf[c.r:c.w])
		c.r = 0
		return
	}
	nb := make([]byte, 2*len(c.buf))
	copy(nb, c.buf[:c.w])
	if !c.own {
		leanReadPool.Put((*[leanBufSize]byte)(c.buf[:leanBufSize]))
	}
	c.buf, c.own = nb, true
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// reuseHeaderMax is the most fields a response header map may have held
// to be cleared and used again for the connection's next response; a
// larger one is left to the garbage collector, so an idle connection
// keeps no more than a small map.
const reuseHeaderMax = 16

// yieldMaxProcs is the most Ps at which a connection yields once before
// it reads the next request head. Its client is usually still reading
// the last response, so the read would find nothing: an empty read
// system call, a park in the poller and a wake-up later. Yielding first
// lets the other connections' goroutines run, and by then the request has
// mostly arrived: on one P under load the empty reads went from 0.9 per
// request to almost none (strace) and the CPU per request fell by 5 %
// (bench/ab.sh). A yielded goroutine goes to the global run queue, a
// lock every P shares, so with more Ps it is not done.
const yieldMaxProcs = 2
