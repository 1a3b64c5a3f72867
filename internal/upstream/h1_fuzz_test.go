package upstream

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
)

// FuzzResponse feeds arbitrary bytes to the strict response reader as an
// upstream's answer to a GET: it must never panic, never read past the
// limit, and whatever it accepts must be a head net/http could relay (no
// CR, LF or NUL in a field) with one framing.
func FuzzResponse(f *testing.F) {
	for _, seed := range []string{
		// Valid: each framing, interim responses, trailers.
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nGrpc-Status: 0\r\n\r\n",
		"HTTP/1.0 200 OK\r\n\r\nto the close",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
		// Refused: the smuggling classics.
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n",
		"HTTP/1.1 200 OK\nContent-Length: 0\n\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		const limit = 4096
		br := bufio.NewReaderSize(strings.NewReader(s), 64)
		hr := &headReader{br: br, limit: limit}
		var rh responseHead
		for range maxInterim + 1 {
			if err := hr.read(&rh); err != nil {
				return
			}
			if hr.n > limit+2 {
				t.Fatalf("head of %d bytes accepted, limit %d", hr.n, limit)
			}
			if rh.status >= 200 || rh.status == 101 {
				break
			}
		}
		if rh.status < 200 && rh.status != 101 {
			return
		}
		if err := rh.framing("GET"); err != nil {
			if !errors.Is(err, ErrResponseFraming) {
				t.Fatalf("framing error %v does not wrap ErrResponseFraming", err)
			}
			return
		}
		for name, values := range rh.header {
			if !validFieldName(name) {
				t.Fatalf("accepted field name %q", name)
			}
			for _, v := range values {
				if !validFieldValue(v) {
					t.Fatalf("accepted field value %q", v)
				}
			}
		}
		if rh.chunked && rh.length >= 0 {
			t.Fatalf("both chunked and length %d", rh.length)
		}
		var body io.Reader
		switch {
		case !rh.hasBody("GET"):
			return
		case rh.chunked:
			body = &chunkedReader{hr: hr}
		case rh.length >= 0:
			body = &lengthReader{br: br, remain: rh.length}
		default:
			body = br
		}
		n, _ := io.Copy(io.Discard, body)
		if n > int64(len(s)) {
			t.Fatalf("read %d body bytes from %d input bytes", n, len(s))
		}
	})
}
