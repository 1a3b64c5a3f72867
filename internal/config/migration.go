package config

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// Response comparison and rollouts (issue 6, docs/migration.md).

// Defaults of Compare's and Rollout's fields.
const (
	DefaultCompareSecondaryPercent = 20.0
	DefaultCompareMaxBodyBytes     = 1 << 20
	DefaultCompareRelative         = 20.0
	DefaultCompareAbsolute         = 0.03
	DefaultCompareSamples          = 5
	DefaultRolloutEvery            = 5 * time.Minute
	DefaultRolloutWindow           = 5 * time.Minute
	DefaultRolloutMinRequests      = 100
	DefaultRolloutMaxBurnRate      = 14.4
)

// Bounds of Compare's and Rollout's fields.
const (
	maxCompareBodyBytes = 16 << 20
	maxCompareSamples   = 100
	minRolloutEvery     = 10 * time.Second
	minRolloutWindow    = 10 * time.Second
)

// Compare compares the candidate's responses to mirrored requests with
// the primary's, field by field, and learns which fields are noise by
// comparing the primary with itself on a share of requests (the
// secondary), as Twitter's Diffy does.
type Compare struct {
	// SecondaryPercent is the share of compared requests also sent a
	// second time to the primary upstream, in percent: more than 0, at
	// most 100. Only safe methods are sent twice, even with the shadow's
	// allow_unsafe. Default (and zero): 20.
	SecondaryPercent float64 `yaml:"secondary_percent" json:"secondary_percent"`
	// Headers are the response headers compared. Default: [Content-Type].
	Headers []string `yaml:"headers" json:"headers,omitempty"`
	// Ignore are field paths never compared, e.g.
	// "body.meta.generated_at", "body.items[*].etag", "header.Date". A
	// path also ignores every field below it.
	Ignore []string `yaml:"ignore" json:"ignore,omitempty"`
	// Redact are field paths whose values are never stored in diff
	// samples (they show as "[redacted]"). Set-Cookie and
	// Authorization-like headers are always redacted.
	Redact []string `yaml:"redact" json:"redact,omitempty"`
	// MaxBodyBytes is the largest response body captured for comparison,
	// per side; a longer body's fields are not compared. At most
	// 16777216. Default (and zero): 1048576.
	MaxBodyBytes int `yaml:"max_body_bytes" json:"max_body_bytes"`
	// RelativeThreshold is the least relative gap, in percent, between a
	// field's difference rate and its noise rate for the field to be
	// reported. Default (and zero): 20.
	RelativeThreshold float64 `yaml:"relative_threshold" json:"relative_threshold"`
	// AbsoluteThreshold is the least absolute gap between the two rates,
	// in percent of compared requests. Default (and zero): 0.03.
	AbsoluteThreshold float64 `yaml:"absolute_threshold" json:"absolute_threshold"`
	// Samples is how many redacted examples are kept per endpoint and
	// field. At most 100. Default (and zero): 5.
	Samples int `yaml:"samples" json:"samples"`
}

// Rollout moves a route's traffic to its candidate backend step by step,
// advancing while the candidate's gates pass and rolling back to 0 when
// one is breached. The config declares the plan; the store holds the live
// state (the step, an operator's pause or abort), which stands across
// reloads and restarts until this block changes.
type Rollout struct {
	// Steps are the candidate's shares of the route's traffic, in
	// percent, strictly increasing, from 0 (observe the shadow only) to
	// 100. Required.
	Steps []float64 `yaml:"steps" json:"steps"`
	// Every is how long each step holds, with every gate passing, before
	// the next. At least 10s. Default: 5m.
	Every Duration `yaml:"every" json:"every"`
	// Window is how far back the gates look: the time since the step
	// started, at most this. At least 10s. Default: 5m.
	Window Duration `yaml:"window" json:"window"`
	// MinRequests is how many of the candidate's requests (shadow ones
	// included) the window must hold before a gate judges it: fewer, and
	// the rollout neither advances nor rolls back. Default: 100.
	MinRequests int `yaml:"min_requests" json:"min_requests"`
	// MaxBurnRate rolls back when the candidate's availability or latency
	// burn rate over the window exceeds it (1 spends the error budget
	// exactly over the SLO period). Default: 14.4, the fast-burn paging
	// rate of the SRE Workbook.
	MaxBurnRate float64 `yaml:"max_burn_rate" json:"max_burn_rate"`
	// MaxDiffPercent rolls back when a response field differs between
	// the candidate and the primary, beyond noise, in more than this
	// percent of compared requests. Needs shadow.compare on the
	// candidate. Zero: no diff gate.
	MaxDiffPercent float64 `yaml:"max_diff_percent" json:"max_diff_percent,omitempty"`
}

