package listener

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// echo answers with the method, path and body it got.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	io.WriteString(w, r.Method+" "+r.URL.Path+" "+string(body))
})

// ambiguous lists requests the strict check refuses; each must get 400,
// a closed connection, and never reach the handler.
var ambiguous = []struct{ name, raw string }{
	{"CL and TE", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG"},
	{"TE and CL", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n0\r\n\r\nG"},
	{"conflicting CL", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nhello"},
	{"repeated identical CL", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello"},
	{"CL list", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5,5\r\n\r\nhello"},
	{"TE not chunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"},
	{"TE chunked not final", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n"},
	{"TE with a suffix", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunkedx\r\n\r\n0\r\n\r\n"},
	{"TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
	{"invalid chunk size", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"},
	{"negative chunk size", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n"},
	{"chunk size overflow", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000005\r\nhello\r\n0\r\n\r\n"},
	{"chunk size with space", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n"},
	{"chunk line bare LF", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n"},
	{"obs-fold", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n"},
	{"obs-fold of TE", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n"},
	{"bare LF head", "GET / HTTP/1.1\nHost: x\n\n"},
	{"bare LF one line", "GET / HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n"},
	{"bare CR", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n"},
	{"space before colon", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\nhello"},
	{"invalid name", "GET / HTTP/1.1\r\nHost: x\r\nX{A}: b\r\n\r\n"},
	{"NUL in value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n"},
	{"CR in value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n"},
	{"two hosts", "GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n"},
}

func TestAmbiguousFramingRefused(t *testing.T) {
	pki := newPKI(t)
	certs := mustCerts(t, pki.issue(t, "a.example"))
	for _, transport := range []string{"plain", "tls"} {
		t.Run(transport, func(t *testing.T) {
			o := Options{}
			var clientCfg *tls.Config
			if transport == "tls" {
				o.TLS = ServerTLS(nil, certs)
				clientCfg = pki.clientTLS("a.example")
			}
			ts := startServer(t, echo, o)
			for _, tt := range ambiguous {
				t.Run(tt.name, func(t *testing.T) {
					before := ts.hits.Load()
					resp, closed := exchange(t, ts.addr, clientCfg, tt.raw)
					if got := firstLine(resp); got != "HTTP/1.1 400 Bad Request" {
						t.Errorf("got status line %q, want 400 (response %q)", got, short(resp))
					}
					if !strings.Contains(resp, "\r\nConnection: close\r\n") {
						t.Errorf("got response %q, want Connection: close", short(resp))
					}
					if !closed {
						t.Errorf("connection still open, want closed")
					}
					if n := ts.hits.Load() - before; n != 0 {
						t.Errorf("handler ran %d times, want 0", n)
					}
				})
			}
			if got, want := ts.counter(t, "requests_rejected", "test", ReasonFraming), float64(len(ambiguous)); got != want {
				t.Errorf("got torii_listener_requests_rejected_total{reason=framing} %v, want %v", got, want)
			}
		})
	}
}

// TestSmuggledAfterValid sends a valid request and then, on the same
// keep-alive connection, an ambiguous one: the first is served, the
// second refused.
func TestSmuggledAfterValid(t *testing.T) {
	ts := startServer(t, echo, Options{})
	valid := []string{
		"GET /one HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /one HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
		"POST /one HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
	}
	for _, first := range valid {
		for _, tt := range ambiguous {
			t.Run(firstLine(first)+"/"+tt.name, func(t *testing.T) {
				before := ts.hits.Load()
				c := dial(t, ts.addr, nil)
				defer c.Close()
				br := bufio.NewReader(c)
				io.WriteString(c, first)
				resp, body := readResponse(t, br, "GET")
				if resp.StatusCode != 200 || !strings.HasPrefix(body, strings.Fields(first)[0]+" /one") {
					t.Fatalf("first request: got %d %q, want 200", resp.StatusCode, body)
				}
				io.WriteString(c, tt.raw)
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				rest, err := io.ReadAll(br)
				if err != nil {
					t.Fatalf("second request: connection not closed: %v", err)
				}
				if got := firstLine(string(rest)); got != "HTTP/1.1 400 Bad Request" {
					t.Errorf("second request: got %q, want 400", got)
				}
				if n := ts.hits.Load() - before; n != 1 {
					t.Errorf("handler ran %d times, want 1", n)
				}
			})
		}
	}
}

// TestPipelined sends valid requests and an ambiguous one in one write:
// the valid ones are answered in order, then 400.
func TestPipelined(t *testing.T) {
	ts := startServer(t, echo, Options{})
	raw := "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc" +
		"POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\ndef\r\n0\r\n\r\n" +
		"GET /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n" +
		"GET /d HTTP/1.1\r\nHost: x\r\n\r\n"
	resp, closed := exchange(t, ts.addr, nil, raw)
	br := bufio.NewReader(strings.NewReader(resp))
	for _, want := range []string{"POST /a abc", "POST /b def"} {
		r, body := readResponse(t, br, "POST")
		if r.StatusCode != 200 || body != want {
			t.Fatalf("got %d %q, want 200 %q", r.StatusCode, body, want)
		}
	}
	r, _ := readResponse(t, br, "GET")
	if r.StatusCode != 400 || !closed {
		t.Errorf("third request: got %d (closed %v), want 400 and closed", r.StatusCode, closed)
	}
	if n := ts.hits.Load(); n != 2 {
		t.Errorf("handler ran %d times, want 2", n)
	}
}

// TestValidRequestsPass checks that well-formed requests, including
// every body framing and odd-but-valid shapes, reach the handler intact.
func TestValidRequestsPass(t *testing.T) {
	ts := startServer(t, echo, Options{})
	tests := []struct{ name, raw, want string }{
		{"get", "GET /x HTTP/1.1\r\nHost: x\r\n\r\n", "GET /x "},
		{"http/1.0", "GET /x HTTP/1.0\r\n\r\n", "GET /x "},
		{"content-length", "PUT /y HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world", "PUT /y hello world"},
		{"chunked with extension and trailer", "POST /z HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;n=v\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n", "POST /z hello world"},
		{"body that looks like a request", "POST /z HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\nGET / HTTP/1.1\nX:\n\n\n", "POST /z GET / HTTP/1.1\nX:\n\n\n"},
		{"expect 100-continue", "POST /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", "POST /e ok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, ts.addr, nil)
			defer c.Close()
			io.WriteString(c, tt.raw)
			br := bufio.NewReader(c)
			r, body := readResponse(t, br, "GET")
			for r.StatusCode == 100 {
				r, body = readResponse(t, br, "GET")
			}
			if r.StatusCode != 200 || body != tt.want {
				t.Errorf("got %d %q, want 200 %q", r.StatusCode, body, tt.want)
			}
		})
	}
}

func TestHeadTooLarge(t *testing.T) {
	ts := startServer(t, echo, Options{})
	raw := "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 5000) + "\r\n\r\n"
	resp, closed := exchange(t, ts.addr, nil, raw)
	if got := firstLine(resp); got != "HTTP/1.1 431 Request Header Fields Too Large" || !closed {
		t.Errorf("got %q (closed %v), want 431 and closed", got, closed)
	}
	if ts.hits.Load() != 0 {
		t.Errorf("handler ran, want not")
	}
	if got := ts.counter(t, "requests_rejected", "test", ReasonHeaderTooLarge); got != 1 {
		t.Errorf("got header_too_large count %v, want 1", got)
	}
}

// TestUpgradePassesThrough checks that after a 101 the connection carries
// another protocol unchecked, and that a refused upgrade keeps checking.
func TestUpgradePassesThrough(t *testing.T) {
	var upgrades atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "echo" {
			http.Error(w, "no", http.StatusBadRequest)
			return
		}
		upgrades.Add(1)
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		defer c.Close()
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		buf := make([]byte, 64)
		for {
			n, err := brw.Read(buf)
			if n > 0 {
				c.Write(buf[:n])
			}
			if err != nil {
				return
			}
		}
	})
	ts := startServer(t, h, Options{})

	t.Run("101", func(t *testing.T) {
		c := dial(t, ts.addr, nil)
		defer c.Close()
		io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		br := bufio.NewReader(c)
		r, err := http.ReadResponse(br, nil)
		if err != nil || r.StatusCode != 101 {
			t.Fatalf("got %v %v, want 101", r, err)
		}
		msg := "not HTTP\nat all\x00\r\n\r\n"
		io.WriteString(c, msg)
		got := make([]byte, len(msg))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(br, got); err != nil || string(got) != msg {
			t.Fatalf("echo: got %q %v, want %q", got, err, msg)
		}
	})
	t.Run("refused upgrade", func(t *testing.T) {
		c := dial(t, ts.addr, nil)
		defer c.Close()
		io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: other\r\nConnection: Upgrade\r\n\r\n")
		br := bufio.NewReader(c)
		r, _ := readResponse(t, br, "GET")
		if r.StatusCode != 400 {
			t.Fatalf("got %d, want 400 from the handler", r.StatusCode)
		}
		io.WriteString(c, "GET / HTTP/1.1\nHost: x\n\n")
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		rest, _ := io.ReadAll(br)
		if got := firstLine(string(rest)); got != "HTTP/1.1 400 Bad Request" {
			t.Errorf("smuggled after refused upgrade: got %q, want 400", got)
		}
	})
}

// TestSlowHead checks that the held head of a slow client is bounded by
// ReadHeaderTimeout.
func TestSlowHead(t *testing.T) {
	ts := startServer(t, echo, Options{}, func(srv *http.Server) { srv.ReadHeaderTimeout = 200 * time.Millisecond })
	c := dial(t, ts.addr, nil)
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	_, err := io.ReadAll(c)
	var ne net.Error
	if err != nil && (!asNetError(err, &ne) || ne.Timeout()) {
		t.Fatalf("got %v, want the server to close", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("closed after %v, want about 200ms", d)
	}
}

func asNetError(err error, target *net.Error) bool {
	ne, ok := err.(net.Error)
	if ok {
		*target = ne
	}
	return ok
}
