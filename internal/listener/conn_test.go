package listener

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"
)

// pieceConn is a net.Conn whose reads return its input in pieces of
// random sizes, so every parser state is entered mid-token.
type pieceConn struct {
	net.Conn
	in       []byte
	rnd      *rand.Rand
	maxPiece int
	out      bytes.Buffer
}

func (c *pieceConn) Read(p []byte) (int, error) {
	if len(c.in) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(c.in), 1+c.rnd.IntN(c.maxPiece))
	copy(p, c.in[:n])
	c.in = c.in[n:]
	return n, nil
}

func (c *pieceConn) Write(p []byte) (int, error) { return c.out.Write(p) }
func (c *pieceConn) RemoteAddr() net.Addr        { return &net.TCPAddr{} }

// readStream reads everything a strictConn returns for input, in reads of
// random sizes. Small reads (up to 64 bytes from pieces of up to 7) enter
// every parser state mid-token; large ones (up to 4 KiB, as net/http's
// buffer, from pieces of up to 300 bytes) take the path that checks heads
// in the reader's own buffer.
func readStream(t *testing.T, input string, seed uint64, h2c, large bool) (string, error) {
	t.Helper()
	rnd := rand.New(rand.NewPCG(seed, 1))
	maxPiece, bufSize := 7, 64
	if large {
		maxPiece, bufSize = 300, 4096
	}
	sc := newStrictConn(&pieceConn{in: []byte(input), rnd: rnd, maxPiece: maxPiece}, h2c, 1024, nil, nil)
	var out bytes.Buffer
	buf := make([]byte, bufSize)
	for out.Len() < 1<<16 {
		size := 1 + rnd.IntN(len(buf))
		if large && rnd.IntN(2) == 0 {
			size = len(buf) // as net/http's bufio.Reader reads
		}
		n, err := sc.Read(buf[:size])
		out.Write(buf[:n])
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			return out.String(), err
		}
	}
	return out.String(), nil
}

const (
	getReq     = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
	postReq    = "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world"
	chunkedReq = "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
	refusal    = "TORII-REFUSED-AMBIGUOUS-FRAMING\r\n\r\n"
)

func TestStrictConnStream(t *testing.T) {
	tests := []struct {
		name    string
		input   string
		h2c     bool
		want    string // what net/http gets
		err     bool   // Read fails after want (refused inside a body)
		endless bool   // want is only a prefix of an endless stream
	}{
		{name: "one request", input: getReq, want: getReq},
		{name: "keep-alive mix", input: getReq + postReq + chunkedReq + getReq, want: getReq + postReq + chunkedReq + getReq},
		{name: "body looks like a smuggled head", input: "POST / HTTP/1.1\r\nContent-Length: 22\r\n\r\nGET / HTTP/1.1\nX: y\n\n" + getReq, want: "POST / HTTP/1.1\r\nContent-Length: 22\r\n\r\nGET / HTTP/1.1\nX: y\n\n" + getReq},
		{name: "chunk data looks like a head", input: "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nGET \r\n0\r\n\r\n", want: "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nGET \r\n0\r\n\r\n"},
		{name: "h2c preface passes", h2c: true, input: h2Preface + "\x00\x00\x00\x04\x00\x00\x00\x00\x00", want: h2Preface + "\x00\x00\x00\x04\x00\x00\x00\x00\x00"},
		{name: "h2c on, HTTP/1 still checked", h2c: true, input: getReq + "GET / HTTP/1.1\nHost: x\n\n", want: getReq + refusal},
		{name: "preface without h2c refused", input: h2Preface, want: refusal},

		{name: "smuggled CL+TE after a valid request", input: getReq + "POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", want: getReq + refusal},
		{name: "bare LF after a valid request", input: postReq + "GET / HTTP/1.1\nHost: x\n\n", want: postReq + refusal},
		{name: "first chunk line bad: head held and dropped", input: "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", want: refusal},
		{name: "first chunk line bare LF", input: "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n", want: refusal},
		{name: "chunk size overflow", input: "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n", want: refusal},
		{name: "later chunk bad: body read fails", input: "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n-1\r\n", want: "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", err: true},
		{name: "chunk data without CRLF", input: "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", want: "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello", err: true},
		{name: "bad trailer", input: "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: a\r\n folded\r\n\r\n", want: "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n", err: true},
		{name: "expect 100-continue head not held", input: "POST / HTTP/1.1\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", want: "POST / HTTP/1.1\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n", err: true},
		{name: "oversized head", input: "GET / HTTP/1.1\r\nX: " + strings.Repeat("a", 2000) + "\r\n\r\n", want: "GET / HTTP/1.1\r\nX-Torii-Refused: aaaaaaaa", endless: true},
		{name: "oversized head after a valid request", input: getReq + "GET / HTTP/1.1\r\nX: " + strings.Repeat("a", 2000), want: getReq + "GET / HTTP/1.1\r\nX-Torii-Refused: aaaaaaaa", endless: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for seed := range uint64(40) {
				large := seed%2 == 1
				got, err := readStream(t, tt.input, seed, tt.h2c, large)
				if tt.endless {
					if !strings.HasPrefix(got, tt.want) || len(got) < 1<<16 {
						t.Fatalf("seed %d: got %q (%d bytes), want an endless stream starting %q", seed, short(got), len(got), tt.want)
					}
					continue
				}
				if got != tt.want {
					t.Fatalf("seed %d: got %q, want %q", seed, short(got), tt.want)
				}
				var fe *FramingError
				if tt.err != errors.As(err, &fe) {
					t.Fatalf("seed %d: got error %v, want a FramingError: %v", seed, err, tt.err)
				}
			}
		})
	}
}

