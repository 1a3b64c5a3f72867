package proxy

import (
	"math/rand/v2"
	"runtime"
	"sync"
	"time"

	"torii/internal/reqctx"
)

// timeouts cancels the contexts of requests that outlive one duration, a
// route's timeout or try timeout. Every request starts one and nearly
// every request stops it long before it fires, so it is built for that:
// with one duration, deadlines arrive in the order they expire, and each
// shard keeps its entries in a list in that order with one timer, armed
// for the oldest. Starting and stopping an entry is a lock and a few
// pointers, where a time.AfterFunc per request is two allocations and a
// timer heap insertion and removal (about 4 % of a proxied request's CPU
// on the realistic benchmark, docs/performance.md). The timer fires once
// per duration at most while requests keep finishing, finds the oldest
// entry younger than it was, and is set again for that entry.
type timeouts struct {
	d      time.Duration
	cause  error // the cause contexts are canceled with
	shards []timeoutShard
}

// timeoutShard is one list and its timer. Shards spread the lock over
// the Ps; a request takes one at random.
type timeoutShard struct {
	q          *timeouts
	mu         sync.Mutex
	head, tail *timeout
	timer      *time.Timer // made on first use
	armed      bool        // the timer is set, for head or an entry gone since
	_          [16]byte    // one shard per 64-byte cache line
}

// timeout is one request's entry, held in its exchange.
type timeout struct {
	prev, next *timeout
	at         time.Time
	ctx        *reqctx.Context
	shard      *timeoutShard // of the last start
	queued     bool          // in shard's list; guarded by shard.mu
}

// maxTimeoutShards bounds the shards of one timeouts.
const maxTimeoutShards = 8

// newTimeouts returns a timeouts canceling with cause after d, or nil
// when d is zero (no timeout). It starts nothing.
func newTimeouts(d time.Duration, cause error) *timeouts {
	if d <= 0 {
		return nil
	}
	q := &timeouts{d: d, cause: cause}
	q.shards = make([]timeoutShard, min(runtime.GOMAXPROCS(0), maxTimeoutShards))
	for i := range q.shards {
		q.shards[i].q = q
	}
	return q
}

// start arms t to cancel ctx with q's cause after q's duration. t must not
// be queued (a stopped or fired entry may start again).
func (q *timeouts) start(t *timeout, ctx *reqctx.Context) {
	s := &q.shards[0]
	if len(q.shards) > 1 {
		s = &q.shards[rand.IntN(len(q.shards))]
	}
	now := time.Now()
	t.at, t.ctx, t.shard, t.next = now.Add(q.d), ctx, s, nil
	s.mu.Lock()
	t.prev = s.tail
	if s.tail != nil {
		s.tail.next = t
	} else {
		s.head = t
	}
	s.tail = t
	t.queued = true
	if !s.armed {
		s.armed = true
		if s.timer == nil {
			s.timer = time.AfterFunc(q.d, s.fire)
		} else {
			s.timer.Reset(q.d)
		}
	}
	s.mu.Unlock()
}

// stop takes t out of its list. It reports false when t has fired (its
// context is being or has been canceled) or was never started.
// A second stop returns false at once: only the goroutine that starts t
// stops it, so t.shard needs no lock.
func (t *timeout) stop() bool {
	s := t.shard
	if s == nil {
		return false
	}
	t.shard = nil
	s.mu.Lock()
	defer s.mu.Unlock()
	if !t.queued {
		return false
	}
	s.unlink(t)
	return true
}

// unlink takes t out of s's list. s.mu is held.
func (s *timeoutShard) unlink(t *timeout) {
	if t.prev != nil {
		t.prev.next = t.next
	} else {
		s.head = t.next
	}
	if t.next != nil {
		t.next.prev = t.prev
	} else {
		s.tail = t.prev
	}
	t.prev, t.next, t.queued = nil, nil, false
}

// fire cancels the expired entries' contexts and sets the timer for the
// oldest entry left.
func (s *timeoutShard) fire() {
	var expired []*reqctx.Context
	s.mu.Lock()
	now := time.Now()
	for s.head != nil && !s.head.at.After(now) {
		t := s.head
		expired = append(expired, t.ctx)
		s.unlink(t)
	}
	if s.head != nil {
		s.timer.Reset(s.head.at.Sub(now))
	} else {
		s.armed = false
	}
	s.mu.Unlock()
	// Outside the lock: a cancel runs the request's watches, and the
	// entries may start again (a retry's try) once unlinked.
	for _, ctx := range expired {
		ctx.Cancel(s.q.cause)
	}
}
