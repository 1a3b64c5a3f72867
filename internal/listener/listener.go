// Package listener is the front door of every data-plane listener: the
// path of a client connection from accept to net/http.
//
//	accept -> connection limit -> TLS (optional) -> HTTP/2 (ALPN "h2", or
//	the h2c preface) or HTTP/1.x through the strict framing check
//
// Go's net/http accepts ambiguous HTTP/1.1 framing that RFC 9112 §6 tells a
// gateway to refuse (it is how requests are smuggled past a proxy), so
// every HTTP/1.x request's raw bytes are checked before net/http parses
// them (see strictConn). That needs the plaintext, so TLS is terminated
// here rather than by net/http; HTTP/2 connections are handed to net/http
// as *tls.Conn and served by golang.org/x/net/http2 through
// http2.ConfigureServer, so http.Server tracks them for Shutdown.
package listener

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
)

// DefaultHandshakeTimeout bounds a TLS handshake when neither
// Options.HandshakeTimeout nor the server's ReadHeaderTimeout is set.
const DefaultHandshakeTimeout = 10 * time.Second

// DefaultMaxReadFrameSize is the largest HTTP/2 frame NewHTTP2 lets a client
// send: 64 KiB, four times the protocol's default (RFC 9113 §4.2), which
// bounds the read buffer of each connection.
const DefaultMaxReadFrameSize = 64 << 10

// Options configure Serve.
type Options struct {
	// TLS, when set, terminates TLS with this configuration (see
	// ServerTLS); Serve sets its NextProtos. Nil: plaintext.
	TLS *tls.Config
	// HTTP2 is the HTTP/2 server (see NewHTTP2): over TLS by ALPN "h2",
	// and in cleartext with H2C. Nil: HTTP/2 off, HTTP/1.x only. Give each
	// Serve call its own: http2.ConfigureServer keeps the server's
	// connection state in it.
	HTTP2 *http2.Server
	// H2C makes a plaintext listener also accept HTTP/2 with prior
	// knowledge (RFC 9113 §3.3). Needs HTTP2; ignored with TLS.
	H2C bool
	// MaxConnections caps the open client connections; one more is
	// accepted and closed at once, and counted. Zero or less: no cap.
	MaxConnections int
	// HandshakeTimeout bounds the TLS handshake. Default: the server's
	// ReadHeaderTimeout, or DefaultHandshakeTimeout when that is zero.
	HandshakeTimeout time.Duration
	// Metrics records the listener's metrics. Nil: none.
	Metrics *Recorder
	// Logger receives debug logs of refused connections and requests.
	// Nil: none.
	Logger *slog.Logger
	// StdlibHTTP1 serves HTTP/1.x on a plaintext listener with net/http's
	// server behind the strict check, as TLS and h2c listeners are,
	// rather than with torii's own (lean.go).
	StdlibHTTP1 bool
}

// NewHTTP2 returns torii's HTTP/2 server settings: at most maxStreams
// concurrent streams per connection (RFC 9113 §5.1.2), client frames up to
// DefaultMaxReadFrameSize, and protocol errors counted in rec. The idle
// timeout and the header list size come from the http.Server (IdleTimeout
// and MaxHeaderBytes).
func NewHTTP2(maxStreams int, rec *Recorder) *http2.Server {
	return &http2.Server{
		MaxConcurrentStreams: uint32(max(maxStreams, 1)),
		MaxReadFrameSize:     DefaultMaxReadFrameSize,
		CountError:           rec.http2Error,
	}
}

// Server serves one data-plane listener: NewServer, then Serve, then
// Shutdown or Close.
type Server struct {
	srv  *http.Server
	ln   net.Listener
	o    Options
	lean *leanServer // nil: net/http serves
}

// NewServer returns a server of srv.Handler on ln with o. Plaintext
// listeners without H2C are served by torii's own HTTP/1.1 server (see
// lean.go) unless o.StdlibHTTP1 is set; TLS and h2c listeners by
// net/http's. Both take srv's Handler, ReadHeaderTimeout, ReadTimeout,
// WriteTimeout, IdleTimeout, MaxHeaderBytes and ErrorLog.
func NewServer(srv *http.Server, ln net.Listener, o Options) *Server {
	s := &Server{srv: srv, ln: ln, o: o}
	if o.TLS == nil && !o.H2C && !o.StdlibHTTP1 {
		s.lean = newLeanServer(srv, ln, o)
	}
	return s
}

