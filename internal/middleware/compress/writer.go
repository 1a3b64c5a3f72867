package compress

import (
	"io"
	"net/http"
	"strconv"
	"sync"
)

// sniffLen is how much of a body net/http's DetectContentType reads.
const sniffLen = 512

// maxPooledBuf bounds the buffers kept for reuse; larger ones (a big
// min_bytes) are left to the garbage collector.
const maxPooledBuf = 64 << 10

// bufPool holds the buffers that hold a body back until its size decides.
var bufPool = sync.Pool{New: func() any {
	b := make([]byte, 0, 4096)
	return &b
}}

// state is where a response's bytes go.
type state uint8

const (
	undecided   state = iota // held back in buf until the decision
	passing                  // straight to the client
	compressing              // through enc to the client
)

// responseWriter compresses or passes a response as its head and first
// bytes decide. It shares the header map of the ResponseWriter it wraps.
//
// While undecided it holds back the status and up to hold bytes. A
// handler that changes the header after WriteHeader (which net/http
// ignores) may therefore see the change sent; trailers still work,
// because a response that declares them is decided at WriteHeader.
type responseWriter struct {
	http.ResponseWriter
	m      *middleware
	chosen int  // index in m.offers of the negotiated coding, or -1
	head   bool // a HEAD request: never compressed
	ranged bool // a Range request: never compressed

	status int // the final status the handler wrote; 0 before it did
	state  state
	hold   int     // while undecided, the bytes to hold back before deciding
	buf    *[]byte // the bytes held back; nil when none
	enc    encoder // while compressing
	in     int64   // bytes written to enc
	out    countWriter
}

// WriteHeader passes informational (1xx) responses on at once and holds
// the final status until the response's fate is decided.
func (w *responseWriter) WriteHeader(code int) {
	if w.status != 0 {
		if w.state == passing {
			w.ResponseWriter.WriteHeader(code) // net/http reports the superfluous call
		}
		return
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		// 1xx: the final status follows. Invalid codes reach net/http,
		// which panics on them, at once rather than later.
		w.ResponseWriter.WriteHeader(code)
		return
	}
	w.status = code
	w.decideHead()
}

// decideHead decides from the head alone whether the response passes
// untouched or is compressed, or, when its body must tell (its size or,
// lacking Content-Type, its media type), how much of it to hold back
// first.
func (w *responseWriter) decideHead() {
	h := w.Header()
	switch {
	case w.status == http.StatusNotModified:
		// RFC 9110 §15.4.5: a 304 carries the ETag the 200 would have;
		// that one was weakened if compressed. Weaken this one too unless
		// the type shows it was not, so a cache refreshing a compressed
		// variant matches it (RFC 9111 §4.3.4).
		if w.chosen >= 0 && !w.head && !w.ranged && h.Get("Content-Encoding") == "" &&
			!hasToken(h["Cache-Control"], "no-transform") &&
			(h["Content-Type"] == nil || w.m.types.match(h.Get("Content-Type"))) {
			weakenETag(h)
		}
		w.pass(false)
		return
	case !bodyAllowed(w.status) || w.status == http.StatusPartialContent ||
		h.Get("Content-Encoding") != "" || hasToken(h["Cache-Control"], "no-transform"):
		w.pass(false)
		return
	}
	sniff := h["Content-Type"] == nil
	if !sniff && !w.m.types.match(h.Get("Content-Type")) {
		w.pass(false)
		return
	}
	if w.chosen < 0 || w.head || w.ranged {
		if !sniff {
			w.pass(true)
			return
		}
		w.hold = 1 // sniff the first write
		return
	}
	if n, ok := contentLength(h); ok {
		if n < int64(w.m.minBytes) {
			if sniff {
				w.hold = 1
				return
			}
			w.pass(true)
			return
		}
		if !sniff {
			w.compress()
			return
		}
		w.hold = 1
		return
	}
	if h["Trailer"] != nil {
		// Declared trailers are set after the body; the head must be out
		// by then. A response with trailers is a stream: compress it.
		if sniff {
			w.pass(false)
		} else {
			w.compress()
		}
		return
	}
	w.hold = w.m.minBytes
}

// decide ends the undecided state once enough is known: when hold bytes
// have arrived (final false), at a flush (final false: a stream is
// compressed whatever its size so far), or when the handler returns
// (final true: the whole body is held). held are the bytes held back.
func (w *responseWriter) decide(held []byte, final bool) {
	h := w.Header()
	if h["Content-Type"] == nil {
		if len(held) == 0 {
			w.pass(false) // nothing to sniff; net/http sends no type either
			return
		}
		// What net/http would do; done here so the decision can use it.
		h.Set("Content-Type", http.DetectContentType(held))
		if !w.m.types.match(h.Get("Content-Type")) {
			w.pass(false)
			return
		}
	}
	if w.chosen < 0 || w.head || w.ranged {
		w.pass(true)
		return
	}
	big := !final
	if n, ok := contentLength(h); ok {
		big = n >= int64(w.m.minBytes)
	}
	if !big {
		w.pass(true)
		return
	}
	w.compress()
}

