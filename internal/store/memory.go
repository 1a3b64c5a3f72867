package store

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
)

// Memory is a Store in process memory: nothing survives a restart and
// nothing is shared across replicas. Tests use it, and so does a torii
// configured without persistence.
type Memory struct {
	now func() time.Time

	mu       sync.Mutex                  // guards the fields below
	buckets  map[Series]map[int64]Counts // by bucket start (unix seconds)
	alerts   map[string]AlertState
	leases   map[string]lease
	rollouts map[string]RolloutState
	audit    []AuditEntry // in insertion order
	diffs    map[DiffKey]DiffCount
	samples  []DiffSample // in insertion order
}

type lease struct {
	holder string
	until  time.Time
}

// NewMemory returns an empty Memory whose leases expire by now (nil:
// time.Now).
func NewMemory(now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	return &Memory{
		now: now, buckets: map[Series]map[int64]Counts{}, alerts: map[string]AlertState{}, leases: map[string]lease{},
		rollouts: map[string]RolloutState{}, diffs: map[DiffKey]DiffCount{},
	}
}

// Add implements Store.
func (m *Memory) Add(_ context.Context, bs []Bucket) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, b := range bs {
		byStart := m.buckets[b.Series]
		if byStart == nil {
			byStart = map[int64]Counts{}
			m.buckets[b.Series] = byStart
		}
		k := Align(b.Start).Unix()
		byStart[k] = byStart[k].Add(b.Counts)
	}
	return nil
}

// Sums implements Store.
func (m *Memory) Sums(_ context.Context, now time.Time, windows []time.Duration) (map[Series][]Counts, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[Series][]Counts{}
	end := now.Unix()
	for s, byStart := range m.buckets {
		sums := make([]Counts, len(windows))
		any := false
		for start, c := range byStart {
			for i, w := range windows {
				if start >= end-int64(w/time.Second) && start < end {
					sums[i] = sums[i].Add(c)
					any = true
				}
			}
		}
		if any {
			out[s] = sums
		}
	}
	return out, nil
}

// Alerts implements Store.
func (m *Memory) Alerts(context.Context) ([]AlertState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]AlertState, 0, len(m.alerts))
	for _, a := range m.alerts {
		a.Labels, a.Annotations = maps.Clone(a.Labels), maps.Clone(a.Annotations)
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b AlertState) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// SaveAlert implements Store.
func (m *Memory) SaveAlert(_ context.Context, a AlertState) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	a.Labels, a.Annotations = maps.Clone(a.Labels), maps.Clone(a.Annotations)
	m.alerts[a.Key] = a
	return nil
}

// TryLease implements Store.
func (m *Memory) TryLease(_ context.Context, name, holder string, ttl time.Duration) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if l, ok := m.leases[name]; ok && l.holder != holder && now.Before(l.until) {
		return false, nil
	}
	m.leases[name] = lease{holder: holder, until: now.Add(ttl)}
	return true, nil
}

// Prune implements Store.
func (m *Memory) Prune(_ context.Context, before time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	cut := before.Unix()
	for _, byStart := range m.buckets {
		for start := range byStart {
			if start < cut {
				delete(byStart, start)
			}
		}
	}
	return nil
}

// Rollouts implements Store.
func (m *Memory) Rollouts(context.Context) ([]RolloutState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := slices.Collect(maps.Values(m.rollouts))
	if out == nil {
		out = []RolloutState{}
	}
	slices.SortFunc(out, func(a, b RolloutState) int { return strings.Compare(a.Route, b.Route) })
	return out, nil
}

// SaveRollout implements Store.
func (m *Memory) SaveRollout(_ context.Context, st RolloutState, expect int64, audit *AuditEntry) error {
	st, audit, err := prepareRollout(st, expect, audit)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.rollouts[st.Route].Version != expect { // a missing state is version 0
		return conflict(st.Route, expect)
	}
	m.rollouts[st.Route] = st
	if audit != nil {
		m.audit = append(m.audit, *audit)
	}
	return nil
}

// DeleteRollout implements Store.
func (m *Memory) DeleteRollout(_ context.Context, route string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.rollouts, text(route))
	return nil
}

