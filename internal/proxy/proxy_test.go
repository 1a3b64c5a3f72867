package proxy

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"torii/internal/config"
	"torii/internal/request"
	"torii/internal/upstream"
)

func TestRetries(t *testing.T) {
	tests := []struct {
		name      string
		endpoints []string // behaviours, in the pool's order; "refused" is a closed port
		method    string
		body      string
		chunked   bool    // send body without a Content-Length
		opts      Options // Attempts defaults to 1, RetryOn to DefaultRetryOn
		noRetryOn bool    // RetryOn really is empty
		budget    bool    // exhaust the retry budget first
		status    int
		err       error  // info.Err must match it, when set
		respBody  string // checked when set
		tries     int
		hits      []int // requests each endpoint received
	}{
		{
			name: "connect failure retried for POST", endpoints: []string{"refused", "ok"},
			method: "POST", body: "order", status: 200, respBody: "ok:POST:order", tries: 2, hits: []int{0, 1},
		},
		{
			name: "POST not retried once sent", endpoints: []string{"reset", "ok"},
			method: "POST", body: "order", status: 502, tries: 1, hits: []int{1, 0},
		},
		{
			name: "GET retried on reset to another endpoint", endpoints: []string{"reset", "ok"},
			method: "GET", status: 200, respBody: "ok:GET:", tries: 2, hits: []int{1, 1},
		},
		{
			name: "PUT body replayed after reset", endpoints: []string{"reset", "ok"},
			method: "PUT", body: "item-42", status: 200, respBody: "ok:PUT:item-42", tries: 2, hits: []int{1, 1},
		},
		{
			name: "chunked PUT body replayed after reset", endpoints: []string{"reset", "ok"},
			method: "PUT", body: "item-43", chunked: true, status: 200, respBody: "ok:PUT:item-43", tries: 2, hits: []int{1, 1},
		},
		{
			name: "reset not retried when only connect_failure is on", endpoints: []string{"reset", "ok"},
			method: "GET", opts: Options{Attempts: 1, RetryOn: RetryConnectFailure}, status: 502, tries: 1, hits: []int{1, 0},
		},
		{
			name: "no retry without attempts", endpoints: []string{"refused", "ok"},
			method: "GET", opts: Options{Attempts: 0, RetryOn: DefaultRetryOn}, status: 502, tries: 1, hits: []int{0, 0},
		},
		{
			name: "never the same endpoint twice", endpoints: []string{"reset"},
			method: "GET", opts: Options{Attempts: 3, RetryOn: DefaultRetryOn}, status: 502, tries: 1, hits: []int{1},
		},
		{
			name: "two retries over three endpoints", endpoints: []string{"reset", "refused", "ok"},
			method: "GET", opts: Options{Attempts: 2, RetryOn: DefaultRetryOn}, status: 200, tries: 3, hits: []int{1, 0, 1},
		},
		{
			name: "retry status", endpoints: []string{"503", "ok"},
			method: "GET", opts: Options{Attempts: 1, RetryStatuses: []int{503}}, noRetryOn: true,
			status: 200, respBody: "ok:GET:", tries: 2, hits: []int{1, 1},
		},
		{
			name: "retry status not for POST", endpoints: []string{"503", "ok"},
			method: "POST", body: "x", opts: Options{Attempts: 1, RetryStatuses: []int{503}},
			status: 503, respBody: "busy\n", tries: 1, hits: []int{1, 0},
		},
		{
			name: "retry status passed through when no endpoint is left", endpoints: []string{"503"},
			method: "GET", opts: Options{Attempts: 1, RetryStatuses: []int{503}},
			status: 503, respBody: "busy\n", tries: 1, hits: []int{1},
		},
		{
			name: "retry budget exhausted", endpoints: []string{"reset", "ok"},
			method: "GET", budget: true, status: 502, tries: 1, hits: []int{1, 0},
		},
		{
			name: "try timeout retried", endpoints: []string{"slow", "ok"},
			method: "GET", opts: Options{Attempts: 1, RetryOn: RetryTimeout, TryTimeout: 300 * time.Millisecond},
			status: 200, respBody: "ok:GET:", tries: 2, hits: []int{1, 1},
		},
		{
			name: "try timeout without timeout retries", endpoints: []string{"slow", "ok"},
			method: "GET", opts: Options{Attempts: 1, RetryOn: DefaultRetryOn, TryTimeout: 200 * time.Millisecond},
			status: 504, err: ErrTryTimeout, tries: 1, hits: []int{1, 0},
		},
		{
			name: "route timeout ends all tries", endpoints: []string{"slow", "slow"},
			method: "GET", opts: Options{Attempts: 1, RetryOn: RetryTimeout | DefaultRetryOn, Timeout: 200 * time.Millisecond},
			status: 504, err: ErrTimeout, tries: 1, hits: []int{1, 0},
		},
		{
			// Try 1 times out at 400ms; the route timeout ends try 2 at 700ms,
			// before its own try timeout, and leaves no time for try 3.
			name: "route timeout spans retries", endpoints: []string{"slow", "slow", "ok"},
			method: "GET", opts: Options{Attempts: 2, RetryOn: RetryTimeout, Timeout: 700 * time.Millisecond, TryTimeout: 400 * time.Millisecond},
			status: 504, err: ErrTimeout, tries: 2, hits: []int{1, 1, 0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var origins []*origin
			var addrs []string
			for _, b := range tt.endpoints {
				if b == "refused" {
					origins = append(origins, nil)
					addrs = append(addrs, closedAddr(t))
					continue
				}
				o := newOrigin(t, behaviour(t, b))
				origins = append(origins, o)
				addrs = append(addrs, o.addr())
			}
			pool := newPool(t, "app", nil, addrs...)
			opts := tt.opts
			if opts.Attempts == 0 && opts.RetryOn == 0 && !tt.noRetryOn && opts.RetryStatuses == nil {
				opts.Attempts, opts.RetryOn = 1, DefaultRetryOn
			}
			h := newHandler(t, pool, opts)
			if tt.budget {
				for n := 0; pool.AllowRetry(); n++ {
					defer pool.RetryDone()
					if n > 100 {
						t.Fatal("retry budget never ran out")
					}
				}
			}

			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			start := time.Now()
			r := httptest.NewRequest(tt.method, "/items", body)
			if tt.chunked {
				r.Body, r.ContentLength = io.NopCloser(io.MultiReader(body)), -1
			}
			rec, info := serve(h, r)
			if rec.Code != tt.status {
				t.Errorf("status: got %d, want %d (err %v)", rec.Code, tt.status, info.Err)
			}
			if info.Status != tt.status {
				t.Errorf("info.Status: got %d, want %d", info.Status, tt.status)
			}
			if tt.err != nil && !errors.Is(info.Err, tt.err) {
				t.Errorf("info.Err: got %v, want %v", info.Err, tt.err)
			}
			if tt.respBody != "" && rec.Body.String() != tt.respBody {
				t.Errorf("body: got %q, want %q", rec.Body, tt.respBody)
			}
			if info.Tries != tt.tries {
				t.Errorf("tries: got %d, want %d", info.Tries, tt.tries)
			}
			for i, o := range origins {
				if o == nil || tt.endpoints[i] == "slow" {
					// A slow endpoint's try may time out before its handler
					// runs on a loaded machine: its count proves nothing.
					continue
				}
				if got := o.hits.Load(); got != int64(tt.hits[i]) {
					t.Errorf("endpoint %d (%s): got %d requests, want %d", i, tt.endpoints[i], got, tt.hits[i])
				}
			}
			if tt.status >= 500 && tt.status != 503 || tt.status == 503 && tt.respBody == "" {
				if info.Err == nil {
					t.Errorf("info.Err: got nil, want the failure")
				}
			}
			if tt.status == 200 && info.Endpoint != addrs[len(addrs)-1] {
				t.Errorf("info.Endpoint: got %s, want %s", info.Endpoint, addrs[len(addrs)-1])
			}
			if info.Upstream != "app" {
				t.Errorf("info.Upstream: got %q, want %q", info.Upstream, "app")
			}
			if elapsed := time.Since(start); elapsed > 3*time.Second {
				t.Errorf("took %v, want well under 3s", elapsed)
			}
		})
	}
}

