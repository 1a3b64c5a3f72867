package proxyproto

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"
)

var (
	loopback  = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	elsewhere = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
)

// v2Header builds a binary header: the signature, the version and command
// byte, the family and protocol byte, the length, then body (addresses and
// TLVs).
func v2Header(verCmd, famProto byte, body ...[]byte) []byte {
	var rest []byte
	for _, b := range body {
		rest = append(rest, b...)
	}
	h := append([]byte(nil), v2Signature...)
	h = append(h, verCmd, famProto)
	h = binary.BigEndian.AppendUint16(h, uint16(len(rest)))
	return append(h, rest...)
}

// inet4 is the address block of TCP over IPv4.
func inet4(src, dst string, sport, dport uint16) []byte {
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	b := append(s[:], d[:]...)
	b = binary.BigEndian.AppendUint16(b, sport)
	return binary.BigEndian.AppendUint16(b, dport)
}

// inet6 is the address block of TCP over IPv6.
func inet6(src, dst string, sport, dport uint16) []byte {
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	b := append(s[:], d[:]...)
	b = binary.BigEndian.AppendUint16(b, sport)
	return binary.BigEndian.AppendUint16(b, dport)
}

// tlv encodes one type-length-value entry (section 2.2.7).
func tlv(typ byte, value string) []byte {
	b := []byte{typ}
	b = binary.BigEndian.AppendUint16(b, uint16(len(value)))
	return append(b, value...)
}

