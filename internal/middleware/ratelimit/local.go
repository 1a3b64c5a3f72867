package ratelimit

import (
	"hash/maphash"
	"sync"
	"time"
)

// MaxKeys caps the keys one local limit tracks. A request whose key would
// be one more, when no tracked key can be forgotten, is admitted without
// being counted (and counted in torii_ratelimit_untracked_total): the cap
// bounds memory (about 3.5 MB per route at the cap), and refusing strangers
// because of other clients' traffic would make the limit a denial of
// service of its own.
const MaxKeys = 100_000

// shardCount splits a local limit's keys so that concurrent requests
// rarely wait on the same mutex. A power of two.
const shardCount = 64

// A shard forgets the keys back at their full quota when a new key
// arrives and it last did so sweepEvery ago, or fullSweepEvery ago when
// it is full. The second bound keeps a flood of new keys from making every
// request sweep a full shard.
const (
	sweepEvery     = int64(time.Minute)
	fullSweepEvery = int64(time.Second)
)

// localStore holds the state of one local limit's keys, in memory. Keys
// are 64-bit hashes of the key bytes: with a random seed, two of even
// MaxKeys keys collide with a probability under 1e-9.
type localStore struct {
	alg         algorithm
	seed        maphash.Seed
	maxPerShard int
	shards      [shardCount]shard
}

// shard is one lock's worth of keys.
type shard struct {
	mu sync.Mutex // guards entries and lastSweep
	// entries maps a key's hash to its state. A key absent is a key at
	// its full quota.
	entries map[uint64]state
	// lastSweep is when the shard was last swept.
	lastSweep int64
	// Padding keeps neighbouring shards' mutexes off one cache line.
	_ [40]byte
}

func newLocalStore(alg algorithm, maxKeys int) *localStore {
	s := &localStore{alg: alg, seed: maphash.MakeSeed(), maxPerShard: max(1, ceilInt(maxKeys, shardCount))}
	for i := range s.shards {
		s.shards[i].entries = make(map[uint64]state)
	}
	return s
}

// take applies one request for key at now. tracked is false when the key
// was admitted without being counted because its shard is full.
func (s *localStore) take(key []byte, now int64) (d decision, tracked bool) {
	h := maphash.Bytes(s.seed, key)
	sh := &s.shards[h>>58] // the top 6 bits; the map uses the rest
	sh.mu.Lock()
	defer sh.mu.Unlock()
	st, ok := sh.entries[h]
	if !ok {
		full := len(sh.entries) >= s.maxPerShard
		if since := now - sh.lastSweep; since >= sweepEvery || (full && since >= fullSweepEvery) {
			sh.sweep(s.alg, now)
		}
		if len(sh.entries) >= s.maxPerShard {
			_, d = s.alg.take(state{}, true, now)
			return d, false
		}
	}
	st, d = s.alg.take(st, !ok, now)
	if d.allowed {
		sh.entries[h] = st
	}
	return d, true
}

// sweep forgets the keys that are back at their full quota. The caller
// holds sh.mu.
func (sh *shard) sweep(alg algorithm, now int64) {
	for h, st := range sh.entries {
		if alg.full(st, now) {
			delete(sh.entries, h)
		}
	}
	sh.lastSweep = now
}

// len returns the number of keys tracked.
func (s *localStore) len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += len(sh.entries)
		sh.mu.Unlock()
	}
	return n
}

func ceilInt(a, b int) int { return (a + b - 1) / b }
