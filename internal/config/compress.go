package config

// Compress turns response compression on for a route.
type Compress struct {
	// Algorithms are the encodings offered, in the server's order of
	// preference among those the client accepts equally: "zstd", "br",
	// "gzip". Default: ["zstd", "br", "gzip"].
	Algorithms []string `yaml:"algorithms" json:"algorithms,omitempty"`
	// MinBytes is the smallest response compressed, in bytes; a response
	// without Content-Length is compressed once this much has arrived.
	// Default: 1024.
	MinBytes int `yaml:"min_bytes" json:"min_bytes,omitempty"`
	// Types are the compressible media types; "text/*" matches a whole
	// type. Default: text/*, application/json, application/javascript,
	// application/xml, application/wasm, image/svg+xml and +json/+xml
	// suffixes.
	Types []string `yaml:"types" json:"types,omitempty"`
}

func (r *Route) applyCompressDefaults() {}

func (v *checker) routeCompress(p string, r *Route) {}
