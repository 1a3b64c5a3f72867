package migrate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"torii/internal/config"
	"torii/internal/store"
	"torii/internal/telemetry"
)

// This file keeps the results of response comparison (diff.go compares,
// noise.go decides): every route's counts accumulate in memory, are added
// to the store on each Flush (so replicas sum up and restarts lose at most
// one interval), and the reports are analysed from the store's totals.

// Bounds of the in-memory accumulation, per route.
const (
	maxEndpoints     = 200 // further endpoints count as "other"
	maxFields        = 200 // further fields of an endpoint are dropped
	sampleValueBytes = 512 // a sample's value at its field, cut beyond
	// samplesPerFlush caps the samples taken per route and field between
	// two flushes; the store keeps the newest few.
	samplesPerFlush = 2
)

// Redacted replaces a redacted value in a stored sample.
const Redacted = "[redacted]"

// alwaysRedacted are response headers whose values are never stored.
var alwaysRedacted = []string{"header.Set-Cookie", "header.Authorization", "header.Proxy-Authorization", "header.Www-Authenticate", "header.Proxy-Authenticate"}

// DiffsOptions configure NewDiffs.
type DiffsOptions struct {
	// Store keeps the counts and samples. Required.
	Store store.Store
	// Logger receives flush failures. Nil: discard.
	Logger *slog.Logger
	// Registerer receives torii_shadow_comparisons_total and
	// torii_shadow_diff_percent. Nil: not registered.
	Registerer prometheus.Registerer
	// Now is the samples' clock. Nil: time.Now.
	Now func() time.Time
}

// Diffs keeps the comparison results of every route. Safe for
// concurrent use.
type Diffs struct {
	store store.Store
	log   *slog.Logger
	now   func() time.Time

	compared *prometheus.CounterVec // route, outcome
	percent  *prometheus.GaugeVec   // route

	mu      sync.Mutex // guards routes and reports
	routes  map[string]*RouteDiffs
	reports map[string]Report
	ioMu    sync.Mutex // serialises Flush
}

// NewDiffs returns an empty Diffs.
func NewDiffs(o DiffsOptions) (*Diffs, error) {
	if o.Store == nil {
		return nil, errors.New("new diffs: no store")
	}
	d := &Diffs{
		store:   o.Store,
		log:     o.Logger,
		now:     o.Now,
		routes:  map[string]*RouteDiffs{},
		reports: map[string]Report{},
		compared: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "torii_shadow_comparisons_total",
			Help: "Responses compared, by route, kind (candidate: primary against candidate; noise: primary against a second primary call) and outcome (equal or different).",
		}, []string{"route", "kind", "outcome"}),
		percent: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "torii_shadow_diff_percent",
			Help: "The route's diff rate: the largest share of compared requests, in percent, in which a field differed beyond noise (the rollout's diff gate value).",
		}, []string{"route"}),
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if d.now == nil {
		d.now = time.Now
	}
	if o.Registerer != nil {
		d.compared = telemetry.Register(o.Registerer, d.compared)
		d.percent = telemetry.Register(o.Registerer, d.percent)
	}
	return d, nil
}

// RouteDiffs is one route's comparison state. It outlives reloads that
// keep the route's compare block and candidate.
type RouteDiffs struct {
	route, generation, key string
	cmp                    *Comparer
	th                     Thresholds
	secondary              float64 // share of compared requests sent twice, 0 to 1
	redact                 []string
	keep                   int
	maxBody                int // capture bound per response, in bytes
	now                    func() time.Time
	counter                *Counter

	equal, different, noiseEqual, noiseDifferent prometheus.Counter

	mu      sync.Mutex // guards samples and taken
	samples []store.DiffSample
	taken   map[string]int // samples taken per field since the last flush
}

// Generation identifies a route's comparison: its compare block and the
// candidate it mirrors to, plus the rollout plan's generation, so counts
// start afresh when any of them changes.
func Generation(r *config.Route) string {
	if r.Shadow == nil || r.Shadow.Compare == nil {
		return ""
	}
	b, _ := json.Marshal(struct {
		Compare  *config.Compare
		Upstream string
		Rollout  string
	}{r.Shadow.Compare, r.Shadow.Upstream, r.Generation()})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:6])
}

