package config

// Defaults and validation of rate limits and the Redis they share.

func (c *Config) applyRedisDefaults() {}

func (r *Route) applyRateLimitDefaults() {}

func (v *checker) redis() {}

func (v *checker) routeRateLimit(p string, r *Route) {}
