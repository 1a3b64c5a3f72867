package router

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalizeHost(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty (HTTP/1.0)", "", ""},
		{"lower", "api.example.com", "api.example.com"},
		{"everything at once", "API.Example.com:8080.", "api.example.com"},
		{"port", "api.example.com:8080", "api.example.com"},
		{"empty port", "api.example.com:", "api.example.com"},
		{"trailing dot", "api.example.com.", "api.example.com"},
		{"trailing dot and port", "API.example.com.:443", "api.example.com"},
		{"trailing dot after the port", "api.example.com:443.", "api.example.com"},
		{"single label", "localhost", "localhost"},
		{"underscore", "_svc.internal", "_svc.internal"},
		{"IPv4", "127.0.0.1:80", "127.0.0.1"},
		{"IPv6", "[::1]", "[::1]"},
		{"IPv6 with port", "[::1]:80", "[::1]"},
		{"IPv6 canonical", "[0:0:0:0:0:0:0:1]", "[::1]"},
		{"IPv6 upper case", "[2001:DB8::A]:443", "[2001:db8::a]"},
		{"IPv4-mapped IPv6", "[::ffff:1.2.3.4]", "[::ffff:1.2.3.4]"},
		{"longest name", strings.Repeat("a", 253), strings.Repeat("a", 253)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NormalizeHost(tt.in)
			if err != nil {
				t.Fatalf("NormalizeHost(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("NormalizeHost(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestNormalizeHostErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"only a port", ":80", "empty name before the port"},
		{"only a dot", ".", "empty name"},
		{"two trailing dots", "a.example.com..", "empty label"},
		{"leading dot", ".example.com", "empty label"},
		{"empty label", "a..example.com", "empty label"},
		{"space", "a b", "invalid character"},
		{"slash", "a.com/x", "invalid character"},
		{"percent", "a%2ecom", "invalid character"},
		{"at sign (userinfo)", "user@a.com", "invalid character"},
		{"non-ASCII", "bücher.de", "invalid character"},
		{"wildcard", "*.example.com", "invalid character"},
		{"bad port", "a.com:http", "invalid port"},
		{"port too big", "a.com:65536", "invalid port"},
		{"port too long", "a.com:000080", "invalid port"},
		{"two colons", "a.com:80:80", "IPv6 literal must be in brackets"},
		{"bare IPv6", "::1", "IPv6 literal must be in brackets"},
		{"unclosed bracket", "[::1", "missing ']'"},
		{"text after bracket", "[::1]x", "unexpected text"},
		{"IPv4 in brackets", "[127.0.0.1]", "malformed IPv6 literal"},
		{"IPv6 zone", "[fe80::1%25eth0]", "IPv6 zone not allowed"},
		{"two trailing dots around the port", "a.com.:80.", "two trailing dots"},
		{"IPvFuture", "[v1.x]", "malformed IPv6 literal"},
		{"too long", strings.Repeat("a", 254), "longer than 253"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NormalizeHost(tt.in)
			if err == nil {
				t.Fatalf("NormalizeHost(%q) = %q, want an error containing %q", tt.in, got, tt.want)
			}
			if !errors.Is(err, ErrInvalidHost) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NormalizeHost(%q): got error %q, want ErrInvalidHost containing %q", tt.in, err, tt.want)
			}
		})
	}
}

func TestRequestHostAllocs(t *testing.T) {
	for _, h := range []string{"api.example.com", "api.example.com:8443", "api.example.com.", ""} {
		if got := testing.AllocsPerRun(100, func() { requestHost(h) }); got != 0 {
			t.Errorf("requestHost(%q): got %v allocs, want 0", h, got)
		}
	}
}

func FuzzNormalizeHost(f *testing.F) {
	for _, seed := range []string{
		"api.example.com",       // the common case, fast path
		"API.Example.com:8080.", // upper case, port and trailing dot
		"a.example.com.:443",    // trailing dot before the port
		"[::1]:80", "[0::1]",    // IPv6 literals, canonicalised
		"[fe80::1%25eth0]", // zones are refused
		"::1", "a:b:c",     // colons outside brackets
		":80", ".", "", "a..b", // empty names and labels
		"a.com:99999",      // port out of range
		"bücher.de", "a b", // bytes outside the name alphabet
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := NormalizeHost(in)
		if fast, ok := fastHost(in); ok {
			if err != nil || fast != got {
				t.Fatalf("fastHost(%q) = %q, but NormalizeHost gives %q, %v", in, fast, got, err)
			}
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidHost) {
				t.Fatalf("NormalizeHost(%q): error %v does not wrap ErrInvalidHost", in, err)
			}
			if requestHost(in) != "" {
				t.Fatalf("requestHost(%q) = %q, want \"\" for an invalid host", in, requestHost(in))
			}
			return
		}
		if requestHost(in) != got {
			t.Fatalf("requestHost(%q) = %q, want %q", in, requestHost(in), got)
		}
		again, err := NormalizeHost(got)
		if err != nil || again != got {
			t.Fatalf("NormalizeHost(%q) = %q, but NormalizeHost(%q) = %q, %v: not idempotent", in, got, got, again, err)
		}
		if strings.ToLower(got) != got || strings.HasSuffix(got, ".") || len(got) > maxHostLen {
			t.Fatalf("NormalizeHost(%q) = %q: want lower case, no trailing dot, at most %d bytes", in, got, maxHostLen)
		}
	})
}