// TestRetryBudgetRestored checks that retries resume once the budget has
// room again, so exhausting it is not sticky.
func TestRetryBudgetRestored(t *testing.T) {
	bad, good := newOrigin(t, behaviour(t, "reset")), newOrigin(t, behaviour(t, "ok"))
	pool := newPool(t, "app", nil, bad.addr(), good.addr())
	h := newHandler(t, pool, Options{Attempts: 1, RetryOn: DefaultRetryOn})
	n := 0
	for pool.AllowRetry() {
		n++
	}
	rec, _ := serve(h, httptest.NewRequest("GET", "/", nil))
	if rec.Code != http.StatusBadGateway {
		t.Fatalf("with the budget spent: got %d, want 502", rec.Code)
	}
	for range n {
		pool.RetryDone()
	}
	// Smooth round robin now starts on the good endpoint; one more request
	// brings it back to the bad one first.
	serve(h, httptest.NewRequest("GET", "/", nil))
	rec, info := serve(h, httptest.NewRequest("GET", "/", nil))
	if rec.Code != http.StatusOK || info.Tries != 2 {
		t.Errorf("with budget back: got %d after %d tries, want 200 after 2", rec.Code, info.Tries)
	}
}

func TestCapacity(t *testing.T) {
	o := newOrigin(t, behaviour(t, "ok"))
	pool := newPool(t, "app", func(c *config.Upstream) { c.MaxRequests = 1 }, o.addr())
	h := newHandler(t, pool, Options{})
	if !pool.Acquire() {
		t.Fatal("first slot not free")
	}
	rec, info := serve(h, httptest.NewRequest("GET", "/", nil))
	pool.Release()
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("status: got %d, want 503", rec.Code)
	}
	if !errors.Is(info.Err, ErrAtCapacity) {
		t.Errorf("info.Err: got %v, want ErrAtCapacity", info.Err)
	}
	if got := decodeError(t, rec.Body.Bytes()); got.Error != "upstream at capacity" {
		t.Errorf("error text: got %q, want %q", got.Error, "upstream at capacity")
	}
	if o.hits.Load() != 0 {
		t.Errorf("upstream got %d requests, want 0", o.hits.Load())
	}
	rec, _ = serve(h, httptest.NewRequest("GET", "/", nil))
	if rec.Code != http.StatusOK {
		t.Errorf("after release: got %d, want 200", rec.Code)
	}
}

