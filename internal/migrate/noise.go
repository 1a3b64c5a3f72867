package migrate

// This file tells real differences from noise, as Twitter's Diffy does
// ("Diffy: Testing services without writing tests", Twitter engineering
// blog, 2015; github.com/twitter-archive/diffy). Besides the primary and
// the candidate, a share of requests goes a second time to the primary
// (the "secondary"). A field where primary and secondary differ is noisy
// (a timestamp, a request id), and a field is reported only when the
// candidate differs there clearly more often than the secondary does.

import (
	"cmp"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Threshold defaults: Diffy's relative and absolute thresholds, in
// percent, as its README runs it (-relativeThreshold=20
// -absoluteThreshold=0.03).
const (
	DefaultRelative = 20.0
	DefaultAbsolute = 0.03
	// DefaultMinNoiseSamples is the default of Thresholds.MinNoiseSamples.
	// A field that differs on every primary call (a timestamp, a request
	// id) shows on the first noise sample; 20 samples also catch, with
	// 95% probability, one that differs on a seventh of the calls
	// (1 − (6/7)^20 ≈ 0.95).
	DefaultMinNoiseSamples = 20
)

// OtherEndpoint is the endpoint a Counter counts under once it holds its
// most endpoints.
const OtherEndpoint = "other"

// Tally holds the counters of one endpoint and field.
type Tally struct {
	// Compared is the endpoint's primary-vs-candidate comparisons.
	Compared int64
	// Differ is how many of those differed at this field.
	Differ int64
	// NoiseCompared is the endpoint's primary-vs-secondary comparisons.
	NoiseCompared int64
	// Noise is how many of those differed at this field.
	Noise int64
}

// Thresholds decide when a field's differences are real (Diffy's method,
// see significant).
type Thresholds struct {
	// Relative is the least relative gap, in percent:
	// (diffRate − noiseRate) / diffRate × 100 must exceed it. Zero means
	// 20; a negative value means no relative bound.
	Relative float64
	// Absolute is the least absolute gap, in percent of compared
	// requests: (diffRate − noiseRate) × 100 must exceed it. Zero means
	// 0.03; a negative value means no absolute bound.
	Absolute float64
	// MinNoiseSamples is the fewest primary-vs-secondary comparisons an
	// endpoint needs before any of its fields is significant: with fewer,
	// its noise is unknown, and a timestamp would look like a change.
	// Zero means DefaultMinNoiseSamples (20); a negative value means none,
	// so fields are judged without noise data.
	MinNoiseSamples int64
}

// withDefaults returns t with its zero fields set to the defaults and its
// negative ones to zero.
func (t Thresholds) withDefaults() Thresholds {
	pick := func(v, def float64) float64 {
		switch {
		case v == 0:
			return def
		case v < 0:
			return 0
		}
		return v
	}
	t.Relative = pick(t.Relative, DefaultRelative)
	t.Absolute = pick(t.Absolute, DefaultAbsolute)
	switch {
	case t.MinNoiseSamples == 0:
		t.MinNoiseSamples = DefaultMinNoiseSamples
	case t.MinNoiseSamples < 0:
		t.MinNoiseSamples = 0
	}
	return t
}

// significant reports whether a field differing at diffRate of the
// candidate comparisons and at noiseRate of the noise comparisons (rates
// from 0 to 1) differs for real. It is Diffy's filter
// (DifferencesFilterFactory in its analysis/JoinedDifferences.scala): the
// candidate differs more often than the secondary, by more than both
// thresholds. Diffy sends every request to all three instances and takes
// the relative gap over the sum of both counts; here the secondary sees a
// share of requests only, so the gap is taken between rates, relative to
// the candidate's.
func (t Thresholds) significant(diffRate, noiseRate float64) bool {
	gap := diffRate - noiseRate
	return gap > 0 && gap/diffRate*100 > t.Relative && gap*100 > t.Absolute
}

// FieldReport is the verdict on one field of an endpoint.
type FieldReport struct {
	// Field is the field path (see the package doc).
	Field string `json:"field"`
	// Differ is the candidate comparisons that differed at the field.
	Differ int64 `json:"differ"`
	// Noise is the noise comparisons that differed at the field.
	Noise int64 `json:"noise"`
	// DiffPercent is Differ / Compared × 100; 0 when nothing was
	// compared.
	DiffPercent float64 `json:"diff_percent"`
	// NoisePercent is Noise / NoiseCompared × 100; 0 when NoiseCompared
	// is 0.
	NoisePercent float64 `json:"noise_percent"`
	// Significant reports whether the field differs for real.
	Significant bool `json:"significant"`
}

// EndpointReport is the verdict on one endpoint.
type EndpointReport struct {
	// Endpoint is the endpoint's name (see Endpoint).
	Endpoint string `json:"endpoint"`
	// Compared is the endpoint's candidate comparisons.
	Compared int64 `json:"compared"`
	// NoiseCompared is the endpoint's noise comparisons.
	NoiseCompared int64 `json:"noise_compared"`
	// Fields are the fields that differed at least once, significant
	// first, then by DiffPercent descending, then by name.
	Fields []FieldReport `json:"fields"`
}

// Report is the verdict on a candidate.
type Report struct {
	// Compared is the candidate comparisons of all endpoints.
	Compared int64 `json:"compared"`
	// NoiseCompared is the noise comparisons of all endpoints.
	NoiseCompared int64 `json:"noise_compared"`
	// DiffPercent is the rollout gate's value: the largest excess
	// DiffPercent − NoisePercent among the significant fields of any
	// endpoint; 0 when none is significant.
	DiffPercent float64 `json:"diff_percent"`
	// Endpoints are sorted by name.
	Endpoints []EndpointReport `json:"endpoints"`
}

// Analyze builds the report of counts, keyed by endpoint then field: the
// field "" holds the endpoint's Compared and NoiseCompared totals, the
// others their Differ and Noise. Counts are taken as given; a field of an
// endpoint without totals is never significant.
func Analyze(counts map[string]map[string]Tally, th Thresholds) Report {
	th = th.withDefaults()
	rep := Report{Endpoints: make([]EndpointReport, 0, len(counts))}
	for ep, fields := range counts {
		tot := fields[""]
		er := EndpointReport{
			Endpoint:      ep,
			Compared:      tot.Compared,
			NoiseCompared: tot.NoiseCompared,
			Fields:        make([]FieldReport, 0, len(fields)),
		}
		noiseKnown := tot.NoiseCompared >= th.MinNoiseSamples
		for f, t := range fields {
			if f == "" {
				continue
			}
			diffRate := rate(t.Differ, tot.Compared)
			noiseRate := rate(t.Noise, tot.NoiseCompared)
			fr := FieldReport{
				Field:        f,
				Differ:       t.Differ,
				Noise:        t.Noise,
				DiffPercent:  diffRate * 100,
				NoisePercent: noiseRate * 100,
				Significant:  noiseKnown && th.significant(diffRate, noiseRate),
			}
			if fr.Significant {
				rep.DiffPercent = max(rep.DiffPercent, fr.DiffPercent-fr.NoisePercent)
			}
			er.Fields = append(er.Fields, fr)
		}
		slices.SortFunc(er.Fields, func(a, b FieldReport) int {
			switch {
			case a.Significant != b.Significant:
				if a.Significant {
					return -1
				}
				return 1
			case a.DiffPercent != b.DiffPercent:
				return cmp.Compare(b.DiffPercent, a.DiffPercent)
			}
			return strings.Compare(a.Field, b.Field)
		})
		rep.Compared += tot.Compared
		rep.NoiseCompared += tot.NoiseCompared
		rep.Endpoints = append(rep.Endpoints, er)
	}
	slices.SortFunc(rep.Endpoints, func(a, b EndpointReport) int {
		return strings.Compare(a.Endpoint, b.Endpoint)
	})
	return rep
}

// rate returns n / of, 0 when of is not above 0.
func rate(n, of int64) float64 {
	if of <= 0 {
		return 0
	}
	return float64(n) / float64(of)
}

// Counter accumulates comparison outcomes until Take. It is safe for
// concurrent use and bounded: at most maxEndpoints endpoints, further
// ones counted under OtherEndpoint, and at most maxFields fields per
// endpoint, further fields dropped and counted in Dropped.
type Counter struct {
	maxEndpoints, maxFields int

	mu     sync.Mutex                  // guards counts and named
	counts map[string]map[string]Tally // as Analyze takes them
	named  int                         // endpoints in counts other than OtherEndpoint

	dropped atomic.Int64
}

// NewCounter returns an empty Counter holding at most maxEndpoints
// endpoints (plus OtherEndpoint) and maxFields fields of each. Zero or
// less: every endpoint counts as OtherEndpoint, or every field is
// dropped, respectively.
func NewCounter(maxEndpoints, maxFields int) *Counter {
	return &Counter{
		maxEndpoints: maxEndpoints,
		maxFields:    maxFields,
		counts:       make(map[string]map[string]Tally),
	}
}

// AddCandidate records one primary-vs-candidate comparison of endpoint
// that differed at fields (as Compare returns them: no duplicates).
func (c *Counter) AddCandidate(endpoint string, fields []string) {
	c.add(endpoint, fields, Tally{Compared: 1}, Tally{Differ: 1})
}

// AddNoise records one primary-vs-secondary comparison of endpoint that
// differed at fields (as Compare returns them: no duplicates).
func (c *Counter) AddNoise(endpoint string, fields []string) {
	c.add(endpoint, fields, Tally{NoiseCompared: 1}, Tally{Noise: 1})
}

// add adds total to endpoint's totals and each to each of its fields.
func (c *Counter) add(endpoint string, fields []string, total, each Tally) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.endpoint(endpoint)
	m[""] = m[""].plus(total)
	for _, f := range fields {
		c.addField(m, f, each)
	}
}

