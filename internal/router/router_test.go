package router

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// request is a compact description of a request for tests.
type request struct {
	method, host, path, query string
	header                    http.Header
}

func (q request) build() *http.Request {
	method := q.method
	if method == "" {
		method = "GET"
	}
	path := q.path
	if path == "" {
		path = "/"
	}
	// Store the path as the server does after CleanPath: decoded in Path,
	// escaped in RawPath.
	u := &url.URL{RawPath: path, RawQuery: q.query}
	var err error
	if u.Path, err = url.PathUnescape(path); err != nil {
		panic(err)
	}
	return &http.Request{Method: method, Host: q.host, URL: u, Header: q.header}
}

func TestMatch(t *testing.T) {
	tests := []struct {
		name  string
		rules []Rule
		req   request
		want  int
	}{
		// Empty tables and the empty rule.
		{"no rules", nil, request{host: "a.example.com"}, -1},
		{"empty rule matches anything", []Rule{{}}, request{host: "x.org", path: "/a/b", method: "DELETE"}, 0},

		// Exact hosts.
		{"exact host", []Rule{{Host: "api.example.com"}}, request{host: "api.example.com"}, 0},
		{"exact host miss", []Rule{{Host: "api.example.com"}}, request{host: "www.example.com"}, -1},
		{"host with port", []Rule{{Host: "api.example.com"}}, request{host: "api.example.com:8080"}, 0},
		{"upper-case host", []Rule{{Host: "api.example.com"}}, request{host: "API.Example.COM"}, 0},
		{"upper-case rule host", []Rule{{Host: "API.example.com"}}, request{host: "api.example.com"}, 0},
		{"trailing dot", []Rule{{Host: "api.example.com"}}, request{host: "api.example.com.:443"}, 0},
		{"IPv6 host with port", []Rule{{Host: "[::1]"}}, request{host: "[::1]:80"}, 0},
		{"IPv6 host non-canonical", []Rule{{Host: "[::1]"}}, request{host: "[0:0::1]"}, 0},
		{"IPv4 host", []Rule{{Host: "127.0.0.1"}}, request{host: "127.0.0.1:9000"}, 0},
		{"empty host matches any-host rule only", []Rule{{Host: "a.example.com"}, {}}, request{host: ""}, 1},
		{"invalid host matches any-host rule only", []Rule{{Host: "a.example.com"}, {PathPrefix: "/"}}, request{host: "a.example.com/x"}, 1},
		{"invalid host and no any-host rule", []Rule{{Host: "a.example.com"}}, request{host: "a b"}, -1},

		// Wildcard hosts.
		{"wildcard one label", []Rule{{Host: "*.example.com"}}, request{host: "a.example.com"}, 0},
		{"wildcard two labels", []Rule{{Host: "*.example.com"}}, request{host: "a.b.example.com"}, 0},
		{"wildcard not the apex", []Rule{{Host: "*.example.com"}}, request{host: "example.com"}, -1},
		{"wildcard on label boundary", []Rule{{Host: "*.example.com"}}, request{host: "badexample.com"}, -1},
		{"wildcard upper case and port", []Rule{{Host: "*.Example.com"}}, request{host: "A.EXAMPLE.COM:80"}, 0},
		{"longer wildcard wins", []Rule{{Host: "*.example.com"}, {Host: "*.a.example.com"}}, request{host: "x.a.example.com"}, 1},
		{"shorter wildcard when longer misses", []Rule{{Host: "*.example.com"}, {Host: "*.a.example.com"}}, request{host: "x.b.example.com"}, 0},
		{"covered wildcard for an exact host bucket", []Rule{{Host: "a.example.com", Path: "/only"}, {Host: "*.example.com"}}, request{host: "a.example.com", path: "/other"}, 1},

		// Paths.
		{"exact path", []Rule{{Path: "/a/b"}}, request{path: "/a/b"}, 0},
		{"exact path is not a prefix", []Rule{{Path: "/a"}}, request{path: "/a/b"}, -1},
		{"exact path trailing slash differs", []Rule{{Path: "/a"}}, request{path: "/a/"}, -1},
		{"prefix itself", []Rule{{PathPrefix: "/v1"}}, request{path: "/v1"}, 0},
		{"prefix with slash", []Rule{{PathPrefix: "/v1"}}, request{path: "/v1/"}, 0},
		{"prefix below", []Rule{{PathPrefix: "/v1"}}, request{path: "/v1/x/y"}, 0},
		{"prefix segment boundary", []Rule{{PathPrefix: "/v1"}}, request{path: "/v10"}, -1},
		{"slash prefix below", []Rule{{PathPrefix: "/v1/"}}, request{path: "/v1/x"}, 0},
		{"slash prefix itself", []Rule{{PathPrefix: "/v1/"}}, request{path: "/v1/"}, 0},
		{"slash prefix not without slash", []Rule{{PathPrefix: "/v1/"}}, request{path: "/v1"}, -1},
		{"root prefix", []Rule{{PathPrefix: "/"}}, request{path: "/anything/at/all"}, 0},
		{"root prefix root", []Rule{{PathPrefix: "/"}}, request{path: "/"}, 0},
		{"regex whole path", []Rule{{PathRegex: "/a/[0-9]+"}}, request{path: "/a/12"}, 0},
		{"regex anchored at end", []Rule{{PathRegex: "/a/[0-9]+"}}, request{path: "/a/12/x"}, -1},
		{"regex anchored at start", []Rule{{PathRegex: "/a/[0-9]+"}}, request{path: "/x/a/12"}, -1},
		{"regex alternation anchored", []Rule{{PathRegex: "/a|/b"}}, request{path: "/b/c"}, -1},
		{"regex sees escaped path", []Rule{{PathRegex: "/a%2Fb"}}, request{path: "/a%2Fb"}, 0},
		{"encoded rule path", []Rule{{Path: "/caf%c3%a9/%7eme"}}, request{path: "/caf%C3%A9/~me"}, 0},
		{"encoded slash is not a separator", []Rule{{PathPrefix: "/a"}}, request{path: "/a%2Fb"}, -1},
		{"encoded slash in a prefix", []Rule{{PathPrefix: "/a%2fb"}}, request{path: "/a%2Fb/c"}, 0},
		{"sub-delims in a path", []Rule{{Path: "/a!b"}}, request{path: "/a!b"}, 0},

		// Methods.
		{"method", []Rule{{Methods: []string{"GET", "HEAD"}}}, request{method: "HEAD"}, 0},
		{"method miss", []Rule{{Methods: []string{"GET"}}}, request{method: "POST"}, -1},
		{"method case-sensitive", []Rule{{Methods: []string{"GET"}}}, request{method: "get"}, -1},

		// Headers.
		{"header value", []Rule{{Headers: []ValueMatch{{Name: "X-Env", Value: "prod"}}}},
			request{header: http.Header{"X-Env": {"prod"}}}, 0},
		{"header value is case-sensitive", []Rule{{Headers: []ValueMatch{{Name: "X-Env", Value: "prod"}}}},
			request{header: http.Header{"X-Env": {"PROD"}}}, -1},
		{"header name case-insensitive", []Rule{{Headers: []ValueMatch{{Name: "x-env", Value: "prod"}}}},
			request{header: http.Header{"X-Env": {"prod"}}}, 0},
		{"header any of several values", []Rule{{Headers: []ValueMatch{{Name: "X-Env", Value: "prod"}}}},
			request{header: http.Header{"X-Env": {"dev", "prod"}}}, 0},
		{"header line with commas is one value", []Rule{{Headers: []ValueMatch{{Name: "X-Env", Value: "prod"}}}},
			request{header: http.Header{"X-Env": {"dev, prod"}}}, -1},
		{"header regex whole value", []Rule{{Headers: []ValueMatch{{Name: "X-Id", Regex: "[0-9]+"}}}},
			request{header: http.Header{"X-Id": {"12a"}}}, -1},
		{"header regex", []Rule{{Headers: []ValueMatch{{Name: "X-Id", Regex: "[0-9]+"}}}},
			request{header: http.Header{"X-Id": {"a", "12"}}}, 0},
		{"header present, empty value", []Rule{{Headers: []ValueMatch{{Name: "X-Debug", Present: true}}}},
			request{header: http.Header{"X-Debug": {""}}}, 0},
		{"header absent", []Rule{{Headers: []ValueMatch{{Name: "X-Debug", Present: true}}}},
			request{}, -1},
		{"all headers must match", []Rule{{Headers: []ValueMatch{{Name: "A", Value: "1"}, {Name: "B", Value: "2"}}}},
			request{header: http.Header{"A": {"1"}, "B": {"3"}}}, -1},

		// Query parameters.
		{"query value", []Rule{{Query: []ValueMatch{{Name: "v", Value: "2"}}}}, request{query: "a=1&v=2"}, 0},
		{"query miss", []Rule{{Query: []ValueMatch{{Name: "v", Value: "2"}}}}, request{query: "v=3"}, -1},
		{"query any of several values", []Rule{{Query: []ValueMatch{{Name: "v", Value: "2"}}}}, request{query: "v=1&v=2"}, 0},
		{"query escaped", []Rule{{Query: []ValueMatch{{Name: "q", Value: "a b/c"}}}}, request{query: "q=a+b%2Fc"}, 0},
		{"query name case-sensitive", []Rule{{Query: []ValueMatch{{Name: "v", Present: true}}}}, request{query: "V=1"}, -1},
		{"query present without value", []Rule{{Query: []ValueMatch{{Name: "debug", Present: true}}}}, request{query: "debug"}, 0},
		{"query regex", []Rule{{Query: []ValueMatch{{Name: "id", Regex: "[a-f0-9]{4}"}}}}, request{query: "id=beef"}, 0},
		{"query regex whole value", []Rule{{Query: []ValueMatch{{Name: "id", Regex: "[a-f0-9]{4}"}}}}, request{query: "id=beefy"}, -1},
		{"query pair with semicolon ignored", []Rule{{Query: []ValueMatch{{Name: "v", Value: "1"}}}}, request{query: "v=1;x=2"}, -1},
		{"query bad escape ignored", []Rule{{Query: []ValueMatch{{Name: "v", Present: true}}}}, request{query: "v=%zz"}, -1},
		{"query empty value", []Rule{{Query: []ValueMatch{{Name: "v"}}}}, request{query: "v="}, 0},

		// Priority: each tie-break step on its own.
		{"1 priority beats host", []Rule{{Host: "a.example.com"}, {Priority: 1}}, request{host: "a.example.com"}, 1},
		{"1 negative priority loses", []Rule{{Priority: -1, Path: "/x"}, {}}, request{path: "/x"}, 1},
		{"2 exact host beats wildcard", []Rule{{Host: "*.example.com"}, {Host: "a.example.com"}}, request{host: "a.example.com"}, 1},
		{"2 wildcard beats any", []Rule{{}, {Host: "*.example.com"}}, request{host: "a.example.com"}, 1},
		{"2 host beats path", []Rule{{Path: "/a"}, {Host: "*.example.com", PathRegex: ".*"}}, request{host: "a.example.com", path: "/a"}, 1},
		{"3 exact path beats prefix", []Rule{{PathPrefix: "/a"}, {Path: "/a"}}, request{path: "/a"}, 1},
		{"3 prefix beats regex", []Rule{{PathRegex: "/a"}, {PathPrefix: "/"}}, request{path: "/a"}, 1},
		{"3 regex beats none", []Rule{{}, {PathRegex: "/a"}}, request{path: "/a"}, 1},
		{"3 longer prefix wins", []Rule{{PathPrefix: "/a"}, {PathPrefix: "/a/b"}}, request{path: "/a/b/c"}, 1},
		{"3 trailing slash prefix is longer", []Rule{{PathPrefix: "/a"}, {PathPrefix: "/a/"}}, request{path: "/a/b"}, 1},
		{"3 longer regex wins", []Rule{{PathRegex: "/a.*"}, {PathRegex: "/a/[a-z]+"}}, request{path: "/a/b"}, 1},
		{"3 path beats methods", []Rule{{Methods: []string{"GET"}, PathPrefix: "/"}, {PathPrefix: "/a"}}, request{path: "/a"}, 1},
		{"4 methods beat none", []Rule{{Path: "/a"}, {Path: "/a", Methods: []string{"GET"}}}, request{path: "/a"}, 1},
		{"4 number of methods does not count", []Rule{{Methods: []string{"GET"}}, {Methods: []string{"GET", "POST"}}}, request{}, 0},
		{"4 methods beat headers", []Rule{{Headers: []ValueMatch{{Name: "A", Present: true}}}, {Methods: []string{"GET"}}},
			request{header: http.Header{"A": {"1"}}}, 1},
		{"5 more headers win", []Rule{{Headers: []ValueMatch{{Name: "A", Present: true}}}, {Headers: []ValueMatch{{Name: "A", Present: true}, {Name: "B", Present: true}}}},
			request{header: http.Header{"A": {"1"}, "B": {"2"}}}, 1},
		{"5 headers beat query", []Rule{{Query: []ValueMatch{{Name: "q", Present: true}}}, {Headers: []ValueMatch{{Name: "A", Present: true}}}},
			request{query: "q", header: http.Header{"A": {"1"}}}, 1},
		{"6 more query conditions win", []Rule{{Query: []ValueMatch{{Name: "a", Present: true}}}, {Query: []ValueMatch{{Name: "a", Present: true}, {Name: "b", Present: true}}}},
			request{query: "a&b"}, 1},
		{"7 earlier rule wins a tie", []Rule{{PathPrefix: "/a"}, {PathPrefix: "/a"}}, request{path: "/a"}, 0},
		{"winner must match", []Rule{{Path: "/a", Methods: []string{"POST"}}, {PathPrefix: "/a"}}, request{path: "/a"}, 1},
		{"priority beats exact host for a wildcard", []Rule{{Host: "a.example.com"}, {Host: "*.example.com", Priority: 5}}, request{host: "a.example.com"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := New(tt.rules)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			req := tt.req.build()
			if got := r.Match(req); got != tt.want {
				t.Errorf("Match(%+v) = %d, want %d", tt.req, got, tt.want)
			}
			// The reference implementation agrees on every case, so the
			// table also pins down what FuzzMatch compares against.
			if got := newNaive(t, tt.rules).Match(req); got != tt.want {
				t.Errorf("reference Match(%+v) = %d, want %d", tt.req, got, tt.want)
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name  string
		rules []Rule
		want  []string // substrings of the error, in order
	}{
		{"bad path regex", []Rule{{}, {}, {PathRegex: "("}}, []string{"rule 2: path_regex: error parsing regexp"}},
		{"two path kinds", []Rule{{Path: "/a", PathPrefix: "/a"}}, []string{"rule 0: at most one of path, path_prefix and path_regex"}},
		{"relative path", []Rule{{Path: "a"}}, []string{"rule 0: path:", `must start with "/"`}},
		{"dot segments in prefix", []Rule{{PathPrefix: "/v1/../admin"}}, []string{`rule 0: path_prefix: "/v1/../admin" has dot segments or repeated slashes; write "/admin"`}},
		{"host with port", []Rule{{Host: "a.example.com:80"}}, []string{`rule 0: host "a.example.com:80": a route's host has no port`}},
		{"bad host", []Rule{{Host: "a b"}}, []string{`rule 0: host "a b"`, "invalid character"}},
		{"bare star", []Rule{{Host: "*"}}, []string{`rule 0: host "*"`}},
		{"star in the middle", []Rule{{Host: "a.*.com"}}, []string{`rule 0: host "a.*.com"`}},
		{"wildcard over IP", []Rule{{Host: "*.[::1]"}}, []string{`rule 0: host "*.[::1]"`}},
		{"empty method", []Rule{{Methods: []string{"GET", ""}}}, []string{"rule 0: methods[1]: empty method"}},
		{"header without name", []Rule{{Headers: []ValueMatch{{Value: "x"}}}}, []string{"rule 0: headers[0]: name: required"}},
		{"header two kinds", []Rule{{Headers: []ValueMatch{{Name: "A", Value: "x", Present: true}}}}, []string{"rule 0: headers[0]: at most one of value, regex and present"}},
		{"query bad regex", []Rule{{Query: []ValueMatch{{Name: "q", Regex: "["}}}}, []string{"rule 0: query[0]: regex: error parsing regexp"}},
		{"every bad rule is reported", []Rule{{PathRegex: "("}, {}, {Host: "a b"}}, []string{"rule 0:", "rule 2:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.rules)
			if err == nil {
				t.Fatalf("New: got nil error, want one containing %q", tt.want)
			}
			msg := err.Error()
			for _, w := range tt.want {
				i := strings.Index(msg, w)
				if i < 0 {
					t.Fatalf("New: got error %q, want it to contain %q", msg, w)
				}
				msg = msg[i+len(w):]
			}
		})
	}
}

func TestMatchAllocs(t *testing.T) {
	rules, reqs := realisticMix(1000, 7)
	// Drop query conditions: those may allocate to unescape.
	for i := range rules {
		rules[i].Query = nil
	}
	r, err := New(rules)
	if err != nil {
		t.Fatal(err)
	}
	for _, req := range reqs {
		if strings.ToLower(req.Host) != req.Host {
			continue // lower-casing a host allocates
		}
		if got := testing.AllocsPerRun(10, func() { r.Match(req) }); got != 0 {
			t.Fatalf("Match(%s %s%s) allocates: got %v allocs, want 0", req.Method, req.Host, req.URL.Path, got)
		}
	}
}

// TestRealisticMixAgrees compares the Router with the reference on the
// benchmark's routing tables, which have far more rules than FuzzMatch's.
func TestRealisticMixAgrees(t *testing.T) {
	for _, tc := range []struct {
		n     int
		seeds uint64 // fewer for big tables: the reference is slow
	}{{10, 20}, {1000, 3}, {10000, 1}} {
		n := tc.n
		for seed := range tc.seeds {
			rules, reqs := realisticMix(n, seed)
			r, err := New(rules)
			if err != nil {
				t.Fatal(err)
			}
			ref := newNaive(t, rules)
			hits := 0
			for _, req := range reqs {
				got, want := r.Match(req), ref.Match(req)
				if got != want {
					t.Fatalf("routes=%d seed=%d: Match(%s %s%s?%s) = %d, want %d (reference)",
						n, seed, req.Method, req.Host, req.URL.Path, req.URL.RawQuery, got, want)
				}
				if got >= 0 {
					hits++
				}
			}
			if hits < len(reqs)/5 || hits == len(reqs) {
				t.Errorf("routes=%d seed=%d: %d of %d requests hit, want a mix of hits and misses", n, seed, hits, len(reqs))
			}
		}
	}
}

// Vocabularies for FuzzMatch. Each fuzz byte picks from one of them, so
// the rules and requests are small but collide often: shared hosts, nested
// wildcards, prefixes on and off segment boundaries, regexes that overlap
// prefixes, repeated header and query names.
var (
	fuzzRuleHosts = []string{"", "", "a.example.com", "b.example.com", "example.com",
		"*.example.com", "*.a.example.com", "*.com", "A.Example.COM", "[::1]", "127.0.0.1", "*.b.example.com"}
	fuzzReqHosts = []string{"", "a.example.com", "A.EXAMPLE.com:8080", "x.a.example.com", "b.example.com.",
		"example.com", "x.y.example.com", "other.org", "[::1]:80", "[0::1]", "127.0.0.1:9", "bad host",
		"x.b.example.com", "a.example.com.:1", ".example.com", "a..example.com"}
	fuzzPaths    = []string{"/", "/a", "/a/", "/a/b", "/ab", "/a/b/", "/a/b/c", "/b", "/a/1", "/a/12/x", "/a%2Fb"}
	fuzzRegex    = []string{"/a/.*", "/a/[0-9]+", ".*", "/a|/b", "/a/b/c", "/(a|ab)(/.*)?", "/a%2F.*"}
	fuzzReqPaths = []string{"/", "/a", "/a/", "/ab", "/a/b", "/a/b/", "/a/b/c", "/a/1", "/a/12/x",
		"/b", "/b/a", "/c", "/a%2Fb", "/a/b/c/d", "/abc"}
	fuzzMethods  = [][]string{nil, {"GET"}, {"POST"}, {"GET", "HEAD"}}
	fuzzReqMeths = []string{"GET", "POST", "HEAD", "PUT"}
	fuzzValues   = []ValueMatch{{Name: "X-A", Value: "1"}, {Name: "x-a", Regex: "[0-9]+"}, {Name: "X-A", Present: true},
		{Name: "X-B", Value: ""}, {Name: "X-B", Present: true}}
	fuzzQueryMs = []ValueMatch{{Name: "q", Value: "1"}, {Name: "q", Regex: "[0-9 ]+"}, {Name: "q", Present: true},
		{Name: "r", Value: ""}, {Name: "r", Present: true}}
	fuzzHeaders = []http.Header{nil, {"X-A": {"1"}}, {"X-A": {"2"}}, {"X-A": {"x", "1"}}, {"X-B": {""}},
		{"X-B": {"abc"}, "X-A": {"12"}}}
	fuzzQueries = []string{"", "q=1", "q=2&q=1", "r", "q=%31", "q=1;x=2", "r=abc&q=x", "q=1+2", "r=&q=%zz"}
	fuzzPrios   = []int{0, 0, 0, 0, 1, -1}
)

// fuzzBytes hands out choices from the fuzzer's input, then zeros.
type fuzzBytes []byte

func (b *fuzzBytes) pick(n int) int {
	if len(*b) == 0 {
		return 0
	}
	c := (*b)[0]
	*b = (*b)[1:]
	return int(c) % n
}

// fuzzRules decodes rules from the input: a count, then per rule seven
// choices: host, path kind (0 none, 1 exact, 2 prefix, 3 regex), path,
// methods, headers (a bit set over fuzzValues), query (likewise) and
// priority.
func fuzzRules(b *fuzzBytes) []Rule {
	rules := make([]Rule, b.pick(12))
	for i := range rules {
		r := &rules[i]
		r.Host = fuzzRuleHosts[b.pick(len(fuzzRuleHosts))]
		kind, path := b.pick(4), b.pick(len(fuzzPaths))
		switch kind {
		case 1:
			r.Path = fuzzPaths[path]
		case 2:
			r.PathPrefix = fuzzPaths[path]
		case 3:
			r.PathRegex = fuzzRegex[path%len(fuzzRegex)]
		}
		r.Methods = fuzzMethods[b.pick(len(fuzzMethods))]
		for set, j := b.pick(256), 0; j < len(fuzzValues); j++ {
			if set&(1<<j) != 0 {
				r.Headers = append(r.Headers, fuzzValues[j])
			}
		}
		for set, j := b.pick(256)&b.pick(256), 0; j < len(fuzzQueryMs); j++ {
			if set&(1<<j) != 0 {
				r.Query = append(r.Query, fuzzQueryMs[j])
			}
		}
		r.Priority = fuzzPrios[b.pick(len(fuzzPrios))]
	}
	return rules
}

// fuzzRequest decodes one request: host, path, method, headers and query.
func fuzzRequest(b *fuzzBytes) request {
	return request{
		host:   fuzzReqHosts[b.pick(len(fuzzReqHosts))],
		path:   fuzzReqPaths[b.pick(len(fuzzReqPaths))],
		method: fuzzReqMeths[b.pick(len(fuzzReqMeths))],
		header: fuzzHeaders[b.pick(len(fuzzHeaders))],
		query:  fuzzQueries[b.pick(len(fuzzQueries))],
	}
}

func FuzzMatch(f *testing.F) {
	// Each seed: rule count, then 7 bytes per rule (host, path kind, path,
	// methods, header set, query set, priority), then 5 bytes per request
	// (host, path, method, headers, query).
	f.Add([]byte{
		2,
		2, 2, 1, 0, 0, 0, 0, // a.example.com, prefix /a
		5, 2, 3, 0, 0, 0, 0, // *.example.com, prefix /a/b
		1, 4, 0, 0, 0, // A.EXAMPLE.com:8080 /a/b: the exact host wins over the longer wildcard prefix
	})
	f.Add([]byte{
		3,
		5, 2, 0, 0, 0, 0, 0, // *.example.com, prefix /
		6, 3, 1, 0, 0, 0, 0, // *.a.example.com, regex /a/[0-9]+
		0, 0, 0, 0, 0, 0, 4, // any host, priority 1
		3, 7, 0, 0, 0, // x.a.example.com /a/1: priority wins, then the longer wildcard
	})
	f.Add([]byte{
		3,
		0, 2, 1, 1, 3, 0, 0, // any host, prefix /a, GET, headers X-A=1 and x-a~[0-9]+
		0, 2, 1, 3, 0, 0, 0, // any host, prefix /a, GET or HEAD
		0, 2, 2, 0, 0, 7, 0, // any host, prefix /a/ (longer), query q=1, q~[0-9 ]+, q present
		1, 4, 0, 3, 2, // GET /a/b with X-A: x, 1 and ?q=2&q=1
		1, 2, 2, 1, 7, // HEAD /a/ with X-A: 2 and ?q=1+2
	})
	f.Add([]byte{
		2,
		0, 1, 4, 0, 0, 0, 0, // exact /ab
		0, 2, 1, 0, 0, 0, 0, // prefix /a: must not match /ab or /abc
		0, 3, 0, 0, 0, 0, 14, 4, 0, 0, 0, // /abc and /ab
	})
	f.Fuzz(func(t *testing.T, data []byte) {
		b := fuzzBytes(data)
		rules := fuzzRules(&b)
		r, err := New(rules)
		if err != nil {
			t.Fatalf("New(%+v): %v", rules, err)
		}
		ref := newNaive(t, rules)
		for range 8 {
			q := fuzzRequest(&b)
			req := q.build()
			if got, want := r.Match(req), ref.Match(req); got != want {
				var desc strings.Builder
				for i, rule := range rules {
					fmt.Fprintf(&desc, "\n  rule %d: %+v", i, rule)
				}
				t.Fatalf("Match(%+v) = %d, want %d (reference); rules:%s", q, got, want, desc.String())
			}
			if len(b) == 0 {
				break
			}
		}
	})
}

// TestDocsExample keeps the priority table of docs/routing.md honest: the
// rules are that page's example config, in order.
func TestDocsExample(t *testing.T) {
	const (
		itemsRead = iota
		itemByID
		canary
		tenants
		debug
		fallback
	)
	rules := []Rule{
		itemsRead: {Host: "api.example.com", PathPrefix: "/v1/items", Methods: []string{"GET", "HEAD"}},
		itemByID:  {Host: "api.example.com", PathRegex: "/v1/items/[0-9]+/history"},
		canary:    {Host: "api.example.com", PathPrefix: "/v1/items", Headers: []ValueMatch{{Name: "X-Canary", Value: "1"}}},
		tenants:   {Host: "*.tenants.example.com"},
		debug:     {PathPrefix: "/", Query: []ValueMatch{{Name: "debug", Present: true}}},
		fallback:  {},
	}
	canaryHeader := http.Header{"X-Canary": {"1"}}
	tests := []struct {
		name string
		req  request
		want int
	}{
		{"GET item", request{method: "GET", host: "api.example.com", path: "/v1/items/7"}, itemsRead},
		{"GET item with canary header", request{method: "GET", host: "api.example.com", path: "/v1/items/7", header: canaryHeader}, itemsRead},
		{"POST item with canary header", request{method: "POST", host: "api.example.com", path: "/v1/items/7", header: canaryHeader}, canary},
		{"GET history", request{method: "GET", host: "api.example.com", path: "/v1/items/7/history"}, itemsRead},
		{"POST history", request{method: "POST", host: "api.example.com", path: "/v1/items/7/history"}, itemByID},
		{"other path on the API host", request{method: "GET", host: "API.Example.COM:8443", path: "/other"}, fallback},
		{"tenant with debug", request{method: "GET", host: "a.tenants.example.com", path: "/x", query: "debug=1"}, tenants},
		{"debug elsewhere", request{method: "GET", host: "www.example.com", path: "/", query: "debug"}, debug},
	}
	r, err := New(rules)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		if got := r.Match(tt.req.build()); got != tt.want {
			t.Errorf("%s: Match = %d, want %d", tt.name, got, tt.want)
		}
	}
}

// TestIndexIsLinear checks that every route is indexed exactly once, so a
// router's size grows with its routes, not with hosts times the routes
// they share (any-host and wildcard routes are not copied per host).
func TestIndexIsLinear(t *testing.T) {
	var rules []Rule
	for i := range 2000 {
		rules = append(rules, Rule{Host: fmt.Sprintf("tenant%d.example.com", i), PathPrefix: "/"})
	}
	for i := range 300 {
		rules = append(rules, Rule{PathPrefix: fmt.Sprintf("/shared/%d", i), Priority: i % 3})
		rules = append(rules, Rule{Host: "*.example.com", PathRegex: fmt.Sprintf("/w/%d/.*", i)})
	}
	r, err := New(rules)
	if err != nil {
		t.Fatal(err)
	}
	count := func(b *bucket) int {
		n := len(b.regex) + len(b.none)
		for _, l := range b.exact {
			n += len(l)
		}
		for _, p := range b.prefix {
			n += len(p.plain) + len(p.slash) + len(p.regex)
		}
		return n
	}
	indexed := 0
	for _, t := range r.exact {
		for _, b := range t {
			indexed += count(b)
		}
	}
	for _, t := range r.wild {
		for _, b := range t {
			indexed += count(b)
		}
	}
	for _, b := range r.any {
		indexed += count(b)
	}
	if indexed != len(rules) {
		t.Errorf("got %d routes in the index, want %d (each rule once)", indexed, len(rules))
	}
	req := request{host: "tenant7.example.com", path: "/shared/5/x"}.build()
	if got, want := r.Match(req), 2000+2*5; got != want {
		t.Errorf("Match(%s%s) = %d, want %d (a shared route with priority 2)", req.Host, req.URL.Path, got, want)
	}
}
