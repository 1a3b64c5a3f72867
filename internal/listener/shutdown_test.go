package listener

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// TestShutdownDrains starts a request that blocks, calls Shutdown, and
// checks that new connections are refused, Shutdown waits for the
// request, the request completes, and then the connection is closed, for
// HTTP/1.1, HTTP/2 over TLS and h2c.
func TestShutdownDrains(t *testing.T) {
	pki := newPKI(t)
	certs := mustCerts(t, pki.issue(t, "a.example"))
	h2cDial := func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	tests := []struct {
		name   string
		opts   Options
		rt     func() http.RoundTripper
		scheme string
		proto  string
	}{
		{name: "HTTP/1.1", opts: Options{}, rt: func() http.RoundTripper { return &http.Transport{} }, scheme: "http", proto: "HTTP/1.1"},
		{name: "HTTP/2 over TLS", opts: Options{TLS: ServerTLS(nil, certs), HTTP2: NewHTTP2(100, nil)},
			rt: func() http.RoundTripper { return &http2.Transport{TLSClientConfig: pki.clientTLS("a.example")} }, scheme: "https", proto: "HTTP/2.0"},
		{name: "h2c", opts: Options{HTTP2: NewHTTP2(100, nil), H2C: true},
			rt: func() http.RoundTripper { return &http2.Transport{AllowHTTP: true, DialTLSContext: h2cDial} }, scheme: "http", proto: "HTTP/2.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			started := make(chan struct{})
			release := make(chan struct{})
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				close(started)
				<-release
				io.WriteString(w, "done "+r.Proto)
			})
			ts := startServer(t, h, tt.opts)
			client := &http.Client{Transport: tt.rt()}

			type result struct {
				body string
				err  error
			}
			got := make(chan result, 1)
			go func() {
				resp, err := client.Get(tt.scheme + "://" + ts.addr + "/")
				if err != nil {
					got <- result{err: err}
					return
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				got <- result{string(b), err}
			}()
			<-started

			shutdown := make(chan error, 1)
			go func() { shutdown <- ts.server.Shutdown(context.Background()) }()
			// New connections are refused once Shutdown has begun.
			deadline := time.Now().Add(5 * time.Second)
			for {
				c, err := net.DialTimeout("tcp", ts.addr, time.Second)
				if err != nil {
					break
				}
				c.Close()
				if time.Now().After(deadline) {
					t.Fatalf("new connections still accepted during Shutdown")
				}
				time.Sleep(10 * time.Millisecond)
			}
			select {
			case err := <-shutdown:
				t.Fatalf("Shutdown returned %v with a request in flight", err)
			case <-time.After(200 * time.Millisecond):
			}

			close(release)
			r := <-got
			if r.err != nil || r.body != "done "+tt.proto {
				t.Fatalf("in-flight request: got %q, %v; want %q", r.body, r.err, "done "+tt.proto)
			}
			select {
			case err := <-shutdown:
				if err != nil {
					t.Fatalf("Shutdown: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("Shutdown did not return after the request finished")
			}
			if n := ts.counter(t, "open_connections", "test"); n != 0 {
				t.Errorf("got %v open connections after Shutdown, want 0", n)
			}
		})
	}
}

func TestMaxConnections(t *testing.T) {
	ts := startServer(t, echo, Options{MaxConnections: 2})
	var held []net.Conn
	for range 2 {
		c := dial(t, ts.addr, nil)
		defer c.Close()
		// A complete request proves the connection was accepted and
		// counted.
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		readResponse(t, bufio.NewReader(c), "GET")
		held = append(held, c)
	}
	if n := ts.counter(t, "open_connections", "test"); n != 2 {
		t.Errorf("got %v open connections, want 2", n)
	}
	resp, closed := exchange(t, ts.addr, nil, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp != "" || !closed {
		t.Errorf("third connection: got %q (closed %v), want closed without a response", resp, closed)
	}
	if n := ts.counter(t, "connections_rejected", "test"); n != 1 {
		t.Errorf("got %v rejected connections, want 1", n)
	}
	held[0].Close()
	deadline := time.Now().Add(5 * time.Second)
	for ts.counter(t, "open_connections", "test") != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("slot not released after a client closed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	resp, _ = exchange(t, ts.addr, nil, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if firstLine(resp) != "HTTP/1.1 200 OK" {
		t.Errorf("after a slot freed: got %q, want 200", firstLine(resp))
	}
}

func TestMaxRequests(t *testing.T) {
	m, err := NewMetrics(newRegistry())
	if err != nil {
		t.Fatal(err)
	}
	rec := m.Listener("edge")
	started := make(chan struct{}, 2)
	release := make(chan struct{})
	h := MaxRequests(2, rec, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-release
	}))
	ts := startServer(t, h, Options{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get("http://" + ts.addr + "/")
			if err == nil {
				resp.Body.Close()
			}
		}()
	}
	<-started
	<-started
	resp, err := http.Get("http://" + ts.addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var payload struct {
		Error  string `json:"error"`
		Status int    `json:"status"`
	}
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "1" || json.Unmarshal(body, &payload) != nil || payload.Error != "overloaded" || payload.Status != 503 {
		t.Errorf("got %d Retry-After %q body %q, want 503, 1, overloaded", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	close(release)
	wg.Wait()
	resp, err = http.Get("http://" + ts.addr + "/")
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("after the load: got %v %v, want 200", resp, err)
	}
	resp.Body.Close()
	if got := counterValue(t, m.reqsRejected.WithLabelValues("edge", ReasonOverload)); got != 1 {
		t.Errorf("got overload count %v, want 1", got)
	}
	if h := MaxRequests(0, nil, echo); h == nil || !strings.Contains(typeName(h), "HandlerFunc") {
		t.Errorf("MaxRequests(0) should return next unchanged, got %s", typeName(h))
	}
}
