package app

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// TestE2EAmbiguousFraming is acceptance point 5's raw-socket half: each
// ambiguous HTTP/1.1 framing sent to the app gets 400, the connection is
// closed after the response (RFC 9112 §6.1), and the upstream sees
// nothing of it.
func TestE2EAmbiguousFraming(t *testing.T) {
	up := newE2EEcho(t)
	ta := startApp(t, testListeners+fmt.Sprintf(`
upstreams:
  app: {endpoints: [%q]}
routes:
  - name: all
    backends: [{upstream: app}]
`, up.addr()))
	addr := e2eAddr(ta, 0)

	const host = "Host: gw.test\r\n"
	tests := []struct {
		name         string
		req          string
		wantStatuses []int
		wantHits     int64 // requests the upstream sees
	}{
		{"control: valid request", "GET /ok HTTP/1.1\r\n" + host + "Connection: close\r\n\r\n", []int{200}, 1},
		{"CL and TE", "POST /x HTTP/1.1\r\n" + host + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", []int{400}, 0},
		{"TE and CL", "POST /x HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\nContent-Length: 13\r\n\r\n0\r\n\r\nGET /s HTTP/1.1\r\n" + host + "\r\n", []int{400}, 0},
		{"two different Content-Lengths", "POST /x HTTP/1.1\r\n" + host + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", []int{400}, 0},
		{"Content-Length list", "POST /x HTTP/1.1\r\n" + host + "Content-Length: 5, 6\r\n\r\nhello!", []int{400}, 0},
		{"TE gzip, chunked", "POST /x HTTP/1.1\r\n" + host + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", []int{400}, 0},
		{"TE chunked, identity", "POST /x HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", []int{400}, 0},
		{"two identical Content-Lengths", "POST /x HTTP/1.1\r\n" + host + "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", []int{400}, 0},
		{"TE in HTTP/1.0", "POST /x HTTP/1.0\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", []int{400}, 0},
		{"invalid chunk size", "POST /x HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", []int{400}, 0},
		{"obs-fold after the request line", "GET /x HTTP/1.1\r\n " + host + "\r\n", []int{400}, 0},
		{"obs-fold header line", "GET /x HTTP/1.1\r\n" + host + "X-Folded: a\r\n b\r\n\r\n", []int{400}, 0},
		{"bare LF line endings", "GET /x HTTP/1.1\n" + "Host: gw.test\n\n", []int{400}, 0},
		{"bare LF in one field line", "GET /x HTTP/1.1\r\n" + host + "X-A: b\nX-B: c\r\n\r\n", []int{400}, 0},
		{"valid request then a smuggled one",
			"GET /first HTTP/1.1\r\n" + host + "\r\n" +
				"POST /smuggled HTTP/1.1\r\n" + host + "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
			[]int{200, 400}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := up.hits.Load()
			res := e2eRaw(t, addr, tc.req)
			if !slices.Equal(res.statuses, tc.wantStatuses) {
				t.Errorf("responses: got %v, want %v", res.statuses, tc.wantStatuses)
			}
			if !res.closed {
				t.Errorf("connection after the responses: got %s, want closed (EOF)", res.after)
			}
			if got := up.hits.Load() - before; got != tc.wantHits {
				t.Errorf("upstream requests: got %d, want %d", got, tc.wantHits)
			}
			if tc.wantHits == 1 {
				if p := up.last.Load().URL.Path; p != "/first" && p != "/ok" {
					t.Errorf("upstream saw path %q, want only the valid request's", p)
				}
			}
		})
	}
	if v, ok := gauge(t, ta.App, "torii_listener_requests_rejected_total", map[string]string{"reason": "framing"}); !ok || v < float64(len(tests)-2) {
		t.Errorf(`torii_listener_requests_rejected_total{reason="framing"}: got %v (found %v), want at least %d`, v, ok, len(tests)-2)
	}
}

// TestE2EBrokenChunkedBody: a chunked body whose framing breaks after the
// head was let through (the head is held only until the first chunk-size
// line, docs/request-limits.md) must still end in 400 and a closed
// connection, and the upstream must never see a complete request: a body
// streamed to it is aborted, a body torii buffers never leaves.
func TestE2EBrokenChunkedBody(t *testing.T) {
	var hits, complete atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if _, err := io.Copy(io.Discard, r.Body); err == nil {
			complete.Add(1)
		}
		// Like many upstreams, it answers whatever happened to the body.
	}))
	defer up.Close()
	ta := startApp(t, testListeners+fmt.Sprintf(`
upstreams:
  app: {endpoints: [%q]}
routes:
  - name: all
    backends: [{upstream: app}]
`, up.Listener.Addr().String()))

	const head = " /x HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n"
	tests := []struct {
		name     string
		req      string
		wantHits int64 // requests the upstream sees begin
	}{
		// POST is not idempotent, so its body is streamed: the upstream
		// sees the request begin, and its body read must fail.
		{"streamed: chunk data without CRLF", "POST" + head + "5\r\nhelloXX0\r\n\r\n", 1},
		{"streamed: invalid second chunk size", "POST" + head + "5\r\nhello\r\nzz\r\n0\r\n\r\n", 1},
		// An idempotent request's small body is read whole first (for
		// retries): the upstream sees nothing.
		{"buffered: invalid second chunk size", "PUT" + head + "5\r\nhello\r\nzz\r\n0\r\n\r\n", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hitsBefore, completeBefore := hits.Load(), complete.Load()
			res := e2eRaw(t, e2eAddr(ta, 0), tc.req)
			if !slices.Equal(res.statuses, []int{400}) {
				t.Errorf("responses: got %v, want [400]", res.statuses)
			}
			if !res.closed {
				t.Errorf("connection after the responses: got %s, want closed (EOF)", res.after)
			}
			if got := complete.Load() - completeBefore; got != 0 {
				t.Errorf("complete requests at the upstream: got %d, want 0", got)
			}
			if got := hits.Load() - hitsBefore; got > tc.wantHits {
				t.Errorf("requests the upstream saw begin: got %d, want at most %d", got, tc.wantHits)
			}
			// An aborted upstream request may still be arriving: let the
			// counts settle so the next case starts from its own zero.
			for last, deadline := hits.Load(), time.Now().Add(time.Second); time.Now().Before(deadline); {
				time.Sleep(50 * time.Millisecond)
				if n := hits.Load(); n == last {
					break
				} else {
					last = n
				}
			}
		})
	}
}
