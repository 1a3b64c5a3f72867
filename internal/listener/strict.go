package listener

import (
	"bytes"
	"errors"
	"math"
	"net/url"
	"strings"
)

// This file is the strict HTTP/1.1 message-framing parser. It works on raw
// bytes, before net/http sees them, and refuses everything RFC 9112 calls
// ambiguous framing: the ambiguities a front proxy and the server behind
// it could resolve differently, which is how requests are smuggled.
// net/http is lenient about several of them (it drops Content-Length when
// Transfer-Encoding is chunked, joins obsolete folded lines and takes bare
// LF line endings), so the check cannot be left to it.
//
// The functions here are pure; strictConn (conn.go) drives them as bytes
// arrive.

// FramingError is a request refused by the strict check.
type FramingError struct {
	// Reason says what was wrong, e.g. "bare LF".
	Reason string
}

func (e *FramingError) Error() string { return "strict framing: " + e.Reason }

func framingErr(reason string) error { return &FramingError{Reason: reason} }

// Reasons the checker gives; tests compare against them.
var (
	errBareLF      = framingErr("bare LF line ending (RFC 9112 §2.2)")
	errBareCR      = framingErr("bare CR (RFC 9112 §2.2)")
	errObsFold     = framingErr("obsolete line folding (RFC 9112 §5.2)")
	errSpaceColon  = framingErr("whitespace between field name and colon (RFC 9112 §5.1)")
	errFieldName   = framingErr("invalid character in field name")
	errFieldValue  = framingErr("invalid character in field value (NUL, CR or control)")
	errNoColon     = framingErr("field line without colon")
	errRequestLine = framingErr("malformed request line (RFC 9112 §3)")
	errVersion     = framingErr("unsupported HTTP version; want HTTP/1.1 or HTTP/1.0")
	errTarget      = framingErr("invalid request target")
	errCLAndTE     = framingErr("both Content-Length and Transfer-Encoding (RFC 9112 §6.1)")
	errManyCL      = framingErr("more than one Content-Length (RFC 9110 §8.6)")
	errBadCL       = framingErr("invalid Content-Length")
	errTE          = framingErr("Transfer-Encoding other than exactly \"chunked\" (RFC 9112 §6.3)")
	errTE10        = framingErr("Transfer-Encoding in an HTTP/1.0 request (RFC 9112 §6.1)")
	errManyHost    = framingErr("more than one Host")
	errTrailerKey  = framingErr("Trailer names a framing field")
	errChunkSize   = framingErr("invalid chunk size line (RFC 9112 §7.1)")
	errChunkEnd    = framingErr("chunk data not followed by CRLF (RFC 9112 §7.1)")
)

// errTooLarge is a head or trailer section over the size limit; it gets
// 431 rather than 400.
var errTooLarge = errors.New("request head too large")

// maxChunkLine bounds a chunk-size line with its extensions, as net/http's
// chunked reader does.
const maxChunkLine = 4096

// head is what the strict check learned from one request head.
type head struct {
	method string
	target string
	// path is the target's path as net/url parses it (for the fuzz test).
	path string
	// contentLength is the body length; 0 without a body; -1 when chunked.
	contentLength int64
	chunked       bool
	// expectContinue reports an "Expect: 100-continue": the client waits
	// for the server before sending the body.
	expectContinue bool
	// tunnel reports an Upgrade header or a CONNECT: after the response
	// the connection may carry another protocol.
	tunnel bool
}

// scanSection looks for the empty line that ends a field section (a
// request head or a chunked trailer section) in b, resuming at from. It
// returns the section's length including that line's CRLF, or 0 when the
// section is incomplete, with next the offset to resume from. A bare LF or
// bare CR is an error as soon as it is seen. Resuming keeps a slowly
// dripped head linear to scan.
func scanSection(b []byte, from int) (end, next int, err error) {
	for i := from; i < len(b); i++ {
		switch b[i] {
		case '\r':
			if i+1 == len(b) {
				return 0, i, nil // the LF may come with the next read
			}
			if b[i+1] != '\n' {
				return 0, i, errBareCR
			}
		case '\n':
			if i == 0 || b[i-1] != '\r' {
				return 0, i, errBareLF
			}
			// An empty line: CRLF at the very start or right after a CRLF.
			if i == 1 || (i >= 3 && b[i-2] == '\n') {
				return i + 1, i + 1, nil
			}
		}
	}
	return 0, len(b), nil
}

