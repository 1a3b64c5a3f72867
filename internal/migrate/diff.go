// Package migrate holds torii's tools for carving a monolith into
// microservices (issue 6, docs/migration.md): shadow.go mirrors traffic to
// a candidate upstream; diff.go compares the primary's and the
// candidate's responses and noise.go tells real differences from noise;
// compare.go keeps the results in the store; rollout.go moves live
// traffic to the candidate step by step, gated on its burn rate and diff
// rate.
//
// # Field paths
//
// A difference between two responses is named by a field path:
//
//	status                 the HTTP status
//	header.<Name>          a compared header, canonical name (header.Content-Type)
//	body                   the body: a non-JSON body, or a JSON root of another type
//	body.<key>             a member of a JSON object, key [A-Za-z0-9_-]+
//	body["<key>"]          any other key, quoted as in JSON (and Go): body["a.b"]
//	body.<key>[*]          the elements of a JSON array, whatever their index
//
// Segments chain: body.items[*].price, body["x y"][*][*].id. Every array
// index is collapsed to [*], so a change at items[3].price and at
// items[7].price is the one field body.items[*].price; arrays of different
// lengths are compared over their common prefix and the length difference
// is reported at the array's own path (body.items). A member present on
// one side only is reported at its path; two values of different JSON
// types (number and string, object and array, null and anything) are
// reported where they meet, not below. Numbers compare by value (1.0 ==
// 1 == 1e0), strings byte for byte.
//
// An ignore path drops the field it names and every field below it:
// "body.meta" drops body.meta.generated_at, "body.items[*].etag" drops the
// etag of every element (the length of items is still compared, at
// body.items). Header names in paths are case-insensitive.
//
// # Bodies
//
// Bodies are compared after their Content-Encoding is undone (gzip,
// deflate, br, zstd; an unknown or broken coding leaves the bytes as they
// came), as JSON when both responses have a JSON media type
// (application/json or */*+json) and both bodies parse as one JSON value,
// and as bytes otherwise, the single field body. A body that cannot be
// compared whole, because it was truncated at capture or is larger than
// CompareOptions.MaxBodyBytes once decoded, is not compared at all:
// nothing is reported for it, and status and headers are still compared.
package migrate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/net/http/httpguts"
)

// Limits of one comparison.
const (
	defaultMaxBodyBytes = 1 << 20
	// maxDepth is the deepest JSON level compared member by member (the
	// root is level 0); two containers at this level that differ are one
	// field.
	maxDepth = 64
	// maxDiffs is the most fields one comparison reports; it stops there.
	maxDiffs = 1000
	// maxCodings is the most content codings undone on one body; a body
	// with more is compared as it came.
	maxCodings = 4
	// zstdMaxWindow is the largest zstd window accepted: RFC 9659 caps it
	// at 8 MiB for the zstd content coding.
	zstdMaxWindow = 8 << 20
)

// Response is a captured response to compare.
type Response struct {
	// Status is the HTTP status code.
	Status int
	// Header is the response header; nil is empty.
	Header http.Header
	// Body is the body as received (possibly content-encoded), at most the
	// capture bound.
	Body []byte
	// Truncated reports whether the body was longer than the capture
	// bound, so that Body holds only its prefix.
	Truncated bool
}

// CompareOptions configure a Comparer. They come from a validated config.
type CompareOptions struct {
	// Headers are the names of the response headers compared,
	// case-insensitive. Empty: no header is compared.
	Headers []string
	// Ignore are field paths never compared nor reported, each with
	// everything below it, e.g. "body.meta.generated_at",
	// "body.items[*].etag", "header.Date" (see the package doc). Empty:
	// nothing is ignored.
	Ignore []string
	// MaxBodyBytes bounds a body once decoded (decompressed), in bytes; a
	// larger body is not compared. Zero means 1 MiB.
	MaxBodyBytes int
}

// Comparer compares responses field by field. It is immutable and safe
// for concurrent use.
type Comparer struct {
	headers []headerField
	ignore  map[string]bool // canonical field paths; nil when none
	maxBody int
}

// headerField is a compared header.
type headerField struct {
	name string // canonical
	path string // "header." + name
}

