package upstream

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// The strict HTTP/1.1 response reader of the lean transport (h1.go). An
// upstream's response head and framing are parsed by RFC 9112 with no
// leniency where leniency lets two parties disagree on where a message
// ends (§6.3, §11.2): torii relays the body it frames, so a response an
// upstream framed ambiguously is refused (502), never guessed at.

// ErrResponseFraming is wrapped by every refusal of an upstream response's
// head or framing; the proxy answers it with 502.
var ErrResponseFraming = errors.New("malformed upstream response")

// framingError returns an error wrapping ErrResponseFraming.
func framingError(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrResponseFraming, fmt.Sprintf(format, args...))
}

// maxInterim bounds the interim (1xx) responses skipped before a final
// one, as net/http's client does.
const maxInterim = 5

// responseHead is a parsed response head.
type responseHead struct {
	major, minor int // HTTP version
	status       int
	reason       string
	header       http.Header
	length       int64 // Content-Length; -1: none
	chunked      bool
	close        bool // Connection: close, or HTTP/1.0 without keep-alive
}

// headReader reads response heads from br, at most limit bytes each.
type headReader struct {
	br    *bufio.Reader
	limit int
	n     int    // bytes of the current head so far
	long  []byte // a line longer than br's buffer, assembled
	vals  []byte // the field values of the head being read
}

// line returns the next line of the head without its CRLF. It refuses a
// bare LF or CR and a head over the limit. The slice is valid until the
// next call.
func (h *headReader) line() ([]byte, error) {
	b, err := h.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		h.long = append(h.long[:0], b...)
		for errors.Is(err, bufio.ErrBufferFull) {
			if h.n+len(h.long) > h.limit {
				return nil, framingError("response head over %d bytes", h.limit)
			}
			b, err = h.br.ReadSlice('\n')
			h.long = append(h.long, b...)
		}
		b = h.long
	}
	h.n += len(b)
	if err != nil {
		if err == io.EOF && h.n > 0 {
			err = io.ErrUnexpectedEOF // cut inside a head
		}
		return nil, err
	}
	if h.n > h.limit {
		return nil, framingError("response head over %d bytes", h.limit)
	}
	if len(b) < 2 || b[len(b)-2] != '\r' {
		return nil, framingError("bare LF in response head")
	}
	b = b[:len(b)-2]
	if bytes.IndexByte(b, '\r') >= 0 {
		return nil, framingError("bare CR in response head")
	}
	return b, nil
}

// read reads one response head (interim or final) from the reader into
// rh, which the caller provides so it need not live on the heap.
func (h *headReader) read(rh *responseHead) error {
	h.n = 0
	line, err := h.line()
	if err != nil {
		return err
	}
	if err := parseStatusLine(line, rh); err != nil {
		return err
	}
	rh.header = NewHeader(8) // the proxy recycles it (RecycleHeader)
	return h.fields(rh.header)
}

// fields reads field lines up to the empty line into hdr. The values
// share one string and the header's value slices one array, so a head
// costs two allocations however many fields it has (and one for each
// name that is not a common one).
func (h *headReader) fields(hdr http.Header) error {
	type span struct {
		name     string
		from, to int
	}
	var spans [16]span
	sp := spans[:0]
	h.vals = h.vals[:0]
	for {
		line, err := h.line()
		if err != nil {
			return err
		}
		if len(line) == 0 {
			break
		}
		name, value, err := parseFieldBytes(line)
		if err != nil {
			return err
		}
		sp = append(sp, span{name, len(h.vals), len(h.vals) + len(value)})
		h.vals = append(h.vals, value...)
	}
	if len(sp) == 0 {
		return nil
	}
	all := string(h.vals)
	// Made to the head's size: the slices outlive the response (a
	// proxy hands them on), so they cannot share its reused memory.
	arr := make([]string, len(sp))
	for i, f := range sp {
		v := all[f.from:f.to]
		if old, ok := hdr[f.name]; ok {
			hdr[f.name] = append(old, v)
			continue
		}
		arr[i] = v
		hdr[f.name] = arr[i : i+1 : i+1]
	}
	return nil
}

// parseStatusLine parses "HTTP/1.x SP 3DIGIT [SP reason]" (RFC 9112 §4).
func parseStatusLine(b []byte, rh *responseHead) error {
	if len(b) < 12 || string(b[:7]) != "HTTP/1." || b[8] != ' ' {
		return framingError("bad status line %q", clip(b))
	}
	*rh = responseHead{major: 1, length: -1}
	switch b[7] {
	case '0':
		rh.minor = 0
	case '1':
		rh.minor = 1
	default:
		return framingError("unsupported version in status line %q", clip(b))
	}
	code := b[9:12]
	if code[0] < '1' || code[0] > '5' || !isDigit(code[1]) || !isDigit(code[2]) {
		return framingError("bad status code in %q", clip(b))
	}
	rh.status = int(code[0]-'0')*100 + int(code[1]-'0')*10 + int(code[2]-'0')
	if len(b) > 12 {
		if b[12] != ' ' {
			return framingError("bad status line %q", clip(b))
		}
		reason := b[13:]
		for _, c := range reason {
			if c < ' ' && c != '\t' || c == 0x7f {
				return framingError("control character in reason phrase")
			}
		}
		rh.reason = reasonString(rh.status, reason)
	}
	return nil
}

