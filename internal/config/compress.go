package config

import (
	"slices"
	"strconv"
	"strings"
)

// Defaults and validation of response compression (docs/compression.md).

// Content codings torii compresses with, the values of
// Compress.Algorithms.
const (
	CompressZstd   = "zstd" // Zstandard, RFC 8878
	CompressBrotli = "br"   // Brotli, RFC 7932
	CompressGzip   = "gzip" // gzip, RFC 1952
)

// DefaultCompressMinBytes is the default of Compress.MinBytes.
const DefaultCompressMinBytes = 1024

// MaxCompressMinBytes bounds Compress.MinBytes: a response of unknown
// length is held back in memory until this much of it has arrived.
const MaxCompressMinBytes = 1 << 20

// DefaultCompressAlgorithms is the default of Compress.Algorithms.
var DefaultCompressAlgorithms = []string{CompressZstd, CompressBrotli, CompressGzip}

// DefaultCompressTypes is the default of Compress.Types.
var DefaultCompressTypes = []string{
	"text/*",
	"application/json",
	"application/javascript",
	"application/xml",
	"application/wasm",
	"image/svg+xml",
	"+json",
	"+xml",
}

// Compress turns response compression on for a route.
type Compress struct {
	// Algorithms are the encodings offered, in the server's order of
	// preference among those the client accepts equally: "zstd", "br",
	// "gzip". Default: ["zstd", "br", "gzip"].
	Algorithms []string `yaml:"algorithms" json:"algorithms,omitempty"`
	// MinBytes is the smallest response compressed, in bytes; a response
	// without Content-Length is compressed once this much has arrived.
	// At most 1048576. Default (and zero): 1024.
	MinBytes int `yaml:"min_bytes" json:"min_bytes,omitempty"`
	// Types are the compressible media types, matched without parameters
	// and ignoring case: "type/subtype" matches exactly, "text/*" matches
	// a whole type, and "+json" matches every type with that structured
	// syntax suffix (RFC 6838 §4.2.8), such as application/ld+json.
	// Default: text/*, application/json, application/javascript,
	// application/xml, application/wasm, image/svg+xml, +json and +xml.
	Types []string `yaml:"types" json:"types,omitempty"`
}

var compressAlgorithms = []string{CompressZstd, CompressBrotli, CompressGzip}

func (r *Route) applyCompressDefaults() {
	c := r.Compress
	if c == nil {
		return
	}
	if len(c.Algorithms) == 0 {
		c.Algorithms = slices.Clone(DefaultCompressAlgorithms)
	}
	setInt(&c.MinBytes, DefaultCompressMinBytes)
	if len(c.Types) == 0 {
		c.Types = slices.Clone(DefaultCompressTypes)
	}
}

func (v *checker) routeCompress(p string, r *Route) {
	c := r.Compress
	if c == nil {
		return
	}
	p += ".compress"
	for i, a := range c.Algorithms {
		ap := p + ".algorithms[" + strconv.Itoa(i) + "]"
		switch {
		case strings.EqualFold(a, "brotli"):
			v.addf(ap, "unknown algorithm %q; brotli's content coding is named \"br\"", a)
		case !slices.Contains(compressAlgorithms, a):
			v.addf(ap, "%s", unknownValue("algorithm", a, compressAlgorithms))
		case slices.Index(c.Algorithms, a) < i:
			v.addf(ap, "duplicate algorithm %q, also algorithms[%d]", a, slices.Index(c.Algorithms, a))
		}
	}
	v.between(p+".min_bytes", c.MinBytes, 1, MaxCompressMinBytes)
	for i, t := range c.Types {
		if msg := checkMediaRange(t); msg != "" {
			v.addf(p+".types["+strconv.Itoa(i)+"]", "%s", msg)
		}
	}
}

// checkMediaRange returns what is wrong with an entry of Compress.Types,
// or "".
func checkMediaRange(t string) string {
	const want = "; want \"type/subtype\", \"type/*\" or a suffix such as \"+json\""
	if suffix, ok := strings.CutPrefix(t, "+"); ok {
		if !isToken(suffix) {
			return "invalid suffix " + strconv.Quote(t) + want
		}
		return ""
	}
	typ, sub, ok := strings.Cut(t, "/")
	switch {
	case typ == "*":
		return "invalid media type " + strconv.Quote(t) + ": compressing every type would recompress images, video and archives; list the types to compress"
	case strings.Contains(t, ";"):
		return "invalid media type " + strconv.Quote(t) + ": parameters are ignored when matching; write the type alone"
	case !ok || !isToken(typ) || !isToken(sub):
		return "invalid media type " + strconv.Quote(t) + want
	case sub != "*" && strings.Contains(sub, "*"):
		return "invalid media type " + strconv.Quote(t) + "; a wildcard must be the whole subtype, as in \"text/*\""
	}
	return ""
}
