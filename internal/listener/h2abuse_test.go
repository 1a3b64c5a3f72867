package listener

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2Client is a raw HTTP/2 client connection driven frame by frame.
type h2Client struct {
	conn net.Conn
	fr   *http2.Framer
	// frames receives what the server sends; closed when it stops.
	frames chan http2.Frame
}

// dialH2 opens an HTTP/2 connection (TLS with ALPN h2, or h2c), sends the
// preface and SETTINGS, and reads frames in the background so the server
// never blocks on writing.
func dialH2(t *testing.T, addr string, cfg *tls.Config) *h2Client {
	t.Helper()
	var c net.Conn
	var err error
	if cfg != nil {
		c, err = tls.Dial("tcp", addr, cfg)
		if err == nil && c.(*tls.Conn).ConnectionState().NegotiatedProtocol != "h2" {
			t.Fatalf("ALPN: got %q, want h2", c.(*tls.Conn).ConnectionState().NegotiatedProtocol)
		}
	} else {
		c, err = net.Dial("tcp", addr)
	}
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	hc := &h2Client{conn: c, fr: http2.NewFramer(c, c), frames: make(chan http2.Frame, 64)}
	hc.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	io.WriteString(c, http2.ClientPreface)
	hc.fr.WriteSettings()
	go func() {
		defer close(hc.frames)
		for {
			f, err := hc.fr.ReadFrame()
			if err != nil {
				return
			}
			if _, ok := f.(*http2.SettingsFrame); ok {
				continue // these tests never ACK the server's SETTINGS; it does not need them to
			}
			select {
			case hc.frames <- f:
			default: // drop when nobody listens
			}
		}
	}()
	return hc
}

// encode returns an HPACK block for the request pseudo-headers and extra
// fields.
func encode(authority string, extra ...string) []byte {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	enc.WriteField(hpack.HeaderField{Name: ":method", Value: "GET"})
	enc.WriteField(hpack.HeaderField{Name: ":scheme", Value: "https"})
	enc.WriteField(hpack.HeaderField{Name: ":authority", Value: authority})
	enc.WriteField(hpack.HeaderField{Name: ":path", Value: "/"})
	for i := 0; i+1 < len(extra); i += 2 {
		enc.WriteField(hpack.HeaderField{Name: extra[i], Value: extra[i+1]})
	}
	return buf.Bytes()
}

// settle waits for the goroutine count to come back within 10 of base and
// checks that the heap grew less than 32 MiB.
func settle(t *testing.T, baseG int, baseHeap uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > baseG+10 {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			n := runtime.Stack(buf, true)
			t.Fatalf("goroutines: got %d, want at most %d\n%s", runtime.NumGoroutine(), baseG+10, buf[:n])
		}
		time.Sleep(20 * time.Millisecond)
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if ms.HeapAlloc > baseHeap && ms.HeapAlloc-baseHeap > 32<<20 {
		t.Errorf("heap grew by %d MiB, want under 32", (ms.HeapAlloc-baseHeap)>>20)
	}
}

func baseline() (int, uint64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return runtime.NumGoroutine(), ms.HeapAlloc
}

// h2Servers starts an HTTP/2 server over TLS and an h2c one, with at most
// 100 concurrent streams, and returns how to reach each.
func h2Servers(t *testing.T, h http.Handler) map[string]struct {
	addr string
	cfg  *tls.Config
	ts   *testServer
} {
	pki := newPKI(t)
	certs := mustCerts(t, pki.issue(t, "a.example"))
	tlsTS := startServer(t, h, Options{TLS: ServerTLS(nil, certs), HTTP2: NewHTTP2(100, nil)})
	h2cTS := startServer(t, h, Options{HTTP2: NewHTTP2(100, nil), H2C: true})
	return map[string]struct {
		addr string
		cfg  *tls.Config
		ts   *testServer
	}{
		"tls": {tlsTS.addr, pki.clientTLS("a.example", "h2"), tlsTS},
		"h2c": {h2cTS.addr, nil, h2cTS},
	}
}

// slow is a handler that holds each stream until the client goes away or
// a second passes, so abuse that opens streams costs the server something.
var slow = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-time.After(time.Second):
	}
})

func TestHTTP2RapidReset(t *testing.T) {
	for name, s := range h2Servers(t, slow) {
		t.Run(name, func(t *testing.T) {
			baseG, baseHeap := baseline()
			hc := dialH2(t, s.addr, s.cfg)
			block := encode("a.example")
			for i := range 5000 {
				id := uint32(2*i + 1)
				if err := hc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndHeaders: true}); err != nil {
					break // the server may hang up on an abuser
				}
				if err := hc.fr.WriteRSTStream(id, http2.ErrCodeCancel); err != nil {
					break
				}
			}
			hc.conn.Close()
			settle(t, baseG, baseHeap)
			assertServes(t, s.addr, s.cfg)
		})
	}
}

