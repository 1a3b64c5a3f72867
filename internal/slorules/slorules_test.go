package slorules

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"torii/internal/config"
)

var update = flag.Bool("update", false, "rewrite testdata/*.rules.yml from the current output")

// generate returns the rules for a testdata config.
func generate(t *testing.T, name string) []byte {
	t.Helper()
	cfg, err := config.Load(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	out, err := Generate(cfg)
	if err != nil {
		t.Fatalf("Generate(%s): %v", name, err)
	}
	return out
}

// TestGenerateGolden compares the rules for every testdata/*.yaml config
// (not the promtool tests, *.test.yml) with *.rules.yml beside it. Run
// with -update to rewrite them, then review the diff.
func TestGenerateGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata/*.yaml configs (err %v)", err)
	}
	for _, file := range files {
		name := filepath.Base(file)
		t.Run(name, func(t *testing.T) {
			got := generate(t, name)
			golden := strings.TrimSuffix(file, ".yaml") + ".rules.yml"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("read golden (run with -update to create it): %v", err)
			}
			if string(got) != string(want) {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestFactor(t *testing.T) {
	const day = 24 * time.Hour
	tests := []struct {
		name   string
		p      pair
		period time.Duration
		want   float64
	}{
		{"page 1h, 30d", pagePairs[0], 30 * day, 14.4},
		{"page 6h, 30d", pagePairs[1], 30 * day, 6},
		{"ticket 1d, 30d", ticketPairs[0], 30 * day, 3},
		{"ticket 3d, 30d", ticketPairs[1], 30 * day, 1},
		{"page 1h, 28d", pagePairs[0], 28 * day, 13.44},
		{"page 6h, 28d", pagePairs[1], 28 * day, 5.6},
		{"ticket 1d, 28d", ticketPairs[0], 28 * day, 2.8},
		{"ticket 3d, 28d", ticketPairs[1], 28 * day, 28.0 / 30},
	}
	for _, tt := range tests {
		if got := factor(tt.p, tt.period); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestErrorBudget(t *testing.T) {
	for _, tt := range []struct {
		target float64
		want   string
	}{{99.9, "0.001"}, {99.95, "0.0005"}, {99, "0.01"}, {99.9999, "1e-06"}, {50, "0.5"}} {
		got, err := errorBudget(tt.target)
		if err != nil || got != tt.want {
			t.Errorf("errorBudget(%v) = %q, %v; want %q", tt.target, got, err, tt.want)
		}
	}
	for _, bad := range []float64{0, 100, -1} {
		if _, err := errorBudget(bad); err == nil {
			t.Errorf("errorBudget(%v): got no error, want one", bad)
		}
	}
}

func TestGenerateWithoutSLOs(t *testing.T) {
	cfg, err := config.Parse([]byte("upstreams: {app: {endpoints: [\"127.0.0.1:8000\"]}}\nroutes: [{name: a, backends: [{upstream: app}]}]\n"), "none.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out, err := Generate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(string(out), "groups: []\n") {
		t.Errorf("got:\n%s\nwant an empty rule file ending in \"groups: []\"", out)
	}
	if _, err := Generate(nil); err == nil {
		t.Errorf("Generate(nil): got no error, want one")
	}
}

// promtool returns the path of promtool, skipping the test when it is
// missing, except in CI (CI=true), where scripts/promtool installs it.
func promtool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("promtool not found in CI; scripts/promtool installs it: %v", err)
		}
		t.Skip("promtool not found; run scripts/promtool to install it")
	}
	return path
}

// TestPromtoolCheck runs `promtool check rules` on the rules generated for
// every testdata config.
func TestPromtoolCheck(t *testing.T) {
	bin := promtool(t)
	files, _ := filepath.Glob("testdata/*.yaml")
	for _, file := range files {
		name := filepath.Base(file)
		t.Run(name, func(t *testing.T) {
			rules := filepath.Join(t.TempDir(), "rules.yml")
			if err := os.WriteFile(rules, generate(t, name), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(bin, "check", "rules", "--lint=all", "--lint-fatal", rules).CombinedOutput()
			if err != nil {
				t.Fatalf("promtool check rules: %v\n%s", err, out)
			}
			t.Logf("promtool check rules:\n%s", out)
		})
	}
}

// TestPromtoolUnit runs the rule unit tests testdata/*.test.yml with
// `promtool test rules` against freshly generated rules for
// testdata/sample.yaml, which they read as slo.rules.yml.
func TestPromtoolUnit(t *testing.T) {
	bin := promtool(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "slo.rules.yml"), generate(t, "sample.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests, _ := filepath.Glob("testdata/*.test.yml")
	if len(tests) == 0 {
		t.Fatal("no testdata/*.test.yml")
	}
	for _, file := range tests {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			dst := filepath.Join(dir, filepath.Base(file))
			if err := os.WriteFile(dst, data, 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(bin, "test", "rules", dst).CombinedOutput()
			if err != nil {
				t.Fatalf("promtool test rules: %v\n%s", err, out)
			}
			t.Logf("promtool test rules:\n%s", out)
		})
	}
}
