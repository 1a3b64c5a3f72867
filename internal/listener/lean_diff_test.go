package listener

// This file is a differential test of the two HTTP/1.x engines: every raw
// client byte stream is sent, on one TCP connection each, to a server with
// Options.StdlibHTTP1 set (net/http behind the strict check) and to one
// without (the lean server), and what comes back is compared response by
// response: status, proto, header fields, the decoded body, trailers, and
// whether the server closed the connection. The echo handler writes what it
// saw of the request into its body, so the requests are compared too; the
// writer cases (paths under /w/) exercise the response writer, and note the
// errors their writes return.
//
// Deliberate differences, which the comparison leaves out:
//
//   - Framing: net/http computes a Content-Length for a handler's body
//     under 2 KiB, the lean server under 4 KiB; otherwise both chunk (or
//     close, for HTTP/1.0). Decoded bodies are compared, and Content-Length
//     only where the handler set it (lengthCases).
//   - The lean server does not sniff Content-Type: a Content-Type only
//     net/http sent, equal to http.DetectContentType of the body, is
//     ignored.
//   - The lean server may close the connection after a request with a
//     chunked body, after one whose body ended early or was mis-framed,
//     or after an "Expect: 100-continue" request whose body it did not
//     read: its answer may stop there (with "Connection: close") where
//     net/http goes on.
//   - Responses the servers write themselves (400, 417, 431 ...; those
//     without the handlers' X-Handler field) may differ in text: only
//     their status codes are compared.
//
// Differences where both answers are valid, also left out:
//
//   - The reason phrase: net/http writes "599 status code 599" for a code
//     it has no text for, the lean server "599 " (RFC 9112 §4 allows an
//     empty reason, and clients ignore it).
//   - An explicit "Connection: close" in a response to an HTTP/1.0
//     request that closes the connection (net/http leaves it implied).
//   - The body of a response its handler aborted (panic with
//     http.ErrAbortHandler after a flush): both end it without its
//     framing's end, so the client sees an error; the lean server may
//     have sent more of what the handler wrote before the panic.
//   - io.ReaderFrom: net/http's ResponseWriter has it, the lean one not;
//     it only saves io.Copy a buffer.
//
// Differences where the lean server follows the RFC and net/http does not,
// also left out (each is marked "stricter" or "net/http drops" below):
//
//   - A CONNECT request without Host: net/http serves it; the lean server
//     answers 400, as RFC 9112 §3.2 has a server answer every HTTP/1.1
//     request without Host.
//   - An Expect field that is not a list of expectations but holds
//     "100-continue" as a word ("x 100-continue"): net/http takes it for
//     100-continue (it looks for the word), the lean server answers 417,
//     which RFC 9110 §10.1.1 allows for an expectation it does not know.
//   - A Connection field net/http reads other than as a list of tokens
//     (RFC 9110 §7.6.1): for "close" and HTTP/1.0's "keep-alive" it looks
//     at the first field line only (wantsClose, wantsHttp10KeepAlive), and
//     finds "close" in "x close" (a word, not a list element). The lean
//     server reads all lines as one list (RFC 9110 §5.3). Responses are
//     compared up to that request's, without its Connection field.
//   - Trailers set with http.TrailerPrefix by a handler that never called
//     WriteHeader and whose body fit net/http's buffer: net/http looks for
//     them in a header snapshot it has not taken, sends a Content-Length
//     and drops them; the lean server chunks and sends them.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// leanDiffCase is one client connection's byte stream.
type leanDiffCase struct {
	name string
	raw  string
	// wantCodes, when set, are the status codes both engines must send,
	// interim ones included, in order.
	wantCodes []int
	// wantNotes, when set, are the handler notes both engines must yield.
	wantNotes []string
}

