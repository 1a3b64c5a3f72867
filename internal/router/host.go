package router

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// ErrInvalidHost is wrapped by every error NormalizeHost returns; the server
// answers such a request with 400 Bad Request.
var ErrInvalidHost = errors.New("invalid host")

// maxHostLen is the longest host name accepted, in bytes: the longest DNS
// name in text form (RFC 1035 §2.3.4, 255 octets on the wire).
const maxHostLen = 253

// NormalizeHost returns the form of a Host header value (RFC 9110 §7.2) that
// routing compares: the port removed, ASCII letters lower-cased and one
// trailing dot removed, so "API.Example.com.:8080" becomes "api.example.com".
// The trailing dot may also follow the port ("API.Example.com:8080."), a
// common slip that is tolerated; one dot in all.
//
// A name may hold letters, digits, '-', '_' and '.', with no empty label and
// at most 253 bytes. An IP literal is an IPv4 address in dotted form (which
// is a valid name) or an IPv6 address in brackets; the latter is returned in
// brackets in its canonical text form (RFC 5952), "[0:0::1]:80" becoming
// "[::1]". A port, when present, is up to five digits, at most 65535; an
// empty port ("host:") is allowed, as RFC 3986 §3.2.3 allows it.
//
// The empty host (HTTP/1.0 without Host) is valid and returns "". Anything
// else returns an error wrapping ErrInvalidHost.
func NormalizeHost(host string) (string, error) {
	name, hasPort, portDot, err := cutPort(host)
	if err != nil {
		return "", fmt.Errorf("normalize host %q: %w: %s", host, ErrInvalidHost, err)
	}
	if portDot {
		// The trailing dot was written after the port; count it as the
		// name's, so there may not be another.
		if strings.HasSuffix(name, ".") {
			return "", fmt.Errorf("normalize host %q: %w: two trailing dots", host, ErrInvalidHost)
		}
		name += "."
	}
	if name == "" {
		if hasPort {
			return "", fmt.Errorf("normalize host %q: %w: empty name before the port", host, ErrInvalidHost)
		}
		return "", nil
	}
	if name[0] == '[' {
		s, err := normalizeIPv6(name)
		if err != nil {
			return "", fmt.Errorf("normalize host %q: %w: %s", host, ErrInvalidHost, err)
		}
		return s, nil
	}
	s, err := normalizeName(strings.TrimSuffix(name, "."))
	if err != nil {
		return "", fmt.Errorf("normalize host %q: %w: %s", host, ErrInvalidHost, err)
	}
	return s, nil
}

// cutPort splits host into its name and port, validates the port and
// reports whether there was one, and whether a dot followed it. A
// bracketed IPv6 literal is returned with its brackets.
func cutPort(host string) (name string, hasPort, portDot bool, err error) {
	var port string
	if strings.HasPrefix(host, "[") {
		end := strings.IndexByte(host, ']')
		if end < 0 {
			return "", false, false, errors.New("missing ']' after IPv6 literal")
		}
		name = host[:end+1]
		rest := host[end+1:]
		if rest == "" {
			return name, false, false, nil
		}
		if rest[0] != ':' {
			return "", false, false, errors.New("unexpected text after IPv6 literal")
		}
		port = rest[1:]
	} else {
		i := strings.LastIndexByte(host, ':')
		if i < 0 {
			return host, false, false, nil
		}
		if strings.IndexByte(host[:i], ':') >= 0 {
			return "", false, false, errors.New("IPv6 literal must be in brackets")
		}
		name, port = host[:i], host[i+1:]
	}
	port, portDot = strings.CutSuffix(port, ".")
	if !validPort(port) {
		return "", false, false, errors.New("invalid port")
	}
	return name, true, portDot, nil
}

// validPort reports whether port is empty or a decimal number of at most
// five digits not above 65535.
func validPort(port string) bool {
	if len(port) > 5 {
		return false
	}
	n := 0
	for i := 0; i < len(port); i++ {
		c := port[i]
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return n <= 65535
}

// normalizeName validates a host name (no port, trailing dot already
// removed) and lower-cases it. It returns name itself when it is already
// lower case.
func normalizeName(name string) (string, error) {
	if name == "" {
		return "", errors.New("empty name")
	}
	if len(name) > maxHostLen {
		return "", fmt.Errorf("name longer than %d bytes", maxHostLen)
	}
	upper := false
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		case 'A' <= c && c <= 'Z':
			upper = true
		case c == '.':
			if i == 0 || name[i-1] == '.' || i == len(name)-1 {
				return "", errors.New("empty label")
			}
		default:
			return "", fmt.Errorf("invalid character %q", c)
		}
	}
	if upper {
		// The name is ASCII, so this lower-cases exactly the letters.
		return strings.ToLower(name), nil
	}
	return name, nil
}

// normalizeIPv6 validates a bracketed IPv6 literal and returns it in
// brackets in its canonical form. Zones are refused: RFC 6874 allows them in
// URIs, but they name an interface of the client, never a routable host.
func normalizeIPv6(lit string) (string, error) {
	if len(lit) < 2 || lit[len(lit)-1] != ']' {
		return "", errors.New("malformed IPv6 literal")
	}
	addr, err := netip.ParseAddr(lit[1 : len(lit)-1])
	if err != nil || !addr.Is6() {
		return "", errors.New("malformed IPv6 literal")
	}
	if addr.Zone() != "" {
		return "", errors.New("IPv6 zone not allowed")
	}
	return "[" + addr.String() + "]", nil
}

// fastHost is NormalizeHost's allocation-free fast path for the common
// case: a lower-case name, optionally with a port and a trailing dot. It
// reports false when the host needs the full treatment (upper case, an IPv6
// literal, or something invalid); when it reports true the result equals
// NormalizeHost's (FuzzNormalizeHost checks this).
func fastHost(host string) (string, bool) {
	n := len(host)
scan:
	for i := 0; i < len(host); i++ {
		c := host[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		case c == '.':
			if i == 0 || host[i-1] == '.' {
				return "", false
			}
		case c == ':':
			port, dot := strings.CutSuffix(host[i+1:], ".")
			if dot || !validPort(port) {
				return "", false // a dot after the port is rare: take the slow path
			}
			n = i
			break scan
		default:
			return "", false
		}
	}
	name := host[:n]
	if n > 0 && name[n-1] == '.' {
		name = name[:n-1]
	}
	if name == "" || len(name) > maxHostLen || name[len(name)-1] == '.' {
		// "" is the valid empty host only when there was no port; let
		// NormalizeHost decide.
		return "", host == ""
	}
	return name, true
}

// requestHost returns the host that Match compares: NormalizeHost's result,
// or "" for an invalid host, which therefore matches only rules without a
// host condition. (The server refuses invalid hosts with 400 before routing;
// this only keeps Match total.)
func requestHost(host string) string {
	if h, ok := fastHost(host); ok {
		return h
	}
	h, err := NormalizeHost(host)
	if err != nil {
		return ""
	}
	return h
}