// Serve serves until the listener fails or Shutdown or Close is called,
// and returns like http.Server.Serve (http.ErrServerClosed after those).
// Call it once.
func (s *Server) Serve() error {
	if s.lean != nil {
		return s.lean.serve()
	}
	return serveStdlib(s.srv, s.ln, s.o)
}

// Shutdown stops the server gracefully: the listener closes (new
// connections are refused), idle connections close, and in-flight
// requests finish (HTTP/2 clients get GOAWAY) before it returns, or ctx
// ends first and its error is returned; connections still open stay open
// until Close.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.lean != nil {
		return s.lean.shutdown(ctx)
	}
	return s.srv.Shutdown(ctx)
}

// Close closes the listener and every connection at once, hijacked ones
// excepted.
func (s *Server) Close() error {
	if s.lean != nil {
		return s.lean.close()
	}
	return s.srv.Close()
}

// Lean reports whether torii's own HTTP/1.1 server serves the listener.
func (s *Server) Lean() bool { return s.lean != nil }

// serveStdlib serves srv on ln with net/http's server, behind the strict
// check. It configures srv for HTTP/2 (http2.ConfigureServer) and sets
// srv.Protocols. Shutdown drains HTTP/1 and HTTP/2 connections alike: new
// connections are refused, in-flight requests finish, HTTP/2 clients get
// GOAWAY.
//
// Request.TLS is set for requests over TLS, both HTTP/1.x and HTTP/2.
func serveStdlib(srv *http.Server, ln net.Listener, o Options) error {
	var protos http.Protocols
	protos.SetHTTP1(true)
	if o.HTTP2 != nil {
		if err := http2.ConfigureServer(srv, o.HTTP2); err != nil {
			return fmt.Errorf("serve: configure HTTP/2: %w", err)
		}
		protos.SetHTTP2(o.TLS != nil)
		protos.SetUnencryptedHTTP2(o.H2C && o.TLS == nil)
	} else {
		// An empty, non-nil map keeps net/http's bundled HTTP/2 off.
		srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
	}
	srv.Protocols = &protos

	s := &server{
		ln:        ln,
		max:       int64(o.MaxConnections),
		h2c:       protos.UnencryptedHTTP2(),
		headLimit: srv.MaxHeaderBytes,
		metrics:   o.Metrics,
		logger:    o.Logger,
		timeout:   o.HandshakeTimeout,
	}
	if s.headLimit <= 0 {
		s.headLimit = http.DefaultMaxHeaderBytes
	}
	if s.timeout <= 0 {
		s.timeout = srv.ReadHeaderTimeout
	}
	if s.timeout <= 0 {
		s.timeout = DefaultHandshakeTimeout
	}
	if o.TLS != nil {
		s.tls = o.TLS.Clone()
		s.tls.NextProtos = []string{"http/1.1"}
		if o.HTTP2 != nil {
			s.tls.NextProtos = []string{http2.NextProtoTLS, "http/1.1"}
		}
	}
	s.q = newConnQueue(ln)

	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.acceptLoop()
	}()
	err := srv.Serve(s.q)
	s.q.Close()
	s.wg.Wait()
	return err
}

// server is one Serve call's state.
type server struct {
	ln        net.Listener
	q         *connQueue
	tls       *tls.Config
	h2c       bool
	max       int64
	headLimit int
	timeout   time.Duration
	metrics   *Recorder
	logger    *slog.Logger

	open atomic.Int64 // open client connections
	wg   sync.WaitGroup
}

