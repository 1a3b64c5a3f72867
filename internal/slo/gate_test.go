package slo

import (
	"context"
	"math"
	"testing"
	"time"

	"torii/internal/config"
)

// TestBackendBurn: a backend's burn rate over a short window counts the
// flushed and the unflushed requests, shadow ones included, and only that
// backend's.
func TestBackendBurn(t *testing.T) {
	f := newFixture(t, &config.SLO{Availability: 99, Latency: &config.LatencySLO{Under: config.Duration(100 * time.Millisecond), Target: 90}}, Options{})
	ctx := context.Background()
	// 30 s ago, flushed: v2 serves 100 requests, 5 failing.
	for i := range 100 {
		status := 200
		if i < 5 {
			status = 502
		}
		f.items.Record("v2", status, "", time.Millisecond, false)
		f.items.Record("v1", 200, "", time.Millisecond, false)
	}
	if err := f.e.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(30 * time.Second)
	// Now, not flushed: 100 shadow requests to v2, 20 of them slow.
	for i := range 100 {
		ttfb := time.Millisecond
		if i < 20 {
			ttfb = time.Second
		}
		f.items.Record("v2", 200, "", ttfb, true)
	}
	b, ok, err := f.e.BackendBurn(ctx, "items", "v2", time.Minute)
	if err != nil || !ok {
		t.Fatalf("BackendBurn: ok %v, err %v", ok, err)
	}
	if b.Events != 200 || b.Errors != 5 || b.Slow != 20 {
		t.Errorf("events/errors/slow = %d/%d/%d, want 200/5/20", b.Events, b.Errors, b.Slow)
	}
	if want := 5.0 / 200 / 0.01; math.Abs(b.Availability-want) > 1e-9 {
		t.Errorf("availability burn %v, want %v", b.Availability, want)
	}
	if want := 20.0 / 200 / 0.1; math.Abs(b.Latency-want) > 1e-9 {
		t.Errorf("latency burn %v, want %v", b.Latency, want)
	}
	// A window that ends before the flushed requests sees only the recent ones.
	b, _, _ = f.e.BackendBurn(ctx, "items", "v2", 15*time.Second)
	if b.Events != 100 || b.Errors != 0 || b.Window != 20*time.Second {
		t.Errorf("15s window: %+v, want 100 events, no errors, rounded to 20s", b)
	}
	if _, ok, _ := f.e.BackendBurn(ctx, "static", "v2", time.Minute); ok {
		t.Error("a route without an SLO reported a burn rate")
	}
}
