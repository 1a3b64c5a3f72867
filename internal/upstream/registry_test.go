package upstream

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"torii/internal/config"
)

func TestStateSurvivesReload(t *testing.T) {
	clock := newFakeClock()
	reg := newTestRegistry(clock)
	a := newTestPool(t, "app", upstreamCfg("round_robin", 1, 1), reg)
	fail(endpoint(t, a, addr(0)), 5, GatewayError)

	b := newTestPool(t, "app", upstreamCfg("least_request", 1, 1, 1), reg) // the reload
	for range 20 {
		e, err := b.Pick(nil, netip.Addr{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if e.Addr() == addr(0) {
			t.Fatalf("new pool picked %s, want it still ejected", e.Addr())
		}
	}
	got := reg.Status()
	if len(got) != 3 {
		t.Fatalf("got %d endpoints in Status, want 3 (each once): %+v", len(got), got)
	}
	if !got[0].Ejected || got[0].Ejections != 1 {
		t.Errorf("got %+v, want %s ejected once", got[0], addr(0))
	}
	a.Close()
	if got := len(reg.Status()); got != 3 {
		t.Errorf("after the old pool closed: got %d endpoints, want 3", got)
	}
	if !statusOf(t, reg, "app", addr(0)).Ejected {
		t.Errorf("after the old pool closed: got not ejected, want ejected")
	}
	b.Close()
	if got := reg.Status(); len(got) != 0 {
		t.Errorf("after every pool closed: got %+v, want none", got)
	}
}

func TestTransportReuse(t *testing.T) {
	base := upstreamCfg("round_robin", 1)
	tests := []struct {
		name string
		edit func(*config.Upstream)
		same bool
	}{
		{"same settings", func(*config.Upstream) {}, true},
		{"balancing changed", func(u *config.Upstream) { u.Balance = "least_request" }, true},
		{"defaults written out", func(u *config.Upstream) {
			u.ConnectTimeout = config.Duration(5 * time.Second)
			u.Pool.MaxIdlePerEndpoint = 64
		}, true},
		{"connect timeout changed", func(u *config.Upstream) { u.ConnectTimeout = config.Duration(time.Second) }, false},
		{"pool changed", func(u *config.Upstream) { u.Pool.MaxConnsPerEndpoint = 10 }, false},
		{"idle timeout changed", func(u *config.Upstream) { u.Pool.IdleTimeout = config.Duration(time.Second) }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := newTestRegistry(nil)
			a := newTestPool(t, "app", base, reg)
			cfg := *base
			tt.edit(&cfg)
			b := newTestPool(t, "app", &cfg, reg)
			if got := a.Transport() == b.Transport(); got != tt.same {
				t.Errorf("got same transport %v, want %v", got, tt.same)
			}
			other := newTestPool(t, "other", base, reg)
			if other.Transport() == a.Transport() {
				t.Errorf("got upstreams sharing a transport, want one each")
			}
		})
	}
}

func TestManyReloadsDoNotLeak(t *testing.T) {
	reg := newTestRegistry(nil)
	var old *Pool
	for i := range 200 {
		cfg := &config.Upstream{
			Endpoints:      []config.Endpoint{{Addr: "127.0.0.1:1"}, {Addr: fmt.Sprintf("127.0.0.2:%d", 1000+i)}},
			ConnectTimeout: config.Duration(time.Duration(1+i%3) * time.Second),
		}
		p, err := NewPool("app", cfg, reg)
		if err != nil {
			t.Fatal(err)
		}
		if old != nil {
			old.Close()
		}
		old = p
	}
	if got := len(reg.Status()); got != 2 {
		t.Errorf("got %d endpoints in Status, want 2", got)
	}
	reg.mu.Lock()
	transports, upstreams := len(reg.transports), len(reg.upstreams)
	reg.mu.Unlock()
	if transports != 1 || upstreams != 1 {
		t.Errorf("got %d transports and %d upstreams, want 1 and 1", transports, upstreams)
	}
	old.Close()
	reg.mu.Lock()
	transports, upstreams = len(reg.transports), len(reg.upstreams)
	reg.mu.Unlock()
	if transports != 0 || upstreams != 0 {
		t.Errorf("after the last Close: got %d transports and %d upstreams, want none", transports, upstreams)
	}
}

func TestMaxRequests(t *testing.T) {
	tests := []struct {
		name string
		max  int
		ops  string // a: Acquire, r: Release
		want string // t/f per Acquire
	}{
		{"unlimited", 0, "aaaaa", "ttttt"},
		{"cap of two", 2, "aaa", "ttf"},
		{"release frees a slot", 2, "aaaraa", "ttftf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := upstreamCfg("round_robin", 1)
			cfg.MaxRequests = tt.max
			p := newTestPool(t, "app", cfg, newTestRegistry(nil))
			var got []byte
			for _, op := range tt.ops {
				if op == 'r' {
					p.Release()
					continue
				}
				if p.Acquire() {
					got = append(got, 't')
				} else {
					got = append(got, 'f')
				}
			}
			if string(got) != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestMaxRequestsSharedAcrossReload(t *testing.T) {
	reg := newTestRegistry(nil)
	cfg := upstreamCfg("round_robin", 1)
	cfg.MaxRequests = 2
	a := newTestPool(t, "app", cfg, reg)
	b := newTestPool(t, "app", cfg, reg)
	if !a.Acquire() || !a.Acquire() {
		t.Fatal("got a full pool, want two slots")
	}
	if b.Acquire() {
		t.Error("new pool got a third slot, want the cap shared with the old pool")
	}
	a.Release()
	if !b.Acquire() {
		t.Error("got no slot after a release, want one")
	}
}

func TestMaxRequestsConcurrent(t *testing.T) {
	cfg := upstreamCfg("round_robin", 1)
	cfg.MaxRequests = 10
	p := newTestPool(t, "app", cfg, newTestRegistry(nil))
	var wg sync.WaitGroup
	var mu sync.Mutex // guards peak, inside
	peak, inside := 0, 0
	for range 50 {
		wg.Go(func() {
			for range 200 {
				if !p.Acquire() {
					continue
				}
				mu.Lock()
				inside++
				peak = max(peak, inside)
				mu.Unlock()
				mu.Lock()
				inside--
				mu.Unlock()
				p.Release()
			}
		})
	}
	wg.Wait()
	if peak > 10 {
		t.Errorf("got %d requests inside at once, want at most 10", peak)
	}
	if got := p.up.active.Load(); got != 0 {
		t.Errorf("got %d active after all released, want 0", got)
	}
}

func TestRetryBudget(t *testing.T) {
	tests := []struct {
		name   string
		budget config.RetryBudget
		active int
		want   int // retries admitted at once
	}{
		{"idle pool gets min retries", config.RetryBudget{}, 0, 3},
		{"20 % of 100", config.RetryBudget{}, 100, 20},
		{"min wins over a small share", config.RetryBudget{}, 10, 3},
		{"50 % of 10", config.RetryBudget{Percent: 50, MinRetries: 1}, 10, 5},
		{"min of one", config.RetryBudget{Percent: 1, MinRetries: 1}, 5, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := upstreamCfg("round_robin", 1)
			cfg.RetryBudget = tt.budget
			p := newTestPool(t, "app", cfg, newTestRegistry(nil))
			for range tt.active {
				p.Acquire()
			}
			got := 0
			for p.AllowRetry() {
				got++
				if got > 1000 {
					t.Fatal("budget never ran out")
				}
			}
			if got != tt.want {
				t.Errorf("got %d retries admitted, want %d", got, tt.want)
			}
			p.RetryDone()
			if !p.AllowRetry() {
				t.Error("got no retry after one ended, want one")
			}
		})
	}
}

func TestNewPoolErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  *config.Upstream
	}{
		{"nil config", nil},
		{"no endpoints", &config.Upstream{}},
		{"no port", &config.Upstream{Endpoints: []config.Endpoint{{Addr: "127.0.0.1"}}}},
		{"empty host", &config.Upstream{Endpoints: []config.Endpoint{{Addr: ":80"}}}},
		{"unknown balance", &config.Upstream{Balance: "random", Endpoints: []config.Endpoint{{Addr: "127.0.0.1:80"}}}},
		{"hash without key", &config.Upstream{Balance: "hash", Endpoints: []config.Endpoint{{Addr: "127.0.0.1:80"}}}},
		{"hash with empty key", &config.Upstream{Balance: "hash", Hash: &config.HashKey{}, Endpoints: []config.Endpoint{{Addr: "127.0.0.1:80"}}}},
		{"bad expect status", &config.Upstream{Endpoints: []config.Endpoint{{Addr: "127.0.0.1:80"}},
			Health: &config.HealthCheck{Path: "/", ExpectStatus: []string{"2xx"}}}},
		{"inverted range", &config.Upstream{Endpoints: []config.Endpoint{{Addr: "127.0.0.1:80"}},
			Health: &config.HealthCheck{Path: "/", ExpectStatus: []string{"299-200"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := newTestRegistry(nil)
			p, err := NewPool("app", tt.cfg, reg)
			if err == nil {
				p.Close()
				t.Fatal("got no error, want one")
			}
			if want := `build upstream "app": `; len(err.Error()) < len(want) || err.Error()[:len(want)] != want {
				t.Errorf("got error %q, want it to start with %q", err, want)
			}
			if got := reg.Status(); len(got) != 0 {
				t.Errorf("got %d endpoints in Status after a failed build, want none", len(got))
			}
		})
	}
}

// TestConcurrentUse runs picks, outcomes, DNS changes, checks, Status and
// reloads at once, for the race detector.
func TestConcurrentUse(t *testing.T) {
	srv := newFlakyServer(t)
	res := &fakeResolver{}
	res.set("svc.internal", "127.0.0.1")
	reg := NewRegistry(Options{Logger: discard, Resolver: res})
	mk := func(balance string) *Pool {
		cfg := &config.Upstream{
			Balance:    balance,
			Hash:       &config.HashKey{Header: "X-User"},
			Endpoints:  []config.Endpoint{{Addr: srv.addr()}, {Addr: "svc.internal:1"}},
			DNSRefresh: config.Duration(time.Millisecond),
			Health:     &config.HealthCheck{Path: "/", Interval: config.Duration(2 * time.Millisecond)},
		}
		cfg.Outlier.MaxEjectedPercent = 100
		p, err := NewPool("app", cfg, reg)
		if err != nil {
			t.Fatal(err)
		}
		p.Start(t.Context())
		return p
	}
	var cur sync.Mutex // guards pool
	pool := mk("round_robin")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := 0; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				cur.Lock()
				p := pool
				cur.Unlock()
				if !p.Acquire() {
					continue
				}
				var tried []*Endpoint
				for range 2 {
					e, err := p.Pick(pickRequest(j), netip.Addr{}, tried)
					if err != nil {
						break
					}
					e.Begin()
					e.End(Outcome(j % 3))
					tried = append(tried, e)
					if p.AllowRetry() {
						p.RetryDone()
					}
				}
				p.Release()
				if i == 0 {
					reg.Status()
				}
			}
		})
	}
	for i := range 20 {
		res.set("svc.internal", fmt.Sprintf("127.0.0.%d", 1+i%3), "127.0.0.9")
		next := mk([]string{"round_robin", "least_request", "hash"}[i%3])
		cur.Lock()
		old := pool
		pool = next
		cur.Unlock()
		time.Sleep(2 * time.Millisecond)
		old.Close()
	}
	close(stop)
	wg.Wait()
	pool.Close()
	if got := reg.Status(); len(got) != 0 {
		t.Errorf("got %d endpoints after every pool closed, want none", len(got))
	}
}
