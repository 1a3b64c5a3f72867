package upstream

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"torii/internal/config"
)

func TestRoundRobinSequence(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
		want    string // one letter per pick: a is endpoint 0, b endpoint 1, ...
	}{
		{"nginx example 5,1,1", []int{5, 1, 1}, "aabacaa" + "aabacaa"},
		{"equal weights", []int{1, 1, 1}, "abcabc"},
		{"2,1", []int{2, 1}, "abaaba"},
		{"zero weight is 1", []int{0, 1}, "abab"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newTestPool(t, "app", upstreamCfg("round_robin", tt.weights...), newTestRegistry(nil))
			var got strings.Builder
			for range len(tt.want) {
				e, err := p.Pick(nil, netip.Addr{}, nil)
				if err != nil {
					t.Fatalf("Pick: %v", err)
				}
				got.WriteByte(letter(e))
			}
			if got.String() != tt.want {
				t.Errorf("got sequence %s, want %s", got.String(), tt.want)
			}
		})
	}
}

// letter names an upstreamCfg endpoint: a for port 10001, b for 10002, ...
func letter(e *Endpoint) byte {
	var port int
	fmt.Sscanf(e.Addr(), "127.0.0.1:%d", &port)
	return byte('a' + port - 10001)
}

// pickRequest returns a request for the i-th of many distinct users.
func pickRequest(i int) *http.Request {
	r, _ := http.NewRequest(http.MethodGet, "http://example.com/", nil)
	r.Header.Set("X-User", fmt.Sprintf("user-%d", i))
	return r
}

func TestWeightedShare(t *testing.T) {
	const picks = 20000
	for _, balance := range []string{"round_robin", "least_request", "hash"} {
		t.Run(balance, func(t *testing.T) {
			p := newTestPool(t, "app", upstreamCfg(balance, 1, 3, 6), newTestRegistry(nil))
			counts := map[byte]int{}
			for i := range picks {
				e, err := p.Pick(pickRequest(i), netip.Addr{}, nil)
				if err != nil {
					t.Fatalf("Pick: %v", err)
				}
				counts[letter(e)]++
			}
			for l, w := range map[byte]float64{'a': 0.1, 'b': 0.3, 'c': 0.6} {
				got := float64(counts[l]) / picks
				if math.Abs(got-w) > 0.02 {
					t.Errorf("endpoint %c: got share %.3f, want %.3f ± 0.02", l, got, w)
				}
			}
		})
	}
}

func TestBalancersSkipUnusable(t *testing.T) {
	type setup func(t *testing.T, p *Pool, clock *fakeClock) []*Endpoint // returns tried
	eject := func(i int) setup {
		return func(t *testing.T, p *Pool, _ *fakeClock) []*Endpoint {
			fail(endpoint(t, p, addr(i)), 5, GatewayError)
			return nil
		}
	}
	unhealthy := func(i int) setup {
		return func(t *testing.T, p *Pool, _ *fakeClock) []*Endpoint {
			endpoint(t, p, addr(i)).st.healthy.Store(false)
			return nil
		}
	}
	tried := func(is ...int) setup {
		return func(t *testing.T, p *Pool, _ *fakeClock) []*Endpoint {
			var out []*Endpoint
			for _, i := range is {
				out = append(out, endpoint(t, p, addr(i)))
			}
			return out
		}
	}
	tests := []struct {
		name    string
		weights []int
		health  bool
		setup   []setup
		want    string // letters that may be picked; "" means ErrNoEndpoint
	}{
		{"tried", []int{1, 5, 1}, false, []setup{tried(1)}, "ac"},
		{"ejected", []int{1, 5, 1}, false, []setup{eject(1)}, "ac"},
		{"unhealthy with checks", []int{1, 5, 1}, true, []setup{unhealthy(1)}, "ac"},
		{"unhealthy flag ignored without checks", []int{1, 1}, false, []setup{unhealthy(1)}, "ab"},
		{"ejected and tried", []int{1, 1, 1}, false, []setup{eject(0), tried(2)}, "b"},
		{"all tried", []int{1, 1}, false, []setup{tried(0, 1)}, ""},
		{"all unhealthy", []int{1, 1}, true, []setup{unhealthy(0), unhealthy(1)}, ""},
		{"ejected returns when time passes", []int{1, 1}, false, []setup{eject(0),
			func(t *testing.T, p *Pool, c *fakeClock) []*Endpoint { c.Advance(31e9); return nil }}, "ab"},
	}
	for _, balance := range []string{"round_robin", "least_request", "hash"} {
		for _, tt := range tests {
			t.Run(balance+"/"+tt.name, func(t *testing.T) {
				clock := newFakeClock()
				cfg := upstreamCfg(balance, tt.weights...)
				cfg.Outlier.MaxEjectedPercent = 100
				if tt.health {
					cfg.Health = &config.HealthCheck{Path: "/healthz"}
				}
				p := newTestPool(t, "app", cfg, newTestRegistry(clock))
				var tried []*Endpoint
				for _, s := range tt.setup {
					tried = append(tried, s(t, p, clock)...)
				}
				seen := map[byte]bool{}
				for i := range 200 {
					e, err := p.Pick(pickRequest(i), netip.Addr{}, tried)
					if tt.want == "" {
						if !errors.Is(err, ErrNoEndpoint) {
							t.Fatalf("got %v, %v; want ErrNoEndpoint", e, err)
						}
						continue
					}
					if err != nil {
						t.Fatalf("Pick: %v", err)
					}
					if !strings.ContainsRune(tt.want, rune(letter(e))) {
						t.Fatalf("picked %c (%s), want one of %q", letter(e), e.Addr(), tt.want)
					}
					seen[letter(e)] = true
				}
				for _, l := range tt.want {
					if !seen[byte(l)] && balance != "hash" {
						t.Errorf("never picked %c in 200 picks, want it picked", l)
					}
				}
			})
		}
	}
}