// endpoint returns the counts of endpoint, or of OtherEndpoint when
// there is no room for it. c.mu must be held.
func (c *Counter) endpoint(name string) map[string]Tally {
	if m, ok := c.counts[name]; ok {
		return m
	}
	if name != OtherEndpoint && c.named >= c.maxEndpoints {
		name = OtherEndpoint
		if m, ok := c.counts[name]; ok {
			return m
		}
	}
	if name != OtherEndpoint {
		c.named++
	}
	m := map[string]Tally{"": {}} // the totals' key, which addField's bound counts on
	c.counts[name] = m
	return m
}

// addField adds t to field f of the endpoint counts m, or drops it when m
// is full. c.mu must be held.
func (c *Counter) addField(m map[string]Tally, f string, t Tally) {
	if f == "" { // not a field: the totals' key
		return
	}
	cur, ok := m[f]
	if !ok && len(m)-1 >= c.maxFields { // m always holds the totals
		c.dropped.Add(t.Differ + t.Noise)
		return
	}
	m[f] = cur.plus(t)
}

// plus returns the sum of t and u.
func (t Tally) plus(u Tally) Tally {
	return Tally{
		Compared:      t.Compared + u.Compared,
		Differ:        t.Differ + u.Differ,
		NoiseCompared: t.NoiseCompared + u.NoiseCompared,
		Noise:         t.Noise + u.Noise,
	}
}

