package accesslog

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"torii/internal/config"
	"torii/internal/request"
)

func ptr[T any](v T) *T { return &v }

func testInfo() *request.Info {
	return &request.Info{
		ID:       "01J9Z3",
		ClientIP: netip.MustParseAddr("192.0.2.10"),
		Route:    "items",
		Upstream: "listing",
		Endpoint: "10.0.0.21:8080",
		Tries:    2,
		Status:   200,
		BytesOut: 1234,
	}
}

// lines decodes the JSON lines in b.
func lines(t *testing.T, b []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range bytes.Lines(b) {
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("line %q is not JSON: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func TestLogFields(t *testing.T) {
	var buf bytes.Buffer
	l := New(config.AccessLog{}, &buf)
	r := httptest.NewRequest(http.MethodPost, "http://api.example.com/v1/items?page=2", nil)
	r.Header.Set("User-Agent", "curl/8.5.0")
	info := testInfo()
	info.Status = 502
	info.Err = errors.New(`dial upstream "listing": connection refused`)
	l.Log(r, info, 1500*time.Microsecond)

	got := lines(t, buf.Bytes())
	if len(got) != 1 {
		t.Fatalf("%d lines, want 1", len(got))
	}
	want := map[string]any{
		"msg":         "request",
		"id":          "01J9Z3",
		"client_ip":   "192.0.2.10",
		"method":      "POST",
		"host":        "api.example.com",
		"path":        "/v1/items",
		"route":       "items",
		"upstream":    "listing",
		"endpoint":    "10.0.0.21:8080",
		"status":      502.0,
		"bytes_out":   1234.0,
		"duration_ms": 1.5,
		"tries":       2.0,
		"user_agent":  "curl/8.5.0",
		"error":       `dial upstream "listing": connection refused`,
	}
	for k, w := range want {
		if g := got[0][k]; g != w {
			t.Errorf("field %s = %#v, want %#v", k, g, w)
		}
	}
	if _, err := time.Parse(time.RFC3339Nano, got[0]["time"].(string)); err != nil {
		t.Errorf("field time = %v: %v", got[0]["time"], err)
	}

	// No error: no error field.
	buf.Reset()
	l.Log(r, testInfo(), time.Millisecond)
	if _, ok := lines(t, buf.Bytes())[0]["error"]; ok {
		t.Error("error field present for a request without error")
	}
}

// TestNeverLogsSecrets sends a request carrying every kind of credential
// through net/http's own parser and checks none of it reaches the log.
func TestNeverLogsSecrets(t *testing.T) {
	secrets := []string{
		"userinfo-pw", "authz-token", "cookie-value", "setcookie-value",
		"proxy-authz", "query-token", "referer-token", "fragment-token",
		"host-userinfo",
	}
	raw := "GET http://alice:userinfo-pw@api.example.com/v1/items?access_token=query-token HTTP/1.1\r\n" +
		"Host: api.example.com\r\n" +
		"Authorization: Bearer authz-token\r\n" +
		"Cookie: session=cookie-value\r\n" +
		"Set-Cookie: session=setcookie-value\r\n" +
		"Proxy-Authorization: Basic proxy-authz\r\n" +
		"Referer: https://app.example.com/cb?code=referer-token#fragment-token\r\n" +
		"User-Agent: test\r\n\r\n"
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
	if err != nil {
		t.Fatal(err)
	}
	// A request built without net/http's Host check.
	forged := r.Clone(r.Context())
	forged.Host = "bob:host-userinfo@api.example.com"
	tests := []struct {
		name   string
		r      *http.Request
		status int
		err    error
	}{
		{"success", r, 200, nil},
		{"server error", r, 502, errors.New("upstream reset")},
		{"client gone", r, 499, errors.New("context canceled")},
		{"userinfo in Host", forged, 200, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			info := testInfo()
			info.Status, info.Err = tt.status, tt.err
			New(config.AccessLog{}, &buf).Log(tt.r, info, time.Millisecond)
			out := buf.String()
			if out == "" {
				t.Fatal("nothing logged")
			}
			for _, s := range secrets {
				if strings.Contains(out, s) {
					t.Errorf("log line contains secret %q: %s", s, out)
				}
			}
			line := lines(t, buf.Bytes())[0]
			if line["path"] != "/v1/items" || line["host"] != "api.example.com" {
				t.Errorf("path %v, host %v; want /v1/items, api.example.com", line["path"], line["host"])
			}
		})
	}
}

func TestSampling(t *testing.T) {
	tests := []struct {
		name   string
		sample *float64
		status int
		n      int
		min    int // lines expected, inclusive bounds
		max    int
	}{
		{"default logs all", nil, 200, 100, 100, 100},
		{"zero drops successes", ptr(0.0), 200, 100, 0, 0},
		{"zero drops client errors", ptr(0.0), 404, 100, 0, 0},
		{"zero keeps server errors", ptr(0.0), 503, 100, 100, 100},
		{"zero keeps client gone", ptr(0.0), 499, 100, 100, 100},
		// 10,000 draws at p = 0.25: mean 2500, sd 43; ±300 is 7 sd.
		{"quarter", ptr(0.25), 200, 10_000, 2200, 2800},
		{"above one is all", ptr(3.0), 200, 100, 100, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			l := New(config.AccessLog{Sample: tt.sample}, &buf)
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			info := testInfo()
			info.Status = tt.status
			for range tt.n {
				l.Log(r, info, time.Millisecond)
			}
			got := bytes.Count(buf.Bytes(), []byte("\n"))
			if got < tt.min || got > tt.max {
				t.Errorf("%d lines of %d, want %d to %d", got, tt.n, tt.min, tt.max)
			}
		})
	}
}

func TestDisabled(t *testing.T) {
	var buf bytes.Buffer
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	New(config.AccessLog{Disabled: true}, &buf).Log(r, testInfo(), time.Millisecond)
	var nilLogger *Logger
	nilLogger.Log(r, testInfo(), time.Millisecond)
	if buf.Len() != 0 {
		t.Errorf("disabled logger wrote %q", buf.String())
	}
}

func BenchmarkLog(b *testing.B) {
	r := httptest.NewRequest(http.MethodGet, "http://api.example.com/v1/items/42?page=2", nil)
	r.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64)")
	info := testInfo()
	for _, bm := range []struct {
		name   string
		sample float64
	}{
		{"all", 1},
		{"sampled-1pct", 0.01},
	} {
		b.Run(bm.name, func(b *testing.B) {
			l := New(config.AccessLog{Sample: ptr(bm.sample)}, io.Discard)
			b.ReportAllocs()
			for b.Loop() {
				l.Log(r, info, 3*time.Millisecond)
			}
		})
	}
}