func TestClientCancel(t *testing.T) {
	arrived, gone := make(chan struct{}), make(chan struct{})
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		select {
		case <-r.Context().Done():
			close(gone)
		case <-time.After(5 * time.Second):
		}
	})
	pool := newPool(t, "app", nil, o.addr())
	srv, infos := front(t, newHandler(t, pool, Options{Timeout: 5 * time.Second}))

	ctx, cancel := context.WithCancel(testContext(t))
	go func() {
		<-arrived
		cancel()
	}()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/slow", nil)
	if _, err := srv.Client().Do(req); err == nil {
		t.Fatal("request succeeded, want it canceled")
	}
	info := waitInfo(t, infos)
	if info.Status != StatusClientClosedRequest {
		t.Errorf("info.Status: got %d, want 499", info.Status)
	}
	if !errors.Is(info.Err, context.Canceled) {
		t.Errorf("info.Err: got %v, want context.Canceled", info.Err)
	}
	select {
	case <-gone:
	case <-time.After(5 * time.Second):
		t.Error("upstream request not canceled")
	}
}

func TestServerSentEvents(t *testing.T) {
	next := make(chan struct{})
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-next:
		case <-r.Context().Done():
			return
		}
		fmt.Fprint(w, "data: two\n\n")
	})
	pool := newPool(t, "app", nil, o.addr())
	// A short route timeout proves a stream outlives it once the head is in.
	srv, infos := front(t, newHandler(t, pool, Options{Timeout: 200 * time.Millisecond}))

	req, _ := http.NewRequestWithContext(testContext(t), "GET", srv.URL+"/events", nil)
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	br := bufio.NewReader(res.Body)
	if ev := readEvent(t, br); ev != "data: one" {
		t.Fatalf("first event: got %q, want %q", ev, "data: one")
	}
	time.Sleep(300 * time.Millisecond) // past the route timeout
	close(next)
	if ev := readEvent(t, br); ev != "data: two" {
		t.Fatalf("second event: got %q, want %q", ev, "data: two")
	}
	if info := waitInfo(t, infos); info.Err != nil || info.Status != 200 {
		t.Errorf("info: got status %d err %v, want 200 and no error", info.Status, info.Err)
	}
}

