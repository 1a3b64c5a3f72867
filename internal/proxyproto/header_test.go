package proxyproto

import (
	"errors"
	"testing"
)

func TestParseIncomplete(t *testing.T) {
	whole := [][]byte{
		[]byte("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n"),
		v2Header(0x21, 0x11, inet4("192.0.2.1", "198.51.100.2", 56324, 443), tlv(0x02, "example.com")),
	}
	for _, h := range whole {
		for i := range len(h) {
			if _, _, err := parse(h[:i]); !errors.Is(err, errIncomplete) {
				t.Errorf("parse(%q) error %v, want errIncomplete", h[:i], err)
			}
		}
		if _, n, err := parse(h); err != nil || n != len(h) {
			t.Errorf("parse(%q) = n %d, error %v; want n %d, no error", h, n, err, len(h))
		}
	}
}

// FuzzParse checks that parse never panics, never claims more bytes than it
// was given, and that every v1 header it accepts round-trips through
// formatV1.
func FuzzParse(f *testing.F) {
	seeds := [][]byte{
		// v1, the three protocols.
		[]byte("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET / HTTP/1.1\r\n"),
		[]byte("PROXY TCP6 2001:db8::1 2001:db8::2 4000 8443\r\n"),
		[]byte("PROXY UNKNOWN\r\n"),
		// v1, the longest line the spec allows (107 bytes).
		[]byte("PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"),
		// v1 near misses: LF only, zone, leading zero, a truncated line.
		[]byte("PROXY TCP4 192.0.2.1 198.51.100.2 1 2\n"),
		[]byte("PROXY TCP6 fe80::1%eth0 2001:db8::2 1 2\r\n"),
		[]byte("PROXY TCP4 192.0.2.01 198.51.100.2 1 2\r\n"),
		[]byte("PROXY TCP4 192.0.2.1"),
		// v2: PROXY over IPv4, IPv6, with TLVs; LOCAL; UNIX.
		v2Header(0x21, 0x11, inet4("192.0.2.1", "198.51.100.2", 56324, 443)),
		v2Header(0x21, 0x21, inet6("2001:db8::1", "2001:db8::2", 4000, 8443)),
		v2Header(0x21, 0x11, inet4("192.0.2.1", "198.51.100.2", 1, 2), tlv(0x02, "example.com")),
		v2Header(0x20, 0x00),
		v2Header(0x21, 0x31, make([]byte, 216)),
		// v2 near misses: length past the data, short address block.
		v2Header(0x21, 0x21, inet4("192.0.2.1", "198.51.100.2", 1, 2)),
		append(v2Signature[:12:12], 0x21, 0x11, 0xff, 0xff),
		// Not a header at all.
		[]byte("GET / HTTP/1.1\r\n\r\n"),
		{},
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := parse(b)
		if err != nil {
			return
		}
		if n <= 0 || n > len(b) {
			t.Fatalf("parse(%q) consumed %d bytes of %d", b, n, len(b))
		}
		if h.version != 1 {
			return
		}
		line := formatV1(h)
		h2, n2, err := parse([]byte(line))
		if err != nil || n2 != len(line) {
			t.Fatalf("parse(formatV1(parse(%q))) = n %d, error %v", b, n2, err)
		}
		if h2.local != h.local || h2.src != h.src || h2.dst != h.dst {
			t.Fatalf("round trip of %q: got %+v, want %+v", b, h2, h)
		}
	})
}
