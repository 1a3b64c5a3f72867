package config

import (
	"net/http"
	"slices"
	"strconv"
)

// The schema of the edge cache (issue #4); defaults and validation below
// (docs/caching.md).

// Defaults of the shared HTTP cache, documented on their fields.
const (
	DefaultCacheMaxBytes       = 256 << 20
	DefaultCacheMaxObjectBytes = 8 << 20
)

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

func (c *Config) applyCacheDefaults() {
	setInt(&c.Cache.MaxBytes, DefaultCacheMaxBytes)
	setInt(&c.Cache.MaxObjectBytes, DefaultCacheMaxObjectBytes)
}

func (r *Route) applyCacheDefaults() {
	rc := r.Cache
	if rc == nil {
		return
	}
	// Header names are case-insensitive; the canonical form is what the
	// cache compares, so show that one in the API.
	for i, name := range rc.KeyHeaders {
		if isToken(name) {
			rc.KeyHeaders[i] = http.CanonicalHeaderKey(name)
		}
	}
}

func (v *checker) cacheStore() {
	cs := v.c.Cache
	if cs.MaxBytes < 0 {
		v.addf("cache.max_bytes", "must be a positive number of bytes, e.g. 268435456 (256 MiB), got %d", cs.MaxBytes)
	}
	switch {
	case cs.MaxObjectBytes < 0:
		v.addf("cache.max_object_bytes", "must be a positive number of bytes, e.g. 8388608 (8 MiB), got %d", cs.MaxObjectBytes)
	case cs.MaxBytes > 0 && cs.MaxObjectBytes > cs.MaxBytes:
		v.addf("cache.max_object_bytes", "%d is more than cache.max_bytes (%d); no object that large could be kept", cs.MaxObjectBytes, cs.MaxBytes)
	}
}

func (v *checker) routeCache(p string, r *Route) {
	rc := r.Cache
	if rc == nil {
		return
	}
	p += ".cache"
	if len(r.Backends) == 0 && (r.Redirect != nil || r.DirectResponse != nil) {
		v.addf(p, "the cache stores upstream responses; this route has no backends, remove cache")
	}
	seen := map[string]int{}
	for i, name := range rc.KeyHeaders {
		hp := p + ".key_headers[" + strconv.Itoa(i) + "]"
		if !isToken(name) {
			v.headerName(hp, name)
			continue
		}
		canon := http.CanonicalHeaderKey(name)
		if j, dup := seen[canon]; dup {
			v.addf(hp, "duplicate header %q, also key_headers[%d]", name, j)
			continue
		}
		seen[canon] = i
		if slices.Contains(hopByHop, canon) {
			v.addf(hp, "%q is a hop-by-hop header and never reaches the cache's upstream; it cannot key a response", name)
		}
	}
}
