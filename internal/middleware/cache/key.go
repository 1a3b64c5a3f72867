package cache

import (
	"net/http"
	"strings"

	"torii/internal/request"
)

// appendURLKey appends r's URL key to dst: scheme "://" host path
// ["?" query]. The scheme is the one torii established (TLS, or a trusted
// proxy's X-Forwarded-Proto), because an upstream often answers http with
// a redirect to https. The host is the Host torii routed on, lower-cased,
// without the scheme's default port. The path and query are kept exactly
// as the client sent them: two spellings of a query are two entries, each
// holding the upstream's own answer to that spelling, so no spelling can
// change what another client receives.
func appendURLKey(dst []byte, scheme string, r *http.Request) []byte {
	dst = append(dst, scheme...)
	dst = append(dst, "://"...)
	host := stripDefaultPort(r.Host, scheme)
	for i := 0; i < len(host); i++ {
		c := host[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	if r.URL.RawPath != "" {
		dst = append(dst, r.URL.RawPath...)
	} else {
		dst = append(dst, r.URL.EscapedPath()...)
	}
	if r.URL.RawQuery != "" || r.URL.ForceQuery {
		dst = append(dst, '?')
		dst = append(dst, r.URL.RawQuery...)
	}
	return dst
}

// stripDefaultPort removes ":80" from an http host and ":443" from an
// https one.
func stripDefaultPort(host, scheme string) string {
	switch {
	case scheme == "http" && strings.HasSuffix(host, ":80"):
		return host[:len(host)-3]
	case scheme == "https" && strings.HasSuffix(host, ":443"):
		return host[:len(host)-4]
	}
	return host
}

// schemeOf returns the scheme the client used.
func schemeOf(r *http.Request, info *request.Info) string {
	if info != nil && info.Scheme != "" {
		return info.Scheme
	}
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

// headerEquals reports whether the field lines of a request header equal
// a stored selecting value (lines joined with ", "; RFC 9111 §4.1 allows
// this normalisation). It does not allocate.
func headerEquals(lines []string, want string) bool {
	switch len(lines) {
	case 0:
		return want == ""
	case 1:
		return strings.TrimSpace(lines[0]) == want
	}
	for i, l := range lines {
		l = strings.TrimSpace(l)
		if !strings.HasPrefix(want, l) {
			return false
		}
		want = want[len(l):]
		if i < len(lines)-1 {
			if !strings.HasPrefix(want, ", ") {
				return false
			}
			want = want[2:]
		}
	}
	return want == ""
}

// headerValue returns a request header's field lines joined with ", ",
// trimmed: the stored form of a selecting value.
func headerValue(lines []string) string {
	switch len(lines) {
	case 0:
		return ""
	case 1:
		return strings.TrimSpace(lines[0])
	}
	parts := make([]string, len(lines))
	for i, l := range lines {
		parts[i] = strings.TrimSpace(l)
	}
	return strings.Join(parts, ", ")
}

// overrideHeaders are request headers some frameworks read as a different
// URL, host, scheme or method than the request's own: the classic
// unkeyed inputs of cache poisoning. A request carrying one may be
// answered from the cache, but its response is never stored or shared
// with waiting requests, so what it makes the upstream say reaches nobody
// else. X-Forwarded-Host and X-Forwarded-Proto are safe: torii's proxy
// replaces them unless the peer is a trusted proxy (see forwardedMismatch).
var overrideHeaders = []string{
	"X-Original-Url", "X-Rewrite-Url", "X-Forwarded-Scheme", "X-Forwarded-Server",
	"X-Forwarded-Prefix", "X-Forwarded-Port", "X-Host", "X-Http-Method-Override",
	"X-Http-Method", "X-Method-Override",
}

// mayFill reports whether a response to r may be stored: r carries none
// of the override headers, and a trusted proxy's X-Forwarded-Host (which
// torii passes on) names the host torii routed on.
func mayFill(r *http.Request, info *request.Info) bool {
	for _, name := range overrideHeaders {
		if _, ok := r.Header[name]; ok {
			return false
		}
	}
	if info != nil && info.PeerTrusted {
		if fh := r.Header["X-Forwarded-Host"]; len(fh) > 0 && (len(fh) > 1 || !strings.EqualFold(fh[0], r.Host)) {
			return false
		}
	}
	return true
}
