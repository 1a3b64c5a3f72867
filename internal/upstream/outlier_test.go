package upstream

import (
	"testing"
	"time"

	"torii/internal/config"
)

func TestOutlierConsecutiveFailures(t *testing.T) {
	tests := []struct {
		name        string
		outcomes    []Outcome
		wantEjected bool
		wantFails   int64
	}{
		{"four gateway errors", repeat(GatewayError, 4), false, 4},
		{"five gateway errors eject", repeat(GatewayError, 5), true, 0},
		{"five 5xx eject", repeat(Failure5xx, 5), true, 0},
		{"mixed failures eject", []Outcome{Failure5xx, GatewayError, Failure5xx, GatewayError, Failure5xx}, true, 0},
		{"success resets the count", append(append(repeat(GatewayError, 4), Success), repeat(GatewayError, 4)...), false, 4},
		{"canceled counts neither way", append(append(repeat(GatewayError, 4), Canceled), GatewayError), true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			reg := newTestRegistry(clock)
			p := newTestPool(t, "app", upstreamCfg("round_robin", 1, 1), reg)
			e := endpoint(t, p, addr(0))
			for _, o := range tt.outcomes {
				e.Begin()
				e.End(o)
			}
			st := statusOf(t, reg, "app", addr(0))
			if st.Ejected != tt.wantEjected {
				t.Errorf("got ejected %v, want %v", st.Ejected, tt.wantEjected)
			}
			if st.ConsecutiveFailures != tt.wantFails {
				t.Errorf("got %d consecutive failures, want %d", st.ConsecutiveFailures, tt.wantFails)
			}
			if st.InFlight != 0 {
				t.Errorf("got %d in flight, want 0", st.InFlight)
			}
			if tt.wantEjected {
				if want := clock.Now().Add(30 * time.Second); !st.EjectedUntil.Equal(want) {
					t.Errorf("got ejected until %v, want %v", st.EjectedUntil, want)
				}
				if st.Ejections != 1 {
					t.Errorf("got %d ejections, want 1", st.Ejections)
				}
			}
		})
	}
}

func repeat(o Outcome, n int) []Outcome {
	out := make([]Outcome, n)
	for i := range out {
		out[i] = o
	}
	return out
}

// statusOf returns the registry's status of one endpoint.
func statusOf(t *testing.T, reg *Registry, upstream, a string) EndpointStatus {
	t.Helper()
	for _, st := range reg.Status() {
		if st.Upstream == upstream && st.Addr == a {
			return st
		}
	}
	t.Fatalf("Status has no %s %s", upstream, a)
	return EndpointStatus{}
}

func TestEjectionLengthGrowsAndDecays(t *testing.T) {
	// Each step: wait healthy for `after`, then fail five times; the
	// ejection must last `want`.
	tests := []struct {
		name  string
		after time.Duration
		want  time.Duration
	}{
		{"first ejection is base", 0, 30 * time.Second},
		{"second is twice base", 30 * time.Second, 60 * time.Second},
		{"third is three times", 60 * time.Second, 90 * time.Second},
		{"fourth is capped at max", 90 * time.Second, 100 * time.Second},
		{"still capped", 100 * time.Second, 100 * time.Second},
		{"one base of health takes a step off", 100*time.Second + 30*time.Second, 100 * time.Second},
		{"long health resets the multiplier", 100*time.Second + 10*time.Minute, 30 * time.Second},
	}
	clock := newFakeClock()
	reg := newTestRegistry(clock)
	cfg := upstreamCfg("round_robin", 1, 1)
	cfg.Outlier = config.Outlier{
		BaseEjection: config.Duration(30 * time.Second),
		MaxEjection:  config.Duration(100 * time.Second),
	}
	p := newTestPool(t, "app", cfg, reg)
	e := endpoint(t, p, addr(0))
	for i, tt := range tests {
		clock.Advance(tt.after)
		if st := statusOf(t, reg, "app", addr(0)); st.Ejected {
			t.Fatalf("%s: still ejected until %v", tt.name, st.EjectedUntil)
		}
		fail(e, 5, GatewayError)
		st := statusOf(t, reg, "app", addr(0))
		if got := st.EjectedUntil.Sub(clock.Now()); got != tt.want {
			t.Errorf("%s: got ejection of %v, want %v", tt.name, got, tt.want)
		}
		if st.Ejections != uint64(i+1) {
			t.Errorf("%s: got %d ejections, want %d", tt.name, st.Ejections, i+1)
		}
	}
}

func TestFailuresWhileEjectedDoNotCount(t *testing.T) {
	clock := newFakeClock()
	reg := newTestRegistry(clock)
	p := newTestPool(t, "app", upstreamCfg("round_robin", 1, 1), reg)
	e := endpoint(t, p, addr(0))
	fail(e, 5, GatewayError)
	fail(e, 12, GatewayError) // tries sent before the ejection, ending late
	st := statusOf(t, reg, "app", addr(0))
	if st.Ejections != 1 || st.ConsecutiveFailures != 0 {
		t.Errorf("got %d ejections and %d failures, want 1 and 0", st.Ejections, st.ConsecutiveFailures)
	}
}

func TestMaxEjectedPercent(t *testing.T) {
	tests := []struct {
		name      string
		endpoints int
		percent   int
		want      int // endpoints ejected after every endpoint fails
	}{
		{"half of four", 4, 50, 2},
		{"default is half", 4, 0, 2},
		{"rounds down", 5, 50, 2},
		{"at least one", 3, 10, 1},
		{"a pool of one can be emptied", 1, 50, 1},
		{"all", 3, 100, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := newTestRegistry(newFakeClock())
			weights := make([]int, tt.endpoints)
			cfg := upstreamCfg("round_robin", weights...)
			cfg.Outlier.MaxEjectedPercent = tt.percent
			p := newTestPool(t, "app", cfg, reg)
			for i := range tt.endpoints {
				fail(endpoint(t, p, addr(i)), 5, GatewayError)
			}
			got := 0
			for _, st := range reg.Status() {
				if st.Ejected {
					got++
				} else if st.ConsecutiveFailures != 5 {
					t.Errorf("%s: got %d failures, want 5 kept for when room frees up", st.Addr, st.ConsecutiveFailures)
				}
			}
			if got != tt.want {
				t.Errorf("got %d ejected, want %d", got, tt.want)
			}
		})
	}
}

func TestRefusedEjectionHappensWhenRoomFrees(t *testing.T) {
	clock := newFakeClock()
	reg := newTestRegistry(clock)
	p := newTestPool(t, "app", upstreamCfg("round_robin", 1, 1), reg) // 50 %: one of two
	a, b := endpoint(t, p, addr(0)), endpoint(t, p, addr(1))
	fail(a, 5, GatewayError)
	fail(b, 5, GatewayError)
	if statusOf(t, reg, "app", addr(1)).Ejected {
		t.Fatalf("got b ejected with a already out, want refused")
	}
	clock.Advance(31 * time.Second) // a returns
	fail(b, 1, GatewayError)
	if !statusOf(t, reg, "app", addr(1)).Ejected {
		t.Errorf("got b not ejected after a returned, want ejected")
	}
}
