package jwt

import (
	"hash/maphash"
	"strings"
	"sync"
	"time"
)

// cacheShards splits the cache so concurrent requests rarely share a lock.
const cacheShards = 16

// cache is a bounded map from a raw token to its verification, so a
// repeated token costs a map lookup instead of a signature check. One
// cache belongs to one route's middleware: an entry records that the token
// passed that route's checks. It is safe for concurrent use.
type cache struct {
	seed     maphash.Seed
	perShard int
	shards   [cacheShards]cacheShard
}

type cacheShard struct {
	mu sync.RWMutex      // guards m
	m  map[string]*entry // raw token -> verification; entries are immutable
}

// entry is a verified token, immutable once cached.
type entry struct {
	// claims are the token's claims, shared read-only by every request
	// that presents the token.
	claims map[string]any
	// expires is exp plus the leeway: from then on the token is refused.
	expires time.Time
	// key verified the signature; the entry is void once the key set no
	// longer serves it.
	key *key
	// values are the claims_to_headers values, aligned with the
	// middleware's header list; "" means the header is not set.
	values []string
}

func newCache(size int) *cache {
	c := &cache{seed: maphash.MakeSeed(), perShard: max(1, (size+cacheShards-1)/cacheShards)}
	for i := range c.shards {
		c.shards[i].m = make(map[string]*entry)
	}
	return c
}

func (c *cache) shard(token string) *cacheShard {
	return &c.shards[maphash.String(c.seed, token)%cacheShards]
}

// get returns the entry of token, or nil. The caller checks that it is
// still valid.
func (c *cache) get(token string) *entry {
	s := c.shard(token)
	s.mu.RLock()
	e := s.m[token]
	s.mu.RUnlock()
	return e
}

// put caches e under token. A full shard first drops its expired entries
// it meets, or else one entry picked at random (Go's map iteration order),
// which keeps the cache bounded without bookkeeping on the hit path.
func (c *cache) put(token string, e *entry, now time.Time) {
	// Clone: token may point into a large header or cookie string.
	token = strings.Clone(token)
	s := c.shard(token)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[token]; !ok && len(s.m) >= c.perShard {
		c.evict(s, now)
	}
	s.m[token] = e
}

// evict removes expired entries among the first few it visits, or one
// random entry when none was expired. s.mu must be held.
func (c *cache) evict(s *cacheShard, now time.Time) {
	const scan = 8
	n, removed := 0, false
	var victim string
	for t, e := range s.m {
		if now.After(e.expires) {
			delete(s.m, t)
			removed = true
		} else if n == 0 {
			victim = t
		}
		if n++; n == scan {
			break
		}
	}
	if !removed {
		delete(s.m, victim)
	}
}

// remove drops token's entry if it is still e.
func (c *cache) remove(token string, e *entry) {
	s := c.shard(token)
	s.mu.Lock()
	if s.m[token] == e {
		delete(s.m, token)
	}
	s.mu.Unlock()
}
