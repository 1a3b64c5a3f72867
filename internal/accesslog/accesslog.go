// Package accesslog writes one structured JSON line per request with
// log/slog. docs/observability.md lists the fields.
//
// The log is built for safety first: it records the request path without
// its query string, and no header values but the User-Agent, so tokens,
// cookies and credentials (Authorization, Cookie, Set-Cookie,
// Proxy-Authorization, query parameters, URL userinfo, Referer) never
// reach it.
package accesslog

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"torii/internal/config"
	"torii/internal/request"
)

// Logger writes access log lines. A Logger built from a disabled config,
// and a nil *Logger, log nothing. Its methods are safe for concurrent use
// when its writer is (slog serialises each line's write).
type Logger struct {
	log *slog.Logger // nil when disabled
	// sample is the share of ordinary requests logged, 0 to 1.
	sample float64
}

// New returns a Logger writing JSON lines to w. cfg.Sample, when set, is
// the share of ordinary requests logged (default 1: all); see Log for the
// requests that are always logged. The caller opens and closes w
// (cfg.Path names it).
func New(cfg config.AccessLog, w io.Writer) *Logger {
	if cfg.Disabled {
		return &Logger{}
	}
	sample := 1.0
	if cfg.Sample != nil {
		sample = min(max(*cfg.Sample, 0), 1)
	}
	return &Logger{
		log:    slog.New(slog.NewJSONHandler(w, nil)),
		sample: sample,
	}
}

// Log writes the line for a finished request r whose outcome is info and
// which took dur. Requests that ended in a server error (status >= 500),
// or whose client went away first (499), are always logged; others are
// logged with probability Sample.
func (l *Logger) Log(r *http.Request, info *request.Info, dur time.Duration) {
	if l == nil || l.log == nil || !l.sampled(info.Status) {
		return
	}
	attrs := [...]slog.Attr{
		slog.String("id", info.ID),
		slog.String("client_ip", clientIP(info)),
		slog.String("method", r.Method),
		slog.String("host", hostOnly(r.Host)),
		// The path only: the query string may carry tokens.
		slog.String("path", r.URL.Path),
		slog.String("route", info.Route),
		slog.String("upstream", info.Upstream),
		slog.String("endpoint", info.Endpoint),
		slog.Int("status", info.Status),
		slog.Int64("bytes_out", info.BytesOut),
		slog.Float64("duration_ms", float64(dur)/float64(time.Millisecond)),
		slog.Int("tries", info.Tries),
		slog.String("user_agent", r.UserAgent()),
		{}, // error, when there is one
	}
	n := len(attrs) - 1
	if info.Err != nil {
		attrs[n] = slog.String("error", info.Err.Error())
		n++
	}
	l.log.LogAttrs(context.Background(), slog.LevelInfo, "request", attrs[:n]...)
}

// sampled reports whether a request that ended with status is logged.
func (l *Logger) sampled(status int) bool {
	if status >= 500 || status == 499 || l.sample >= 1 {
		return true
	}
	// math/rand/v2's top-level functions use a per-thread generator: no
	// lock, no allocation.
	return rand.Float64() < l.sample
}

// hostOnly returns host without any userinfo. net/http's server refuses a
// Host header with "@" and keeps the userinfo of an absolute request URI
// out of r.Host, but a request built elsewhere (a test, an HTTP/2 or
// HTTP/3 front end) may not have been through that check.
func hostOnly(host string) string {
	if i := strings.LastIndexByte(host, '@'); i >= 0 {
		return host[i+1:]
	}
	return host
}

// clientIP returns the client address as text, or "" when unknown.
func clientIP(info *request.Info) string {
	if !info.ClientIP.IsValid() {
		return ""
	}
	return info.ClientIP.String()
}
