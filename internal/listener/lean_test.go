package listener

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"torii/internal/request"
)

// The lean server's own behaviour: what a handler and a client see of it
// beyond the responses lean_diff_test.go compares with net/http's.

func dialRaw(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, bufio.NewReader(c)
}

func leanResponse(t *testing.T, br *bufio.Reader, method string) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp, string(body)
}

func TestLeanServesPlainListeners(t *testing.T) {
	ts := startServer(t, echo, Options{})
	if !ts.server.Lean() {
		t.Fatal("a plaintext listener is not on the lean server")
	}
	if NewServer(&http.Server{}, nil, Options{StdlibHTTP1: true}).Lean() {
		t.Error("StdlibHTTP1 is ignored")
	}
	if NewServer(&http.Server{}, nil, Options{H2C: true, HTTP2: NewHTTP2(10, nil)}).Lean() {
		t.Error("an h2c listener is on the lean server")
	}
}

// TestLeanPeer: every request on a connection finds the peer address
// parsed once for the connection (request.Peer), matching RemoteAddr.
func TestLeanPeer(t *testing.T) {
	type seen struct {
		remote string
		addr   netip.Addr
		ok     bool
	}
	got := make(chan seen, 2)
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, ok := request.Peer(r.Context(), r.RemoteAddr)
		got <- seen{r.RemoteAddr, a, ok}
	}), Options{})
	c, br := dialRaw(t, ts.addr)
	for range 2 {
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		leanResponse(t, br, "GET")
		s := <-got
		want := netip.MustParseAddrPort(c.LocalAddr().String()).Addr()
		if !s.ok || s.addr != want || s.remote != c.LocalAddr().String() {
			t.Fatalf("request.Peer: %v %v for RemoteAddr %q; want %v for %q", s.addr, s.ok, s.remote, want, c.LocalAddr())
		}
	}
}

// TestLeanClientGone: a handler that waits on its request's context sees
// it end soon after the client closes the connection.
func TestLeanClientGone(t *testing.T) {
	ended := make(chan time.Duration, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		select {
		case <-r.Context().Done():
			ended <- time.Since(start)
		case <-time.After(5 * time.Second):
			ended <- -1
		}
	})
	ts := startServer(t, h, Options{})
	c, _ := dialRaw(t, ts.addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	time.Sleep(2 * watchDelay)
	closed := time.Now()
	c.Close()
	if d := <-ended; d < 0 {
		t.Fatal("the request's context did not end after the client left")
	}
	t.Logf("the context ended %v after the client closed", time.Since(closed))
}

// endsSoon reports whether r's context ends within five seconds.
func endsSoon(r *http.Request) bool {
	select {
	case <-r.Context().Done():
		return true
	case <-time.After(5 * time.Second):
		return false
	}
}

// TestLeanClientGoneKeptAlive: the watch timer, left running by quick
// requests on a kept-alive connection, still watches the slow one that
// follows them, within two watchDelays.
func TestLeanClientGoneKeptAlive(t *testing.T) {
	ended := make(chan bool, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/slow" {
			return
		}
		ended <- endsSoon(r)
	})
	ts := startServer(t, h, Options{})
	c, br := dialRaw(t, ts.addr)
	for range 3 {
		io.WriteString(c, "GET /quick HTTP/1.1\r\nHost: x\r\n\r\n")
		leanResponse(t, br, "GET")
		time.Sleep(watchDelay / 3) // the timer ticks between requests
	}
	io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	time.Sleep(3 * watchDelay)
	c.Close()
	if !<-ended {
		t.Fatal("the slow request's context did not end after the client left")
	}
}

// TestLeanClientGoneAfterBody: the watch starts once the handler has read
// the body.
func TestLeanClientGoneAfterBody(t *testing.T) {
	ended := make(chan bool, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		ended <- endsSoon(r)
	})
	ts := startServer(t, h, Options{})
	for _, req := range []string{
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
	} {
		c, _ := dialRaw(t, ts.addr)
		io.WriteString(c, req)
		time.Sleep(2 * watchDelay)
		c.Close()
		if !<-ended {
			t.Errorf("%q: the context did not end after the client left", req)
		}
	}
}

// TestLeanPipelinedWhileWatching: a request pipelined while a slow
// handler runs (and the watch reads) is served next, whole.
func TestLeanPipelinedWhileWatching(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(3 * watchDelay)
		}
		body, _ := io.ReadAll(r.Body)
		io.WriteString(w, r.URL.Path+" "+string(body))
	})
	ts := startServer(t, h, Options{})
	c, br := dialRaw(t, ts.addr)
	io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	time.Sleep(2 * watchDelay) // the watch is reading now
	io.WriteString(c, "POST /next HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
	for _, want := range []string{"/slow ", "/next hello"} {
		resp, body := leanResponse(t, br, "GET")
		if resp.StatusCode != 200 || body != want {
			t.Fatalf("got %d %q, want 200 %q", resp.StatusCode, body, want)
		}
	}
}

