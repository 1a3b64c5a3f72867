package proxy

import (
	"fmt"
	"slices"
	"sync/atomic"
)

// Weights are the live weights of a route's backends, changed at run time
// (by a rollout) without rebuilding the route. A Handler built with them
// reads them on every request; Set takes effect on the next one.
type Weights struct {
	n int
	p atomic.Pointer[[]int]
}

// NewWeights returns weights for len(ws) backends, in the order of
// Options.Backends, starting at ws.
func NewWeights(ws []int) (*Weights, error) {
	w := &Weights{n: len(ws)}
	if err := w.Set(ws); err != nil {
		return nil, err
	}
	return w, nil
}

// Set replaces the weights: one per backend, none negative, not all zero.
// On error the weights are unchanged.
func (w *Weights) Set(ws []int) error {
	if len(ws) != w.n {
		return fmt.Errorf("set weights: %d weights for %d backends", len(ws), w.n)
	}
	total := 0
	for i, v := range ws {
		if v < 0 {
			return fmt.Errorf("set weights: backends[%d]: negative weight %d", i, v)
		}
		total += v
	}
	if total == 0 {
		return fmt.Errorf("set weights: no backend with a weight above zero")
	}
	c := slices.Clone(ws)
	w.p.Store(&c)
	return nil
}

// Get returns a copy of the current weights.
func (w *Weights) Get() []int { return slices.Clone(*w.p.Load()) }

// load returns the current weights; callers must not modify them.
func (w *Weights) load() []int { return *w.p.Load() }