// reasonString returns reason as a string, without allocating for the
// standard phrase of status.
func reasonString(status int, reason []byte) string {
	if std := http.StatusText(status); std == string(reason) {
		return std
	}
	return string(reason)
}

// parseFieldBytes parses one field line (RFC 9112 §5): a token, a colon right
// after it, the value with optional whitespace around it. An obs-fold
// line (starting with whitespace, §5.2) is refused, as is a control
// character in the value. The value is a slice of line.
func parseFieldBytes(line []byte) (string, []byte, error) {
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		if len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
			return "", nil, framingError("obs-fold in response head")
		}
		return "", nil, framingError("field line without a name: %q", clip(line))
	}
	name := line[:colon]
	for _, c := range name {
		if !isTokenChar(c) {
			if c == ' ' || c == '\t' {
				if name[0] == ' ' || name[0] == '\t' {
					return "", nil, framingError("obs-fold in response head")
				}
				return "", nil, framingError("whitespace before colon in field %q", clip(name))
			}
			return "", nil, framingError("bad field name %q", clip(name))
		}
	}
	value := line[colon+1:]
	for len(value) > 0 && (value[0] == ' ' || value[0] == '\t') {
		value = value[1:]
	}
	for len(value) > 0 && (value[len(value)-1] == ' ' || value[len(value)-1] == '\t') {
		value = value[:len(value)-1]
	}
	for _, c := range value {
		if c < ' ' && c != '\t' || c == 0x7f {
			return "", nil, framingError("control character in field %q", clip(name))
		}
	}
	return canonicalKey(name), value, nil
}

// framing settles rh's body framing from its fields (RFC 9112 §6), for a
// response to method: the length, chunked, or neither (read to close). It
// refuses what could be read two ways: Content-Length beside
// Transfer-Encoding, Content-Length given twice or as a list, a length
// that is not all digits, and any Transfer-Encoding but a lone "chunked"
// (a coding torii cannot frame, or one in HTTP/1.0, §6.1).
func (rh *responseHead) framing(method string) error {
	te, hasTE := rh.header["Transfer-Encoding"]
	cl, hasCL := rh.header["Content-Length"]
	switch {
	case hasTE && hasCL:
		return framingError("both Content-Length and Transfer-Encoding")
	case hasTE:
		if rh.minor == 0 {
			return framingError("Transfer-Encoding in an HTTP/1.0 response")
		}
		if len(te) != 1 || !strings.EqualFold(te[0], "chunked") {
			return framingError("Transfer-Encoding %q: only chunked is supported", strings.Join(te, ", "))
		}
		// The coding is this hop's: the relayed body is dechunked.
		delete(rh.header, "Transfer-Encoding")
		rh.chunked = true
	case hasCL:
		if len(cl) != 1 {
			return framingError("Content-Length given %d times", len(cl))
		}
		n, ok := parseLength(cl[0])
		if !ok {
			return framingError("bad Content-Length %q", clip([]byte(cl[0])))
		}
		rh.length = n
	}
	conn := rh.header["Connection"]
	switch {
	case hasToken(conn, "close"):
		rh.close = true
	case rh.minor == 0 && !hasToken(conn, "keep-alive"):
		rh.close = true
	}
	if !rh.hasBody(method) {
		rh.chunked = false
	} else if !rh.chunked && rh.length < 0 {
		// Delimited by the connection's close (§6.3 rule 8).
		rh.close = true
	}
	return nil
}

// hasBody reports whether the response carries a body (RFC 9112 §6.3
// rules 1 and 2 for the status, RFC 9110 §9.3.2 for HEAD).
func (rh *responseHead) hasBody(method string) bool {
	switch {
	case method == http.MethodHead,
		rh.status < 200,
		rh.status == http.StatusNoContent,
		rh.status == http.StatusNotModified:
		return false
	}
	return true
}

// parseLength parses a Content-Length value: 1 to 18 digits, nothing
// else (no sign, no space, no list).
func parseLength(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return 0, false
		}
		n = n*10 + int64(s[i]-'0')
	}
	return n, true
}