// NewComparer checks o and returns its Comparer. The error names every
// bad header name and ignore path, and why it is bad.
func NewComparer(o CompareOptions) (*Comparer, error) {
	var errs []error
	c := &Comparer{maxBody: o.MaxBodyBytes}
	switch {
	case o.MaxBodyBytes < 0:
		errs = append(errs, fmt.Errorf("max body bytes %d: negative", o.MaxBodyBytes))
	case o.MaxBodyBytes == 0:
		c.maxBody = defaultMaxBodyBytes
	}
	for i, h := range o.Headers {
		if !httpguts.ValidHeaderFieldName(h) {
			errs = append(errs, fmt.Errorf("headers[%d] %q: not a header field name (RFC 9110 §5.1)", i, h))
			continue
		}
		name := http.CanonicalHeaderKey(h)
		if !slices.ContainsFunc(c.headers, func(f headerField) bool { return f.name == name }) {
			c.headers = append(c.headers, headerField{name: name, path: "header." + name})
		}
	}
	for i, p := range o.Ignore {
		cp, err := canonicalPath(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("ignore[%d]: %w", i, err))
			continue
		}
		if c.ignore == nil {
			c.ignore = make(map[string]bool)
		}
		c.ignore[cp] = true
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("build comparer: %w", err)
	}
	return c, nil
}

// Compare returns the field paths where a and b differ, sorted and
// without duplicates, at most 1000 of them; nil when they do not differ.
// A nil response is an empty one. It never panics, whatever the input.
func (c *Comparer) Compare(a, b *Response) []string {
	if a == nil {
		a = &Response{}
	}
	if b == nil {
		b = &Response{}
	}
	d := differ{ignore: c.ignore}
	if a.Status != b.Status {
		d.add("status")
	}
	for _, h := range c.headers {
		if !slices.Equal(a.Header.Values(h.name), b.Header.Values(h.name)) {
			d.add(h.path)
		}
	}
	if !c.ignore["body"] {
		c.compareBody(&d, a, b)
	}
	if len(d.found) == 0 {
		return nil
	}
	out := make([]string, 0, len(d.found))
	for p := range d.found {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// compareBody adds the body's differences to d.
func (c *Comparer) compareBody(d *differ, a, b *Response) {
	ba, okA := c.decoded(a)
	bb, okB := c.decoded(b)
	if !okA || !okB || bytes.Equal(ba, bb) {
		return
	}
	if isJSON(a.Header) && isJSON(b.Header) {
		va, okA := parseJSON(ba)
		vb, okB := parseJSON(bb)
		if okA && okB {
			d.path = append(d.path[:0], "body"...)
			d.walk(va, vb, 0)
			return
		}
	}
	d.add("body")
}

// differ collects the differing fields of one comparison.
type differ struct {
	ignore map[string]bool
	path   []byte              // the current JSON field path
	found  map[string]struct{} // nil until the first difference
}

// add records the field path p unless it is ignored or the limit is
// reached.
func (d *differ) add(p string) {
	if d.ignore[p] || len(d.found) >= maxDiffs {
		return
	}
	if d.found == nil {
		d.found = make(map[string]struct{})
	}
	d.found[p] = struct{}{}
}

// mark records the current path d.path, unless it is ignored.
func (d *differ) mark() {
	if _, ok := d.found[string(d.path)]; !ok { // no allocation when known
		d.add(string(d.path))
	}
}

// walk compares the JSON values a and b at d.path, depth levels below the
// root. Ignored paths are skipped with everything below them, which makes
// an ignore path match as a prefix on a segment boundary.
func (d *differ) walk(a, b any, depth int) {
	if len(d.found) >= maxDiffs || d.ignore[string(d.path)] {
		return
	}
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || (depth == maxDepth && !jsonEqual(x, y)) {
			d.mark()
			return
		}
		if depth == maxDepth {
			return
		}
		n := len(d.path)
		for k, xv := range x {
			d.path = appendKey(d.path[:n], k)
			if yv, ok := y[k]; ok {
				d.walk(xv, yv, depth+1)
			} else {
				d.mark()
			}
		}
		for k := range y {
			if _, ok := x[k]; !ok {
				d.path = appendKey(d.path[:n], k)
				d.mark()
			}
		}
		d.path = d.path[:n]
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) || (depth == maxDepth && !jsonEqual(x, y)) {
			d.mark()
		}
		if !ok || depth == maxDepth {
			return
		}
		n := len(d.path)
		d.path = append(d.path, "[*]"...)
		for i := range min(len(x), len(y)) {
			d.walk(x[i], y[i], depth+1)
		}
		d.path = d.path[:n]
	default:
		if !jsonEqual(a, b) {
			d.mark()
		}
	}
}

