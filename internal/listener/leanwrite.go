package listener

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// leanWriter is the http.ResponseWriter of one lean request. A response
// that ends (or reaches 4 KiB) before anything is flushed goes out with a
// Content-Length, head and body in one write; a longer one, or one the
// handler flushes, is chunked (HTTP/1.1) or delimited by closing the
// connection (HTTP/1.0). It follows net/http's rules: a declared
// Content-Length is enforced, HEAD, 1xx, 204 and 304 responses carry no
// body, trailers go after a chunked body, field names that are not tokens
// are dropped and CR or LF in values become spaces.
type leanWriter struct {
	c      *leanConn
	x      *leanExchange
	header http.Header

	status      int
	wroteHead   bool  // the head is in the write buffer
	cl          int64 // declared Content-Length; -1: none
	written     int64 // body bytes accepted
	chunked     bool
	bodyless    bool // HEAD, 1xx, 204, 304: body bytes are dropped
	trailers    []string
	stage       []byte // the body while the head waits; nil when flushed
	stageBuf    *[leanBufSize]byte
	closeAfter  bool
	headStarted atomic.Bool // for the 100 Continue race, see sendContinue
	continued   bool        // a 100 Continue went out
	handlerDone bool
	expect      bool // the request has Expect: 100-continue and a body
}

func (w *leanWriter) init(c *leanConn, x *leanExchange) {
	w.c, w.x = c, x
	w.header = make(http.Header, 8)
	w.cl = -1
	w.closeAfter = x.req.Close
}

// Header returns the response header.
func (w *leanWriter) Header() http.Header { return w.header }

// WriteHeader sends an interim (1xx) response at once, or sets the final
// status.
func (w *leanWriter) WriteHeader(code int) {
	if code < 100 || code > 999 {
		panic("invalid WriteHeader code " + strconv.Itoa(code))
	}
	if w.wroteHead || w.status != 0 || w.handlerDone {
		return
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		if w.x.req.ProtoMinor == 0 {
			return // HTTP/1.0 has no interim responses
		}
		w.interim(code)
		return
	}
	w.status = code
	if code == http.StatusSwitchingProtocols {
		w.writeHead(false)
		w.closeAfter = true // unless hijacked, nothing can follow it
		w.c.bw.Flush()
	}
}

// interim writes a 1xx response with the current header.
func (w *leanWriter) interim(code int) {
	bw := w.c.writer()
	w.c.wmu.Lock()
	defer w.c.wmu.Unlock()
	if code == http.StatusContinue {
		if w.continued {
			return
		}
		w.continued = true
	}
	writeStatusLine(bw, 1, code)
	w.writeFields(bw, w.header, false)
	bw.WriteString("\r\n")
	bw.Flush()
}

// sendContinue answers Expect: 100-continue, on the body's first read,
// unless the response has begun.
func (w *leanWriter) sendContinue() {
	c := w.c
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if w.headStarted.Load() || w.continued {
		return
	}
	w.continued = true
	// Straight to the socket: the handler may be writing its response
	// buffer from another goroutine.
	c.rwc.Write([]byte("HTTP/1.1 100 Continue\r\n\r\n"))
}

// Write writes body bytes.
func (w *leanWriter) Write(p []byte) (int, error) {
	if w.handlerDone {
		return 0, errHandlerDone
	}
	if w.c.hijacked {
		return 0, http.ErrHijacked
	}
	if !w.wroteHead {
		if w.status == 0 {
			w.status = http.StatusOK
		}
		if !bodyAllowed(w.status) {
			return 0, http.ErrBodyNotAllowed
		}
		if w.stage != nil || w.stageBuf == nil {
			if w.stageBuf == nil {
				w.stageBuf = leanReadPool.Get().(*[leanBufSize]byte)
				w.stage = w.stageBuf[:0]
			}
			if len(w.stage)+len(p) <= leanBufSize {
				w.stage = append(w.stage, p...)
				return len(p), nil
			}
		}
		if err := w.flushStage(false); err != nil {
			return 0, err
		}
	}
	return w.writeBody(p)
}

