package cache

import (
	"net/http"
	"slices"
	"strconv"
	"sync/atomic"
	"time"
)

// entry is one stored response: one variant of one URL. Everything but the
// ring links and the referenced bit is immutable once stored; revalidation
// stores a new entry (sharing the body) rather than changing this one, so
// requests serving it need no lock.
type entry struct {
	// url is the URL key (see appendURLKey).
	url string
	// route is the route that stored it: a URL may be served by different
	// routes (matched on headers), and one route's response must never
	// answer another's request.
	route string
	// selecting are the request headers that chose this variant: the
	// route's key_headers, then those named by Vary (RFC 9111 §4.1), with
	// the values of the request that stored it.
	selecting []field

	status int
	header http.Header // as the upstream sent it, without Age and X-Cache
	body   []byte
	cc     directives
	// etag and lastModified are the validators (RFC 9110 §8.8).
	etag, lastModified string

	// responseTime is when the response arrived (store clock);
	// initialAge is corrected_initial_age (RFC 9111 §4.2.3) and lifetime
	// the freshness_lifetime (§4.2.1).
	responseTime time.Time
	initialAge   time.Duration
	lifetime     time.Duration

	// size is what the entry counts against the byte bound.
	size int64

	referenced atomic.Bool // set by hits, cleared by the CLOCK hand
	// prev, next and linked place it in the store's ring; guarded by
	// Store.mu.
	prev, next *entry
	linked     bool
}

// field is one selecting header: its canonical name and the request's
// value, field lines joined with ", ".
type field struct {
	name, value string
}

// age is the entry's current_age at now (RFC 9111 §4.2.3).
func (e *entry) age(now time.Time) time.Duration {
	return e.initialAge + max(0, now.Sub(e.responseTime))
}

// sameVariant reports whether e and o are the same route's response for
// the same selecting header values.
func (e *entry) sameVariant(o *entry) bool {
	return e.route == o.route && slices.Equal(e.selecting, o.selecting)
}

// matches reports whether e answers a request with header h on route.
func (e *entry) matches(route string, h http.Header) bool {
	if e.route != route {
		return false
	}
	for _, f := range e.selecting {
		if !headerEquals(h[f.name], f.value) {
			return false
		}
	}
	return true
}

// noStale reports whether the entry may never be served stale: RFC 9111
// §4.2.4 forbids it under no-cache, must-revalidate and proxy-revalidate.
// s-maxage implies proxy-revalidate (§5.2.2.10) unless the response itself
// grants stale serving with stale-while-revalidate or stale-if-error (RFC
// 5861), the more specific permission, as CDNs read it.
func (e *entry) noStale() bool {
	c := e.cc
	return c.noCache || c.mustRevalidate || c.proxyRevalidate
}

// staleWithin reports whether e, at age, is stale by no more than window
// seconds (a stale-while-revalidate or stale-if-error value) and may be
// served stale.
func (e *entry) staleWithin(age time.Duration, window int64) bool {
	return window != absent && !e.noStale() && age-e.lifetime <= time.Duration(window)*time.Second
}

// hasValidator reports whether e can be revalidated with a conditional
// request.
func (e *entry) hasValidator() bool { return e.etag != "" || e.lastModified != "" }

// sizeOf returns what e counts against the byte bound.
func sizeOf(e *entry) int64 {
	n := int64(entryOverhead + len(e.url) + len(e.route) + len(e.etag) + len(e.lastModified))
	n += allocSize(len(e.body))
	for _, f := range e.selecting {
		n += int64(len(f.name) + len(f.value) + 32)
	}
	for k, vs := range e.header {
		n += int64(len(k) + 48) // map slot and slice header
		for _, v := range vs {
			n += int64(len(v) + 16)
		}
	}
	return n
}

// allocSize rounds a body's length up as the Go allocator does for large
// objects (whole 8 KiB pages), so the bound counts real memory.
func allocSize(n int) int64 {
	if n <= 32<<10 {
		return int64(n)
	}
	const page = 8 << 10
	return int64((n + page - 1) / page * page)
}

// ageHeader formats an age as the Age field value, in whole seconds (RFC
// 9111 §5.1).
func ageHeader(age time.Duration) []string {
	secs := int64(age / time.Second)
	if secs < int64(len(smallAges)) {
		return smallAges[secs : secs+1 : secs+1]
	}
	return []string{strconv.FormatInt(min(secs, maxDelta), 10)}
}

// smallAges are the Age values of the first minutes, shared so a hit
// allocates nothing for them. Each is a one-element, full-capacity slice
// of it, so an Add downstream copies rather than overwrites.
var smallAges = func() []string {
	a := make([]string, 600)
	for i := range a {
		a[i] = strconv.Itoa(i)
	}
	return a
}()
