package upstream

import "math/rand/v2"

// leastRequest is weighted least request by the power of two choices
// (M. Mitzenmacher, "The Power of Two Choices in Randomized Load
// Balancing", IEEE TPDS 12(10), 2001): draw two distinct usable endpoints
// at random, each with probability proportional to its weight, and take
// the one with fewer in-flight tries per unit of weight. It avoids both the
// herd a strict least-loaded choice causes and the scan of every endpoint's
// load.
type leastRequest struct{}

func (leastRequest) pick(s *endpointSet, a pickArgs) *Endpoint {
	var total int64
	var n int
	var only *Endpoint
	for _, e := range s.eps {
		if a.usable(e) {
			total += int64(e.weight)
			n++
			only = e
		}
	}
	switch n {
	case 0:
		return nil
	case 1:
		return only
	}
	first := drawWeighted(s.eps, a, rand.Int64N(total), nil)
	if first == nil {
		return nil
	}
	rest := total - int64(first.weight)
	if rest <= 0 {
		return first
	}
	second := drawWeighted(s.eps, a, rand.Int64N(rest), first)
	if second == nil {
		return first
	}
	// first.inFlight/first.weight <= second.inFlight/second.weight,
	// without division. A tie keeps the first draw, itself weighted.
	if second.st.inFlight.Load()*int64(first.weight) < first.st.inFlight.Load()*int64(second.weight) {
		return second
	}
	return first
}

// drawWeighted walks the usable endpoints other than skip, subtracting
// weights from r, and returns the one where r drops below zero. If
// endpoints stopped being usable since the weights were summed, it returns
// the last usable one it saw (or nil).
func drawWeighted(eps []*Endpoint, a pickArgs, r int64, skip *Endpoint) *Endpoint {
	var last *Endpoint
	for _, e := range eps {
		if e == skip || !a.usable(e) {
			continue
		}
		last = e
		r -= int64(e.weight)
		if r < 0 {
			return e
		}
	}
	return last
}
