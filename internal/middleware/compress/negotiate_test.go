package compress

import (
	"strings"
	"testing"
)

func TestNegotiate(t *testing.T) {
	all := []string{"zstd", "br", "gzip"}
	tests := []struct {
		name    string
		fields  []string // Accept-Encoding field lines; nil: absent
		offered []string // default: all
		want    string   // "" for none
	}{
		{name: "absent", fields: nil, want: ""},
		{name: "empty", fields: []string{""}, want: ""},
		{name: "gzip only", fields: []string{"gzip"}, want: "gzip"},
		{name: "browser", fields: []string{"gzip, deflate, br, zstd"}, want: "zstd"},
		{name: "server order breaks ties", fields: []string{"gzip, br"}, want: "br"},
		{name: "route order breaks ties", fields: []string{"gzip, br, zstd"}, offered: []string{"gzip", "br"}, want: "gzip"},
		{name: "explicit q=1.0 ties", fields: []string{"br, zstd;q=1.0"}, want: "zstd"},
		{name: "highest q wins", fields: []string{"zstd;q=0.5, br;q=0.8, gzip;q=0.9"}, want: "gzip"},
		{name: "gzip q=0 excluded", fields: []string{"gzip;q=0"}, want: ""},
		{name: "q=0 beats star", fields: []string{"zstd;q=0, br;q=0, *"}, want: "gzip"},
		{name: "star", fields: []string{"*"}, want: "zstd"},
		{name: "star half", fields: []string{"*;q=0.5"}, want: "zstd"},
		{name: "star below named", fields: []string{"*;q=0.5, gzip"}, want: "gzip"},
		{name: "star zero", fields: []string{"*;q=0"}, want: ""},
		{name: "star zero but named", fields: []string{"br, *;q=0"}, want: "br"},
		{name: "case insensitive", fields: []string{"GZip;Q=0.9, BR;q=0.1"}, want: "gzip"},
		{name: "x-gzip", fields: []string{"x-gzip"}, want: "gzip"},
		{name: "whitespace", fields: []string{"  br ; q = 0.7 ,gzip;q=0.6  "}, want: "br"},
		{name: "several field lines", fields: []string{"gzip;q=0.5", "br;q=0.6"}, want: "br"},
		{name: "first listing counts", fields: []string{"br;q=0, br"}, want: ""},
		{name: "identity preferred", fields: []string{"identity, gzip;q=0.5"}, want: ""},
		{name: "identity tie compresses", fields: []string{"identity;q=0.5, gzip;q=0.5"}, want: "gzip"},
		{name: "identity refused", fields: []string{"identity;q=0, gzip"}, want: "gzip"},
		{name: "three decimals", fields: []string{"gzip;q=0.001, br;q=0.002"}, want: "br"},
		{name: "four decimals ignored", fields: []string{"br;q=0.0001, gzip;q=0.001"}, want: "gzip"},
		{name: "q above one ignored", fields: []string{"br;q=1.5, gzip;q=0.1"}, want: "gzip"},
		{name: "q one point zero", fields: []string{"br;q=1.000"}, want: "br"},
		{name: "q one point one", fields: []string{"br;q=1.1"}, want: ""},
		{name: "garbage q ignored", fields: []string{"br;q=abc, gzip;q=0.2"}, want: "gzip"},
		{name: "negative q ignored", fields: []string{"br;q=-1"}, want: ""},
		{name: "empty q ignored", fields: []string{"br;q="}, want: ""},
		{name: "other parameter ignored", fields: []string{"br;level=9;q=0.3, gzip;q=0.2"}, want: "br"},
		{name: "unknown codings", fields: []string{"deflate, compress, sdch"}, want: ""},
		{name: "garbage", fields: []string{";;,,=;q=1,\x00\xff, ,"}, want: ""},
		{name: "prefix is not a match", fields: []string{"gzipp, zst, b"}, want: ""},
		{name: "only commas", fields: []string{",,,"}, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			offered := tt.offered
			if offered == nil {
				offered = all
			}
			got := ""
			if i := negotiate(tt.fields, offered); i >= 0 {
				got = offered[i]
			}
			if got != tt.want {
				t.Errorf("negotiate(%q): got %q, want %q", strings.Join(tt.fields, " | "), got, tt.want)
			}
		})
	}
}

func TestParseQ(t *testing.T) {
	tests := []struct {
		in     string
		want   int
		wantOK bool
	}{
		{"0", 0, true}, {"0.", 0, true}, {"0.5", 500, true}, {"0.05", 50, true},
		{"0.125", 125, true}, {"1", 1000, true}, {"1.", 1000, true}, {"1.000", 1000, true},
		{"1.001", 0, false}, {"2", 0, false}, {".5", 0, false}, {"0.1234", 0, false},
		{"0,5", 0, false}, {"", 0, false}, {"0.5x", 0, false}, {"01", 0, false},
	}
	for _, tt := range tests {
		got, ok := parseQ(tt.in)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("parseQ(%q): got %d, %v, want %d, %v", tt.in, got, ok, tt.want, tt.wantOK)
		}
	}
}

func BenchmarkNegotiate(b *testing.B) {
	fields := []string{"gzip, deflate, br, zstd"}
	offered := []string{"zstd", "br", "gzip"}
	b.ReportAllocs()
	for b.Loop() {
		if negotiate(fields, offered) != 0 {
			b.Fatal("want zstd")
		}
	}
}
