package listener

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
)

// FuzzStrictHead checks that the strict check never accepts a head that
// net/http refuses or reads differently: whatever it accepts,
// http.ReadRequest must accept too, with the same method, target, path and
// body framing. (The check is stricter than net/http by design; the
// opposite direction is FuzzValidHead's.)
func FuzzStrictHead(f *testing.F) {
	seeds := []string{
		// Valid heads, one per framing.
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /p?q HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET / HTTP/1.0\r\n\r\n",
		"CONNECT a.example:443 HTTP/1.1\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\n\r\n",
		"GET http://a.example/x HTTP/1.1\r\n\r\n",
		// The smuggling classics the check must refuse.
		"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
		"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
		"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
		"POST / HTTP/1.1\r\nTransfer-Encoding:\r\n chunked\r\n\r\n",
		"POST / HTTP/1.1\nTransfer-Encoding: chunked\n\n",
		"POST / HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n",
		"GET / HTTP/1.1\r\nX: a\x00\r\n\r\n",
		// Odd but valid shapes near the edges of the grammar.
		"GET / HTTP/1.1\r\nX:\r\n\r\n",
		"GET / HTTP/1.1\r\nX: \t a \t\r\n\r\n",
		"GET /%41 HTTP/1.1\r\nContent-Length: 00\r\n\r\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		h, n, err := checkHead(data, 1<<16)
		if err != nil || n == 0 {
			return
		}
		req, rerr := http.ReadRequest(bufio.NewReader(bytes.NewReader(data[:n])))
		if rerr != nil {
			t.Fatalf("strict check accepted %q; net/http refuses it: %v", data[:n], rerr)
		}
		compareWithNetHTTP(t, data[:n], h, req)
	})
}

// FuzzValidHead generates valid request heads from a seed: the strict
// check must accept every one, and agree with net/http on it.
func FuzzValidHead(f *testing.F) {
	for seed := range uint64(16) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, seed uint64) {
		raw := genHead(rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)))
		h, n, err := checkHead([]byte(raw), 1<<16)
		if err != nil || n != len(raw) {
			t.Fatalf("strict check refused the valid head %q: n=%d err=%v", raw, n, err)
		}
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
		if err != nil {
			t.Fatalf("the generator made %q, which net/http refuses: %v", raw, err)
		}
		compareWithNetHTTP(t, []byte(raw), h, req)
	})
}

func compareWithNetHTTP(t *testing.T, raw []byte, h head, req *http.Request) {
	t.Helper()
	if req.Method != h.method || req.RequestURI != h.target || req.URL.Path != h.path {
		t.Fatalf("%q: got method %q target %q path %q, net/http reads %q %q %q", raw, h.method, h.target, h.path, req.Method, req.RequestURI, req.URL.Path)
	}
	chunked := len(req.TransferEncoding) == 1 && req.TransferEncoding[0] == "chunked"
	if chunked != h.chunked || req.ContentLength != h.contentLength {
		t.Fatalf("%q: got chunked %v length %d, net/http reads chunked %v length %d", raw, h.chunked, h.contentLength, chunked, req.ContentLength)
	}
}

// genHead builds a random valid HTTP/1.x request head.
func genHead(r *rand.Rand) string {
	pick := func(s ...string) string { return s[r.IntN(len(s))] }
	tchars := "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~"
	token := func(n int) string {
		var b strings.Builder
		for range 1 + r.IntN(n) {
			b.WriteByte(tchars[r.IntN(len(tchars))])
		}
		return b.String()
	}
	pathChars := "abcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/"
	var b strings.Builder
	method := pick("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", strings.ToUpper(token(8)))
	if method == "CONNECT" {
		method = "GET"
	}
	b.WriteString(method + " /")
	for range r.IntN(20) {
		if r.IntN(10) == 0 {
			fmt.Fprintf(&b, "%%%02X", r.IntN(256))
		} else {
			b.WriteByte(pathChars[r.IntN(len(pathChars))])
		}
	}
	if r.IntN(3) == 0 {
		b.WriteString("?q=" + token(5))
	}
	version := pick("HTTP/1.1", "HTTP/1.0")
	b.WriteString(" " + version + "\r\n")
	if version == "HTTP/1.1" || r.IntN(2) == 0 {
		b.WriteString(pick("Host", "host", "HOST") + ": " + pick("a.example", "a.example:8080", "127.0.0.1") + "\r\n")
	}
	for range r.IntN(6) {
		name := token(12)
		switch strings.ToLower(name) {
		case "host", "content-length", "transfer-encoding", "trailer":
			name = "X-" + name
		}
		value := ""
		for range r.IntN(30) {
			c := byte(0x20 + r.IntN(0x5f)) // SP and VCHAR
			if r.IntN(20) == 0 {
				c = byte(0x80 + r.IntN(0x80)) // obs-text
			}
			value += string(c)
		}
		b.WriteString(name + ":" + pick("", " ", "  ", "\t") + strings.Trim(value, " ") + pick("", " ", "\t") + "\r\n")
	}
	switch r.IntN(3) {
	case 1:
		b.WriteString(pick("Content-Length", "content-length") + ": " + fmt.Sprint(r.Int64N(1<<40)) + "\r\n")
	case 2:
		if version == "HTTP/1.1" {
			b.WriteString(pick("Transfer-Encoding", "transfer-encoding") + ": " + pick("chunked", "Chunked") + "\r\n")
		}
	}
	b.WriteString("\r\n")
	return b.String()
}
