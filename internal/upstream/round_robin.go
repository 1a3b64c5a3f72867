package upstream

import "sync"

// roundRobin is smooth weighted round robin.
type roundRobin struct{}

func (roundRobin) pick(s *endpointSet, a pickArgs) *Endpoint { return s.rr.next(s.eps, a) }

// smoothRR is the smooth weighted round robin of nginx
// (ngx_http_upstream_round_robin.c, "smooth weighted round-robin
// balancing", nginx 1.7.9 and later): on each pick every usable endpoint's
// current weight grows by its weight, the endpoint with the largest current
// weight wins and loses the sum of the weights. Weights 5, 1, 1 give
// a a b a c a a: each endpoint gets its share, spread out rather than in
// bursts. Endpoints that cannot be used sit the pick out.
type smoothRR struct {
	mu      sync.Mutex // guards current
	current []int64    // current weight of each endpoint of the set, by index
}

func (r *smoothRR) next(eps []*Endpoint, a pickArgs) *Endpoint {
	r.mu.Lock()
	defer r.mu.Unlock()
	best := -1
	var total int64
	for i, e := range eps {
		if !a.usable(e) {
			continue
		}
		w := int64(e.weight)
		r.current[i] += w
		total += w
		if best < 0 || r.current[i] > r.current[best] {
			best = i
		}
	}
	if best < 0 {
		return nil
	}
	r.current[best] -= total
	return eps[best]
}
