package config

// Paths says what torii does with request paths whose meaning upstreams
// disagree on. The router, authentication and the upstream must see the
// same path; where an upstream may read a path differently from torii
// (an encoded slash decoded into a separator, a ";" parameter stripped by
// a Java server), torii refuses the request by default rather than guess.
type Paths struct {
	// EncodedSlashes is what to do with "%2F" and "%5C" (and a raw "\",
	// which torii encodes as "%5C"): "reject" answers 400 (the default);
	// "keep" forwards them encoded, never decoding them into separators,
	// for APIs that carry slashes inside a segment.
	EncodedSlashes string `yaml:"encoded_slashes" json:"encoded_slashes"`
	// Semicolons is what to do with ";" in a path (path parameters, as
	// in "/admin;jsessionid=1"): "reject" answers 400 (the default);
	// "keep" forwards them; routes then match the path with them.
	Semicolons string `yaml:"semicolons" json:"semicolons"`
}

// Path actions.
const (
	PathReject = "reject"
	PathKeep   = "keep"
)

func (p *Paths) applyDefaults() {
	setString(&p.EncodedSlashes, PathReject)
	setString(&p.Semicolons, PathReject)
}

func (v *checker) paths() {
	for path, val := range map[string]string{
		"paths.encoded_slashes": v.c.Paths.EncodedSlashes,
		"paths.semicolons":      v.c.Paths.Semicolons,
	} {
		if val != PathReject && val != PathKeep {
			v.addf(path, "must be %q or %q, got %q", PathReject, PathKeep, val)
		}
	}
}
