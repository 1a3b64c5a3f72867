package proxy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"torii/internal/config"
	"torii/internal/request"
	"torii/internal/upstream"
)

// testID is the request ID the tests' front handler gives every request.
const testID = "req-test-1"

// origin is a real upstream server whose behaviour a test chooses, with a
// count of the requests that reached it.
type origin struct {
	*httptest.Server
	hits atomic.Int64
}

// addr returns the origin's "ip:port".
func (o *origin) addr() string { return o.Listener.Addr().String() }

// newOrigin starts an upstream serving h.
func newOrigin(t testing.TB, h http.HandlerFunc) *origin {
	t.Helper()
	o := &origin{}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.hits.Add(1)
		h(w, r)
	}))
	t.Cleanup(o.Close)
	return o
}

// behaviour returns a named upstream behaviour:
//
//	ok     read the body, answer 200 "ok:<method>:<body>"
//	reset  read the request, then close the connection without a response
//	503    answer 503 "busy"
//	slow   answer nothing until the try is abandoned
func behaviour(t testing.TB, name string) http.HandlerFunc {
	switch name {
	case "ok":
		return func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "ok:%s:%s", r.Method, b)
		}
	case "reset":
		return func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			hangUp(t, w)
		}
	case "503":
		return func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			http.Error(w, "busy", http.StatusServiceUnavailable)
		}
	case "slow":
		return func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		}
	}
	t.Fatalf("unknown behaviour %q", name)
	return nil
}

// hangUp closes the client connection under w without a response.
func hangUp(t testing.TB, w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		t.Errorf("hijack: %v", err)
		return
	}
	conn.Close()
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// newPool builds a real pool named name over addrs, in a fresh registry,
// after edit (if any) changed its config.
func newPool(t testing.TB, name string, edit func(*config.Upstream), addrs ...string) *upstream.Pool {
	t.Helper()
	cfg := &config.Upstream{}
	for _, a := range addrs {
		cfg.Endpoints = append(cfg.Endpoints, config.Endpoint{Addr: a, Weight: 1})
	}
	if edit != nil {
		edit(cfg)
	}
	reg := upstream.NewRegistry(upstream.Options{Logger: slog.New(slog.DiscardHandler)})
	p, err := upstream.NewPool(name, cfg, reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// newHandler builds a Handler for pool with o's other settings.
func newHandler(t testing.TB, pool *upstream.Pool, o Options) *Handler {
	t.Helper()
	if o.Route == "" {
		o.Route = "test"
	}
	if o.Backends == nil {
		o.Backends = []Backend{{Pool: pool, Weight: 1}}
	}
	h, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// testInfo is what the front handler would record for a request from
// 192.0.2.10.
func testInfo(r *http.Request, trusted bool) *request.Info {
	info := &request.Info{ID: testID, Start: time.Now(), Scheme: "http", PeerTrusted: trusted, Route: "test"}
	info.ClientIP = netip.MustParseAddr("192.0.2.10")
	if r.RemoteAddr != "" {
		if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil && !trusted {
			info.ClientIP = ap.Addr()
		}
	}
	return info
}

// serve runs r through h as the front handler would, with an untrusted
// peer, and returns the recorded response and request.Info.
func serve(h http.Handler, r *http.Request) (*httptest.ResponseRecorder, *request.Info) {
	info := testInfo(r, false)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r.WithContext(request.NewContext(r.Context(), info)))
	return rec, info
}

// front serves h on a real listener, as the lead's front handler does
// (Info in the context), and sends each request's Info on the returned
// channel once h is done with it, also when h aborts the response.
func front(t testing.TB, h http.Handler) (*httptest.Server, <-chan *request.Info) {
	t.Helper()
	infos := make(chan *request.Info, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := testInfo(r, false)
		defer func() { infos <- info }()
		h.ServeHTTP(w, r.WithContext(request.NewContext(r.Context(), info)))
	}))
	t.Cleanup(srv.Close)
	return srv, infos
}

// waitInfo returns the next Info from infos, failing after a while.
func waitInfo(t testing.TB, infos <-chan *request.Info) *request.Info {
	t.Helper()
	select {
	case info := <-infos:
		return info
	case <-time.After(5 * time.Second):
		t.Fatal("handler did not finish")
		return nil
	}
}

// testContext returns a context that ends with the test or after 10s.
func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// requestContext returns r's context carrying info.
func requestContext(r *http.Request, info *request.Info) context.Context {
	return request.NewContext(r.Context(), info)
}
