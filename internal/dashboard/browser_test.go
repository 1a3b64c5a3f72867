package dashboard_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"torii/internal/app"
)

// chromium returns the Chromium binary for browser tests
// (TORII_TEST_CHROMIUM). Without it the test is skipped, except in CI,
// where scripts/test installs Debian's chromium and sets it.
func chromium(t *testing.T) string {
	t.Helper()
	p := os.Getenv("TORII_TEST_CHROMIUM")
	if p != "" {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("TORII_TEST_CHROMIUM is not set; scripts/test installs chromium and sets it")
	}
	t.Skip("TORII_TEST_CHROMIUM is not set; run: apt-get install -y chromium && export TORII_TEST_CHROMIUM=/usr/bin/chromium")
	return ""
}

// itemService answers GET /items/{id} with JSON, with a timestamp and a
// request id that differ on every call (the noise the diff must ignore).
// With stringPrice the price is a string (the candidate's subtle
// difference); failEvery > 0 fails one request in failEvery with a 500
// and slowEvery > 0 delays one in slowEvery past the latency bound. Any
// other path gets a small HTML page (the monolith's home).
func itemService(t *testing.T, stringPrice bool, failEvery, slowEvery int64) *httptest.Server {
	var n atomic.Int64
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := n.Add(1)
		if failEvery > 0 && i%failEvery == 0 {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		if slowEvery > 0 && i%slowEvery == 0 {
			time.Sleep(300 * time.Millisecond)
		}
		id, ok := strings.CutPrefix(r.URL.Path, "/items/")
		if !ok {
			w.Header().Set("Content-Type", "text/html")
			io.WriteString(w, "<h1>shop</h1>")
			return
		}
		var price any = 42.5
		if stringPrice {
			price = "42.50"
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"id": id, "name": "item " + id, "price": price,
			"owner":        map[string]string{"email": "seller" + id + "@example.com"},
			"generated_at": time.Now().Format(time.RFC3339Nano),
			"request_id":   fmt.Sprintf("%x", rand.Uint64()),
		})
	}))
	t.Cleanup(s.Close)
	return s
}

// getJSON fetches url into v.
func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

type slosView struct {
	SLOs []struct {
		Route       string    `json:"route"`
		EvaluatedAt time.Time `json:"evaluated_at"`
		Avail       *sliView  `json:"availability"`
		Latency     *sliView  `json:"latency"`
	} `json:"slos"`
}

type sliView struct {
	Events          map[string]int64 `json:"events"`
	BudgetRemaining float64          `json:"budget_remaining"`
}

type migrationView struct {
	Backends []struct {
		Upstream  string  `json:"upstream"`
		Candidate bool    `json:"candidate"`
		Percent   float64 `json:"percent"`
	} `json:"backends"`
	Rollout *struct {
		Phase   string  `json:"phase"`
		Percent float64 `json:"percent"`
	} `json:"rollout"`
	Audit []struct {
		Actor  string `json:"actor"`
		Action string `json:"action"`
		Reason string `json:"reason"`
	} `json:"audit"`
}

// budgets formats every budget of s as the page shows it, keyed by
// route/sli: one decimal of a percent.
func budgets(s slosView) map[string]string {
	out := map[string]string{}
	for _, r := range s.SLOs {
		for sli, v := range map[string]*sliView{"availability": r.Avail, "latency": r.Latency} {
			if v != nil {
				out[r.Route+"/"+sli] = fmt.Sprintf("%.1f%%", v.BudgetRemaining*100)
			}
		}
	}
	return out
}

func (m migrationView) candidatePercent() float64 {
	for _, b := range m.Backends {
		if b.Candidate {
			return b.Percent
		}
	}
	return -1
}

