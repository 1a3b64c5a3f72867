package config

// The schema of the edge cache (issue #4); defaults and validation below.

// CacheStore is the shared in-memory HTTP cache that routes opt into.
type CacheStore struct {
	// MaxBytes bounds the memory held by cached responses (bodies,
	// headers and keys), in bytes; least recently used entries are evicted
	// beyond it. Default: 268435456 (256 MiB).
	MaxBytes int `yaml:"max_bytes" json:"max_bytes,omitempty"`
	// MaxObjectBytes is the largest response stored, in bytes; larger ones
	// are passed through uncached. Default: 8388608 (8 MiB).
	MaxObjectBytes int `yaml:"max_object_bytes" json:"max_object_bytes,omitempty"`
}

// RouteCache turns the shared HTTP cache (RFC 9111) on for a route.
type RouteCache struct {
	// DefaultTTL is the freshness given to a cacheable response that
	// carries no explicit freshness (no max-age, s-maxage or Expires).
	// Default: 0, meaning such responses are not stored.
	DefaultTTL Duration `yaml:"default_ttl" json:"default_ttl,omitempty"`
	// KeyHeaders are request headers added to the cache key besides those
	// the response names in Vary. Default: none.
	KeyHeaders []string `yaml:"key_headers" json:"key_headers,omitempty"`
}

func (c *Config) applyCacheDefaults() {}

func (r *Route) applyCacheDefaults() {}

func (v *checker) cacheStore() {}

func (v *checker) routeCache(p string, r *Route) {}