// leanDiffCases returns the table of TestLeanMatchesStdlib, also the seeds
// of FuzzLeanDiff.
func leanDiffCases() []leanDiffCase {
	get := func(path string) string { return "GET " + path + " HTTP/1.1\r\nHost: h.example\r\n\r\n" }
	// headOf returns a GET head of exactly n bytes.
	headOf := func(n int) string {
		prefix := "GET /size HTTP/1.1\r\nHost: h.example\r\nX-Pad: "
		return prefix + strings.Repeat("p", n-len(prefix)-len("\r\n\r\n")) + "\r\n\r\n"
	}
	mib := strings.Repeat("0123456789abcdef", 1<<16)
	chunkedMiB := "10000\r\n" + mib[:1<<16] + "\r\n"
	chunkedMiB = strings.Repeat(chunkedMiB, 16) + "0\r\n\r\n"

	cases := []leanDiffCase{
		// Valid requests, one per shape of request line, framing and field.
		{name: "get", raw: get("/a"), wantCodes: []int{200}},
		{name: "post content-length", raw: "POST /p HTTP/1.1\r\nHost: h.example\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"},
		{name: "put content-length", raw: "PUT /p HTTP/1.1\r\nHost: h.example\r\nContent-Length: 11\r\n\r\nhello world"},
		{name: "post empty body", raw: "POST /p HTTP/1.1\r\nHost: h.example\r\nContent-Length: 0\r\n\r\n"},
		{name: "content-length leading zeros", raw: "POST /p HTTP/1.1\r\nHost: h.example\r\nContent-Length: 005\r\n\r\nhello"},
		{name: "content-length body truncated", raw: "POST /p HTTP/1.1\r\nHost: h.example\r\nContent-Length: 10\r\n\r\nhello"},
		{name: "chunked", raw: "POST /c HTTP/1.1\r\nHost: h.example\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"},
		{name: "chunked TE in odd case", raw: "POST /c HTTP/1.1\r\nHost: h.example\r\ntransfer-encoding: Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"},
		{name: "chunked with extensions", raw: "POST /c HTTP/1.1\r\nHost: h.example\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b;c\r\nhello\r\n1;q=\"x y\"\r\n!\r\n0;z\r\n\r\n"},
		{name: "chunked empty", raw: "POST /c HTTP/1.1\r\nHost: h.example\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
		{name: "chunked with trailer", raw: "POST /c HTTP/1.1\r\nHost: h.example\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-T: v\r\nX-U: 1\r\nX-U: 2\r\n\r\n"},
		{name: "chunked with declared trailer", raw: "POST /c HTTP/1.1\r\nHost: h.example\r\nTrailer: X-T, X-Missing\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-T: v\r\n\r\n"},
		{name: "chunked trailer declaring a framing field", raw: "POST /c HTTP/1.1\r\nHost: h.example\r\nTrailer: Content-Length\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
		{name: "chunked trailer with framing fields", raw: "POST /c HTTP/1.1\r\nHost: h.example\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nContent-Length: 5\r\nHost: evil.example\r\nTransfer-Encoding: chunked\r\n\r\n" + get("/after")},
		{name: "chunked trailer bare LF", raw: "POST /c HTTP/1.1\r\nHost: h.example\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-T: v\n\r\n" + get("/after")},
		{name: "chunked trailer obs-fold", raw: "POST /c HTTP/1.1\r\nHost: h.example\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-T: v\r\n w\r\n\r\n" + get("/after")},
		{name: "chunk data overrun", raw: "POST /c HTTP/1.1\r\nHost: h.example\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX\r\n0\r\n\r\n" + get("/after")},
		{name: "chunked on GET", raw: "GET /c HTTP/1.1\r\nHost: h.example\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n" + get("/after")},
		{name: "content-length with sign", raw: "POST /p HTTP/1.1\r\nHost: h.example\r\nContent-Length: +5\r\n\r\nhello"},
		{name: "upgrade not taken", raw: "GET /u HTTP/1.1\r\nHost: h.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n" + get("/after")},
		{name: "chunked truncated", raw: "POST /c HTTP/1.1\r\nHost: h.example\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel"},
		{name: "chunked then get", raw: "POST /c HTTP/1.1\r\nHost: h.example\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n" + get("/after")},
		{name: "pipelined three", raw: get("/1") + "POST /2 HTTP/1.1\r\nHost: h.example\r\nContent-Length: 3\r\n\r\nabc" + get("/3"), wantCodes: []int{200, 200, 200}},
		{name: "pipelined head then get", raw: "HEAD /1 HTTP/1.1\r\nHost: h.example\r\n\r\n" + get("/2") + "HEAD /w/cl HTTP/1.1\r\nHost: h.example\r\n\r\n"},
		{name: "http/1.0", raw: "GET /x HTTP/1.0\r\n\r\n"},
		{name: "http/1.0 with host", raw: "GET /x HTTP/1.0\r\nHost: h.example\r\n\r\n"},
		{name: "http/1.0 keep-alive", raw: "GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /y HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\nGET /z HTTP/1.0\r\n\r\n"},
		{name: "http/1.0 post", raw: "POST /x HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello"},
		{name: "http/1.0 pragma", raw: "GET /x HTTP/1.0\r\nPragma: no-cache\r\n\r\n"},
		{name: "http/1.0 pragma and cache-control", raw: "GET /x HTTP/1.0\r\nPragma: no-cache\r\nCache-Control: max-age=5\r\n\r\n"},
		{name: "connection close", raw: "GET /1 HTTP/1.1\r\nHost: h.example\r\nConnection: close\r\n\r\n" + get("/2")},
		{name: "connection close in a list", raw: "GET /1 HTTP/1.1\r\nHost: h.example\r\nConnection: keep-alive, Close\r\n\r\n" + get("/2")},
		{name: "head", raw: "HEAD /a HTTP/1.1\r\nHost: h.example\r\n\r\n"},
		{name: "options star", raw: "OPTIONS * HTTP/1.1\r\nHost: h.example\r\n\r\n"},
		{name: "absolute form", raw: "GET http://h.example/p?q HTTP/1.1\r\nHost: other.example\r\n\r\n"},
		{name: "absolute form https with port", raw: "GET https://h.example:8443/p/%41?a=b HTTP/1.1\r\nHost: h.example:8443\r\n\r\n"},
		{name: "absolute form without host", raw: "GET http://h.example/p HTTP/1.1\r\n\r\n"},
		{name: "connect", raw: "CONNECT h.example:443 HTTP/1.1\r\nHost: h.example:443\r\n\r\n"},
		{name: "connect without host", raw: "CONNECT h.example:443 HTTP/1.1\r\n\r\n"},
		{name: "connect path form", raw: "CONNECT /rpc HTTP/1.1\r\nHost: h.example\r\n\r\n"},
		{name: "percent-escaped path", raw: get("/a%20b/%2Fc/%7e/caf%C3%A9")},
		{name: "invalid escape", raw: get("/%zz")},
		{name: "query", raw: get("/s?a=1&b=%20&a=3&&c")},
		{name: "empty query", raw: get("/s?")},
		{name: "fragment", raw: get("/p#frag")},
		{name: "sub-delims in path", raw: get("/a!b*c'(d),e;f=g:h@i$j&k+l")},
		{name: "brackets and braces in path", raw: get("/x[1]{2}|3^`\"<>\\")},
		{name: "escapes and sub-delims in path", raw: get("/a%2Fb!c")},
		{name: "dot segments", raw: get("/a/../b/./c")},
		{name: "double slash", raw: get("//x/y")},
		{name: "lowercase method", raw: "get /m HTTP/1.1\r\nHost: h.example\r\n\r\n"},
		{name: "extension method", raw: "PURGE /m HTTP/1.1\r\nHost: h.example\r\n\r\n"},
		{name: "repeated headers", raw: "GET /r HTTP/1.1\r\nHost: h.example\r\nX-A: 1\r\nX-B: b\r\nX-A: 2\r\nx-a: 3\r\nCookie: a=1\r\nCookie: b=2\r\n\r\n"},
		{name: "odd case names", raw: "GET /r HTTP/1.1\r\nhost: h.example\r\nx-lower: 1\r\nX-UPPER: 2\r\nx-MiXeD-cAsE: 3\r\nX_Under: 4\r\ncontent-type: text/x\r\n\r\n"},
		{name: "empty values", raw: "GET /r HTTP/1.1\r\nHost: h.example\r\nX-Empty:\r\nX-Space: \r\nX-Tabs:\t\t\r\n\r\n"},
		{name: "whitespace around value", raw: "GET /r HTTP/1.1\r\nHost: h.example\r\nX-W: \t a  b \t\r\n\r\n"},
		{name: "obs-text value", raw: "GET /r HTTP/1.1\r\nHost: h.example\r\nX-O: caf\xc3\xa9 \xff\r\n\r\n"},
		{name: "missing host", raw: "GET / HTTP/1.1\r\n\r\n", wantCodes: []int{400}},
		{name: "empty host", raw: "GET / HTTP/1.1\r\nHost:\r\n\r\n"},
		{name: "http/1.0 without host", raw: "GET / HTTP/1.0\r\n\r\n", wantCodes: []int{200}},
		{name: "host with space", raw: "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", wantCodes: []int{400}},
		{name: "host with quote", raw: "GET / HTTP/1.1\r\nHost: a\"b\r\n\r\n"},
		{name: "host ipv6 literal", raw: "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"},
		{name: "host with empty port", raw: "GET / HTTP/1.1\r\nHost: h.example:\r\n\r\n"},
		{name: "host in odd case", raw: "GET / HTTP/1.1\r\nHost: H.Example\r\n\r\n"},
		{name: "expect continue", raw: "POST /e HTTP/1.1\r\nHost: h.example\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello" + get("/after")},
		{name: "expect continue chunked", raw: "POST /e HTTP/1.1\r\nHost: h.example\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"},
		{name: "expect continue in odd case", raw: "POST /e HTTP/1.1\r\nHost: h.example\r\nExpect: 100-Continue\r\nContent-Length: 2\r\n\r\nok"},
		{name: "expect continue empty body", raw: "POST /e HTTP/1.1\r\nHost: h.example\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n" + get("/after")},
		{name: "expect continue body ignored", raw: "POST /w/ignore HTTP/1.1\r\nHost: h.example\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello" + get("/after")},
		{name: "expect continue http/1.0", raw: "POST /e HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok"},
		{name: "expect list with an empty element", raw: "POST /e HTTP/1.1\r\nHost: h.example\r\nExpect: ,100-continue\r\nContent-Length: 2\r\n\r\nok"},
		{name: "expect 100-continue as a word", raw: "POST /e HTTP/1.1\r\nHost: h.example\r\nExpect: x 100-continue\r\nContent-Length: 2\r\n\r\nok"},
		{name: "connection close as a word", raw: "GET /1 HTTP/1.1\r\nHost: h.example\r\nConnection: x close\r\n\r\n" + get("/2")},
		{name: "http/1.0 keep-alive in a second line", raw: "GET /x HTTP/1.0\r\nConnection: x\r\nConnection: keep-alive\r\n\r\nGET /y HTTP/1.0\r\n\r\n"},
		{name: "expect other", raw: "POST /e HTTP/1.1\r\nHost: h.example\r\nExpect: something-else\r\nContent-Length: 2\r\n\r\nok", wantCodes: []int{417}},
		{name: "head at the limit", raw: headOf(4096), wantCodes: []int{200}},
		{name: "head one over the limit", raw: headOf(4097), wantCodes: []int{431}},
		{name: "head too large", raw: headOf(5000), wantCodes: []int{431}},
		{name: "too large after a valid request", raw: get("/1") + headOf(6000), wantCodes: []int{200, 431}},
		{name: "chunked trailer too large", raw: "POST /c HTTP/1.1\r\nHost: h.example\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: " + strings.Repeat("t", 5000) + "\r\n\r\n"},
		{name: "chunked trailer of 64 KiB", raw: "POST /c HTTP/1.1\r\nHost: h.example\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n" + strings.Repeat("X-T: "+strings.Repeat("t", 1000)+"\r\n", 64) + "\r\n"},
		{name: "garbage", raw: "hello\r\n\r\n"},
		{name: "garbage binary", raw: "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\x00\x01\x02"},
		{name: "empty connection", raw: ""},
		{name: "only CRLF", raw: "\r\n"},
		{name: "leading CRLF", raw: "\r\n" + get("/l")},
		{name: "partial head", raw: "GET / HTTP/1.1\r\nHost: h.example\r\n"},
		{name: "http/1.2", raw: "GET / HTTP/1.2\r\nHost: h.example\r\n\r\n"},
		{name: "h2 preface without h2c", raw: h2Preface},
		{name: "double space in request line", raw: "GET  / HTTP/1.1\r\nHost: h.example\r\n\r\n"},
		{name: "non-ascii target", raw: get("/caf\xc3\xa9")},

		// The response writer, one behaviour per /w/ case (see writeCase).
		{name: "writer content-length", raw: get("/w/cl") + get("/after")},
		{name: "writer content-length on HEAD", raw: "HEAD /w/cl HTTP/1.1\r\nHost: h.example\r\n\r\n" + get("/after")},
		{name: "writer short body", raw: get("/w/short") + get("/after"),
			wantNotes: []string{"short: write 5 bytes: wrote 5, nil"}},
		{name: "writer long body", raw: get("/w/long") + get("/after"),
			wantNotes: []string{"long: write 5 bytes: wrote 5, nil", "long: write 1 bytes: wrote 0, ErrContentLength"}},
		{name: "writer long single write", raw: get("/w/long1") + get("/after"),
			wantNotes: []string{"long1: write 5 bytes: wrote 0, ErrContentLength"}},
		{name: "writer 204 with body", raw: get("/w/204") + get("/after"),
			wantNotes: []string{"204: write 1 bytes: wrote 0, ErrBodyNotAllowed"}},
		{name: "writer 304 with body", raw: get("/w/304") + get("/after"),
			wantNotes: []string{"304: write 1 bytes: wrote 0, ErrBodyNotAllowed"}},
		{name: "writer HEAD with body", raw: "HEAD /w/text HTTP/1.1\r\nHost: h.example\r\n\r\n" + get("/after")},
		{name: "writer HEAD with large body", raw: "HEAD /w/big HTTP/1.1\r\nHost: h.example\r\n\r\n" + get("/after")},
		{name: "writer large body", raw: get("/w/big") + get("/after")},
		{name: "writer 3 KiB body", raw: get("/w/3k") + get("/after")},
		{name: "writer large body http/1.0", raw: "GET /w/big HTTP/1.0\r\n\r\n"},
		{name: "writer large body http/1.0 keep-alive", raw: "GET /w/big HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /after HTTP/1.0\r\n\r\n"},
		{name: "writer flush", raw: get("/w/flush") + get("/after"),
			wantNotes: []string{"flush: write 6 bytes: wrote 6, nil", "flush: flush: nil", "flush: write 6 bytes: wrote 6, nil"}},
		{name: "writer trailer declared", raw: get("/w/trailer") + get("/after")},
		{name: "writer trailer prefix", raw: get("/w/trailerprefix") + get("/after")},
		{name: "writer trailer prefix after a large body", raw: get("/w/trailerprefixbig") + get("/after")},
		{name: "writer header set after write", raw: get("/w/late") + get("/after")},
		{name: "writer transfer-encoding set", raw: get("/w/te") + get("/after")},
		{name: "writer invalid content-length", raw: get("/w/badcl") + get("/after")},
		{name: "writer hijack", raw: get("/w/hijack")},
		{name: "writer early hints", raw: get("/w/hints") + get("/after")},
		{name: "writer connection close", raw: get("/w/close") + get("/after")},
		{name: "writer CR LF in value", raw: get("/w/crlf")},
		{name: "writer invalid name", raw: get("/w/badname")},
		{name: "writer status twice", raw: get("/w/twice")},
		{name: "writer nothing", raw: get("/w/empty") + get("/after")},
		{name: "writer status only", raw: get("/w/404") + get("/after")},
		{name: "writer unknown status", raw: get("/w/599")},
		{name: "writer interfaces", raw: get("/w/ifaces")},
		{name: "writer abort", raw: get("/w/abort") + get("/after")},
		{name: "writer abort after flush", raw: get("/w/abortflush") + get("/after")},
		{name: "writer ignores small body", raw: "POST /w/ignore HTTP/1.1\r\nHost: h.example\r\nContent-Length: 5\r\n\r\nhello" + get("/after")},
		{name: "writer ignores 1 MiB body", raw: "POST /w/ignore HTTP/1.1\r\nHost: h.example\r\nContent-Length: 1048576\r\n\r\n" + mib + get("/after")},
		{name: "writer ignores 1 MiB chunked body", raw: "POST /w/ignore HTTP/1.1\r\nHost: h.example\r\nTransfer-Encoding: chunked\r\n\r\n" + chunkedMiB + get("/after")},
	}
	for _, a := range ambiguous {
		cases = append(cases, leanDiffCase{name: "ambiguous: " + a.name, raw: a.raw, wantCodes: []int{400}})
	}
	return cases
}

// lengthCases are the writer cases that set Content-Length themselves:
// only in their responses is Content-Length compared.
var lengthCases = map[string]bool{"cl": true, "short": true, "long": true, "long1": true}

// handlerNotes records what handlers observed that their responses cannot
// carry (the errors their writes returned), in order.
type handlerNotes struct {
	running atomic.Int64 // handlers in progress
	mu      sync.Mutex   // guards lines
	lines   []string
}

func (n *handlerNotes) addf(format string, args ...any) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.lines = append(n.lines, fmt.Sprintf(format, args...))
}

// take returns the notes and clears them, once no handler runs (it waits
// up to 2s for that).
func (n *handlerNotes) take() []string {
	for deadline := time.Now().Add(2 * time.Second); n.running.Load() > 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	lines := n.lines
	n.lines = nil
	return lines
}

// leanDiffHandler serves the writer cases under /w/ and echoes every
// other request.
func leanDiffHandler(notes *handlerNotes) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		notes.running.Add(1)
		defer notes.running.Add(-1)
		if name, ok := strings.CutPrefix(r.URL.Path, "/w/"); ok {
			writeCase(w, r, name, notes)
			return
		}
		dumpRequest(w, r)
	})
}

