package listener

import (
	"net/http"
	"sync/atomic"
)

// overloadBody is the 503 body of MaxRequests, in the shape of torii's
// other error bodies.
const overloadBody = `{"error":"overloaded","status":503}` + "\n"

// MaxRequests returns a handler that lets at most n requests run next at
// once; one more gets 503 Service Unavailable with Retry-After: 1 at once
// (no queue: a queue would only add latency to an overloaded gateway),
// counted in rec as reason "overload". n <= 0 returns next unchanged.
func MaxRequests(n int, rec *Recorder, next http.Handler) http.Handler {
	if n <= 0 {
		return next
	}
	return &limiter{max: int64(n), rec: rec, next: next}
}

type limiter struct {
	max    int64
	active atomic.Int64
	rec    *Recorder
	next   http.Handler
}

func (l *limiter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if l.active.Add(1) > l.max {
		l.active.Add(-1)
		l.rec.requestRejected(ReasonOverload)
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(overloadBody))
		return
	}
	defer l.active.Add(-1)
	l.next.ServeHTTP(w, r)
}
