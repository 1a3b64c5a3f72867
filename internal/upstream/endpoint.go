package upstream

import "time"

// Outcome is how one try to an endpoint ended, as passive outlier detection
// counts it.
type Outcome int

const (
	// Success is a response with status below 500.
	Success Outcome = iota
	// Failure5xx is a response with a 5xx status.
	Failure5xx
	// GatewayError is a connect failure, reset or timeout.
	GatewayError
	// Canceled is a try abandoned because the client went away; it counts
	// neither way.
	Canceled
)

// Endpoint is one address of a pool, with its live state. The address and
// weight are fixed; the state is shared with every pool of the same
// upstream that holds the same address.
type Endpoint struct {
	addr   string
	weight int
	hash   uint64 // hashString(addr), for rendezvous hashing
	pool   *Pool
	st     *endpointState
}

// Addr returns "ip:port" (or "host:port" for a static host name that
// failed to resolve).
func (e *Endpoint) Addr() string { return e.addr }

// Weight returns the endpoint's weight, at least 1.
func (e *Endpoint) Weight() int { return e.weight }

// Begin counts a try starting on e (in-flight requests).
func (e *Endpoint) Begin() { e.st.inFlight.Add(1) }

// End counts a try on e ending with o, feeding passive outlier detection.
// Every Begin must be matched by one End.
func (e *Endpoint) End(o Outcome) {
	e.st.inFlight.Add(-1)
	switch o {
	case Success:
		if e.st.failures.Load() != 0 { // skip the write in the common case
			e.st.failures.Store(0)
		}
	case Failure5xx, GatewayError:
		e.pool.failed(e.st)
	}
}

// same reports whether e and o are the same endpoint: the same live state,
// even when taken from different pools or endpoint lists.
func (e *Endpoint) same(o *Endpoint) bool { return e.st == o.st }

// failed counts one passive failure of st and ejects it at the threshold.
// Failures of tries that end while st is already ejected do not count: they
// were sent before the ejection.
func (p *Pool) failed(st *endpointState) {
	now := p.reg.now().UnixNano()
	if st.ejected(now) {
		return
	}
	if st.failures.Add(1) < p.s.consecutiveFailures {
		return
	}
	p.eject(st, now)
}

// eject takes st out of rotation, unless that would put more than
// max_ejected_percent of the pool out (at least one endpoint may always be
// ejected, so a pool of one can be emptied; see docs/health.md). A refused
// ejection keeps the failure count, so the next failure tries again.
//
// The n-th ejection in a row lasts n × base_ejection, capped at
// max_ejection. Each base_ejection spent in rotation since the previous
// ejection ended takes one step off n (the multiplier decays).
func (p *Pool) eject(st *endpointState, now int64) {
	p.up.ejectMu.Lock()
	defer p.up.ejectMu.Unlock()
	if st.ejected(now) || st.failures.Load() < p.s.consecutiveFailures {
		return // a concurrent failure already ejected it, or a success reset it
	}
	if p.ejectedCount(now) >= p.maxEjected() {
		return
	}
	base, maxLen := int64(p.s.baseEjection), int64(p.s.maxEjection)
	mult := st.multiplier.Load()
	if last := st.ejectedUntil.Load(); last != 0 && now > last {
		mult = max(0, mult-(now-last)/base)
	}
	maxMult := (maxLen + base - 1) / base
	mult = min(mult+1, maxMult)
	d := min(base*mult, maxLen)

	st.multiplier.Store(mult)
	st.ejectedAt.Store(now)
	st.ejectedUntil.Store(now + d)
	st.ejections.Add(1)
	st.failures.Store(0)
	p.reg.log.Warn("upstream endpoint ejected", "upstream", p.name, "endpoint", st.addr,
		"for", time.Duration(d), "ejections", st.ejections.Load())
}

// ejectedCount returns how many of the pool's current endpoints are
// ejected at now.
func (p *Pool) ejectedCount(now int64) int {
	n := 0
	for _, e := range p.set.Load().eps {
		if e.st.ejected(now) {
			n++
		}
	}
	return n
}

// maxEjected returns how many endpoints may be ejected at once:
// max_ejected_percent of the pool, rounded down, but at least one.
func (p *Pool) maxEjected() int {
	return max(1, len(p.set.Load().eps)*p.s.maxEjectedPercent/100)
}

// endEjection ends st's ejection early because an active check that
// started at checkStart passed; a check that started before the ejection
// says nothing about it. It reports whether an ejection ended.
func (p *Pool) endEjection(st *endpointState, checkStart, now int64) bool {
	p.up.ejectMu.Lock()
	defer p.up.ejectMu.Unlock()
	if !st.ejected(now) || st.ejectedAt.Load() > checkStart {
		return false
	}
	st.ejectedUntil.Store(now)
	st.failures.Store(0)
	return true
}
