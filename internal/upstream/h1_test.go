package upstream

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// rawOrigin is an upstream that answers every request head it reads with
// a canned byte string, for framing the standard library would not send.
type rawOrigin struct {
	ln    net.Listener
	conns atomic.Int64 // connections accepted
	reqs  atomic.Int64 // request heads read
}

// newRawOrigin answers each request with response; with closeAfter it
// closes the connection after answering.
func newRawOrigin(t *testing.T, response string, closeAfter bool) *rawOrigin {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &rawOrigin{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			o.conns.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					o.reqs.Add(1)
					if _, err := io.WriteString(c, response); err != nil || closeAfter {
						return
					}
				}
			}()
		}
	}()
	return o
}

func (o *rawOrigin) addr() string { return o.ln.Addr().String() }

func newTestH1(maxIdle int) *h1Transport {
	return newH1Transport(transportKey{
		connectTimeout:     time.Second,
		maxIdlePerEndpoint: maxIdle,
		idleTimeout:        time.Minute,
		protocol:           ProtocolHTTP1,
	}, nil)
}

func h1Get(t *testing.T, tr *h1Transport, method, addr string) (*http.Response, string, error) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+addr+"/x", nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := tr.RoundTrip(req)
	if err != nil {
		return nil, "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res, string(b), err
}

