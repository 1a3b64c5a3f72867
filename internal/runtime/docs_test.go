package runtime

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"torii/internal/config"
	"torii/internal/upstream"
)

// TestDocsExamples parses and builds every ```yaml block in docs/*.md and
// README.md: such blocks are complete configs and must be valid and build
// into a snapshot (CoreDNS runs its READMEs as tests). Fragments of a config
// use another fence, ```yaml-fragment, and are not checked.
func TestDocsExamples(t *testing.T) {
	files, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("../../README.md"); err == nil {
		files = append(files, "../../README.md")
	}
	found := 0
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimPrefix(file, "../../")
		for _, b := range yamlBlocks(data) {
			found++
			cfg, err := config.Parse(b.text, name)
			if err != nil {
				t.Errorf("%s: the yaml block starting on line %d is not a valid config (fence a fragment as ```yaml-fragment):\n%v", name, b.line, err)
				continue
			}
			snap, err := Build(cfg, Deps{Registry: upstream.NewRegistry(upstream.Options{})})
			if err != nil {
				t.Errorf("%s: the yaml block starting on line %d does not build: %v", name, b.line, err)
				continue
			}
			snap.Close()
		}
	}
	if found == 0 {
		t.Errorf("got no ```yaml blocks in docs/, want at least the example in docs/configuration.md")
	}
}

// block is a fenced code block: its text and the line of its opening fence.
type block struct {
	line int
	text []byte
}

// yamlBlocks returns the blocks fenced exactly as ```yaml in a Markdown
// file, with the fence's indentation removed from their lines.
func yamlBlocks(md []byte) []block {
	var blocks []block
	var cur *block
	indent := ""
	sc := bufio.NewScanner(bytes.NewReader(md))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case cur == nil && trimmed == "```yaml":
			cur = &block{line: n}
			indent = line[:strings.Index(line, "`")]
		case cur != nil && trimmed == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.text = append(cur.text, strings.TrimPrefix(line, indent)+"\n"...)
		}
	}
	return blocks
}

func TestYAMLBlocks(t *testing.T) {
	md := "# t\n```yaml\na: 1\n```\n\n```yaml-fragment\nb: 2\n```\n- item\n  ```yaml\n  c: 3\n  ```\n"
	got := yamlBlocks([]byte(md))
	want := []block{{line: 2, text: []byte("a: 1\n")}, {line: 10, text: []byte("c: 3\n")}}
	if len(got) != len(want) {
		t.Fatalf("got %d blocks, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].line != want[i].line || string(got[i].text) != string(want[i].text) {
			t.Errorf("block %d: got line %d %q, want line %d %q", i, got[i].line, got[i].text, want[i].line, want[i].text)
		}
	}
}