func TestHTTP2ContinuationFlood(t *testing.T) {
	for name, s := range h2Servers(t, slow) {
		t.Run(name, func(t *testing.T) {
			baseG, baseHeap := baseline()
			hc := dialH2(t, s.addr, s.cfg)
			if err := hc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: encode("a.example")}); err != nil {
				t.Fatal(err)
			}
			// Literal fields, never indexed: a valid block that only grows.
			var buf bytes.Buffer
			hpack.NewEncoder(&buf).WriteField(hpack.HeaderField{Name: "x-flood", Value: strings.Repeat("a", 8000), Sensitive: true})
			chunk := buf.Bytes()
			sent := 0
			hc.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
			for range 20000 { // up to about 160 MB of header block
				if err := hc.fr.WriteContinuation(1, false, chunk); err != nil {
					break
				}
				sent++
			}
			if sent == 20000 {
				t.Errorf("server read %d CONTINUATION frames without END_HEADERS and did not hang up", sent)
			}
			hc.conn.Close()
			settle(t, baseG, baseHeap)
			assertServes(t, s.addr, s.cfg)
		})
	}
}

func TestHTTP2StreamFlood(t *testing.T) {
	var active, peak atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := active.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		defer active.Add(-1)
		slow(w, r)
	})
	for name, s := range h2Servers(t, h) {
		t.Run(name, func(t *testing.T) {
			peak.Store(0)
			baseG, baseHeap := baseline()
			hc := dialH2(t, s.addr, s.cfg)
			block := encode("a.example")
			for i := range 2000 {
				if err := hc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: uint32(2*i + 1), BlockFragment: block, EndHeaders: true, EndStream: true}); err != nil {
					break
				}
			}
			time.Sleep(100 * time.Millisecond)
			if p := peak.Load(); p > 100 {
				t.Errorf("got %d concurrent handlers, want at most max_concurrent_streams (100)", p)
			}
			hc.conn.Close()
			settle(t, baseG, baseHeap)
			assertServes(t, s.addr, s.cfg)
		})
	}
}

// TestHTTP2ConnectionSpecificHeaders checks that HTTP/2 requests carrying
// connection-specific fields are refused (RFC 9113 §8.2.2) before the
// handler runs, and that "te: trailers" is allowed.
func TestHTTP2ConnectionSpecificHeaders(t *testing.T) {
	servers := h2Servers(t, echo)
	tests := []struct {
		name, field, value string
		ok                 bool
	}{
		{"connection", "connection", "keep-alive", false},
		{"keep-alive", "keep-alive", "timeout=5", false},
		{"proxy-connection", "proxy-connection", "keep-alive", false},
		{"transfer-encoding", "transfer-encoding", "chunked", false},
		{"upgrade", "upgrade", "websocket", false},
		{"te gzip", "te", "gzip", false},
		{"te trailers", "te", "trailers", true},
	}
	for name, s := range servers {
		for _, tt := range tests {
			t.Run(name+"/"+tt.name, func(t *testing.T) {
				before := s.ts.hits.Load()
				hc := dialH2(t, s.addr, s.cfg)
				defer hc.conn.Close()
				hc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: encode("a.example", tt.field, tt.value), EndHeaders: true, EndStream: true})
				status := waitStream(t, hc, 1)
				ran := s.ts.hits.Load() - before
				if tt.ok {
					if status != "200" || ran != 1 {
						t.Errorf("got %q (handler ran %d), want 200", status, ran)
					}
					return
				}
				if (status != "rst" && status != "400") || ran != 0 {
					t.Errorf("got %q (handler ran %d times), want RST_STREAM or 400 and no handler", status, ran)
				}
			})
		}
	}
}

// waitStream returns the :status of stream id, "rst" for a reset, or
// "goaway".
func waitStream(t *testing.T, hc *h2Client, id uint32) string {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case f, ok := <-hc.frames:
			if !ok {
				return "closed"
			}
			switch f := f.(type) {
			case *http2.MetaHeadersFrame:
				if f.StreamID == id {
					return f.PseudoValue("status")
				}
			case *http2.RSTStreamFrame:
				if f.StreamID == id {
					return "rst"
				}
			case *http2.GoAwayFrame:
				return "goaway"
			}
		case <-timeout:
			t.Fatalf("no answer on stream %d", id)
		}
	}
}

// assertServes checks that a fresh connection is still served after an
// attack.
func assertServes(t *testing.T, addr string, cfg *tls.Config) {
	t.Helper()
	hc := dialH2(t, addr, cfg)
	defer hc.conn.Close()
	hc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: encode("a.example"), EndHeaders: true, EndStream: true})
	if got := waitStream(t, hc, 1); got != "200" {
		t.Errorf("after the attack: got %q, want 200", got)
	}
}
