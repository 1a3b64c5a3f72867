package compress

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"torii/internal/config"
)

// text returns n bytes of compressible JSON-ish text.
func text(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, `{"id":%d,"name":"item %d","tags":["edge","cache"],"price":%d.%02d},`, i, i, i%97, i%100)
	}
	return b.Bytes()[:n]
}

// serve starts a real server running h behind the middleware built from
// cfg (nil: all defaults) and returns its URL.
func serve(t *testing.T, cfg *config.Compress, h http.HandlerFunc, opts ...Option) string {
	t.Helper()
	if cfg == nil {
		cfg = &config.Compress{}
	}
	mw, err := New(cfg, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv := httptest.NewServer(mw(h))
	t.Cleanup(srv.Close)
	return srv.URL
}

// client never asks for or decodes compression on its own.
var client = &http.Client{Transport: &http.Transport{DisableCompression: true}}

// get sends a request with the header fields in kv (name, value, ...)
// and returns the response with its raw body read.
func get(t *testing.T, method, url string, kv ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		req.Header.Add(kv[i], kv[i+1])
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return res, body
}

// decoder returns a reader decoding r as coding says ("" for identity).
func decoder(t *testing.T, coding string, r io.Reader) io.Reader {
	t.Helper()
	switch coding {
	case "":
		return r
	case "gzip":
		zr, err := gzip.NewReader(r)
		if err != nil {
			t.Fatalf("gzip reader: %v", err)
		}
		return zr
	case "br":
		return brotli.NewReader(r)
	case "zstd":
		zr, err := zstd.NewReader(r)
		if err != nil {
			t.Fatalf("zstd reader: %v", err)
		}
		t.Cleanup(zr.Close)
		return zr
	}
	t.Fatalf("unknown coding %q", coding)
	return nil
}

func decode(t *testing.T, coding string, body []byte) []byte {
	t.Helper()
	out, err := io.ReadAll(decoder(t, coding, bytes.NewReader(body)))
	if err != nil {
		t.Fatalf("decode %s: %v", coding, err)
	}
	return out
}

// fixed answers with body, the Content-Type ct and the header fields in
// kv, declaring Content-Length when withLength is set.
func fixed(body []byte, ct string, withLength bool, kv ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if ct != "" {
			w.Header().Set("Content-Type", ct)
		}
		for i := 0; i+1 < len(kv); i += 2 {
			w.Header().Add(kv[i], kv[i+1])
		}
		if withLength {
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		}
		w.Write(body)
	}
}

func TestRoundTrip(t *testing.T) {
	body := text(100 << 10)
	for _, alg := range []string{"zstd", "br", "gzip"} {
		for _, withLength := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/length=%v", alg, withLength), func(t *testing.T) {
				url := serve(t, nil, fixed(body, "application/json", withLength))
				res, raw := get(t, "GET", url, "Accept-Encoding", alg)
				if got := res.Header.Get("Content-Encoding"); got != alg {
					t.Fatalf("Content-Encoding: got %q, want %q", got, alg)
				}
				if got := res.Header.Get("Content-Length"); got != "" {
					t.Errorf("Content-Length: got %q, want none", got)
				}
				if got := res.Header.Values("Vary"); !slices.Equal(got, []string{"Accept-Encoding"}) {
					t.Errorf("Vary: got %q, want [Accept-Encoding]", got)
				}
				if len(raw) > len(body)/3 {
					t.Errorf("compressed size: got %d, want under a third of %d", len(raw), len(body))
				}
				if got := decode(t, alg, raw); !bytes.Equal(got, body) {
					t.Errorf("decoded body: got %d bytes, want the %d sent", len(got), len(body))
				}
			})
		}
	}
}

