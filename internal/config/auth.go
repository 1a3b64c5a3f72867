package config

// Defaults and validation of route authentication: JWT and forward auth.

func (r *Route) applyAuthDefaults() {}

func (v *checker) routeAuth(p string, r *Route) {}
