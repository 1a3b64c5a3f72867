package proxy

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"torii/internal/config"
	"torii/internal/request"
)

// echoHeaders is an upstream that answers with the request's header as
// JSON, plus the Host it saw under "Host".
func echoHeaders(w http.ResponseWriter, r *http.Request) {
	h := r.Header.Clone()
	h.Set("Host", r.Host)
	json.NewEncoder(w).Encode(h)
}

func TestRequestHeaders(t *testing.T) {
	o := newOrigin(t, echoHeaders)
	pool := newPool(t, "app", nil, o.addr())
	ops := config.HeaderOps{
		Set:    map[string]string{"x-env": "prod"},
		Add:    map[string]string{"X-Tag": "torii"},
		Remove: []string{"X-Debug"},
	}
	h := newHandler(t, pool, Options{RequestHeaders: ops})

	tests := []struct {
		name    string
		header  map[string]string // sent by the client (or a proxy in front)
		remote  string
		trusted bool
		want    map[string]string // values the upstream must see
		absent  []string          // fields the upstream must not see
	}{
		{
			name: "hop-by-hop fields dropped",
			header: map[string]string{
				"Connection": "keep-alive", "Keep-Alive": "timeout=5", "Proxy-Connection": "keep-alive",
				"Proxy-Authorization": "Basic c2VjcmV0", "Te": "gzip", "X-Keep": "1",
			},
			want:   map[string]string{"X-Keep": "1"},
			absent: []string{"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authorization", "Te"},
		},
		{
			name:   "fields named in Connection dropped",
			header: map[string]string{"Connection": "close, X-Secret ,x-other", "X-Secret": "s", "X-Other": "o", "X-Keep": "1"},
			want:   map[string]string{"X-Keep": "1"},
			absent: []string{"X-Secret", "X-Other"},
		},
		{
			name:   "upgrade to h2c never forwarded",
			header: map[string]string{"Connection": "Upgrade, HTTP2-Settings", "Upgrade": "h2c", "Http2-Settings": "AAMAAABkAAQAAP__"},
			absent: []string{"Upgrade", "Http2-Settings", "Connection"},
		},
		{
			name:   "TE trailers kept alone",
			header: map[string]string{"Te": "deflate, trailers"},
			want:   map[string]string{"Te": "trailers"},
		},
		{
			name: "Connection cannot strip forwarded fields",
			header: map[string]string{
				"Connection":        "X-Forwarded-For, X-Request-Id, X-Forwarded-Proto, X-Forwarded-Host",
				"X-Forwarded-For":   "203.0.113.9",
				"X-Request-Id":      "client-chosen",
				"X-Forwarded-Proto": "https",
			},
			want: map[string]string{
				"X-Forwarded-For": "192.0.2.10", "X-Request-Id": testID,
				"X-Forwarded-Proto": "http", "X-Forwarded-Host": "app.example.com",
			},
		},
		{
			name:    "Connection from a trusted proxy cannot strip the chain",
			header:  map[string]string{"Connection": "X-Forwarded-For", "X-Forwarded-For": "192.0.2.10"},
			remote:  "10.0.0.5:4000",
			trusted: true,
			want:    map[string]string{"X-Forwarded-For": "192.0.2.10, 10.0.0.5"},
		},
		{
			name:   "untrusted peer: forwarded fields replaced",
			header: map[string]string{"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example", "Forwarded": "for=203.0.113.9"},
			want:   map[string]string{"X-Forwarded-For": "192.0.2.10", "X-Forwarded-Proto": "http", "X-Forwarded-Host": "app.example.com"},
			absent: []string{"Forwarded"},
		},
		{
			name:    "trusted peer: chain extended, proto and host kept",
			header:  map[string]string{"X-Forwarded-For": "198.51.100.1, 192.0.2.10", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "www.example.com", "Forwarded": "for=192.0.2.10"},
			remote:  "10.0.0.5:4000",
			trusted: true,
			want: map[string]string{
				"X-Forwarded-For":   "198.51.100.1, 192.0.2.10, 10.0.0.5",
				"X-Forwarded-Proto": "https", "X-Forwarded-Host": "www.example.com", "Forwarded": "for=192.0.2.10",
			},
		},
		{
			name:    "trusted peer without forwarded fields: torii's own",
			remote:  "[::ffff:10.0.0.5]:4000",
			trusted: true,
			want:    map[string]string{"X-Forwarded-For": "10.0.0.5", "X-Forwarded-Proto": "http", "X-Forwarded-Host": "app.example.com"},
		},
		{
			name:   "request id replaced by torii's",
			header: map[string]string{"X-Request-Id": "spoofed"},
			want:   map[string]string{"X-Request-Id": testID},
		},
		{
			name:   "host kept and route ops applied",
			header: map[string]string{"X-Debug": "1", "X-Env": "dev", "X-Tag": "client"},
			want:   map[string]string{"Host": "app.example.com", "X-Env": "prod", "X-Tag": "client,torii"},
			absent: []string{"X-Debug"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "http://app.example.com/echo", nil)
			r.RemoteAddr = "192.0.2.10:1234"
			if tt.remote != "" {
				r.RemoteAddr = tt.remote
			}
			for k, v := range tt.header {
				r.Header.Set(k, v)
			}
			info := testInfo(r, tt.trusted)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r.WithContext(request.NewContext(r.Context(), info)))
			if rec.Code != http.StatusOK {
				t.Fatalf("status: got %d, want 200 (%s)", rec.Code, rec.Body)
			}
			var got http.Header
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatalf("decode echoed header: %v", err)
			}
			for k, want := range tt.want {
				if v := strings.Join(got.Values(k), ","); v != want {
					t.Errorf("%s: got %q, want %q", k, v, want)
				}
			}
			for _, k := range tt.absent {
				if v, ok := got[http.CanonicalHeaderKey(k)]; ok {
					t.Errorf("%s: got %q, want absent", k, v)
				}
			}
		})
	}
}

