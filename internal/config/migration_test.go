package config

import (
	"testing"
	"time"
)

const rolloutYAML = `
upstreams:
  monolith: {endpoints: ["127.0.0.1:9000"]}
  listing: {endpoints: ["127.0.0.1:9001"]}
default_slo: {availability: 99.9}
routes:
  - name: items
    backends: [{upstream: monolith}, {upstream: listing, candidate: true}]
    shadow: {upstream: listing, compare: {}}
    rollout: {steps: [0, 5, 50, 100], max_diff_percent: 1}
`

// TestMigrationDefaults: an empty compare block and a rollout with only
// steps get the documented defaults.
func TestMigrationDefaults(t *testing.T) {
	c, err := Parse([]byte(rolloutYAML), "torii.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r := &c.Routes[0]
	cmp := r.Shadow.Compare
	if cmp.SecondaryPercent != 20 || len(cmp.Headers) != 1 || cmp.Headers[0] != "Content-Type" ||
		cmp.MaxBodyBytes != 1<<20 || cmp.RelativeThreshold != 20 || cmp.AbsoluteThreshold != 0.03 || cmp.Samples != 5 {
		t.Errorf("compare defaults: %+v", cmp)
	}
	ro := r.Rollout
	if ro.Every.D() != 5*time.Minute || ro.Window.D() != 5*time.Minute || ro.MinRequests != 100 || ro.MaxBurnRate != 14.4 {
		t.Errorf("rollout defaults: %+v", ro)
	}
	if name, i, ok := r.Candidate(); name != "listing" || i != 1 || !ok {
		t.Errorf("Candidate() = %q, %d, %v", name, i, ok)
	}
}

// TestGeneration: the generation changes with the rollout block or the
// candidate, and with nothing else.
func TestGeneration(t *testing.T) {
	parse := func(src string) *Route {
		t.Helper()
		c, err := Parse([]byte(src), "torii.yaml")
		if err != nil {
			t.Fatal(err)
		}
		return &c.Routes[0]
	}
	base := parse(rolloutYAML)
	g := base.Generation()
	if g == "" || len(g) != 12 {
		t.Fatalf("generation %q, want 12 hex digits", g)
	}
	same := parse(rolloutYAML + "    timeout: 5s\n")
	if same.Generation() != g {
		t.Error("a change outside the rollout block changed the generation")
	}
	for name, src := range map[string]string{
		"steps":    `rollout: {steps: [0, 5, 50, 100], max_diff_percent: 1}`,
		"every":    `rollout: {steps: [0, 5, 50, 100], max_diff_percent: 1, every: 10m}`,
		"diff":     `rollout: {steps: [0, 5, 50, 100], max_diff_percent: 2}`,
		"explicit": `rollout: {steps: [0, 5, 50, 100], max_diff_percent: 1, every: 5m}`,
	} {
		r := parse(rolloutYAML[:len(rolloutYAML)-len("rollout: {steps: [0, 5, 50, 100], max_diff_percent: 1}\n")] + src + "\n")
		changed := r.Generation() != g
		if want := name == "every" || name == "diff"; changed != want {
			t.Errorf("%s: generation changed = %v, want %v", name, changed, want)
		}
	}
	if (&Route{}).Generation() != "" {
		t.Error("a route without a rollout has a generation")
	}
}
