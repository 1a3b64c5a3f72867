package jwt

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"torii/internal/config"
	"torii/internal/request"
)

// nopWriter is a ResponseWriter that costs nothing, so the benchmarks
// measure the middleware.
type nopWriter struct {
	h      http.Header
	status int
}

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *nopWriter) WriteHeader(s int)           { w.status = s }

var upstream = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })

// benchRequest is a request carrying token, as the router hands it on.
func benchRequest(token string) *http.Request {
	r := httptest.NewRequest("GET", "http://api.example.com/v1/items", nil)
	r.Header.Set("Authorization", "Bearer "+token)
	r.Header.Set("Accept", "application/json")
	r.Header.Set("User-Agent", "bench")
	return r.WithContext(request.NewContext(context.Background(), &request.Info{ID: "bench"}))
}

func serveLoop(b *testing.B, h http.Handler, r *http.Request) {
	w := &nopWriter{h: http.Header{}}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		h.ServeHTTP(w, r)
	}
	if w.status != http.StatusNoContent {
		b.Fatalf("got status %d, want 204", w.status)
	}
}

// BenchmarkNoAuth is the baseline: the same request, no middleware.
func BenchmarkNoAuth(b *testing.B) {
	testKeys(b)
	serveLoop(b, upstream, benchRequest(sign(b, rsaKey, "RS256", "rsa1", claimsAt(epoch))))
}

// BenchmarkCachedToken is a repeated token: a cache hit.
func BenchmarkCachedToken(b *testing.B) {
	h := newHarness(b, nil)
	serveLoop(b, h.mw(upstream), benchRequest(h.token(claimsAt(epoch))))
}

// BenchmarkCachedTokenClaimsToHeaders adds one claim passed upstream as a
// header (one allocation: the header's value slice).
func BenchmarkCachedTokenClaimsToHeaders(b *testing.B) {
	h := newHarness(b, func(c *config.JWT) { c.ClaimsToHeaders = map[string]string{"sub": "X-User-Id"} })
	serveLoop(b, h.mw(upstream), benchRequest(h.token(claimsAt(epoch))))
}

// BenchmarkCachedTokenParallel is the hit path under contention.
func BenchmarkCachedTokenParallel(b *testing.B) {
	h := newHarness(b, nil)
	handler := h.mw(upstream)
	tok := h.token(claimsAt(epoch))
	handler.ServeHTTP(&nopWriter{h: http.Header{}}, benchRequest(tok)) // warm
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		r := benchRequest(tok)
		w := &nopWriter{h: http.Header{}}
		for pb.Next() {
			handler.ServeHTTP(w, r)
		}
	})
}

// BenchmarkVerify is the full check of a new token (a cache miss), for
// comparison: RS256 and ES256 signatures plus claims.
func BenchmarkVerify(b *testing.B) {
	h := newHarness(b, nil)
	m := middlewareOf(b, h)
	for _, tc := range []struct {
		name  string
		token string
	}{
		{"RS256", h.token(claimsAt(epoch))},
		{"ES256", sign(b, ecKey, "ES256", "ec1", claimsAt(epoch))},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, f := m.verify(context.Background(), tc.token, epoch); f != nil {
					b.Fatal(f)
				}
			}
		})
	}
}

// middlewareOf builds the *middleware behind a harness's config, to call
// verify directly.
func middlewareOf(tb testing.TB, h *harness) *middleware {
	cfg := &config.JWT{Issuer: issuer, JWKS: h.jwks.URL + "/jwks.json", Audiences: []string{"api"}}
	m, err := newMiddleware("bench", cfg, h.keys)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}