// checkHead checks the request head at the start of b. It returns the head
// and its length, n == 0 (and no error) when b holds no complete head yet,
// or the first problem found. The head must be at most limit bytes.
func checkHead(b []byte, limit int) (h head, n int, err error) {
	end, _, err := scanSection(b, 0)
	if err != nil {
		return head{}, 0, err
	}
	if end == 0 {
		if len(b) > limit {
			return head{}, 0, errTooLarge
		}
		return head{}, 0, nil
	}
	if end > limit {
		return head{}, 0, errTooLarge
	}
	h, err = parseHead(b[:end])
	return h, end, err
}

// parseHead parses a complete head: the request line, field lines, and the
// empty line, every line ending in CRLF (scanSection has checked the line
// endings).
func parseHead(b []byte) (head, error) {
	line, rest := cutLine(b)
	h, proto, err := parseRequestLine(line)
	if err != nil {
		return head{}, err
	}
	var (
		clCount, teCount, hostCount int
		cl                          int64
		teValue                     []byte
		upgrade                     bool
	)
	// RFC 9112 §2.2: whitespace between the start line and the first field
	// line must be rejected; it is the same check as obs-fold below.
	for len(rest) > 2 {
		line, rest = cutLine(rest)
		name, value, err := parseFieldLine(line)
		if err != nil {
			return head{}, err
		}
		switch {
		case equalFold(name, "content-length"):
			clCount++
			if cl, err = parseContentLength(value); err != nil {
				return head{}, err
			}
		case equalFold(name, "transfer-encoding"):
			teCount++
			teValue = value
		case equalFold(name, "host"):
			hostCount++
		case equalFold(name, "expect"):
			h.expectContinue = expectsContinue(value)
		case equalFold(name, "upgrade"):
			upgrade = true
		case equalFold(name, "trailer"):
			// net/http refuses these in Trailer; refusing them here keeps
			// the two parsers in agreement.
			for k := range bytes.SplitSeq(value, []byte{','}) {
				k = bytes.Trim(k, " \t")
				if equalFold(k, "transfer-encoding") || equalFold(k, "trailer") || equalFold(k, "content-length") {
					return head{}, errTrailerKey
				}
			}
		}
	}
	switch {
	case hostCount > 1:
		return head{}, errManyHost
	case clCount > 0 && teCount > 0:
		// RFC 9112 §6.1: such a message "ought to be handled as an error";
		// a gateway that forwarded it would let the next hop choose.
		return head{}, errCLAndTE
	case clCount > 1:
		// RFC 9110 §8.6 allows accepting identical repeated values; torii
		// refuses every repetition, since no correct client sends one and
		// the next hop might not collapse them the same way.
		return head{}, errManyCL
	case teCount > 1:
		return head{}, errTE
	case teCount == 1 && proto == "HTTP/1.0":
		return head{}, errTE10
	case teCount == 1:
		// RFC 9112 §6.3: chunked must be the final coding; torii (like
		// net/http) supports no other coding, so the value must be exactly
		// "chunked".
		if !equalFold(teValue, "chunked") {
			return head{}, errTE
		}
		h.chunked, h.contentLength = true, -1
	case clCount == 1:
		h.contentLength = cl
	}
	h.tunnel = upgrade || h.method == "CONNECT"
	return h, nil
}

