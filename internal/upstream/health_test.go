package upstream

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"torii/internal/config"
)

func TestHealthThresholds(t *testing.T) {
	srv := newFlakyServer(t)
	steps := []struct {
		name        string
		failing     bool
		wantHealthy bool
		wantErr     string
	}{
		{"passes", false, true, ""},
		{"one failure", true, true, "status 503"},
		{"two failures", true, true, "status 503"},
		{"three failures: unhealthy", true, false, "status 503"},
		{"four failures", true, false, "status 503"},
		{"one pass", false, false, ""},
		{"fail resets the passes", true, false, "status 503"},
		{"pass again", false, false, ""},
		{"two passes: healthy", false, true, ""},
	}
	clock := newFakeClock()
	reg := newTestRegistry(clock)
	cfg := &config.Upstream{
		Endpoints: []config.Endpoint{{Addr: srv.addr()}},
		Health:    &config.HealthCheck{Path: "/healthz", HealthyThreshold: 2, UnhealthyThreshold: 3},
	}
	p := newTestPool(t, "app", cfg, reg)
	p.healthClient = newHealthClient(p.s.conn, p.s.tls) // as Start would, without its loop
	e := endpoint(t, p, srv.addr())
	for _, s := range steps {
		srv.failing.Store(s.failing)
		clock.Advance(time.Second)
		p.checkOnce(context.Background(), e.st, e.addr)
		st := statusOf(t, reg, "app", srv.addr())
		if st.Healthy != s.wantHealthy {
			t.Errorf("%s: got healthy %v, want %v", s.name, st.Healthy, s.wantHealthy)
		}
		if !strings.Contains(st.LastCheckError, s.wantErr) || (s.wantErr == "") != (st.LastCheckError == "") {
			t.Errorf("%s: got last check error %q, want %q", s.name, st.LastCheckError, s.wantErr)
		}
		if !st.LastCheck.Equal(clock.Now()) {
			t.Errorf("%s: got last check %v, want %v", s.name, st.LastCheck, clock.Now())
		}
		_, err := p.Pick(nil, netip.Addr{}, nil)
		if gotUsable := err == nil; gotUsable != s.wantHealthy {
			t.Errorf("%s: got Pick error %v, want usable %v", s.name, err, s.wantHealthy)
		}
	}
}

func TestHealthExpectStatus(t *testing.T) {
	srv := newFlakyServer(t)
	srv.failing.Store(true) // 503
	tests := []struct {
		name   string
		expect []string
		want   bool
	}{
		{"default 200-399", nil, false},
		{"code", []string{"503"}, true},
		{"range", []string{"200-299", "500-503"}, true},
		{"other range", []string{"500-502"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &config.Upstream{
				Endpoints: []config.Endpoint{{Addr: srv.addr()}},
				Health:    &config.HealthCheck{Path: "healthz", ExpectStatus: tt.expect},
			}
			p := newTestPool(t, "app", cfg, newTestRegistry(nil))
			p.healthClient = newHealthClient(p.s.conn, p.s.tls)
			err := p.probe(context.Background(), srv.addr())
			if got := err == nil; got != tt.want {
				t.Errorf("got pass %v (err %v), want %v", got, err, tt.want)
			}
		})
	}
}

func TestPassingCheckEndsEjection(t *testing.T) {
	srv := newFlakyServer(t)
	clock := newFakeClock()
	reg := newTestRegistry(clock)
	cfg := &config.Upstream{
		Endpoints: []config.Endpoint{{Addr: srv.addr()}, {Addr: "127.0.0.1:1"}},
		Health:    &config.HealthCheck{Path: "/healthz"},
	}
	p := newTestPool(t, "app", cfg, reg)
	p.healthClient = newHealthClient(p.s.conn, p.s.tls)
	e := endpoint(t, p, srv.addr())

	before := clock.Now().UnixNano()
	clock.Advance(time.Second)
	fail(e, 5, GatewayError)
	if !statusOf(t, reg, "app", srv.addr()).Ejected {
		t.Fatal("got not ejected after 5 failures, want ejected")
	}
	// A check that started before the ejection says nothing about it.
	p.recordCheck(e.st, before, nil)
	if !statusOf(t, reg, "app", srv.addr()).Ejected {
		t.Error("got ejection ended by a check older than it, want still ejected")
	}
	srv.failing.Store(true)
	p.checkOnce(context.Background(), e.st, e.addr)
	if !statusOf(t, reg, "app", srv.addr()).Ejected {
		t.Error("got ejection ended by a failing check, want still ejected")
	}
	srv.failing.Store(false)
	clock.Advance(time.Second)
	p.checkOnce(context.Background(), e.st, e.addr)
	st := statusOf(t, reg, "app", srv.addr())
	if st.Ejected || !st.Healthy {
		t.Errorf("got ejected %v healthy %v after a passing check, want back in rotation", st.Ejected, st.Healthy)
	}
	if got, _ := p.Pick(nil, netip.Addr{}, []*Endpoint{endpoint(t, p, "127.0.0.1:1")}); got != e {
		t.Errorf("got Pick %v, want %s back in rotation", got, e.Addr())
	}
}