// TestPoolReuse sends many responses of different sizes, concurrently,
// through pooled encoders: each must decode to its own body.
func TestPoolReuse(t *testing.T) {
	url := serve(t, nil, func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		w.Header().Set("Content-Type", "text/plain")
		w.Write(text(n))
	})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 20 {
				alg := []string{"zstd", "br", "gzip"}[(g+i)%3]
				n := 1024 + (g*7919+i*104729)%200000
				res, raw := get(t, "GET", url+"?n="+strconv.Itoa(n), "Accept-Encoding", alg)
				if got := res.Header.Get("Content-Encoding"); got != alg {
					t.Errorf("n=%d: Content-Encoding: got %q, want %q", n, got, alg)
					return
				}
				if got := decode(t, alg, raw); !bytes.Equal(got, text(n)) {
					t.Errorf("n=%d %s: decoded %d bytes, want the %d sent", n, alg, len(got), n)
				}
			}
		})
	}
	wg.Wait()
}

func TestLargeBody(t *testing.T) {
	// 1 MiB: text with stretches of random bytes, written in uneven
	// pieces.
	rng := rand.New(rand.NewPCG(1, 2))
	body := text(1 << 20)
	for i := 0; i < len(body); i += 4096 {
		for j := i; j < min(i+512, len(body)); j++ {
			body[j] = byte(rng.Uint32())
		}
	}
	url := serve(t, nil, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		for rest := body; len(rest) > 0; {
			n := min(len(rest), 1+rng.IntN(70000))
			w.Write(rest[:n])
			rest = rest[n:]
		}
	})
	for _, alg := range []string{"zstd", "br", "gzip"} {
		t.Run(alg, func(t *testing.T) {
			res, raw := get(t, "GET", url, "Accept-Encoding", alg)
			if got := res.Header.Get("Content-Encoding"); got != alg {
				t.Fatalf("Content-Encoding: got %q, want %q", got, alg)
			}
			if got := decode(t, alg, raw); !bytes.Equal(got, body) {
				t.Errorf("decoded body: got %d bytes, want the %d sent", len(got), len(body))
			}
		})
	}
}

func TestMinBytes(t *testing.T) {
	tests := []struct {
		name       string
		size       int
		withLength bool
		chunk      int // write in pieces of this size; 0: at once
		want       bool
	}{
		{name: "known length below", size: 1023, withLength: true, want: false},
		{name: "known length at", size: 1024, withLength: true, want: true},
		{name: "unknown length below", size: 1023, want: false},
		{name: "unknown length at", size: 1024, want: true},
		{name: "unknown length in small pieces", size: 5000, chunk: 100, want: true},
		{name: "unknown length below in pieces", size: 1000, chunk: 10, want: false},
		{name: "empty", size: 0, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := text(tt.size)
			url := serve(t, nil, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html")
				if tt.withLength {
					w.Header().Set("Content-Length", strconv.Itoa(len(body)))
				}
				w.WriteHeader(http.StatusOK)
				step := tt.chunk
				if step == 0 {
					step = max(len(body), 1)
				}
				for i := 0; i < len(body); i += step {
					w.Write(body[i:min(i+step, len(body))])
				}
			})
			res, raw := get(t, "GET", url, "Accept-Encoding", "gzip")
			got := res.Header.Get("Content-Encoding") == "gzip"
			if got != tt.want {
				t.Fatalf("compressed: got %v, want %v", got, tt.want)
			}
			if dec := decode(t, res.Header.Get("Content-Encoding"), raw); !bytes.Equal(dec, body) {
				t.Errorf("body: got %d bytes, want the %d sent", len(dec), len(body))
			}
			if got := res.Header.Get("Vary"); got != "Accept-Encoding" {
				t.Errorf("Vary: got %q, want Accept-Encoding whether compressed or not", got)
			}
		})
	}
	t.Run("configured", func(t *testing.T) {
		url := serve(t, &config.Compress{MinBytes: 10}, fixed(text(10), "text/plain", false))
		if res, _ := get(t, "GET", url, "Accept-Encoding", "br"); res.Header.Get("Content-Encoding") != "br" {
			t.Errorf("Content-Encoding: got %q, want br for 10 bytes with min_bytes 10", res.Header.Get("Content-Encoding"))
		}
	})
}