func TestLeastRequestPrefersLessLoaded(t *testing.T) {
	tests := []struct {
		name     string
		weights  []int
		inFlight []int
		want     string // letters that may be picked
	}{
		{"two endpoints, one busy", []int{1, 1}, []int{5, 0}, "b"},
		{"busiest never picked", []int{1, 1, 1}, []int{10, 0, 5}, "bc"},
		{"load is per unit of weight", []int{4, 1}, []int{3, 1}, "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newTestPool(t, "app", upstreamCfg("least_request", tt.weights...), newTestRegistry(nil))
			for i, n := range tt.inFlight {
				e := endpoint(t, p, addr(i))
				for range n {
					e.Begin()
				}
			}
			counts := map[byte]int{}
			for range 1000 {
				e, err := p.Pick(nil, netip.Addr{}, nil)
				if err != nil {
					t.Fatalf("Pick: %v", err)
				}
				counts[letter(e)]++
			}
			for l, n := range counts {
				if !strings.ContainsRune(tt.want, rune(l)) {
					t.Errorf("picked %c %d times, want only %q", l, n, tt.want)
				}
			}
			if tt.name == "busiest never picked" && counts['b'] <= counts['c'] {
				t.Errorf("got b %d times and c %d times, want b (idle) more often", counts['b'], counts['c'])
			}
		})
	}
}

func TestHashKeys(t *testing.T) {
	withCookie := func(v string) *http.Request {
		r, _ := http.NewRequest(http.MethodGet, "http://example.com/", nil)
		r.Header.Set("Cookie", "theme=dark; session="+v+"; lang=en")
		return r
	}
	withHeader := func(v string) *http.Request {
		r, _ := http.NewRequest(http.MethodGet, "http://example.com/", nil)
		r.Header.Set("x-user", v)
		return r
	}
	ip := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}) }
	tests := []struct {
		name string
		key  config.HashKey
		req  func(i int) *http.Request
		ip   func(i int) netip.Addr
	}{
		{"header", config.HashKey{Header: "X-User"}, func(i int) *http.Request { return withHeader(fmt.Sprint("u", i)) }, nil},
		{"cookie", config.HashKey{Cookie: "session"}, func(i int) *http.Request { return withCookie(fmt.Sprint("s", i)) }, nil},
		{"quoted cookie", config.HashKey{Cookie: "session"}, func(i int) *http.Request { return withCookie(fmt.Sprintf("%q", fmt.Sprint("s", i))) }, nil},
		{"client ip", config.HashKey{ClientIP: true}, func(int) *http.Request { return nil }, ip},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := upstreamCfg("hash", 1, 1, 1, 1)
			cfg.Hash = &tt.key
			p := newTestPool(t, "app", cfg, newTestRegistry(nil))
			seen := map[byte]bool{}
			for i := range 100 {
				var clientIP netip.Addr
				if tt.ip != nil {
					clientIP = tt.ip(i)
				}
				first, err := p.Pick(tt.req(i), clientIP, nil)
				if err != nil {
					t.Fatalf("Pick: %v", err)
				}
				seen[letter(first)] = true
				for range 5 {
					again, _ := p.Pick(tt.req(i), clientIP, nil)
					if again != first {
						t.Fatalf("key %d: got %s, then %s; want the same endpoint", i, first.Addr(), again.Addr())
					}
				}
				// The fallback is deterministic too.
				next, err := p.Pick(tt.req(i), clientIP, []*Endpoint{first})
				if err != nil || next == first {
					t.Fatalf("key %d with %s tried: got %v, %v; want another endpoint", i, first.Addr(), next, err)
				}
				for range 5 {
					again, _ := p.Pick(tt.req(i), clientIP, []*Endpoint{first})
					if again != next {
						t.Fatalf("key %d fallback: got %s, then %s; want the same endpoint", i, next.Addr(), again.Addr())
					}
				}
			}
			if len(seen) != 4 {
				t.Errorf("100 keys reached %d endpoints, want 4", len(seen))
			}
		})
	}
}

