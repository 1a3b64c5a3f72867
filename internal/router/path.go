package router

import (
	"errors"
	"fmt"
)

// ErrInvalidPath is wrapped by every error CleanPath returns; the server
// answers such a request with 400 Bad Request.
var ErrInvalidPath = errors.New("invalid path")

// Byte classes of a path, from RFC 3986 §2.3 and §3.3.
const (
	// classUnreserved: ALPHA DIGIT "-" "." "_" "~" (§2.3). Percent-encoded,
	// they are decoded: "%7E" and "~" are equivalent (§6.2.2.2).
	classUnreserved = 1 << iota
	// classRaw: allowed unencoded in a path: pchar without pct-encoded,
	// plus "/" (§3.3).
	classRaw
	// classControl: C0 controls and DEL, refused outright.
	classControl
	// classURL: left unescaped by net/url in a path: unreserved, "/" and
	// "$&+,:;=@" (but not "!'()*", which it escapes).
	classURL
)

var pathClass = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '-', c == '.', c == '_', c == '~':
			t[c] = classUnreserved | classRaw | classURL
		case c < 0x20 || c == 0x7f:
			t[c] = classControl
		}
	}
	// sub-delims, ":" and "@" (pchar), and the segment separator.
	for _, c := range []byte("!$&'()*+,;=:@/") {
		t[c] = classRaw
	}
	for _, c := range []byte("$&+,;=:@/") {
		t[c] |= classURL
	}
	return t
}()

// needsEscape reports whether net/url would escape any byte of the
// decoded path p, so that url.URL{Path: p}.EscapedPath() != p.
func needsEscape(p string) bool {
	for i := 0; i < len(p); i++ {
		if pathClass[p[i]]&classURL == 0 {
			return true
		}
	}
	return false
}

const upperHex = "0123456789ABCDEF"

// CleanPath normalises an escaped request path (URL.EscapedPath) into the
// escaped path that routing matches and the proxy forwards, so both see the
// same thing. In order:
//
//  1. The path must start with "/"; anything else, including "*" and "",
//     is an error.
//  2. Percent-encoded unreserved characters (ALPHA DIGIT - . _ ~) are
//     decoded (RFC 3986 §6.2.2.2), so "%2e%2e" becomes ".." before step 3;
//     other percent-encodings get upper-case hex (§6.2.2.1). "%2F" and
//     "%5C" therefore stay encoded and never become separators. Bytes not
//     allowed unencoded in a path (§3.3), such as space, '\' or non-ASCII,
//     are percent-encoded. A '%' not followed by two hex digits, an encoded
//     NUL ("%00"), or a raw control character (below 0x20, or 0x7F) is an
//     error.
//  3. Repeated slashes are merged ("//" becomes "/"), then dot segments are
//     removed as in RFC 3986 §5.2.4: "." is dropped, ".." drops it and the
//     segment before it, and never climbs above "/". Merging first gives
//     path.Clean's and nginx's merge_slashes result for "/a//../b" ("/b").
//  4. A trailing slash is kept, and a final "." or ".." segment leaves one
//     ("/a/b/.." becomes "/a/"), as §5.2.4 does.
//
// The result is idempotent. When path is already clean, CleanPath returns
// it without allocating. Errors wrap ErrInvalidPath.
func CleanPath(path string) (string, error) {
	if isClean(path) {
		return path, nil
	}
	buf, err := normalizeEncoding(path)
	if err != nil {
		return "", err
	}
	return string(removeDotSegments(buf)), nil
}

// isClean reports whether CleanPath would return path unchanged. It is the
// allocation-free fast path; FuzzCleanPath checks it against the slow path.
func isClean(path string) bool {
	if len(path) == 0 || path[0] != '/' {
		return false
	}
	for i := 0; i < len(path); i++ {
		c := path[i]
		switch {
		case c == '/':
			// Refuse "//", "/." and "/.." followed by "/" or the end.
			rest := path[i+1:]
			if len(rest) > 0 && rest[0] == '/' {
				return false
			}
			if len(rest) > 0 && rest[0] == '.' {
				if len(rest) == 1 || rest[1] == '/' {
					return false
				}
				if rest[1] == '.' && (len(rest) == 2 || rest[2] == '/') {
					return false
				}
			}
		case c == '%':
			if i+2 >= len(path) || !isUpperHex(path[i+1]) || !isUpperHex(path[i+2]) {
				return false
			}
			b := unhex(path[i+1])<<4 | unhex(path[i+2])
			if b == 0 || pathClass[b]&classUnreserved != 0 {
				return false
			}
			i += 2
		case pathClass[c]&classRaw == 0:
			return false
		}
	}
	return true
}

// normalizeEncoding performs steps 1 and 2 of CleanPath into a new buffer.
func normalizeEncoding(path string) ([]byte, error) {
	if len(path) == 0 || path[0] != '/' {
		return nil, fmt.Errorf("clean path %q: %w: must start with \"/\"", path, ErrInvalidPath)
	}
	buf := make([]byte, 0, len(path)+8)
	for i := 0; i < len(path); i++ {
		c := path[i]
		switch {
		case c == '%':
			if i+2 >= len(path) || !isHex(path[i+1]) || !isHex(path[i+2]) {
				return nil, fmt.Errorf("clean path: %w: malformed percent-encoding at byte %d", ErrInvalidPath, i)
			}
			b := unhex(path[i+1])<<4 | unhex(path[i+2])
			if b == 0 {
				return nil, fmt.Errorf("clean path: %w: encoded NUL at byte %d", ErrInvalidPath, i)
			}
			if pathClass[b]&classUnreserved != 0 {
				buf = append(buf, b)
			} else {
				buf = append(buf, '%', upperHex[b>>4], upperHex[b&15])
			}
			i += 2
		case pathClass[c]&classRaw != 0:
			buf = append(buf, c)
		case pathClass[c]&classControl != 0:
			return nil, fmt.Errorf("clean path: %w: control character 0x%02X at byte %d", ErrInvalidPath, c, i)
		default:
			buf = append(buf, '%', upperHex[c>>4], upperHex[c&15])
		}
	}
	return buf, nil
}

// removeDotSegments performs steps 3 and 4 of CleanPath in place on buf,
// which starts with "/" and whose only slashes are separators (an encoded
// "%2F" is three other bytes). It returns the cleaned prefix of buf.
func removeDotSegments(buf []byte) []byte {
	n := len(buf)
	w := 0 // buf[:w] is the output so far; w never passes the read position
	trailing := false
	for i := 0; i < n; {
		// buf[i] is '/': skip it and any repeats (merging slashes).
		j := i
		for j < n && buf[j] == '/' {
			j++
		}
		if j == n {
			trailing = true
			break
		}
		k := j
		for k < n && buf[k] != '/' {
			k++
		}
		switch seg := buf[j:k]; {
		case len(seg) == 1 && seg[0] == '.':
			trailing = k == n
		case len(seg) == 2 && seg[0] == '.' && seg[1] == '.':
			// Drop the last output segment, if any (RFC 3986 §5.2.4 2C).
			for w > 0 {
				w--
				if buf[w] == '/' {
					break
				}
			}
			trailing = k == n
		default:
			buf[w] = '/'
			w++
			w += copy(buf[w:], seg)
			trailing = false
		}
		i = k
	}
	if trailing || w == 0 {
		buf[w] = '/'
		w++
	}
	return buf[:w]
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isUpperHex(c byte) bool {
	return '0' <= c && c <= '9' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}
