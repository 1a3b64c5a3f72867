package listener

import (
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
)

// phase is where a strictConn is in the client's byte stream.
type phase uint8

const (
	phaseStart     phase = iota // nothing read yet: maybe the h2c preface
	phaseHead                   // a request head
	phaseBody                   // remain bytes of a Content-Length body
	phaseChunkSize              // a chunk-size line
	phaseChunkData              // remain bytes of chunk data
	phaseChunkEnd               // the CRLF after chunk data
	phaseTrailer                // the trailer section after the last chunk
	phaseTunnel                 // after an Upgrade or CONNECT: wait for the response
	phaseRaw                    // pass bytes through unchecked (h2c, upgraded)
	phaseRejected               // serve the rejection stream, then EOF
	phaseBroken                 // refused in a body already handed on: error, then EOF
)

// h2Preface is the HTTP/2 client connection preface (RFC 9113 §3.4).
const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// strictConn checks the HTTP/1.1 framing of every request a client sends
// on one connection (keep-alive and pipelined requests too) before
// net/http reads it. It sits in the connection's Read path: bytes of a
// request head are held back until the whole head has passed the check
// (for a chunked request, until its first chunk-size line has too); body
// bytes pass as they arrive while the parser follows the framing to find
// where the next head starts.
//
// A refused request never reaches net/http: in its place Read returns a
// short malformed request line, which net/http answers with "400 Bad
// Request" and "Connection: close", in order after any response still in
// progress, and then it closes the connection. An oversized head is
// replaced the same way by a stream that trips net/http's own header limit
// (431). Letting net/http write the refusal keeps it correctly sequenced
// after the response to an earlier pipelined request.
//
// Read blocks on nothing but the socket, so the read deadlines net/http
// sets (ReadHeaderTimeout, IdleTimeout, and the abort of its background
// read) keep working.
type strictConn struct {
	net.Conn
	headLimit int // largest head or trailer section, bytes
	metrics   *Recorder
	logger    *slog.Logger

	// Read state, used by one reading goroutine at a time.
	phase    phase
	buf      []byte // bytes read and not yet returned
	ready    int    // buf[:ready] are cleared to return
	parsed   int    // buf[:parsed] are checked; buf[heldFrom:parsed] held
	heldFrom int    // start of a held chunked head (when holding)
	holding  bool   // a chunked head is held until its first chunk line
	scanned  int    // where scanSection resumes within buf[parsed:]
	remain   int64  // bytes left in the current body or chunk
	consumed int64  // bytes returned from buf so far
	reject   io.Reader
	err      error
	// tunnel is set from the head of an Upgrade or CONNECT request until
	// its response is known; tunnelEnd is the absolute stream offset where
	// that head ends, and armed reports that the sniffer runs.
	tunnel    bool
	tunnelEnd int64
	armed     bool

	// sniffing is set while the response to an Upgrade or CONNECT request
	// is awaited; Write then reads its status line.
	sniffing atomic.Bool
	// mu guards the response sniffer below, written by Write and read by
	// Read.
	mu       sync.Mutex
	connect  bool // the request was a CONNECT (2xx switches protocols)
	decided  bool // the response's final status was seen
	upgraded bool // ... and it switches protocols
	status   [12]byte
	nstatus  int
	interim  bool // skipping an interim (1xx) response
	crlf     int  // progress through the interim response's CRLFCRLF
}

// strictTLSConn is a strictConn over TLS. Its ConnectionState method lets
// net/http fill Request.TLS although the conn is not a *tls.Conn.
type strictTLSConn struct {
	*strictConn
	tls *tls.Conn
}

// ConnectionState returns the TLS state of the connection.
func (c strictTLSConn) ConnectionState() tls.ConnectionState { return c.tls.ConnectionState() }

func newStrictConn(c net.Conn, h2c bool, headLimit int, m *Recorder, logger *slog.Logger) *strictConn {
	p := phaseHead
	if h2c {
		p = phaseStart
	}
	return &strictConn{Conn: c, headLimit: headLimit, metrics: m, logger: logger, phase: p}
}

