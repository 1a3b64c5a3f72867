package forwardauth

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"torii/internal/config"
	"torii/internal/request"
)

// authService is a real auth service whose answer each test sets, and
// which records the last question it was asked.
type authService struct {
	*httptest.Server
	mu     sync.Mutex // guards the fields below
	answer http.HandlerFunc
	got    *http.Request
	body   string
}

func newAuthService(t *testing.T, answer http.HandlerFunc) *authService {
	a := &authService{answer: answer}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		a.mu.Lock()
		a.got, a.body = r, string(b)
		answer := a.answer
		a.mu.Unlock()
		answer(w, r)
	}))
	t.Cleanup(a.Close)
	return a
}

func (a *authService) last() (*http.Request, string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.got, a.body
}

// route is a route with forward auth in front of an upstream that records
// what reached it.
type route struct {
	handler  http.Handler
	reg      *prometheus.Registry
	seen     *http.Request
	seenBody string
}

func newRoute(t *testing.T, cfg *config.ForwardAuth) *route {
	rt := &route{reg: prometheus.NewRegistry()}
	mw, err := New("items", cfg, &http.Client{}, WithMetrics(NewMetrics(rt.reg)))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	rt.handler = mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rt.seen, rt.seenBody = r, string(b)
		io.WriteString(w, "upstream")
	}))
	return rt
}

func (rt *route) do(r *http.Request) (*httptest.ResponseRecorder, *request.Info) {
	rt.seen = nil
	info := &request.Info{ID: "req-7", ClientIP: netip.MustParseAddr("203.0.113.9"), Scheme: "https"}
	r = r.WithContext(request.NewContext(r.Context(), info))
	w := httptest.NewRecorder()
	rt.handler.ServeHTTP(w, r)
	return w, info
}

func (rt *route) count(t *testing.T, result string) float64 {
	t.Helper()
	mfs, err := rt.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "torii_forward_auth_checks_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if labels(m)["result"] == result && labels(m)["route"] == "items" {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

func TestAllowed(t *testing.T) {
	auth := newAuthService(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-User", "alice")
		w.Header().Add("X-Groups", "admins")
		w.Header().Add("X-Groups", "devs")
		w.Header().Set("X-Not-Copied", "1")
		w.WriteHeader(http.StatusOK)
	})
	rt := newRoute(t, &config.ForwardAuth{URL: auth.URL + "/check?v=1", ResponseHeaders: []string{"x-user", "X-Groups", "X-Absent"}})

	r := httptest.NewRequest("POST", "http://api.example.com/v1/items%2Fx?q=1&r=2", strings.NewReader("payload"))
	r.Header.Set("Authorization", "Bearer abc")
	r.Header.Set("Cookie", "session=s1")
	r.Header.Set("X-Secret", "not for the auth service")
	// Spoofing attempts: the headers the service vouches for, and the
	// identity headers torii sets.
	r.Header.Set("X-User", "root")
	r.Header.Set("X-Absent", "spoofed")
	r.Header.Set("X-Forwarded-For", "10.6.6.6")
	r.Header.Set("X-Forwarded-Host", "evil.example")
	w, _ := rt.do(r)

	if w.Code != 200 || w.Body.String() != "upstream" {
		t.Fatalf("got %d %q, want the upstream's 200", w.Code, w.Body)
	}
	got, body := auth.last()
	want := map[string]string{
		"X-Forwarded-Method": "POST",
		"X-Forwarded-Uri":    "/v1/items%2Fx?q=1&r=2",
		"X-Forwarded-Host":   "api.example.com",
		"X-Forwarded-Proto":  "https",
		"X-Forwarded-For":    "203.0.113.9",
		"X-Request-Id":       "req-7",
		"Authorization":      "Bearer abc",
		"Cookie":             "session=s1",
		"X-Secret":           "",
		"X-User":             "",
	}
	for name, v := range want {
		if g := strings.Join(got.Header.Values(name), "|"); g != v {
			t.Errorf("auth service got %s %q, want %q", name, g, v)
		}
	}
	if got.Method != "POST" || body != "" || got.URL.RequestURI() != "/check?v=1" {
		t.Errorf("auth service got %s %s with body %q, want POST /check?v=1 and no body", got.Method, got.URL.RequestURI(), body)
	}
	up := rt.seen.Header
	for name, v := range map[string]string{"X-User": "alice", "X-Groups": "admins|devs", "X-Absent": "", "X-Not-Copied": "", "X-Secret": "not for the auth service"} {
		if g := strings.Join(up.Values(name), "|"); g != v {
			t.Errorf("upstream got %s %q, want %q", name, g, v)
		}
	}
	if rt.seenBody != "payload" {
		t.Errorf("upstream got body %q, want the client's", rt.seenBody)
	}
	if n := rt.count(t, resultAllowed); n != 1 {
		t.Errorf("got %v allowed, want 1", n)
	}
}