func TestResponseHeaders(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Connection", "X-Internal")
		h.Set("X-Internal", "secret")
		h.Set("Keep-Alive", "timeout=5")
		h.Set("Proxy-Authenticate", "Basic")
		h.Set("Upgrade", "h2c")
		h.Set("X-Powered-By", "php")
		h.Set("X-Kept", "1")
		w.Write([]byte("hi"))
	})
	pool := newPool(t, "app", nil, o.addr())
	h := newHandler(t, pool, Options{ResponseHeaders: config.HeaderOps{
		Remove: []string{"x-powered-by"},
		Set:    map[string]string{"X-Frame-Options": "DENY"},
		Add:    map[string]string{"Vary": "Origin"},
	}})
	rec, _ := serve(h, httptest.NewRequest(http.MethodGet, "/", nil))

	tests := []struct {
		name, field, want string // want "" means absent
	}{
		{"Connection dropped", "Connection", ""},
		{"field named in Connection dropped", "X-Internal", ""},
		{"Keep-Alive dropped", "Keep-Alive", ""},
		{"Proxy-Authenticate dropped", "Proxy-Authenticate", ""},
		{"Upgrade dropped", "Upgrade", ""},
		{"removed by route", "X-Powered-By", ""},
		{"set by route", "X-Frame-Options", "DENY"},
		{"added by route", "Vary", "Origin"},
		{"other fields kept", "X-Kept", "1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := rec.Header().Get(tt.field); got != tt.want {
				t.Errorf("%s: got %q, want %q", tt.field, got, tt.want)
			}
		})
	}
	if rec.Body.String() != "hi" {
		t.Errorf("body: got %q, want %q", rec.Body, "hi")
	}
}

func TestCompileHeaderOpsRejects(t *testing.T) {
	tests := []struct {
		name string
		ops  config.HeaderOps
	}{
		{"space in name", config.HeaderOps{Set: map[string]string{"X Bad": "1"}}},
		{"empty remove", config.HeaderOps{Remove: []string{""}}},
		{"CRLF in value", config.HeaderOps{Add: map[string]string{"X-Ok": "a\r\nX-Evil: 1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := compileHeaderOps(tt.ops); err == nil {
				t.Errorf("got no error, want one")
			}
		})
	}
}

// FuzzOutgoingHeader checks that whatever the client sends, no hop-by-hop
// field leaves torii and the forwarded fields are always torii's.
func FuzzOutgoingHeader(f *testing.F) {
	// Seeds: a Connection list naming the forwarded fields, a list with
	// empty elements and odd spacing, and a value that is not a list.
	f.Add("X-Forwarded-For, X-Request-Id", "X-Forwarded-For", "1.2.3.4")
	f.Add(" , ,keep-alive,,Upgrade ", "Upgrade", "h2c")
	f.Add("close", "Te", "trailers;q=0.5, gzip")
	h := &Handler{}
	f.Fuzz(func(t *testing.T, connection, name, value string) {
		r := httptest.NewRequest(http.MethodGet, "http://app.example.com/", nil)
		r.Header["Connection"] = []string{connection}
		if validName(name) {
			r.Header[http.CanonicalHeaderKey(name)] = append(r.Header[http.CanonicalHeaderKey(name)], value)
		}
		info := &request.Info{ID: "id-1", Scheme: "http", ClientIP: netip.MustParseAddr("192.0.2.10")}
		up := upgradeProtocols(r)
		out := h.outgoingHeader(r, info, false, up, nil)
		for _, hop := range hopHeaders {
			if up != "" && (hop == "Connection" || hop == "Upgrade") {
				// An upgrade request keeps exactly these two (RFC 9110 §7.8).
				if v := out.Values("Connection"); len(v) != 1 || v[0] != "Upgrade" {
					t.Errorf("Connection of an upgrade: got %q, want only Upgrade", v)
				}
				if hasToken(out.Values("Upgrade"), "h2c") {
					t.Errorf("Upgrade: got %q, want no h2c", out.Values("Upgrade"))
				}
				continue
			}
			if hop == "Te" {
				if v := out.Values("Te"); len(v) > 0 && (len(v) != 1 || v[0] != "trailers") {
					t.Errorf("Te: got %q, want only trailers", v)
				}
				continue
			}
			if v, ok := out[hop]; ok {
				t.Errorf("%s: got %q, want absent", hop, v)
			}
		}
		for k, want := range map[string]string{
			"X-Forwarded-For": "192.0.2.10", "X-Forwarded-Proto": "http",
			"X-Forwarded-Host": "app.example.com", "X-Request-Id": "id-1",
		} {
			if got := out.Values(k); len(got) != 1 || got[0] != want {
				t.Errorf("%s: got %q, want %q", k, got, want)
			}
		}
	})
}

