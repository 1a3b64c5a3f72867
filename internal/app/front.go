package app

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"torii/internal/config"
	"torii/internal/proxy"
	"torii/internal/request"
	"torii/internal/router"
	"torii/internal/runtime"
)

// front is the outermost data-plane handler: recover, request identity
// (ID, client address, scheme), host and path checks, metrics and access
// log, then the current snapshot. It reads the snapshot and the
// observability hooks through atomic pointers so a reload swaps them
// without a lock.
type front struct {
	app *App
	ids idSource
}

func (f *front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	snap := f.app.snap.Load()
	st := &frontState{info: request.Info{Start: time.Now()}, rec: recorder{ResponseWriter: w}}
	info := &st.info
	peer, ok := request.Peer(r.Context(), r.RemoteAddr)
	if !ok {
		peer = request.ParsePeer(r.RemoteAddr)
	}
	info.PeerTrusted = contains(snap.Trusted(), peer)
	info.ClientIP = clientIP(peer, info.PeerTrusted, snap.Trusted(), r.Header)
	info.Scheme = scheme(r, info.PeerTrusted)
	info.ID = f.ids.requestID(r.Header.Get("X-Request-Id"))

	// The client gets its request ID back so a report can quote it; error
	// bodies carry it as "id" and the access log under "id".
	st.id[0] = info.ID
	w.Header()["X-Request-Id"] = st.id[:1:1]
	rec := &st.rec
	done := f.app.metrics.InFlight()
	defer func() {
		done()
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				f.finish(rec, r, info)
				panic(p)
			}
			info.Err = fmt.Errorf("panic: %v", p)
			f.app.logger.Error("handler panic", "id", info.ID, "panic", p)
			if !rec.wrote {
				proxy.WriteError(rec, r, http.StatusInternalServerError, "internal error")
			}
		}
		f.finish(rec, r, info)
	}()

	r = request.Attach(r, info)
	if _, err := router.NormalizeHost(r.Host); err != nil {
		info.Err = fmt.Errorf("bad host: %w", err)
		proxy.WriteError(rec, r, http.StatusBadRequest, "invalid Host header")
		return
	}
	escaped := r.URL.EscapedPath()
	clean, err := router.CleanPath(escaped)
	if err != nil {
		info.Err = fmt.Errorf("bad path: %w", err)
		proxy.WriteError(rec, r, http.StatusBadRequest, "invalid request path")
		return
	}
	if msg := ambiguousPath(clean, &snap.Config().Paths); msg != "" {
		info.Err = errors.New("bad path: " + msg)
		proxy.WriteError(rec, r, http.StatusBadRequest, msg)
		return
	}
	if clean != escaped {
		runtime.SetEscapedPath(r.URL, clean)
	}
	f.app.routed.Load().ServeHTTP(rec, r)
}

// ambiguousPath returns why a cleaned path is refused under the paths
// config, or "". Upstreams disagree on encoded slashes (some decode "%2F"
// into a separator) and on ";" parameters (Java servers strip them), so a
// path carrying them could route past a rule that protects what the
// upstream will actually serve ("/admin;x", "/admin%2Fx").
func ambiguousPath(clean string, p *config.Paths) string {
	if p.EncodedSlashes != config.PathKeep && strings.IndexByte(clean, '%') >= 0 &&
		(strings.Contains(clean, "%2F") || strings.Contains(clean, "%5C")) {
		return "encoded slash or backslash in path"
	}
	if p.Semicolons != config.PathKeep && strings.IndexByte(clean, ';') >= 0 {
		return "semicolon in path"
	}
	return ""
}

