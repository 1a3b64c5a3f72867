package cache

import (
	"strings"
	"testing"
)

// FuzzCacheControl: the parser never panics, and every numeric directive
// it returns is absent or a delta-seconds value within RFC 9111 §1.2.2.
func FuzzCacheControl(f *testing.F) {
	for _, seed := range []string{
		"max-age=60",                            // the common case
		"public, max-age=60, s-maxage=600",      // several directives
		`max-age="60"`,                          // quoted value, allowed to recipients
		"max-age=60, max-age=30",                // conflicting duplicate: stale
		"max-age=abc",                           // malformed value: stale
		"max-age",                               // missing value
		"max-age=99999999999999999999999",       // overflow: capped at 2^31
		"MAX-AGE=5, No-Store",                   // names are case-insensitive
		`no-cache="Set-Cookie, X-Foo", private`, // qualified forms, comma in quotes
		"stale-while-revalidate=30, stale-if-error=600",
		`max-age="unterminated`,            // unterminated quoted string
		`x="\"escaped\"", must-revalidate`, // escapes in an unknown directive
		" , ,, =, =5, max-age = 7 ,",       // junk, empty pieces, spaces around =
		"\x00\xff max-age=\t1",             // control and non-UTF-8 bytes
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d := parseCacheControl(strings.Split(s, "\n"))
		for _, n := range []int64{d.maxAge, d.sMaxAge, d.minFresh, d.staleWhileRevalidate, d.staleIfError} {
			if n != absent && (n < 0 || n > maxDelta) {
				t.Fatalf("%q: numeric directive %d out of range", s, n)
			}
		}
	})
}

// none is the parse of an empty Cache-Control: every number absent.
var none = directives{maxAge: absent, sMaxAge: absent, minFresh: absent, staleWhileRevalidate: absent, staleIfError: absent}

// with returns none changed by set.
func with(set func(d *directives)) directives {
	d := none
	set(&d)
	return d
}

func TestParseCacheControl(t *testing.T) {
	tests := []struct {
		in   string
		want directives
	}{
		{"", none},
		{"max-age=60, public", with(func(d *directives) { d.maxAge, d.public = 60, true })},
		{`max-age="60"`, with(func(d *directives) { d.maxAge = 60 })},
		{"max-age=60, max-age=30", with(func(d *directives) { d.maxAge = 0 })},
		{"max-age=60, max-age=60", with(func(d *directives) { d.maxAge = 60 })},
		{"max-age=x", with(func(d *directives) { d.maxAge = 0 })},
		{"s-maxage=99999999999", with(func(d *directives) { d.sMaxAge = maxDelta })},
		{`No-Cache="Set-Cookie, X", PRIVATE`, with(func(d *directives) { d.noCache, d.private = true, true })},
		{"stale-while-revalidate=30,stale-if-error=60,must-revalidate,proxy-revalidate", with(func(d *directives) {
			d.staleWhileRevalidate, d.staleIfError, d.mustRevalidate, d.proxyRevalidate = 30, 60, true, true
		})},
		{"no-store, only-if-cached, min-fresh=5", with(func(d *directives) { d.noStore, d.onlyIfCached, d.minFresh = true, true, 5 })},
		{"stale-if-error=x", none},
	}
	for _, tc := range tests {
		if got := parseCacheControl([]string{tc.in}); got != tc.want {
			t.Errorf("%q: got %+v, want %+v", tc.in, got, tc.want)
		}
	}
}