// dumpRequest answers with a text dump of everything the handler can see
// of r, the body and trailers included.
func dumpRequest(w http.ResponseWriter, r *http.Request) {
	var b strings.Builder
	fmt.Fprintf(&b, "method %q request-uri %q\n", r.Method, r.RequestURI)
	fmt.Fprintf(&b, "url %q path %q raw-path %q raw-query %q\n", r.URL.String(), r.URL.Path, r.URL.RawPath, r.URL.RawQuery)
	fmt.Fprintf(&b, "host %q proto %q %d.%d close %v\n", r.Host, r.Proto, r.ProtoMajor, r.ProtoMinor, r.Close)
	fmt.Fprintf(&b, "content-length %d transfer-encoding %q no-body %v\n", r.ContentLength, r.TransferEncoding, r.Body == http.NoBody)
	dumpHeader(&b, "header", r.Header)
	dumpHeader(&b, "declared-trailer", r.Trailer)
	body, err := io.ReadAll(r.Body)
	// Only whether reading failed is compared: the errors differ in kind
	// (net/http gives io.ErrUnexpectedEOF for some truncated bodies and a
	// framing error for others).
	fmt.Fprintf(&b, "body %d bytes %s, error %v\n", len(body), quoteShort(body), err != nil)
	dumpHeader(&b, "trailer", r.Trailer)
	w.Header().Set("X-Handler", "echo")
	io.WriteString(w, b.String())
}

