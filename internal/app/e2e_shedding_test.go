package app

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestE2EMaxConnections: with max_connections: 2 and two connections
// open, a third is accepted and closed at once without a response, and
// counted; once one closes, a new connection is served again.
func TestE2EMaxConnections(t *testing.T) {
	up := newE2EEcho(t)
	ta := startApp(t, fmt.Sprintf(`
listen: [{addr: "127.0.0.1:0", max_connections: 2}]
admin: {addr: "127.0.0.1:0"}
shutdown: {drain_delay: 0s, grace: 5s}
access_log: {disabled: true}
upstreams:
  app: {endpoints: [%q]}
routes:
  - name: all
    backends: [{upstream: app}]
`, up.addr()))
	addr := e2eAddr(ta, 0)

	// open dials and completes one keep-alive request, so the connection
	// is surely counted; it returns the connection still open.
	open := func(t *testing.T) (net.Conn, error) {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return nil, err
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, "GET /keep HTTP/1.1\r\nHost: gw.test\r\n\r\n"); err != nil {
			c.Close()
			return nil, err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			c.Close()
			return nil, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			c.Close()
			return nil, fmt.Errorf("status %d", resp.StatusCode)
		}
		c.SetDeadline(time.Time{})
		return c, nil
	}

	var held []net.Conn
	for i := 0; i < 2; i++ {
		c, err := open(t)
		if err != nil {
			t.Fatalf("connection %d of 2: %v, want served", i+1, err)
		}
		held = append(held, c)
	}
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()

	// The third: accepted by the kernel, then closed by torii at once.
	third, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	start := time.Now()
	third.SetDeadline(start.Add(3 * time.Second))
	io.WriteString(third, "GET /third HTTP/1.1\r\nHost: gw.test\r\n\r\n")
	got, err := io.ReadAll(third)
	var ne net.Error
	switch {
	case len(got) > 0:
		t.Errorf("third connection: got %q, want closed without a response", got)
	case errors.As(err, &ne) && ne.Timeout():
		t.Errorf("third connection: still open after 3s, want closed at once")
	case time.Since(start) > time.Second:
		t.Errorf("third connection closed after %v, want at once", time.Since(start))
	}
	if v, ok := gauge(t, ta.App, "torii_listener_connections_rejected_total", nil); !ok || v < 1 {
		t.Errorf("torii_listener_connections_rejected_total: got %v (found %v), want at least 1", v, ok)
	}

	// A slot freed is a slot to use.
	held[0].Close()
	held = held[1:]
	deadline := time.Now().Add(3 * time.Second)
	for {
		v, _ := gauge(t, ta.App, "torii_listener_open_connections", nil)
		if v <= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("torii_listener_open_connections after closing one of 2: got %v, want 1", v)
		}
		time.Sleep(10 * time.Millisecond)
	}
	c, err := open(t)
	if err != nil {
		t.Fatalf("connection after one closed: %v, want served", err)
	}
	held = append(held, c)
}

// TestE2EMaxRequests: with max_requests: 1 and a request in progress at a
// slow upstream, a second concurrent request gets 503 with Retry-After at
// once, and never reaches the upstream; once the first finishes, requests
// are served again.
func TestE2EMaxRequests(t *testing.T) {
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			arrived <- struct{}{}
			select {
			case <-release:
			case <-time.After(10 * time.Second):
			}
		}
		io.WriteString(w, "done "+r.URL.Path)
	}))
	defer up.Close()
	ta := startApp(t, fmt.Sprintf(`
listen: [{addr: "127.0.0.1:0", max_requests: 1}]
admin: {addr: "127.0.0.1:0"}
shutdown: {drain_delay: 0s, grace: 5s}
access_log: {disabled: true}
upstreams:
  app: {endpoints: [%q]}
routes:
  - name: all
    backends: [{upstream: app}]
`, up.Listener.Addr().String()))

	client := &http.Client{Timeout: 10 * time.Second}
	type result struct {
		status int
		body   string
		err    error
	}
	get := func(path string) result {
		resp, err := client.Get(ta.base + path)
		if err != nil {
			return result{err: err}
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return result{status: resp.StatusCode, body: string(b)}
	}
	first := make(chan result, 1)
	go func() { first <- get("/slow") }()
	select {
	case <-arrived:
	case <-time.After(5 * time.Second):
		t.Fatal("the first request did not reach the upstream")
	}

	resp, err := client.Get(ta.base + "/second")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("second concurrent request: got %d %q, want 503", resp.StatusCode, body)
	}
	if got := resp.Header.Get("Retry-After"); got != "1" {
		t.Errorf("Retry-After on the 503: got %q, want %q", got, "1")
	}
	if !strings.Contains(string(body), "overloaded") {
		t.Errorf("503 body: got %q, want it to say overloaded", body)
	}
	if v, ok := gauge(t, ta.App, "torii_listener_requests_rejected_total", map[string]string{"reason": "overload"}); !ok || v != 1 {
		t.Errorf(`torii_listener_requests_rejected_total{reason="overload"}: got %v (found %v), want 1`, v, ok)
	}

	close(release)
	if r := <-first; r.err != nil || r.status != http.StatusOK || r.body != "done /slow" {
		t.Errorf("first request: got %d %q (err %v), want 200 %q", r.status, r.body, r.err, "done /slow")
	}
	if r := get("/after"); r.err != nil || r.status != http.StatusOK {
		t.Errorf("request after the slot freed: got %d (err %v), want 200", r.status, r.err)
	}
}