// errHandlerDone is a write after the handler returned.
var errHandlerDone = errors.New("http: response written after its handler returned")

// WriteString writes body bytes from a string (io.StringWriter), staged
// without a copy to a byte slice when they fit.
func (w *leanWriter) WriteString(s string) (int, error) {
	if !w.wroteHead && !w.handlerDone && !w.c.hijacked && w.stage != nil &&
		len(w.stage)+len(s) <= leanBufSize && (w.status == 0 || bodyAllowed(w.status)) {
		w.stage = append(w.stage, s...)
		return len(s), nil
	}
	return w.Write([]byte(s))
}

// writeBody writes p after the head, within the declared length.
func (w *leanWriter) writeBody(p []byte) (int, error) {
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	var err error
	if w.cl >= 0 && w.written+int64(len(p)) > w.cl {
		p = p[:w.cl-w.written]
		err = http.ErrContentLength
	}
	w.written += int64(len(p))
	if w.bodyless || len(p) == 0 {
		return len(p), err
	}
	bw := w.c.bw
	if w.chunked {
		bw.WriteString(strconv.FormatInt(int64(len(p)), 16))
		bw.WriteString("\r\n")
	}
	n, werr := bw.Write(p)
	if w.chunked && werr == nil {
		_, werr = bw.WriteString("\r\n")
	}
	if werr != nil {
		w.c.broken = true
		return n, werr
	}
	return n, err
}

// flushStage writes the head, then the staged body bytes. final: the
// handler has returned, so the staged bytes are the whole body.
func (w *leanWriter) flushStage(final bool) error {
	st := w.stage
	w.stage = nil
	if final && w.header["Content-Length"] == nil && !w.hasTrailers() && bodyAllowed(w.status) &&
		(w.x.req.Method != http.MethodHead || len(st) > 0) {
		w.header["Content-Length"] = []string{strconv.Itoa(len(st))}
	}
	w.writeHead(true)
	var err error
	if len(st) > 0 {
		_, err = w.writeBody(st)
	}
	if w.stageBuf != nil {
		leanReadPool.Put(w.stageBuf)
		w.stageBuf = nil
	}
	return err
}

// hasTrailers reports whether the handler declared trailers, which need a
// chunked body.
func (w *leanWriter) hasTrailers() bool {
	if len(w.header["Trailer"]) > 0 {
		return true
	}
	for k := range w.header {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			return true
		}
	}
	return false
}

