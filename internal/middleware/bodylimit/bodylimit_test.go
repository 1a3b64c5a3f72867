package bodylimit

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"torii/internal/config"
	"torii/internal/proxy"
	"torii/internal/request"
	"torii/internal/upstream"
)

// gateway is a body limit in front of the real proxy handler and a real
// upstream that counts the body bytes it receives.
func gateway(t *testing.T, max int64) (url string, received *atomic.Int64, hits *atomic.Int64) {
	t.Helper()
	received, hits = new(atomic.Int64), new(atomic.Int64)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		n, _ := io.Copy(io.Discard, r.Body)
		received.Add(n)
	}))
	t.Cleanup(up.Close)
	reg := upstream.NewRegistry(upstream.Options{})
	pool, err := upstream.NewPool("app", &config.Upstream{Endpoints: []config.Endpoint{{Addr: up.Listener.Addr().String(), Weight: 1}}}, reg)
	if err != nil {
		t.Fatal(err)
	}
	h, err := proxy.New(proxy.Options{Route: "r", Backends: []proxy.Backend{{Pool: pool, Weight: 1}}, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	limited := New(max)(h)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := &request.Info{ID: "t"}
		limited.ServeHTTP(w, r.WithContext(request.NewContext(context.Background(), info)))
	}))
	t.Cleanup(front.Close)
	return front.URL, received, hits
}

func TestBodyLimit(t *testing.T) {
	tests := []struct {
		name       string
		max        int64
		body       string
		chunked    bool
		wantStatus int
		wantBytes  int64 // bytes the upstream received, -1: any number less than the body
	}{
		{"under the limit", 100, strings.Repeat("a", 100), false, 200, 100},
		{"declared length over the limit", 100, strings.Repeat("a", 101), false, 413, 0},
		{"chunked under the limit", 100, strings.Repeat("a", 80), true, 200, 80},
		{"chunked over the limit", 1024, strings.Repeat("a", 64<<10), true, 413, -1},
		{"no limit", -1, strings.Repeat("a", 1<<20), true, 200, 1 << 20},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			url, received, _ := gateway(t, tc.max)
			var body io.Reader = strings.NewReader(tc.body)
			if tc.chunked {
				body = io.MultiReader(body) // hides the length: sent chunked
			}
			req, _ := http.NewRequest("POST", url, body)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus {
				t.Errorf("status: got %d, want %d", resp.StatusCode, tc.wantStatus)
			}
			got := received.Load()
			switch {
			case tc.wantBytes >= 0 && got != tc.wantBytes:
				t.Errorf("upstream received %d bytes, want %d", got, tc.wantBytes)
			case tc.wantBytes < 0 && got >= int64(len(tc.body)):
				t.Errorf("upstream received the whole %d-byte body, want it cut", got)
			}
		})
	}
}

// TestDeclaredTooLargeNeverSent: a 413 for a declared length is answered
// before the body is read, and the upstream never sees the request.
func TestDeclaredTooLargeNeverSent(t *testing.T) {
	url, _, hits := gateway(t, 10)
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 413 {
		t.Errorf("status: got %d, want 413", resp.StatusCode)
	}
	if hits.Load() != 0 {
		t.Errorf("upstream saw %d requests, want 0", hits.Load())
	}
}