// readEvent reads one SSE event (its lines up to a blank line).
func readEvent(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	var lines []string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("read event: %v", err)
		}
		line = strings.TrimRight(line, "\n")
		if line == "" {
			return strings.Join(lines, "\n")
		}
		lines = append(lines, line)
	}
}

func TestTrailers(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		w.Header().Set("X-Saw-Te", r.Header.Get("Te"))
		w.Write([]byte("payload"))
		w.Header().Set("X-Checksum", "abc123")
		w.Header().Set(http.TrailerPrefix+"X-Late", "late")
	})
	pool := newPool(t, "app", nil, o.addr())
	srv, _ := front(t, newHandler(t, pool, Options{}))

	req, _ := http.NewRequestWithContext(testContext(t), "GET", srv.URL+"/", nil)
	req.Header.Set("Te", "trailers")
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil || string(b) != "payload" {
		t.Fatalf("body: got %q, %v; want %q", b, err, "payload")
	}
	tests := []struct{ name, got, want string }{
		{"TE trailers forwarded", res.Header.Get("X-Saw-Te"), "trailers"},
		{"declared trailer", res.Trailer.Get("X-Checksum"), "abc123"},
		{"undeclared trailer", res.Trailer.Get("X-Late"), "late"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, tt.got, tt.want)
		}
	}
}

// TestUpstreamDiesMidBody checks that a body cut by the upstream is cut
// for the client too, not ended as if complete.
func TestUpstreamDiesMidBody(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		w.Write([]byte("partial"))
		w.(http.Flusher).Flush()
		hangUp(t, w)
	})
	pool := newPool(t, "app", nil, o.addr())
	srv, infos := front(t, newHandler(t, pool, Options{}))
	req, _ := http.NewRequestWithContext(testContext(t), "GET", srv.URL+"/", nil)
	// The head may still sit in torii's write buffer when the connection
	// is cut, so the error shows either on the head or on the body.
	res, err := srv.Client().Do(req)
	if err == nil {
		_, err = io.ReadAll(res.Body)
		res.Body.Close()
	}
	if err == nil {
		t.Error("client read a complete response, want an error")
	}
	info := waitInfo(t, infos)
	if info.Err == nil || info.Status != 200 {
		t.Errorf("info: got status %d err %v, want 200 with an error", info.Status, info.Err)
	}
}

type errorJSON struct {
	Error  string `json:"error"`
	Status int    `json:"status"`
	ID     string `json:"id"`
}

func decodeError(t *testing.T, b []byte) errorJSON {
	t.Helper()
	var e errorJSON
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("decode error body %q: %v", b, err)
	}
	return e
}