func dumpHeader(b *strings.Builder, label string, h http.Header) {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(b, "%s %q: %q\n", label, k, h[k])
	}
}

// quoteShort quotes b, or for a long b its checksum and start.
func quoteShort(b []byte) string {
	if len(b) <= 512 {
		return fmt.Sprintf("%q", b)
	}
	return fmt.Sprintf("crc32 %08x starting %q", crc32.ChecksumIEEE(b), b[:64])
}

// errName names the errors the writer cases expect; messages of other
// errors may differ between the engines.
func errName(err error) string {
	switch {
	case err == nil:
		return "nil"
	case errors.Is(err, http.ErrContentLength):
		return "ErrContentLength"
	case errors.Is(err, http.ErrBodyNotAllowed):
		return "ErrBodyNotAllowed"
	case errors.Is(err, http.ErrNotSupported):
		return "ErrNotSupported"
	case errors.Is(err, http.ErrHijacked):
		return "ErrHijacked"
	}
	return "other error"
}

// writeCase exercises one rule of the response writer, chosen by name.
// Every response it writes carries "X-Handler: name".
func writeCase(w http.ResponseWriter, r *http.Request, name string, notes *handlerNotes) {
	h := w.Header()
	h.Set("X-Handler", name)
	write := func(s string) {
		n, err := io.WriteString(w, s)
		notes.addf("%s: write %d bytes: wrote %d, %s", name, len(s), n, errName(err))
	}
	rc := http.NewResponseController(w)
	switch name {
	case "cl":
		h.Set("Content-Length", "5")
		write("hello")
	case "short":
		h.Set("Content-Length", "10")
		write("hello")
	case "long":
		h.Set("Content-Length", "5")
		write("hello")
		write("!")
	case "long1":
		h.Set("Content-Length", "3")
		write("hello")
	case "204", "304":
		if name == "204" {
			w.WriteHeader(http.StatusNoContent)
		} else {
			w.WriteHeader(http.StatusNotModified)
		}
		write("x")
	case "text":
		io.WriteString(w, "some text\n")
	case "big":
		io.WriteString(w, strings.Repeat("0123456789abcdef", 100<<10/16))
	case "3k":
		// Between net/http's 2 KiB and the lean server's 4 KiB: framed
		// differently, decoded the same.
		io.WriteString(w, strings.Repeat("0123456789abcdef", 3<<10/16))
	case "flush":
		write("first,")
		notes.addf("%s: flush: %s", name, errName(rc.Flush()))
		write("second")
	case "trailer":
		h.Set("Trailer", "X-T1, X-T2")
		io.WriteString(w, "body")
		h.Set("X-T1", "v1")
		h.Add("X-T2", "a")
		h.Add("X-T2", "b")
	case "trailerprefix":
		io.WriteString(w, "body")
		h.Set(http.TrailerPrefix+"X-P", "p")
	case "trailerprefixbig":
		io.WriteString(w, strings.Repeat("0123456789abcdef", 8<<10/16))
		h.Set(http.TrailerPrefix+"X-P", "p")
	case "late":
		// "Changing the header map after a call to WriteHeader (or Write)
		// has no effect" (http.ResponseWriter).
		io.WriteString(w, "body")
		h.Set("X-Late", "1")
		w.Header().Set("X-Later", "2")
	case "te":
		h.Set("Transfer-Encoding", "chunked")
		io.WriteString(w, "body")
	case "badcl":
		h.Set("Content-Length", "abc")
		io.WriteString(w, "body")
	case "hijack":
		c, brw, err := rc.Hijack()
		notes.addf("%s: hijack: %s", name, errName(err))
		if err != nil {
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 200 OK\r\nX-Handler: hijack\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi")
		notes.addf("%s: flush: %s", name, errName(brw.Flush()))
	case "hints":
		h.Set("Link", "</s.css>; rel=preload; as=style")
		w.WriteHeader(http.StatusEarlyHints)
		h.Set("X-After-Hints", "1")
		io.WriteString(w, "done")
	case "close":
		h.Set("Connection", "close")
		io.WriteString(w, "bye")
	case "crlf":
		h.Set("X-Crlf", "a\r\nX-Injected: b")
		h.Set("X-Lf", "c\nd")
		h.Set("X-Cr", "e\rf")
		io.WriteString(w, "ok")
	case "badname":
		h["X Bad"] = []string{"space"}
		h["X:Colon"] = []string{"colon"}
		h["X-Bad\r\nX-Injected"] = []string{"crlf"}
		h["X-Good"] = []string{"good"}
		io.WriteString(w, "ok")
	case "twice":
		w.WriteHeader(http.StatusCreated)
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, "x")
	case "empty":
	case "404":
		w.WriteHeader(http.StatusNotFound)
	case "599":
		w.WriteHeader(599)
		io.WriteString(w, "x")
	case "ifaces":
		_, fl := w.(http.Flusher)
		_, hj := w.(http.Hijacker)
		_, sw := w.(io.StringWriter)
		notes.addf("%s: flusher %v hijacker %v string-writer %v", name, fl, hj, sw)
		notes.addf("%s: read deadline %s, write deadline %s", name,
			errName(rc.SetReadDeadline(time.Now().Add(time.Minute))), errName(rc.SetWriteDeadline(time.Now().Add(time.Minute))))
		io.WriteString(w, "ok")
	case "abort":
		io.WriteString(w, "partial")
		panic(http.ErrAbortHandler)
	case "abortflush":
		io.WriteString(w, "partial")
		rc.Flush()
		io.WriteString(w, "more")
		panic(http.ErrAbortHandler)
	case "ignore":
		io.WriteString(w, "ignored")
	default:
		h.Set("X-Handler", "unknown")
		w.WriteHeader(http.StatusNotFound)
	}
}