// TestDashboardInChromium is issue 7's browser acceptance, in real
// headless Chromium against a real app: two teams, a route carved out of
// the monolith with shadow comparison and a rollout at its first step (10 %),
// an admin token. The page loads with no console error and no failed
// request; the routes and teams appear; the budgets shown are those of
// /api/v1/slos; clicking abort (and giving the token when asked) sets the
// candidate's share to 0 in the API. Screenshots of the overview and the
// migration are saved with t.ArtifactDir (go test -artifacts keeps them).
func TestDashboardInChromium(t *testing.T) {
	chromePath := chromium(t)
	const token = "s3cret-admin-token"
	mono := itemService(t, false, 0, 40)
	cand := itemService(t, true, 20, 0)
	home := itemService(t, false, 300, 0)
	dir := t.TempDir()
	cfg := fmt.Sprintf(`
listen: [{addr: "127.0.0.1:0"}]
admin: {addr: "127.0.0.1:0", token: %q}
shutdown: {drain_delay: 0s, grace: 5s}
access_log: {disabled: true}
store: {sqlite: %q, flush_interval: 1s}
teams:
  catalog: {}
  storefront: {}
upstreams:
  monolith: {endpoints: [%q]}
  items-svc: {endpoints: [%q]}
  web: {endpoints: [%q]}
routes:
  - name: items
    owner: catalog
    match: {path_prefix: /items/}
    slo: {availability: 99, latency: {under: 250ms, target: 95}}
    backends: [{upstream: monolith}, {upstream: items-svc, candidate: true}]
    sticky: {header: X-User}
    shadow:
      upstream: items-svc
      compare: {secondary_percent: 50, redact: [body.owner.email]}
    rollout: {steps: [10, 50, 100], every: 1h, min_requests: 50}
  - name: old-home
    owner: storefront
    match: {path: /old}
    redirect: {path: /, status: 308}
  - name: home
    owner: storefront
    match: {path_prefix: /}
    slo: {availability: 99.5}
    backends: [{upstream: web}]
`, token, filepath.Join(dir, "torii.db"), mono.Listener.Addr(), cand.Listener.Addr(), home.Listener.Addr())
	path := filepath.Join(dir, "torii.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := app.New(app.Options{ConfigPath: path, Logger: slog.New(slog.DiscardHandler), AccessLog: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Shutdown() })
	base, admin := "http://"+a.Addrs()[0].String(), "http://"+a.AdminAddr().String()

	// 50 requests a second to the migrating route from 300 users, 10 to
	// the home page.
	trafficCtx, stopTraffic := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { stopTraffic(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-trafficCtx.Done():
				return
			case <-tick.C:
			}
			url := fmt.Sprintf("%s/items/%d", base, i%40)
			if i%5 == 0 {
				url = base + "/"
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequestWithContext(trafficCtx, "GET", url, nil)
				req.Header.Set("X-User", fmt.Sprintf("user-%d", rand.IntN(300)))
				if resp, err := http.DefaultClient.Do(req); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}()
		}
	}()

	abortURL := admin + "/api/v1/migrations/items/abort"
	var challenged atomic.Int64
	br := newBrowser(t, chromePath, func(url string, status int) bool {
		if url == abortURL && status == http.StatusUnauthorized {
			challenged.Add(1) // the one 401 that asks for the admin token
			return true
		}
		return false
	})
	bctx, run, click, poll, screenshot, checkProblems := br.ctx, br.run, br.click, br.poll, br.screenshot, br.checkProblems

	start := time.Now()
	run("open the dashboard", chromedp.Navigate(admin+"/"), chromedp.WaitVisible(chromedp.CSS("#overview-teams table")))
	t.Logf("page loaded in %v", time.Since(start))

	// The teams and their routes.
	poll("teams and routes", `(() => {
		const t = document.getElementById('overview-teams').innerText;
		return ['Team catalog', 'Team storefront', 'items', 'home', 'old-home'].every(s => t.includes(s));
	})()`, 5*time.Second)

	// The budgets match /api/v1/slos once the SLO engine has evaluated
	// (every 10 s) with traffic in its windows.
	deadline := time.Now().Add(15 * time.Second)
	var want map[string]string
	for {
		var s slosView
		getJSON(t, admin+"/api/v1/slos", &s)
		ready := len(s.SLOs) == 2
		for _, r := range s.SLOs {
			ready = ready && !r.EvaluatedAt.IsZero() && r.Avail != nil && r.Avail.Events["5m"] > 0
		}
		want = budgets(s)
		if ready {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no SLO evaluation with traffic after 15 s: %+v", s)
		}
		time.Sleep(250 * time.Millisecond)
	}
	var got map[string]string
	for deadline := time.Now().Add(8 * time.Second); ; {
		got, err = chromedp.Run(bctx, chromedp.Evaluate[map[string]string](`Object.fromEntries(
			[...document.querySelectorAll('[data-budget]')].map(e => [e.dataset.route + '/' + e.dataset.sli, e.textContent]))`))
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) == fmt.Sprint(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("budgets on the page %v, want those of /api/v1/slos %v", got, want)
		}
		time.Sleep(250 * time.Millisecond)
		var s slosView // the engine may have evaluated again meanwhile
		getJSON(t, admin+"/api/v1/slos", &s)
		want = budgets(s)
	}
	t.Logf("budgets shown: %v", got)
	poll("request rates", `document.querySelector('tr[data-route="items"]').innerText.includes('req/s')`, 5*time.Second)
	screenshot("overview.png")

	// The migration view: rollout at its first step, the diff report with
	// body.price significant, and its redacted samples.
	var m migrationView
	getJSON(t, admin+"/api/v1/migrations/items", &m)
	if m.Rollout == nil || m.Rollout.Phase != "progressing" || m.candidatePercent() != 10 {
		t.Fatalf("before abort: rollout %+v, candidate at %v%%; want progressing at 10%%", m.Rollout, m.candidatePercent())
	}
	run("open the migrations", chromedp.Click(chromedp.CSS(`nav a[data-view="migrations"]`)))
	poll("rollout shown", `(() => {
		const p = document.querySelector('[data-phase="items"]');
		const s = document.querySelector('#migration-items [data-share="items-svc"]');
		return p && p.textContent.includes('progressing') && s && s.textContent === '10%';
	})()`, 5*time.Second)
	poll("significant diff", `!!document.querySelector('#migration-items tr.significant[data-field="body.price"]')`, 10*time.Second)
	poll("audit trail", `document.querySelector('#migration-items').innerText.includes('start')`, 5*time.Second)
	click("show samples", `#migration-items button[data-samples="body.price"]`)
	poll("samples", `(() => {
		const s = document.querySelector('#migration-items .samples');
		return s && s.querySelectorAll('tbody tr').length > 0 && s.innerText.includes('"42.50"');
	})()`, 5*time.Second)
	screenshot("migration.png")
	checkProblems("before the abort")

	// Abort: confirm, then give the admin token the API asks for.
	run("abort",
		chromedp.SendKeys(chromedp.ID("migration-items-reason"), "candidate prices are strings"),
		chromedp.Click(chromedp.CSS(`#migration-items button[data-action="abort"]`)),
		chromedp.WaitVisible(chromedp.ID("confirm-dialog")),
		chromedp.Click(chromedp.ID("confirm-ok")),
		chromedp.WaitVisible(chromedp.ID("token-input")),
		chromedp.SendKeys(chromedp.ID("token-input"), token),
		chromedp.Click(chromedp.ID("token-ok")),
	)
	for deadline := time.Now().Add(8 * time.Second); ; {
		getJSON(t, admin+"/api/v1/migrations/items", &m)
		if m.Rollout != nil && m.Rollout.Phase == "aborted" && m.candidatePercent() == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after abort: rollout %+v, candidate at %v%%; want aborted at 0%%", m.Rollout, m.candidatePercent())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(m.Audit) == 0 || m.Audit[0].Action != "abort" || m.Audit[0].Actor != "admin:dashboard" || m.Audit[0].Reason != "candidate prices are strings" {
		t.Errorf("audit trail %+v: want the abort by admin:dashboard with its reason first", m.Audit)
	}
	poll("abort shown", `(() => {
		const p = document.querySelector('[data-phase="items"]');
		const s = document.querySelector('#migration-items [data-share="items-svc"]');
		return p.textContent.includes('aborted') && s.textContent === '0%'
			&& document.getElementById('action-status').textContent.includes('abort done');
	})()`, 5*time.Second)
	stored, err := chromedp.Run(bctx, chromedp.Evaluate[string](`sessionStorage.getItem('torii.adminToken') || ''`))
	if err != nil || stored != token {
		t.Errorf("token in sessionStorage: %q (%v), want it kept for the tab", stored, err)
	}
	if n := challenged.Load(); n != 1 {
		t.Errorf("the abort was answered 401 %d times, want once (before the token was given)", n)
	}

	// The other views: every endpoint with its state, and the reload status.
	click("open the upstreams", `nav a[data-view="upstreams"]`)
	poll("upstreams", `(() => {
		const t = document.getElementById('upstreams-list').innerText;
		return ['monolith', 'items-svc', 'web', 'healthy', 'in rotation'].every(s => t.includes(s));
	})()`, 5*time.Second)
	screenshot("upstreams.png")
	click("open the alerts", `nav a[data-view="alerts"]`)
	poll("reload status", `document.getElementById('reload-status').innerText.includes('succeeded')`, 5*time.Second)
	screenshot("alerts.png")
	checkProblems("after the abort")
	t.Logf("whole browser test: %v", time.Since(start))
}

