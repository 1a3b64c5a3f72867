package runtime

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDataPlaneDeps keeps the data plane from importing the admin API (and,
// later, the dashboard): a request's path must not depend on them, and they
// must be free to grow without slowing it (Tailscale's deptest).
func TestDataPlaneDeps(t *testing.T) {
	dataPlane := []string{
		"torii/internal/runtime",
		"torii/internal/proxy",
		"torii/internal/router",
		"torii/internal/upstream",
	}
	forbidden := []string{"torii/internal/admin", "torii/internal/app", "torii/internal/dashboard"}
	for _, pkg := range dataPlane {
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, f := range forbidden {
				if dep == f || strings.HasPrefix(dep, f+"/") {
					t.Errorf("%s imports %s; the data plane must not depend on it", pkg, dep)
				}
			}
		}
	}
}