func TestListener(t *testing.T) {
	const payload = "GET / HTTP/1.1\r\n\r\n"
	// "" in remote or local means the socket's own address.
	tests := []struct {
		name    string
		trusted []netip.Prefix
		chunks  [][]byte
		hold    bool // keep the client's side open (for the timeout case)
		remote  string
		local   string
		data    string // bytes Read returns after the header
		wantErr string // substring of the Read error; "" for none
	}{
		{
			name:   "v1 TCP4",
			chunks: [][]byte{[]byte("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n" + payload)},
			remote: "192.0.2.1:56324", local: "198.51.100.2:443", data: payload,
		},
		{
			name:   "v1 TCP6",
			chunks: [][]byte{[]byte("PROXY TCP6 2001:db8::1 2001:db8::2 4000 8443\r\n" + payload)},
			remote: "[2001:db8::1]:4000", local: "[2001:db8::2]:8443", data: payload,
		},
		{
			name:   "v1 UNKNOWN keeps the socket addresses",
			chunks: [][]byte{[]byte("PROXY UNKNOWN\r\n" + payload)},
			data:   payload,
		},
		{
			name:   "v1 UNKNOWN with addresses ignores them",
			chunks: [][]byte{[]byte("PROXY UNKNOWN ffff:f...:ffff ffff:f...:ffff 65535 65535\r\n" + payload)},
			data:   payload,
		},
		{
			name:   "v1 header alone, no payload",
			chunks: [][]byte{[]byte("PROXY TCP4 192.0.2.1 198.51.100.2 1 2\r\n")},
			remote: "192.0.2.1:1", local: "198.51.100.2:2",
		},
		{
			name: "v1 split across writes",
			chunks: [][]byte{
				[]byte("PRO"), []byte("XY TCP4 192.0.2.1 198.51"), []byte(".100.2 56324 443\r"),
				[]byte("\n" + payload[:5]), []byte(payload[5:]),
			},
			remote: "192.0.2.1:56324", local: "198.51.100.2:443", data: payload,
		},
		{
			name:   "v2 IPv4",
			chunks: [][]byte{v2Header(0x21, 0x11, inet4("192.0.2.1", "198.51.100.2", 56324, 443)), []byte(payload)},
			remote: "192.0.2.1:56324", local: "198.51.100.2:443", data: payload,
		},
		{
			name:   "v2 IPv6",
			chunks: [][]byte{v2Header(0x21, 0x21, inet6("2001:db8::1", "2001:db8::2", 4000, 8443)), []byte(payload)},
			remote: "[2001:db8::1]:4000", local: "[2001:db8::2]:8443", data: payload,
		},
		{
			name: "v2 IPv4 with TLVs",
			chunks: [][]byte{v2Header(0x21, 0x11,
				inet4("192.0.2.1", "198.51.100.2", 56324, 443),
				tlv(0x02, "api.example.com"), // PP2_TYPE_AUTHORITY
				tlv(0x04, "\x00\x00\x00"),    // PP2_TYPE_NOOP
			), []byte(payload)},
			remote: "192.0.2.1:56324", local: "198.51.100.2:443", data: payload,
		},
		{
			name:   "v2 LOCAL keeps the socket addresses",
			chunks: [][]byte{v2Header(0x20, 0x00), []byte(payload)},
			data:   payload,
		},
		{
			name:   "v2 LOCAL ignores an address block",
			chunks: [][]byte{v2Header(0x20, 0x11, inet4("192.0.2.1", "198.51.100.2", 1, 2)), []byte(payload)},
			data:   payload,
		},
		{
			name:   "v2 UNIX keeps the socket addresses",
			chunks: [][]byte{v2Header(0x21, 0x31, make([]byte, 216)), []byte(payload)},
			data:   payload,
		},
		{
			name: "v2 split across writes",
			chunks: func() [][]byte {
				h := append(v2Header(0x21, 0x11, inet4("192.0.2.1", "198.51.100.2", 56324, 443)), payload...)
				return [][]byte{h[:5], h[5:13], h[13:20], h[20:]}
			}(),
			remote: "192.0.2.1:56324", local: "198.51.100.2:443", data: payload,
		},
		{
			name:    "missing header",
			chunks:  [][]byte{[]byte(payload)},
			wantErr: "no PROXY protocol signature",
		},
		{
			name:    "v1 LF without CR",
			chunks:  [][]byte{[]byte("PROXY TCP4 192.0.2.1 198.51.100.2 1 2\n" + payload)},
			wantErr: "CRLF",
		},
		{
			name:    "v1 unknown protocol",
			chunks:  [][]byte{[]byte("PROXY UDP4 192.0.2.1 198.51.100.2 1 2\r\n")},
			wantErr: "unknown protocol",
		},
		{
			name:    "v1 address of the wrong family",
			chunks:  [][]byte{[]byte("PROXY TCP4 2001:db8::1 198.51.100.2 1 2\r\n")},
			wantErr: "does not match",
		},
		{
			name:    "v1 port out of range",
			chunks:  [][]byte{[]byte("PROXY TCP4 192.0.2.1 198.51.100.2 65536 2\r\n")},
			wantErr: "bad port",
		},
		{
			name:    "v1 double space",
			chunks:  [][]byte{[]byte("PROXY TCP4  192.0.2.1 198.51.100.2 1 2\r\n")},
			wantErr: "source address",
		},
		{
			name:    "v1 too long",
			chunks:  [][]byte{[]byte("PROXY TCP6 " + strings.Repeat("1", 120) + "\r\n")},
			wantErr: "longer than 107",
		},
		{
			name:    "v2 bad version",
			chunks:  [][]byte{v2Header(0x11, 0x11, inet4("192.0.2.1", "198.51.100.2", 1, 2))},
			wantErr: "unsupported version",
		},
		{
			name:    "v2 bad command",
			chunks:  [][]byte{v2Header(0x22, 0x11, inet4("192.0.2.1", "198.51.100.2", 1, 2))},
			wantErr: "unknown command",
		},
		{
			name:    "v2 address block too short",
			chunks:  [][]byte{v2Header(0x21, 0x21, inet4("192.0.2.1", "198.51.100.2", 1, 2))},
			wantErr: "want 36",
		},
		{
			name:    "peer closes inside the header",
			chunks:  [][]byte{[]byte("PROXY TCP4 192.0.2.1")},
			wantErr: "incomplete header after 20 bytes: EOF",
		},
		{
			name:    "peer sends nothing",
			hold:    true,
			wantErr: "i/o timeout",
		},
		{
			name:    "untrusted peer's PROXY line is passed through",
			trusted: elsewhere,
			chunks:  [][]byte{[]byte("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n" + payload)},
			data:    "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n" + payload,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			trusted := tt.trusted
			if trusted == nil {
				trusted = loopback
			}
			inner, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			// Generous, so a loaded CI machine cannot fail a good case;
			// short where the case waits for it.
			timeout := 5 * time.Second
			if tt.hold {
				timeout = 300 * time.Millisecond
			}
			ln := NewListener(inner, trusted, timeout)
			defer ln.Close()

			client, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			go func() {
				for i, c := range tt.chunks {
					if i > 0 {
						time.Sleep(10 * time.Millisecond) // separate TCP segments
					}
					if _, err := client.Write(c); err != nil {
						return
					}
				}
				if !tt.hold {
					client.(*net.TCPConn).CloseWrite()
				}
			}()

			srv, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()

			wantRemote, wantLocal := tt.remote, tt.local
			if wantRemote == "" {
				wantRemote = client.LocalAddr().String()
			}
			if wantLocal == "" {
				wantLocal = client.RemoteAddr().String()
			}
			if tt.wantErr == "" {
				if got := srv.RemoteAddr().String(); got != wantRemote {
					t.Errorf("RemoteAddr() = %s, want %s", got, wantRemote)
				}
				if got := srv.LocalAddr().String(); got != wantLocal {
					t.Errorf("LocalAddr() = %s, want %s", got, wantLocal)
				}
			}
			data, err := io.ReadAll(srv)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Read error %v, want none", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Read error %v, want one containing %q", err, tt.wantErr)
			}
			if string(data) != tt.data {
				t.Errorf("Read data %q, want %q", data, tt.data)
			}
			if tt.wantErr != "" {
				// A refused connection is closed: the client sees EOF.
				client.SetReadDeadline(time.Now().Add(2 * time.Second))
				if _, err := client.Read(make([]byte, 1)); err != io.EOF {
					t.Errorf("client Read after refusal: %v, want EOF", err)
				}
			}
		})
	}
}

