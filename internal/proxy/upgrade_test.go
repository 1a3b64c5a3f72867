package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/websocket"

	"torii/internal/config"
)

// wsEcho is an upstream WebSocket endpoint echoing every message.
func wsEcho(w http.ResponseWriter, r *http.Request) {
	websocket.Handler(func(ws *websocket.Conn) {
		for {
			var msg string
			if websocket.Message.Receive(ws, &msg) != nil || websocket.Message.Send(ws, msg) != nil {
				return
			}
		}
	}).ServeHTTP(w, r)
}

// dialWS opens a WebSocket to srv's /ws through torii.
func dialWS(t *testing.T, srv *httptest.Server) (*websocket.Conn, error) {
	t.Helper()
	cfg, err := websocket.NewConfig("ws://"+srv.Listener.Addr().String()+"/ws", "http://localhost/")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Dialer = nil
	return websocket.DialConfig(cfg)
}

func TestWebSocket(t *testing.T) {
	tests := []struct {
		name      string
		endpoints []string // "refused" is a closed port, "echo" a WebSocket echo
		hits      []int    // upgrade requests each endpoint received
	}{
		{"echo", []string{"echo"}, []int{1}},
		{"connect failure retried", []string{"refused", "echo"}, []int{0, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var addrs []string
			var origins []*origin
			for _, e := range tt.endpoints {
				if e == "refused" {
					addrs = append(addrs, closedAddr(t))
					origins = append(origins, nil)
					continue
				}
				o := newOrigin(t, wsEcho)
				addrs = append(addrs, o.addr())
				origins = append(origins, o)
			}
			pool := newPool(t, "app", nil, addrs...)
			tunnels := &Tunnels{}
			srv, infos := front(t, newHandler(t, pool, Options{Tunnels: tunnels, Attempts: 1, RetryOn: DefaultRetryOn}))

			ws, err := dialWS(t, srv)
			if err != nil {
				t.Fatalf("dial through torii: %v", err)
			}
			ws.SetDeadline(time.Now().Add(5 * time.Second))
			big := strings.Repeat("x", 100<<10) // larger than a copy buffer
			for i, msg := range []string{"hello", "", "ünïcode", big, "bye"} {
				if err := websocket.Message.Send(ws, msg); err != nil {
					t.Fatalf("send %d: %v", i, err)
				}
				var got string
				if err := websocket.Message.Receive(ws, &got); err != nil || got != msg {
					t.Fatalf("echo %d: got %d bytes (%v), want %d", i, len(got), err, len(msg))
				}
			}
			if n := tunnels.Len(); n != 1 {
				t.Errorf("open tunnels: got %d, want 1", n)
			}
			ws.Close()
			info := waitInfo(t, infos)
			if info.Status != http.StatusSwitchingProtocols || info.Err != nil || info.BytesOut < int64(len(big)) {
				t.Errorf("info: got status %d err %v bytes out %d, want 101, no error, over %d",
					info.Status, info.Err, info.BytesOut, len(big))
			}
			if n := tunnels.Len(); n != 0 {
				t.Errorf("open tunnels after close: got %d, want 0", n)
			}
			for i, o := range origins {
				if o != nil && o.hits.Load() != int64(tt.hits[i]) {
					t.Errorf("endpoint %d: got %d hits, want %d", i, o.hits.Load(), tt.hits[i])
				}
			}
		})
	}
}

func TestTunnelsClose(t *testing.T) {
	o := newOrigin(t, wsEcho)
	pool := newPool(t, "app", nil, o.addr())
	tunnels := &Tunnels{}
	srv, infos := front(t, newHandler(t, pool, Options{Tunnels: tunnels}))
	ws, err := dialWS(t, srv)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ws.SetDeadline(time.Now().Add(5 * time.Second))
	if err := websocket.Message.Send(ws, "ping"); err != nil {
		t.Fatal(err)
	}
	var got string
	if err := websocket.Message.Receive(ws, &got); err != nil {
		t.Fatal(err)
	}

	if n := tunnels.Close(); n != 1 {
		t.Errorf("Close: got %d tunnels closed, want 1", n)
	}
	if err := websocket.Message.Receive(ws, &got); err == nil {
		t.Error("receive after Close: got a message, want the connection closed")
	}
	if info := waitInfo(t, infos); info.Status != http.StatusSwitchingProtocols {
		t.Errorf("status: got %d, want 101", info.Status)
	}

	// After Close, an upgrade the upstream grants is closed at once.
	if ws2, err := dialWS(t, srv); err == nil {
		ws2.Close()
		t.Error("dial after Close: got a WebSocket, want a closed connection")
	}
	if info := waitInfo(t, infos); info.Err == nil {
		t.Errorf("refused tunnel: got no error recorded, want one")
	}
	if n := tunnels.Len(); n != 0 {
		t.Errorf("open tunnels: got %d, want 0", n)
	}
}

