package config

// Syntax checks shared by the validators: addresses, host names, names,
// HTTP tokens and header values.

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
)

// checkAddr checks a "host:port" address and returns what is wrong with it,
// or "". A listen address may leave the host empty (all interfaces) and use
// port 0 (any free port, for tests); an endpoint may not.
func checkAddr(addr string, listen bool) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		if listen {
			return fmt.Sprintf("invalid address %q; want host:port, e.g. \":8080\" or \"127.0.0.1:8080\"", addr)
		}
		return fmt.Sprintf("invalid address %q; want host:port, e.g. \"10.0.0.1:8080\" or \"service.internal:8080\"", addr)
	}
	lo := 1
	if listen {
		lo = 0
	}
	if n, err := strconv.Atoi(port); err != nil || n < lo || n > 65535 || port != strconv.Itoa(n) {
		return fmt.Sprintf("invalid port %q in %q; want a number from %d to 65535", port, addr, lo)
	}
	if host == "" && listen {
		return ""
	}
	if host == "" {
		return fmt.Sprintf("missing host in %q; want host:port, e.g. \"10.0.0.1:8080\"", addr)
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return ""
	}
	if !validHostname(host) {
		return fmt.Sprintf("invalid host %q in %q; want an IP address or a host name", host, addr)
	}
	return ""
}

// validHostPort reports whether s is a host name or IP, with an optional
// port.
func validHostPort(s string) bool {
	if h, p, err := net.SplitHostPort(s); err == nil {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return false
		}
		s = h
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return true
	}
	return validHostname(s)
}

// validHostname reports whether h is a DNS host name: dot-separated labels
// of letters, digits, '-' and '_' (seen in internal names), each 1 to 63
// bytes and not starting or ending with '-' (RFC 1123 §2.1), 253 bytes at
// most in all.
func validHostname(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}

// validName reports whether s is a valid upstream or route name: letters,
// digits, '-', '_' and '.'.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// isToken reports whether s is an HTTP token (RFC 9110 §5.6.2), the syntax
// of header names and methods.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// validHeaderValue reports whether s may be sent as a header value: no
// control characters other than tab (RFC 9110 §5.5).
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// checkRegex returns the compile error of an RE2 pattern, or "".
func checkRegex(re string) string {
	if _, err := regexp.Compile(re); err != nil {
		return "invalid regex: " + err.Error()
	}
	return ""
}

func count(bs ...bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

// quoteList formats names as `"a", "b" and "c"`.
func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	if len(q) < 2 {
		return strings.Join(q, "")
	}
	return strings.Join(q[:len(q)-1], ", ") + " and " + q[len(q)-1]
}