func TestDenied(t *testing.T) {
	tests := []struct {
		name    string
		answer  http.HandlerFunc
		status  int
		headers map[string]string // "" means absent
		body    string
	}{
		{
			name: "401 with a challenge",
			answer: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("WWW-Authenticate", `Basic realm="corp"`)
				w.Header().Set("X-User", "should-not-reach-upstream")
				w.WriteHeader(401)
				io.WriteString(w, "who are you?")
			},
			status:  401,
			headers: map[string]string{"WWW-Authenticate": `Basic realm="corp"`},
			body:    "who are you?",
		},
		{
			name: "302 to the login page, not followed",
			answer: func(w http.ResponseWriter, r *http.Request) {
				http.SetCookie(w, &http.Cookie{Name: "state", Value: "xyz"})
				http.Redirect(w, r, "https://login.example.com/?rd="+url.QueryEscape(r.Header.Get("X-Forwarded-Uri")), http.StatusFound)
			},
			status:  302,
			headers: map[string]string{"Location": "https://login.example.com/?rd=%2Fv1%2Fitems", "Set-Cookie": "state=xyz"},
		},
		{
			name: "403, hop-by-hop headers dropped",
			answer: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Connection", "X-Hop")
				w.Header().Set("X-Hop", "1")
				w.Header().Set("Keep-Alive", "timeout=5")
				w.Header().Set("X-Reason", "suspended")
				w.WriteHeader(403)
				io.WriteString(w, "no")
			},
			status:  403,
			headers: map[string]string{"X-Reason": "suspended", "X-Hop": "", "Keep-Alive": "", "Connection": ""},
			body:    "no",
		},
		{
			name: "500 from the service is relayed",
			answer: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(500)
			},
			status: 500,
		},
		{
			name: "huge body cut at 64 KiB",
			answer: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(403)
				io.WriteString(w, strings.Repeat("x", 1<<20))
			},
			status:  403,
			headers: map[string]string{"Content-Length": "65536"},
			body:    strings.Repeat("x", 64<<10),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			auth := newAuthService(t, tt.answer)
			rt := newRoute(t, &config.ForwardAuth{URL: auth.URL, ResponseHeaders: []string{"X-User"}})
			r := httptest.NewRequest("GET", "http://api.example.com/v1/items", nil)
			r.Header.Set("X-User", "root")
			w, info := rt.do(r)
			if w.Code != tt.status {
				t.Fatalf("got status %d, want %d", w.Code, tt.status)
			}
			if rt.seen != nil {
				t.Fatalf("the request reached the upstream, want it stopped")
			}
			for name, v := range tt.headers {
				if g := w.Header().Get(name); g != v {
					t.Errorf("got %s %q, want %q", name, g, v)
				}
			}
			if tt.body != "" && w.Body.String() != tt.body {
				t.Errorf("got body of %d bytes, want %d", w.Body.Len(), len(tt.body))
			}
			if r.Header.Get("X-User") != "" {
				t.Errorf("the client's X-User survived a refusal")
			}
			if info.Status != tt.status || info.Err == nil {
				t.Errorf("got info status %d, err %v; want %d and an error", info.Status, info.Err, tt.status)
			}
			if n := rt.count(t, resultDenied); n != 1 {
				t.Errorf("got %v denied, want 1", n)
			}
		})
	}
}