func TestTunnelsShutdown(t *testing.T) {
	o := newOrigin(t, wsEcho)
	pool := newPool(t, "app", nil, o.addr())
	tunnels := &Tunnels{}
	srv, infos := front(t, newHandler(t, pool, Options{Tunnels: tunnels}))
	ws, err := dialWS(t, srv)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ctx := testContext(t)

	// A tunnel that ends on its own is waited for.
	go func() {
		time.Sleep(100 * time.Millisecond)
		ws.Close()
	}()
	if err := tunnels.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown with a tunnel that ends: got %v, want nil", err)
	}
	waitInfo(t, infos)
}

func TestTunnelsShutdownForced(t *testing.T) {
	o := newOrigin(t, wsEcho)
	pool := newPool(t, "app", nil, o.addr())
	tunnels := &Tunnels{}
	srv, infos := front(t, newHandler(t, pool, Options{Tunnels: tunnels}))
	ws, err := dialWS(t, srv)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	// Make sure the tunnel is up before shutting down.
	ws.SetDeadline(time.Now().Add(5 * time.Second))
	var got string
	if websocket.Message.Send(ws, "ping") != nil || websocket.Message.Receive(ws, &got) != nil {
		t.Fatal("echo failed")
	}
	ctx, cancel := context.WithTimeout(testContext(t), 100*time.Millisecond)
	defer cancel()
	if err := tunnels.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown with a tunnel that stays: got %v, want context.DeadlineExceeded", err)
	}
	if websocket.Message.Receive(ws, &got) == nil {
		t.Error("receive after a forced Shutdown: got a message, want the connection closed")
	}
	waitInfo(t, infos)
	if n := tunnels.Len(); n != 0 {
		t.Errorf("open tunnels: got %d, want 0", n)
	}
}