// Generation identifies the route's rollout plan: it changes when the
// rollout block or the candidate changes, which restarts the rollout and
// clears an operator's pause or abort. "" without a rollout.
func (r *Route) Generation() string {
	if r.Rollout == nil {
		return ""
	}
	cand, _, _ := r.Candidate()
	b, _ := json.Marshal(struct {
		Rollout   *Rollout
		Candidate string
	}{r.Rollout, cand})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:6])
}

// Candidate returns the upstream of the route's candidate backend and its
// index in Backends; false when there is not exactly one.
func (r *Route) Candidate() (string, int, bool) {
	name, idx, n := "", -1, 0
	for i, b := range r.Backends {
		if b.Candidate {
			name, idx = b.Upstream, i
			n++
		}
	}
	return name, idx, n == 1
}

func (r *Route) applyMigrationDefaults() {
	if s := r.Shadow; s != nil && s.Compare != nil {
		c := s.Compare
		if c.SecondaryPercent == 0 {
			c.SecondaryPercent = DefaultCompareSecondaryPercent
		}
		if len(c.Headers) == 0 {
			c.Headers = []string{"Content-Type"}
		}
		setInt(&c.MaxBodyBytes, DefaultCompareMaxBodyBytes)
		if c.RelativeThreshold == 0 {
			c.RelativeThreshold = DefaultCompareRelative
		}
		if c.AbsoluteThreshold == 0 {
			c.AbsoluteThreshold = DefaultCompareAbsolute
		}
		setInt(&c.Samples, DefaultCompareSamples)
	}
	if ro := r.Rollout; ro != nil {
		setDuration(&ro.Every, DefaultRolloutEvery)
		setDuration(&ro.Window, DefaultRolloutWindow)
		setInt(&ro.MinRequests, DefaultRolloutMinRequests)
		if ro.MaxBurnRate == 0 {
			ro.MaxBurnRate = DefaultRolloutMaxBurnRate
		}
	}
}

// routeCompare checks r.Shadow.Compare.
func (v *checker) routeCompare(p string, r *Route) {
	if r.Shadow == nil || r.Shadow.Compare == nil {
		return
	}
	c := r.Shadow.Compare
	p += ".shadow.compare"
	if !(c.SecondaryPercent > 0 && c.SecondaryPercent <= 100) {
		v.addf(p+".secondary_percent", "must be a percentage above 0 and at most 100, e.g. 20, got %v", c.SecondaryPercent)
	}
	for i, h := range c.Headers {
		v.headerName(p+".headers["+strconv.Itoa(i)+"]", h)
	}
	for i, f := range c.Ignore {
		v.fieldPath(p+".ignore["+strconv.Itoa(i)+"]", f)
	}
	for i, f := range c.Redact {
		v.fieldPath(p+".redact["+strconv.Itoa(i)+"]", f)
	}
	v.between(p+".max_body_bytes", c.MaxBodyBytes, 1, maxCompareBodyBytes)
	if !(c.RelativeThreshold > 0 && c.RelativeThreshold <= 100) {
		v.addf(p+".relative_threshold", "must be a percentage above 0 and at most 100, e.g. 20, got %v", c.RelativeThreshold)
	}
	if !(c.AbsoluteThreshold > 0 && c.AbsoluteThreshold <= 100) {
		v.addf(p+".absolute_threshold", "must be a percentage above 0 and at most 100, e.g. 0.03, got %v", c.AbsoluteThreshold)
	}
	v.between(p+".samples", c.Samples, 1, maxCompareSamples)
}

