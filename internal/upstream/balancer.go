package upstream

import (
	"fmt"
	"net/http"
	"net/netip"
	"time"

	"torii/internal/config"
)

// balancer chooses one usable endpoint of a set, or nil when none is
// usable. Implementations must not allocate in the common case.
type balancer interface {
	pick(s *endpointSet, a pickArgs) *Endpoint
}

// newBalancer returns the balancer cfg.Balance names; "" is round robin.
func newBalancer(cfg *config.Upstream) (balancer, error) {
	switch cfg.Balance {
	case "", "round_robin":
		return roundRobin{}, nil
	case "least_request":
		return leastRequest{}, nil
	case "hash":
		if cfg.Hash == nil {
			return nil, fmt.Errorf("balance hash: no hash key")
		}
		return newHashBalancer(*cfg.Hash)
	default:
		return nil, fmt.Errorf("balance %q: unknown policy", cfg.Balance)
	}
}

// pickArgs is what a balancer knows about one pick. It is passed by value
// so nothing escapes to the heap.
type pickArgs struct {
	req      *http.Request
	clientIP netip.Addr
	tried    []*Endpoint
	clock    func() time.Time
	now      int64 // clock's Unix nanoseconds; 0: not read yet
	checked  bool  // the pool runs active checks, so their verdict counts
}

// nowNanos reads the clock once a pick, when first needed.
func (a *pickArgs) nowNanos() int64 {
	if a.now == 0 {
		a.now = a.clock().UnixNano()
	}
	return a.now
}

// usable reports whether e may take this request: not ejected, healthy
// (when checks run) and not already tried.
func (a *pickArgs) usable(e *Endpoint) bool {
	// The clock is read only for an endpoint that has ever been ejected.
	if e.st.ejectedUntil.Load() != 0 && e.st.ejected(a.nowNanos()) {
		return false
	}
	if a.checked && !e.st.healthy.Load() {
		return false
	}
	for _, t := range a.tried {
		if t != nil && t.same(e) {
			return false
		}
	}
	return true
}

// endpointSet is an immutable endpoint list plus the balancers' state for
// it. A DNS change builds a new set.
type endpointSet struct {
	eps []*Endpoint
	rr  smoothRR // round robin, and hash's fallback when a key is missing
}

func newEndpointSet(eps []*Endpoint) *endpointSet {
	return &endpointSet{eps: eps, rr: smoothRR{current: make([]int64, len(eps))}}
}

// same reports whether s holds exactly addrs, in order, with their weights.
func (s *endpointSet) same(addrs []weightedAddr) bool {
	if len(s.eps) != len(addrs) {
		return false
	}
	for i, e := range s.eps {
		if e.addr != addrs[i].addr || e.weight != addrs[i].weight {
			return false
		}
	}
	return true
}
