package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestCgroupMemoryLimit: the soft memory limit comes from the first
// readable cgroup file; "max" and v1's page-rounded MaxInt64 mean none.
func TestCgroupMemoryLimit(t *testing.T) {
	dir := t.TempDir()
	file := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	missing := filepath.Join(dir, "missing")
	tests := []struct {
		name  string
		files []string
		want  int64
	}{
		{"v2 limit", []string{file("v2", "1073741824\n")}, 1 << 30},
		{"v2 max", []string{file("v2max", "max\n"), file("v1", "536870912\n")}, 0},
		{"v1 when v2 is missing", []string{missing, file("v1b", "536870912\n")}, 1 << 29},
		{"v1 unlimited", []string{missing, file("v1max", "9223372036854771712\n")}, 0},
		{"garbage", []string{file("junk", "lots\n")}, 0},
		{"none readable", []string{missing}, 0},
	}
	for _, tt := range tests {
		if got := cgroupMemoryLimit(tt.files...); got != tt.want {
			t.Errorf("%s: got %d, want %d", tt.name, got, tt.want)
		}
	}
}