// TestStrictConnTunnel checks that the bytes after an Upgrade request pass
// unchecked only once the response switched protocols.
func TestStrictConnTunnel(t *testing.T) {
	upgrade := "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
	frames := "\x81\x05hello\n\n garbage that is not HTTP"
	tests := []struct {
		name     string
		response []string // written in these pieces
		want     string
	}{
		{name: "101 switches", response: []string{"HTTP/1.1 101 Switching Protocols\r\n\r\n"}, want: upgrade + frames},
		{name: "101 written bytewise", response: strings.Split("HTTP/1.1 101 Switching Protocols\r\n\r\n", ""), want: upgrade + frames},
		{name: "103 then 101", response: []string{"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 1", "01 Switching Protocols\r\n\r\n"}, want: upgrade + frames},
		{name: "refused upgrade keeps checking", response: []string{"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"}, want: upgrade + refusal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, server := net.Pipe()
			defer client.Close()
			sc := newStrictConn(server, false, 1024, nil, nil)
			defer sc.Close()
			go func() {
				client.Write([]byte(upgrade))
			}()
			buf := make([]byte, 4096)
			got := readN(t, sc, buf, len(upgrade))
			// The server answers, then the client sends its frames.
			go func() {
				for _, piece := range tt.response {
					sc.Write([]byte(piece))
				}
			}()
			readAll(client, len(strings.Join(tt.response, "")))
			go client.Write([]byte(frames))
			got += readN(t, sc, buf, len(tt.want)-len(upgrade))
			if got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// short cuts s for a failure message.
func short(s string) string {
	if len(s) > 300 {
		return s[:300] + "..."
	}
	return s
}

func readN(t *testing.T, c net.Conn, buf []byte, n int) string {
	t.Helper()
	var out []byte
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for len(out) < n {
		k, err := c.Read(buf[:min(len(buf), n-len(out))])
		out = append(out, buf[:k]...)
		if err != nil {
			t.Fatalf("read after %q: %v", out, err)
		}
	}
	return string(out)
}

func readAll(c net.Conn, n int) {
	buf := make([]byte, n)
	io.ReadFull(c, buf)
}

// BenchmarkStrictConn measures the check's cost per request on a
// keep-alive connection: a GET, a Content-Length POST and a chunked POST.
func BenchmarkStrictConn(b *testing.B) {
	stream := []byte(getReq + postReq + chunkedReq)
	buf := make([]byte, 4096)
	b.ReportAllocs()
	b.SetBytes(int64(len(stream)))
	sc := newStrictConn(&loopConn{data: stream}, false, 65536, nil, nil)
	for b.Loop() {
		for n := 0; n < len(stream); {
			k, err := sc.Read(buf)
			if err != nil {
				b.Fatal(err)
			}
			n += k
		}
	}
}

// loopConn returns data over and over, one copy per Read.
type loopConn struct {
	net.Conn
	data []byte
}

func (c *loopConn) Read(p []byte) (int, error) { return copy(p, c.data), nil }