func TestUpgradeRefusedOrBroken(t *testing.T) {
	// switching answers 101 with the given Upgrade field, whatever was asked.
	switching := func(proto string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			conn, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer conn.Close()
			fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: %s\r\n\r\n", proto)
			brw.Flush()
			io.Copy(io.Discard, conn)
		}
	}
	refuse := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Saw-Upgrade", r.Header.Get("Upgrade"))
		w.Header().Set("X-Saw-Connection", r.Header.Get("Connection"))
		w.Header().Set("X-Saw-Key", r.Header.Get("Sec-Websocket-Key"))
		http.Error(w, "upgrade refused", http.StatusUpgradeRequired)
	}
	tests := []struct {
		name      string
		upstream  http.HandlerFunc
		endpoints int // of this upstream, after a "reset" one when 2
		protocol  string
		header    map[string]string
		status    int
		body      string            // when set
		seen      map[string]string // response fields set by refuse
		hits      int
	}{
		{
			name: "non-101 answer relayed", upstream: refuse, endpoints: 1,
			header: map[string]string{"Connection": "keep-alive, Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="},
			status: 426, body: "upgrade refused\n",
			seen: map[string]string{"X-Saw-Upgrade": "websocket", "X-Saw-Connection": "Upgrade", "X-Saw-Key": "dGhlIHNhbXBsZSBub25jZQ=="},
			hits: 1,
		},
		{
			name: "Upgrade without Connection: upgrade is not an upgrade", upstream: refuse, endpoints: 1,
			header: map[string]string{"Upgrade": "websocket"},
			status: 426, seen: map[string]string{"X-Saw-Upgrade": "", "X-Saw-Connection": ""}, hits: 1,
		},
		{
			name: "h2c upgrade never forwarded", upstream: refuse, endpoints: 1,
			header: map[string]string{"Connection": "Upgrade", "Upgrade": "websocket, h2c"},
			status: 426, seen: map[string]string{"X-Saw-Upgrade": "", "X-Saw-Connection": ""}, hits: 1,
		},
		{
			name: "101 to a request without upgrade", upstream: switching("websocket"), endpoints: 1,
			status: 502, hits: 1,
		},
		{
			name: "101 to another protocol", upstream: switching("foo"), endpoints: 1,
			header: map[string]string{"Connection": "Upgrade", "Upgrade": "websocket"},
			status: 502, hits: 1,
		},
		{
			name: "upgrade to an h2c upstream", upstream: refuse, endpoints: 1, protocol: "h2c",
			header: map[string]string{"Connection": "Upgrade", "Upgrade": "websocket"},
			status: 502, hits: 0,
		},
		{
			name: "upgrade not retried after a reset", upstream: refuse, endpoints: 2,
			header: map[string]string{"Connection": "Upgrade", "Upgrade": "websocket"},
			status: 502, hits: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newOrigin(t, tt.upstream)
			addrs := []string{o.addr()}
			if tt.endpoints == 2 {
				addrs = []string{newOrigin(t, behaviour(t, "reset")).addr(), o.addr()}
			}
			pool := newPool(t, "app", func(c *config.Upstream) { c.Protocol = tt.protocol }, addrs...)
			srv, infos := front(t, newHandler(t, pool, Options{Attempts: 1, RetryOn: DefaultRetryOn}))

			// A raw request, so the client's headers are exactly these.
			conn, err := net.DialTimeout("tcp", srv.Listener.Addr().String(), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			var req bytes.Buffer
			req.WriteString("GET /ws HTTP/1.1\r\nHost: app.example.com\r\n")
			for k, v := range tt.header {
				fmt.Fprintf(&req, "%s: %s\r\n", k, v)
			}
			req.WriteString("\r\n")
			conn.Write(req.Bytes())
			res, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(io.LimitReader(res.Body, 1<<10))
			res.Body.Close()
			if res.StatusCode != tt.status {
				t.Fatalf("got status %d, want %d (%s)", res.StatusCode, tt.status, body)
			}
			if tt.body != "" && string(body) != tt.body {
				t.Errorf("body: got %q, want %q", body, tt.body)
			}
			for k, want := range tt.seen {
				if got := res.Header.Get(k); got != want {
					t.Errorf("%s: got %q, want %q", k, got, want)
				}
			}
			if res.Header.Get("Upgrade") != "" {
				t.Errorf("Upgrade relayed on a %d: %q", res.StatusCode, res.Header.Get("Upgrade"))
			}
			if got := o.hits.Load(); got != int64(tt.hits) {
				t.Errorf("upstream hits: got %d, want %d", got, tt.hits)
			}
			if info := waitInfo(t, infos); info.Status != tt.status {
				t.Errorf("info status: got %d, want %d", info.Status, tt.status)
			}
		})
	}
}

func TestUpgradeProtocols(t *testing.T) {
	tests := []struct {
		name       string
		proto      string
		connection []string
		upgrade    []string
		want       string
	}{
		{"websocket", "HTTP/1.1", []string{"Upgrade"}, []string{"websocket"}, "websocket"},
		{"token among others", "HTTP/1.1", []string{"keep-alive, upgrade"}, []string{"websocket"}, "websocket"},
		{"versioned protocols", "HTTP/1.1", []string{"Upgrade"}, []string{"foo/2, bar"}, "foo/2, bar"},
		{"several fields", "HTTP/1.1", []string{"Upgrade"}, []string{"a", "b"}, "a, b"},
		{"no connection token", "HTTP/1.1", []string{"keep-alive"}, []string{"websocket"}, ""},
		{"no upgrade field", "HTTP/1.1", []string{"Upgrade"}, nil, ""},
		{"empty list", "HTTP/1.1", []string{"Upgrade"}, []string{" , "}, ""},
		{"h2c", "HTTP/1.1", []string{"Upgrade"}, []string{"h2c"}, ""},
		{"h2c among others", "HTTP/1.1", []string{"Upgrade"}, []string{"websocket, H2C"}, ""},
		{"malformed protocol", "HTTP/1.1", []string{"Upgrade"}, []string{"web socket"}, ""},
		{"empty version", "HTTP/1.1", []string{"Upgrade"}, []string{"foo/"}, ""},
		{"HTTP/1.0", "HTTP/1.0", []string{"Upgrade"}, []string{"websocket"}, ""},
		{"HTTP/2", "HTTP/2.0", []string{"Upgrade"}, []string{"websocket"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.Proto = tt.proto
			r.ProtoMajor, r.ProtoMinor, _ = http.ParseHTTPVersion(tt.proto)
			r.Header["Connection"] = tt.connection
			if tt.upgrade != nil {
				r.Header["Upgrade"] = tt.upgrade
			}
			if got := upgradeProtocols(r); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