func TestErrorBody(t *testing.T) {
	pool := newPool(t, "app", nil, closedAddr(t))
	h := newHandler(t, pool, Options{})
	rec, info := serve(h, httptest.NewRequest("GET", "/", nil))

	got := decodeError(t, rec.Body.Bytes())
	want := errorJSON{Error: "bad gateway", Status: 502, ID: testID}
	if got != want {
		t.Errorf("body: got %+v, want %+v", got, want)
	}
	for k, v := range map[string]string{"Content-Type": "application/json", "Cache-Control": "no-store"} {
		if g := rec.Header().Get(k); g != v {
			t.Errorf("%s: got %q, want %q", k, g, v)
		}
	}
	if rec.Code != 502 {
		t.Errorf("status: got %d, want 502", rec.Code)
	}
	// The detail is for the log only.
	if info.Err == nil || !strings.Contains(info.Err.Error(), pool.Name()) {
		t.Errorf("info.Err: got %v, want the detail naming the upstream", info.Err)
	}
	if strings.Contains(rec.Body.String(), "127.0.0.1") {
		t.Errorf("body leaks the endpoint: %s", rec.Body)
	}
}

func TestWriteErrorClientGone(t *testing.T) {
	rec := httptest.NewRecorder()
	info := &request.Info{ID: "t"}
	r := httptest.NewRequest("GET", "/", nil)
	r = r.WithContext(request.NewContext(r.Context(), info))
	p := func() (p any) {
		defer func() { p = recover() }()
		WriteError(rec, r, StatusClientClosedRequest, "client closed request")
		return nil
	}()
	// The response is aborted, so net/http closes the connection instead
	// of completing it with an implicit 200.
	if p != http.ErrAbortHandler {
		t.Errorf("got panic %v, want http.ErrAbortHandler", p)
	}
	if rec.Body.Len() != 0 || rec.Header().Get("Content-Type") != "" || rec.Code != 200 || rec.Flushed {
		t.Errorf("wrote %q to a gone client, want nothing", rec.Body)
	}
	if info.Status != StatusClientClosedRequest {
		t.Errorf("recorded status: got %d, want 499", info.Status)
	}
}

func TestRequestBodies(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name   string
		method string
		known  bool // Content-Length known
		opts   Options
	}{
		{"streamed with retries on, chunked", "PUT", false, Options{Attempts: 2, RetryOn: DefaultRetryOn | RetryTimeout}},
		{"streamed with retries on, content-length", "PUT", true, Options{Attempts: 2, RetryOn: DefaultRetryOn}},
		{"streamed POST", "POST", false, Options{Attempts: 1, RetryOn: DefaultRetryOn}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The upstream signals once it holds 100 KiB. The client sends
			// 128 KiB and then waits for that signal: if torii buffered more
			// than 64 KiB before sending, this would deadlock.
			got100k := make(chan struct{})
			o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				sum := sha256.New()
				n, err := io.CopyN(sum, r.Body, 100<<10)
				if err != nil {
					http.Error(w, err.Error(), 500)
					return
				}
				close(got100k)
				m, err := io.Copy(sum, r.Body)
				if err != nil {
					http.Error(w, err.Error(), 500)
					return
				}
				fmt.Fprintf(w, "%d %x", n+m, sum.Sum(nil))
			})
			pool := newPool(t, "app", nil, o.addr())
			h := newHandler(t, pool, tt.opts)

			payload := make([]byte, mib)
			for i := range payload {
				payload[i] = byte(i * 7)
			}
			pr, pw := io.Pipe()
			go func() {
				pw.Write(payload[:128<<10])
				select {
				case <-got100k:
					pw.Write(payload[128<<10:])
					pw.Close()
				case <-time.After(5 * time.Second):
					pw.CloseWithError(errors.New("upstream never got 100 KiB: body buffered"))
				}
			}()
			r := httptest.NewRequest(tt.method, "/upload", pr)
			r.ContentLength = -1
			if tt.known {
				r.ContentLength = mib
			}
			rec, info := serve(h, r)
			sum := sha256.Sum256(payload)
			want := fmt.Sprintf("%d %s", mib, hex.EncodeToString(sum[:]))
			if rec.Code != 200 || rec.Body.String() != want {
				t.Errorf("got %d %q (err %v), want 200 %q", rec.Code, rec.Body, info.Err, want)
			}
		})
	}
}