// acceptLoop accepts connections from ln and queues them for net/http
// until ln fails or is closed. It never reads from a connection (a PROXY
// header or a TLS handshake is read in the connection's own goroutine), so
// a slow client cannot stall it.
func (s *server) acceptLoop() {
	var delay time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			var te interface{ Temporary() bool }
			if errors.As(err, &te) && te.Temporary() && !s.q.closed() {
				// Out of file descriptors and the like: back off as
				// net/http does, up to a second.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			s.q.fail(err)
			return
		}
		delay = 0
		if s.max > 0 && s.open.Load() >= s.max {
			// Load shedding: closing at once costs less than queueing, and
			// the client can retry elsewhere.
			// Counted before the close: a client that sees the close can
			// already read the count.
			s.metrics.connRejected()
			c.Close()
			continue
		}
		s.open.Add(1)
		s.metrics.connOpened()
		cc := &countedConn{Conn: c, s: s}
		if s.tls == nil {
			s.q.push(newStrictConn(cc, s.h2c, s.headLimit, s.metrics, s.logger))
			continue
		}
		s.wg.Add(1)
		go s.handshake(cc)
	}
}

// handshake runs the TLS handshake of c, then queues it: as the *tls.Conn
// itself when the client chose HTTP/2 by ALPN (net/http hands it to the
// HTTP/2 server), otherwise behind the strict HTTP/1.x check.
func (s *server) handshake(c net.Conn) {
	defer s.wg.Done()
	tc := tls.Server(c, s.tls)
	ctx, cancel := context.WithTimeout(s.q.ctx, s.timeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		tc.Close()
		if s.logger != nil {
			s.logger.Debug("TLS handshake failed", "remote", c.RemoteAddr().String(), "err", err)
		}
		return
	}
	if tc.ConnectionState().NegotiatedProtocol == http2.NextProtoTLS {
		s.q.push(tc)
		return
	}
	s.q.push(strictTLSConn{newStrictConn(tc, false, s.headLimit, s.metrics, s.logger), tc})
}

// countedConn is a client connection counted against MaxConnections and
// in the open-connections gauge until it is closed.
type countedConn struct {
	net.Conn
	s    *server
	once sync.Once
}

// Close closes the connection and releases its slot.
func (c *countedConn) Close() error {
	c.once.Do(func() {
		c.s.open.Add(-1)
		c.s.metrics.connClosed()
	})
	return c.Conn.Close()
}

// connQueue is the net.Listener http.Server accepts from: it yields the
// connections the accept loop has prepared. Closing it closes the real
// listener, so http.Server.Shutdown and Close refuse new connections.
type connQueue struct {
	ln     net.Listener
	conns  chan net.Conn
	done   chan struct{}
	failed chan struct{}
	err    error // why the real listener failed; set before failed closes

	// ctx is canceled on Close; it aborts TLS handshakes in progress.
	ctx    context.Context
	cancel context.CancelFunc

	closeOnce sync.Once
	failOnce  sync.Once
}

func newConnQueue(ln net.Listener) *connQueue {
	ctx, cancel := context.WithCancel(context.Background())
	return &connQueue{
		ln:     ln,
		conns:  make(chan net.Conn),
		done:   make(chan struct{}),
		failed: make(chan struct{}),
		ctx:    ctx,
		cancel: cancel,
	}
}

// Accept returns the next prepared connection.
func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.conns:
		return c, nil
	case <-q.failed:
		return nil, q.err
	case <-q.done:
		return nil, net.ErrClosed
	}
}

// Close closes the real listener and aborts handshakes in progress.
func (q *connQueue) Close() error {
	var err error
	q.closeOnce.Do(func() {
		close(q.done)
		q.cancel()
		err = q.ln.Close()
	})
	return err
}

// Addr returns the real listener's address.
func (q *connQueue) Addr() net.Addr { return q.ln.Addr() }

func (q *connQueue) closed() bool {
	select {
	case <-q.done:
		return true
	default:
		return false
	}
}

// push hands c to Accept, or closes it when the queue is closed.
func (q *connQueue) push(c net.Conn) {
	select {
	case q.conns <- c:
	case <-q.done:
		c.Close()
	}
}

// fail makes Accept return err from now on.
func (q *connQueue) fail(err error) {
	q.failOnce.Do(func() {
		q.err = err
		close(q.failed)
	})
}
