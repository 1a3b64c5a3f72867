package slo

import (
	"strconv"
	"sync/atomic"
	"time"

	"torii/internal/config"
	"torii/internal/store"
)

// ringSlots is how many 10 s buckets a ring holds. Evaluate and Flush
// harvest completed buckets at least every evaluation interval (10 s), so
// 32 slots (5m20s) leave ample slack; a ring left unharvested longer
// mixes its oldest counts into newer buckets rather than losing them.
const ringSlots = 32

// slot is one bucket's counters.
type slot struct {
	total, errors, slow atomic.Int64
}

// ring holds the live counts of one series in fixed buckets, indexed by
// bucket number (unix seconds / 10) modulo ringSlots. Record only adds;
// the harvester swaps completed slots to zero. It lives in the engine's
// registry, outside any config snapshot, so counts survive reloads.
type ring struct {
	series store.Series
	slots  [ringSlots]slot

	// The fields below are guarded by Engine.regMu.

	// last is the newest bucket number already harvested.
	last int64
	// cum is every count harvested so far, for the Prometheus counters.
	cum store.Counts
}

func (r *ring) add(b int64, failed, slow bool) {
	s := &r.slots[b&(ringSlots-1)]
	s.total.Add(1)
	if failed {
		s.errors.Add(1)
	}
	if slow {
		s.slow.Add(1)
	}
}

// bucketOf returns the bucket number of t.
func bucketOf(t time.Time) int64 { return t.Unix() / int64(store.Resolution/time.Second) }

// bucketStart returns the start of bucket b.
func bucketStart(b int64) time.Time {
	return time.Unix(b*int64(store.Resolution/time.Second), 0).UTC()
}

// Accountant hands out the per-route recorders of one config snapshot. It
// is immutable; the counters it records into live in the Engine and
// survive reloads. A nil *Accountant is valid and records nothing.
type Accountant struct {
	routes map[string]*RouteSLI
}

// Route returns the recorder of the named route, or nil when the route
// has no SLO (a nil *RouteSLI records nothing). Resolve it once when a
// handler is built, not per request.
func (a *Accountant) Route(name string) *RouteSLI {
	if a == nil {
		return nil
	}
	return a.routes[name]
}

// RouteSLI records the requests of one route. Record is lock-free and
// allocates nothing.
type RouteSLI struct {
	now      func() time.Time
	route    *ring
	backends []backendRing // in config order; few, so a linear scan wins
	rules    rules
}

type backendRing struct {
	upstream string
	ring     *ring
}

// Record counts one finished request of the route, by the counting rules
// of docs/slo.md: backend is the upstream that served it (its name in
// upstreams; "" when none did), status the HTTP status sent (499 when the
// client went away: not counted), grpcStatus the grpc-status trailer or
// header ("" for plain HTTP), ttfb the time to the first response byte,
// and shadow whether it was a shadow (mirrored) request, which counts
// only toward the backend's series. Safe on a nil receiver.
func (r *RouteSLI) Record(backend string, status int, grpcStatus string, ttfb time.Duration, shadow bool) {
	if r == nil || status == statusClientGone {
		return
	}
	failed := r.rules.failed(status, grpcStatus)
	slow := r.rules.under > 0 && ttfb > r.rules.under
	b := bucketOf(r.now())
	if !shadow {
		r.route.add(b, failed, slow)
	}
	if backend == "" {
		return
	}
	for i := range r.backends {
		if r.backends[i].upstream == backend {
			r.backends[i].ring.add(b, failed, slow)
			return
		}
	}
}

// statusClientGone is the status torii logs when the client went away
// before the response (nginx's 499): such requests say nothing about the
// service and are not counted (issue #5).
const statusClientGone = 499

// rules are a route's compiled counting rules.
type rules struct {
	// fail[s] reports whether HTTP status s (100-599) is a failure.
	fail [600]bool
	// under is the latency bound; 0: no latency SLO.
	under time.Duration
}

// Gateway errors always fail: torii (or the upstream acting as a gateway)
// could not produce an answer.
var gatewayErrors = []int{502, 503, 504}

func compileRules(s *config.SLO) rules {
	var r rules
	for _, c := range gatewayErrors {
		r.fail[c] = true
	}
	statuses := s.ErrorStatuses
	if len(statuses) == 0 {
		statuses = []string{"5xx"}
	}
	for _, e := range statuses {
		switch e {
		case "5xx", "4xx":
			lo := 500
			if e == "4xx" {
				lo = 400
			}
			for c := lo; c < lo+100; c++ {
				r.fail[c] = true
			}
		default:
			if c, err := strconv.Atoi(e); err == nil && c >= 100 && c < 600 {
				r.fail[c] = true
			}
		}
	}
	if s.Latency != nil {
		r.under = time.Duration(s.Latency.Under)
	}
	return r
}

// failed reports whether a request with this HTTP status and grpc-status
// fails the availability SLI.
func (r *rules) failed(status int, grpcStatus string) bool {
	if status == 502 || status == 503 || status == 504 {
		return true
	}
	if grpcStatus != "" {
		return grpcFailed(grpcStatus)
	}
	if status < 0 || status >= len(r.fail) {
		return true // not a valid status: something broke
	}
	return r.fail[status]
}

// grpcFailed reports whether a grpc-status code (decimal, as on the wire)
// is a server-side failure: UNKNOWN (2), DEADLINE_EXCEEDED (4), INTERNAL
// (13), UNAVAILABLE (14) and DATA_LOSS (15). Every other code, OK and
// the caller's errors (INVALID_ARGUMENT, NOT_FOUND, PERMISSION_DENIED,
// RESOURCE_EXHAUSTED...), succeeds, as 4xx do for HTTP.
func grpcFailed(code string) bool {
	switch code {
	case "2", "4", "13", "14", "15":
		return true
	}
	return false
}