func TestContentTypes(t *testing.T) {
	html := []byte("<!DOCTYPE html><html><body>" + strings.Repeat("<p>hello</p>", 200) + "</body></html>")
	binary := append([]byte("\x89PNG\r\n\x1a\n"), make([]byte, 4000)...)
	tests := []struct {
		name  string
		types []string // nil: the defaults
		ct    string   // "" sends none
		body  []byte
		want  bool
	}{
		{name: "html with charset", ct: "text/html; charset=utf-8", want: true},
		{name: "upper case", ct: "TEXT/Plain", want: true},
		{name: "event stream", ct: "text/event-stream", want: true},
		{name: "json", ct: "application/json", want: true},
		{name: "javascript", ct: "application/javascript; charset=utf-8", want: true},
		{name: "wasm", ct: "application/wasm", want: true},
		{name: "svg", ct: "image/svg+xml", want: true},
		{name: "json suffix", ct: "application/problem+json", want: true},
		{name: "xml suffix", ct: "application/atom+xml", want: true},
		{name: "png", ct: "image/png", want: false},
		{name: "octet stream", ct: "application/octet-stream", want: false},
		{name: "zip", ct: "application/zip", want: false},
		{name: "json-ish without suffix", ct: "application/jsonl", want: false},
		{name: "grpc", ct: "application/grpc", want: false},
		{name: "grpc json", ct: "application/grpc+json", want: false},
		{name: "grpc-web", ct: "application/grpc-web-text", want: false},
		{name: "malformed", ct: "text", want: false},
		{name: "sniffed html", ct: "", body: html, want: true},
		{name: "sniffed png", ct: "", body: binary, want: false},
		{name: "custom list", types: []string{"application/x-ndjson"}, ct: "application/x-ndjson", want: true},
		{name: "custom list excludes the rest", types: []string{"application/x-ndjson"}, ct: "text/html", want: false},
		{name: "custom wildcard", types: []string{"application/*"}, ct: "application/octet-stream", want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := tt.body
			if body == nil {
				body = text(4096)
			}
			url := serve(t, &config.Compress{Types: tt.types}, fixed(body, tt.ct, false))
			res, raw := get(t, "GET", url, "Accept-Encoding", "gzip")
			got := res.Header.Get("Content-Encoding") == "gzip"
			if got != tt.want {
				t.Fatalf("Content-Type %q: compressed: got %v, want %v", res.Header.Get("Content-Type"), got, tt.want)
			}
			if dec := decode(t, res.Header.Get("Content-Encoding"), raw); !bytes.Equal(dec, body) {
				t.Errorf("body: got %d bytes, want the %d sent", len(dec), len(body))
			}
			wantVary := ""
			if tt.want {
				wantVary = "Accept-Encoding"
			}
			if got := res.Header.Get("Vary"); got != wantVary {
				t.Errorf("Vary: got %q, want %q", got, wantVary)
			}
		})
	}
}

