package upstream

import (
	"context"
	"maps"
	"slices"
	"testing"
	"time"

	"torii/internal/config"
)

func TestDNSResolution(t *testing.T) {
	res := &fakeResolver{}
	reg := NewRegistry(Options{Logger: discard, Resolver: res})
	cfg := &config.Upstream{Endpoints: []config.Endpoint{
		{Addr: "svc.internal:8080", Weight: 3},
		{Addr: "127.0.0.9:80"},
	}}
	p := newTestPool(t, "app", cfg, reg)

	steps := []struct {
		name    string
		resolve func()
		want    []string
	}{
		{"before the first lookup the name is dialed", nil,
			[]string{"svc.internal:8080", "127.0.0.9:80"}},
		{"failure before any success keeps the name", res.setFail,
			[]string{"svc.internal:8080", "127.0.0.9:80"}},
		{"resolved, sorted and deduplicated", func() { res.set("svc.internal", "127.0.0.2", "127.0.0.1", "127.0.0.2", "bogus") },
			[]string{"127.0.0.1:8080", "127.0.0.2:8080", "127.0.0.9:80"}},
		{"new address added, gone address dropped", func() { res.set("svc.internal", "127.0.0.3", "127.0.0.2") },
			[]string{"127.0.0.2:8080", "127.0.0.3:8080", "127.0.0.9:80"}},
		{"failure keeps the last set", res.setFail,
			[]string{"127.0.0.2:8080", "127.0.0.3:8080", "127.0.0.9:80"}},
		{"empty answer keeps the last set", func() { res.set("svc.internal") },
			[]string{"127.0.0.2:8080", "127.0.0.3:8080", "127.0.0.9:80"}},
		{"ipv6", func() { res.set("svc.internal", "::1") },
			[]string{"[::1]:8080", "127.0.0.9:80"}},
	}
	for _, s := range steps {
		keep := endpointsByAddr(p)
		if s.resolve != nil {
			s.resolve()
			p.resolveAll(context.Background())
		}
		if got := addrsOf(p); !slices.Equal(got, s.want) {
			t.Fatalf("%s: got endpoints %v, want %v", s.name, got, s.want)
		}
		var status []string
		for _, st := range reg.Status() {
			status = append(status, st.Addr)
			if st.Addr != "127.0.0.9:80" && st.Weight != 3 {
				t.Errorf("%s: %s got weight %d, want 3", s.name, st.Addr, st.Weight)
			}
		}
		if want := slices.Sorted(slices.Values(s.want)); !slices.Equal(status, want) {
			t.Errorf("%s: got Status addresses %v, want %v", s.name, status, want)
		}
		for a, e := range endpointsByAddr(p) {
			if old, ok := keep[a]; ok && old != e {
				t.Errorf("%s: endpoint %s was rebuilt, want the same *Endpoint kept", s.name, a)
			}
		}
	}
}

func endpointsByAddr(p *Pool) map[string]*Endpoint {
	m := map[string]*Endpoint{}
	for _, e := range p.set.Load().eps {
		m[e.addr] = e
	}
	return m
}

func TestDNSRefreshStartsAndStopsChecks(t *testing.T) {
	res := &fakeResolver{}
	res.set("svc.internal", "127.0.0.1", "127.0.0.2")
	reg := NewRegistry(Options{Logger: discard, Resolver: res})
	cfg := &config.Upstream{
		Endpoints:  []config.Endpoint{{Addr: "svc.internal:1"}},
		DNSRefresh: config.Duration(5 * time.Millisecond),
		Health:     &config.HealthCheck{Path: "/healthz", Interval: config.Duration(time.Hour)},
	}
	p := newTestPool(t, "app", cfg, reg)
	p.Start(context.Background())
	checked := func() []string {
		p.mu.Lock()
		defer p.mu.Unlock()
		return slices.Sorted(maps.Keys(p.checks))
	}
	waitFor(t, "checks on both resolved addresses", func() bool {
		return slices.Equal(checked(), []string{"127.0.0.1:1", "127.0.0.2:1"})
	})
	res.set("svc.internal", "127.0.0.2", "127.0.0.3")
	waitFor(t, "checks follow the DNS change", func() bool {
		return slices.Equal(checked(), []string{"127.0.0.2:1", "127.0.0.3:1"})
	})
	waitFor(t, "goroutines: two checks and DNS", func() bool { return p.running.Load() == 3 })
	p.Close()
	if got := p.running.Load(); got != 0 {
		t.Errorf("got %d goroutines after Close, want 0", got)
	}
}