// writeHead writes the status line and header into the write buffer;
// mayChunk: the length is unknown unless declared.
func (w *leanWriter) writeHead(mayChunk bool) {
	w.wroteHead = true
	if w.expect {
		w.headStarted.Store(true)
		w.c.wmu.Lock()
		w.c.wmu.Unlock() // a 100 Continue in progress has gone out
		if !w.continued {
			// The client may or may not send the body it announced.
			w.closeAfter = true
		}
	}
	if w.status == 0 {
		w.status = http.StatusOK
	}
	req := w.x.req
	h := w.header
	status := w.status
	w.bodyless = req.Method == http.MethodHead || !bodyAllowed(status)
	delete(h, "Transfer-Encoding") // the framing is the server's
	if status == http.StatusNoContent || status < 200 {
		delete(h, "Content-Length")
	}
	if v := h["Content-Length"]; len(v) > 0 {
		n, err := strconv.ParseInt(v[0], 10, 64)
		if err == nil && n >= 0 && len(v) == 1 {
			w.cl = n
		} else {
			w.c.s.logf("http: invalid Content-Length of %q", v)
			delete(h, "Content-Length")
		}
	}
	if hasToken(h["Connection"], "close") {
		w.closeAfter = true
	}
	if mayChunk && w.cl < 0 && !w.bodyless && status != http.StatusSwitchingProtocols {
		if req.ProtoMinor == 0 {
			w.closeAfter = true // the end of the body is the end of the connection
		} else {
			w.chunked = true
		}
	}
	if w.c.s.closing.Load() || w.c.gone.Load() {
		w.closeAfter = true
	}
	if w.chunked {
		if tr := h["Trailer"]; len(tr) > 0 {
			for _, v := range tr {
				for name := range strings.SplitSeq(v, ",") {
					if name = strings.TrimSpace(name); name != "" {
						w.trailers = append(w.trailers, http.CanonicalHeaderKey(name))
					}
				}
			}
		}
	} else {
		delete(h, "Trailer")
	}
	bw := w.c.writer()
	writeStatusLine(bw, req.ProtoMinor, status)
	w.writeFields(bw, h, true)
	if w.chunked {
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	switch {
	case w.closeAfter && status != http.StatusSwitchingProtocols:
		if !hasToken(h["Connection"], "close") {
			bw.WriteString("Connection: close\r\n")
		}
	case req.ProtoMinor == 0:
		bw.WriteString("Connection: keep-alive\r\n")
	}
	if _, ok := h["Date"]; !ok {
		bw.WriteString("Date: ")
		bw.WriteString(dateNow())
		bw.WriteString("\r\n")
	}
	bw.WriteString("\r\n")
}

// writeFields writes h's fields, as net/http does: names that are not
// tokens dropped, CR and LF in values turned into spaces, leading and
// trailing whitespace trimmed. In the final head, fields named with
// http.TrailerPrefix are left for the trailer section.
func (w *leanWriter) writeFields(bw *bufio.Writer, h http.Header, final bool) {
	for k, vs := range h {
		if !httpguts.ValidHeaderFieldName(k) || final && strings.HasPrefix(k, http.TrailerPrefix) {
			continue
		}
		for _, v := range vs {
			bw.WriteString(k)
			bw.WriteString(": ")
			writeFieldValue(bw, v)
			bw.WriteString("\r\n")
		}
	}
}

func writeFieldValue(bw *bufio.Writer, v string) {
	v = strings.Trim(v, " \t")
	if strings.ContainsAny(v, "\r\n") {
		v = strings.NewReplacer("\r", " ", "\n", " ").Replace(v)
	}
	bw.WriteString(v)
}

// writeStatusLine writes "HTTP/1.x code reason".
func writeStatusLine(bw *bufio.Writer, minor, code int) {
	if minor == 0 {
		bw.WriteString("HTTP/1.0 ")
	} else {
		bw.WriteString("HTTP/1.1 ")
	}
	var b [3]byte
	bw.Write(strconv.AppendInt(b[:0], int64(code), 10))
	bw.WriteByte(' ')
	bw.WriteString(http.StatusText(code))
	bw.WriteString("\r\n")
}

// bodyAllowed reports whether a response with this status has a body
// (RFC 9110 §6.4.1).
func bodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

// finish completes the response after the handler: the head if it is
// not out, the staged body, the last chunk and trailers, and sends what is
// buffered. It reports whether the connection may serve another request.
func (w *leanWriter) finish() bool {
	if !w.wroteHead {
		if w.status == 0 {
			w.status = http.StatusOK
		}
		w.flushStage(true)
	}
	w.handlerDone = true
	bw := w.c.bw
	if w.chunked {
		bw.WriteString("0\r\n")
		for _, k := range w.trailers {
			for _, v := range w.header[k] {
				w.writeTrailer(bw, k, v)
			}
		}
		for k, vs := range w.header {
			if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
				for _, v := range vs {
					w.writeTrailer(bw, http.CanonicalHeaderKey(name), v)
				}
			}
		}
		bw.WriteString("\r\n")
	}
	err := bw.Flush()
	w.c.putWriter()
	if err != nil {
		return false
	}
	if !w.bodyless && w.cl >= 0 && w.written != w.cl {
		return false // the client cannot tell where the response ended
	}
	return true
}