// TestUntouched covers the responses that must pass exactly as the
// handler wrote them.
func TestUntouched(t *testing.T) {
	body := text(4096)
	tests := []struct {
		name    string
		h       http.HandlerFunc
		reqKV   []string
		method  string
		wantCE  string // Content-Encoding the client gets
		wantVar string // Vary the client gets
	}{
		{
			name:   "already encoded",
			h:      fixed(body, "application/json", false, "Content-Encoding", "gzip"),
			wantCE: "gzip",
		},
		{
			name:   "already encoded, other coding",
			h:      fixed(body, "text/plain", true, "Content-Encoding", "deflate"),
			wantCE: "deflate",
		},
		{
			name: "no-transform",
			h:    fixed(body, "text/plain", false, "Cache-Control", "public, No-Transform, max-age=60"),
		},
		{
			name:    "range request",
			h:       fixed(body, "text/plain", true),
			reqKV:   []string{"Range", "bytes=0-99"},
			wantVar: "Accept-Encoding",
		},
		{
			name: "206",
			h: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/plain")
				w.Header().Set("Content-Range", fmt.Sprintf("bytes 0-%d/%d", len(body)-1, 2*len(body)))
				w.WriteHeader(http.StatusPartialContent)
				w.Write(body)
			},
		},
		{
			name:    "HEAD",
			method:  "HEAD",
			h:       fixed(body, "text/plain", true),
			wantVar: "Accept-Encoding",
		},
		{
			name: "204",
			h: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/plain")
				w.WriteHeader(http.StatusNoContent)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var direct http.Header
			url := serve(t, nil, func(w http.ResponseWriter, r *http.Request) {
				tt.h(w, r)
				direct = w.Header().Clone()
			})
			method := tt.method
			if method == "" {
				method = "GET"
			}
			res, raw := get(t, method, url, append([]string{"Accept-Encoding", "gzip, br, zstd"}, tt.reqKV...)...)
			if got := res.Header.Get("Content-Encoding"); got != tt.wantCE {
				t.Errorf("Content-Encoding: got %q, want %q", got, tt.wantCE)
			}
			if got := res.Header.Get("Vary"); got != tt.wantVar {
				t.Errorf("Vary: got %q, want %q", got, tt.wantVar)
			}
			if got, want := res.Header.Get("Content-Length"), direct.Get("Content-Length"); got != want && method != "HEAD" {
				t.Errorf("Content-Length: got %q, want the handler's %q", got, want)
			}
			if method == "HEAD" {
				if got, want := res.Header.Get("Content-Length"), strconv.Itoa(len(body)); got != want {
					t.Errorf("HEAD Content-Length: got %q, want %q", got, want)
				}
				return
			}
			if res.StatusCode != http.StatusNoContent && !bytes.Equal(raw, body) {
				t.Errorf("body: got %d bytes, want the %d sent unchanged", len(raw), len(body))
			}
		})
	}
}

func TestNotModified(t *testing.T) {
	tests := []struct {
		name     string
		accept   string
		ct       string
		wantETag string
	}{
		{name: "compressing client", accept: "gzip", wantETag: `W/"v1"`},
		{name: "compressible type", accept: "br", ct: "text/css", wantETag: `W/"v1"`},
		{name: "incompressible type", accept: "br", ct: "image/png", wantETag: `"v1"`},
		{name: "client without compression", accept: "", wantETag: `"v1"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := serve(t, nil, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("ETag", `"v1"`)
				if tt.ct != "" {
					w.Header().Set("Content-Type", tt.ct)
				}
				w.WriteHeader(http.StatusNotModified)
			})
			res, raw := get(t, "GET", url, "Accept-Encoding", tt.accept, "If-None-Match", `W/"v1"`)
			if res.StatusCode != http.StatusNotModified || len(raw) != 0 {
				t.Fatalf("got status %d with %d bytes, want 304 without a body", res.StatusCode, len(raw))
			}
			if got := res.Header.Get("ETag"); got != tt.wantETag {
				t.Errorf("ETag: got %q, want %q", got, tt.wantETag)
			}
			if got := res.Header.Get("Content-Encoding"); got != "" {
				t.Errorf("Content-Encoding: got %q, want none", got)
			}
		})
	}
}

func TestVary(t *testing.T) {
	tests := []struct {
		name   string
		vary   []string // the handler's Vary field lines
		accept string
		want   []string
	}{
		{name: "none", want: []string{"Accept-Encoding"}},
		{name: "merged", vary: []string{"Origin"}, accept: "gzip", want: []string{"Origin", "Accept-Encoding"}},
		{name: "merged without compression", vary: []string{"Origin, Cookie"}, want: []string{"Origin, Cookie", "Accept-Encoding"}},
		{name: "present", vary: []string{"Origin, accept-encoding"}, accept: "gzip", want: []string{"Origin, accept-encoding"}},
		{name: "present on its own line", vary: []string{"Origin", "Accept-Encoding"}, accept: "gzip", want: []string{"Origin", "Accept-Encoding"}},
		{name: "star", vary: []string{"*"}, accept: "gzip", want: []string{"*"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := serve(t, nil, func(w http.ResponseWriter, r *http.Request) {
				w.Header()["Vary"] = tt.vary
				w.Header().Set("Content-Type", "text/plain")
				w.Write(text(2048))
			})
			res, _ := get(t, "GET", url, "Accept-Encoding", tt.accept)
			if got := res.Header.Values("Vary"); !slices.Equal(got, tt.want) {
				t.Errorf("Vary: got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestETag(t *testing.T) {
	tests := []struct {
		name   string
		etag   string
		accept string
		want   string
	}{
		{name: "strong weakened", etag: `"abc"`, accept: "zstd", want: `W/"abc"`},
		{name: "weak kept", etag: `W/"abc"`, accept: "zstd", want: `W/"abc"`},
		{name: "strong kept uncompressed", etag: `"abc"`, accept: "identity", want: `"abc"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := serve(t, nil, fixed(text(4096), "text/plain", true, "ETag", tt.etag, "Accept-Ranges", "bytes"))
			res, _ := get(t, "GET", url, "Accept-Encoding", tt.accept)
			if got := res.Header.Get("ETag"); got != tt.want {
				t.Errorf("ETag: got %q, want %q", got, tt.want)
			}
			compressed := res.Header.Get("Content-Encoding") != ""
			if got := res.Header.Get("Accept-Ranges") != ""; got == compressed {
				t.Errorf("Accept-Ranges present: got %v, want %v (compressed %v)", got, !compressed, compressed)
			}
		})
	}
}