// TestAcceptDoesNotBlock shows that a trusted peer that never sends its
// header does not stall the accept loop for the next connection.
func TestAcceptDoesNotBlock(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := NewListener(inner, loopback, 10*time.Second)
	defer ln.Close()

	silent, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	first, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	// first's header is never read here; reading it would block for 10s.

	good, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	if _, err := good.Write([]byte("PROXY TCP4 192.0.2.7 198.51.100.2 1000 80\r\n")); err != nil {
		t.Fatal(err)
	}
	done := make(chan string, 1)
	go func() {
		second, err := ln.Accept()
		if err != nil {
			done <- err.Error()
			return
		}
		defer second.Close()
		done <- second.RemoteAddr().String()
	}()
	select {
	case got := <-done:
		if got != "192.0.2.7:1000" {
			t.Errorf("second connection RemoteAddr() = %s, want 192.0.2.7:1000", got)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Accept blocked behind a silent connection")
	}
}

// TestDeadlineRestored shows that a read deadline the server set before
// the header was read is back in force after it.
func TestDeadlineRestored(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := NewListener(inner, loopback, 5*time.Second)
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if _, err := client.Write([]byte("PROXY UNKNOWN\r\n")); err != nil {
		t.Fatal(err)
	}
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	srv.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	start := time.Now()
	_, err = srv.Read(make([]byte, 1))
	if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("Read error %v, want a timeout", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Read returned after %v, want about 100ms (the caller's deadline)", d)
	}
}

// TestHTTP runs net/http over the listener: a trusted balancer's client
// address reaches the handler, and an untrusted peer's PROXY line is a bad
// request.
func TestHTTP(t *testing.T) {
	tests := []struct {
		name       string
		trusted    []netip.Prefix
		wantStatus int
		wantRemote string // "" when the handler must not run
	}{
		{name: "trusted", trusted: loopback, wantStatus: 200, wantRemote: "192.0.2.9:5555"},
		{name: "untrusted", trusted: elsewhere, wantStatus: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inner, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ln := NewListener(inner, tt.trusted, time.Second)
			remotes := make(chan string, 1)
			srv := &http.Server{
				Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					remotes <- r.RemoteAddr
				}),
				ReadHeaderTimeout: 2 * time.Second,
			}
			go srv.Serve(ln)
			defer srv.Close()

			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			req := "PROXY TCP4 192.0.2.9 198.51.100.2 5555 80\r\nGET / HTTP/1.1\r\nHost: example.com\r\n\r\n"
			if _, err := io.WriteString(c, req); err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			select {
			case got := <-remotes:
				if got != tt.wantRemote {
					t.Errorf("handler saw RemoteAddr %q, want %q", got, tt.wantRemote)
				}
			default:
				if tt.wantRemote != "" {
					t.Errorf("handler did not run, want RemoteAddr %q", tt.wantRemote)
				}
			}
		})
	}
}