// Read returns the connection's bytes once the strict check has cleared
// them.
func (c *strictConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if c.phase == phaseHead && len(c.buf) == 0 && len(p) >= minDirectRead {
		n, err := c.readDirect(p)
		if n > 0 || err != nil {
			return n, err
		}
	}
	for {
		if c.ready > 0 {
			n := copy(p, c.buf[:c.ready])
			c.consume(n)
			return n, nil
		}
		switch c.phase {
		case phaseRejected:
			return c.reject.Read(p)
		case phaseBroken:
			err := c.err
			c.err = io.EOF
			return 0, err
		case phaseRaw:
			if len(c.buf) > 0 {
				n := copy(p, c.buf)
				c.buf = c.buf[:copy(c.buf, c.buf[n:])]
				return n, nil
			}
			return c.Conn.Read(p)
		case phaseBody, phaseChunkData:
			if len(c.buf) == 0 {
				// Body bytes go straight to the caller, but never past
				// the end of the body: what follows is the next head.
				n, err := c.Conn.Read(p[:min(int64(len(p)), c.remain)])
				c.remain -= int64(n)
				if c.remain == 0 {
					c.bodyDone()
				}
				return n, err
			}
		}
		if c.advance() {
			continue
		}
		if err := c.fill(); err != nil {
			return 0, err
		}
	}
}

// minDirectRead is the smallest read readDirect serves: net/http reads a
// request head into its 4 KiB buffer; its 1-byte background read takes
// the buffered path.
const minDirectRead = 512

// readDirect reads the socket straight into p, net/http's own buffer,
// when a head is due and nothing is buffered: on a keep-alive connection
// one read usually brings one whole request head, which is then checked
// and returned in place, with no copy and no buffer of the connection's
// own. Bytes not cleared yet (a head split across reads, a held chunked
// head, whatever follows them) move into buf to wait for the rest.
// n == 0 with a nil error means Read carries on from buf.
func (c *strictConn) readDirect(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n == 0 {
		if err == nil {
			err = io.ErrNoProgress
		}
		return 0, err
	}
	own := c.buf // empty: nil or a buffer from bufPool
	c.buf = p[:n]
	c.advance()
	r := c.ready
	rest := c.buf[r:]
	if len(rest) > 0 && own == nil {
		own = getBuf()
	}
	c.buf = append(own, rest...)
	c.returned(r)
	c.dropBuf()
	return r, nil
}

// bufPool holds the 4 KiB read buffers of connections with bytes waiting
// for the check; an idle connection holds none.
var bufPool = sync.Pool{New: func() any { return new([bufSize]byte) }}

const bufSize = 4096

func getBuf() []byte { return bufPool.Get().(*[bufSize]byte)[:0] }

// dropBuf returns buf to bufPool when it is empty.
func (c *strictConn) dropBuf() {
	if c.buf == nil || len(c.buf) > 0 {
		return
	}
	if cap(c.buf) == bufSize {
		bufPool.Put((*[bufSize]byte)(c.buf[:bufSize]))
	}
	c.buf = nil
}

// consume drops n returned bytes from the front of buf.
func (c *strictConn) consume(n int) {
	c.buf = c.buf[:copy(c.buf, c.buf[n:])]
	c.returned(n)
	c.dropBuf()
}

// returned accounts for n bytes handed to net/http from the front of the
// stream.
func (c *strictConn) returned(n int) {
	c.ready -= n
	c.parsed -= n
	c.heldFrom -= n
	c.consumed += int64(n)
	if c.tunnel && !c.armed && c.consumed >= c.tunnelEnd {
		// The whole head is with net/http now, so every earlier response
		// has been written (net/http reads a head only after finishing
		// the previous response): what Write sees next answers it.
		c.armed = true
		c.mu.Lock()
		c.decided, c.upgraded, c.nstatus, c.interim, c.crlf = false, false, 0, false, 0
		c.mu.Unlock()
		c.sniffing.Store(true)
	}
}