// TestStreaming plays Server-Sent Events: the upstream sends event 1 and
// waits until the client has decoded it before sending event 2. A
// compressor that held event 1 back would stall the test.
func TestStreaming(t *testing.T) {
	for _, alg := range []string{"zstd", "br", "gzip"} {
		for _, flushFirst := range []bool{false, true} {
			// flushFirst flushes the head before any body, as the proxy
			// does for a response of unknown length.
			t.Run(fmt.Sprintf("%s/flush_head=%v", alg, flushFirst), func(t *testing.T) {
				decoded := make(chan struct{})
				url := serve(t, nil, func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", "text/event-stream")
					w.WriteHeader(http.StatusOK)
					rc := http.NewResponseController(w)
					if flushFirst {
						if err := rc.Flush(); err != nil {
							t.Errorf("flush head: %v", err)
						}
					}
					io.WriteString(w, "data: event 1\n\n")
					if err := rc.Flush(); err != nil {
						t.Errorf("flush event 1: %v", err)
					}
					select {
					case <-decoded:
					case <-r.Context().Done():
						return
					}
					io.WriteString(w, "data: event 2\n\n")
					w.(http.Flusher).Flush() // the older interface works too
				})
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
				req.Header.Set("Accept-Encoding", alg)
				res, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer res.Body.Close()
				if got := res.Header.Get("Content-Encoding"); got != alg {
					t.Fatalf("Content-Encoding: got %q, want %q", got, alg)
				}
				lines := bufio.NewReader(decoder(t, alg, res.Body))
				for i, want := range []string{"data: event 1\n", "\n", "data: event 2\n", "\n"} {
					got, err := lines.ReadString('\n')
					if err != nil {
						t.Fatalf("line %d: %v (a stall ends in the deadline)", i, err)
					}
					if got != want {
						t.Fatalf("line %d: got %q, want %q", i, got, want)
					}
					if i == 1 {
						close(decoded)
					}
				}
				if rest, err := io.ReadAll(lines); err != nil || len(rest) != 0 {
					t.Errorf("after event 2: got %q, %v, want the end of the stream", rest, err)
				}
			})
		}
	}
}

func TestTrailers(t *testing.T) {
	body := text(4096)
	url := serve(t, nil, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Trailer", "X-Checksum")
		w.WriteHeader(http.StatusOK)
		w.Write(body)
		w.Header().Set("X-Checksum", "abc")
		w.Header().Set(http.TrailerPrefix+"X-Late", "def")
	})
	for _, accept := range []string{"gzip", ""} {
		t.Run("accept="+accept, func(t *testing.T) {
			res, raw := get(t, "GET", url, "Accept-Encoding", accept)
			if got := decode(t, res.Header.Get("Content-Encoding"), raw); !bytes.Equal(got, body) {
				t.Errorf("body: got %d bytes, want the %d sent", len(got), len(body))
			}
			if got := res.Trailer.Get("X-Checksum"); got != "abc" {
				t.Errorf("trailer X-Checksum: got %q, want %q", got, "abc")
			}
			if got := res.Trailer.Get("X-Late"); got != "def" {
				t.Errorf("trailer X-Late: got %q, want %q", got, "def")
			}
			if got := res.Header.Get("X-Checksum"); got != "" {
				t.Errorf("header X-Checksum: got %q, want it only as a trailer", got)
			}
		})
	}
}

