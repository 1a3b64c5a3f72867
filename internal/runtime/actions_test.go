package runtime_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"testing"
)

func TestRewrite(t *testing.T) {
	tests := []struct {
		name string
		// route is the route's lines below "- name: r", without
		// "backends", which is always the echo upstream.
		route  string
		target string
		// wantURI is the request URI the upstream got: the escaped path
		// and the query.
		wantURI string
		// wantPath is the decoded path; "" means the same as wantURI's
		// path (nothing encoded).
		wantPath string
	}{
		// strip_prefix
		{"strip exact", "match: {path_prefix: /api}\n    strip_prefix: /api", "/api", "/", ""},
		{"strip slash", "match: {path_prefix: /api}\n    strip_prefix: /api", "/api/", "/", ""},
		{"strip below", "match: {path_prefix: /api}\n    strip_prefix: /api", "/api/items", "/items", ""},
		{"strip keeps trailing slash", "match: {path_prefix: /api}\n    strip_prefix: /api", "/api/items/", "/items/", ""},
		{"strip keeps encoded slash", "match: {path_prefix: /api}\n    strip_prefix: /api", "/api/a%2Fb?x=1", "/a%2Fb?x=1", "/a/b"},
		{"strip keeps encoded non-ascii", "match: {path_prefix: /api}\n    strip_prefix: /api", "/api/caf%c3%a9", "/caf%C3%A9", "/café"},
		{"strip keeps query", "match: {path_prefix: /api}\n    strip_prefix: /api", "/api/items?q=a%20b&x&y=1+2", "/items?q=a%20b&x&y=1+2", ""},
		{"strip with slash", "match: {path_prefix: /api/}\n    strip_prefix: /api/", "/api/items", "/items", ""},
		{"strip with slash, exact", "match: {path_prefix: /api/}\n    strip_prefix: /api/", "/api/", "/", ""},
		{"strip part of prefix", "match: {path_prefix: /api/v1}\n    strip_prefix: /api", "/api/v1/items", "/v1/items", ""},
		{"strip after cleaning", "match: {path_prefix: /api}\n    strip_prefix: /api", "/x/../api//items", "/items", ""},

		// rewrite.path
		{"path", "match: {path_prefix: /old}\n    rewrite: {path: /fixed}", "/old/x?y=1", "/fixed?y=1", ""},
		{"path after strip", "match: {path_prefix: /api}\n    strip_prefix: /api\n    rewrite: {path: /fixed/}", "/api/x", "/fixed/", ""},
		{"path with bare percent", "match: {path_prefix: /old}\n    rewrite: {path: \"/100%\"}", "/old", "/100%25", "/100%"},
		{"path non-ascii", "match: {path_prefix: /old}\n    rewrite: {path: /café}", "/old", "/caf%C3%A9", "/café"},

		// rewrite.prefix
		{"prefix exact", "match: {path_prefix: /api}\n    rewrite: {prefix: /v2}", "/api", "/v2", ""},
		{"prefix slash", "match: {path_prefix: /api}\n    rewrite: {prefix: /v2}", "/api/", "/v2/", ""},
		{"prefix below", "match: {path_prefix: /api}\n    rewrite: {prefix: /v2}", "/api/items?x=1", "/v2/items?x=1", ""},
		{"prefix keeps encoded slash", "match: {path_prefix: /api}\n    rewrite: {prefix: /v2}", "/api/a%2Fb", "/v2/a%2Fb", "/v2/a/b"},
		{"prefix with slash, no double slash", "match: {path_prefix: /api}\n    rewrite: {prefix: /v2/}", "/api/items", "/v2/items", ""},
		{"prefix with slash, exact", "match: {path_prefix: /api}\n    rewrite: {prefix: /v2/}", "/api", "/v2/", ""},
		{"match with slash", "match: {path_prefix: /api/}\n    rewrite: {prefix: /v2}", "/api/items", "/v2/items", ""},
		{"match with slash, exact", "match: {path_prefix: /api/}\n    rewrite: {prefix: /v2}", "/api/", "/v2/", ""},
		{"prefix root, below", "match: {path_prefix: /api}\n    rewrite: {prefix: /}", "/api/items", "/items", ""},
		{"prefix root, exact", "match: {path_prefix: /api}\n    rewrite: {prefix: /}", "/api", "/", ""},
		{"prefix root, slash", "match: {path_prefix: /api}\n    rewrite: {prefix: /}", "/api/?x", "/?x", ""},
		{"match root, below", "match: {path_prefix: /}\n    rewrite: {prefix: /v2}", "/items", "/v2/items", ""},
		{"match root, exact", "match: {path_prefix: /}\n    rewrite: {prefix: /v2}", "/", "/v2/", ""},
		{"match root, prefix with slash", "match: {path_prefix: /}\n    rewrite: {prefix: /v2/}", "/items", "/v2/items", ""},
		{"match root, prefix root", "match: {path_prefix: /}\n    rewrite: {prefix: /}", "/items/?x=1", "/items/?x=1", ""},
		{"prefix non-ascii keeps encoded slash", "match: {path_prefix: /api}\n    rewrite: {prefix: /café}", "/api/a%2Fb", "/caf%C3%A9/a%2Fb", "/café/a/b"},
		{"prefix with space keeps encoded slash", "match: {path_prefix: /api}\n    rewrite: {prefix: /a b}", "/api/x%2Fy", "/a%20b/x%2Fy", "/a b/x/y"},
		{"strip then prefix", "match: {path_prefix: /api/v1}\n    strip_prefix: /api\n    rewrite: {prefix: /v2}", "/api/v1/items?x=1", "/v2/items?x=1", ""},
		{"strip then prefix, exact", "match: {path_prefix: /api/v1}\n    strip_prefix: /api\n    rewrite: {prefix: /v2}", "/api/v1", "/v2", ""},
		{"strip then prefix with slash", "match: {path_prefix: /api/v1/}\n    strip_prefix: /api\n    rewrite: {prefix: /v2/}", "/api/v1/items", "/v2/items", ""},
		{"strip whole then prefix", "match: {path_prefix: /api}\n    strip_prefix: /api\n    rewrite: {prefix: /v2}", "/api/items", "/v2/items", ""},
		{"strip whole then prefix root", "match: {path_prefix: /api}\n    strip_prefix: /api\n    rewrite: {prefix: /}", "/api/items", "/items", ""},
		{"strip whole then prefix root, exact", "match: {path_prefix: /api}\n    strip_prefix: /api\n    rewrite: {prefix: /}", "/api", "/", ""},

		// rewrite.regex
		{"regex group", "match: {path_prefix: /users}\n    rewrite: {regex: \"^/users/([0-9]+)/profile$\", replace: /u/$1}", "/users/42/profile?x=1", "/u/42?x=1", ""},
		{"regex braces", "match: {path_prefix: /users}\n    rewrite: {regex: \"^/users/([0-9]+)$\", replace: \"/u/${1}x\"}", "/users/42", "/u/42x", ""},
		{"regex two groups", "match: {path_prefix: /}\n    rewrite: {regex: \"^/([a-z]+)/([a-z]+)$\", replace: /$2/$1}", "/a/b", "/b/a", ""},
		{"regex every match", "match: {path_prefix: /}\n    rewrite: {regex: /old/, replace: /new/}", "/old/a/old/b", "/new/a/new/b", ""},
		{"regex no match", "match: {path_prefix: /}\n    rewrite: {regex: \"^/old/\", replace: /new/}", "/other?x=1", "/other?x=1", ""},
		{"regex delete", "match: {path_prefix: /api}\n    rewrite: {regex: \"^/api\"}", "/api/items", "/items", ""},
		{"regex delete all", "match: {path_prefix: /api}\n    rewrite: {regex: \"^/api\"}", "/api", "/", ""},
		{"regex leading slash added", "match: {path_prefix: /}\n    rewrite: {regex: \"^/(.*)$\", replace: $1}", "/items", "/items", ""},
		{"regex sees escaped path", "match: {path_prefix: /files}\n    rewrite: {regex: \"^/files/(.*)$\", replace: /blob/$1}", "/files/a%2Fb?v=2", "/blob/a%2Fb?v=2", "/blob/a/b"},
		{"regex output cleaned", "match: {path_prefix: /a}\n    rewrite: {regex: \"^/a/(.*)$\", replace: /b//./$1}", "/a/x?y", "/b/x?y", ""},
		{"regex after strip", "match: {path_prefix: /api}\n    strip_prefix: /api\n    rewrite: {regex: \"^/v1/\", replace: /v2/}", "/api/v1/x", "/v2/x", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap := echoSnapshot(t, fmt.Sprintf("  - name: r\n    %s\n    backends: [{upstream: echo}]\n", tt.route))
			w, info := serve(t, snap, newRequest("GET", "http://example.com"+tt.target), "")
			e := decodeEcho(t, w)
			if info.Route != "r" {
				t.Fatalf("got route %q, want r", info.Route)
			}
			if e.RequestURI != tt.wantURI {
				t.Errorf("%s: got request URI %q, want %q", tt.target, e.RequestURI, tt.wantURI)
			}
			wantPath := tt.wantPath
			if wantPath == "" {
				wantPath = pathOf(tt.wantURI)
			}
			if e.Path != wantPath {
				t.Errorf("%s: got decoded path %q, want %q", tt.target, e.Path, wantPath)
			}
		})
	}
}

