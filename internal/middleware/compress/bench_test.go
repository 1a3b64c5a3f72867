package compress

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"torii/internal/config"
)

// discardWriter is a ResponseWriter that throws the body away, so a
// benchmark measures the middleware and not a connection.
type discardWriter struct {
	h      http.Header
	status int
	n      int
}

func (d *discardWriter) Header() http.Header  { return d.h }
func (d *discardWriter) WriteHeader(code int) { d.status = code }
func (d *discardWriter) Write(p []byte) (int, error) {
	d.n += len(p)
	return len(p), nil
}

// BenchmarkCompress measures the throughput of each algorithm over a
// 64 KiB JSON body written in 16 KiB pieces, as the proxy would relay
// it; MB/s are of the uncompressed body.
func BenchmarkCompress(b *testing.B) {
	body := text(64 << 10)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		for i := 0; i < len(body); i += 16 << 10 {
			w.Write(body[i : i+16<<10])
		}
	})
	for _, alg := range []string{"gzip", "br", "zstd"} {
		b.Run(alg, func(b *testing.B) {
			mw, err := New(&config.Compress{Algorithms: []string{alg}})
			if err != nil {
				b.Fatal(err)
			}
			handler := mw(h)
			req := httptest.NewRequest("GET", "/", nil)
			req.Header.Set("Accept-Encoding", "gzip, deflate, br, zstd")
			w := &discardWriter{h: http.Header{}}
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				w.n = 0
				handler.ServeHTTP(w, req)
			}
			b.ReportMetric(float64(w.n)/float64(len(body))*100, "%size")
			if w.h.Get("Content-Encoding") != alg {
				b.Fatalf("Content-Encoding: got %q, want %q", w.h.Get("Content-Encoding"), alg)
			}
		})
	}
	b.Run("passthrough", func(b *testing.B) {
		mw, _ := New(&config.Compress{})
		handler := mw(h)
		req := httptest.NewRequest("GET", "/", nil)
		w := &discardWriter{h: http.Header{}}
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			clear(w.h)
			handler.ServeHTTP(w, req)
		}
	})
}
