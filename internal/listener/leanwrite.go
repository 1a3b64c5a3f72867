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

// leanWriter is the http.ResponseWriter of one lean request. The head is
// committed at WriteHeader or the first Write (later changes to the
// header map do not reach it, as with net/http, trailers excepted): the
// status line and fields go into the write buffer then, and the framing
// fields once the length is known. A response that ends, within 4 KiB,
// before anything is flushed goes out with a Content-Length, head and
// body in one write; a longer one, or one the handler flushes, is chunked
// (HTTP/1.1) or delimited by closing the connection (HTTP/1.0). It follows
// net/http's rules: a declared Content-Length is enforced, HEAD, 1xx, 204
// and 304 responses carry no body, trailers go after a chunked body,
// field names that are not tokens are dropped and CR or LF in values
// become spaces.
type leanWriter struct {
	c      *leanConn
	x      *leanExchange
	header http.Header

	status    int
	committed bool  // status line and fields are in the write buffer
	headDone  bool  // ... and the framing fields and the empty line
	cl        int64 // declared Content-Length; -1: none
	written   int64 // body bytes accepted
	chunked   bool
	bodyless  bool // HEAD, 1xx, 204, 304: body bytes are dropped
	trailers  []string
	stage     []byte // body bytes while the length is undecided
	stageBuf  *[leanBufSize]byte
	tooLong   bool // the handler wrote past its Content-Length

	closeAfter  bool
	headStarted atomic.Bool // for the 100 Continue race, see sendContinue
	continued   bool        // a 100 Continue went out
	handlerDone bool
	expect      bool // the request has Expect: 100-continue and a body
	fullDuplex  bool // the handler reads the body while it writes
}

func (w *leanWriter) init(c *leanConn, x *leanExchange) {
	w.c, w.x = c, x
	if w.header = c.header; w.header != nil {
		c.header = nil
	} else {
		w.header = make(http.Header, 8)
	}
	w.cl = -1
	w.closeAfter = x.req.Close
}

// Header returns the response header.
func (w *leanWriter) Header() http.Header { return w.header }