// jsonEqual reports whether the decoded JSON values a and b are equal,
// numbers by value. Its recursion is bounded by encoding/json's own
// nesting limit.
func jsonEqual(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, xv := range x {
			yv, ok := y[k]
			if !ok || !jsonEqual(xv, yv) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !jsonEqual(x[i], y[i]) {
				return false
			}
		}
		return true
	case json.Number:
		y, ok := b.(json.Number)
		return ok && numberEqual(string(x), string(y))
	case string:
		y, ok := b.(string)
		return ok && x == y
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case nil:
		return b == nil
	}
	return false
}

// numberEqual reports whether the JSON numbers a and b have the same
// value. Both are brought to the unique form ±digits × 10^exp with no
// leading or trailing zero digit, without arithmetic on the value, so
// 1e999999999 costs no more than 1. An exponent of more than 18 digits
// is beyond that form: such a number equals only its own spelling.
func numberEqual(a, b string) bool {
	if a == b {
		return true
	}
	x, okA := parseDecimal(a)
	y, okB := parseDecimal(b)
	return okA && okB && x == y
}

// decimal is a number as ±digits × 10^exp; zero is the zero decimal.
type decimal struct {
	neg    bool
	digits string // no leading or trailing '0'
	exp    int64
}

// parseDecimal parses the JSON number s (RFC 8259 §6).
func parseDecimal(s string) (decimal, bool) {
	var d decimal
	if strings.HasPrefix(s, "-") {
		d.neg, s = true, s[1:]
	}
	mant, exp := s, ""
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		mant, exp = s[:i], s[i+1:]
	}
	intPart, frac, _ := strings.Cut(mant, ".")
	if !allDigits(intPart) || (frac != "" && !allDigits(frac)) {
		return d, false
	}
	var e int64
	if exp != "" {
		neg := strings.HasPrefix(exp, "-")
		exp = strings.TrimLeft(strings.TrimPrefix(strings.TrimPrefix(exp, "+"), "-"), "0")
		if len(exp) > 18 || (exp != "" && !allDigits(exp)) {
			return d, false
		}
		e, _ = strconv.ParseInt("0"+exp, 10, 64) // at most 18 digits: fits
		if neg {
			e = -e
		}
	}
	digits := strings.TrimLeft(intPart+frac, "0")
	trimmed := strings.TrimRight(digits, "0")
	if trimmed == "" {
		return decimal{}, true // ±0
	}
	// The value is trimmed × 10^(e − len(frac) + the zeros trimmed off
	// its end); |e| < 10^18 and the rest is bounded by the body's size.
	d.digits = trimmed
	d.exp = e - int64(len(frac)) + int64(len(digits)-len(trimmed))
	return d, true
}

// allDigits reports whether s is one or more ASCII digits.
func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// parseJSON decodes b as exactly one JSON value, numbers as json.Number.
func parseJSON(b []byte) (any, bool) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF { // trailing data
		return nil, false
	}
	return v, true
}

// isJSON reports whether h's Content-Type is a JSON media type:
// application/json or a +json structured syntax suffix (RFC 6839 §3.1),
// parameters ignored.
func isJSON(h http.Header) bool {
	mt, _, _ := strings.Cut(h.Get("Content-Type"), ";")
	mt = strings.TrimSpace(mt)
	if strings.EqualFold(mt, "application/json") {
		return true
	}
	typ, sub, ok := strings.Cut(mt, "/")
	return ok && typ != "" && len(sub) > len("+json") &&
		strings.EqualFold(sub[len(sub)-len("+json"):], "+json")
}