func TestUnavailable(t *testing.T) {
	closed := newAuthService(t, func(w http.ResponseWriter, r *http.Request) {})
	closed.Close()
	release := make(chan struct{})
	slow := newAuthService(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) })

	tests := []struct {
		name    string
		url     string
		timeout time.Duration
	}{
		{"connection refused", closed.URL, time.Second},
		{"slow service", slow.URL, 100 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := newRoute(t, &config.ForwardAuth{URL: tt.url, Timeout: config.Duration(tt.timeout), ResponseHeaders: []string{"X-User"}})
			r := httptest.NewRequest("GET", "http://api.example.com/", nil)
			r.Header.Set("X-User", "root")
			start := time.Now()
			w, info := rt.do(r)
			if w.Code != http.StatusServiceUnavailable {
				t.Fatalf("got %d, want 503", w.Code)
			}
			if d := time.Since(start); d > tt.timeout+time.Second {
				t.Errorf("took %v, want about the %v timeout", d, tt.timeout)
			}
			if !strings.Contains(w.Body.String(), `"id":"req-7"`) || rt.seen != nil {
				t.Errorf("got body %s (upstream reached: %v), want the JSON error and no upstream", w.Body, rt.seen != nil)
			}
			if info.Err == nil {
				t.Errorf("got no info.Err, want the cause for the log")
			}
			if n := rt.count(t, resultError); n != 1 {
				t.Errorf("got %v errors, want 1", n)
			}
		})
	}
}

func TestClientGone(t *testing.T) {
	auth := newAuthService(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	rt := newRoute(t, &config.ForwardAuth{URL: auth.URL, Timeout: config.Duration(5 * time.Second)})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	r := httptest.NewRequest("GET", "http://api.example.com/", nil).WithContext(ctx)
	var info *request.Info
	aborted := func() (p any) {
		defer func() { p = recover() }()
		_, info = rt.do(r)
		return nil
	}()
	// Nobody is listening: the response is aborted (net/http closes the
	// connection) rather than completed with an implicit 200.
	if aborted != http.ErrAbortHandler {
		t.Errorf("got panic %v, want http.ErrAbortHandler", aborted)
	}
	_ = info
}

func TestNoCookieJarNoRedirects(t *testing.T) {
	jar, _ := cookiejar.New(nil)
	calls := 0
	auth := newAuthService(t, func(w http.ResponseWriter, r *http.Request) {
		calls++
		if _, err := r.Cookie("leak"); err == nil {
			w.WriteHeader(500)
			return
		}
		http.SetCookie(w, &http.Cookie{Name: "leak", Value: "user-a"})
		w.WriteHeader(204)
	})
	mw, err := New("items", &config.ForwardAuth{URL: auth.URL}, &http.Client{Jar: jar})
	if err != nil {
		t.Fatal(err)
	}
	h := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) }))
	for i := range 2 {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
		if w.Code != 200 {
			t.Fatalf("call %d: got %d, want 200 (a cookie from an earlier check leaked)", i, w.Code)
		}
	}
}

func TestDefaultRequestHeaders(t *testing.T) {
	auth := newAuthService(t, func(w http.ResponseWriter, r *http.Request) {})
	rt := newRoute(t, &config.ForwardAuth{URL: auth.URL})
	r := httptest.NewRequest("GET", "http://api.example.com/", nil)
	r.Header.Set("Authorization", "Bearer t")
	r.Header.Set("Cookie", "a=b")
	r.Header.Set("X-Other", "no")
	rt.do(r)
	got, _ := auth.last()
	if got.Header.Get("Authorization") != "Bearer t" || got.Header.Get("Cookie") != "a=b" || got.Header.Get("X-Other") != "" {
		t.Errorf("auth service got %v, want Authorization and Cookie only", got.Header)
	}
}

func TestNewRefuses(t *testing.T) {
	for _, cfg := range []*config.ForwardAuth{
		nil,
		{URL: ""},
		{URL: "auth.internal/check"},
		{URL: "ftp://auth.internal/check"},
		{URL: "http://auth.internal/", ResponseHeaders: []string{"Transfer-Encoding"}},
	} {
		if _, err := New("r", cfg, nil); err == nil {
			t.Errorf("New(%+v): got no error, want one", cfg)
		}
	}
}