func (w *leanWriter) writeTrailer(bw *bufio.Writer, k, v string) {
	if !httpguts.ValidHeaderFieldName(k) {
		return
	}
	bw.WriteString(k)
	bw.WriteString(": ")
	writeFieldValue(bw, v)
	bw.WriteString("\r\n")
}

// Flush sends the head and what is written so far.
func (w *leanWriter) Flush() { w.FlushError() }

// FlushError is Flush with its error (http.ResponseController).
func (w *leanWriter) FlushError() error {
	if w.handlerDone {
		return errHandlerDone
	}
	if w.c.hijacked {
		return http.ErrHijacked
	}
	if !w.wroteHead {
		if err := w.flushStage(false); err != nil {
			return err
		}
	}
	if err := w.c.bw.Flush(); err != nil {
		w.c.broken = true
		return err
	}
	return nil
}

// Hijack hands the connection to the handler (http.Hijacker); bytes the
// client sent after the request come with the reader.
func (w *leanWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c := w.c
	if c.hijacked {
		return nil, nil, http.ErrHijacked
	}
	if w.wroteHead && w.status != http.StatusSwitchingProtocols {
		return nil, nil, errors.New("http: Hijack after the response head was written")
	}
	c.disarm()
	if c.bw != nil {
		c.bw.Flush()
		c.putWriter()
	}
	c.hijacked = true
	c.rwc.SetDeadline(time.Time{})
	var rest []byte
	if c.w > c.r {
		rest = append([]byte(nil), c.buf[c.r:c.w]...)
	}
	if c.buf != nil {
		c.putBuf()
	}
	if w.stageBuf != nil {
		leanReadPool.Put(w.stageBuf)
		w.stageBuf, w.stage = nil, nil
	}
	s := c.s
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.active.Done()
	conn := &hijackedConn{Conn: c.rwc, s: s}
	var r io.Reader = conn
	if len(rest) > 0 {
		r = io.MultiReader(strings.NewReader(string(rest)), conn)
	}
	br := bufio.NewReaderSize(r, 4096)
	return conn, bufio.NewReadWriter(br, bufio.NewWriterSize(conn, 4096)), nil
}

// hijackedConn is a hijacked connection: still counted as open until the
// handler closes it.
type hijackedConn struct {
	net.Conn
	s      *leanServer
	closed atomic.Bool
}

func (c *hijackedConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.s.open.Add(-1)
		c.s.metrics.connClosed()
	}
	return c.Conn.Close()
}

// SetReadDeadline sets the connection's read deadline
// (http.ResponseController).
func (w *leanWriter) SetReadDeadline(t time.Time) error { return w.c.rwc.SetReadDeadline(t) }

// SetWriteDeadline sets the connection's write deadline
// (http.ResponseController).
func (w *leanWriter) SetWriteDeadline(t time.Time) error { return w.c.rwc.SetWriteDeadline(t) }

// EnableFullDuplex lets the handler read the request body while it
// writes the response; the lean server always does.
func (w *leanWriter) EnableFullDuplex() error { return nil }

// writer returns the connection's write buffer, taken from the pool for
// the response.
func (c *leanConn) writer() *bufio.Writer {
	if c.bw == nil {
		c.bw = leanWritePool.Get().(*bufio.Writer)
		c.bw.Reset(c.rwc)
	}
	return c.bw
}

func (c *leanConn) putWriter() {
	if c.bw != nil && c.bw.Buffered() == 0 {
		c.bw.Reset(nil)
		leanWritePool.Put(c.bw)
		c.bw = nil
	}
}

// The Date field, formatted once a second.
var dateCache atomic.Pointer[dateEntry]

type dateEntry struct {
	sec int64
	v   string
}

func dateNow() string {
	now := time.Now()
	if d := dateCache.Load(); d != nil && d.sec == now.Unix() {
		return d.v
	}
	d := &dateEntry{sec: now.Unix(), v: now.UTC().Format(http.TimeFormat)}
	dateCache.Store(d)
	return d.v
}