// pathOf returns uri without its query.
func pathOf(uri string) string {
	for i := range len(uri) {
		if uri[i] == '?' {
			return uri[:i]
		}
	}
	return uri
}

func TestRedirect(t *testing.T) {
	tests := []struct {
		name     string
		redirect string // the route's redirect, YAML flow mapping
		host     string // the request's Host
		target   string // the request's path and query
		scheme   string // the scheme the client used; "" is http
		wantCode int
		wantLoc  string
	}{
		{"defaults", "{}", "example.com:8080", "/a/b?x=1&y=%20", "", 302, "http://example.com:8080/a/b?x=1&y=%20"},
		{"default keeps https", "{}", "example.com", "/a", "https", 302, "https://example.com/a"},
		{"to https drops port", "{scheme: https}", "example.com:8080", "/a?x=1", "", 302, "https://example.com/a?x=1"},
		{"to https without port", "{scheme: https}", "example.com", "/a", "", 302, "https://example.com/a"},
		{"to https with port", "{scheme: https, port: 8443}", "example.com:8080", "/a", "", 302, "https://example.com:8443/a"},
		{"to https default port omitted", "{scheme: https, port: 443}", "example.com:8080", "/a", "", 302, "https://example.com/a"},
		{"to http drops port", "{scheme: http}", "example.com:8443", "/a", "https", 302, "http://example.com/a"},
		{"same scheme keeps port", "{scheme: https}", "example.com:8443", "/a", "https", 302, "https://example.com:8443/a"},
		{"http default port omitted", "{port: 80}", "example.com:8080", "/a", "", 302, "http://example.com/a"},
		{"https port on http kept", "{port: 443}", "example.com", "/a", "", 302, "http://example.com:443/a"},
		{"request default port omitted", "{}", "example.com:80", "/a", "", 302, "http://example.com/a"},
		{"host keeps port", "{host: www.example.org}", "example.com:8080", "/a", "", 302, "http://www.example.org:8080/a"},
		{"host and port", "{host: www.example.org, port: 9000}", "example.com:8080", "/a", "", 302, "http://www.example.org:9000/a"},
		{"host, scheme and status", "{scheme: https, host: www.example.org, status: 301}", "example.com:8080", "/a?q=1", "", 301, "https://www.example.org/a?q=1"},
		{"path keeps query", "{path: /login}", "example.com", "/signin?next=%2Fhome", "", 302, "http://example.com/login?next=%2Fhome"},
		{"path non-ascii", "{path: /café}", "example.com", "/a", "", 302, "http://example.com/caf%C3%A9"},
		{"strip query", "{strip_query: true}", "example.com", "/a?x=1", "", 302, "http://example.com/a"},
		{"strip query and path", "{path: /login, strip_query: true, status: 303}", "example.com", "/a?x=1", "", 303, "http://example.com/login"},
		{"status 307", "{status: 307}", "example.com", "/a", "", 307, "http://example.com/a"},
		{"status 308", "{status: 308, scheme: https}", "example.com", "/a", "", 308, "https://example.com/a"},
		{"encoded slash kept", "{}", "example.com", "/a%2Fb", "", 302, "http://example.com/a%2Fb"},
		{"cleaned path", "{}", "example.com", "/a/../b//c", "", 302, "http://example.com/b/c"},
		{"ipv6 keeps port", "{}", "[2001:db8::1]:8080", "/a", "", 302, "http://[2001:db8::1]:8080/a"},
		{"ipv6 without port", "{}", "[2001:db8::1]", "/a", "", 302, "http://[2001:db8::1]/a"},
		{"ipv6 to https drops port", "{scheme: https}", "[2001:db8::1]:8080", "/a", "", 302, "https://[2001:db8::1]/a"},
		{"ipv6 new port", "{port: 9000}", "[2001:db8::1]", "/a", "", 302, "http://[2001:db8::1]:9000/a"},
		{"ipv6 host", "{host: \"2001:db8::2\"}", "example.com", "/a", "", 302, "http://[2001:db8::2]/a"},
		{"ipv6 host keeps port", "{host: \"2001:db8::2\"}", "example.com:8080", "/a", "", 302, "http://[2001:db8::2]:8080/a"},
		{"bracketed ipv6 host", "{host: \"[2001:db8::2]\", port: 8443, scheme: https}", "example.com", "/a", "", 302, "https://[2001:db8::2]:8443/a"},
		{"ipv4 host", "{host: 192.0.2.10}", "example.com", "/a", "", 302, "http://192.0.2.10/a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap := newSnapshot(t, "routes:\n  - name: r\n    redirect: "+tt.redirect+"\n")
			r := newRequest("GET", "http://example.com"+tt.target)
			r.Host = tt.host
			w, info := serve(t, snap, r, tt.scheme)
			if info.Route != "r" {
				t.Fatalf("got route %q, want r", info.Route)
			}
			if w.Code != tt.wantCode {
				t.Errorf("got status %d, want %d", w.Code, tt.wantCode)
			}
			if got := w.Header().Values("Location"); !slices.Equal(got, []string{tt.wantLoc}) {
				t.Errorf("got Location %q, want %q", got, tt.wantLoc)
			}
		})
	}
}

