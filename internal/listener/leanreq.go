package listener

import (
	"errors"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"sync"

	"golang.org/x/net/http/httpguts"

	"torii/internal/reqctx"
)

// leanExchange is one request on a lean connection: its context, URL,
// response writer and body reader, in one allocation.
type leanExchange struct {
	req    *http.Request // &reqBuf
	ctx    reqctx.Context
	url    url.URL // req.URL, for a target that parses as a plain path
	w      leanWriter
	body   leanBody
	reqBuf http.Request
}

var (
	errNoHost      = errors.New("missing Host in an HTTP/1.1 request (RFC 9112 §3.2)")
	errBadHost     = errors.New("invalid Host")
	errExpectation = errors.New("unsupported Expect")
	zeroRequest    = new(http.Request)
)

// newRequest builds the request from the checked head at buf[r:r+n]
// (checkHead has refused bad framing, field names and values): one string
// holds the head, and the keys and values are slices of it.
func (c *leanConn) newRequest(h head, n int) (*leanExchange, error) {
	raw := string(c.buf[c.r : c.r+n])
	c.r += n
	line, rest, _ := strings.Cut(raw, "\r\n")
	nf := strings.Count(rest, "\r\n") - 1

	x := &leanExchange{}
	x.ctx.Init(c.ctx)
	// WithContext is the one way to set a request's context; its copy
	// stays on the stack and is copied into the exchange.
	x.reqBuf = *zeroRequest.WithContext(&x.ctx)
	req := &x.reqBuf
	x.req = req
	req.Method = h.method
	req.RequestURI = h.target
	req.Proto, req.ProtoMajor = line[len(line)-8:], 1
	if req.Proto == "HTTP/1.1" {
		req.ProtoMinor = 1
	}
	req.RemoteAddr = c.remote
	hdr := make(http.Header, nf)
	// The header's value slices share one array, made for the fields
	// there are (none for a request with Host alone). The exchange
	// keeps no array of its own: the bytes a request allocates are what
	// the garbage collector's work grows with, and a fixed array would
	// be too large for most clients and too small for browsers.
	var vals []string
	var host string
	var hosts int
	for i := 0; len(rest) > 2; i++ {
		var l string
		l, rest, _ = strings.Cut(rest, "\r\n")
		k, v, _ := strings.Cut(l, ":")
		v = strings.Trim(v, " \t")
		k = textproto.CanonicalMIMEHeaderKey(k)
		if k == "Host" {
			host = v
			hosts++
			continue
		}
		if old := hdr[k]; old != nil {
			hdr[k] = append(old, v)
			continue
		}
		if vals == nil {
			vals = make([]string, nf)
		}
		vals[i] = v
		hdr[k] = vals[i : i+1 : i+1]
	}
	req.Header = hdr
	if hosts == 0 && req.ProtoMinor == 1 {
		return nil, errNoHost
	}
	if !httpguts.ValidHostHeader(host) {
		return nil, errBadHost
	}
	if err := parseTarget(req, h, &x.url); err != nil {
		return nil, err
	}
	// RFC 9112 §3.2.2: the authority of an absolute-form target wins over
	// Host, as in net/http.
	req.Host = req.URL.Host
	if req.Host == "" {
		req.Host = host
	}
	if req.ProtoMinor == 0 {
		// RFC 9111 §5.4: Pragma: no-cache means Cache-Control: no-cache
		// to an HTTP/1.0 client, as net/http maps it.
		if p, ok := hdr["Pragma"]; ok && len(p) > 0 && p[0] == "no-cache" && hdr["Cache-Control"] == nil {
			hdr["Cache-Control"] = []string{"no-cache"}
		}
	}
	req.Close = wantsClose(req)

	b := &x.body
	b.c, b.x = c, x
	switch {
	case h.chunked:
		req.ContentLength = -1
		req.TransferEncoding = []string{"chunked"}
		delete(hdr, "Transfer-Encoding") // as net/http: the framing is the server's
		b.chunked, b.state = true, chunkSize
		req.Body = b
		if names := hdr["Trailer"]; len(names) > 0 {
			delete(hdr, "Trailer") // as net/http: in req.Trailer instead
			req.Trailer = make(http.Header)
			for _, v := range names {
				for name := range strings.SplitSeq(v, ",") {
					if name = textproto.TrimString(name); name != "" {
						req.Trailer[http.CanonicalHeaderKey(name)] = nil
					}
				}
			}
		}
	case h.contentLength > 0:
		req.ContentLength = h.contentLength
		b.remain = h.contentLength
		req.Body = b
	default:
		req.Body = http.NoBody
		b.done = true
	}
	if ex := hdr["Expect"]; len(ex) > 0 {
		// Anything but 100-continue (RFC 9110 §10.1.1) gets 417, as in
		// net/http; an empty value or empty list elements are ignored.
		for _, v := range ex {
			for e := range strings.SplitSeq(v, ",") {
				if e = textproto.TrimString(e); e != "" && !strings.EqualFold(e, "100-continue") {
					return nil, errExpectation
				}
			}
		}
		// net/http: a 100-continue is answered for an HTTP/1.1 request
		// with a body, when the handler first reads it.
		b.expect = h.expectContinue && req.ProtoMinor == 1 && req.ContentLength != 0
	}
	x.w.init(c, x)
	x.w.expect = b.expect
	return x, nil
}

