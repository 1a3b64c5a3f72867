package migrate

import (
	"bytes"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
)

// jsonResp is a 200 response with a JSON body.
func jsonResp(body string) *Response {
	return &Response{Status: 200, Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(body)}
}

// with returns r with header k set to v.
func with(r *Response, k, v string) *Response {
	r.Header.Set(k, v)
	return r
}

// encoded returns the JSON response body, content-coded as coding.
func encoded(t testing.TB, coding, body string) *Response {
	t.Helper()
	var buf bytes.Buffer
	var w interface {
		Write([]byte) (int, error)
		Close() error
	}
	switch coding {
	case "gzip":
		w = gzip.NewWriter(&buf)
	case "deflate": // zlib, as RFC 9110 §8.4.1.2 says
		w = zlib.NewWriter(&buf)
	case "raw-deflate": // what some servers send as deflate
		w, _ = flate.NewWriter(&buf, flate.DefaultCompression)
		coding = "deflate"
	case "br":
		w = brotli.NewWriter(&buf)
	case "zstd":
		w, _ = zstd.NewWriter(&buf)
	default:
		t.Fatalf("no encoder for %q", coding)
	}
	if _, err := w.Write([]byte(body)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r := jsonResp("")
	r.Body = buf.Bytes()
	r.Header.Set("Content-Encoding", coding)
	return r
}

func TestCompare(t *testing.T) {
	gzipped := func(s string) *Response { return encoded(t, "gzip", s) }
	// bomb is 8 MiB of JSON whitespace in a 8 KiB gzip: over any bound
	// once decoded.
	bomb := gzipped(`{"a":1}` + strings.Repeat(" ", 8<<20))
	deep := func(leaf string) string { // {"a":{"a":…{"a":leaf}…}}, 70 levels
		return strings.Repeat(`{"a":`, 70) + leaf + strings.Repeat("}", 70)
	}
	manyKeys := func(v int) string {
		var b strings.Builder
		b.WriteString("{")
		for i := range 1500 {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, `"k%d":%d`, i, v)
		}
		b.WriteString("}")
		return b.String()
	}
	tests := []struct {
		name string
		opts CompareOptions
		a, b *Response
		want []string
	}{
		{name: "equal json, other layout and key order",
			a: jsonResp(`{"a":1,"b":[1,2],"c":{"d":null}}`), b: jsonResp("{ \"c\" : {\"d\":null},\n\"b\":[1, 2], \"a\":1 }")},
		{name: "status",
			a: &Response{Status: 200}, b: &Response{Status: 503}, want: []string{"status"}},
		{name: "nil responses", a: nil, b: nil},
		{name: "nil against a status",
			a: nil, b: &Response{Status: 200}, want: []string{"status"}},
		{name: "compared header, name case-insensitive",
			opts: CompareOptions{Headers: []string{"cache-control", "X-Other"}},
			a:    with(jsonResp(`{}`), "Cache-Control", "no-store"), b: with(jsonResp(`{}`), "Cache-Control", "max-age=60"),
			want: []string{"header.Cache-Control"}},
		{name: "header not compared",
			a: with(jsonResp(`{}`), "Date", "Mon"), b: with(jsonResp(`{}`), "Date", "Tue")},
		{name: "header present on one side",
			opts: CompareOptions{Headers: []string{"Etag"}},
			a:    with(jsonResp(`{}`), "Etag", `"x"`), b: jsonResp(`{}`), want: []string{"header.Etag"}},
		{name: "header values compared as a list",
			opts: CompareOptions{Headers: []string{"Vary"}},
			a:    &Response{Header: http.Header{"Vary": {"Accept", "Origin"}}},
			b:    &Response{Header: http.Header{"Vary": {"Origin", "Accept"}}},
			want: []string{"header.Vary"}},
		{name: "ignored header",
			opts: CompareOptions{Headers: []string{"Date"}, Ignore: []string{"header.date"}},
			a:    with(jsonResp(`{}`), "Date", "Mon"), b: with(jsonResp(`{}`), "Date", "Tue")},
		{name: "changed field",
			a: jsonResp(`{"price":12.5,"name":"x"}`), b: jsonResp(`{"price":13,"name":"x"}`), want: []string{"body.price"}},
		{name: "type change, number to string",
			a: jsonResp(`{"price":12.5}`), b: jsonResp(`{"price":"12.5"}`), want: []string{"body.price"}},
		{name: "type change, object to array, not descended",
			a: jsonResp(`{"a":{"b":1}}`), b: jsonResp(`{"a":[{"b":2}]}`), want: []string{"body.a"}},
		{name: "null equals only null",
			a: jsonResp(`{"a":null,"b":null,"c":null}`), b: jsonResp(`{"a":null,"b":0,"c":""}`), want: []string{"body.b", "body.c"}},
		{name: "root type", a: jsonResp(`{}`), b: jsonResp(`[]`), want: []string{"body"}},
		{name: "root scalar", a: jsonResp(`"a"`), b: jsonResp(`"b"`), want: []string{"body"}},
		{name: "nested",
			a: jsonResp(`{"a":{"b":{"c":true}}}`), b: jsonResp(`{"a":{"b":{"c":false}}}`), want: []string{"body.a.b.c"}},
		{name: "key on one side, either side",
			a: jsonResp(`{"a":1,"old":{"x":1}}`), b: jsonResp(`{"a":1,"new":2}`), want: []string{"body.new", "body.old"}},
		{name: "array indexes collapse",
			a:    jsonResp(`{"items":[{"p":1},{"p":2},{"p":3},{"p":4}]}`),
			b:    jsonResp(`{"items":[{"p":1},{"p":"2"},{"p":3},{"p":5}]}`),
			want: []string{"body.items[*].p"}},
		{name: "array length: prefix compared, length at the array",
			a:    jsonResp(`{"items":[{"p":1},{"p":2}]}`),
			b:    jsonResp(`{"items":[{"p":1},{"p":3},{"p":4}]}`),
			want: []string{"body.items", "body.items[*].p"}},
		{name: "root array length", a: jsonResp(`[1]`), b: jsonResp(`[1,2]`), want: []string{"body"}},
		{name: "nested arrays", a: jsonResp(`[[1,[2]]]`), b: jsonResp(`[[1,[3]]]`), want: []string{"body[*][*][*]"}},
		{name: "numbers by value",
			a: jsonResp(`[1, 100, 0, 0.1, 12.50, 1E+2, -0.0, 123456789012345678901234567890, 1e999999999]`),
			b: jsonResp(`[1.0, 1e2, -0, 1e-1, 1.25e1, 100, 0e5, 1.2345678901234567890123456789e29, 10e999999998]`)},
		{name: "numbers that floats would confuse",
			a:    jsonResp(`{"a":12345678901234567890,"b":1,"c":-1}`),
			b:    jsonResp(`{"a":12345678901234567891,"b":1.0000000000000000001,"c":1}`),
			want: []string{"body.a", "body.b", "body.c"}},
		{name: "strings exactly", a: jsonResp(`{"s":"a"}`), b: jsonResp(`{"s":"A"}`), want: []string{"body.s"}},
		{name: "keys that are not identifiers",
			a:    jsonResp(`{"a.b":1,"x y":1,"":1,"say \"hi\"":1,"é":1,"tab\t":1,"ok_-9":1}`),
			b:    jsonResp(`{"a.b":2,"x y":2,"":2,"say \"hi\"":2,"é":2,"tab\t":2,"ok_-9":2}`),
			want: []string{"body.ok_-9", `body[""]`, `body["a.b"]`, `body["say \"hi\""]`, `body["tab\t"]`, `body["x y"]`, `body["é"]`}},
		{name: "ignore is a prefix on a segment boundary",
			opts: CompareOptions{Ignore: []string{"body.meta", "body.item"}},
			a:    jsonResp(`{"meta":{"at":1,"id":"x"},"item":1,"items":1}`),
			b:    jsonResp(`{"meta":{"at":2},"item":2,"items":2}`),
			want: []string{"body.items"}},
		{name: "ignore a key on one side",
			opts: CompareOptions{Ignore: []string{"body.extra"}},
			a:    jsonResp(`{"a":1}`), b: jsonResp(`{"a":1,"extra":{"x":1}}`)},
		{name: "ignore through [*]",
			opts: CompareOptions{Ignore: []string{"body.items[*].etag"}},
			a:    jsonResp(`{"items":[{"etag":"1","p":1},{"etag":"2","p":2}]}`),
			b:    jsonResp(`{"items":[{"etag":"3","p":1},{"etag":"4","p":3},{"etag":"5"}]}`),
			want: []string{"body.items", "body.items[*].p"}},
		{name: "ignore a quoted key, written either way",
			opts: CompareOptions{Ignore: []string{`body["a.b"]`, `body["c"]`}},
			a:    jsonResp(`{"a.b":1,"c":1}`), b: jsonResp(`{"a.b":2,"c":2}`)},
		{name: "ignore body",
			opts: CompareOptions{Ignore: []string{"body"}},
			a:    jsonResp(`{"a":1}`), b: jsonResp(`not json`)},
		{name: "json media types, parameters ignored",
			a:    with(jsonResp(`{"a":1,"b":1}`), "Content-Type", "application/problem+json; charset=utf-8"),
			b:    with(jsonResp(`{"b":1,"a":2}`), "Content-Type", "Application/JSON ; charset=utf-8"),
			want: []string{"body.a"}},
		{name: "not a json media type: bytes",
			a:    with(jsonResp(`{"a":1}`), "Content-Type", "text/plain"),
			b:    with(jsonResp(`{ "a":1}`), "Content-Type", "text/plain"),
			want: []string{"body"}},
		{name: "json on one side only: bytes",
			a:    jsonResp(`{"a":1}`),
			b:    with(jsonResp(`{"a": 1}`), "Content-Type", "text/html"),
			want: []string{"body"}},
		{name: "equal bytes, not json", a: &Response{Body: []byte("hello")}, b: &Response{Body: []byte("hello")}},
		{name: "invalid json: bytes", a: jsonResp(`{"a":1`), b: jsonResp(`{"a":1 `), want: []string{"body"}},
		{name: "trailing data: bytes", a: jsonResp(`{"a":1} {}`), b: jsonResp(`{"a":1}`), want: []string{"body"}},
		{name: "trailing delimiter: bytes", a: jsonResp(`{"a":1}]`), b: jsonResp(`{"a":1}`), want: []string{"body"}},
		{name: "trailing space is fine", a: jsonResp("{\"a\":1}\n"), b: jsonResp(`{"a":1}`)},
		{name: "empty bodies", a: jsonResp(""), b: jsonResp("")},
		{name: "empty against json", a: jsonResp(""), b: jsonResp("{}"), want: []string{"body"}},
		{name: "truncated: body not compared, status still",
			a:    &Response{Status: 200, Body: []byte("abc"), Truncated: true},
			b:    &Response{Status: 201, Body: []byte("xyz")},
			want: []string{"status"}},
		{name: "both truncated",
			a: &Response{Body: []byte("abc"), Truncated: true}, b: &Response{Body: []byte("xyz"), Truncated: true}},
		{name: "over max body bytes",
			opts: CompareOptions{MaxBodyBytes: 4},
			a:    jsonResp(`{"a":1}`), b: jsonResp(`{"a":2}`)},
		{name: "at max body bytes",
			opts: CompareOptions{MaxBodyBytes: 7},
			a:    jsonResp(`{"a":1}`), b: jsonResp(`{"a":2}`), want: []string{"body.a"}},
		{name: "gzip against identity", a: gzipped(`{"a":1}`), b: jsonResp(`{"a":1}`)},
		{name: "gzip both, differing", a: gzipped(`{"a":1}`), b: gzipped(`{"a":2}`), want: []string{"body.a"}},
		{name: "zlib deflate", a: encoded(t, "deflate", `{"a":1}`), b: jsonResp(`{"a":2}`), want: []string{"body.a"}},
		{name: "raw deflate", a: encoded(t, "raw-deflate", `{"a":1}`), b: jsonResp(`{"a":1}`)},
		{name: "br", a: encoded(t, "br", `{"a":[1]}`), b: jsonResp(`{"a":[2]}`), want: []string{"body.a[*]"}},
		{name: "zstd", a: encoded(t, "zstd", `{"a":1}`), b: encoded(t, "gzip", `{"a":1}`)},
		{name: "stacked codings, last applied first",
			a: func() *Response {
				r := encoded(t, "gzip", `{"a":1}`)
				var buf bytes.Buffer
				w := brotli.NewWriter(&buf)
				w.Write(r.Body)
				w.Close()
				r.Body = buf.Bytes()
				r.Header.Set("Content-Encoding", "gzip, br")
				return r
			}(),
			b: jsonResp(`{"a":1}`)},
		{name: "identity coding", a: with(jsonResp(`{"a":1}`), "Content-Encoding", "identity"), b: jsonResp(`{"a":1}`)},
		{name: "unknown coding: raw bytes",
			a:    with(jsonResp(`{"a":1}`), "Content-Encoding", "compress"),
			b:    with(jsonResp(`{"a":2}`), "Content-Encoding", "compress"),
			want: []string{"body.a"}},
		{name: "broken gzip: raw bytes",
			a: with(jsonResp(`{"a":1}`), "Content-Encoding", "gzip"),
			b: jsonResp(`{"a":1}`)},
		{name: "gzip bomb: not compared",
			a: bomb, b: gzipped(`{"a":2}`)},
		{name: "depth limit: containers at level 64 compared whole",
			a:    jsonResp(deep("1")),
			b:    jsonResp(deep("2")),
			want: []string{"body" + strings.Repeat(".a", maxDepth)}},
		{name: "depth limit, equal", a: jsonResp(deep(`[1.0]`)), b: jsonResp(deep(`[1]`))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewComparer(tt.opts)
			if err != nil {
				t.Fatalf("NewComparer: %v", err)
			}
			got := c.Compare(tt.a, tt.b)
			if !slices.Equal(got, tt.want) {
				t.Errorf("Compare(a, b) = %q, want %q", got, tt.want)
			}
			if back := c.Compare(tt.b, tt.a); !slices.Equal(back, got) {
				t.Errorf("Compare(b, a) = %q, want %q as Compare(a, b)", back, got)
			}
			if same := c.Compare(tt.a, tt.a); same != nil {
				t.Errorf("Compare(a, a) = %q, want none", same)
			}
		})
	}

	t.Run("at most 1000 fields", func(t *testing.T) {
		c, _ := NewComparer(CompareOptions{})
		got := c.Compare(jsonResp(manyKeys(1)), jsonResp(manyKeys(2)))
		if len(got) != maxDiffs {
			t.Errorf("got %d fields, want %d", len(got), maxDiffs)
		}
	})
}

