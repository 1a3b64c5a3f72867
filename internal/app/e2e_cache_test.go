package app

import (
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// TestE2ECache: a cached, compressed route through the whole app — miss,
// hit, a separately stored gzip variant, and a purge through the admin API.
func TestE2ECache(t *testing.T) {
	var hits atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=60")
		fmt.Fprintf(w, `{"items": %q}`, strings.Repeat("x", 4096))
	}))
	defer up.Close()
	ta := startApp(t, testListeners+fmt.Sprintf(`
upstreams:
  app: {endpoints: [%q]}
routes:
  - name: items
    backends: [{upstream: app}]
    cache: {}
    compress: {}
`, up.Listener.Addr().String()))

	get := func(encoding string) (xcache, contentEncoding, body string) {
		t.Helper()
		req, _ := http.NewRequest("GET", ta.base+"/v1/items", nil)
		req.Header.Set("Accept-Encoding", encoding) // set explicitly: no transparent decoding
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var r io.Reader = resp.Body
		if resp.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			r = zr
		}
		b, _ := io.ReadAll(r)
		return resp.Header.Get("X-Cache"), resp.Header.Get("Content-Encoding"), string(b)
	}

	steps := []struct {
		name, encoding, wantCache, wantEncoding string
		wantUpstream                            int64
	}{
		{"first identity request fills the cache", "identity", "MISS", "", 1},
		{"second is a hit", "identity", "HIT", "", 1},
		{"gzip is its own variant", "gzip", "MISS", "gzip", 2},
		{"gzip variant is a hit", "gzip", "HIT", "gzip", 2},
	}
	for _, s := range steps {
		xc, ce, body := get(s.encoding)
		if xc != s.wantCache || ce != s.wantEncoding || hits.Load() != s.wantUpstream || !strings.HasPrefix(body, `{"items": "xxx`) {
			t.Errorf("%s: got X-Cache %q, Content-Encoding %q, upstream requests %d, body %.20q; want %q, %q, %d",
				s.name, xc, ce, hits.Load(), body, s.wantCache, s.wantEncoding, s.wantUpstream)
		}
	}

	req, _ := http.NewRequest("POST", ta.admin+"/api/v1/cache/purge", strings.NewReader(`{"prefix": "127.0.0.1"}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"purged": 2`) {
		t.Errorf("purge: got %d %s, want 200 and 2 entries purged", resp.StatusCode, b)
	}
	if xc, _, _ := get("identity"); xc != "MISS" || hits.Load() != 3 {
		t.Errorf("after purge: got X-Cache %q with %d upstream requests, want MISS and 3", xc, hits.Load())
	}
}
