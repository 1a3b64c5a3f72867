package config

// Defaults and validation of request limits and load shedding
// (docs/request-limits.md).

// Defaults of request limits and load shedding, documented on their
// fields.
const (
	DefaultMaxConnections = 10000
	DefaultMaxBodyBytes   = 10 << 20
)

// Unlimited is the value of Listener.MaxConnections and
// Limits.MaxBodyBytes that turns the limit off.
const Unlimited = -1

func (l *Listener) applyLimitDefaults() {
	setInt(&l.MaxConnections, DefaultMaxConnections)
}

func (r *Route) applyLimitDefaults() {
	setInt(&r.Limits.MaxBodyBytes, DefaultMaxBodyBytes)
}

func (v *checker) listenerLimits(p string, l *Listener) {
	if l.MaxConnections < Unlimited {
		v.addf(p+".max_connections", "must be a positive number of connections, or -1 for no cap, got %d", l.MaxConnections)
	}
	v.atLeast(p+".max_requests", l.MaxRequests, 0)
}

func (v *checker) routeLimits(p string, r *Route) {
	if r.Limits.MaxBodyBytes < Unlimited {
		v.addf(p+".limits.max_body_bytes", "must be a positive number of bytes, or -1 for no limit, got %d", r.Limits.MaxBodyBytes)
	}
}