// hasToken reports whether the comma-separated lists in values hold
// token, case-insensitively.
func hasToken(values []string, token string) bool {
	for _, v := range values {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// chunkedReader decodes a chunked body (RFC 9112 §7.1) strictly: hex
// sizes without sign or overflow, extensions without control characters,
// CRLF after every size line and chunk, and a trailer section parsed like
// a head. At the end it merges the trailer fields into *trailer.
type chunkedReader struct {
	hr       *headReader
	remain   int64 // bytes left in the current chunk's data
	needCRLF bool  // a chunk's data was read; its CRLF was not
	done     bool
	trailer  *http.Header
}

func (c *chunkedReader) Read(p []byte) (int, error) {
	if c.done {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if c.remain == 0 {
		if err := c.next(); err != nil {
			return 0, err
		}
		if c.done {
			return 0, io.EOF
		}
	}
	if int64(len(p)) > c.remain {
		p = p[:c.remain]
	}
	n, err := c.hr.br.Read(p)
	c.remain -= int64(n)
	if c.remain == 0 {
		c.needCRLF = true
	}
	return n, unexpected(err)
}

// next reads the CRLF ending the previous chunk, if any, and the next
// chunk-size line; after the last chunk, the trailer section.
func (c *chunkedReader) next() error {
	br := c.hr.br
	if c.needCRLF {
		cr, err := br.ReadByte()
		if err != nil {
			return unexpected(err)
		}
		lf, err := br.ReadByte()
		if err != nil {
			return unexpected(err)
		}
		if cr != '\r' || lf != '\n' {
			return framingError("chunk data not followed by CRLF")
		}
		c.needCRLF = false
	}
	c.hr.n = 0
	line, err := c.hr.line()
	if err != nil {
		return unexpected(err)
	}
	size, err := parseChunkSize(line)
	if err != nil {
		return err
	}
	if size > 0 {
		c.remain = size
		return nil
	}
	// The last chunk: trailer fields up to the empty line, counted
	// against the head limit on their own.
	c.hr.n = 0
	tr := http.Header{}
	if err := c.hr.fields(tr); err != nil {
		return unexpected(err)
	}
	if len(tr) > 0 && c.trailer != nil {
		if *c.trailer == nil {
			*c.trailer = make(http.Header, len(tr))
		}
		for k, v := range tr {
			(*c.trailer)[k] = v
		}
	}
	c.done = true
	return nil
}

// unexpected turns a clean EOF inside a message into io.ErrUnexpectedEOF.
func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// parseChunkSize parses a chunk-size line: 1 to 15 hex digits, then
// optional chunk extensions (";" ...) that are skipped.
func parseChunkSize(line []byte) (int64, error) {
	var n int64
	i := 0
	for ; i < len(line); i++ {
		v, ok := hexValue(line[i])
		if !ok {
			break
		}
		if i == 15 {
			return 0, framingError("chunk size too large")
		}
		n = n<<4 | int64(v)
	}
	if i == 0 {
		return 0, framingError("bad chunk size line %q", clip(line))
	}
	rest := line[i:]
	for len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t') {
		rest = rest[1:] // BWS before an extension (RFC 9112 §7.1.1)
	}
	if len(rest) > 0 && rest[0] != ';' {
		return 0, framingError("bad chunk size line %q", clip(line))
	}
	for _, c := range rest {
		if c < ' ' && c != '\t' || c == 0x7f {
			return 0, framingError("control character in chunk extension")
		}
	}
	return n, nil
}

func hexValue(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// isTokenChar reports whether c may appear in a token (RFC 9110 §5.6.2).
func isTokenChar(c byte) bool {
	return c < 0x80 && tokenTable[c]
}

var tokenTable = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// commonKeys interns the canonical names of common response fields, so
// parsing them allocates nothing.
var commonKeys = func() map[string]string {
	m := make(map[string]string)
	for _, k := range []string{
		"Accept-Ranges", "Access-Control-Allow-Origin", "Age", "Cache-Control",
		"Connection", "Content-Encoding", "Content-Language", "Content-Length",
		"Content-Type", "Date", "Etag", "Expires", "Grpc-Message", "Grpc-Status",
		"Keep-Alive", "Last-Modified", "Link", "Location", "Server", "Set-Cookie",
		"Strict-Transport-Security", "Trailer", "Transfer-Encoding", "Upgrade",
		"Vary", "Via", "Www-Authenticate", "X-Content-Type-Options",
		"X-Frame-Options", "X-Request-Id",
	} {
		m[k] = k
	}
	return m
}()

// canonicalKey returns name, a valid token, in net/http's canonical form
// ("content-type" -> "Content-Type").
func canonicalKey(name []byte) string {
	var buf [64]byte
	if len(name) > len(buf) {
		return http.CanonicalHeaderKey(string(name))
	}
	b := buf[:len(name)]
	upper := true
	for i, c := range name {
		switch {
		case upper && 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
		case !upper && 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		b[i] = c
		upper = c == '-'
	}
	if k, ok := commonKeys[string(b)]; ok {
		return k
	}
	return string(b)
}

// clip shortens b for an error message.
func clip(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}
