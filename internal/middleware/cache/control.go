package cache

import "strings"

// absent marks a numeric directive that is not present.
const absent = -1

// maxDelta is the largest delta-seconds value kept: RFC 9111 §1.2.2 asks
// for 2147483648 (2^31) in place of anything larger.
const maxDelta = 1 << 31

// directives are the Cache-Control directives torii acts on, from a request
// (RFC 9111 §5.2.1) or a response (§5.2.2), with the extensions of RFC 5861.
// Numeric ones are in seconds, absent when not present. Unknown directives
// are ignored (§5.2.3).
type directives struct {
	maxAge, sMaxAge, minFresh                     int64
	staleWhileRevalidate, staleIfError            int64
	noStore, noCache, private, public             bool
	mustRevalidate, proxyRevalidate, onlyIfCached bool
}

// parseCacheControl parses every field line of a Cache-Control header.
// It never fails: malformed pieces are skipped, and a malformed or
// contradictory max-age or s-maxage counts as 0, so the response is stale
// (RFC 9111 §4.2.1: "either the first occurrence should be used, or the
// response should be considered stale"; torii picks the safer one).
func parseCacheControl(lines []string) directives {
	d := directives{maxAge: absent, sMaxAge: absent, minFresh: absent, staleWhileRevalidate: absent, staleIfError: absent}
	for _, line := range lines {
		for line != "" {
			var name, value string
			var hasValue bool
			name, value, hasValue, line = nextDirective(line)
			d.set(name, value, hasValue)
		}
	}
	return d
}

// set records one directive.
func (d *directives) set(name, value string, hasValue bool) {
	switch {
	case strings.EqualFold(name, "max-age"):
		setAge(&d.maxAge, value, hasValue)
	case strings.EqualFold(name, "s-maxage"):
		setAge(&d.sMaxAge, value, hasValue)
	case strings.EqualFold(name, "min-fresh"):
		if n, ok := deltaSeconds(value); ok && d.minFresh == absent {
			d.minFresh = n
		}
	case strings.EqualFold(name, "stale-while-revalidate"):
		if n, ok := deltaSeconds(value); ok && d.staleWhileRevalidate == absent {
			d.staleWhileRevalidate = n
		}
	case strings.EqualFold(name, "stale-if-error"):
		if n, ok := deltaSeconds(value); ok && d.staleIfError == absent {
			d.staleIfError = n
		}
	// The qualified forms no-cache="field" and private="field" (§5.2.2.4,
	// §5.2.2.7) are treated as unqualified: stricter, and always allowed.
	case strings.EqualFold(name, "no-store"):
		d.noStore = true
	case strings.EqualFold(name, "no-cache"):
		d.noCache = true
	case strings.EqualFold(name, "private"):
		d.private = true
	case strings.EqualFold(name, "public"):
		d.public = true
	case strings.EqualFold(name, "must-revalidate"):
		d.mustRevalidate = true
	case strings.EqualFold(name, "proxy-revalidate"):
		d.proxyRevalidate = true
	case strings.EqualFold(name, "only-if-cached"):
		d.onlyIfCached = true
	}
}

// setAge records a max-age or s-maxage. A value that is malformed, missing,
// or differs from an earlier one makes it 0 (stale).
func setAge(dst *int64, value string, hasValue bool) {
	n, ok := deltaSeconds(value)
	switch {
	case !hasValue || !ok:
		*dst = 0
	case *dst == absent:
		*dst = n
	case *dst != n:
		*dst = 0
	}
}

// deltaSeconds parses delta-seconds (RFC 9111 §1.2.2): one or more digits,
// capped at 2^31.
func deltaSeconds(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n < maxDelta {
			n = n*10 + int64(c-'0')
		}
	}
	return min(n, maxDelta), true
}

// nextDirective splits the first directive off a Cache-Control list:
// cache-directive = token [ "=" ( token / quoted-string ) ] (§5.2). The
// value of a quoted string comes without its quotes; escapes are kept, as
// no directive torii reads has a value that needs them. Junk up to the
// next comma is skipped.
func nextDirective(s string) (name, value string, hasValue bool, rest string) {
	s = strings.TrimLeft(s, " \t,")
	i := 0
	for i < len(s) && s[i] != '=' && s[i] != ',' && s[i] != ' ' && s[i] != '\t' {
		i++
	}
	name, s = s[:i], s[i:]
	s = strings.TrimLeft(s, " \t")
	if s != "" && s[0] == '=' {
		hasValue = true
		s = strings.TrimLeft(s[1:], " \t")
		if s != "" && s[0] == '"' {
			j := 1
			for j < len(s) && s[j] != '"' {
				if s[j] == '\\' {
					j++
				}
				j++
			}
			value = s[1:min(j, len(s))]
			s = s[min(j+1, len(s)):]
		} else {
			j := 0
			for j < len(s) && s[j] != ',' && s[j] != ' ' && s[j] != '\t' {
				j++
			}
			value, s = s[:j], s[j:]
		}
	}
	if k := strings.IndexByte(s, ','); k >= 0 {
		s = s[k+1:]
	} else {
		s = ""
	}
	return name, value, hasValue, s
}