// startEngine serves h on a loopback port with the lean server, or with
// net/http's when stdlib is set, and returns its address. The server is
// closed when tb ends.
func startEngine(tb testing.TB, h http.Handler, stdlib bool) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       30 * time.Second,
		MaxHeaderBytes:    4096,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	s := NewServer(srv, ln, Options{StdlibHTTP1: stdlib})
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	tb.Cleanup(func() {
		s.Close()
		select {
		case err := <-served:
			if !errors.Is(err, http.ErrServerClosed) {
				tb.Errorf("Serve returned %v, want http.ErrServerClosed", err)
			}
		case <-time.After(5 * time.Second):
			tb.Errorf("Serve did not return within 5s of Close")
		}
	})
	return ln.Addr().String()
}

// diffEngine is one engine under test.
type diffEngine struct {
	addr  string
	notes *handlerNotes
}

// diffPair is the two engines, serving the same handler.
type diffPair struct{ std, lean diffEngine }

func startPair(tb testing.TB, handler func(*handlerNotes) http.Handler) diffPair {
	tb.Helper()
	var p diffPair
	for _, e := range []struct {
		engine *diffEngine
		stdlib bool
	}{{&p.std, true}, {&p.lean, false}} {
		e.engine.notes = new(handlerNotes)
		e.engine.addr = startEngine(tb, handler(e.engine.notes), e.stdlib)
	}
	return p
}