// pass sends the head untouched but for Vary: Accept-Encoding when vary
// is set (the response is compressible, just not for this request).
func (w *responseWriter) pass(vary bool) {
	if vary {
		addVary(w.Header())
	}
	w.state = passing
	w.ResponseWriter.WriteHeader(w.status)
}

// compress sends the head of a compressed response and readies the
// encoder.
func (w *responseWriter) compress() {
	h := w.Header()
	alg := w.m.offers[w.chosen].alg
	h.Del("Content-Length")
	// Ranges of the compressed bytes are not offered; a Range request is
	// answered uncompressed.
	h.Del("Accept-Ranges")
	h.Set("Content-Encoding", alg.name)
	addVary(h)
	weakenETag(h)
	w.state = compressing
	w.ResponseWriter.WriteHeader(w.status)
	w.out.w = w.ResponseWriter
	w.enc = alg.get(&w.out)
}

// Write compresses p, passes it on, or holds it back until the decision.
func (w *responseWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	switch w.state {
	case passing:
		return w.ResponseWriter.Write(p)
	case compressing:
		n, err := w.enc.Write(p)
		w.in += int64(n)
		return n, err
	}
	held := w.held()
	if len(held)+len(p) < w.hold {
		w.keep(p)
		return len(p), nil
	}
	n := len(p)
	if w.Header()["Content-Type"] == nil && len(held) < sniffLen {
		// Sniff from up to sniffLen bytes, as net/http would.
		k := min(len(p), sniffLen-len(held))
		held = w.keep(p[:k])
		p = p[k:]
	}
	w.decide(held, false)
	if err := w.emitHeld(); err != nil {
		return 0, err
	}
	m, err := w.emit(p)
	return n - len(p) + m, err
}

// keep holds p back, and returns all the bytes held.
func (w *responseWriter) keep(p []byte) []byte {
	if w.buf == nil {
		w.buf = bufPool.Get().(*[]byte)
		*w.buf = (*w.buf)[:0]
	}
	*w.buf = append(*w.buf, p...)
	return *w.buf
}

// emit writes p where the decision sends it.
func (w *responseWriter) emit(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if w.state == compressing {
		n, err := w.enc.Write(p)
		w.in += int64(n)
		return n, err
	}
	return w.ResponseWriter.Write(p)
}

// emitHeld writes the bytes held back and releases their buffer.
func (w *responseWriter) emitHeld() error {
	if w.buf == nil {
		return nil
	}
	_, err := w.emit(*w.buf)
	if cap(*w.buf) <= maxPooledBuf {
		bufPool.Put(w.buf)
	}
	w.buf = nil
	return err
}

// held returns the bytes held back.
func (w *responseWriter) held() []byte {
	if w.buf == nil {
		return nil
	}
	return *w.buf
}

// FlushError sends everything written so far to the client: it decides
// an undecided response (compressing a compressible stream whatever its
// size so far), flushes the encoder, then the connection. It is what
// http.ResponseController.Flush calls.
func (w *responseWriter) FlushError() error {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.state == undecided {
		w.decide(w.held(), false)
		if err := w.emitHeld(); err != nil {
			return err
		}
	}
	if w.state == compressing {
		if err := w.enc.Flush(); err != nil {
			return err
		}
	}
	return http.NewResponseController(w.ResponseWriter).Flush()
}

// Flush implements http.Flusher, for handlers that assert it.
func (w *responseWriter) Flush() {
	_ = w.FlushError()
}

// Unwrap returns the wrapped ResponseWriter, so http.ResponseController
// reaches its deadlines, hijacking and full duplex.
func (w *responseWriter) Unwrap() http.ResponseWriter {
	return w.ResponseWriter
}

// finish completes the response after the handler returned: it decides
// a response still undecided (its whole body is held) or ends the
// compressed stream and returns the encoder to its pool.
func (w *responseWriter) finish() {
	switch w.state {
	case undecided:
		if w.status == 0 {
			return // nothing written: net/http sends its empty 200
		}
		w.decide(w.held(), true)
		_ = w.emitHeld() // the client is gone; nobody to tell
	case compressing:
		err := w.enc.Close()
		o := &w.m.offers[w.chosen]
		o.alg.put(w.enc)
		w.enc = nil
		if o.responses != nil && err == nil {
			o.responses.Inc()
			o.in.Add(float64(w.in))
			o.out.Add(float64(w.out.n))
		}
	}
}

// bodyAllowed reports whether a response with status may have a body
// (RFC 9110 §6.4.1).
func bodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

// contentLength returns the Content-Length of h, and whether it has a
// valid one.
func contentLength(h http.Header) (int64, bool) {
	v := h["Content-Length"]
	if len(v) != 1 {
		return 0, false
	}
	n, err := strconv.ParseInt(v[0], 10, 64)
	return n, err == nil && n >= 0
}

// countWriter counts the bytes written through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
