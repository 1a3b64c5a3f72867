package app

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
)

// BenchmarkFront is the cost of torii's own request handling around a
// route: identity, path cleaning, routing, metrics and a 1 % sampled access
// log, answered by a direct response so no network is involved.
func BenchmarkFront(b *testing.B) {
	path := filepath.Join(b.TempDir(), "torii.yaml")
	writeFile(b, path, `
listen: [{addr: "127.0.0.1:0"}]
admin: {disabled: true}
access_log: {sample: 0.01}
routes:
  - name: hello
    match: {host: api.example.com, path_prefix: /v1}
    direct_response: {status: 200, body: hi}
`)
	a, err := New(Options{ConfigPath: path, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), AccessLog: io.Discard})
	if err != nil {
		b.Fatal(err)
	}
	if err := a.applyObservability(a.snap.Load().Config()); err != nil {
		b.Fatal(err)
	}
	f := &front{app: a, ids: newIDSource()}
	req := httptest.NewRequest("GET", "http://api.example.com/v1/items?x=1", nil)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		w := httptest.NewRecorder()
		f.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d", w.Code)
		}
	}
}
