package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestValidateExitCodes(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte(`
upstreams:
  listing: {endpoints: ["127.0.0.1:9000"]}
routes:
  - name: items
    match: {path_prefix: /v1/items}
    backends: [{upstream: listing}]
`), 0o600)
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte(`
listen:
  - addr: "127.0.0.1:99999"
upstreams:
  listing:
    endpoints: ["127.0.0.1:9000"]
    balanse: round_robin
routes:
  - name: items
    match: {path_prefix: v1/items, path_regex: "("}
    backends: [{upstream: listng}]
    timeout: 5
`), 0o600)

	sloCfg := filepath.Join(dir, "slo.yaml")
	os.WriteFile(sloCfg, []byte(`
teams:
  listing: {}
upstreams:
  listing: {endpoints: ["127.0.0.1:9000"]}
routes:
  - name: items
    owner: listing
    slo: {availability: 99.9}
    backends: [{upstream: listing}]
`), 0o600)
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  []string // each must appear in stdout+stderr
	}{
		{"good config", []string{"validate", "-c", good}, 0, []string{"ok"}},
		{"every problem with path and line", []string{"validate", "-c", bad}, 2, []string{
			`bad.yaml:3: listen[0].addr`,
			`bad.yaml:7: upstreams.listing.balanse`,
			`did you mean "balance"`,
			`routes[0].match.path_prefix`,
			`routes[0].match.path_regex`,
			`bad.yaml:11: routes[0].backends[0].upstream`,
			`did you mean "listing"`,
			`bad.yaml:12: routes[0].timeout`,
		}},
		{"missing file", []string{"validate", "-c", filepath.Join(dir, "nope.yaml")}, 2, []string{"nope.yaml"}},
		{"run with an invalid config", []string{"run", "-c", bad}, 2, []string{`did you mean "listing"`}},
		{"unknown command", []string{"frobnicate"}, 2, []string{"unknown command"}},
		{"version", []string{"version"}, 0, []string{"torii ", "go1."}},
		{"slo rules", []string{"slo", "rules", "-c", sloCfg}, 0, []string{"torii:slo_errors:ratio_rate1h", "ToriiSLOPage", "ToriiSLOTicket", `team: listing`}},
		{"slo without rules", []string{"slo"}, 2, []string{"usage: torii slo rules"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(tc.args, &out, &errOut)
			all := out.String() + errOut.String()
			if code != tc.wantCode {
				t.Errorf("exit code: got %d, want %d; output:\n%s", code, tc.wantCode, all)
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(all, w) {
					t.Errorf("output lacks %q:\n%s", w, all)
				}
			}
		})
	}
}

// TestSIGTERM is acceptance point 4 with the real binary and a real
// signal: /readyz fails first, in-flight slow requests complete within the
// grace period, then new connections are refused.
func TestSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBinary(t)

	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		io.WriteString(w, "done")
	}))
	defer up.Close()
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()

	dataAddr, adminAddr := freeAddr(t), freeAddr(t)
	cfg := filepath.Join(t.TempDir(), "torii.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`
listen: [{addr: %q}]
admin: {addr: %q}
shutdown: {drain_delay: 1s, grace: 10s}
access_log: {disabled: true}
upstreams:
  app: {endpoints: [%q]}
routes:
  - name: all
    backends: [{upstream: app}]
`, dataAddr, adminAddr, up.Listener.Addr().String())), 0o600)

	cmd := exec.Command(bin, "run", "-c", cfg)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	logs := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logs <- sc.Text()
		}
		close(logs)
	}()
	waitFor(t, "http://"+adminAddr+"/readyz", 200)

	results := make(chan string, 3)
	for i := 0; i < 3; i++ {
		go func() {
			resp, err := http.Get("http://" + dataAddr + "/slow")
			if err != nil {
				results <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			results <- fmt.Sprintf("%d %s", resp.StatusCode, b)
		}()
	}
	time.Sleep(300 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if code := status(t, "http://"+adminAddr+"/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("readyz right after SIGTERM: got %d, want 503", code)
	}
	time.Sleep(1200 * time.Millisecond) // drain delay over
	if c, err := net.DialTimeout("tcp", dataAddr, time.Second); err == nil {
		c.Close()
		t.Errorf("new connection after the drain delay: accepted, want refused")
	}
	close(release)
	for i := 0; i < 3; i++ {
		select {
		case r := <-results:
			if r != "200 done" {
				t.Errorf("in-flight request: got %q, want %q", r, "200 done")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("in-flight request did not finish")
		}
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("torii exit: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("torii did not exit after SIGTERM")
	}
	var all []string
	for l := range logs {
		all = append(all, l)
	}
	if !regexp.MustCompile(`shutdown: done`).MatchString(strings.Join(all, "\n")) {
		t.Errorf("logs lack the shutdown line:\n%s", strings.Join(all, "\n"))
	}
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// buildBinary builds torii once per test run, statically as it ships.
func buildBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "torii-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "torii")
		build := exec.Command("go", "build", "-o", binPath, ".")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// TestKill9KeepsCounts is issue #5's acceptance point 3: a kill -9 during
// traffic loses at most one flush interval of SLO counts; a restart on the
// same SQLite file sees everything flushed before it.
func TestKill9KeepsCounts(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBinary(t)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer up.Close()
	dir := t.TempDir()
	dataAddr, adminAddr := freeAddr(t), freeAddr(t)
	cfg := filepath.Join(dir, "torii.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`
listen: [{addr: %q}]
admin: {addr: %q}
access_log: {disabled: true}
store: {sqlite: torii.db, flush_interval: 1s}
teams: {t: {}}
upstreams:
  app: {endpoints: [%q]}
routes:
  - name: all
    owner: t
    slo: {availability: 99.9}
    backends: [{upstream: app}]
`, dataAddr, adminAddr, up.Listener.Addr().String())), 0o600)

	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "run", "-c", cfg)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "http://"+adminAddr+"/readyz", 200)
		return cmd
	}
	send := func(n int) {
		for i := 0; i < n; i++ {
			resp, err := http.Get("http://" + dataAddr + "/x")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
	}

	cmd := start()
	const flushed, unflushed = 200, 50
	send(flushed)
	time.Sleep(2500 * time.Millisecond) // two flush intervals: all 200 are in the file
	send(unflushed)                     // these may or may not be: at most one interval's worth
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	cmd = start()
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	var events int64 = -1
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		events = periodEvents(t, "http://"+adminAddr+"/api/v1/slos", "all")
		if events >= flushed {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if events < flushed || events > flushed+unflushed {
		t.Errorf("events after kill -9 and restart: got %d, want between %d (flushed before the kill) and %d", events, flushed, flushed+unflushed)
	}
	t.Logf("after kill -9: %d of %d requests counted (%d sent in the last flush interval)", events, flushed+unflushed, unflushed)
}

// periodEvents reads a route's availability events over its whole period
// from /api/v1/slos; -1 before the first evaluation.
func periodEvents(t *testing.T, url, route string) int64 {
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		SLOs []struct {
			Route        string `json:"route"`
			Period       string `json:"period"`
			Availability struct {
				Events map[string]int64 `json:"events"`
			} `json:"availability"`
		} `json:"slos"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	for _, s := range body.SLOs {
		if s.Route == route {
			if n, ok := s.Availability.Events[s.Period]; ok {
				return n
			}
		}
	}
	return -1
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func status(t *testing.T, url string) int {
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func waitFor(t *testing.T, url string, code int) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == code {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s did not answer %d within 10s", url, code)
}