// Audit implements Store.
func (m *Memory) Audit(_ context.Context, route string, limit int) ([]AuditEntry, error) {
	route = text(route)
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []AuditEntry{}
	for _, a := range slices.Backward(m.audit) { // newest insertion first, which the stable sort keeps for ties
		if route == "" || a.Route == route {
			out = append(out, a)
		}
	}
	slices.SortStableFunc(out, func(a, b AuditEntry) int { return b.At.Compare(a.At) })
	return out[:min(len(out), orDefault(limit, defaultAuditLimit))], nil
}

// PruneAudit implements Store.
func (m *Memory) PruneAudit(_ context.Context, before time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.audit = slices.DeleteFunc(m.audit, func(a AuditEntry) bool { return a.At.Before(before) })
	return nil
}

// AddDiffs implements Store.
func (m *Memory) AddDiffs(_ context.Context, counts []DiffCount) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range coalesceDiffs(counts) {
		o, ok := m.diffs[c.DiffKey]
		if ok {
			c.Compared += o.Compared
			c.Differ += o.Differ
			c.NoiseCompared += o.NoiseCompared
			c.Noise += o.Noise
		}
		m.diffs[c.DiffKey] = c
	}
	return nil
}

// Diffs implements Store.
func (m *Memory) Diffs(_ context.Context, route, generation string) ([]DiffCount, error) {
	route, generation = text(route), text(generation)
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []DiffCount{}
	for k, c := range m.diffs {
		if k.Route == route && k.Generation == generation {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b DiffCount) int { return compareDiffKeys(a.DiffKey, b.DiffKey) })
	return out, nil
}

// AddDiffSamples implements Store.
func (m *Memory) AddDiffSamples(_ context.Context, samples []DiffSample, keep int) error {
	if len(samples) == 0 {
		return nil
	}
	samples, keys := cleanSamples(samples)
	keep = orDefault(keep, defaultSampleKeep)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.samples = append(m.samples, samples...)
	// Rank each touched key's samples newest first, as DiffSamples does,
	// and drop those after the first keep.
	type ranked struct {
		at  time.Time
		idx int
	}
	byKey := map[DiffKey][]ranked{}
	for _, k := range keys {
		byKey[k] = nil
	}
	for i, s := range m.samples {
		if r, ok := byKey[s.DiffKey]; ok {
			byKey[s.DiffKey] = append(r, ranked{s.At, i})
		}
	}
	drop := map[int]bool{}
	for _, r := range byKey {
		slices.SortFunc(r, func(a, b ranked) int { return cmp.Or(b.at.Compare(a.at), cmp.Compare(b.idx, a.idx)) })
		for _, x := range r[min(len(r), keep):] {
			drop[x.idx] = true
		}
	}
	kept := m.samples[:0]
	for i, s := range m.samples {
		if !drop[i] {
			kept = append(kept, s)
		}
	}
	clear(m.samples[len(kept):])
	m.samples = kept
	return nil
}

// DiffSamples implements Store.
func (m *Memory) DiffSamples(_ context.Context, route, generation, field string, limit int) ([]DiffSample, error) {
	route, generation, field = text(route), text(generation), text(field)
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []DiffSample{}
	for _, s := range slices.Backward(m.samples) { // newest insertion first, which the stable sort keeps for ties
		if s.Route == route && s.Generation == generation && (field == "" || s.Field == field) {
			out = append(out, s)
		}
	}
	slices.SortStableFunc(out, func(a, b DiffSample) int { return b.At.Compare(a.At) })
	return out[:min(len(out), orDefault(limit, defaultSampleLimit))], nil
}

// PruneDiffs implements Store.
func (m *Memory) PruneDiffs(_ context.Context, route, keepGeneration string) error {
	route, keepGeneration = text(route), text(keepGeneration)
	m.mu.Lock()
	defer m.mu.Unlock()
	maps.DeleteFunc(m.diffs, func(k DiffKey, _ DiffCount) bool { return k.Route == route && k.Generation != keepGeneration })
	m.samples = slices.DeleteFunc(m.samples, func(s DiffSample) bool { return s.Route == route && s.Generation != keepGeneration })
	return nil
}

// Close implements Store.
func (m *Memory) Close() error { return nil }

var _ Store = (*Memory)(nil)