// fill reads more bytes from the socket into buf.
func (c *strictConn) fill() error {
	if c.buf == nil {
		c.buf = getBuf()
	}
	if len(c.buf) == cap(c.buf) {
		c.buf = append(c.buf, make([]byte, cap(c.buf))...)[:len(c.buf)]
	}
	n, err := c.Conn.Read(c.buf[len(c.buf):cap(c.buf)])
	c.buf = c.buf[:len(c.buf)+n]
	if n > 0 {
		return nil
	}
	c.dropBuf()
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// advance runs the parser over the buffered bytes. It reports whether
// Read has something to do without reading the socket: bytes to return
// or a new phase.
func (c *strictConn) advance() bool {
	for {
		data := c.buf[c.parsed:]
		switch c.phase {
		case phaseStart:
			n := min(len(data), len(h2Preface))
			if string(data[:n]) != h2Preface[:n] {
				c.phase = phaseHead
				continue
			}
			if n < len(h2Preface) {
				return false
			}
			// RFC 9113 §3.3: prior knowledge; net/http reads the preface
			// and hands the connection to the HTTP/2 server.
			c.phase = phaseRaw
			return true

		case phaseHead:
			end, next, err := scanSection(data, c.scanned)
			c.scanned = next
			if err == nil && (end > c.headLimit || (end == 0 && len(data) > c.headLimit)) {
				err = errTooLarge
			}
			if err != nil {
				return c.refuse(err)
			}
			if end == 0 {
				return c.release()
			}
			h, err := parseHead(data[:end])
			if err != nil {
				return c.refuse(err)
			}
			if h.chunked && !h.expectContinue {
				// Hold the head until its first chunk line is checked, so
				// a bad one is refused before anything reaches net/http.
				// A client expecting "100 Continue" sends no body before
				// net/http answers, so its head cannot wait.
				c.holding, c.heldFrom = true, c.parsed
			}
			c.parsed += end
			c.scanned = 0
			if h.tunnel {
				c.tunnel, c.armed = true, false
				c.tunnelEnd = c.consumed + int64(c.parsed)
				c.mu.Lock()
				c.connect = h.method == "CONNECT"
				c.mu.Unlock()
			}
			switch {
			case h.chunked:
				c.phase = phaseChunkSize
			case h.contentLength > 0:
				c.phase, c.remain = phaseBody, h.contentLength
			default:
				c.endMessage()
			}

		case phaseBody, phaseChunkData:
			n := int(min(int64(len(data)), c.remain))
			if n == 0 {
				return c.release()
			}
			c.parsed += n
			c.remain -= int64(n)
			if c.remain == 0 {
				c.bodyDone()
			}

		case phaseChunkSize:
			size, n, err := parseChunkLine(data)
			if err != nil {
				return c.refuse(err)
			}
			if n == 0 {
				return c.release()
			}
			c.parsed += n
			c.holding = false
			if size == 0 {
				c.phase = phaseTrailer
			} else {
				c.phase, c.remain = phaseChunkData, size
			}

		case phaseChunkEnd:
			if len(data) > 0 && data[0] != '\r' || len(data) > 1 && data[1] != '\n' {
				return c.refuse(errChunkEnd)
			}
			if len(data) < 2 {
				return c.release()
			}
			c.parsed += 2
			c.phase = phaseChunkSize

		case phaseTrailer:
			end, next, err := scanSection(data, c.scanned)
			c.scanned = next
			if err == nil && (end > c.headLimit || (end == 0 && len(data) > c.headLimit)) {
				err = errTooLarge
			}
			if err == nil && end > 0 {
				err = checkTrailer(data[:end])
			}
			if err != nil {
				return c.refuse(err)
			}
			if end == 0 {
				return c.release()
			}
			c.parsed += end
			c.scanned = 0
			c.endMessage()

		case phaseTunnel:
			c.mu.Lock()
			decided, upgraded := c.decided, c.upgraded
			c.mu.Unlock()
			if !c.armed || !decided {
				// Bytes sent before the response are held, unchecked,
				// until the response says which protocol they are.
				if len(data) > c.headLimit {
					return c.refuse(errTooLarge)
				}
				return c.release()
			}
			c.tunnel, c.armed = false, false
			if upgraded {
				// Everything buffered is the new protocol's; phaseRaw
				// returns buf as it is.
				c.ready, c.parsed, c.heldFrom = 0, 0, 0
				c.phase = phaseRaw
				return true
			}
			c.phase = phaseHead

		default:
			return c.release()
		}
	}
}

// release marks the checked bytes returnable, except a held head, and
// reports whether there are any.
func (c *strictConn) release() bool {
	if c.holding {
		c.ready = c.heldFrom
	} else {
		c.ready = c.parsed
	}
	return c.ready > 0
}

// bodyDone moves on after the last byte of a body or a chunk.
func (c *strictConn) bodyDone() {
	if c.phase == phaseChunkData {
		c.phase = phaseChunkEnd
		return
	}
	c.endMessage()
}

// endMessage moves on after a whole request: to the next head, or to
// waiting for the response when the request may switch protocols.
func (c *strictConn) endMessage() {
	if c.tunnel {
		c.phase = phaseTunnel
		return
	}
	c.phase = phaseHead
}

// refuse counts and logs a refused request and switches Read to the
// refusal. Bytes of earlier requests already checked are still returned
// first; a held head and anything after it are dropped.
func (c *strictConn) refuse(err error) bool {
	reason := ReasonFraming
	if errors.Is(err, errTooLarge) {
		reason = ReasonHeaderTooLarge
	}
	c.metrics.requestRejected(reason)
	if c.logger != nil {
		c.logger.Debug("request refused by the strict framing check", "remote", c.RemoteAddr().String(), "err", err)
	}
	// The request's head is with net/http already unless it is the head
	// being parsed or a held chunked head.
	headGone := c.phase != phaseHead && !c.holding
	c.release()
	c.buf = c.buf[:c.ready]
	c.parsed, c.holding, c.scanned = c.ready, false, 0
	c.sniffing.Store(false)
	if headGone {
		// Its body read fails; net/http then closes the connection.
		c.phase, c.err = phaseBroken, err
		return true
	}
	c.phase = phaseRejected
	if reason == ReasonHeaderTooLarge {
		c.reject = tooLargeStream()
	} else {
		c.reject = badRequestStream()
	}
	return true
}

// badRequestStream replaces a refused request: a request line net/http
// cannot parse, which it answers with 400 and Connection: close.
func badRequestStream() io.Reader {
	return io.MultiReader(stringsReader("TORII-REFUSED-AMBIGUOUS-FRAMING\r\n\r\n"), eofReader{})
}

// tooLargeStream replaces an oversized head: a header line longer than
// any server limit, which net/http answers with 431 once it has read past
// its MaxHeaderBytes.
func tooLargeStream() io.Reader {
	return io.MultiReader(stringsReader("GET / HTTP/1.1\r\nX-Torii-Refused: "), fillReader('a'))
}

func stringsReader(s string) io.Reader { return &onceReader{s: s} }

type onceReader struct{ s string }

func (r *onceReader) Read(p []byte) (int, error) {
	if r.s == "" {
		return 0, io.EOF
	}
	n := copy(p, r.s)
	r.s = r.s[n:]
	return n, nil
}

// fillReader is an endless stream of one byte; net/http's read limit
// stops it.
type fillReader byte

func (b fillReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(b)
	}
	return len(p), nil
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// checkTrailer checks a trailer section (RFC 9112 §7.1.2) like the field
// lines of a head.
func checkTrailer(b []byte) error {
	for rest := b; len(rest) > 2; {
		var line []byte
		line, rest = cutLine(rest)
		if _, _, err := parseFieldLine(line); err != nil {
			return err
		}
	}
	return nil
}

// Write writes to the connection; while a protocol switch is possible it
// reads the response's status line on the way.
func (c *strictConn) Write(p []byte) (int, error) {
	if c.sniffing.Load() {
		c.sniff(p)
	}
	return c.Conn.Write(p)
}

// sniff follows the response written to an Upgrade or CONNECT request
// until its final status is known: 101 (for Upgrade) or 2xx (for CONNECT)
// switch protocols; anything else keeps HTTP/1.1. Interim 1xx responses
// (100, 103) are skipped to their empty line.
func (c *strictConn) sniff(p []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(p) > 0 && !c.decided {
		if c.interim {
			for len(p) > 0 && c.crlf < 4 {
				switch {
				case p[0] == "\r\n\r\n"[c.crlf]:
					c.crlf++
				case p[0] == '\r':
					c.crlf = 1
				default:
					c.crlf = 0
				}
				p = p[1:]
			}
			if c.crlf == 4 {
				c.interim, c.crlf, c.nstatus = false, 0, 0
			}
			continue
		}
		n := copy(c.status[c.nstatus:], p)
		c.nstatus += n
		p = p[n:]
		if c.nstatus < len(c.status) {
			return
		}
		// "HTTP/1.1 101": the status code is bytes 9 to 11.
		code := c.status[9:12]
		switch {
		case string(code) == "101":
			c.decided, c.upgraded = true, !c.connect
		case code[0] == '2' && c.connect:
			c.decided, c.upgraded = true, true
		case code[0] == '1':
			c.interim = true
		default:
			c.decided = true
		}
	}
	if c.decided {
		c.sniffing.Store(false)
	}
}
