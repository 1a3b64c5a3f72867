package cache

import (
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"torii/internal/config"
)

// step is one request of a directive test and what it must get.
type step struct {
	method    string        // default GET
	fields    []string      // request header fields, "Name: value"
	advance   time.Duration // clock advance before the request
	wantCache string        // X-Cache
	wantHits  int64         // upstream requests after the step
	wantCode  int           // default 200
	wantBody  string        // checked when set
	minAge    int           // the Age header must be at least this
}

// body returns the upstream's standard body for request n: "v<n>".
func body(n int64) string { return "v" + strconv.FormatInt(n, 10) }

func TestDirectives(t *testing.T) {
	lastModified := time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)
	tests := []struct {
		name  string
		ttl   time.Duration
		up    func(w http.ResponseWriter, r *http.Request, n int64)
		steps []step
	}{
		{
			name: "max-age",
			up:   fixed("Cache-Control: max-age=60"),
			steps: []step{
				{wantCache: "MISS", wantHits: 1, wantBody: "v1"},
				{wantCache: "HIT", wantHits: 1, wantBody: "v1"},
				{advance: 61 * time.Second, wantCache: "MISS", wantHits: 2, wantBody: "v2"},
				{wantCache: "HIT", wantHits: 2, wantBody: "v2"},
			},
		},
		{
			name: "s-maxage over max-age",
			up:   fixed("Cache-Control: max-age=1, s-maxage=60"),
			steps: []step{
				{wantCache: "MISS", wantHits: 1},
				{advance: 10 * time.Second, wantCache: "HIT", wantHits: 1, wantBody: "v1"},
			},
		},
		{
			name: "s-maxage=0 over max-age",
			up:   fixed("Cache-Control: max-age=60, s-maxage=0"),
			steps: []step{
				{wantCache: "MISS", wantHits: 1},
				{wantCache: "MISS", wantHits: 2},
			},
		},
		{
			name: "no-store response",
			up:   fixed("Cache-Control: no-store, max-age=60"),
			steps: []step{
				{wantCache: "MISS", wantHits: 1},
				{wantCache: "MISS", wantHits: 2},
			},
		},
		{
			name: "no-store request",
			up:   fixed("Cache-Control: max-age=60"),
			steps: []step{
				{fields: []string{"Cache-Control: no-store"}, wantCache: "BYPASS", wantHits: 1},
				{wantCache: "MISS", wantHits: 2, wantBody: "v2"},
				// §5.2.1.5: a stored response may still answer it.
				{fields: []string{"Cache-Control: no-store"}, wantCache: "HIT", wantHits: 2, wantBody: "v2"},
			},
		},
		{
			name: "no-cache response revalidates every time",
			up:   etagged("Cache-Control: no-cache"),
			steps: []step{
				{wantCache: "MISS", wantHits: 1, wantBody: "v1"},
				{wantCache: "REVALIDATED", wantHits: 2, wantBody: "v1"},
				{wantCache: "REVALIDATED", wantHits: 3, wantBody: "v1"},
			},
		},
		{
			name: "no-cache request revalidates",
			up:   etagged("Cache-Control: max-age=60"),
			steps: []step{
				{wantCache: "MISS", wantHits: 1},
				{wantCache: "HIT", wantHits: 1},
				{fields: []string{"Cache-Control: no-cache"}, wantCache: "REVALIDATED", wantHits: 2, wantBody: "v1"},
				{fields: []string{"Pragma: no-cache"}, wantCache: "REVALIDATED", wantHits: 3, wantBody: "v1"},
			},
		},
		{
			name: "max-age=0 request revalidates",
			up:   etagged("Cache-Control: max-age=60"),
			steps: []step{
				{wantCache: "MISS", wantHits: 1},
				{advance: 2 * time.Second, fields: []string{"Cache-Control: max-age=0"}, wantCache: "REVALIDATED", wantHits: 2},
			},
		},
		{
			name: "private not stored",
			up:   fixed("Cache-Control: private, max-age=60"),
			steps: []step{
				{wantCache: "MISS", wantHits: 1},
				{wantCache: "MISS", wantHits: 2},
			},
		},
		{
			name: "must-revalidate: no stale even with stale-if-error",
			up: func(w http.ResponseWriter, r *http.Request, n int64) {
				if n > 1 {
					w.WriteHeader(http.StatusServiceUnavailable)
					return
				}
				w.Header().Set("Cache-Control", "max-age=1, must-revalidate, stale-if-error=600")
				fmt.Fprint(w, body(n))
			},
			steps: []step{
				{wantCache: "MISS", wantHits: 1},
				{advance: 5 * time.Second, wantCache: "MISS", wantHits: 2, wantCode: 503},
			},
		},
		{
			name: "stale-if-error without must-revalidate",
			up: func(w http.ResponseWriter, r *http.Request, n int64) {
				if n > 1 {
					w.WriteHeader(http.StatusServiceUnavailable)
					return
				}
				w.Header().Set("Cache-Control", "max-age=1, stale-if-error=600")
				fmt.Fprint(w, body(n))
			},
			steps: []step{
				{wantCache: "MISS", wantHits: 1},
				{advance: 5 * time.Second, wantCache: "STALE", wantHits: 2, wantBody: "v1"},
				{advance: 700 * time.Second, wantCache: "MISS", wantHits: 3, wantCode: 503},
			},
		},
		{
			name: "public with Authorization",
			up:   fixed("Cache-Control: public, max-age=60"),
			steps: []step{
				{fields: []string{"Authorization: Bearer a"}, wantCache: "MISS", wantHits: 1},
				{fields: []string{"Authorization: Bearer b"}, wantCache: "HIT", wantHits: 1},
				{wantCache: "HIT", wantHits: 1},
			},
		},
		{
			name: "s-maxage with Authorization",
			up:   fixed("Cache-Control: s-maxage=60"),
			steps: []step{
				{fields: []string{"Authorization: Bearer a"}, wantCache: "MISS", wantHits: 1},
				{fields: []string{"Authorization: Bearer a"}, wantCache: "HIT", wantHits: 1},
			},
		},
		{
			name: "Authorization not stored without public",
			up:   fixed("Cache-Control: max-age=60, must-revalidate"),
			steps: []step{
				{fields: []string{"Authorization: Bearer a"}, wantCache: "MISS", wantHits: 1},
				{fields: []string{"Authorization: Bearer a"}, wantCache: "MISS", wantHits: 2},
				{wantCache: "MISS", wantHits: 3},
				{fields: []string{"Authorization: Bearer a"}, wantCache: "HIT", wantHits: 3},
			},
		},
		{
			name: "Expires and Date",
			up: func(w http.ResponseWriter, r *http.Request, n int64) {
				now, _ := http.ParseTime(w.Header().Get("Date")) // the rig's clock
				w.Header().Set("Expires", now.Add(60*time.Second).UTC().Format(http.TimeFormat))
				fmt.Fprint(w, body(n))
			},
			steps: []step{
				{wantCache: "MISS", wantHits: 1},
				{advance: 30 * time.Second, wantCache: "HIT", wantHits: 1, minAge: 30},
				{advance: 31 * time.Second, wantCache: "MISS", wantHits: 2},
			},
		},
		{
			name: "invalid Expires is expired",
			up:   fixed("Expires: 0"),
			ttl:  time.Minute,
			steps: []step{
				{wantCache: "MISS", wantHits: 1},
				{wantCache: "MISS", wantHits: 2},
			},
		},
		{
			name: "Age from upstream",
			up:   fixed("Cache-Control: max-age=60", "Age: 50"),
			steps: []step{
				{wantCache: "MISS", wantHits: 1, minAge: 50},
				{wantCache: "HIT", wantHits: 1, minAge: 50},
				{advance: 11 * time.Second, wantCache: "MISS", wantHits: 2},
			},
		},
		{
			name: "Vary: two variants",
			up: func(w http.ResponseWriter, r *http.Request, n int64) {
				w.Header().Set("Cache-Control", "max-age=60")
				w.Header().Set("Vary", "Accept-Language")
				fmt.Fprint(w, r.Header.Get("Accept-Language"))
			},
			steps: []step{
				{fields: []string{"Accept-Language: en"}, wantCache: "MISS", wantHits: 1, wantBody: "en"},
				{fields: []string{"Accept-Language: fr"}, wantCache: "MISS", wantHits: 2, wantBody: "fr"},
				{fields: []string{"Accept-Language: en"}, wantCache: "HIT", wantHits: 2, wantBody: "en"},
				{fields: []string{"Accept-Language: fr"}, wantCache: "HIT", wantHits: 2, wantBody: "fr"},
				{wantCache: "MISS", wantHits: 3, wantBody: ""},
			},
		},
		{
			name: "Vary: * not stored",
			up:   fixed("Cache-Control: max-age=60", "Vary: *"),
			steps: []step{
				{wantCache: "MISS", wantHits: 1},
				{wantCache: "MISS", wantHits: 2},
			},
		},
		{
			name: "Set-Cookie not stored",
			up:   fixed("Cache-Control: public, max-age=60", "Set-Cookie: session=abc"),
			steps: []step{
				{wantCache: "MISS", wantHits: 1},
				{wantCache: "MISS", wantHits: 2},
			},
		},
		{
			name: "POST not stored, and invalidates",
			up:   fixed("Cache-Control: max-age=60"),
			steps: []step{
				{method: "POST", wantCache: "BYPASS", wantHits: 1},
				{method: "POST", wantCache: "BYPASS", wantHits: 2},
				{wantCache: "MISS", wantHits: 3},
				{wantCache: "HIT", wantHits: 3},
				{method: "POST", wantCache: "BYPASS", wantHits: 4},
				{wantCache: "MISS", wantHits: 5, wantBody: "v5"},
			},
		},
		{
			name: "HEAD from the GET entry",
			up:   fixed("Cache-Control: max-age=60"),
			steps: []step{
				{method: "HEAD", wantCache: "BYPASS", wantHits: 1, wantBody: ""},
				{wantCache: "MISS", wantHits: 2, wantBody: "v2"},
				{method: "HEAD", wantCache: "HIT", wantHits: 2, wantBody: ""},
			},
		},
		{
			name: "304 revalidation with ETag",
			up:   etagged("Cache-Control: max-age=10"),
			steps: []step{
				{wantCache: "MISS", wantHits: 1, wantBody: "v1"},
				{advance: 20 * time.Second, wantCache: "REVALIDATED", wantHits: 2, wantBody: "v1"},
				{advance: 5 * time.Second, wantCache: "HIT", wantHits: 2, wantBody: "v1"},
				{fields: []string{`If-None-Match: "v1"`}, wantCache: "HIT", wantHits: 2, wantCode: 304, wantBody: ""},
			},
		},
		{
			name: "304 revalidation with Last-Modified",
			up: func(w http.ResponseWriter, r *http.Request, n int64) {
				w.Header().Set("Cache-Control", "max-age=10")
				w.Header().Set("Last-Modified", lastModified)
				if r.Header.Get("If-Modified-Since") == lastModified {
					w.WriteHeader(http.StatusNotModified)
					return
				}
				fmt.Fprint(w, body(n))
			},
			steps: []step{
				{wantCache: "MISS", wantHits: 1, wantBody: "v1"},
				{advance: 20 * time.Second, wantCache: "REVALIDATED", wantHits: 2, wantBody: "v1"},
				{wantCache: "HIT", wantHits: 2, wantBody: "v1"},
			},
		},
		{
			name: "revalidation answered 200 replaces the entry",
			up: func(w http.ResponseWriter, r *http.Request, n int64) {
				w.Header().Set("Cache-Control", "max-age=10")
				w.Header().Set("Etag", `"`+body(n)+`"`)
				fmt.Fprint(w, body(n))
			},
			steps: []step{
				{wantCache: "MISS", wantHits: 1, wantBody: "v1"},
				{advance: 20 * time.Second, wantCache: "MISS", wantHits: 2, wantBody: "v2"},
				{wantCache: "HIT", wantHits: 2, wantBody: "v2"},
			},
		},
		{
			name: "default_ttl",
			ttl:  time.Minute,
			up:   fixed(),
			steps: []step{
				{wantCache: "MISS", wantHits: 1},
				{advance: 30 * time.Second, wantCache: "HIT", wantHits: 1},
				{advance: 31 * time.Second, wantCache: "MISS", wantHits: 2},
			},
		},
		{
			name: "no default_ttl, no freshness: not stored",
			up:   fixed(),
			steps: []step{
				{wantCache: "MISS", wantHits: 1},
				{wantCache: "MISS", wantHits: 2},
			},
		},
		{
			name: "404 stored, 500 not",
			up: func(w http.ResponseWriter, r *http.Request, n int64) {
				w.Header().Set("Cache-Control", "max-age=60")
				if r.URL.Path == "/missing" {
					w.WriteHeader(http.StatusNotFound)
				} else {
					w.WriteHeader(http.StatusInternalServerError)
				}
			},
			steps: []step{
				{wantCache: "MISS", wantHits: 1, wantCode: 500},
				{wantCache: "MISS", wantHits: 2, wantCode: 500},
			},
		},
		{
			name: "only-if-cached",
			up:   fixed("Cache-Control: max-age=60"),
			steps: []step{
				{fields: []string{"Cache-Control: only-if-cached"}, wantHits: 0, wantCode: 504},
				{wantCache: "MISS", wantHits: 1},
				{fields: []string{"Cache-Control: only-if-cached"}, wantCache: "HIT", wantHits: 1},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := newRig(t, rigOptions{route: config.RouteCache{DefaultTTL: config.Duration(tc.ttl)}}, tc.up)
			for i, s := range tc.steps {
				g.clock.advance(s.advance)
				method := s.method
				if method == "" {
					method = "GET"
				}
				res := g.do(t, method, "/p", s.fields...)
				want := s.wantCode
				if want == 0 {
					want = 200
				}
				if res.status != want {
					t.Errorf("step %d: status: got %d, want %d", i, res.status, want)
				}
				if got := res.header.Get("X-Cache"); got != s.wantCache {
					t.Errorf("step %d: X-Cache: got %q, want %q", i, got, s.wantCache)
				}
				if got := g.hits.Load(); got != s.wantHits {
					t.Errorf("step %d: upstream requests: got %d, want %d", i, got, s.wantHits)
				}
				if s.wantBody != "" && res.body != s.wantBody {
					t.Errorf("step %d: body: got %q, want %q", i, res.body, s.wantBody)
				}
				if s.method == "HEAD" && res.body != "" {
					t.Errorf("step %d: HEAD body: got %q, want none", i, res.body)
				}
				if s.wantCache != "" {
					age, err := strconv.Atoi(res.header.Get("Age"))
					if err != nil || age < s.minAge {
						t.Errorf("step %d: Age: got %q, want a number of at least %d", i, res.header.Get("Age"), s.minAge)
					}
				}
			}
		})
	}
}

// fixed is an upstream that sets the given fields and answers "v<n>".
func fixed(fields ...string) func(w http.ResponseWriter, r *http.Request, n int64) {
	return func(w http.ResponseWriter, r *http.Request, n int64) {
		for _, f := range fields {
			name, value, _ := cut(f)
			w.Header().Add(name, value)
		}
		fmt.Fprint(w, body(n))
	}
}

// etagged is fixed with a constant ETag "v1" and If-None-Match support.
func etagged(fields ...string) func(w http.ResponseWriter, r *http.Request, n int64) {
	return func(w http.ResponseWriter, r *http.Request, n int64) {
		for _, f := range fields {
			name, value, _ := cut(f)
			w.Header().Add(name, value)
		}
		w.Header().Set("Etag", `"v1"`)
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		fmt.Fprint(w, "v1")
	}
}

func cut(f string) (string, string, bool) {
	for i := 0; i < len(f); i++ {
		if f[i] == ':' {
			j := i + 1
			for j < len(f) && f[j] == ' ' {
				j++
			}
			return f[:i], f[j:], true
		}
	}
	return f, "", false
}