// finish settles the status and reports the request to metrics and the
// access log.
func (f *front) finish(rec *recorder, r *http.Request, info *request.Info) {
	switch info.Status {
	case 499:
		// The client left: the proxy knows, the writer does not.
		info.BytesOut = rec.bytes
	case http.StatusSwitchingProtocols:
		// A tunnel (WebSocket): the proxy counted the bytes it relayed
		// on the hijacked connection, which the writer never saw.
	default:
		info.Status = rec.status
		if info.Status == 0 {
			info.Status = http.StatusOK
		}
		info.BytesOut = rec.bytes
	}
	dur := time.Since(info.Start)
	f.app.metrics.Observe(info, dur)
	if info.SLO != nil {
		// Latency SLIs use time to first byte, so a long stream is not
		// counted as slow for lasting (issue #5's counting rules).
		ttfb := dur
		if !rec.first.IsZero() {
			ttfb = rec.first.Sub(info.Start)
		}
		info.SLO.Record(info.Upstream, info.Status, info.GRPCStatus, ttfb, false)
	}
	if al := f.app.access.Load(); al != nil {
		al.Log(r, info, dur)
	}
}

// frontState is what the front handler keeps for one request, in one
// allocation: the request's Info, the response recorder and the value
// array of the X-Request-Id response field.
type frontState struct {
	info request.Info
	rec  recorder
	id   [1]string
}

// recorder notes the status and body size written to the client.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	wrote  bool
	first  time.Time // when the response head went out: time to first byte
}

func (rw *recorder) WriteHeader(code int) {
	if !rw.wrote && code >= 200 {
		rw.status, rw.wrote = code, true
		rw.first = time.Now()
	}
	rw.ResponseWriter.WriteHeader(code)
}

func (rw *recorder) Write(b []byte) (int, error) {
	if !rw.wrote {
		rw.status, rw.wrote = http.StatusOK, true
		rw.first = time.Now()
	}
	n, err := rw.ResponseWriter.Write(b)
	rw.bytes += int64(n)
	return n, err
}

// Flush lets handlers that type-assert http.Flusher stream through.
func (rw *recorder) Flush() {
	if !rw.wrote {
		rw.status, rw.wrote = http.StatusOK, true
		rw.first = time.Now()
	}
	http.NewResponseController(rw.ResponseWriter).Flush()
}

// Unwrap gives http.ResponseController the underlying writer.
func (rw *recorder) Unwrap() http.ResponseWriter { return rw.ResponseWriter }

func contains(prefixes []netip.Prefix, a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// clientIP returns the client's address. From a trusted peer it walks
// X-Forwarded-For from the right and takes the first address that is not
// itself a trusted proxy, since only the entries our trusted proxies
// appended can be believed (the leftmost ones are whatever the client
// sent).
func clientIP(peer netip.Addr, trusted bool, prefixes []netip.Prefix, h http.Header) netip.Addr {
	if !trusted {
		return peer
	}
	values := h.Values("X-Forwarded-For")
	last := peer
	for i := len(values) - 1; i >= 0; i-- {
		parts := strings.Split(values[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			a, err := netip.ParseAddr(strings.TrimSpace(parts[j]))
			if err != nil {
				return last
			}
			a = a.Unmap()
			if !contains(prefixes, a) {
				return a
			}
			last = a
		}
	}
	return last
}

// scheme is the scheme the client used: https on TLS; a trusted proxy's
// X-Forwarded-Proto when it says http or https.
func scheme(r *http.Request, trusted bool) string {
	if trusted {
		switch p := strings.ToLower(r.Header.Get("X-Forwarded-Proto")); p {
		case "http", "https":
			return p
		}
	}
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

// idSource makes request IDs: a random per-process prefix and a counter,
// unique without a syscall per request.
type idSource struct {
	prefix string
	n      atomic.Uint64
}

func newIDSource() idSource {
	var b [6]byte
	rand.Read(b[:])
	return idSource{prefix: hex.EncodeToString(b[:]) + "-"}
}

// requestID keeps a client's X-Request-Id when it is a sane token (1 to
// 128 of [A-Za-z0-9._:-]), so traces join up across hops, and makes one
// otherwise.
func (s *idSource) requestID(client string) string {
	if validID(client) {
		return client
	}
	var buf [64]byte // the prefix is 13 bytes, a uint64 at most 13 digits
	return string(strconv.AppendUint(append(buf[:0], s.prefix...), s.n.Add(1), 36))
}

func validID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-' || c == '_' || c == '.' || c == ':':
		default:
			return false
		}
	}
	return true
}
