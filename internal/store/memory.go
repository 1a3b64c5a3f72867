package store

import (
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

	mu      sync.Mutex                  // guards the maps below
	buckets map[Series]map[int64]Counts // by bucket start (unix seconds)
	alerts  map[string]AlertState
	leases  map[string]lease
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
	return &Memory{now: now, buckets: map[Series]map[int64]Counts{}, alerts: map[string]AlertState{}, leases: map[string]lease{}}
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

// Close implements Store.
func (m *Memory) Close() error { return nil }

var _ Store = (*Memory)(nil)
