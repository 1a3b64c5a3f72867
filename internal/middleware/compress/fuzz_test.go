package compress

import (
	"strings"
	"testing"
)

// FuzzAcceptEncoding checks that negotiate never panics, always returns
// one of the offered codings or none, and never picks a coding the field
// does not mention (by name, as x-gzip, or through "*").
func FuzzAcceptEncoding(f *testing.F) {
	seeds := []string{
		"",                               // empty: identity only
		"gzip, deflate, br, zstd",        // a current browser
		"gzip;q=0",                       // exclusion
		"*;q=0.5",                        // wildcard with a weight
		"br, zstd;q=1.0",                 // a tie broken by the server
		"identity;q=1, *;q=0",            // identity only, spelled out
		"x-gzip;q=0.9, GZIP;Q=0.1",       // alias and case
		"br;q=1.5, gzip;q=abc, zstd;q=.", // malformed weights
		";;,,=;q=1,\x00\xff, ,",          // garbage
		"gzip;q=0.5;q=1;level=9",         // repeated and unknown parameters
	}
	for _, s := range seeds {
		f.Add(s)
	}
	offered := []string{"zstd", "br", "gzip"}
	f.Fuzz(func(t *testing.T, field string) {
		i := negotiate([]string{field}, offered)
		if i < -1 || i >= len(offered) {
			t.Fatalf("negotiate(%q): got index %d, want -1 to %d", field, i, len(offered)-1)
		}
		if i < 0 {
			return
		}
		lower := strings.ToLower(field)
		if !strings.Contains(lower, offered[i]) && !strings.Contains(field, "*") {
			t.Errorf("negotiate(%q): got %q, which the field does not mention", field, offered[i])
		}
		if again := negotiate([]string{field}, offered); again != i {
			t.Errorf("negotiate(%q): got %d, then %d", field, i, again)
		}
	})
}