// decoded returns r's body with its content codings undone, and whether
// it is whole: false when it was truncated at capture or is over the
// bound once decoded. An unknown or broken coding leaves the body as it
// came.
func (c *Comparer) decoded(r *Response) ([]byte, bool) {
	if r.Truncated {
		return r.Body, false
	}
	b := r.Body
	if codings := r.Header.Values("Content-Encoding"); len(codings) > 0 {
		out, err := decode(b, codings, c.maxBody)
		switch {
		case errors.Is(err, errTooLarge):
			return out, false
		case err == nil:
			b = out
		}
	}
	return b, len(b) <= c.maxBody
}

// errTooLarge is a decoded body over the bound.
var errTooLarge = errors.New("decoded body over the bound")

// decode undoes the content codings listed in the Content-Encoding field
// values codings, last applied first (RFC 9110 §8.4), each layer at most
// limit bytes. Over it, decode returns the first limit bytes and
// errTooLarge.
func decode(body []byte, codings []string, limit int) (out []byte, err error) {
	var list []string
	for _, v := range codings {
		for c := range strings.SplitSeq(v, ",") {
			c = strings.ToLower(strings.TrimSpace(c))
			if c != "" && c != "identity" {
				list = append(list, c)
			}
		}
	}
	if len(list) > maxCodings {
		return nil, fmt.Errorf("decode body: %d content codings", len(list))
	}
	// The decompressors are third-party code fed bytes from upstreams;
	// a panic in one must not take the gateway down.
	defer func() {
		if p := recover(); p != nil {
			out, err = nil, fmt.Errorf("decode body: panic: %v", p)
		}
	}()
	out = body
	for i := len(list) - 1; i >= 0; i-- {
		if out, err = decodeOne(out, list[i], limit); err != nil {
			return out, err
		}
	}
	return out, nil
}

// gzipReaders are gzip readers for reuse: a new one allocates tens of
// KiB, more than a comparison of a small JSON body.
var gzipReaders sync.Pool // of *gzip.Reader

// decodeOne undoes the content coding coding of b.
func decodeOne(b []byte, coding string, limit int) ([]byte, error) {
	switch coding {
	case "gzip", "x-gzip": // x-gzip: RFC 9110 §8.4.1.3
		zr, _ := gzipReaders.Get().(*gzip.Reader)
		var err error
		if zr == nil {
			zr, err = gzip.NewReader(bytes.NewReader(b))
		} else {
			err = zr.Reset(bytes.NewReader(b))
		}
		if err != nil {
			return nil, fmt.Errorf("decode gzip: %w", err)
		}
		defer gzipReaders.Put(zr) // Reset makes it new again
		return readAll(zr, limit, len(b))
	case "deflate":
		// RFC 9110 §8.4.1.2: deflate is the zlib format, but servers have
		// long sent raw deflate under the name; accept both.
		if zr, err := zlib.NewReader(bytes.NewReader(b)); err == nil {
			out, err := readAll(zr, limit, len(b))
			if err == nil || errors.Is(err, errTooLarge) {
				return out, err
			}
		}
		return readAll(flate.NewReader(bytes.NewReader(b)), limit, len(b))
	case "br":
		return readAll(brotli.NewReader(bytes.NewReader(b)), limit, len(b))
	case "zstd":
		zr, err := zstd.NewReader(bytes.NewReader(b),
			zstd.WithDecoderConcurrency(1), // synchronous: no goroutines
			zstd.WithDecoderMaxWindow(zstdMaxWindow),
			zstd.WithDecoderMaxMemory(zstdMaxWindow),
			zstd.WithDecoderLowmem(true))
		if err != nil {
			return nil, fmt.Errorf("decode zstd: %w", err)
		}
		defer zr.Close()
		return readAll(zr, limit, len(b))
	}
	return nil, fmt.Errorf("decode body: unknown content coding %q", coding)
}

