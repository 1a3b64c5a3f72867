package runtime

import (
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"torii/internal/config"
	"torii/internal/request"
	"torii/internal/router"
)

// applyHeaderOps edits h in the documented order: remove, set, add.
func applyHeaderOps(h http.Header, ops config.HeaderOps) {
	for _, name := range ops.Remove {
		h.Del(name)
	}
	for name, v := range ops.Set {
		h.Set(name, v)
	}
	for name, v := range ops.Add {
		h.Add(name, v)
	}
}

// redirectHandler answers with a redirect built from the request and rd.
func redirectHandler(rd *config.Redirect, respOps config.HeaderOps) http.Handler {
	status := rd.Status
	if status == 0 {
		status = http.StatusFound
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u := url.URL{Scheme: rd.Scheme, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery}
		if u.Scheme == "" {
			u.Scheme = "http"
			if info := request.FromContext(r.Context()); info != nil && info.Scheme != "" {
				u.Scheme = info.Scheme
			}
		}
		host, port := r.Host, ""
		if h, p, err := net.SplitHostPort(r.Host); err == nil {
			host, port = h, p
		}
		if rd.Host != "" {
			host = rd.Host
		}
		if rd.Port != 0 {
			port = strconv.Itoa(rd.Port)
		} else if rd.Scheme != "" && rd.Scheme != schemeOf(r) {
			// Switching scheme (http -> https) drops the old scheme's port.
			port = ""
		}
		if port != "" && !defaultPort(u.Scheme, port) {
			u.Host = net.JoinHostPort(strings.Trim(host, "[]"), port)
		} else if strings.Contains(host, ":") && !strings.HasPrefix(host, "[") {
			u.Host = "[" + host + "]"
		} else {
			u.Host = host
		}
		if rd.Path != "" {
			u.Path, u.RawPath = rd.Path, ""
		}
		if rd.StripQuery {
			u.RawQuery = ""
		}
		applyHeaderOps(w.Header(), respOps)
		w.Header().Set("Location", u.String())
		w.WriteHeader(status)
	})
}

func schemeOf(r *http.Request) string {
	if info := request.FromContext(r.Context()); info != nil && info.Scheme != "" {
		return info.Scheme
	}
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

func defaultPort(scheme, port string) bool {
	return (scheme == "http" && port == "80") || (scheme == "https" && port == "443")
}

// directHandler answers with a fixed status and body.
func directHandler(d *config.DirectResponse, respOps config.HeaderOps) http.Handler {
	body := []byte(d.Body)
	ctype := d.ContentType
	if ctype == "" && len(body) > 0 {
		ctype = "text/plain; charset=utf-8"
	}
	clen := strconv.Itoa(len(body))
	if !bodyAllowed(d.Status) {
		// No content, so nothing to describe: RFC 9110 §8.6 forbids
		// Content-Length in a 204, and a 304 has no body of its own.
		body, ctype, clen = nil, "", ""
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		if ctype != "" {
			h.Set("Content-Type", ctype)
		}
		if clen != "" {
			h.Set("Content-Length", clen)
		}
		applyHeaderOps(h, respOps)
		w.WriteHeader(d.Status)
		if r.Method != http.MethodHead && len(body) > 0 {
			w.Write(body)
		}
	})
}

// bodyAllowed reports whether a response with status may carry a body
// (RFC 9110 §15.3.5, §15.4.5: not 204 or 304; 1xx never reaches here).
func bodyAllowed(status int) bool {
	return status != http.StatusNoContent && status != http.StatusNotModified
}

// rewriter changes the request path before forwarding: strip_prefix, then
// rewrite. It works on the escaped (cleaned) path so encoded characters
// such as %2F survive untouched.
type rewriter struct {
	strip       string
	matchPrefix string
	path        string
	prefix      string
	re          *regexp.Regexp
	replace     string
}

func newRewriter(rc *config.Route) (*rewriter, error) {
	rw := &rewriter{strip: strings.TrimSuffix(rc.StripPrefix, "/"), matchPrefix: rc.Match.PathPrefix}
	if rc.Rewrite != nil {
		rw.path = rc.Rewrite.Path
		rw.prefix = rc.Rewrite.Prefix
		rw.replace = rc.Rewrite.Replace
		if rc.Rewrite.Regex != "" {
			re, err := regexp.Compile(rc.Rewrite.Regex)
			if err != nil {
				return nil, err
			}
			rw.re = re
		}
	}
	return rw, nil
}

func (rw *rewriter) active() bool {
	return rw.strip != "" || rw.path != "" || rw.prefix != "" || rw.re != nil
}

func (rw *rewriter) wrap(next http.Handler) http.Handler {
	if !rw.active() {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := rw.rewrite(r.URL.EscapedPath())
		// The config's paths may hold bytes a path must escape ("/café");
		// clean the result so they are escaped and an encoded "%2F" from
		// the request is not decoded into a separator on the way out.
		if c, err := router.CleanPath(p); err == nil {
			p = c
		}
		if p != r.URL.EscapedPath() {
			r2 := r.Clone(r.Context())
			SetEscapedPath(r2.URL, p)
			r = r2
		}
		next.ServeHTTP(w, r)
	})
}

// rewrite returns the new escaped path for p.
func (rw *rewriter) rewrite(p string) string {
	if rw.strip != "" && hasSegmentPrefix(p, rw.strip) {
		p = p[len(rw.strip):]
		if p == "" || p[0] != '/' {
			p = "/" + p
		}
	}
	switch {
	case rw.path != "":
		p = rw.path
	case rw.prefix != "":
		mp := strings.TrimSuffix(rw.matchPrefix, "/")
		if rw.strip != "" {
			mp = strings.TrimPrefix(mp, rw.strip)
		}
		if hasSegmentPrefix(p, mp) {
			rest := p[len(mp):]
			p = strings.TrimSuffix(rw.prefix, "/") + rest
			if rest == "" && strings.HasSuffix(rw.prefix, "/") {
				p = rw.prefix
			}
			if p == "" {
				p = "/"
			}
		}
	case rw.re != nil:
		p = rw.re.ReplaceAllString(p, rw.replace)
		if p == "" || p[0] != '/' {
			p = "/" + p
		}
	}
	return p
}

// hasSegmentPrefix reports whether p starts with prefix on a path segment
// boundary ("/api" is a prefix of "/api" and "/api/x", not "/apix").
func hasSegmentPrefix(p, prefix string) bool {
	if prefix == "" {
		return true
	}
	if !strings.HasPrefix(p, prefix) {
		return false
	}
	return len(p) == len(prefix) || p[len(prefix)] == '/' || strings.HasSuffix(prefix, "/")
}

// SetEscapedPath sets u's path from an escaped path. An escaped path that
// does not decode (impossible after CleanPath) is used as is.
func SetEscapedPath(u *url.URL, escaped string) {
	dec, err := url.PathUnescape(escaped)
	if err != nil {
		u.Path, u.RawPath = escaped, ""
		return
	}
	// Keep the exact escaped form: url.URL.EscapedPath returns RawPath when
	// it is a valid encoding of Path, so the upstream sees byte for byte the
	// path the router matched, not net/url's own re-escaping of it.
	u.Path, u.RawPath = dec, escaped
}