func TestNewComparerErrors(t *testing.T) {
	_, err := NewComparer(CompareOptions{
		Headers:      []string{"Good", "bad name"},
		Ignore:       []string{"body.ok", "body..x", "body[2]"},
		MaxBodyBytes: -1,
	})
	if err == nil {
		t.Fatal("NewComparer: no error, want one")
	}
	for _, want := range []string{
		"max body bytes -1",
		`headers[1] "bad name"`,
		`ignore[1]: parse field path "body..x"`,
		`ignore[2]: parse field path "body[2]"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "body.ok") || strings.Contains(err.Error(), "Good") {
		t.Errorf("error %q names a good entry", err)
	}
}

func TestParsePath(t *testing.T) {
	good := []struct{ path, canonical string }{
		{"status", "status"},
		{"header.Content-Type", "header.Content-Type"},
		{"header.x-request-id", "header.X-Request-Id"},
		{"body", "body"},
		{"body.a", "body.a"},
		{"body.items[*].price", "body.items[*].price"},
		{"body[*][*]", "body[*][*]"},
		{`body["a.b"]`, `body["a.b"]`},
		{`body["abc"]`, "body.abc"},
		{`body[""]`, `body[""]`},
		{`body["say \"hi\""].x`, `body["say \"hi\""].x`},
		{`body["\u00e9\/"]`, `body["é/"]`},   // JSON escapes
		{`body["\x41\tb"]`, `body["A\tb"]`},  // Go escapes
		{`body["]"]["["]`, `body["]"]["["]`}, // brackets inside quotes
		{"body.ok_-9.A", "body.ok_-9.A"},     // identifier characters
		{"body" + strings.Repeat(".a", maxDepth), "body" + strings.Repeat(".a", maxDepth)},
	}
	for _, tt := range good {
		got, err := canonicalPath(tt.path)
		if err != nil {
			t.Errorf("ParsePath(%q): %v", tt.path, err)
		} else if got != tt.canonical {
			t.Errorf("canonical form of %q = %q, want %q", tt.path, got, tt.canonical)
		}
	}
	bad := []struct{ path, why string }{
		{"", "want"},
		{"Status", "want"},
		{"bodyx", "want"},
		{"headers.X", "want"},
		{"header.", "not a token"},
		{"header.bad name", "not a token"},
		{"body.", "byte 5"},
		{"body..a", "byte 5"},
		{"body.a.", "byte 7"},
		{"body.a b", "unexpected"},
		{"body[3]", "[*]"},
		{"body[", "[*]"},
		{`body["a"`, "unterminated"},
		{`body["a"x`, "unterminated"},
		{`body["a\q"]`, "bad string"},
		{"body" + strings.Repeat(".a", maxDepth+1), "deeper than 64"},
	}
	for _, tt := range bad {
		err := ParsePath(tt.path)
		if err == nil {
			t.Errorf("ParsePath(%q): no error, want one", tt.path)
			continue
		}
		if !strings.Contains(err.Error(), fmt.Sprintf("%q", tt.path)) || !strings.Contains(err.Error(), tt.why) {
			t.Errorf("ParsePath(%q) = %q, want the path and %q", tt.path, err, tt.why)
		}
	}
}

func TestValue(t *testing.T) {
	c, err := NewComparer(CompareOptions{MaxBodyBytes: 1 << 10})
	if err != nil {
		t.Fatal(err)
	}
	r := with(jsonResp(`{"price":12.5,"name":"<b>x</b>","obj":{"z":1,"a":[1, 2]},"items":[{"p":1},{},{"p":"2"}],"a.b":null}`),
		"Vary", "Accept")
	r.Header.Add("Vary", "Origin")
	tests := []struct {
		name, path string
		r          *Response
		max        int
		want       string
		ok         bool
	}{
		{"status", "status", r, 0, "200", true},
		{"header values joined", "header.vary", r, 0, "Accept, Origin", true},
		{"header absent", "header.Etag", r, 0, "", false},
		{"number", "body.price", r, 0, "12.5", true},
		{"string, not HTML-escaped", "body.name", r, 0, `"<b>x</b>"`, true},
		{"object, compact and sorted", "body.obj", r, 0, `{"a":[1,2],"z":1}`, true},
		{"through [*]: every value", "body.items[*].p", r, 0, `[1,"2"]`, true},
		{"array elements", "body.obj.a[*]", r, 0, `[1,2]`, true},
		{"quoted key", `body["a.b"]`, r, 0, "null", true},
		{"absent key", "body.nope", r, 0, "", false},
		{"absent below [*]", "body.items[*].q", r, 0, "", false},
		{"not an object", "body.price.x", r, 0, "", false},
		{"body text", "body", jsonResp(`{"a":1}`), 0, `{"a":1}`, true},
		{"decoded body", "body.a", encoded(t, "gzip", `{"a":[true]}`), 0, "[true]", true},
		{"cut with an ellipsis", "body", &Response{Body: []byte("abcdefghij")}, 6, "abc…", true},
		{"cut on a UTF-8 boundary", "body", &Response{Body: []byte("aéééé")}, 7, "aé…", true},
		{"cut too short for the ellipsis", "body", &Response{Body: []byte("abcdef")}, 2, "ab", true},
		{"invalid UTF-8 replaced", "body", &Response{Body: []byte("a\xffb")}, 0, "a\uFFFDb", true},
		{"long body cut", "body", &Response{Body: bytes.Repeat([]byte("x"), 5000)}, 5, "xx…", true},
		{"not json", "body.a", with(jsonResp(`{"a":1}`), "Content-Type", "text/plain"), 0, "", false},
		{"truncated body has no fields", "body.a", &Response{Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(`{"a":1}`), Truncated: true}, 0, "", false},
		{"bad path", "body..a", r, 0, "", false},
		{"nil response", "status", nil, 0, "", false},
	}
	for _, tt := range tests {
		got, ok := c.Value(tt.r, tt.path, tt.max)
		if got != tt.want || ok != tt.ok {
			t.Errorf("%s: Value(%q, %d) = %q, %v; want %q, %v", tt.name, tt.path, tt.max, got, ok, tt.want, tt.ok)
		}
		if tt.max > 0 && len(got) > tt.max {
			t.Errorf("%s: Value(%q, %d) is %d bytes, over the bound", tt.name, tt.path, tt.max, len(got))
		}
	}
}

// FuzzCompare checks that Compare never panics, is reflexive and
// symmetric, and reports only well-formed, canonical paths.
func FuzzCompare(f *testing.F) {
	const js = "application/json"
	for _, s := range []struct{ a, b, ctA, ctB, enc string }{
		{`{"a":1}`, `{"a":1.0}`, js, js, ""},                                  // numbers by value
		{`{"a":1,"b":[1,2]}`, `{"b":[1],"a":"1"}`, js, js, ""},                // type and length
		{`{"a.b":{"c":[{}]}}`, `{"a.b":{"c":[[]]}}`, js, js, ""},              // quoted key, [*]
		{`{"ignored":1}`, `{"ignored":2,"x":null}`, js, js, ""},               // ignore path
		{`[1e400, -0, 0.5]`, `[10e399, 0, 5e-1]`, js, js, ""},                 // exponents
		{`{"a":1} x`, `{"a":1}`, js, js, ""},                                  // trailing data
		{`<html>`, `<html >`, "text/html", "text/html", ""},                   // bytes
		{`{"a":1}`, `{"a":1}`, js, "application/x+json; q=1", ""},             // +json
		{"\x1f\x8b\x08\x00", `{}`, js, js, "gzip"},                            // broken gzip
		{"\x78\x9c\xab\xae\x05\x00\x01\x75\x00\xf9", `{}`, js, js, "deflate"}, // zlib "{}"
		{"", `""`, js, js, "br"},                                              // empty
		{`{"\u0000\"":1}`, `{"\u0000\"":2}`, js, js, "identity"},              // key escapes
	} {
		f.Add([]byte(s.a), []byte(s.b), s.ctA, s.ctB, s.enc)
	}
	c, err := NewComparer(CompareOptions{
		Headers:      []string{"Content-Type"},
		Ignore:       []string{"body.ignored", "body.x[*]"},
		MaxBodyBytes: 1 << 16,
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, bodyA, bodyB []byte, ctA, ctB, enc string) {
		a := &Response{Status: 200, Header: http.Header{"Content-Type": {ctA}, "Content-Encoding": {enc}}, Body: bodyA}
		b := &Response{Status: 200, Header: http.Header{"Content-Type": {ctB}}, Body: bodyB}
		if got := c.Compare(a, a); got != nil {
			t.Fatalf("Compare(a, a) = %q, want none", got)
		}
		ab, ba := c.Compare(a, b), c.Compare(b, a)
		if len(ab) < maxDiffs && !slices.Equal(ab, ba) {
			t.Fatalf("Compare(a, b) = %q, but Compare(b, a) = %q", ab, ba)
		}
		for i, p := range ab {
			if i > 0 && ab[i-1] >= p {
				t.Fatalf("fields %q not sorted or duplicated", ab)
			}
			cp, err := canonicalPath(p)
			if err != nil {
				t.Fatalf("Compare returned %q: %v", p, err)
			}
			if cp != p {
				t.Fatalf("Compare returned %q, not canonical (%q)", p, cp)
			}
			if v, _ := c.Value(a, p, 64); len(v) > 64 {
				t.Fatalf("Value(a, %q, 64) = %q: over the bound", p, v)
			}
		}
	})
}

// benchBody returns a JSON document of about 4 KiB: a product page with
// its offers and reviews.
func benchBody(price string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `{"id":123456,"sku":"SKU-123456","name":"Espresso machine","price":%s,"currency":"EUR",`, price)
	b.WriteString(`"generated_at":"2025-11-25T17:54:00Z","request_id":"7f9c2ba4-e88f-4a2b-9c1d-3c5e8f0a1b2c",`)
	b.WriteString(`"offers":[`)
	for i := range 20 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"seller":"seller-%d","price":%d.99,"stock":%d,"ships_in_days":[1,2,3],"tags":["new","fast"]}`, i, 100+i, i*3)
	}
	b.WriteString(`],"reviews":[`)
	for i := range 18 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"author":"user%d","rating":%d,"text":"Makes good coffee, a little loud in the morning.","helpful":%d}`, i, 1+i%5, i*7)
	}
	b.WriteString(`],"meta":{"page":1,"per_page":12,"total":240,"links":{"self":"/items/123456","next":"/items/123456?page=2"}}}`)
	return []byte(b.String())
}

func BenchmarkCompareJSON(b *testing.B) {
	c, err := NewComparer(CompareOptions{
		Headers: []string{"Content-Type", "Cache-Control"},
		Ignore:  []string{"body.generated_at", "body.request_id"},
	})
	if err != nil {
		b.Fatal(err)
	}
	primary, candidate := jsonResp(""), jsonResp("")
	primary.Body, candidate.Body = benchBody("12.5"), benchBody(`"12.5"`)
	b.SetBytes(int64(len(primary.Body)))
	b.ReportAllocs()
	for b.Loop() {
		if got := c.Compare(primary, candidate); len(got) != 1 {
			b.Fatalf("Compare = %q, want one field", got)
		}
	}
}