// TestLeanExpectContinue: 100 Continue goes out when the handler reads
// the body, not before, and not at all when it answers without reading.
func TestLeanExpectContinue(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/reject" {
			http.Error(w, "no", http.StatusForbidden)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		io.WriteString(w, "got "+string(body))
	})
	ts := startServer(t, h, Options{})

	c, br := dialRaw(t, ts.addr)
	io.WriteString(c, "PUT /up HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
	line, err := br.ReadString('\n')
	if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("got %q, %v; want the interim 100 Continue", line, err)
	}
	if l, _ := br.ReadString('\n'); l != "\r\n" {
		t.Fatalf("got %q after 100 Continue, want the empty line", l)
	}
	io.WriteString(c, "hello")
	if resp, body := leanResponse(t, br, "PUT"); resp.StatusCode != 200 || body != "got hello" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}

	c, br = dialRaw(t, ts.addr)
	io.WriteString(c, "PUT /reject HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
	resp, _ := leanResponse(t, br, "PUT")
	if resp.StatusCode != http.StatusForbidden || !resp.Close {
		t.Fatalf("got %d close=%v, want 403 and the connection closed (the body may or may not come)", resp.StatusCode, resp.Close)
	}
}

// TestLeanShutdownClosesIdle: Shutdown closes idle keep-alive
// connections at once and returns.
func TestLeanShutdownClosesIdle(t *testing.T) {
	ts := startServer(t, echo, Options{})
	var conns []net.Conn
	for range 20 {
		c, br := dialRaw(t, ts.addr)
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		leanResponse(t, br, "GET")
		conns = append(conns, c)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ts.server.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	t.Logf("Shutdown with 20 idle connections took %v", time.Since(start))
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(time.Second))
		if n, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("idle connection: read %d, %v; want EOF", n, err)
		}
	}
	if n := ts.counter(t, "open_connections", "test"); n != 0 {
		t.Errorf("got %v open connections, want 0", n)
	}
}

// TestLeanTimeouts: a head that dribbles past ReadHeaderTimeout, first
// or on a kept-alive connection, and a connection idle past IdleTimeout
// are closed.
func TestLeanTimeouts(t *testing.T) {
	ts := startServer(t, echo, Options{}, func(s *http.Server) {
		s.ReadHeaderTimeout = 200 * time.Millisecond
		s.IdleTimeout = 300 * time.Millisecond
	})
	c, _ := dialRaw(t, ts.addr)
	io.WriteString(c, "GET / HTTP/1.1\r\n")
	start := time.Now()
	if _, err := io.ReadAll(c); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("a partial head held the connection %v, want about 200ms", d)
	}

	c, br := dialRaw(t, ts.addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	leanResponse(t, br, "GET")
	start = time.Now()
	if _, err := io.ReadAll(br); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 250*time.Millisecond || d > 2*time.Second {
		t.Errorf("an idle connection closed after %v, want about 300ms", d)
	}

	// A kept-alive connection's next head, once begun, is due within
	// ReadHeaderTimeout, not the (longer) idle timeout.
	ts = startServer(t, echo, Options{}, func(s *http.Server) {
		s.ReadHeaderTimeout = 200 * time.Millisecond
		s.IdleTimeout = 20 * time.Second
	})
	c, br = dialRaw(t, ts.addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	leanResponse(t, br, "GET")
	io.WriteString(c, "GET / HTTP/1.1\r\n")
	start = time.Now()
	if _, err := io.ReadAll(br); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("a second partial head held the connection %v, want about 200ms", d)
	}
}

// TestLeanHijackKeepsPipelinedBytes: bytes the client sent after an
// upgrade request reach the hijacker.
func TestLeanHijackKeepsPipelinedBytes(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		brw.Flush()
		line, _ := brw.ReadString('\n')
		brw.WriteString("echo " + line)
		brw.Flush()
	})
	ts := startServer(t, h, Options{})
	c, br := dialRaw(t, ts.addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nping\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("got %v, %v; want 101", resp, err)
	}
	line, _ := br.ReadString('\n')
	if line != "echo ping\n" {
		t.Fatalf("got %q from the tunnel, want %q", line, "echo ping\n")
	}
}

// TestLeanHeaderMapReused: a connection's next response starts from an
// empty header map, though the map is the last response's, cleared.
func TestLeanHeaderMapReused(t *testing.T) {
	var maps []http.Header
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(w.Header()) != 0 {
			t.Errorf("request %s: header starts with %v", r.URL.Path, w.Header())
		}
		maps = append(maps, w.Header())
		if r.URL.Path == "/first" {
			w.Header().Set("X-First", "1")
		}
		io.WriteString(w, r.URL.Path)
	})
	ts := startServer(t, h, Options{})
	c, br := dialRaw(t, ts.addr)
	io.WriteString(c, "GET /first HTTP/1.1\r\nHost: x\r\n\r\nGET /second HTTP/1.1\r\nHost: x\r\n\r\n")
	first, _ := leanResponse(t, br, "GET")
	second, body := leanResponse(t, br, "GET")
	if first.Header.Get("X-First") != "1" || second.Header.Get("X-First") != "" || body != "/second" {
		t.Fatalf("X-First: first %q, second %q (body %q); want 1, then none",
			first.Header.Get("X-First"), second.Header.Get("X-First"), body)
	}
	if len(maps) != 2 || fmt.Sprintf("%p", maps[0]) != fmt.Sprintf("%p", maps[1]) {
		t.Error("the second response did not reuse the first one's header map")
	}
}