// TestH1ResponseFraming: every ambiguous framing of a response is refused
// (502 at the proxy), the valid forms are read exactly.
func TestH1ResponseFraming(t *testing.T) {
	tests := []struct {
		name     string
		method   string
		response string
		wantBody string
		wantErr  bool // from RoundTrip or the body
		trailer  string
	}{
		{name: "content-length", response: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", wantBody: "hello"},
		{name: "chunked", response: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n", wantBody: "hello world"},
		{name: "chunked with trailer", response: "HTTP/1.1 200 OK\r\nTrailer: Grpc-Status\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\nGrpc-Status: 0\r\n\r\n", wantBody: "hi", trailer: "0"},
		{name: "head with length", method: "HEAD", response: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", wantBody: ""},
		{name: "204 without body", response: "HTTP/1.1 204 No Content\r\n\r\n", wantBody: ""},
		{name: "304 with length", response: "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", wantBody: ""},
		{name: "100 then 200", response: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", wantBody: "ok"},
		{name: "103 dropped", response: "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", wantBody: "ok"},
		{name: "no reason phrase", response: "HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok", wantBody: "ok"},
		{name: "close-delimited", response: "HTTP/1.1 200 OK\r\n\r\nuntil close", wantBody: "until close"},

		{name: "CL and TE", response: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", wantErr: true},
		{name: "two identical CLs", response: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", wantErr: true},
		{name: "two different CLs", response: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", wantErr: true},
		{name: "CL list", response: "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello", wantErr: true},
		{name: "CL with sign", response: "HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello", wantErr: true},
		{name: "TE gzip, chunked", response: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", wantErr: true},
		{name: "TE identity", response: "HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\nx", wantErr: true},
		{name: "TE in HTTP/1.0", response: "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", wantErr: true},
		{name: "bad chunk size", response: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", wantErr: true},
		{name: "chunk size overflow", response: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1000000000000000\r\nx\r\n0\r\n\r\n", wantErr: true},
		{name: "chunk without CRLF", response: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhiXX0\r\n\r\n", wantErr: true},
		{name: "obs-fold", response: "HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 0\r\n\r\n", wantErr: true},
		{name: "bare LF", response: "HTTP/1.1 200 OK\nContent-Length: 0\n\n", wantErr: true},
		{name: "bare LF in a field", response: "HTTP/1.1 200 OK\r\nX-A: a\nX-B: b\r\nContent-Length: 0\r\n\r\n", wantErr: true},
		{name: "space before colon", response: "HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok", wantErr: true},
		{name: "NUL in value", response: "HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 0\r\n\r\n", wantErr: true},
		{name: "oversized head", response: "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("a", maxResponseHeaderBytes) + "\r\n\r\n", wantErr: true},
		{name: "too many 1xx", response: strings.Repeat("HTTP/1.1 103 Early Hints\r\n\r\n", maxInterim+1) + "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", wantErr: true},
		{name: "HTTP/2 status line", response: "HTTP/2 200\r\n\r\n", wantErr: true},
		{name: "truncated body", response: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newRawOrigin(t, tt.response, true)
			tr := newTestH1(4)
			defer tr.CloseIdleConnections()
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			res, body, err := h1Get(t, tr, method, o.addr())
			if tt.wantErr {
				if err == nil {
					t.Fatalf("got status %d body %q, want an error", res.StatusCode, body)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want body %q", err, tt.wantBody)
			}
			if body != tt.wantBody {
				t.Errorf("body: got %q, want %q", body, tt.wantBody)
			}
			if tt.trailer != "" {
				if got := res.Trailer.Get("Grpc-Status"); got != tt.trailer {
					t.Errorf("trailer Grpc-Status: got %q, want %q", got, tt.trailer)
				}
			}
		})
	}
}

// TestH1FramingErrorIsTyped: a refused head says why, as ErrResponseFraming.
func TestH1FramingErrorIsTyped(t *testing.T) {
	o := newRawOrigin(t, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx", true)
	tr := newTestH1(4)
	_, _, err := h1Get(t, tr, "GET", o.addr())
	if !errors.Is(err, ErrResponseFraming) {
		t.Errorf("got %v, want ErrResponseFraming", err)
	}
}

// TestH1KeepAlive: sequential requests share one connection; a response
// that says close, or is delimited by the close, does not.
func TestH1KeepAlive(t *testing.T) {
	tests := []struct {
		name      string
		response  string
		wantConns int64
	}{
		{"content-length", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 1},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", 1},
		{"connection close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", 3},
		{"HTTP/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newRawOrigin(t, tt.response, false)
			tr := newTestH1(4)
			defer tr.CloseIdleConnections()
			for i := range 3 {
				if _, body, err := h1Get(t, tr, "GET", o.addr()); err != nil || body != "ok" {
					t.Fatalf("request %d: got %q, %v; want ok", i, body, err)
				}
			}
			if got := o.conns.Load(); got != tt.wantConns {
				t.Errorf("connections: got %d, want %d", got, tt.wantConns)
			}
		})
	}
}

// TestH1IdleTimeout: a connection idle for idleTimeout is closed, and
// one used again before that lives a whole idleTimeout from its last use,
// though its timer was set at its first.
func TestH1IdleTimeout(t *testing.T) {
	const idle = 300 * time.Millisecond
	o := newRawOrigin(t, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false)
	tr := newH1Transport(transportKey{
		connectTimeout:     time.Second,
		maxIdlePerEndpoint: 4,
		idleTimeout:        idle,
		protocol:           ProtocolHTTP1,
	}, nil)
	defer tr.CloseIdleConnections()
	idleConns := func() int {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		n := 0
		for _, h := range tr.hosts {
			n += len(h.idle)
		}
		return n
	}
	get := func() {
		t.Helper()
		if _, body, err := h1Get(t, tr, "GET", o.addr()); err != nil || body != "ok" {
			t.Fatalf("got %q, %v; want ok", body, err)
		}
	}
	get()
	time.Sleep(idle * 2 / 3)
	get() // reused; idle again from now
	used := time.Now()
	time.Sleep(idle / 2) // past the first idle spell's end
	if idleConns() != 1 && time.Since(used) < idle {
		t.Fatal("a connection reused within its idle timeout was closed at the first spell's end")
	}
	if got := o.conns.Load(); got != 1 {
		t.Fatalf("%d connections, want 1 reused", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for idleConns() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("an idle connection outlived its idle timeout")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if d := time.Since(used); d < idle {
		t.Fatalf("closed after %v idle, before its %v timeout", d, idle)
	}
	get()
	if got := o.conns.Load(); got != 2 {
		t.Fatalf("%d connections after the idle one closed, want 2", got)
	}
}

// TestH1StaleConnectionRetried: a GET on a kept-alive connection the
// upstream has since closed is sent again on a new one.
func TestH1StaleConnectionRetried(t *testing.T) {
	// The origin closes each connection after one response without
	// saying so, like an upstream whose idle timeout just fired.
	o := newRawOrigin(t, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true)
	tr := newTestH1(4)
	defer tr.CloseIdleConnections()
	for i := range 3 {
		if _, body, err := h1Get(t, tr, "GET", o.addr()); err != nil || body != "ok" {
			t.Fatalf("request %d: got %q, %v; want ok", i, body, err)
		}
		time.Sleep(10 * time.Millisecond) // let the close arrive
	}
}

// TestH1RequestHead: the head written upstream carries Host, the fields
// but the framing ones, and framing for the body.
func TestH1RequestHead(t *testing.T) {
	tests := []struct {
		name   string
		method string
		header http.Header
		length int64
		want   []string
		reject bool
	}{
		{name: "get", method: "GET", header: http.Header{"X-A": {"1"}, "Content-Length": {"9"}},
			want: []string{"GET /p?q=1 HTTP/1.1\r\nHost: h.test\r\n", "X-A: 1\r\n"}},
		{name: "post without body", method: "POST", want: []string{"Content-Length: 0\r\n"}},
		{name: "chunked", method: "POST", length: -1, want: []string{"Transfer-Encoding: chunked\r\n"}},
		{name: "CR in value", method: "GET", header: http.Header{"X-A": {"a\r\nX-B: b"}}, reject: true},
		{name: "bad name", method: "GET", header: http.Header{"X A": {"1"}}, reject: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, "http://h.test/p?q=1", nil)
			req.Header = tt.header
			b, err := appendRequestHead(nil, req, tt.length)
			if tt.reject {
				if err == nil {
					t.Fatalf("got head %q, want an error", b)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(b), w) {
					t.Errorf("head %q: missing %q", b, w)
				}
			}
			if strings.Contains(string(b), "Content-Length: 9") {
				t.Errorf("head %q: the client's Content-Length was copied", b)
			}
		})
	}
}

// TestH1CanceledWhileWaiting: a request waiting for its head ends with
// the context's error, and its connection is not reused.
func TestH1CanceledWhileWaiting(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			io.Copy(io.Discard, c) // never answers
		}
	}()
	tr := newTestH1(4)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+ln.Addr().String()+"/", nil)
	_, err = tr.RoundTrip(req)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v, want context.DeadlineExceeded", err)
	}
}

// TestH1MaxConns: with max_conns_per_endpoint 1, concurrent requests wait
// for the one connection instead of opening more.
func TestH1MaxConns(t *testing.T) {
	o := newRawOrigin(t, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false)
	tr := newTestH1(4)
	tr.maxConns = 1
	defer tr.CloseIdleConnections()
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			_, body, err := h1Get(t, tr, "GET", o.addr())
			if err == nil && body != "ok" {
				err = errors.New("body " + body)
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got := o.conns.Load(); got != 1 {
		t.Errorf("connections: got %d, want 1", got)
	}
}

// BenchmarkH1RoundTrip is one GET and its 64-byte body through the lean
// transport over loopback, connection kept alive.
func BenchmarkH1RoundTrip(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "64")
			w.Write([]byte(strings.Repeat("x", 64)))
		})}
		srv.Serve(ln)
	}()
	tr := newTestH1(4)
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/x", nil)
	req.Header.Set("X-Forwarded-For", "192.0.2.1")
	buf := make([]byte, 128)
	b.ReportAllocs()
	for b.Loop() {
		res, err := tr.RoundTrip(req)
		if err != nil {
			b.Fatal(err)
		}
		for {
			if _, err := res.Body.Read(buf); err != nil {
				break
			}
		}
		res.Body.Close()
	}
}

// TestH1ReleaseResponse: a released response's memory goes to later
// responses, and its header (map and values) stays the caller's; an
// unread response, or one from elsewhere, is left alone.
func TestH1ReleaseResponse(t *testing.T) {
	var n atomic.Int32
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := n.Add(1)
		w.Header().Set("X-N", fmt.Sprint(i))
		fmt.Fprintf(w, "body %d", i)
	}))
	defer o.Close()
	tr := newTestH1(4)
	defer tr.CloseIdleConnections()
	addr := strings.TrimPrefix(o.URL, "http://")

	var kept []http.Header
	for i := 1; i <= 20; i++ {
		res, body, err := h1Get(t, tr, "GET", addr)
		if err != nil || body != fmt.Sprintf("body %d", i) || res.StatusCode != 200 {
			t.Fatalf("request %d: %d %q, %v", i, res.StatusCode, body, err)
		}
		kept = append(kept, res.Header)
		ReleaseResponse(res)
		if res.StatusCode != 0 || res.Body != nil {
			t.Fatalf("request %d: released response not reset: %d %v", i, res.StatusCode, res.Body)
		}
	}
	for i, h := range kept {
		if got, want := h.Get("X-N"), fmt.Sprint(i+1); got != want {
			t.Errorf("response %d: X-N %q after later responses, want %q", i+1, got, want)
		}
	}

	// Unread: the body still reads the connection; release does nothing.
	req, _ := http.NewRequest("GET", o.URL+"/x", nil)
	res, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	ReleaseResponse(res)
	if b, err := io.ReadAll(res.Body); err != nil || string(b) != "body 21" {
		t.Fatalf("unread response after ReleaseResponse: %q, %v", b, err)
	}
	res.Body.Close()
	// Not the transport's: left alone.
	other := &http.Response{StatusCode: 200, Body: http.NoBody}
	ReleaseResponse(other)
	if other.StatusCode != 200 {
		t.Fatal("ReleaseResponse changed a response of another transport")
	}
}