// WriteHeader sends an interim (1xx) response at once, or commits the
// final status and header.
func (w *leanWriter) WriteHeader(code int) {
	if code < 100 || code > 999 {
		panic("invalid WriteHeader code " + strconv.Itoa(code))
	}
	if w.committed || w.handlerDone || w.c.hijacked {
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
	w.commit()
	if code == http.StatusSwitchingProtocols {
		w.endHead(false)
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
	writeFields(bw, w.header, false)
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

// errHandlerDone is a write after the handler returned.
var errHandlerDone = errors.New("http: response written after its handler returned")

// Write writes body bytes.
func (w *leanWriter) Write(p []byte) (int, error) {
	if err := w.usable(); err != nil {
		return 0, err
	}
	if !w.committed {
		w.commit()
	}
	if w.bodyless {
		if !bodyAllowed(w.status) {
			return 0, http.ErrBodyNotAllowed
		}
		if w.stage != nil && !w.headDone {
			// HEAD: a length for what GET would send, as net/http does,
			// up to what a GET's length would be computed for.
			if len(w.stage)+len(p) <= leanBufSize {
				w.stage = append(w.stage, p...)
			} else {
				w.dropStage()
			}
		}
		return w.count(len(p))
	}
	if w.cl >= 0 && w.written+int64(len(p)) > w.cl {
		w.tooLong = true
		return 0, http.ErrContentLength
	}
	if !w.headDone {
		if w.cl < 0 && w.stage != nil && len(w.stage)+len(p) <= leanBufSize {
			w.stage = append(w.stage, p...)
			w.written += int64(len(p))
			return len(p), nil
		}
		if err := w.flushStage(); err != nil {
			return 0, err
		}
	}
	return w.writeBody(p)
}

// WriteString writes body bytes from a string (io.StringWriter).
func (w *leanWriter) WriteString(s string) (int, error) {
	if w.usable() == nil {
		if !w.committed {
			w.commit()
		}
		if !w.headDone && !w.bodyless && w.cl < 0 && w.stage != nil && len(w.stage)+len(s) <= leanBufSize {
			w.stage = append(w.stage, s...)
			w.written += int64(len(s))
			return len(s), nil
		}
	}
	return w.Write([]byte(s))
}

func (w *leanWriter) usable() error {
	switch {
	case w.handlerDone:
		return errHandlerDone
	case w.c.hijacked:
		return http.ErrHijacked
	}
	return nil
}

func (w *leanWriter) count(n int) (int, error) {
	w.written += int64(n)
	return n, nil
}

// writeBody writes p after a complete head.
func (w *leanWriter) writeBody(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	bw := w.c.bw
	if w.chunked {
		bw.WriteString(strconv.FormatInt(int64(len(p)), 16))
		bw.WriteString("\r\n")
	}
	n, err := bw.Write(p)
	if w.chunked && err == nil {
		_, err = bw.WriteString("\r\n")
	}
	w.written += int64(n)
	if err != nil {
		w.c.broken = true
	}
	return n, err
}

// flushStage completes the head with an unknown length (chunked, or
// closing for HTTP/1.0) and writes the staged bytes after it.
func (w *leanWriter) flushStage() error {
	st := w.stage
	w.endHead(true)
	w.written -= int64(len(st))
	var err error
	if len(st) > 0 {
		_, err = w.writeBody(st)
	}
	w.dropStage()
	return err
}

func (w *leanWriter) dropStage() {
	w.stage = nil
	if w.stageBuf != nil {
		leanReadPool.Put(w.stageBuf)
		w.stageBuf = nil
	}
}

// commit fixes the status and header: the status line and the fields go
// into the write buffer, and what they say about framing is taken.
func (w *leanWriter) commit() {
	w.committed = true
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
		if err == nil && n >= 0 && len(v) == 1 && v[0][0] != '+' {
			w.cl = n
		} else {
			w.c.s.logf("http: invalid Content-Length of %q", v)
			delete(h, "Content-Length")
		}
	}
	if hasToken(h["Connection"], "close") {
		w.closeAfter = true
	}
	if tr := h["Trailer"]; len(tr) > 0 {
		for _, v := range tr {
			for name := range strings.SplitSeq(v, ",") {
				if name = strings.TrimSpace(name); name != "" {
					w.trailers = append(w.trailers, http.CanonicalHeaderKey(name))
				}
			}
		}
	}
	if !w.bodyless && w.cl < 0 && status != http.StatusSwitchingProtocols {
		w.stageBuf = leanReadPool.Get().(*[leanBufSize]byte)
		w.stage = w.stageBuf[:0]
	} else if req.Method == http.MethodHead && w.cl < 0 {
		w.stageBuf = leanReadPool.Get().(*[leanBufSize]byte)
		w.stage = w.stageBuf[:0]
	}
	bw := w.c.writer()
	writeStatusLine(bw, req.ProtoMinor, status)
	writeFields(bw, h, true)
}

// settleBody decides, before the head ends, whether the connection can
// carry another request after this response, as net/http does: not when
// the request body failed, nor when the handler left more of it than
// maxDrain unread. Once the handler has returned (the body is sealed) the
// rest is read here, so a body that turns out bad still closes with
// "Connection: close" in the head.
func (w *leanWriter) settleBody() {
	b := &w.x.body
	if w.x.req.Body == http.NoBody || w.closeAfter || w.fullDuplex {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.err != nil:
		w.closeAfter = true
	case b.done:
	case !b.chunked && b.remain > maxDrain:
		w.closeAfter = true
	case b.sealed:
		if !b.drain() {
			w.closeAfter = true
		}
	}
}

// hasTrailers reports whether the handler declared trailers, which need a
// chunked body.
func (w *leanWriter) hasTrailers() bool {
	if len(w.trailers) > 0 {
		return true
	}
	for k := range w.header {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			return true
		}
	}
	return false
}

// endHead writes the framing fields and ends the head. unknown: the body
// goes on past what is staged, so its length is not known.
func (w *leanWriter) endHead(unknown bool) {
	w.headDone = true
	w.settleBody()
	req := w.x.req
	bw := w.c.bw
	switch {
	case w.bodyless || w.status == http.StatusSwitchingProtocols:
		if req.Method == http.MethodHead && w.cl < 0 && !unknown && len(w.stage) > 0 {
			bw.WriteString("Content-Length: ")
			bw.WriteString(strconv.Itoa(len(w.stage)))
			bw.WriteString("\r\n")
		}
	case w.cl >= 0:
	case !unknown && !w.hasTrailers():
		bw.WriteString("Content-Length: ")
		bw.WriteString(strconv.Itoa(len(w.stage)))
		bw.WriteString("\r\n")
	case req.ProtoMinor == 0:
		w.closeAfter = true // the end of the body is the end of the connection
	default:
		w.chunked = true
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	if w.c.s.closing.Load() || w.c.gone.Load() {
		w.closeAfter = true
	}
	switch {
	case req.ProtoMinor == 0:
		// HTTP/1.0 closes unless both ends say keep-alive (RFC 9112
		// §9.3).
		if !w.closeAfter {
			bw.WriteString("Connection: keep-alive\r\n")
		}
	case w.closeAfter && w.status != http.StatusSwitchingProtocols:
		if !hasToken(w.header["Connection"], "close") {
			bw.WriteString("Connection: close\r\n")
		}
	}
	if _, ok := w.header["Date"]; !ok {
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
func writeFields(bw *bufio.Writer, h http.Header, final bool) {
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
	for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
		v = v[1:]
	}
	for len(v) > 0 && (v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
		v = v[:len(v)-1]
	}
	from := 0
	for i := 0; i < len(v); i++ {
		if v[i] == '\r' || v[i] == '\n' {
			bw.WriteString(v[from:i])
			bw.WriteByte(' ')
			from = i + 1
		}
	}
	bw.WriteString(v[from:])
}

// writeStatusLine writes "HTTP/1.x code reason".
func writeStatusLine(bw *bufio.Writer, minor, code int) {
	if minor == 0 {
		bw.WriteString("HTTP/1.0 ")
	} else {
		bw.WriteString("HTTP/1.1 ")
	}
	// Three digits (WriteHeader takes 100-999), one byte at a time: a
	// slice of a local array would escape into bufio.Writer.Write.
	bw.WriteByte(byte('0' + code/100))
	bw.WriteByte(byte('0' + code/10%10))
	bw.WriteByte(byte('0' + code%10))
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
	if !w.committed {
		w.commit()
	}
	if !w.headDone {
		st := w.stage
		w.endHead(false)
		if !w.bodyless && len(st) > 0 {
			w.written -= int64(len(st))
			w.writeBody(st)
		}
		w.dropStage()
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
	if err != nil || w.tooLong {
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
	if err := w.usable(); err != nil {
		return err
	}
	if !w.committed {
		w.commit()
	}
	if !w.headDone {
		if err := w.flushStage(); err != nil {
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
	if w.committed && w.status != http.StatusSwitchingProtocols {
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
	w.dropStage()
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
func (w *leanWriter) SetReadDeadline(t time.Time) error {
	w.c.headDeadline = time.Time{}
	return w.c.rwc.SetReadDeadline(t)
}

// SetWriteDeadline sets the connection's write deadline
// (http.ResponseController).
func (w *leanWriter) SetWriteDeadline(t time.Time) error { return w.c.rwc.SetWriteDeadline(t) }

// EnableFullDuplex lets the handler read the request body while it
// writes the response; the lean server always does.
func (w *leanWriter) EnableFullDuplex() error {
	w.fullDuplex = true
	return nil
}

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