func TestHealthLoopAndClose(t *testing.T) {
	srv := newFlakyServer(t)
	reg := NewRegistry(Options{Logger: discard})
	cfg := &config.Upstream{
		Endpoints: []config.Endpoint{{Addr: srv.addr()}},
		Health: &config.HealthCheck{
			Path:               "/healthz",
			Interval:           config.Duration(10 * time.Millisecond),
			Timeout:            config.Duration(500 * time.Millisecond),
			HealthyThreshold:   1,
			UnhealthyThreshold: 1,
		},
	}
	p, err := NewPool("app", cfg, reg)
	if err != nil {
		t.Fatal(err)
	}
	p.Start(context.Background())
	p.Start(context.Background()) // a second Start does nothing
	healthy := func() bool { return statusOf(t, reg, "app", srv.addr()).Healthy }
	srv.failing.Store(true)
	waitFor(t, "unhealthy", func() bool { return !healthy() })
	srv.failing.Store(false)
	waitFor(t, "healthy", healthy)
	if got := p.running.Load(); got != 1 {
		t.Errorf("got %d goroutines running, want 1 health check", got)
	}

	p.Close()
	if got := p.running.Load(); got != 0 {
		t.Errorf("got %d goroutines running after Close, want 0", got)
	}
	hits := srv.hits.Load()
	time.Sleep(50 * time.Millisecond)
	if got := srv.hits.Load(); got != hits {
		t.Errorf("got %d checks after Close, want none", got-hits)
	}
	p.Close() // twice is fine
	if got := reg.Status(); len(got) != 0 {
		t.Errorf("got %d endpoints in Status after Close, want 0", len(got))
	}
}

func TestStartStopsWithContext(t *testing.T) {
	srv := newFlakyServer(t)
	cfg := &config.Upstream{
		Endpoints: []config.Endpoint{{Addr: srv.addr()}, {Addr: "localhost:1"}},
		Health:    &config.HealthCheck{Path: "/", Interval: config.Duration(10 * time.Millisecond)},
	}
	p := newTestPool(t, "app", cfg, NewRegistry(Options{Logger: discard, Resolver: &fakeResolver{}}))
	ctx, cancel := context.WithCancel(context.Background())
	p.Start(ctx)
	waitFor(t, "checks and DNS running", func() bool { return p.running.Load() == 3 })
	cancel()
	waitFor(t, "goroutines to stop", func() bool { return p.running.Load() == 0 })
}

func TestNoHealthBlockMarksHealthy(t *testing.T) {
	reg := newTestRegistry(nil)
	withChecks := upstreamCfg("round_robin", 1)
	withChecks.Health = &config.HealthCheck{Path: "/healthz"}
	a := newTestPool(t, "app", withChecks, reg)
	endpoint(t, a, addr(0)).st.healthy.Store(false) // as a's checks concluded

	b := newTestPool(t, "app", upstreamCfg("round_robin", 1), reg) // reload drops the checks
	if _, err := b.Pick(nil, netip.Addr{}, nil); err != nil {
		t.Errorf("got %v from a pool without checks, want the endpoint", err)
	}
	b.Start(context.Background())
	if st := statusOf(t, reg, "app", addr(0)); !st.Healthy {
		t.Errorf("got healthy false after a check-less pool started, want true")
	}
}