// parseTarget sets req.URL from the request target, as net/http parses
// it: origin-form, absolute-form, "*" and CONNECT's authority-form. u is
// where a plain path's URL goes, to save an allocation.
func parseTarget(req *http.Request, h head, u *url.URL) error {
	if path, ok := plainPath(h.target); ok {
		*u = url.URL{Path: path}
		if i := strings.IndexByte(h.target, '?'); i >= 0 {
			u.RawQuery = h.target[i+1:]
			u.ForceQuery = u.RawQuery == ""
		}
		req.URL = u
		return nil
	}
	raw := h.target
	authority := h.method == "CONNECT" && !strings.HasPrefix(raw, "/")
	if authority {
		raw = "http://" + raw
	}
	u, err := url.ParseRequestURI(raw)
	if err != nil {
		return errTarget
	}
	if authority {
		u.Scheme = ""
	}
	req.URL = u
	return nil
}

// wantsClose reports whether the client asks to close after the response
// (RFC 9112 §9.3): HTTP/1.0 unless "keep-alive", HTTP/1.1 with "close".
func wantsClose(r *http.Request) bool {
	conn := r.Header["Connection"]
	if r.ProtoMinor == 0 {
		return !hasToken(conn, "keep-alive")
	}
	return len(conn) > 0 && hasToken(conn, "close")
}

func hasToken(values []string, token string) bool {
	for _, v := range values {
		for f := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(textproto.TrimString(f), token) {
				return true
			}
		}
	}
	return false
}

// Chunked body states.
const (
	chunkSize  = iota // a chunk-size line
	chunkData         // remain bytes of chunk data
	chunkEnd          // the CRLF after chunk data
	chunkTrail        // the trailer section after the last chunk
)

// leanBody is a request body: Content-Length or chunked, read from the
// connection's buffer first, then from the socket. Chunked framing is
// checked as strictly as the head (strict.go). Reading it may send the
// interim 100 Continue first.
type leanBody struct {
	c       *leanConn
	x       *leanExchange
	remain  int64 // of the body, or of the current chunk
	chunked bool
	state   int
	expect  bool // a 100 Continue is owed before the first read
	done    bool
	closed  bool // by the handler
	sealed  bool // the handler has returned
	err     error
	// mu serializes reads: a handler may read the body from another
	// goroutine (the upstream client streams it) while it writes.
	mu sync.Mutex
}

// errBodyClosed is a read after Close, as net/http's.
var errBodyClosed = errors.New("http: invalid Read on closed Body")

func (b *leanBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.done:
		return 0, io.EOF
	case b.err != nil:
		return 0, b.err
	case b.closed || b.sealed:
		return 0, errBodyClosed
	case len(p) == 0:
		return 0, nil
	}
	return b.read(p)
}

// seal ends the handler's access to the body: its handler has returned,
// and the connection reads the rest (or closes) from here on. A goroutine
// the handler left reading gets an error rather than the next request.
func (b *leanBody) seal() {
	b.mu.Lock()
	b.sealed = true
	b.mu.Unlock()
}

// drain reads the rest of the body, up to maxDrain, after seal; it
// reports whether the body ended well, so the connection can go on.
func (b *leanBody) drain() bool {
	if b.err != nil {
		return false
	}
	if !b.chunked && b.remain > maxDrain {
		return false
	}
	var scratch [512]byte
	for total := 0; !b.done; {
		n, err := b.read(scratch[:])
		total += n
		if err != nil && !b.done || total > maxDrain {
			return false
		}
	}
	return b.err == nil
}

// read is Read without the Close check, for draining.
func (b *leanBody) read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	if b.err != nil {
		return 0, b.err
	}
	if b.expect {
		b.expect = false
		b.x.w.sendContinue()
	}
	var n int
	var err error
	if b.chunked {
		n, err = b.readChunked(p)
	} else {
		n, err = b.readFixed(p)
	}
	if err != nil && err != io.EOF {
		b.err = err
		b.c.broken = true
	}
	return n, err
}