// browser is headless Chromium on its own profile, with nothing reaching
// out to the internet (go.md: the machine's network is closed), which
// records every console error, uncaught exception, browser log error,
// failed load and HTTP error response as a problem, except the responses
// allowed returns true for.
type browser struct {
	t   *testing.T
	ctx context.Context

	mu       sync.Mutex // guards problems
	problems []string
}

func newBrowser(t *testing.T, chromePath string, allowed func(url string, status int) bool) *browser {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromePath),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1366, 900),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	b := &browser{t: t}
	listener := func(ev any) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
				var args []string
				for _, a := range ev.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				b.problems = append(b.problems, "console."+string(ev.Type)+": "+strings.Join(args, " "))
			}
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			desc := d.Text
			if d.Exception != nil {
				desc += " " + d.Exception.Description
			}
			b.problems = append(b.problems, fmt.Sprintf("exception at %s:%d: %s", d.URL, d.LineNumber+1, desc))
		case *log.EventEntryAdded:
			e := ev.Entry
			// A refused request is also logged; its response is judged below.
			if e.Level == log.EntryLevelError && !(e.Source == log.EntrySourceNetwork && strings.Contains(e.Text, "status of")) {
				b.problems = append(b.problems, fmt.Sprintf("log %s: %s (%s)", e.Source, e.Text, e.URL))
			}
		case *network.EventLoadingFailed:
			b.problems = append(b.problems, fmt.Sprintf("loading failed: %s %s (canceled %v, blocked %q)", ev.Type, ev.ErrorText, ev.Canceled, ev.BlockedReason))
		case *network.EventResponseReceived:
			r := ev.Response
			if r.Status >= 400 && (allowed == nil || !allowed(r.URL, int(r.Status))) {
				b.problems = append(b.problems, fmt.Sprintf("HTTP %d for %s", r.Status, r.URL))
			}
		}
	}
	bctx, cancelBrowser := chromedp.NewContext(allocCtx, chromedp.WithListener(listener))
	t.Cleanup(cancelBrowser)
	b.ctx = bctx
	return b
}

// checkProblems reports and forgets the problems seen so far.
func (b *browser) checkProblems(when string) {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.problems {
		b.t.Errorf("%s: %s", when, p)
	}
	b.problems = nil
}

func (b *browser) run(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// click clicks what sel finds; the page re-renders its tables every few
// seconds, so a node found may be gone when the click lands: try again
// then.
func (b *browser) click(what, sel string) {
	b.t.Helper()
	var err error
	for range 5 {
		if err = chromedp.Do(b.ctx, chromedp.Click(chromedp.CSS(sel))); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.t.Fatalf("%s: %v", what, err)
}

// poll waits until js is true, failing with the page's text after timeout.
func (b *browser) poll(what, js string, timeout time.Duration) {
	b.t.Helper()
	if _, err := chromedp.Run(b.ctx, chromedp.Poll[bool](js, chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		text, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.querySelector('main').innerText`))
		b.t.Fatalf("%s: %v; the page shows:\n%s", what, err, text)
	}
}

// screenshot saves the whole page as a test artifact (go test -artifacts).
func (b *browser) screenshot(name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	p := filepath.Join(b.t.ArtifactDir(), name)
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot: %s", p)
}
