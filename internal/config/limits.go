package config

// Defaults and validation of request limits and load shedding.

func (l *Listener) applyLimitDefaults() {}

func (r *Route) applyLimitDefaults() {}

func (v *checker) listenerLimits(p string, l *Listener) {}

func (v *checker) routeLimits(p string, r *Route) {}
