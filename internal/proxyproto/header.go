// Package proxyproto accepts the PROXY protocol, versions 1 (text) and 2
// (binary), from trusted load balancers, so a client's address survives an
// L4 load balancer. The wire format is HAProxy's
// https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt; section
// numbers in comments refer to it.
//
// NewListener wraps a net.Listener. A connection from a trusted peer must
// start with a PROXY header; its RemoteAddr and LocalAddr then report the
// addresses the header carries. A connection from any other peer is passed
// through untouched: a PROXY header from it reaches the HTTP server as
// ordinary bytes and is refused there as a bad request.
package proxyproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

const (
	// v1MaxLen is the longest v1 header, CRLF included (section 2.1).
	v1MaxLen = 107
	// v2HeaderLen is the fixed part of a v2 header: signature, version and
	// command, family and protocol, length (section 2.2).
	v2HeaderLen = 16
	// maxHeaderLen is the longest header of either version: a v2 header
	// with the largest length its 16-bit field allows.
	maxHeaderLen = v2HeaderLen + 0xFFFF
)

// v1Prefix starts every v1 header.
var v1Prefix = []byte("PROXY ")

// v2Signature starts every v2 header (section 2.2).
var v2Signature = []byte("\r\n\r\n\x00\r\nQUIT\n")

// errIncomplete reports that the bytes seen so far are a valid beginning of
// a header but not a whole one: read more.
var errIncomplete = errors.New("incomplete header")

// header is a parsed PROXY header.
type header struct {
	// version is 1 or 2.
	version int
	// local is set when the header carries no client address: a v2 LOCAL
	// command (the balancer's own health check), a v1 UNKNOWN line, or a
	// v2 family this package does not map to a TCP address (UNSPEC, UNIX,
	// or a datagram protocol). The connection keeps its socket addresses.
	local bool
	// src and dst are the client's address and the address it connected
	// to, when local is false.
	src, dst netip.AddrPort
}

// parse parses the PROXY header at the start of b. It returns the header
// and its length in bytes; the bytes after it belong to the proxied
// connection. It returns errIncomplete when b is a proper prefix of a
// possibly valid header, and another error when b cannot start one.
func parse(b []byte) (header, int, error) {
	switch {
	case hasPrefixOf(b, v1Prefix):
		return parseV1(b)
	case hasPrefixOf(b, v2Signature):
		return parseV2(b)
	default:
		return header{}, 0, errors.New("no PROXY protocol signature")
	}
}

// hasPrefixOf reports whether b and prefix agree on their common length,
// so b may be, or may grow into, something starting with prefix. An empty b
// agrees with every prefix.
func hasPrefixOf(b, prefix []byte) bool {
	n := min(len(b), len(prefix))
	return bytes.Equal(b[:n], prefix[:n])
}

// parseV1 parses a text header (section 2.1):
//
//	PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n
//	PROXY UNKNOWN[ anything]\r\n
func parseV1(b []byte) (header, int, error) {
	lf := bytes.IndexByte(b[:min(len(b), v1MaxLen)], '\n')
	if lf < 0 {
		if len(b) >= v1MaxLen {
			return header{}, 0, fmt.Errorf("v1 header longer than %d bytes", v1MaxLen)
		}
		return header{}, 0, errIncomplete
	}
	if b[lf-1] != '\r' {
		return header{}, 0, errors.New("v1 header: line does not end with CRLF")
	}
	end := lf - 1
	n := end + 2
	line := string(b[len(v1Prefix):end])

	// "UNKNOWN" may be followed by anything; the receiver ignores it and
	// keeps the socket addresses.
	if line == "UNKNOWN" || strings.HasPrefix(line, "UNKNOWN ") {
		return header{version: 1, local: true}, n, nil
	}

	// Exactly one space separates the fields; split by hand rather than
	// strings.Fields, which would accept runs of spaces and tabs.
	var f [5]string
	rest := line
	for i := range f {
		if i == len(f)-1 {
			f[i] = rest
			break
		}
		sp := strings.IndexByte(rest, ' ')
		if sp < 0 {
			return header{}, 0, fmt.Errorf("v1 header %q: want 5 fields", line)
		}
		f[i], rest = rest[:sp], rest[sp+1:]
	}

	var want4 bool
	switch f[0] {
	case "TCP4":
		want4 = true
	case "TCP6":
	default:
		return header{}, 0, fmt.Errorf("v1 header: unknown protocol %q", f[0])
	}
	src, err := parseV1Addr(f[1], want4)
	if err != nil {
		return header{}, 0, fmt.Errorf("v1 header: source address: %w", err)
	}
	dst, err := parseV1Addr(f[2], want4)
	if err != nil {
		return header{}, 0, fmt.Errorf("v1 header: destination address: %w", err)
	}
	sport, err := parseV1Port(f[3])
	if err != nil {
		return header{}, 0, fmt.Errorf("v1 header: source port: %w", err)
	}
	dport, err := parseV1Port(f[4])
	if err != nil {
		return header{}, 0, fmt.Errorf("v1 header: destination port: %w", err)
	}
	return header{
		version: 1,
		src:     netip.AddrPortFrom(src, sport),
		dst:     netip.AddrPortFrom(dst, dport),
	}, n, nil
}