// readFixed reads a Content-Length body.
func (b *leanBody) readFixed(p []byte) (int, error) {
	if int64(len(p)) > b.remain {
		p = p[:b.remain]
	}
	n, err := b.c.read(p)
	b.remain -= int64(n)
	if b.remain == 0 {
		b.finish()
		return n, io.EOF
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// readChunked reads a chunked body (RFC 9112 §7.1).
func (b *leanBody) readChunked(p []byte) (int, error) {
	c := b.c
	for {
		switch b.state {
		case chunkData:
			if int64(len(p)) > b.remain {
				p = p[:b.remain]
			}
			n, err := c.read(p)
			b.remain -= int64(n)
			if b.remain == 0 {
				b.state = chunkEnd
			}
			if n > 0 {
				return n, nil
			}
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		case chunkSize:
			size, m, err := parseChunkLine(c.buf[c.r:c.w])
			if err != nil {
				return 0, b.refused(err)
			}
			if m == 0 {
				if err := b.more(maxChunkLine); err != nil {
					return 0, err
				}
				continue
			}
			c.r += m
			if size == 0 {
				b.state = chunkTrail
			} else {
				b.state, b.remain = chunkData, size
			}
		case chunkEnd:
			if c.w-c.r < 2 {
				if err := b.more(2); err != nil {
					return 0, err
				}
				continue
			}
			if c.buf[c.r] != '\r' || c.buf[c.r+1] != '\n' {
				return 0, b.refused(errChunkEnd)
			}
			c.r += 2
			b.state = chunkSize
		case chunkTrail:
			end, _, err := scanSection(c.buf[c.r:c.w], 0)
			if err == nil && end > 0 {
				err = checkTrailer(c.buf[c.r : c.r+end])
			}
			if err == nil && end > c.s.headLimit {
				err = errTooLarge
			}
			if err != nil {
				return 0, b.refused(err)
			}
			if end == 0 {
				if err := b.more(c.s.headLimit); err != nil {
					return 0, err
				}
				continue
			}
			b.trailer(string(c.buf[c.r : c.r+end]))
			c.r += end
			b.finish()
			return 0, io.EOF
		}
	}
}

// more reads more of the connection for a line or section of at most
// limit bytes.
func (b *leanBody) more(limit int) error {
	c := b.c
	if c.w-c.r > limit {
		if b.state == chunkTrail {
			return b.refused(errTooLarge)
		}
		return b.refused(errChunkSize)
	}
	n, err := c.fill()
	if n > 0 {
		return nil
	}
	if err == io.EOF || err == nil {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// refused counts a body the strict check refuses; the connection closes
// after the response.
func (b *leanBody) refused(err error) error {
	reason := ReasonFraming
	if errors.Is(err, errTooLarge) {
		reason = ReasonHeaderTooLarge
	}
	b.c.s.metrics.requestRejected(reason)
	if l := b.c.s.logger; l != nil {
		l.Debug("request body refused by the strict framing check", "remote", b.c.remote, "err", err)
	}
	return err
}

// trailer adds the trailer section's fields to the request's Trailer, as
// net/http does: every field received, declared or not.
func (b *leanBody) trailer(sec string) {
	req := b.x.req
	for rest := sec; len(rest) > 2; {
		var l string
		l, rest, _ = strings.Cut(rest, "\r\n")
		k, v, _ := strings.Cut(l, ":")
		if req.Trailer == nil {
			req.Trailer = make(http.Header)
		}
		k = textproto.CanonicalMIMEHeaderKey(k)
		req.Trailer[k] = append(req.Trailer[k], strings.Trim(v, " \t"))
	}
}

// finish marks the body read; the client watch may start.
func (b *leanBody) finish() {
	b.done = true
	b.c.arm()
}

// Close stops reading; what is left is drained after the response (or
// the connection closes).
func (b *leanBody) Close() error {
	b.closed = true
	return nil
}

// read serves body bytes: buffered first, then the socket. A large read
// with nothing buffered goes straight into p.
func (c *leanConn) read(p []byte) (int, error) {
	if c.w > c.r {
		n := copy(p, c.buf[c.r:c.w])
		c.r += n
		return n, nil
	}
	if len(p) < leanBufSize/2 && c.buf != nil {
		n, err := c.fill()
		if n > 0 {
			m := copy(p, c.buf[c.r:c.w])
			c.r += m
			return m, nil
		}
		return 0, err
	}
	return c.rwc.Read(p)
}
