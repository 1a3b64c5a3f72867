package app

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/websocket"
)

// TestE2EWebSocketEcho is half of acceptance point 4: a WebSocket echo
// upstream (golang.org/x/net/websocket) reached through torii; the
// upstream greets first, then several messages go both ways.
func TestE2EWebSocketEcho(t *testing.T) {
	up := httptest.NewServer(websocket.Handler(func(ws *websocket.Conn) {
		if err := websocket.Message.Send(ws, "hello"); err != nil {
			return
		}
		for {
			var msg string
			if err := websocket.Message.Receive(ws, &msg); err != nil {
				return
			}
			if err := websocket.Message.Send(ws, "echo: "+msg); err != nil {
				return
			}
		}
	}))
	defer up.Close()
	ta := startApp(t, testListeners+fmt.Sprintf(`
upstreams:
  ws: {endpoints: [%q]}
routes:
  - name: ws
    match: {path_prefix: /ws}
    backends: [{upstream: ws}]
`, up.Listener.Addr().String()))

	cfg, err := websocket.NewConfig("ws://"+e2eAddr(ta, 0)+"/ws", "http://"+e2eAddr(ta, 0)+"/")
	if err != nil {
		t.Fatal(err)
	}
	ws, err := websocket.DialConfig(cfg)
	if err != nil {
		t.Fatalf("dial through torii: %v", err)
	}
	defer ws.Close()
	ws.SetDeadline(time.Now().Add(10 * time.Second))

	var got string
	if err := websocket.Message.Receive(ws, &got); err != nil || got != "hello" {
		t.Fatalf("greeting from the upstream: got %q (err %v), want %q", got, err, "hello")
	}
	for i := 0; i < 5; i++ {
		msg := fmt.Sprintf("message %d %s", i, strings.Repeat("x", i*1000))
		if err := websocket.Message.Send(ws, msg); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		if err := websocket.Message.Receive(ws, &got); err != nil {
			t.Fatalf("receive %d: %v", i, err)
		}
		if want := "echo: " + msg; got != want {
			t.Errorf("echo %d: got %q (%d bytes), want %d bytes", i, got[:min(len(got), 20)], len(got), len(want))
		}
	}
}

// TestE2ESSEUnbuffered is the other half of acceptance point 4: an SSE
// upstream writes event 1 and waits until the client has it before it
// writes event 2, so the test passes only if torii relays event 1 on its
// own instead of buffering it; over HTTP/1.1 and h2c alike.
func TestE2ESSEUnbuffered(t *testing.T) {
	gotFirst := make(chan struct{}, 1) // one send per stream
	upstreamErr := make(chan string, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		io.WriteString(w, "id: 1\ndata: first\n\n")
		http.NewResponseController(w).Flush()
		select {
		case <-gotFirst:
		case <-time.After(5 * time.Second):
			select {
			case upstreamErr <- "the client did not get event 1 within 5s of its write: torii buffered it":
			default:
			}
			return
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "id: 2\ndata: second\n\n")
		http.NewResponseController(w).Flush()
	}))
	defer up.Close()
	ta := startApp(t, fmt.Sprintf(`
listen: [{addr: "127.0.0.1:0", http2: {h2c: true}}]
admin: {addr: "127.0.0.1:0"}
shutdown: {drain_delay: 0s, grace: 5s}
access_log: {disabled: true}
upstreams:
  sse: {endpoints: [%q]}
routes:
  - name: events
    match: {path_prefix: /events}
    backends: [{upstream: sse}]
`, up.Listener.Addr().String()))

	h2c := &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}
	defer h2c.CloseIdleConnections()
	tests := []struct {
		name      string
		transport http.RoundTripper
		proto     string
	}{
		{"http1", &http.Transport{}, "HTTP/1.1"},
		{"h2c", h2c, "HTTP/2.0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			client := &http.Client{Timeout: 10 * time.Second, Transport: tc.transport}
			resp, err := client.Get(ta.base + "/events")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK || resp.Proto != tc.proto {
				t.Fatalf("response: got %d %s, want 200 %s", resp.StatusCode, resp.Proto, tc.proto)
			}
			br := bufio.NewReader(resp.Body)
			readEvent := func() (string, error) {
				var lines []string
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return strings.Join(lines, "|"), err
					}
					line = strings.TrimRight(line, "\n")
					if line == "" {
						return strings.Join(lines, "|"), nil
					}
					lines = append(lines, line)
				}
			}
			ev, err := readEvent()
			if err != nil {
				select {
				case msg := <-upstreamErr:
					t.Fatal(msg)
				default:
				}
				t.Fatalf("event 1: got %q, err %v", ev, err)
			}
			if want := "id: 1|data: first"; ev != want {
				t.Errorf("event 1: got %q, want %q", ev, want)
			}
			gotFirst <- struct{}{}
			ev, err = readEvent()
			if want := "id: 2|data: second"; err != nil || ev != want {
				t.Errorf("event 2: got %q (err %v), want %q", ev, err, want)
			}
			select {
			case msg := <-upstreamErr:
				t.Error(msg)
			default:
			}
		})
	}
}
