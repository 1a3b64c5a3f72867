package router

import (
	"errors"
	"path"
	"strings"
	"testing"
)

func TestCleanPath(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"root", "/", "/"},
		{"clean", "/a/b/c", "/a/b/c"},
		{"trailing slash kept", "/a/b/", "/a/b/"},
		{"repeated slashes", "//a///b//", "/a/b/"},
		{"only slashes", "///", "/"},
		{"dot", "/a/./b", "/a/b"},
		{"final dot", "/a/.", "/a/"},
		{"dot dot", "/a/b/../c", "/a/c"},
		{"final dot dot leaves a slash (RFC 3986 §5.2.4)", "/a/b/..", "/a/"},
		{"dot dot above root", "/../../a", "/a"},
		{"dot dot at root", "/..", "/"},
		{"slashes merged before dot dot", "/a//../b", "/b"},
		{"dots in names are not segments", "/a/.b/..c/...", "/a/.b/..c/..."},
		{"encoded dots", "/a/%2e%2E/b", "/b"},
		{"encoded dot and a dot", "/a/%2e./b", "/b"},
		{"unreserved decoded", "/%7Euser/%41%62%2D%5F", "/~user/Ab-_"},
		{"hex upper-cased", "/caf%c3%a9", "/caf%C3%A9"},
		{"encoded slash stays", "/a%2fb/..", "/"},
		{"encoded slash is not a separator", "/a/b%2F..%2Fc", "/a/b%2F..%2Fc"},
		{"encoded backslash stays", "/a%5c..%5cb", "/a%5C..%5Cb"},
		{"raw backslash encoded", `/a\..\b`, "/a%5C..%5Cb"},
		{"space encoded", "/a b", "/a%20b"},
		{"non-ASCII encoded", "/café", "/caf%C3%A9"},
		{"raw question mark encoded", "/a?b", "/a%3Fb"},
		{"sub-delims kept", "/a;b=c,d/@:!$&'()*+", "/a;b=c,d/@:!$&'()*+"},
		{"percent kept", "/100%25", "/100%25"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CleanPath(tt.in)
			if err != nil {
				t.Fatalf("CleanPath(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("CleanPath(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestCleanPathErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", `must start with "/"`},
		{"asterisk", "*", `must start with "/"`},
		{"relative", "a/b", `must start with "/"`},
		{"truncated escape", "/a%4", "malformed percent-encoding at byte 2"},
		{"bad hex", "/a%zz", "malformed percent-encoding at byte 2"},
		{"lone percent", "/100%", "malformed percent-encoding at byte 4"},
		{"encoded NUL", "/a%00b", "encoded NUL at byte 2"},
		{"raw NUL", "/a\x00", "control character 0x00 at byte 2"},
		{"raw newline", "/a\nb", "control character 0x0A at byte 2"},
		{"raw DEL", "/a\x7f", "control character 0x7F at byte 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CleanPath(tt.in)
			if err == nil {
				t.Fatalf("CleanPath(%q) = %q, want an error containing %q", tt.in, got, tt.want)
			}
			if !errors.Is(err, ErrInvalidPath) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("CleanPath(%q): got error %q, want ErrInvalidPath containing %q", tt.in, err, tt.want)
			}
		})
	}
}

func TestCleanPathAllocs(t *testing.T) {
	p := "/api/v1/items/caf%C3%A9/"
	if got := testing.AllocsPerRun(100, func() { _, _ = CleanPath(p) }); got != 0 {
		t.Errorf("CleanPath(%q): got %v allocs, want 0", p, got)
	}
}

func FuzzCleanPath(f *testing.F) {
	for _, seed := range []string{
		"/",                     // already clean
		"/a/b/../c/./d//e/",     // every kind of dot segment and slash run
		"/a/b/..",               // a final ".." leaves a trailing slash
		"/../../etc/passwd",     // climbing above the root
		"/%2e%2E/%2e/x",         // encoded dot segments
		"/a%2Fb%5c..%5C/c",      // encoded separators stay opaque
		"/caf%c3%a9/%7e/%41",    // hex case and unreserved decoding
		"/a%zz", "/a%0", "/%00", // bad and NUL escapes
		"/a\x00b", "/a\r\nb", // raw control characters
		`/a\b c?d#e[f]`,    // bytes that must be encoded
		"*", "", "a", "//", // not absolute; only slashes
		"/\xff\xfe/..",           // non-ASCII
		"/.%2e/.%2E./..%2e./%2e", // dots mixing encoded and raw
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := CleanPath(in)
		if isClean(in) {
			// The fast path must agree with the slow one.
			buf, err := normalizeEncoding(in)
			if err != nil || string(removeDotSegments(buf)) != in {
				t.Fatalf("isClean(%q) = true, but the slow path gives %q, %v", in, removeDotSegments(buf), err)
			}
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidPath) {
				t.Fatalf("CleanPath(%q): error %v does not wrap ErrInvalidPath", in, err)
			}
			return
		}
		again, err := CleanPath(got)
		if err != nil || again != got {
			t.Fatalf("CleanPath(%q) = %q, but CleanPath(%q) = %q, %v: not idempotent", in, got, got, again, err)
		}
		if !isClean(got) {
			t.Fatalf("CleanPath(%q) = %q, which isClean refuses", in, got)
		}
		if !strings.HasPrefix(got, "/") {
			t.Fatalf("CleanPath(%q) = %q, want a leading slash", in, got)
		}
		for _, bad := range []string{"/./", "/../", "//"} {
			if strings.Contains(got, bad) {
				t.Fatalf("CleanPath(%q) = %q, which contains %q", in, got, bad)
			}
		}
		if strings.HasSuffix(got, "/..") || strings.HasSuffix(got, "/.") {
			t.Fatalf("CleanPath(%q) = %q, which ends in a dot segment", in, got)
		}
		// On simple inputs (no escapes, only characters kept as they are),
		// the result is path.Clean's, except for the trailing slash that
		// RFC 3986 §5.2.4 keeps after a final "/", "." or "..".
		if strings.Trim(in, "abc./") == "" && strings.HasPrefix(in, "/") {
			want := path.Clean(in)
			last := in[strings.LastIndexByte(in, '/')+1:]
			if want != "/" && (last == "" || last == "." || last == "..") {
				want += "/"
			}
			if got != want {
				t.Fatalf("CleanPath(%q) = %q, want %q (path.Clean's, with the trailing slash kept)", in, got, want)
			}
		}
	})
}
