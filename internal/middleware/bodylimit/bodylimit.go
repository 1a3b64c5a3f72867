// Package bodylimit caps request bodies per route. A declared
// Content-Length over the cap is refused before anything is read; a
// streamed (chunked) body is cut as soon as it passes the cap, and the
// proxy maps the resulting *http.MaxBytesError to 413 — so a body too large
// never reaches an upstream whole.
package bodylimit

import (
	"net/http"
	"strconv"

	"torii/internal/proxy"
)

// New returns a middleware that limits request bodies to max bytes. A max
// below zero means no limit, and New returns next unchanged.
func New(max int64) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		if max < 0 {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ContentLength > max {
				// RFC 9110 §15.5.14: the server may close the connection
				// to stop the client sending the rest.
				w.Header().Set("Connection", "close")
				proxy.WriteError(w, r, http.StatusRequestEntityTooLarge, "request body larger than "+strconv.FormatInt(max, 10)+" bytes")
				return
			}
			if r.Body != nil && r.Body != http.NoBody {
				r.Body = http.MaxBytesReader(w, r.Body, max)
			}
			next.ServeHTTP(w, r)
		})
	}
}
