package listener

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckHead(t *testing.T) {
	tests := []struct {
		name    string
		head    string
		want    head // method, target, contentLength, chunked, expectContinue, tunnel
		wantErr error
	}{
		{name: "get", head: "GET / HTTP/1.1\r\nHost: a\r\n\r\n", want: head{method: "GET", target: "/"}},
		{name: "http/1.0 without host", head: "GET /x?y=1 HTTP/1.0\r\n\r\n", want: head{method: "GET", target: "/x?y=1"}},
		{name: "content-length", head: "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n", want: head{method: "POST", target: "/p", contentLength: 12}},
		{name: "content-length leading zeros", head: "POST / HTTP/1.1\r\nContent-Length: 007\r\n\r\n", want: head{method: "POST", target: "/", contentLength: 7}},
		{name: "content-length OWS", head: "POST / HTTP/1.1\r\nContent-Length: \t5 \r\n\r\n", want: head{method: "POST", target: "/", contentLength: 5}},
		{name: "chunked", head: "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", want: head{method: "POST", target: "/", contentLength: -1, chunked: true}},
		{name: "chunked any case", head: "POST / HTTP/1.1\r\ntransfer-encoding: ChUnKeD\r\n\r\n", want: head{method: "POST", target: "/", contentLength: -1, chunked: true}},
		{name: "expect 100-continue", head: "PUT / HTTP/1.1\r\nExpect: 100-Continue\r\nTransfer-Encoding: chunked\r\n\r\n", want: head{method: "PUT", target: "/", contentLength: -1, chunked: true, expectContinue: true}},
		{name: "websocket upgrade", head: "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", want: head{method: "GET", target: "/ws", tunnel: true}},
		{name: "connect", head: "CONNECT example.com:443 HTTP/1.1\r\n\r\n", want: head{method: "CONNECT", target: "example.com:443", tunnel: true}},
		{name: "options star", head: "OPTIONS * HTTP/1.1\r\n\r\n", want: head{method: "OPTIONS", target: "*"}},
		{name: "absolute form", head: "GET http://a.example/x HTTP/1.1\r\n\r\n", want: head{method: "GET", target: "http://a.example/x"}},
		{name: "obs-text value", head: "GET / HTTP/1.1\r\nX: caf\xc3\xa9\r\n\r\n", want: head{method: "GET", target: "/"}},
		{name: "empty value", head: "GET / HTTP/1.1\r\nX:\r\n\r\n", want: head{method: "GET", target: "/"}},

		{name: "CL and TE", head: "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", wantErr: errCLAndTE},
		{name: "TE and CL", head: "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", wantErr: errCLAndTE},
		{name: "two different CL", head: "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", wantErr: errManyCL},
		{name: "two identical CL", head: "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", wantErr: errManyCL},
		{name: "CL list", head: "POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n", wantErr: errBadCL},
		{name: "CL sign", head: "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n", wantErr: errBadCL},
		{name: "CL negative", head: "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", wantErr: errBadCL},
		{name: "CL empty", head: "POST / HTTP/1.1\r\nContent-Length:\r\n\r\n", wantErr: errBadCL},
		{name: "CL overflow", head: "POST / HTTP/1.1\r\nContent-Length: 9223372036854775808\r\n\r\n", wantErr: errBadCL},
		{name: "CL hex", head: "POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n", wantErr: errBadCL},
		{name: "TE gzip", head: "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", wantErr: errTE},
		{name: "TE chunked not final", head: "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", wantErr: errTE},
		{name: "TE gzip then chunked", head: "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", wantErr: errTE},
		{name: "TE twice", head: "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", wantErr: errTE},
		{name: "TE misspelt", head: "POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n", wantErr: errTE},
		{name: "TE vertical tab", head: "POST / HTTP/1.1\r\nTransfer-Encoding: \x0bchunked\r\n\r\n", wantErr: errFieldValue},
		{name: "TE in HTTP/1.0", head: "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", wantErr: errTE10},
		{name: "obs-fold", head: "GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", wantErr: errObsFold},
		{name: "obs-fold tab", head: "GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n", wantErr: errObsFold},
		{name: "space before first field", head: "GET / HTTP/1.1\r\n Host: a\r\n\r\n", wantErr: errObsFold},
		{name: "folded TE", head: "POST / HTTP/1.1\r\nTransfer-Encoding:\r\n chunked\r\n\r\n", wantErr: errObsFold},
		{name: "bare LF end", head: "GET / HTTP/1.1\nHost: a\n\n", wantErr: errBareLF},
		{name: "bare LF in head", head: "GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", wantErr: errBareLF},
		{name: "bare LF final", head: "GET / HTTP/1.1\r\nHost: a\r\n\n", wantErr: errBareLF},
		{name: "bare CR", head: "GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", wantErr: errBareCR},
		{name: "space before colon", head: "POST / HTTP/1.1\r\nContent-Length : 5\r\n\r\n", wantErr: errSpaceColon},
		{name: "tab before colon", head: "POST / HTTP/1.1\r\nTransfer-Encoding\t: chunked\r\n\r\n", wantErr: errSpaceColon},
		{name: "invalid name char", head: "GET / HTTP/1.1\r\nX(y): a\r\n\r\n", wantErr: errFieldName},
		{name: "empty name", head: "GET / HTTP/1.1\r\n: a\r\n\r\n", wantErr: errFieldName},
		{name: "no colon", head: "GET / HTTP/1.1\r\nHost a\r\n\r\n", wantErr: errNoColon},
		{name: "NUL in value", head: "GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n", wantErr: errFieldValue},
		{name: "DEL in value", head: "GET / HTTP/1.1\r\nX: a\x7fb\r\n\r\n", wantErr: errFieldValue},
		{name: "two hosts", head: "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", wantErr: errManyHost},
		{name: "trailer names CL", head: "POST / HTTP/1.1\r\nTrailer: Content-Length\r\nTransfer-Encoding: chunked\r\n\r\n", wantErr: errTrailerKey},
		{name: "double space in request line", head: "GET  / HTTP/1.1\r\n\r\n", wantErr: errRequestLine},
		{name: "leading empty line", head: "\r\nGET / HTTP/1.1\r\n\r\n", wantErr: errRequestLine},
		{name: "lowercase version", head: "GET / http/1.1\r\n\r\n", wantErr: errVersion},
		{name: "HTTP/1.2", head: "GET / HTTP/1.2\r\n\r\n", wantErr: errVersion},
		{name: "HTTP/2 preface without h2c", head: "PRI * HTTP/2.0\r\n\r\n", wantErr: errVersion},
		{name: "trailing space in request line", head: "GET / HTTP/1.1 \r\n\r\n", wantErr: errVersion},
		{name: "method not a token", head: "G(T / HTTP/1.1\r\n\r\n", wantErr: errRequestLine},
		{name: "control in target", head: "GET /a\x01 HTTP/1.1\r\n\r\n", wantErr: errTarget},
		{name: "non-ASCII target", head: "GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n", wantErr: errTarget},
		{name: "bad escape in target", head: "GET /%zz HTTP/1.1\r\n\r\n", wantErr: errTarget},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, n, err := checkHead([]byte(tt.head), 1<<16)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("got error %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if n != len(tt.head) {
				t.Errorf("got length %d, want %d", n, len(tt.head))
			}
			h.path = ""
			if h != tt.want {
				t.Errorf("got %+v, want %+v", h, tt.want)
			}
		})
	}
}