func TestAddrString(t *testing.T) {
	tests := []struct {
		addr, remote, want string
	}{
		{"192.0.2.7", "192.0.2.7:5123", "192.0.2.7"},
		{"192.0.2.8", "192.0.2.7:5123", "192.0.2.8"}, // not the peer: formatted
		{"192.0.2.7", "[::ffff:192.0.2.7]:5123", "192.0.2.7"},
		{"2001:db8::1", "[2001:db8::1]:443", "2001:db8::1"},
		{"192.0.2.7", "garbage", "192.0.2.7"},
	}
	for _, tt := range tests {
		a := netip.MustParseAddr(tt.addr)
		if got := addrString(a, tt.remote); got != tt.want {
			t.Errorf("addrString(%s, %q) = %q, want %q", tt.addr, tt.remote, got, tt.want)
		}
		if got := addrString(a, tt.remote); got != a.String() {
			t.Errorf("addrString(%s, %q) = %q, differs from Addr.String %q", tt.addr, tt.remote, got, a.String())
		}
	}
	if n := testing.AllocsPerRun(100, func() { addrString(netip.MustParseAddr("192.0.2.7"), "192.0.2.7:5123") }); n != 0 {
		t.Errorf("addrString of the peer's own IPv4 address allocates %v times, want 0", n)
	}
}

// TestRecycledHeaderMaps: the header maps sent upstream go back to a pool
// after each request; a later request must see none of an earlier one's
// fields.
func TestRecycledHeaderMaps(t *testing.T) {
	got := make(chan http.Header, 1)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) { got <- r.Header.Clone() })
	h := newHandler(t, newPool(t, "app", nil, o.addr()), Options{})
	for i, fields := range []map[string]string{
		{"X-First": "1", "X-Shared": "a"},
		{"X-Shared": "b"},
		{},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		for k, v := range fields {
			r.Header.Set(k, v)
		}
		rec, _ := serve(h, r)
		if rec.Code != http.StatusOK {
			t.Fatalf("request %d: status %d", i, rec.Code)
		}
		up := <-got
		if i > 0 && up.Get("X-First") != "" {
			t.Errorf("request %d: upstream got X-First from an earlier request", i)
		}
		if want := fields["X-Shared"]; up.Get("X-Shared") != want {
			t.Errorf("request %d: X-Shared %q, want %q", i, up.Get("X-Shared"), want)
		}
		if up.Get("X-Forwarded-For") == "" {
			t.Errorf("request %d: no X-Forwarded-For", i)
		}
	}
}

// The HTTP/1.1 transport's response header maps are recycled once
// relayed: an earlier response's fields must neither leak into a later
// one nor change under the handler that got them.
func TestRecycledResponseHeaderMaps(t *testing.T) {
	var n atomic.Int32
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		i := n.Add(1)
		w.Header().Set("X-Response", strconv.Itoa(int(i)))
		if i == 1 {
			w.Header().Set("X-First", "only")
		}
	})
	h := newHandler(t, newPool(t, "app", nil, o.addr()), Options{})
	var recs []*httptest.ResponseRecorder
	for i := range 3 {
		rec, _ := serve(h, httptest.NewRequest("GET", "/", nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("request %d: status %d", i, rec.Code)
		}
		recs = append(recs, rec)
	}
	for i, rec := range recs {
		if got, want := rec.Header().Get("X-Response"), strconv.Itoa(i+1); got != want {
			t.Errorf("response %d: X-Response %q, want %q", i, got, want)
		}
		if got := rec.Header().Get("X-First"); (i == 0) != (got == "only") {
			t.Errorf("response %d: X-First %q", i, got)
		}
	}
}