func TestDirectResponse(t *testing.T) {
	tests := []struct {
		name, direct, method string
		wantCode             int
		wantType             string // "" means no Content-Type
		wantLen              string // "" means no Content-Length
		wantBody             string
	}{
		{"body", `{status: 200, body: "hello\n"}`, "GET", 200, "text/plain; charset=utf-8", "6", "hello\n"},
		{"content type", `{status: 200, body: "{}", content_type: application/json}`, "GET", 200, "application/json", "2", "{}"},
		{"error status", `{status: 503, body: down}`, "POST", 503, "text/plain; charset=utf-8", "4", "down"},
		{"no body", `{status: 403}`, "GET", 403, "", "0", ""},
		{"no body, content type", `{status: 200, content_type: application/json}`, "GET", 200, "application/json", "0", ""},
		{"head", `{status: 200, body: hello}`, "HEAD", 200, "text/plain; charset=utf-8", "5", ""},
		{"no content", `{status: 204}`, "GET", 204, "", "", ""},
		{"no content ignores body", `{status: 204, body: hello}`, "GET", 204, "", "", ""},
		{"not modified ignores body", `{status: 304, body: hello}`, "GET", 304, "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap := newSnapshot(t, "routes:\n  - name: r\n    direct_response: "+tt.direct+"\n")
			w, info := serve(t, snap, newRequest(tt.method, "http://example.com/x"), "")
			if info.Route != "r" {
				t.Fatalf("got route %q, want r", info.Route)
			}
			if w.Code != tt.wantCode {
				t.Errorf("got status %d, want %d", w.Code, tt.wantCode)
			}
			if got := w.Header().Values("Content-Type"); !equalOrNone(got, tt.wantType) {
				t.Errorf("got Content-Type %q, want %q", got, tt.wantType)
			}
			if got := w.Header().Values("Content-Length"); !equalOrNone(got, tt.wantLen) {
				t.Errorf("got Content-Length %q, want %q", got, tt.wantLen)
			}
			if got := w.Body.String(); got != tt.wantBody {
				t.Errorf("got body %q, want %q", got, tt.wantBody)
			}
		})
	}
}

