package main

import (
	"bufio"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDemoInterrupt runs the real binary's `torii demo` on free ports,
// waits for the URLs it prints, checks the gateway and the admin API
// answer, and expects a clean exit 0 soon after SIGINT (Ctrl-C).
func TestDemoInterrupt(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBinary(t)
	cmd := exec.Command(bin, "demo", "-listen", "127.0.0.1:0", "-admin", "127.0.0.1:0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	// The banner names the gateway, the admin API and the config file.
	urls := map[string]string{}
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	banner := regexp.MustCompile(`^\s+(gateway|admin API|config)\s+(http://127\.0\.0\.1:\d+|/\S+)`)
	timeout := time.After(30 * time.Second)
	for len(urls) < 3 {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("torii demo exited before printing its URLs: %v\nstderr:\n%s", cmd.Wait(), stderr.String())
			}
			if m := banner.FindStringSubmatch(l); m != nil {
				urls[m[1]] = m[2]
			}
		case <-timeout:
			t.Fatalf("no URLs printed within 30 s; got %v; stderr:\n%s", urls, stderr.String())
		}
	}
	go func() {
		for range lines { // keep the pipe drained
		}
	}()
	t.Logf("URLs printed after %s: %v", time.Since(start).Round(time.Millisecond), urls)

	for _, c := range []struct {
		url  string
		want int
	}{
		{urls["gateway"] + "/", http.StatusOK},
		{urls["gateway"] + "/v1/listings/1", http.StatusUnauthorized},
		{urls["admin API"] + "/api/v1/migrations/listings", http.StatusOK},
	} {
		if got := status(t, c.url); got != c.want {
			t.Errorf("GET %s: got %d, want %d", c.url, got, c.want)
		}
	}

	time.Sleep(time.Second) // some traffic in flight
	sent := time.Now()
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("torii demo after SIGINT: %v, want exit 0; stderr:\n%s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("torii demo did not exit within 10 s of SIGINT; stderr:\n%s", stderr.String())
	}
	t.Logf("exited %s after SIGINT", time.Since(sent).Round(time.Millisecond))
	if _, err := os.Stat(filepath.Dir(urls["config"])); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the demo's temp dir %s after exit: stat error %v, want it removed", filepath.Dir(urls["config"]), err)
	}
}