func TestCheckHeadIncompleteAndLimit(t *testing.T) {
	full := "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
	for i := range len(full) {
		if _, n, err := checkHead([]byte(full[:i]), 1<<16); n != 0 || err != nil {
			t.Fatalf("prefix %q: got n=%d err=%v, want incomplete", full[:i], n, err)
		}
	}
	big := "GET / HTTP/1.1\r\nX: " + strings.Repeat("a", 100) + "\r\n\r\n"
	if _, _, err := checkHead([]byte(big), 64); !errors.Is(err, errTooLarge) {
		t.Errorf("complete head over the limit: got %v, want errTooLarge", err)
	}
	if _, _, err := checkHead([]byte(big[:80]), 64); !errors.Is(err, errTooLarge) {
		t.Errorf("incomplete head over the limit: got %v, want errTooLarge", err)
	}
}

func TestParseChunkLine(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		size    int64
		n       int // 0: incomplete
		wantErr error
	}{
		{name: "hex", line: "1aF\r\nxyz", size: 0x1af, n: 5},
		{name: "zero", line: "0\r\n", size: 0, n: 3},
		{name: "leading zeros", line: "000a\r\n", size: 10, n: 6},
		{name: "extension", line: "5;name=value\r\n", size: 5, n: 14},
		{name: "extension quoted", line: "5;a=\"b c\\\"\";d\r\n", size: 5, n: 15},
		{name: "sixteen digits max int64", line: "7fffffffffffffff\r\n", size: 1<<63 - 1, n: 18},
		{name: "incomplete", line: "5", n: 0},
		{name: "incomplete CR", line: "5\r", n: 0},
		{name: "empty", line: "\r\n", wantErr: errChunkSize},
		{name: "not hex", line: "g\r\n", wantErr: errChunkSize},
		{name: "sign", line: "-5\r\n", wantErr: errChunkSize},
		{name: "0x prefix", line: "0x5\r\n", wantErr: errChunkSize},
		{name: "space after size", line: "5 \r\n", wantErr: errChunkSize},
		{name: "space before extension", line: "5 ;a\r\n", wantErr: errChunkSize},
		{name: "overflow uint64", line: "10000000000000000\r\n", wantErr: errChunkSize},
		{name: "overflow int64", line: "8000000000000000\r\n", wantErr: errChunkSize},
		{name: "bare LF", line: "5\nhello", wantErr: errBareLF},
		{name: "bare CR", line: "5\rx", wantErr: errBareCR},
		{name: "bad extension", line: "5;\r\n", wantErr: errChunkSize},
		{name: "unterminated quote", line: "5;a=\"b\r\n", wantErr: errChunkSize},
		{name: "line too long", line: "5;a=" + strings.Repeat("b", maxChunkLine), wantErr: errChunkSize},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			size, n, err := parseChunkLine([]byte(tt.line))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("got error %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil || size != tt.size || n != tt.n {
				t.Errorf("got size %d, n %d, err %v; want size %d, n %d", size, n, err, tt.size, tt.n)
			}
		})
	}
}