// equalOrNone reports whether values is exactly [want], or empty when want
// is "".
func equalOrNone(values []string, want string) bool {
	if want == "" {
		return len(values) == 0
	}
	return slices.Equal(values, []string{want})
}

// TestDirectResponseWire checks the statuses without a body on a real
// connection, where net/http also has a say.
func TestDirectResponseWire(t *testing.T) {
	for _, status := range []int{204, 304} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			snap := newSnapshot(t, fmt.Sprintf("routes:\n  - name: r\n    direct_response: {status: %d, body: hello}\n", status))
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				r, _ = prepare(t, r, "")
				snap.ServeHTTP(w, r)
			}))
			defer srv.Close()
			res, err := srv.Client().Get(srv.URL + "/x")
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			if res.StatusCode != status {
				t.Errorf("got status %d, want %d", res.StatusCode, status)
			}
			if res.ContentLength > 0 {
				t.Errorf("got Content-Length %d, want none", res.ContentLength)
			}
		})
	}
}

func TestHeaderOps(t *testing.T) {
	addr := startEcho(t, "echo")
	snap := newSnapshot(t, fmt.Sprintf(`
upstreams:
  echo: {endpoints: [%q]}
routes:
  - name: proxied
    match: {path_prefix: /proxy}
    backends: [{upstream: echo}]
    request_headers:
      set: {X-Set: new, x-lower: set}
      add: {X-Add: two}
      remove: [X-Drop, x-drop-lower]
    response_headers:
      set: {X-Up-Set: new}
      add: {X-Up-Add: two}
      remove: [X-Up-Drop]
  - name: direct
    match: {path_prefix: /direct}
    direct_response: {status: 200, body: ok}
    response_headers:
      set: {Cache-Control: no-store, Content-Type: text/html}
      add: {X-Add: two}
      remove: [Content-Length]
  - name: redirect
    match: {path_prefix: /redirect}
    redirect: {path: /elsewhere}
    response_headers:
      set: {Cache-Control: max-age=60, Location: /ignored}
      add: {X-Add: one}
`, addr))

	t.Run("request", func(t *testing.T) {
		r := newRequest("GET", "http://example.com/proxy")
		r.Header.Set("X-Set", "old")
		r.Header.Add("X-Add", "one")
		r.Header.Set("X-Drop", "1")
		r.Header.Set("X-Drop-Lower", "1")
		r.Header.Set("X-Keep", "1")
		w, _ := serve(t, snap, r, "")
		e := decodeEcho(t, w)
		tests := []struct {
			name string
			want []string
		}{
			{"X-Set", []string{"new"}},
			{"X-Lower", []string{"set"}},
			{"X-Add", []string{"one", "two"}},
			{"X-Drop", nil},
			{"X-Drop-Lower", nil},
			{"X-Keep", []string{"1"}},
		}
		for _, tt := range tests {
			if got := e.Header.Values(tt.name); !slices.Equal(got, tt.want) {
				t.Errorf("upstream got %s %q, want %q", tt.name, got, tt.want)
			}
		}
	})

	tests := []struct {
		name, target string
		wantCode     int
		want         map[string][]string // nil: absent
	}{
		{"proxied", "/proxy", 200, map[string][]string{
			"X-Up-Set":  {"new"},
			"X-Up-Add":  {"one", "two"},
			"X-Up-Drop": nil,
		}},
		{"direct", "/direct", 200, map[string][]string{
			"Cache-Control":  {"no-store"},
			"Content-Type":   {"text/html"},
			"X-Add":          {"two"},
			"Content-Length": nil,
		}},
		// The redirect's own Location wins over a configured one.
		{"redirect", "/redirect?x=1", 302, map[string][]string{
			"Cache-Control": {"max-age=60"},
			"X-Add":         {"one"},
			"Location":      {"http://example.com/elsewhere?x=1"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, _ := serve(t, snap, newRequest("GET", "http://example.com"+tt.target), "")
			if w.Code != tt.wantCode {
				t.Fatalf("got status %d, want %d", w.Code, tt.wantCode)
			}
			for name, want := range tt.want {
				if got := w.Header().Values(name); !slices.Equal(got, want) {
					t.Errorf("got %s %q, want %q", name, got, want)
				}
			}
		})
	}
}