func TestBadRequestBodies(t *testing.T) {
	tests := []struct {
		name   string
		method string
		opts   Options
		status int
	}{
		{"too large while buffering for replay", "PUT", Options{Attempts: 1, RetryOn: DefaultRetryOn}, 413},
		{"too large while streaming", "POST", Options{}, 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newOrigin(t, behaviour(t, "ok"))
			pool := newPool(t, "app", nil, o.addr())
			h := newHandler(t, pool, tt.opts)
			rec := httptest.NewRecorder()
			r := httptest.NewRequest(tt.method, "/", strings.NewReader(strings.Repeat("x", 1000)))
			r.Body = http.MaxBytesReader(rec, r.Body, 100)
			r.ContentLength = -1
			info := testInfo(r, false)
			h.ServeHTTP(rec, r.WithContext(requestContext(r, info)))
			if info.Status != tt.status {
				t.Errorf("status: got %d, want %d (err %v)", info.Status, tt.status, info.Err)
			}
		})
	}
}

func TestWeightedBackends(t *testing.T) {
	a, b := newOrigin(t, behaviour(t, "ok")), newOrigin(t, behaviour(t, "ok"))
	pa, pb := newPool(t, "a", nil, a.addr()), newPool(t, "b", nil, b.addr())
	tests := []struct {
		name       string
		wa, wb     int
		minA, minB int // out of 400 picks
	}{
		{"zero weight gets nothing", 5, 0, 400, 0},
		{"other zero weight", 0, 1, 0, 400},
		{"three to one", 3, 1, 240, 60},
		{"even", 1, 1, 150, 150},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := New(Options{Backends: []Backend{{Pool: pa, Weight: tt.wa}, {Pool: pb, Weight: tt.wb}}})
			if err != nil {
				t.Fatal(err)
			}
			counts := map[string]int{}
			r := httptest.NewRequest("GET", "/", nil)
			for range 400 {
				counts[h.pickPool(r, &request.Info{}).Name()]++
			}
			if counts["a"] < tt.minA || counts["b"] < tt.minB {
				t.Errorf("got a=%d b=%d of 400, want at least a=%d b=%d", counts["a"], counts["b"], tt.minA, tt.minB)
			}
		})
	}
}

