package config

import (
	"maps"
	"slices"
	"time"
)

// Defaults and validation of shadow traffic (issue 6, docs/migration.md).

// Defaults of Shadow's fields.
const (
	DefaultShadowPercent       = 100.0
	DefaultShadowMaxBodyBytes  = 64 << 10
	DefaultShadowMaxConcurrent = 100
)

// MaxShadowBodyBytes bounds Shadow.MaxBodyBytes: every mirrored body is
// held in memory until its shadow request is sent.
const MaxShadowBodyBytes = 16 << 20

// Shadow mirrors a share of a route's requests to another upstream, the
// candidate, after the primary request is dispatched. The client's
// response and latency never depend on the shadow: its responses are
// read and discarded, and it counts only toward the candidate's SLIs.
type Shadow struct {
	// Upstream is the upstream mirrored requests go to. Required; one of
	// upstreams.
	Upstream string `yaml:"upstream" json:"upstream"`
	// Percent is the share of the route's eligible requests mirrored, in
	// percent: more than 0, at most 100. Default (and zero): 100.
	Percent float64 `yaml:"percent" json:"percent"`
	// MaxBodyBytes is the largest request body mirrored, in bytes; a
	// larger body still reaches the primary whole but is not mirrored.
	// At most 16777216. Default (and zero): 65536.
	MaxBodyBytes int `yaml:"max_body_bytes" json:"max_body_bytes,omitempty"`
	// AllowUnsafe mirrors requests of every method. Default (false): only
	// safe methods (GET, HEAD, OPTIONS, TRACE; RFC 9110 §9.2.1) are
	// mirrored, since a candidate that shares state with the primary
	// would apply a write twice, or late and out of order.
	AllowUnsafe bool `yaml:"allow_unsafe" json:"allow_unsafe,omitempty"`
	// MaxConcurrent caps the route's shadow requests in flight; a request
	// beyond it is not mirrored (and counted as skipped). Default (and
	// zero): 100.
	MaxConcurrent int `yaml:"max_concurrent" json:"max_concurrent,omitempty"`
	// Timeout bounds one shadow request, from its start until its
	// response body is read. Default (and zero): the route's timeout.
	Timeout Duration `yaml:"timeout" json:"timeout,omitempty"`
	// Compare compares the candidate's responses with the primary's
	// (docs/migration.md). Nil: responses are discarded unread.
	Compare *Compare `yaml:"compare" json:"compare,omitempty"`
}

// applyShadowDefaults fills r.Shadow's defaults. It reads r.Timeout, so
// it runs after the route's own timeout default is set.
func (r *Route) applyShadowDefaults() {
	s := r.Shadow
	if s == nil {
		return
	}
	if s.Percent == 0 {
		s.Percent = DefaultShadowPercent
	}
	setInt(&s.MaxBodyBytes, DefaultShadowMaxBodyBytes)
	setInt(&s.MaxConcurrent, DefaultShadowMaxConcurrent)
	setDuration(&s.Timeout, time.Duration(r.Timeout))
}

// routeShadow checks r.Shadow. Negative timeouts are reported by the
// generic duration check.
func (v *checker) routeShadow(p string, r *Route) {
	s := r.Shadow
	if s == nil {
		return
	}
	p += ".shadow"
	known := slices.Sorted(maps.Keys(v.c.Upstreams))
	switch _, ok := v.c.Upstreams[s.Upstream]; {
	case s.Upstream == "":
		v.addf(p+".upstream", "upstream is required; name the upstream that receives the mirrored requests")
	case !ok:
		v.addf(p+".upstream", "unknown upstream %q%s", s.Upstream, upstreamHint(s.Upstream, known))
	}
	if !(s.Percent > 0 && s.Percent <= 100) {
		v.addf(p+".percent", "must be a percentage above 0 and at most 100, e.g. 10, got %v", s.Percent)
	}
	v.between(p+".max_body_bytes", s.MaxBodyBytes, 1, MaxShadowBodyBytes)
	v.atLeast(p+".max_concurrent", s.MaxConcurrent, 1)
	if len(r.Backends) == 0 {
		v.addf(p, "only a route that forwards to backends can mirror; remove shadow or add backends")
	}
}