// run sends raw to both engines at once and returns what each sent back.
// reqs are raw's requests (parseRequests).
func (p diffPair) run(tb testing.TB, raw []byte, reqs []diffRequest, halfClose bool, idle time.Duration) (std, lean diffResult) {
	tb.Helper()
	var wg sync.WaitGroup
	var stdErr, leanErr error
	wg.Go(func() { std, stdErr = p.std.exchange(raw, reqs, halfClose, idle) })
	wg.Go(func() { lean, leanErr = p.lean.exchange(raw, reqs, halfClose, idle) })
	wg.Wait()
	if err := errors.Join(stdErr, leanErr); err != nil {
		tb.Fatal(err)
	}
	return std, lean
}

// diffResult is what one engine sent back for one input.
type diffResult struct {
	raw    []byte         // every byte the server sent
	closed bool           // the server closed the connection (EOF or reset)
	reset  bool           // ... with a reset
	resps  []diffResponse // raw parsed as responses, interim ones included
	tail   []byte         // bytes after the last response that parse as none
	notes  []string       // the handlers' notes
}

// diffResponse is one parsed response.
type diffResponse struct {
	status string // "200 OK"
	code   int
	proto  string
	header http.Header
	// closes reports "Connection: close" in an HTTP/1.1 response, which
	// http.ReadResponse takes out of the header.
	closes  bool
	body    []byte
	bodyErr bool
	trailer http.Header
}

// handler returns the X-Handler field of the response: the handler that
// wrote it, or "" for a response the server wrote itself.
func (r diffResponse) handler() string { return r.header.Get("X-Handler") }

// diffRequest is what the comparison needs to know of a request in the
// client's stream.
type diffRequest struct {
	method  string
	chunked bool // the body is chunked
	expect  bool // "Expect: 100-continue" with a body
	badBody bool // the body ends early or is mis-framed
	// stricter reports a request the lean server may refuse by the RFC
	// where net/http serves it: a CONNECT without Host, or an Expect
	// field net/http reads as a word (see the top of the file).
	stricter bool
	// connQuirk reports a Connection field that net/http reads other
	// than as one list of tokens (see connQuirk).
	connQuirk bool
}

// parseRequests parses raw as requests, as far as net/http's parser goes.
func parseRequests(raw []byte) []diffRequest {
	br := bufio.NewReader(bytes.NewReader(raw))
	var reqs []diffRequest
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return reqs
		}
		reqs = append(reqs, diffRequest{
			method:  req.Method,
			chunked: len(req.TransferEncoding) > 0,
			expect:  strings.EqualFold(req.Header.Get("Expect"), "100-continue") && req.ContentLength != 0,
			stricter: req.Method == http.MethodConnect && req.ProtoAtLeast(1, 1) && len(req.Header["Host"]) == 0 ||
				hasWord(req.Header.Get("Expect"), "100-continue") && !isContinue(req.Header["Expect"]),
			connQuirk: connQuirk(req),
		})
		if _, err := io.Copy(io.Discard, req.Body); err != nil {
			reqs[len(reqs)-1].badBody = true
			return reqs
		}
	}
}

// dialSeq picks the source address of the next exchange.
var dialSeq atomic.Uint32

// exchange sends raw on a new connection, all at once, and reads until the
// server closes the connection or sends nothing for idle. halfClose shuts
// the write side after raw, so the server sees EOF.
func (e diffEngine) exchange(raw []byte, reqs []diffRequest, halfClose bool, idle time.Duration) (diffResult, error) {
	// The client closes first, so each connection leaves its port in
	// TIME-WAIT for a minute: a fuzz run would use up the ephemeral ports
	// of one source address in seconds, so it dials from many (Linux
	// routes all of 127/8 to loopback; elsewhere the plain dial is used).
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(1+dialSeq.Add(1)%250))}}
	c, err := d.Dial("tcp", e.addr)
	if err != nil {
		c, err = net.Dial("tcp", e.addr)
	}
	if err != nil {
		return diffResult{}, fmt.Errorf("dial %s: %w", e.addr, err)
	}
	defer c.Close()
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		// A write fails when the server closes before reading everything;
		// what it answered is what counts.
		if len(raw) > 0 {
			if _, err := c.Write(raw); err != nil {
				return
			}
		}
		if halfClose {
			c.(*net.TCPConn).CloseWrite()
		}
	}()
	var res diffResult
	var buf bytes.Buffer
	p := make([]byte, 64<<10)
	for {
		c.SetReadDeadline(time.Now().Add(idle))
		n, err := c.Read(p)
		buf.Write(p[:n])
		if err == nil {
			continue
		}
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			res.closed = true
			res.reset = errors.Is(err, syscall.ECONNRESET)
		}
		break
	}
	c.Close()
	<-wrote
	res.raw = buf.Bytes()
	res.resps, res.tail = parseResponses(res.raw, reqs)
	res.notes = e.notes.take()
	return res, nil
}

// parseResponses parses raw as the responses to reqs, in order, and returns
// the bytes after the last complete one that do not parse as a response.
func parseResponses(raw []byte, reqs []diffRequest) (resps []diffResponse, tail []byte) {
	rd := bytes.NewReader(raw)
	br := bufio.NewReader(rd)
	final := 0 // final (non-1xx) responses so far
	for {
		off := len(raw) - rd.Len() - br.Buffered()
		if off == len(raw) {
			return resps, nil
		}
		method := http.MethodGet
		if final < len(reqs) {
			method = reqs[final].method
		}
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			return resps, raw[off:]
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		resps = append(resps, diffResponse{
			status:  resp.Status,
			code:    resp.StatusCode,
			proto:   resp.Proto,
			header:  resp.Header,
			closes:  resp.Close && resp.ProtoAtLeast(1, 1),
			body:    body,
			bodyErr: err != nil,
			trailer: resp.Trailer,
		})
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			final++
		}
	}
}