// parseV1Addr parses an address of a TCP4 (want4) or TCP6 line. Zones are
// refused: they mean nothing on another host.
func parseV1Addr(s string, want4 bool) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, err
	}
	if a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("address %q has a zone", s)
	}
	if want4 != a.Is4() {
		return netip.Addr{}, fmt.Errorf("address %q does not match the protocol", s)
	}
	return a, nil
}

// parseV1Port parses a decimal port, 0 to 65535, digits only.
func parseV1Port(s string) (uint16, error) {
	if s == "" || len(s) > 5 {
		return 0, fmt.Errorf("bad port %q", s)
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("bad port %q", s)
		}
	}
	p, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("bad port %q", s)
	}
	return uint16(p), nil
}

// v2 command, family and protocol values (section 2.2).
const (
	v2CmdLocal = 0x0
	v2CmdProxy = 0x1

	v2FamUnspec = 0x0
	v2FamInet   = 0x1
	v2FamInet6  = 0x2
	v2FamUnix   = 0x3

	v2ProtoStream = 0x1
)

// parseV2 parses a binary header (section 2.2). TLVs after the addresses
// (section 2.2.7) are skipped.
func parseV2(b []byte) (header, int, error) {
	if len(b) < v2HeaderLen {
		return header{}, 0, errIncomplete
	}
	verCmd, famProto := b[12], b[13]
	if verCmd>>4 != 2 {
		return header{}, 0, fmt.Errorf("v2 header: unsupported version %d", verCmd>>4)
	}
	cmd := verCmd & 0x0F
	if cmd != v2CmdLocal && cmd != v2CmdProxy {
		return header{}, 0, fmt.Errorf("v2 header: unknown command %#x", cmd)
	}
	fam, proto := famProto>>4, famProto&0x0F
	if fam > v2FamUnix || proto > 0x2 {
		return header{}, 0, fmt.Errorf("v2 header: unknown family and protocol %#02x", famProto)
	}
	n := v2HeaderLen + int(binary.BigEndian.Uint16(b[14:16]))
	if len(b) < n {
		return header{}, 0, errIncomplete
	}
	// A LOCAL header comes from the balancer itself: the receiver must
	// ignore the address block and keep the socket addresses.
	if cmd == v2CmdLocal {
		return header{version: 2, local: true}, n, nil
	}
	addrs := b[v2HeaderLen:n]
	h := header{version: 2}
	switch {
	case fam == v2FamInet && proto == v2ProtoStream:
		if len(addrs) < 12 {
			return header{}, 0, fmt.Errorf("v2 header: %d address bytes for TCP over IPv4, want 12", len(addrs))
		}
		h.src = netip.AddrPortFrom(netip.AddrFrom4([4]byte(addrs[0:4])), binary.BigEndian.Uint16(addrs[8:10]))
		h.dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte(addrs[4:8])), binary.BigEndian.Uint16(addrs[10:12]))
	case fam == v2FamInet6 && proto == v2ProtoStream:
		if len(addrs) < 36 {
			return header{}, 0, fmt.Errorf("v2 header: %d address bytes for TCP over IPv6, want 36", len(addrs))
		}
		h.src = netip.AddrPortFrom(netip.AddrFrom16([16]byte(addrs[0:16])), binary.BigEndian.Uint16(addrs[32:34]))
		h.dst = netip.AddrPortFrom(netip.AddrFrom16([16]byte(addrs[16:32])), binary.BigEndian.Uint16(addrs[34:36]))
	default:
		// UNSPEC, UNIX sockets and datagrams carry no TCP address we
		// could report; section 2.2 lets the receiver accept the
		// connection with its real addresses.
		h.local = true
	}
	return h, n, nil
}

// formatV1 writes h as a v1 line. It is the inverse of parseV1 and serves
// the tests.
func formatV1(h header) string {
	if h.local {
		return "PROXY UNKNOWN\r\n"
	}
	proto := "TCP6"
	if h.src.Addr().Is4() {
		proto = "TCP4"
	}
	return fmt.Sprintf("PROXY %s %s %s %d %d\r\n", proto,
		h.src.Addr(), h.dst.Addr(), h.src.Port(), h.dst.Port())
}
