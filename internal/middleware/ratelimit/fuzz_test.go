package ratelimit

import (
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"torii/internal/config"
	"torii/internal/request"
)

// FuzzAlgorithms feeds both algorithms arbitrary arrival times and checks
// the bound each promises over every stretch of time between two admitted
// requests, the property the two-instance test measures end to end:
//
//   - GCRA admits at most burst + d/T requests in any stretch of length d;
//   - the token bucket at most burst + requests·(d/period + 1).
//
// It also checks that a key back at its full quota decides as a new one,
// which is what lets the local store forget it and Redis expire it.
func FuzzAlgorithms(f *testing.F) {
	// Seeds: requests, burst, period in ms, then one byte per arrival: the
	// gap since the previous one, in ms.
	f.Add(uint16(10), uint16(3), uint16(1000), []byte{0, 0, 0, 0, 99, 1, 0, 100, 50, 50})
	f.Add(uint16(1), uint16(1), uint16(60), []byte{0, 0, 59, 1, 0, 255})
	f.Add(uint16(100), uint16(100), uint16(1000), []byte(strings.Repeat("\x00\x01\x05", 100)))
	f.Add(uint16(7), uint16(50), uint16(10), []byte{200, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 3})
	f.Fuzz(func(t *testing.T, requests, burst, periodMS uint16, gaps []byte) {
		cfg := &config.RateLimit{
			Requests: int(requests%1000) + 1,
			Burst:    int(burst%1000) + 1,
			Period:   config.Duration(time.Duration(periodMS%10000+1) * time.Millisecond),
		}
		for _, alg := range []string{config.RateLimitGCRA, config.RateLimitTokenBucket} {
			cfg.Algorithm = alg
			a := newAlgorithm(cfg, time.Nanosecond)
			var st state
			fresh := true
			now := int64(0)
			var admitted []int64
			for _, g := range gaps {
				now += int64(g) * int64(time.Millisecond)
				if !fresh && a.full(st, now) {
					// A full key must decide as a new one. (A forgotten
					// bucket restarts its refills from now, a little later
					// than the old ones: its reset may only grow.)
					_, d1 := a.take(st, false, now)
					_, d2 := a.take(state{}, true, now)
					same := d1 == d2
					if alg == config.RateLimitTokenBucket {
						same = d1.allowed == d2.allowed && d1.remaining == d2.remaining && d1.reset <= d2.reset
					}
					if !same {
						t.Fatalf("%s: a full key got %+v, a new one %+v", alg, d1, d2)
					}
				}
				next, d := a.take(st, fresh, now)
				if d.allowed {
					st, fresh = next, false
					admitted = append(admitted, now)
				} else if d.retryAfter <= 0 {
					t.Fatalf("%s: refused at %d with retry after %d, want positive", alg, now, d.retryAfter)
				}
				if d.remaining < 0 || d.remaining >= int64(cfg.Burst) || d.reset < 0 {
					t.Fatalf("%s: got remaining %d reset %d for burst %d", alg, d.remaining, d.reset, cfg.Burst)
				}
			}
			for i := range admitted {
				for j := i; j < len(admitted); j++ {
					n, d := int64(j-i+1), admitted[j]-admitted[i]
					var bound int64
					if alg == config.RateLimitGCRA {
						bound = int64(cfg.Burst) + d/a.(gcra).interval
					} else {
						tb := a.(tokenBucket)
						bound = tb.capacity + tb.perFill*(d/tb.every+1)
					}
					if n > bound {
						t.Fatalf("%s: %d requests admitted within %s, want at most %d", alg, n, time.Duration(d), bound)
					}
				}
			}
		}
	})
}

// FuzzKey checks that any header value or claim makes a key, and that the
// Redis key named after it stays short.
func FuzzKey(f *testing.F) {
	f.Add("abc", "2001:db8::1")
	f.Add(strings.Repeat("x", 200), "192.0.2.1")
	f.Add("", "::ffff:10.0.0.1")
	f.Add("\x00\xff", "fe80::1%eth0")
	f.Fuzz(func(t *testing.T, value, ip string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header["X-Key"] = []string{value}
		info := &request.Info{Claims: map[string]any{"sub": value}}
		if a, err := netip.ParseAddr(ip); err == nil {
			info.ClientIP = a
		}
		r = r.WithContext(request.NewContext(r.Context(), info))
		for _, k := range []keyer{newKeyer(config.RateLimitKey{Header: "x-key"}), newKeyer(config.RateLimitKey{Claim: "sub"}), newKeyer(config.RateLimitKey{})} {
			key := k.appendKey(nil, r)
			if len(key) == 0 || key[0] != k.kind && key[0] != kindClientIP {
				t.Fatalf("got key %q for kind %c", key, k.kind)
			}
			if rk := redisKey("p:", key); len(rk) > len("p:")+maxRedisKey {
				t.Fatalf("got Redis key of %d bytes, want at most %d", len(rk), len("p:")+maxRedisKey)
			}
		}
	})
}