// readAll reads r to its end, at most limit bytes: beyond, it returns the
// first limit bytes and errTooLarge. It never allocates a buffer over
// limit+1 bytes; hint is the compressed size, to size the first one.
func readAll(r io.Reader, limit, hint int) ([]byte, error) {
	buf := make([]byte, 0, min(limit+1, max(512, 4*hint)))
	for idle := 0; ; {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(cap(buf), limit+1-cap(buf)))
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		switch {
		case len(buf) > limit:
			return buf[:limit], errTooLarge
		case err == io.EOF:
			return buf, nil
		case err != nil:
			return nil, fmt.Errorf("read decoded body: %w", err)
		case n > 0:
			idle = 0
		default:
			if idle++; idle == 100 { // as bufio does
				return nil, fmt.Errorf("read decoded body: %w", io.ErrNoProgress)
			}
		}
	}
}

// Value returns the rendering of response r's value at field path, and
// whether the field exists in r. A status renders as digits, a header as
// its values joined by ", ", "body" as the decoded body's text (invalid
// UTF-8 replaced by U+FFFD), and a JSON body field as compact JSON with
// object members sorted by key; a path through [*] renders the values at
// every index where it exists, in order, as a JSON array. The rendering
// is cut to at most max bytes on a UTF-8 boundary, ending in "…"; max of
// zero or less means no bound. It is meant for diff samples.
func (c *Comparer) Value(r *Response, path string, max int) (string, bool) {
	if r == nil {
		return "", false
	}
	p, err := parsePath(path)
	if err != nil {
		return "", false
	}
	switch p.kind {
	case "status":
		return cut(strconv.Itoa(r.Status), max), true
	case "header":
		vs := r.Header.Values(p.header)
		if len(vs) == 0 {
			return "", false
		}
		return cut(strings.Join(vs, ", "), max), true
	}
	b, whole := c.decoded(r)
	if len(p.segs) == 0 {
		if max > 0 && len(b) > max+utf8.UTFMax {
			b = b[:max+utf8.UTFMax] // enough for cut to see it is longer
		}
		return cut(strings.ToValidUTF8(string(b), "\uFFFD"), max), true
	}
	if !whole || !isJSON(r.Header) {
		return "", false
	}
	v, ok := parseJSON(b)
	if !ok {
		return "", false
	}
	vals, wild := []any{v}, false
	for _, s := range p.segs {
		var next []any
		for _, val := range vals {
			if s.wild {
				if arr, ok := val.([]any); ok {
					next = append(next, arr...)
				}
			} else if obj, ok := val.(map[string]any); ok {
				if m, ok := obj[s.key]; ok {
					next = append(next, m)
				}
			}
		}
		vals, wild = next, wild || s.wild
	}
	if len(vals) == 0 {
		return "", false
	}
	var out any = vals
	if !wild {
		out = vals[0]
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if enc.Encode(out) != nil {
		return "", false
	}
	return cut(strings.TrimSuffix(buf.String(), "\n"), max), true
}

// cut returns s cut to at most max bytes on a UTF-8 boundary, ending in
// "…" when it is cut (and max leaves room for it). Zero or less: s.
func cut(s string, max int) string {
	if max <= 0 || len(s) <= max {
		return s
	}
	const ellipsis = "…"
	n, tail := max-len(ellipsis), ellipsis
	if n < 0 {
		n, tail = max, ""
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + tail
}

// ParsePath checks the field path p (see the package doc) and returns an
// error describing the problem, nil when it is well formed.
func ParsePath(p string) error {
	_, err := parsePath(p)
	return err
}

// canonicalPath returns the field path p as Compare would write it.
func canonicalPath(p string) (string, error) {
	fp, err := parsePath(p)
	if err != nil {
		return "", err
	}
	return fp.String(), nil
}

// fieldPath is a parsed field path.
type fieldPath struct {
	kind   string // "status", "header" or "body"
	header string // canonical; kind "header"
	segs   []segment
}

// segment is one step below body: an object key or [*].
type segment struct {
	key  string
	wild bool
}

// String returns the canonical spelling of p.
func (p fieldPath) String() string {
	switch p.kind {
	case "header":
		return "header." + p.header
	case "body":
		b := []byte("body")
		for _, s := range p.segs {
			if s.wild {
				b = append(b, "[*]"...)
			} else {
				b = appendKey(b, s.key)
			}
		}
		return string(b)
	}
	return p.kind
}

// parsePath parses the field path p.
func parsePath(p string) (fieldPath, error) {
	fail := func(format string, args ...any) (fieldPath, error) {
		return fieldPath{}, fmt.Errorf("parse field path %q: %s", p, fmt.Sprintf(format, args...))
	}
	switch {
	case p == "status":
		return fieldPath{kind: "status"}, nil
	case strings.HasPrefix(p, "header."):
		name := p[len("header."):]
		if !httpguts.ValidHeaderFieldName(name) {
			return fail("header name %q is not a token (RFC 9110 §5.1)", name)
		}
		return fieldPath{kind: "header", header: http.CanonicalHeaderKey(name)}, nil
	case p != "body" && !strings.HasPrefix(p, "body.") && !strings.HasPrefix(p, "body["):
		return fail(`want "status", "header.<Name>", "body" or "body" followed by .key, ["key"] or [*]`)
	}
	fp := fieldPath{kind: "body"}
	for i := len("body"); i < len(p); {
		if len(fp.segs) == maxDepth {
			return fail("deeper than %d levels, the most compared", maxDepth)
		}
		switch {
		case p[i] == '.':
			j := i + 1
			for j < len(p) && identByte(p[j]) {
				j++
			}
			if j == i+1 {
				return fail(`byte %d: want a key of [A-Za-z0-9_-] after ".", or write it ["key"]`, i+1)
			}
			fp.segs = append(fp.segs, segment{key: p[i+1 : j]})
			i = j
		case strings.HasPrefix(p[i:], "[*]"):
			fp.segs = append(fp.segs, segment{wild: true})
			i += len("[*]")
		case strings.HasPrefix(p[i:], `["`):
			end := closingQuote(p, i+1)
			if end < 0 || end+1 >= len(p) || p[end+1] != ']' {
				return fail(`byte %d: unterminated ["key"]`, i)
			}
			key, ok := unquote(p[i+1 : end+1])
			if !ok {
				return fail("byte %d: bad string %s", i+1, p[i+1:end+1])
			}
			fp.segs = append(fp.segs, segment{key: key})
			i = end + 2
		case p[i] == '[':
			return fail(`byte %d: want [*] (array indexes are not compared one by one) or ["key"]`, i)
		default:
			return fail(`byte %d: unexpected %q, want ".", "[" or the end`, i, p[i])
		}
	}
	return fp, nil
}

// closingQuote returns the index of the quote that closes the string
// whose opening quote is at p[i], or -1.
func closingQuote(p string, i int) int {
	for j := i + 1; j < len(p); j++ {
		switch p[j] {
		case '\\':
			j++
		case '"':
			return j
		}
	}
	return -1
}

// unquote decodes the double-quoted string q, as JSON or as Go.
func unquote(q string) (string, bool) {
	var s string
	if json.Unmarshal([]byte(q), &s) == nil {
		return s, true
	}
	s, err := strconv.Unquote(q)
	return s, err == nil && utf8.ValidString(s)
}

// identByte reports whether b may appear in a key written after ".".
func identByte(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '_' || b == '-'
}

// appendKey appends the path segment of object key k: .k when k is a
// plain identifier, else ["k"], quoted so that both JSON and Go read it
// back.
func appendKey(b []byte, k string) []byte {
	plain := k != ""
	for i := 0; i < len(k) && plain; i++ {
		plain = identByte(k[i])
	}
	if plain {
		return append(append(b, '.'), k...)
	}
	b = append(b, `["`...)
	for _, r := range k { // an invalid byte becomes U+FFFD
		switch {
		case r == '"' || r == '\\':
			b = append(b, '\\', byte(r))
		case r == '\n':
			b = append(b, `\n`...)
		case r == '\r':
			b = append(b, `\r`...)
		case r == '\t':
			b = append(b, `\t`...)
		case r < 0x20 || r == 0x7f:
			b = fmt.Appendf(b, `\u%04x`, r)
		default:
			b = utf8.AppendRune(b, r)
		}
	}
	return append(b, `"]`...)
}