// Route returns route's comparison state for the route's config, reusing
// the existing one when its generation is unchanged. Called while a
// snapshot is built; a route whose build fails keeps its old state.
func (d *Diffs) Route(r *config.Route) (*RouteDiffs, error) {
	gen := Generation(r)
	if gen == "" {
		return nil, fmt.Errorf("route %q compares no responses", r.Name)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if rd := d.routes[r.Name]; rd != nil && rd.generation == gen {
		return rd, nil
	}
	c := r.Shadow.Compare
	cmp, err := NewComparer(CompareOptions{Headers: c.Headers, Ignore: c.Ignore, MaxBodyBytes: c.MaxBodyBytes})
	if err != nil {
		return nil, fmt.Errorf("shadow.compare: %w", err)
	}
	for _, p := range c.Redact {
		if err := ParsePath(p); err != nil {
			return nil, fmt.Errorf("shadow.compare.redact: %w", err)
		}
	}
	rd := &RouteDiffs{
		route: r.Name, generation: gen, cmp: cmp,
		th:        Thresholds{Relative: c.RelativeThreshold, Absolute: c.AbsoluteThreshold},
		secondary: c.SecondaryPercent / 100,
		redact:    append(slices.Clone(c.Redact), alwaysRedacted...),
		keep:      c.Samples,
		maxBody:   c.MaxBodyBytes,
		now:       d.now,
		counter:   NewCounter(maxEndpoints, maxFields),
		taken:     map[string]int{},
	}
	rd.equal = d.compared.WithLabelValues(r.Name, "candidate", "equal")
	rd.different = d.compared.WithLabelValues(r.Name, "candidate", "different")
	rd.noiseEqual = d.compared.WithLabelValues(r.Name, "noise", "equal")
	rd.noiseDifferent = d.compared.WithLabelValues(r.Name, "noise", "different")
	// Counts of the previous generation not yet flushed are dropped with
	// it: they compared something else.
	d.routes[r.Name] = rd
	delete(d.reports, r.Name)
	return rd, nil
}

// Apply forgets the routes not in names (after a reload removed them or
// their compare block), with their metrics.
func (d *Diffs) Apply(names []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for name := range d.routes {
		if !slices.Contains(names, name) {
			delete(d.routes, name)
			delete(d.reports, name)
			d.compared.DeletePartialMatch(prometheus.Labels{"route": name})
			d.percent.DeleteLabelValues(name)
		}
	}
}

// sampleSecondary reports whether this comparison also calls the primary
// a second time.
func (rd *RouteDiffs) sampleSecondary() bool { return rand.Float64() < rd.secondary }

// observe records one comparison: the candidate's response against the
// primary's and, when secondary is not nil, a second primary response
// against the first. meta describes the request for samples.
func (rd *RouteDiffs) observe(endpoint string, primary, candidate, secondary *Response, meta sampleMeta) {
	fields := rd.cmp.Compare(primary, candidate)
	rd.counter.AddCandidate(endpoint, fields)
	if len(fields) == 0 {
		rd.equal.Inc()
	} else {
		rd.different.Inc()
		rd.sample(endpoint, fields, primary, candidate, meta)
	}
	if secondary != nil {
		noise := rd.cmp.Compare(primary, secondary)
		rd.counter.AddNoise(endpoint, noise)
		if len(noise) == 0 {
			rd.noiseEqual.Inc()
		} else {
			rd.noiseDifferent.Inc()
		}
	}
}

// sampleMeta is what a sample says about its request.
type sampleMeta struct {
	id, method, path string
}

// sample keeps redacted examples of the differing fields, a few per field
// between flushes.
func (rd *RouteDiffs) sample(endpoint string, fields []string, primary, candidate *Response, meta sampleMeta) {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	for _, f := range fields {
		if rd.taken[f] >= samplesPerFlush {
			continue
		}
		rd.taken[f]++
		s := store.DiffSample{
			DiffKey:   store.DiffKey{Route: rd.route, Generation: rd.generation, Endpoint: endpoint, Field: f},
			At:        rd.now(),
			RequestID: meta.id, Method: meta.method, Path: meta.path,
		}
		if rd.redacted(f) {
			s.Primary, s.Candidate = Redacted, Redacted
		} else {
			s.Primary = rd.value(primary, f)
			s.Candidate = rd.value(candidate, f)
		}
		rd.samples = append(rd.samples, s)
	}
}

// value renders r's value at field for a sample; "(absent)" when missing.
func (rd *RouteDiffs) value(r *Response, field string) string {
	v, ok := rd.cmp.Value(r, field, sampleValueBytes)
	if !ok {
		return "(absent)"
	}
	return v
}

// redacted reports whether field, or a field above it, is redacted.
func (rd *RouteDiffs) redacted(field string) bool {
	for _, p := range rd.redact {
		if pathWithin(field, p) || pathWithin(p, field) {
			// A field above a redacted one would show it inside its value.
			return true
		}
	}
	return false
}

// pathWithin reports whether field is p or below it.
func pathWithin(field, p string) bool {
	if !strings.HasPrefix(strings.ToLower(field), strings.ToLower(p)) {
		return false
	}
	rest := field[len(p):]
	return rest == "" || rest[0] == '.' || rest[0] == '['
}

// take returns and resets the route's pending counts and samples.
func (rd *RouteDiffs) take() ([]store.DiffCount, []store.DiffSample) {
	var counts []store.DiffCount
	for ep, fields := range rd.counter.Take() {
		for f, t := range fields {
			counts = append(counts, store.DiffCount{
				DiffKey:  store.DiffKey{Route: rd.route, Generation: rd.generation, Endpoint: ep, Field: f},
				Compared: t.Compared, Differ: t.Differ, NoiseCompared: t.NoiseCompared, Noise: t.Noise,
			})
		}
	}
	rd.mu.Lock()
	samples := rd.samples
	rd.samples = nil
	clear(rd.taken)
	rd.mu.Unlock()
	return counts, samples
}

// giveBack returns counts a failed flush could not store; samples are
// dropped (they are examples, not data).
func (rd *RouteDiffs) giveBack(counts []store.DiffCount) {
	m := map[string]map[string]Tally{}
	for _, c := range counts {
		if m[c.Endpoint] == nil {
			m[c.Endpoint] = map[string]Tally{}
		}
		m[c.Endpoint][c.Field] = Tally{Compared: c.Compared, Differ: c.Differ, NoiseCompared: c.NoiseCompared, Noise: c.Noise}
	}
	rd.counter.Merge(m)
}

// Flush adds every route's pending counts and samples to the store, then
// reads back each route's totals (every replica's) and analyses them.
func (d *Diffs) Flush(ctx context.Context) error {
	d.ioMu.Lock()
	defer d.ioMu.Unlock()
	d.mu.Lock()
	routes := make([]*RouteDiffs, 0, len(d.routes))
	for _, rd := range d.routes {
		routes = append(routes, rd)
	}
	d.mu.Unlock()
	var errs []error
	for _, rd := range routes {
		counts, samples := rd.take()
		if len(counts) > 0 {
			if err := d.store.AddDiffs(ctx, counts); err != nil {
				rd.giveBack(counts)
				errs = append(errs, fmt.Errorf("route %q: store diff counts: %w", rd.route, err))
				continue
			}
		}
		if len(samples) > 0 {
			if err := d.store.AddDiffSamples(ctx, samples, rd.keep); err != nil {
				errs = append(errs, fmt.Errorf("route %q: store diff samples: %w", rd.route, err))
			}
		}
		stored, err := d.store.Diffs(ctx, rd.route, rd.generation)
		if err != nil {
			errs = append(errs, fmt.Errorf("route %q: read diff counts: %w", rd.route, err))
			continue
		}
		rep := Analyze(tallies(stored), rd.th)
		d.mu.Lock()
		if d.routes[rd.route] == rd { // not replaced by a reload meanwhile
			d.reports[rd.route] = rep
			d.percent.WithLabelValues(rd.route).Set(rep.DiffPercent)
		}
		d.mu.Unlock()
	}
	return errors.Join(errs...)
}

// Prune deletes the stored counts and samples of every route's earlier
// generations.
func (d *Diffs) Prune(ctx context.Context) error {
	d.mu.Lock()
	gens := map[string]string{}
	for name, rd := range d.routes {
		gens[name] = rd.generation
	}
	d.mu.Unlock()
	var errs []error
	for name, gen := range gens {
		if err := d.store.PruneDiffs(ctx, name, gen); err != nil {
			errs = append(errs, fmt.Errorf("route %q: prune diffs: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// tallies reshapes stored counts for Analyze.
func tallies(counts []store.DiffCount) map[string]map[string]Tally {
	m := map[string]map[string]Tally{}
	for _, c := range counts {
		if m[c.Endpoint] == nil {
			m[c.Endpoint] = map[string]Tally{}
		}
		t := m[c.Endpoint][c.Field]
		t.Compared += c.Compared
		t.Differ += c.Differ
		t.NoiseCompared += c.NoiseCompared
		t.Noise += c.Noise
		m[c.Endpoint][c.Field] = t
	}
	return m
}

// Run flushes every interval until ctx ends, prunes old generations
// hourly, and flushes once more on the way out.
func (d *Diffs) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var lastPrune time.Time
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := d.Flush(fctx); err != nil {
				d.log.Error("final diff flush failed", "err", err)
			}
			return
		case <-t.C:
			fctx, cancel := context.WithTimeout(ctx, interval)
			if err := d.Flush(fctx); err != nil && ctx.Err() == nil {
				d.log.Warn("diff flush failed; counts kept for the next one", "err", err)
			}
			if time.Since(lastPrune) > time.Hour {
				if err := d.Prune(fctx); err != nil && ctx.Err() == nil {
					d.log.Warn("diff prune failed", "err", err)
				} else {
					lastPrune = time.Now()
				}
			}
			cancel()
		}
	}
}

// Report returns the route's last analysed report: false before the
// first flush or when the route compares nothing.
func (d *Diffs) Report(route string) (Report, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, ok := d.reports[route]
	return r, ok
}

// DiffPercent is the rollout's diff gate source: the route's diff rate
// and how many requests were compared; false before any comparison.
func (d *Diffs) DiffPercent(route string) (float64, int64, bool) {
	r, ok := d.Report(route)
	if !ok || r.Compared == 0 {
		return 0, 0, false
	}
	return r.DiffPercent, r.Compared, true
}

// Generation returns the route's current comparison generation; "" when
// it compares nothing.
func (d *Diffs) Generation(route string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if rd := d.routes[route]; rd != nil {
		return rd.generation
	}
	return ""
}

// Samples returns the stored samples of the route's current generation at
// field ("" for any), newest first.
func (d *Diffs) Samples(ctx context.Context, route, field string, limit int) ([]store.DiffSample, error) {
	gen := d.Generation(route)
	if gen == "" {
		return nil, nil
	}
	return d.store.DiffSamples(ctx, route, gen, field, limit)
}