// compareEngines returns how lean's answer to one input differs from
// net/http's, leaving out the deliberate differences (see the comment at
// the top of the file).
func compareEngines(reqs []diffRequest, std, lean diffResult) []string {
	var diffs []string
	add := func(format string, args ...any) { diffs = append(diffs, fmt.Sprintf(format, args...)) }

	// After a Connection field net/http reads its own way (connQuirk),
	// only the responses up to that request's are compared, without its
	// Connection field.
	if q := slices.IndexFunc(reqs, func(r diffRequest) bool { return r.connQuirk }); q >= 0 {
		s, sok := upToFinal(std.resps, q)
		l, lok := upToFinal(lean.resps, q)
		if sok && lok {
			std.resps, lean.resps = s, l
			std.closed, lean.closed = true, true
			for _, r := range []*diffResponse{&std.resps[len(s)-1], &lean.resps[len(l)-1]} {
				r.header = r.header.Clone()
				r.header.Del("Connection")
				r.closes = false
			}
		}
	}

	// Lean may close the connection where net/http goes on: after its
	// answer to a chunked or Expect request (deliberate), or after a 400
	// or 417 for a request it refuses by the RFC (stricter). stop is the index of
	// that answer in lean.resps, refused reports the second kind.
	stop, refused := -1, false
	final := 0
	for i, r := range lean.resps {
		if r.code < 200 {
			continue
		}
		if lean.closed && i == len(lean.resps)-1 && final < len(reqs) {
			req := reqs[final]
			switch {
			case req.chunked || req.expect || req.badBody:
				stop = i
			case req.stricter && (r.code == http.StatusBadRequest || r.code == http.StatusExpectationFailed) && r.handler() == "":
				stop, refused = i, true
			}
		}
		final++
	}

	n := len(std.resps)
	switch {
	case len(lean.resps) == len(std.resps):
	case len(lean.resps) < len(std.resps) && stop == len(lean.resps)-1:
		n = len(lean.resps)
	default:
		add("got %d responses (%s) from lean, want %d (%s) as net/http", len(lean.resps), statuses(lean.resps), len(std.resps), statuses(std.resps))
		n = min(len(lean.resps), len(std.resps))
	}
	for i := range n {
		if refused && i == stop {
			continue
		}
		last := i == n-1 && std.closed && lean.closed
		for _, d := range compareResponse(std.resps[i], lean.resps[i], stop == i, last) {
			add("response %d (%s): %s", i, std.resps[i].status, d)
		}
	}
	if lean.closed != std.closed && !(lean.closed && stop >= 0) {
		add("got connection closed %v from lean, want %v as net/http", lean.closed, std.closed)
	}
	if (len(lean.tail) > 0) != (len(std.tail) > 0) {
		add("got unparsable bytes %q from lean, net/http %q", short(string(lean.tail)), short(string(std.tail)))
	}
	if !slices.Equal(lean.notes, std.notes) {
		add("got handler notes %q from lean, want %q as net/http", lean.notes, std.notes)
	}
	return diffs
}

// upToFinal returns a copy of resps up to and including the final
// response number q (from 0), and whether there is one.
func upToFinal(resps []diffResponse, q int) ([]diffResponse, bool) {
	for i, r := range resps {
		if r.code < 200 {
			continue
		}
		if q == 0 {
			return slices.Clone(resps[:i+1]), true
		}
		q--
	}
	return nil, false
}

// connQuirk reports whether net/http's server reads the Connection field
// of req otherwise than as one list of tokens (RFC 9110 §7.6.1, §5.3):
// it looks for "close" (and, in HTTP/1.0, "keep-alive") in the first
// field line only, as a word delimited by spaces, tabs or commas.
func connQuirk(req *http.Request) bool {
	conn := req.Header["Connection"]
	first := ""
	if len(conn) > 0 {
		first = conn[0]
	}
	if hasWord(first, "close") != listHas(conn, "close") {
		return true
	}
	return req.ProtoMajor == 1 && req.ProtoMinor == 0 && hasWord(first, "keep-alive") != listHas(conn, "keep-alive")
}

// hasWord reports whether v holds word, ignoring case, delimited by the
// ends of v, spaces, tabs or commas (net/http's hasToken).
func hasWord(v, word string) bool {
	boundary := func(i int) bool { return i < 0 || i >= len(v) || v[i] == ' ' || v[i] == '\t' || v[i] == ',' }
	for i := 0; i+len(word) <= len(v); i++ {
		if strings.EqualFold(v[i:i+len(word)], word) && boundary(i-1) && boundary(i+len(word)) {
			return true
		}
	}
	return false
}

// isContinue reports whether the Expect field values are the list
// "100-continue", empty elements aside (RFC 9110 §5.6.1).
func isContinue(values []string) bool {
	n := 0
	for _, v := range values {
		for e := range strings.SplitSeq(v, ",") {
			switch e = strings.TrimSpace(e); {
			case e == "":
			case strings.EqualFold(e, "100-continue"):
				n++
			default:
				return false
			}
		}
	}
	return n == 1
}