// Take returns the counts accumulated since the last Take and resets
// them, in Analyze's shape. The caller owns the result.
func (c *Counter) Take() map[string]map[string]Tally {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.counts
	c.counts, c.named = make(map[string]map[string]Tally), 0
	return m
}

// Merge adds the counts m back, within the bounds; it is for counts
// taken but not flushed. Endpoints are admitted in name order, so the
// same ones fold into OtherEndpoint every time. m is not kept.
func (c *Counter) Merge(m map[string]map[string]Tally) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ep := range slices.Sorted(maps.Keys(m)) {
		em := c.endpoint(ep)
		for _, f := range slices.Sorted(maps.Keys(m[ep])) {
			t := m[ep][f]
			if f == "" {
				em[""] = em[""].plus(t)
			} else {
				c.addField(em, f, t)
			}
		}
	}
}

// Dropped returns how many field differences (candidate or noise) were
// dropped because their endpoint held maxFields fields, since the Counter
// was made; Take does not reset it.
func (c *Counter) Dropped() int64 { return c.dropped.Load() }

// Endpoint bounds.
const (
	maxEndpointSegments = 8
	minHexID            = 16 // hex digits for a hex segment to be an id
	minMixedID          = 20 // bytes for a letters-and-digits segment to be an id
)

// Endpoint names the endpoint of a request for aggregation: method, a
// space, and path without its query, with empty segments dropped and
// identifier-like segments replaced by {id}, e.g. "GET /items/{id}/reviews".
// A segment is identifier-like when it is all digits, a UUID, a hex
// string of 16 or more digits, or 20 or more letters, digits, '-' and
// '_' with at least one letter and one digit. Past 8 segments the rest is
// "/…".
func Endpoint(method, path string) string {
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	var b strings.Builder
	b.Grow(len(method) + 1 + len(path))
	b.WriteString(method)
	b.WriteByte(' ')
	n := 0
	for seg := range strings.SplitSeq(path, "/") {
		if seg == "" {
			continue
		}
		if n == maxEndpointSegments {
			b.WriteString("/…")
			break
		}
		b.WriteByte('/')
		if identifier(seg) {
			b.WriteString("{id}")
		} else {
			b.WriteString(seg)
		}
		n++
	}
	if n == 0 {
		b.WriteByte('/')
	}
	return b.String()
}

// identifier reports whether the path segment s looks like an
// identifier (see Endpoint).
func identifier(s string) bool {
	var digits, hex, letters, other int
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case '0' <= c && c <= '9':
			digits++
		case 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F':
			hex++
		case 'g' <= c && c <= 'z' || 'G' <= c && c <= 'Z':
			letters++
		case c == '-' || c == '_':
			other++
		default:
			return false // e.g. '.', '%', non-ASCII: a name, not an id
		}
	}
	switch {
	case digits == len(s):
		return true
	case uuid(s):
		return true
	case digits+hex == len(s) && len(s) >= minHexID:
		return true
	}
	return len(s) >= minMixedID && digits > 0 && hex+letters > 0
}

// uuid reports whether s is a UUID in its 8-4-4-4-12 hex form (RFC 9562
// §4).
func uuid(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}