// fieldPath checks the shape of a comparison field path; the comparer
// checks the rest when the route is built.
func (v *checker) fieldPath(p, f string) {
	switch {
	case f == "status", f == "body":
	case strings.HasPrefix(f, "header.") && isToken(f[len("header."):]):
	case strings.HasPrefix(f, "body.") && len(f) > len("body."), strings.HasPrefix(f, "body["):
	default:
		v.addf(p, "invalid field path %q; write status, header.<Name>, body, or a JSON path such as body.items[*].price", f)
	}
}

// routeRollout checks r.Rollout.
func (v *checker) routeRollout(p string, r *Route) {
	ro := r.Rollout
	if ro == nil {
		return
	}
	p += ".rollout"
	cand, _, ok := r.Candidate()
	switch {
	case len(r.Backends) == 0:
		v.addf(p, "only a route that forwards to backends can roll out; add backends with one candidate: true")
		return
	case !ok:
		v.addf(p, "a rollout moves traffic to one backend marked candidate: true; mark exactly one of backends")
	case len(r.Backends) < 2:
		v.addf(p, "a rollout needs the primary backend beside the candidate; add the upstream it replaces to backends")
	}
	if len(ro.Steps) == 0 {
		v.addf(p+".steps", "steps are required: the candidate's shares in percent, e.g. [1, 5, 25, 50, 100]")
	}
	for i, s := range ro.Steps {
		sp := p + ".steps[" + strconv.Itoa(i) + "]"
		switch {
		case !(s >= 0 && s <= 100):
			v.addf(sp, "must be a percentage from 0 to 100, got %v", s)
		case i > 0 && s <= ro.Steps[i-1]:
			v.addf(sp, "steps must increase; %v follows %v", s, ro.Steps[i-1])
		}
	}
	if ro.Every.D() < minRolloutEvery {
		v.addf(p+".every", "must be at least %s, got %s", minRolloutEvery, ro.Every)
	}
	if ro.Window.D() < minRolloutWindow {
		v.addf(p+".window", "must be at least %s, got %s", minRolloutWindow, ro.Window)
	}
	v.atLeast(p+".min_requests", ro.MinRequests, 1)
	if !(ro.MaxBurnRate > 0) {
		v.addf(p+".max_burn_rate", "must be above 0, e.g. 14.4, got %v", ro.MaxBurnRate)
	}
	if !(ro.MaxDiffPercent >= 0 && ro.MaxDiffPercent <= 100) {
		v.addf(p+".max_diff_percent", "must be a percentage from 0 (no diff gate) to 100, got %v", ro.MaxDiffPercent)
	}
	if ro.MaxDiffPercent > 0 && ok {
		switch sh := r.Shadow; {
		case sh == nil || sh.Compare == nil:
			v.addf(p+".max_diff_percent", "the diff gate needs shadow.compare mirroring to the candidate %q; add shadow: {upstream: %s, compare: {}} or remove max_diff_percent", cand, cand)
		case sh.Upstream != cand:
			v.addf(p+".max_diff_percent", "the diff gate needs the shadow to mirror to the candidate %q, not %q", cand, sh.Upstream)
		}
	}
	if r.SLO == nil || (r.SLO.Availability <= 0 && r.SLO.Latency == nil) {
		v.addf(p, "a rollout is gated on the candidate's burn rate; give the route an slo (or set default_slo)")
	}
	if len(ro.Steps) > 0 && ro.Steps[0] == 0 && r.Shadow == nil {
		v.addf(p+".steps[0]", "a 0 %% step sends the candidate no traffic, so its gates see nothing without a shadow; add shadow: {upstream: %s} or start above 0", cand)
	}
}