// parseRequestLine parses "method SP request-target SP HTTP-version"
// (RFC 9112 §3): single spaces, a token method, a target of visible ASCII
// that net/url accepts, and HTTP/1.1 or HTTP/1.0.
func parseRequestLine(line []byte) (h head, proto string, err error) {
	method, rest, ok1 := bytes.Cut(line, []byte{' '})
	target, version, ok2 := bytes.Cut(rest, []byte{' '})
	if !ok1 || !ok2 || len(method) == 0 || len(target) == 0 {
		return head{}, "", errRequestLine
	}
	for _, c := range method {
		if !isTchar(c) {
			return head{}, "", errRequestLine
		}
	}
	for _, c := range target {
		if c <= ' ' || c >= 0x7f {
			return head{}, "", errTarget
		}
	}
	switch string(version) {
	case "HTTP/1.1":
		proto = "HTTP/1.1"
	case "HTTP/1.0":
		proto = "HTTP/1.0"
	default:
		return head{}, "", errVersion
	}
	h.method, h.target = methodString(method), string(target)
	if path, ok := plainPath(h.target); ok {
		h.path = path
		return h, proto, nil
	}
	// Parse the target as net/http will, so both agree on what is routed.
	raw := h.target
	authority := h.method == "CONNECT" && !strings.HasPrefix(raw, "/")
	if authority {
		raw = "http://" + raw
	}
	u, err := url.ParseRequestURI(raw)
	if err != nil {
		return head{}, "", errTarget
	}
	h.path = u.Path
	return h, proto, nil
}

// plainPath returns the path of an origin-form target whose path needs
// no escaping ("/a/b?q"), the common case, without the allocations of
// net/url: for such a target url.ParseRequestURI cannot fail (the caller
// has refused control bytes, spaces and non-ASCII), its Path is the
// target up to the first "?", and its RawPath is empty, since escaping
// the path gives it back unchanged. It reports false for anything else,
// which the caller parses with net/url.
func plainPath(target string) (string, bool) {
	if len(target) == 0 || target[0] != '/' {
		return "", false
	}
	path, _, _ := strings.Cut(target, "?")
	for i := 0; i < len(path); i++ {
		if !pathByte[path[i]] {
			return "", false
		}
	}
	return path, true
}

// pathByte marks the bytes net/url leaves unescaped in a path (its
// shouldEscape for encodePath): unreserved characters and the reserved
// ones RFC 3986 §3.3 allows in a path segment.
var pathByte = func() (t [256]bool) {
	for c := range 256 {
		b := byte(c)
		t[c] = 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' ||
			strings.IndexByte("-_.~$&+,/:;=@", b) >= 0
	}
	return t
}()

// methodString returns m as a string, without allocating for the common
// methods.
func methodString(m []byte) string {
	switch string(m) {
	case "GET":
		return "GET"
	case "HEAD":
		return "HEAD"
	case "POST":
		return "POST"
	case "PUT":
		return "PUT"
	case "DELETE":
		return "DELETE"
	case "OPTIONS":
		return "OPTIONS"
	case "PATCH":
		return "PATCH"
	case "CONNECT":
		return "CONNECT"
	}
	return string(m)
}

// parseFieldLine parses "field-name: OWS field-value OWS" (RFC 9112 §5).
func parseFieldLine(line []byte) (name, value []byte, err error) {
	if len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
		return nil, nil, errObsFold
	}
	name, value, ok := bytes.Cut(line, []byte{':'})
	if !ok {
		return nil, nil, errNoColon
	}
	if len(name) == 0 {
		return nil, nil, errFieldName
	}
	for i, c := range name {
		if isTchar(c) {
			continue
		}
		if (c == ' ' || c == '\t') && i > 0 {
			// RFC 9112 §5.1: "No whitespace is allowed between the field
			// name and colon"; a server must reject it with 400.
			return nil, nil, errSpaceColon
		}
		return nil, nil, errFieldName
	}
	for _, c := range value {
		if !isFieldValueByte(c) {
			return nil, nil, errFieldValue
		}
	}
	return name, bytes.Trim(value, " \t"), nil
}

// parseContentLength parses 1*DIGIT (RFC 9110 §8.6) up to 2^63-1.
func parseContentLength(v []byte) (int64, error) {
	if len(v) == 0 {
		return 0, errBadCL
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, errBadCL
		}
		d := int64(c - '0')
		if n > (math.MaxInt64-d)/10 {
			return 0, errBadCL
		}
		n = n*10 + d
	}
	return n, nil
}

