package upstream

import (
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	"torii/internal/config"
)

// TestDocExamples builds a pool for every upstream of every complete YAML
// example in this package's docs, so the examples stay valid for the
// config and buildable here.
func TestDocExamples(t *testing.T) {
	block := regexp.MustCompile("(?ms)^```yaml\n(.*?)^```")
	for _, page := range []string{"upstreams.md", "health.md"} {
		data, err := os.ReadFile(filepath.Join("..", "..", "docs", page))
		if err != nil {
			t.Fatal(err)
		}
		examples := block.FindAllSubmatch(data, -1)
		if len(examples) == 0 {
			t.Errorf("%s: got no yaml examples, want some", page)
		}
		for i, m := range examples {
			cfg, err := config.Parse(m[1], page)
			if err != nil {
				t.Errorf("%s example %d: %v", page, i+1, err)
				continue
			}
			reg := newTestRegistry(nil)
			for _, name := range slices.Sorted(maps.Keys(cfg.Upstreams)) {
				p, err := NewPool(name, cfg.Upstreams[name], reg)
				if err != nil {
					t.Errorf("%s example %d: %v", page, i+1, err)
					continue
				}
				p.Close()
			}
		}
	}
}
