package migrate

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"

	"torii/internal/proxy"
)

// splitScale is the total weight a Split hands out: a candidate's share
// is resolved in basis points (0.01 %).
const splitScale = 10000

// Split maps a candidate's share of a route's traffic onto the live
// weights of the route's backends. The rollout controller sets the share;
// the proxy reads the weights on every request. It is safe for concurrent
// use.
type Split struct {
	base      []int // the configured weights, in config order; read-only
	candidate int   // index of the candidate in base
	others    int   // sum of base over every backend but the candidate
	w         *proxy.Weights

	mu      sync.Mutex // guards percent and serialises Set
	percent float64
}

// NewSplit returns a split of len(base) backends whose candidate is
// base[candidate], starting at percent 0. base are the backends'
// configured weights in config order: every backend but the candidate
// keeps its share of what the candidate does not take, in proportion to
// its base weight; the candidate's own base weight is ignored. Some
// backend other than the candidate needs a weight above zero, so that a
// rollback to 0 always has somewhere to send the traffic.
func NewSplit(base []int, candidate int) (*Split, error) {
	if len(base) < 2 {
		return nil, fmt.Errorf("new split: %d backends; a split needs the candidate and at least one other", len(base))
	}
	if candidate < 0 || candidate >= len(base) {
		return nil, fmt.Errorf("new split: candidate index %d out of range for %d backends", candidate, len(base))
	}
	others := 0
	for i, w := range base {
		if w < 0 {
			return nil, fmt.Errorf("new split: backends[%d]: negative weight %d", i, w)
		}
		if i != candidate {
			// Checked so that others × splitScale cannot overflow below.
			if others += w; others > math.MaxInt32 {
				return nil, fmt.Errorf("new split: the weights add up to more than %d", math.MaxInt32)
			}
		}
	}
	if others == 0 {
		return nil, errors.New("new split: no backend other than the candidate has a weight above zero")
	}
	s := &Split{base: slices.Clone(base), candidate: candidate, others: others}
	w, err := proxy.NewWeights(s.weights(0))
	if err != nil {
		return nil, fmt.Errorf("new split: %w", err)
	}
	s.w = w
	return s, nil
}

// weights returns the backends' weights at candidate weight cw (basis
// points): the candidate gets cw, every other backend round((10000 − cw)
// × base[i] / Σ base of the others). Rounding may make the total differ
// from 10000 by a few points; only the proportions matter to the proxy.
func (s *Split) weights(cw int) []int {
	ws := make([]int, len(s.base))
	rest, others := int64(splitScale-cw), int64(s.others)
	for i, b := range s.base {
		if i == s.candidate {
			ws[i] = cw
			continue
		}
		// Integer arithmetic, rounding half up: exact for every input.
		ws[i] = int((2*rest*int64(b) + others) / (2 * others))
	}
	return ws
}

// Set moves the candidate's share to percent, from 0 to 100, resolved to
// 0.01 %. On error the weights are unchanged.
func (s *Split) Set(percent float64) error {
	if math.IsNaN(percent) || percent < 0 || percent > 100 {
		return fmt.Errorf("set split: percent %v is not between 0 and 100", percent)
	}
	cw := int(math.Round(percent * (splitScale / 100)))
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.w.Set(s.weights(cw)); err != nil {
		return fmt.Errorf("set split to %g%%: %w", percent, err)
	}
	s.percent = percent
	return nil
}

// Percent returns the candidate's share, in percent, as last set.
func (s *Split) Percent() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.percent
}

// Weights returns the live weights, for the route's proxy handler. They
// stay the same object for the split's life.
func (s *Split) Weights() *proxy.Weights { return s.w }

// same reports whether s splits base with the same candidate.
func (s *Split) same(base []int, candidate int) bool {
	return s.candidate == candidate && slices.Equal(s.base, base)
}