// parseChunkLine parses a chunk-size line at the start of b:
//
//	chunk-size [ chunk-ext ] CRLF                        ; RFC 9112 §7.1
//	chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS value ] )
//
// It returns the size and the line's length, n == 0 when the line is not
// complete yet, or an error. The size is 1 to 16 hex digits and at most
// 2^63-1, as net/http accepts.
func parseChunkLine(b []byte) (size int64, n int, err error) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		if len(b) >= maxChunkLine {
			return 0, 0, errChunkSize
		}
		if j := bytes.IndexByte(b, '\r'); j >= 0 && j+1 < len(b) {
			return 0, 0, errBareCR
		}
		return 0, 0, nil
	}
	if i == 0 || b[i-1] != '\r' {
		return 0, 0, errBareLF
	}
	if i+1 > maxChunkLine {
		return 0, 0, errChunkSize
	}
	line := b[:i-1]
	digits := 0
	for digits < len(line) && isHex(line[digits]) {
		digits++
	}
	if digits == 0 || digits > 16 {
		return 0, 0, errChunkSize
	}
	var v uint64
	for _, c := range line[:digits] {
		v = v<<4 | uint64(unhex(c))
	}
	if v > math.MaxInt64 {
		return 0, 0, errChunkSize
	}
	if !validChunkExt(line[digits:]) {
		return 0, 0, errChunkSize
	}
	return int64(v), i + 1, nil
}

// validChunkExt reports whether ext is a well-formed chunk-ext list. torii
// takes the strict form without the optional whitespace (BWS) of RFC 9112
// §7.1.1, *( ";" token [ "=" ( token / quoted-string ) ] ): net/http
// refuses whitespace after the size, and clients send no extensions in
// practice.
func validChunkExt(ext []byte) bool {
	p := 0
	token := func() bool {
		s := p
		for p < len(ext) && isTchar(ext[p]) {
			p++
		}
		return p > s
	}
	for p < len(ext) {
		if ext[p] != ';' {
			return false
		}
		p++
		if !token() {
			return false
		}
		if p < len(ext) && ext[p] == '=' {
			p++
			if p < len(ext) && ext[p] == '"' {
				if !quotedString(ext, &p) {
					return false
				}
			} else if !token() {
				return false
			}
		}
	}
	return true
}

// quotedString consumes a quoted-string (RFC 9110 §5.6.4) at b[*p].
func quotedString(b []byte, p *int) bool {
	i := *p + 1
	for i < len(b) {
		switch c := b[i]; {
		case c == '"':
			*p = i + 1
			return true
		case c == '\\':
			if i+1 == len(b) || !isFieldValueByte(b[i+1]) {
				return false
			}
			i += 2
		case c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x5b) || (c >= 0x5d && c <= 0x7e) || c >= 0x80:
			i++
		default:
			return false
		}
	}
	return false
}

// expectsContinue reports whether an Expect value lists 100-continue;
// empty list elements are ignored (RFC 9110 §5.6.1).
func expectsContinue(v []byte) bool {
	for e := range bytes.SplitSeq(v, []byte{','}) {
		if equalFold(bytes.Trim(e, " \t"), "100-continue") {
			return true
		}
	}
	return false
}

// cutLine splits b at its first CRLF.
func cutLine(b []byte) (line, rest []byte) {
	i := bytes.Index(b, []byte("\r\n"))
	return b[:i], b[i+2:]
}

// isTchar reports whether c may appear in a token (RFC 9110 §5.6.2).
func isTchar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// isFieldValueByte reports whether c may appear in a field value: VCHAR,
// obs-text, SP or HTAB (RFC 9110 §5.5). NUL, CR, LF and other controls may
// not.
func isFieldValueByte(c byte) bool {
	return c == '\t' || (c >= ' ' && c != 0x7f)
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// equalFold reports whether b equals the lower-case ASCII string s,
// ignoring ASCII case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}