func TestHashMissingKeyFallsBackToRoundRobin(t *testing.T) {
	tests := []struct {
		name string
		key  config.HashKey
		req  *http.Request
	}{
		{"no header", config.HashKey{Header: "X-User"}, httpRequest(nil)},
		{"empty header", config.HashKey{Header: "X-User"}, httpRequest(http.Header{"X-User": {""}})},
		{"no such cookie", config.HashKey{Cookie: "session"}, httpRequest(http.Header{"Cookie": {"theme=dark"}})},
		{"nil request", config.HashKey{Cookie: "session"}, nil},
		{"no client ip", config.HashKey{ClientIP: true}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := upstreamCfg("hash", 2, 1)
			cfg.Hash = &tt.key
			p := newTestPool(t, "app", cfg, newTestRegistry(nil))
			var got strings.Builder
			for range 6 {
				e, err := p.Pick(tt.req, netip.Addr{}, nil)
				if err != nil {
					t.Fatalf("Pick: %v", err)
				}
				got.WriteByte(letter(e))
			}
			if want := "abaaba"; got.String() != want {
				t.Errorf("got %s, want round robin %s", got.String(), want)
			}
		})
	}
}

func httpRequest(h http.Header) *http.Request {
	r, _ := http.NewRequest(http.MethodGet, "http://example.com/", nil)
	for k, v := range h {
		r.Header[k] = v
	}
	return r
}

func TestHashMovesFewKeysWhenAnEndpointIsAdded(t *testing.T) {
	const keys = 20000
	before := newTestPool(t, "app", upstreamCfg("hash", 1, 1, 1, 1, 1, 1, 1, 1, 1, 1), newTestRegistry(nil))
	after := newTestPool(t, "app", upstreamCfg("hash", 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1), newTestRegistry(nil))
	moved := 0
	for i := range keys {
		a, _ := before.Pick(pickRequest(i), netip.Addr{}, nil)
		b, _ := after.Pick(pickRequest(i), netip.Addr{}, nil)
		if a.Addr() == b.Addr() {
			continue
		}
		moved++
		if b.Addr() != addr(10) {
			t.Fatalf("key %d moved from %s to %s, want moves only to the new %s", i, a.Addr(), b.Addr(), addr(10))
		}
	}
	got, want := float64(moved)/keys, 1.0/11
	if math.Abs(got-want) > 0.02 {
		t.Errorf("got %.3f of keys moved, want about %.3f", got, want)
	}
}

func TestPickDoesNotAllocate(t *testing.T) {
	req := pickRequest(7)
	req.Header.Set("Cookie", "session=abc")
	for _, tt := range []struct {
		balance string
		key     *config.HashKey
	}{
		{"round_robin", nil},
		{"least_request", nil},
		{"hash", &config.HashKey{Header: "X-User"}},
		{"hash", &config.HashKey{Cookie: "session"}},
		{"hash", &config.HashKey{ClientIP: true}},
	} {
		cfg := upstreamCfg(tt.balance, 1, 2, 3, 4, 5, 1, 2, 3, 4, 5)
		cfg.Hash = tt.key
		p := newTestPool(t, "app", cfg, newTestRegistry(nil))
		tried := []*Endpoint{p.set.Load().eps[3]}
		ip := netip.MustParseAddr("192.0.2.1")
		allocs := testing.AllocsPerRun(1000, func() {
			e, err := p.Pick(req, ip, tried)
			if err != nil {
				t.Fatal(err)
			}
			e.Begin()
			e.End(Success)
		})
		if allocs != 0 {
			t.Errorf("%s %+v: got %v allocations per Pick, want 0", tt.balance, tt.key, allocs)
		}
	}
}

func BenchmarkPick(b *testing.B) {
	for _, tt := range []struct {
		name string
		key  *config.HashKey
	}{
		{"round_robin", nil},
		{"least_request", nil},
		{"hash", &config.HashKey{Header: "X-User"}},
	} {
		b.Run(tt.name, func(b *testing.B) {
			cfg := upstreamCfg(tt.name, 1, 2, 3, 4, 5, 1, 2, 3, 4, 5)
			cfg.Hash = tt.key
			p := newTestPool(b, "app", cfg, newTestRegistry(nil))
			req := pickRequest(42)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					e, err := p.Pick(req, netip.Addr{}, nil)
					if err != nil {
						b.Fatal(err)
					}
					e.Begin()
					e.End(Success)
				}
			})
		})
	}
}
