package cache

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// benchBody is a typical small API response.
var benchBody = strings.Repeat("b", 2048)

func benchRig(b *testing.B) *rig {
	return newRig(b, rigOptions{}, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(benchBody))
	})
}

// BenchmarkHit serves a stored response through the cache middleware in
// front of the proxy.
func BenchmarkHit(b *testing.B) {
	g := benchRig(b)
	req := httptest.NewRequest("GET", "http://api.example.com/items?id=1", nil)
	g.serveDirect(&discard{h: http.Header{}}, req)
	b.ReportAllocs()
	for b.Loop() {
		g.serveDirect(&discard{h: http.Header{}}, req)
	}
}

// BenchmarkMiss proxies every request through the same stack, the cache
// bypassed by the request's no-store.
func BenchmarkMiss(b *testing.B) {
	g := benchRig(b)
	req := httptest.NewRequest("GET", "http://api.example.com/items?id=1", nil)
	req.Header.Set("Cache-Control", "no-store")
	b.ReportAllocs()
	for b.Loop() {
		g.serveDirect(&discard{h: http.Header{}}, req)
	}
}
