package cache

import (
	"net/http"
	"strconv"
	"sync"
)

// What a capture does with the response the inner handler writes.
const (
	// modeStream relays it to the client (if any), capturing the body
	// when it may be stored.
	modeStream = iota
	// modeRevalidated swallows a 304 answering torii's conditional
	// request; the stored body is served instead.
	modeRevalidated
	// modeFallback swallows an upstream failure; the stale entry is
	// served instead (stale-if-error).
	modeFallback
)

// bufPool holds capture buffers for bodies of unknown length. Buffers that
// grew beyond maxPooledBuf are left to the garbage collector, so the pool
// does not pin large objects.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 32<<10); return &b }}

const maxPooledBuf = 1 << 20

// capture is the ResponseWriter the inner handler writes a fetched
// response to. It decides at WriteHeader whether the response goes to the
// client, and tees the body into a buffer, up to the object bound, when
// it may be stored. Streaming continues when capture stops.
type capture struct {
	c      *cache
	w      http.ResponseWriter // the client's; nil for a background refresh
	r      *http.Request       // the request sent upstream
	client *http.Request       // the client's request (conditionals)
	stale  *entry              // the entry being revalidated; nil on a miss
	// conditional reports whether r carries the stale entry's validators.
	conditional bool
	// fallback reports whether an upstream failure may be answered with
	// stale (stale-if-error applies).
	fallback bool

	header      http.Header
	status      int
	wroteHeader bool
	mode        int
	toClient    bool // body bytes go to the client
	clientErr   bool // a write to the client failed

	plan      plan // what storing needs, when capturing
	capturing bool
	unshare   bool // the response can never be shared
	declared  int64
	n         int64
	buf       []byte
	pooled    *[]byte
}

func (cw *capture) Header() http.Header { return cw.header }

func (cw *capture) WriteHeader(code int) {
	if cw.wroteHeader {
		return
	}
	if code < 200 {
		// Interim responses (103 Early Hints) go to the client as they are.
		if cw.w != nil && code != http.StatusSwitchingProtocols {
			copyHeader(cw.w.Header(), cw.header)
			cw.w.WriteHeader(code)
		}
		return
	}
	cw.wroteHeader = true
	cw.status = code
	switch {
	case code == http.StatusNotModified && cw.conditional:
		cw.mode = modeRevalidated
		return
	case cw.fallback && isFailure(code):
		cw.mode = modeFallback
		return
	}
	cw.plan, cw.capturing, cw.unshare = cw.c.storable(cw.client, code, cw.header)
	cw.declared = -1
	if cl := cw.header.Get("Content-Length"); cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil && n >= 0 {
			cw.declared = n
		}
	}
	if cw.capturing {
		maxObj := cw.c.store.maxObjectBytes.Load()
		switch {
		case cw.declared > maxObj:
			cw.capturing, cw.unshare = false, true
		case cw.declared >= 0:
			cw.buf = make([]byte, 0, cw.declared) // exact: stored as is
		default:
			cw.pooled = bufPool.Get().(*[]byte)
			cw.buf = (*cw.pooled)[:0]
		}
	}
	if cw.w == nil {
		return
	}
	cw.toClient = true
	dst := cw.w.Header()
	copyHeader(dst, cw.header)
	dst["X-Cache"] = xMiss
	if _, ok := dst["Age"]; !ok {
		dst["Age"] = smallAges[0:1:1]
	}
	if code == http.StatusOK && notModified(cw.client, cw.header) {
		// The client's own conditional request matched: it gets a 304
		// while the body is still captured for the cache.
		cw.toClient = false
		code = http.StatusNotModified
	}
	cw.w.WriteHeader(code)
}

func (cw *capture) Write(p []byte) (int, error) {
	if !cw.wroteHeader {
		cw.WriteHeader(http.StatusOK)
	}
	cw.n += int64(len(p))
	if cw.capturing {
		if int64(len(cw.buf)+len(p)) > cw.c.store.maxObjectBytes.Load() {
			cw.stopCapture()
			cw.unshare = true
		} else {
			cw.buf = append(cw.buf, p...)
		}
	}
	if !cw.toClient {
		return len(p), nil
	}
	n, err := cw.w.Write(p)
	if err != nil {
		cw.clientErr = true
		cw.stopCapture()
	}
	return n, err
}

// Flush sends what was written to the client, if it is being streamed.
func (cw *capture) Flush() {
	if cw.toClient {
		_ = http.NewResponseController(cw.w).Flush()
	}
}

// Unwrap gives http.ResponseController the client's writer.
func (cw *capture) Unwrap() http.ResponseWriter { return cw.w }

// stopCapture gives up storing the body.
func (cw *capture) stopCapture() {
	cw.capturing = false
	cw.buf = nil
	cw.release()
}

// release returns the pooled buffer, if any.
func (cw *capture) release() {
	if cw.pooled == nil {
		return
	}
	if cap(cw.buf) <= maxPooledBuf {
		*cw.pooled = cw.buf[:0]
		bufPool.Put(cw.pooled)
	}
	cw.pooled = nil
}

// body returns the captured body in a slice of its own, exactly sized,
// and releases the pooled buffer.
func (cw *capture) body() []byte {
	if cw.pooled == nil {
		return cw.buf
	}
	b := make([]byte, len(cw.buf))
	copy(b, cw.buf)
	cw.release()
	cw.buf = nil
	return b
}

// complete reports whether the whole body arrived and was captured.
func (cw *capture) complete() bool {
	return cw.capturing && !cw.clientErr && (cw.declared < 0 || cw.declared == cw.n)
}

// isFailure reports whether an upstream status counts as a failure for
// stale-if-error (RFC 5861 §4): 500, 502, 503 and 504, which also carry
// torii's own gateway errors (proxy.Status).
func isFailure(code int) bool {
	switch code {
	case http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// copyHeader sets every field of src in dst, replacing what dst had.
func copyHeader(dst, src http.Header) {
	for k, v := range src {
		dst[k] = v
	}
}