// TestStickySplit: a sticky key always lands on the same backend, the
// split follows the weights, and as the candidate's weight grows a user
// already on the candidate stays there (the migration never flaps back).
func TestStickySplit(t *testing.T) {
	a, b := newOrigin(t, behaviour(t, "ok")), newOrigin(t, behaviour(t, "ok"))
	mono, cand := newPool(t, "monolith", nil, a.addr()), newPool(t, "listing", nil, b.addr())
	split := func(candWeight int, st *config.Sticky) *Handler {
		t.Helper()
		// The candidate is listed second on purpose: candidates are
		// placed first whatever the config order.
		h, err := New(Options{Sticky: st, Backends: []Backend{
			{Pool: mono, Weight: 100 - candWeight},
			{Pool: cand, Weight: candWeight, Candidate: true},
		}})
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	pick := func(h *Handler, user string) string {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("X-User", user)
		r.AddCookie(&http.Cookie{Name: "uid", Value: user})
		info := &request.Info{Claims: map[string]any{"sub": user}, ClientIP: netip.MustParseAddr("192.0.2.7")}
		return h.pickPool(r, info).Name()
	}
	users := make([]string, 2000)
	for i := range users {
		users[i] = fmt.Sprintf("user-%d", i)
	}
	for _, key := range []struct {
		name string
		st   *config.Sticky
	}{
		{"header", &config.Sticky{Header: "X-User"}},
		{"cookie", &config.Sticky{Cookie: "uid"}},
		{"claim", &config.Sticky{Claim: "sub"}},
	} {
		t.Run(key.name, func(t *testing.T) {
			onCandidate := map[string]bool{}
			for _, w := range []int{1, 5, 25, 50, 100} {
				h := split(w, key.st)
				n := 0
				for _, u := range users {
					got := pick(h, u)
					if again := pick(h, u); again != got {
						t.Fatalf("weight %d: %s went to %s then %s", w, u, got, again)
					}
					if got == "listing" {
						n++
						onCandidate[u] = true
					} else if onCandidate[u] {
						t.Fatalf("weight %d: %s moved back from the candidate to %s", w, u, got)
					}
				}
				want := len(users) * w / 100
				if d := n - want; d < -len(users)/25 || d > len(users)/25 {
					t.Errorf("weight %d: got %d of %d users on the candidate, want about %d", w, n, len(users), want)
				}
			}
		})
	}
	t.Run("client ip", func(t *testing.T) {
		h := split(50, &config.Sticky{ClientIP: true})
		first := pick(h, "a")
		for _, u := range users[:50] {
			if got := pick(h, u); got != first {
				t.Fatalf("same client IP went to %s and %s", first, got)
			}
		}
	})
	t.Run("missing key is random", func(t *testing.T) {
		h := split(50, &config.Sticky{Header: "X-Missing"})
		seen := map[string]bool{}
		for range 200 {
			seen[h.pickPool(httptest.NewRequest("GET", "/", nil), &request.Info{}).Name()] = true
		}
		if len(seen) != 2 {
			t.Errorf("requests without the key went to %v, want both backends", seen)
		}
	})
}

func TestNewRejects(t *testing.T) {
	o := newOrigin(t, behaviour(t, "ok"))
	pool := newPool(t, "app", nil, o.addr())
	tests := []struct {
		name string
		o    Options
	}{
		{"no backends", Options{}},
		{"weights sum to zero", Options{Backends: []Backend{{Pool: pool, Weight: 0}}}},
		{"negative weight", Options{Backends: []Backend{{Pool: pool, Weight: -1}, {Pool: pool, Weight: 2}}}},
		{"nil pool", Options{Backends: []Backend{{Pool: nil, Weight: 1}}}},
		{"negative attempts", Options{Backends: []Backend{{Pool: pool, Weight: 1}}, Attempts: -1}},
		{"negative timeout", Options{Backends: []Backend{{Pool: pool, Weight: 1}}, Timeout: -time.Second}},
		{"bad retry status", Options{Backends: []Backend{{Pool: pool, Weight: 1}}, RetryStatuses: []int{1000}}},
		{"bad header op", Options{Backends: []Backend{{Pool: pool, Weight: 1}}, RequestHeaders: config.HeaderOps{Remove: []string{"a b"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.o.Route = "r1"
			if _, err := New(tt.o); err == nil || !strings.HasPrefix(err.Error(), `build proxy for route "r1": `) {
				t.Errorf("got %v, want an error starting with the operation", err)
			}
		})
	}
}

func TestParseRetryOn(t *testing.T) {
	tests := []struct {
		name    string
		in      []string
		want    RetryOn
		wantErr bool
	}{
		{"absent takes the default", nil, RetryConnectFailure | RetryReset, false},
		{"empty means none", []string{}, 0, false},
		{"all", []string{"connect_failure", "reset", "timeout"}, RetryConnectFailure | RetryReset | RetryTimeout, false},
		{"unknown", []string{"5xx"}, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRetryOn(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("got %v, %v; want %v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestStatus(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"client gone", fmt.Errorf("forward: %w", ErrClientGone), 499},
		{"plain cancel", context.Canceled, 499},
		{"route timeout", fmt.Errorf("forward: %w", ErrTimeout), 504},
		{"try timeout", ErrTryTimeout, 504},
		{"connect timeout", &net.OpError{Op: "dial", Net: "tcp", Err: timeoutErr{}}, 504},
		{"no endpoint", fmt.Errorf("pick: %w", upstream.ErrNoEndpoint), 503},
		{"capacity", ErrAtCapacity, 503},
		{"body too large", fmt.Errorf("read: %w: %w", ErrRequestBody, &http.MaxBytesError{Limit: 1}), 413},
		{"bad body", fmt.Errorf("read: %w: %w", ErrRequestBody, io.ErrUnexpectedEOF), 400},
		{"CONNECT", ErrMethod, 405},
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, 502},
		{"reset", io.EOF, 502},
		{"unexpected 101", ErrUpgrade, 502},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Status(tt.err); got != tt.want {
				t.Errorf("Status(%v): got %d, want %d", tt.err, got, tt.want)
			}
		})
	}
}

func BenchmarkProxy(b *testing.B) {
	o := newOrigin(b, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("hello, world\n"))
	})
	pool := newPool(b, "app", nil, o.addr())
	h := newHandler(b, pool, Options{Timeout: 5 * time.Second, Attempts: 1, RetryOn: DefaultRetryOn})
	r := httptest.NewRequest("GET", "http://app.example.com/items?id=1", nil)
	r.Header.Set("User-Agent", "bench")
	r.Header.Set("Accept", "*/*")
	info := testInfo(r, false)
	r = r.WithContext(requestContext(r, info))
	b.ReportAllocs()
	for b.Loop() {
		info.Tries = 0
		w := &discardWriter{h: make(http.Header)}
		h.ServeHTTP(w, r)
		if w.status != 200 {
			b.Fatalf("status %d", w.status)
		}
	}
}

// discardWriter is a minimal ResponseWriter for the benchmark.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(code int)        { w.status = code }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }

// TestLiveWeights is issue 6's first acceptance point with weights moved
// at run time, as a rollout moves them: 10,000 users, the candidate at 10,
// 50 then 100 percent; no user ever goes back from the candidate to the
// primary, and each split is within 2 percentage points of its weights.
func TestLiveWeights(t *testing.T) {
	a, b := newOrigin(t, behaviour(t, "ok")), newOrigin(t, behaviour(t, "ok"))
	mono, cand := newPool(t, "monolith", nil, a.addr()), newPool(t, "listing", nil, b.addr())
	live, err := NewWeights([]int{100, 0})
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(Options{Sticky: &config.Sticky{Header: "X-User"}, Weights: live, Backends: []Backend{
		{Pool: mono, Weight: 100},
		{Pool: cand, Weight: 0, Candidate: true},
	}})
	if err != nil {
		t.Fatal(err)
	}
	const users = 10000
	onCandidate := make([]bool, users)
	r := httptest.NewRequest("GET", "/", nil)
	for _, pct := range []int{0, 10, 50, 100} {
		if err := live.Set([]int{100 - pct, pct}); err != nil {
			t.Fatal(err)
		}
		n := 0
		for u := range users {
			r.Header.Set("X-User", fmt.Sprintf("user-%d", u))
			switch got := h.pickPool(r, &request.Info{}).Name(); {
			case got == "listing":
				n++
				onCandidate[u] = true
			case onCandidate[u]:
				t.Fatalf("at %d%%: user-%d moved back from the candidate to %s", pct, u, got)
			}
		}
		if share := float64(n) * 100 / users; math.Abs(share-float64(pct)) > 2 {
			t.Errorf("at %d%%: %.2f%% of users on the candidate, want within 2 points", pct, share)
		}
		t.Logf("candidate at %d%%: %d of %d users (%.2f%%)", pct, n, users, float64(n)*100/users)
	}
	for _, bad := range [][]int{{1}, {-1, 2}, {0, 0}} {
		if err := live.Set(bad); err == nil {
			t.Errorf("Set(%v) succeeded, want an error", bad)
		}
	}
	if got := live.Get(); !slices.Equal(got, []int{0, 100}) {
		t.Errorf("after refused sets, weights are %v, want [0 100]", got)
	}
	if _, err := New(Options{Weights: live, Backends: []Backend{{Pool: mono, Weight: 1}}}); err == nil {
		t.Error("New accepted 2 live weights for 1 backend")
	}
}
