package ratelimit

import (
	"bufio"
	"bytes"
	"os"
	"strings"
	"testing"

	"torii/internal/config"
)

// TestDocsExamples builds the rate limits of every ```yaml block in
// docs/rate-limits.md. (internal/runtime's docs test parses and builds
// every docs example as a whole config; this one makes sure each limit
// there is one New accepts.)
func TestDocsExamples(t *testing.T) {
	md, err := os.ReadFile("../../../docs/rate-limits.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks, limits := 0, 0
	sc := bufio.NewScanner(bytes.NewReader(md))
	var cur *bytes.Buffer
	start := 0
	for n := 1; sc.Scan(); n++ {
		switch line := sc.Text(); {
		case cur == nil && strings.TrimSpace(line) == "```yaml":
			cur, start = new(bytes.Buffer), n
		case cur != nil && strings.TrimSpace(line) == "```":
			blocks++
			limits += buildExample(t, start, cur.Bytes())
			cur = nil
		case cur != nil:
			cur.WriteString(line + "\n")
		}
	}
	if blocks == 0 || limits == 0 {
		t.Errorf("got %d yaml blocks with %d rate limits in docs/rate-limits.md, want some", blocks, limits)
	}
}

// buildExample parses one example and builds its rate limits, returning
// how many there were.
func buildExample(t *testing.T, line int, yaml []byte) int {
	t.Helper()
	cfg, err := config.Parse(yaml, "docs/rate-limits.md")
	if err != nil {
		t.Errorf("the yaml block on line %d is not a valid config: %v", line, err)
		return 0
	}
	s, err := NewShared(SharedOptions{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.SetRedis(cfg.Redis); err != nil {
		t.Errorf("the yaml block on line %d: %v", line, err)
	}
	n := 0
	for _, r := range cfg.Routes {
		if r.RateLimit == nil {
			continue
		}
		n++
		if _, err := New(r.Name, r.RateLimit, s); err != nil {
			t.Errorf("the yaml block on line %d: %v", line, err)
		}
	}
	return n
}