// listHas reports whether the comma-separated lists in values hold token,
// ignoring case. (The lean server's hasToken is not used: this file checks
// it.)
func listHas(values []string, token string) bool {
	for _, v := range values {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// compareResponse compares one response. mayClose allows lean a
// "Connection: close" that net/http did not send; last reports the last
// response before both closed the connection.
func compareResponse(std, lean diffResponse, mayClose, last bool) []string {
	var diffs []string
	add := func(format string, args ...any) { diffs = append(diffs, fmt.Sprintf(format, args...)) }
	if std.handler() == "" && lean.handler() == "" {
		// Both servers wrote this one themselves: only the code counts.
		if lean.code != std.code {
			add("got status %d from lean, want %d", lean.code, std.code)
		}
		return diffs
	}
	if lean.code != std.code || lean.proto != std.proto {
		add("got %s %s from lean, want %s %s", lean.proto, lean.status, std.proto, std.status)
	}
	if lean.closes != std.closes && !(lean.closes && mayClose) {
		add("got Connection: close %v from lean, want %v", lean.closes, std.closes)
	}
	stdH, leanH := comparableHeaders(std, lean, mayClose, last)
	for _, k := range unionKeys(stdH, leanH) {
		if !slices.Equal(stdH[k], leanH[k]) {
			add("got header %s %q from lean, want %q", k, leanH[k], stdH[k])
		}
	}
	aborted := std.bodyErr && lean.bodyErr && (bytes.HasPrefix(lean.body, std.body) || bytes.HasPrefix(std.body, lean.body))
	if !bytes.Equal(lean.body, std.body) && !aborted {
		add("got body %s from lean, want %s", quoteShort(lean.body), quoteShort(std.body))
	}
	if lean.bodyErr != std.bodyErr {
		add("got body read error %v from lean, want %v", lean.bodyErr, std.bodyErr)
	}
	if std.handler() == "trailerprefix" && len(std.trailer) == 0 {
		// net/http drops these trailers (see the top of the file).
		return diffs
	}
	for _, k := range unionKeys(std.trailer, lean.trailer) {
		if !slices.Equal(std.trailer[k], lean.trailer[k]) {
			add("got trailer %s %q from lean, want %q", k, lean.trailer[k], std.trailer[k])
		}
	}
	return diffs
}

// comparableHeaders returns the header fields of both responses that are
// to be equal: without Date, without framing (Content-Length unless the
// handler set it; http.ReadResponse has taken Transfer-Encoding out), and
// without the deliberate differences.
func comparableHeaders(std, lean diffResponse, mayClose, last bool) (stdH, leanH http.Header) {
	stdH, leanH = std.header.Clone(), lean.header.Clone()
	for _, h := range []http.Header{stdH, leanH} {
		h.Del("Date")
		if !lengthCases[std.handler()] {
			h.Del("Content-Length")
		}
	}
	if ct := stdH.Get("Content-Type"); ct != "" && leanH.Get("Content-Type") == "" && ct == http.DetectContentType(std.body) {
		stdH.Del("Content-Type") // the lean server does not sniff
	}
	// Only HTTP/1.0 responses keep "Connection: close" in the header.
	closes := strings.EqualFold(leanH.Get("Connection"), "close") && stdH.Get("Connection") == ""
	if closes && (mayClose || last) {
		leanH.Del("Connection")
	}
	return stdH, leanH
}

func unionKeys(a, b http.Header) []string {
	var keys []string
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

func statuses(resps []diffResponse) string {
	codes := make([]string, len(resps))
	for i, r := range resps {
		codes[i] = fmt.Sprint(r.code)
	}
	return strings.Join(codes, " ")
}

// describeDiff is the failure message for one input.
func describeDiff(raw []byte, std, lean diffResult, diffs []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "input %q:\n", short(string(raw)))
	for _, d := range diffs {
		fmt.Fprintf(&b, "  %s\n", d)
	}
	for _, e := range []struct {
		name string
		r    diffResult
	}{{"net/http", std}, {"lean", lean}} {
		fmt.Fprintf(&b, "%s sent (closed %v, reset %v): %q\n", e.name, e.r.closed, e.r.reset, truncate(e.r.raw, 2000))
	}
	return b.String()
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return append(b[:n:n], "..."...)
	}
	return b
}

func codes(resps []diffResponse) []int {
	c := make([]int, len(resps))
	for i, r := range resps {
		c[i] = r.code
	}
	return c
}

// TestLeanMatchesStdlib sends each stream of leanDiffCases to both engines
// twice: once leaving the connection open (to see whether the server
// closes it) and once half-closing it after the stream (so the server sees
// EOF, as a client that sends a request and shuts its write side would).
func TestLeanMatchesStdlib(t *testing.T) {
	cases := leanDiffCases()
	for _, mode := range []struct {
		name      string
		halfClose bool
	}{{"open", false}, {"half-close", true}} {
		t.Run(mode.name, func(t *testing.T) {
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					p := startPair(t, leanDiffHandler)
					raw := []byte(tc.raw)
					reqs := parseRequests(raw)
					std, lean := p.run(t, raw, reqs, mode.halfClose, time.Second)
					for _, e := range []struct {
						name string
						r    diffResult
					}{{"net/http", std}, {"lean", lean}} {
						if tc.wantCodes != nil && !slices.Equal(codes(e.r.resps), tc.wantCodes) {
							t.Errorf("%s: got status codes %v, want %v", e.name, codes(e.r.resps), tc.wantCodes)
						}
						if tc.wantNotes != nil && !slices.Equal(e.r.notes, tc.wantNotes) {
							t.Errorf("%s: got handler notes %q, want %q", e.name, e.r.notes, tc.wantNotes)
						}
					}
					if diffs := compareEngines(reqs, std, lean); len(diffs) > 0 {
						t.Error(describeDiff(raw, std, lean, diffs))
					}
				})
			}
		})
	}
}

// maxFuzzInput bounds a FuzzLeanDiff input: past the head limit and a
// body or two there is nothing new to find, only time to spend.
const maxFuzzInput = 64 << 10

// FuzzLeanDiff sends each input, as one connection's bytes followed by a
// half-close, to both engines serving the echo handler, and compares their
// answers as TestLeanMatchesStdlib does. The seeds are that test's
// streams.
func FuzzLeanDiff(f *testing.F) {
	for _, tc := range leanDiffCases() {
		if len(tc.raw) <= maxFuzzInput {
			f.Add([]byte(tc.raw))
		}
	}
	p := startPair(f, func(notes *handlerNotes) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			notes.running.Add(1)
			defer notes.running.Add(-1)
			dumpRequest(w, r)
		})
	})
	f.Fuzz(func(t *testing.T, raw []byte) {
		if len(raw) > maxFuzzInput {
			return
		}
		reqs := parseRequests(raw)
		std, lean := p.run(t, raw, reqs, true, time.Second)
		if diffs := compareEngines(reqs, std, lean); len(diffs) > 0 {
			t.Fatal(describeDiff(raw, std, lean, diffs))
		}
	})
}