func TestResponseController(t *testing.T) {
	url := serve(t, nil, func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		if err := rc.SetWriteDeadline(time.Now().Add(time.Minute)); err != nil {
			t.Errorf("SetWriteDeadline through the writer: %v", err)
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Write(text(2048))
	})
	if res, _ := get(t, "GET", url, "Accept-Encoding", "gzip"); res.Header.Get("Content-Encoding") != "gzip" {
		t.Errorf("Content-Encoding: got %q, want gzip", res.Header.Get("Content-Encoding"))
	}
}

func TestInformational(t *testing.T) {
	body := text(4096)
	url := serve(t, nil, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusOK)
		w.Write(body)
	})
	res, raw := get(t, "GET", url, "Accept-Encoding", "br")
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Encoding") != "br" {
		t.Fatalf("got %d with Content-Encoding %q, want 200 with br", res.StatusCode, res.Header.Get("Content-Encoding"))
	}
	if got := decode(t, "br", raw); !bytes.Equal(got, body) {
		t.Errorf("body: got %d bytes, want %d", len(got), len(body))
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	if again := NewMetrics(reg); again.responses != m.responses {
		t.Errorf("NewMetrics twice on one registry: got a new collector, want the registered one")
	}
	body := text(8192)
	url := serve(t, nil, fixed(body, "text/plain", false), WithMetrics(m))
	_, raw := get(t, "GET", url, "Accept-Encoding", "zstd")
	get(t, "GET", url, "Accept-Encoding", "zstd")
	get(t, "GET", url) // not compressed, not counted
	if got := counterValue(t, m.responses.WithLabelValues("zstd")); got != 2 {
		t.Errorf("responses{zstd}: got %v, want 2", got)
	}
	if got, want := counterValue(t, m.in.WithLabelValues("zstd")), float64(2*len(body)); got != want {
		t.Errorf("in bytes{zstd}: got %v, want %v", got, want)
	}
	if got, want := counterValue(t, m.out.WithLabelValues("zstd")), float64(2*len(raw)); got != want {
		t.Errorf("out bytes{zstd}: got %v, want %v", got, want)
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		cfg     *config.Compress
		wantErr string
	}{
		{name: "defaults", cfg: &config.Compress{}},
		{name: "nil", cfg: nil, wantErr: "nil config"},
		{name: "unknown algorithm", cfg: &config.Compress{Algorithms: []string{"deflate"}}, wantErr: `unknown algorithm "deflate"`},
		{name: "duplicate algorithm", cfg: &config.Compress{Algorithms: []string{"br", "br"}}, wantErr: `duplicate algorithm "br"`},
		{name: "bad type", cfg: &config.Compress{Types: []string{"json"}}, wantErr: `invalid media type "json"`},
		{name: "min too large", cfg: &config.Compress{MinBytes: 1 << 30}, wantErr: "min_bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("got error %v, want none", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("got error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// counterValue returns the value of c. (prometheus/testutil would do, but
// pulls in a module this repository does not otherwise need.)
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatalf("read counter: %v", err)
	}
	return m.GetCounter().GetValue()
}

// TestHijack upgrades a connection through the middleware, as the proxy's
// WebSocket tunnel does: the hijack reaches the server's connection.
func TestHijack(t *testing.T) {
	url := serve(t, nil, func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("Hijack through the writer: %v", err)
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\nConnection: close\r\n\r\nraw ok")
		brw.Flush()
	})
	res, raw := get(t, "GET", url, "Accept-Encoding", "gzip")
	if res.Header.Get("Content-Encoding") != "" || string(raw) != "raw ok" {
		t.Errorf("got Content-Encoding %q and body %q, want none and %q", res.Header.Get("Content-Encoding"), raw, "raw ok")
	}
}
