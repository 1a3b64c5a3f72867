package dashboard_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"torii/internal/demo"
)

// TestDemoDashboardInChromium opens the dashboard of `torii demo` itself
// (issue 7): no console error and no failed request; the demo's teams and
// routes appear; the listings route's migration shows its rollout and its
// diff at the changed price; screenshots of both pages are kept as test
// artifacts (go test -artifacts).
func TestDemoDashboardInChromium(t *testing.T) {
	chromePath := chromium(t)
	ctx, stop := context.WithCancel(context.Background())
	ready := make(chan demo.Addrs, 1)
	done := make(chan error, 1)
	go func() {
		done <- demo.Run(ctx, demo.Options{
			Listen: "127.0.0.1:0", Admin: "127.0.0.1:0", Rate: 60, Fast: true,
			Out: io.Discard, Logger: slog.New(slog.DiscardHandler), Ready: func(a demo.Addrs) { ready <- a },
		})
	}()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("demo: %v", err)
		}
	})
	var addrs demo.Addrs
	select {
	case addrs = <-ready:
	case err := <-done:
		t.Fatalf("demo stopped: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("the demo did not start within 20 s")
	}

	br := newBrowser(t, chromePath, nil)
	br.run("open the dashboard", chromedp.Navigate(addrs.Admin+"/"), chromedp.WaitVisible(chromedp.CSS("#overview-teams table")))
	br.poll("the demo's teams and routes", `(() => {
		const t = document.getElementById('overview-teams').innerText;
		return ['Team edge', 'Team users', 'Team listing', 'home', 'items', 'users', 'listings'].every(s => t.includes(s));
	})()`, 10*time.Second)
	// The screenshot once the page has rates (two polls) and the SLO
	// engine has evaluated (every 10 s) with the listing service's errors.
	for deadline := time.Now().Add(20 * time.Second); ; {
		var s slosView
		getJSON(t, addrs.Admin+"/api/v1/slos", &s)
		if len(s.SLOs) > 0 && !s.SLOs[0].EvaluatedAt.IsZero() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no SLO evaluation within 20 s")
		}
		time.Sleep(250 * time.Millisecond)
	}
	time.Sleep(4 * time.Second) // the page polls every 3 s
	br.poll("rates", `document.querySelector('tr[data-route="listings"]').innerText.includes('req/s')`, 5*time.Second)
	// The budgets shown are /api/v1/slos's (read again if the engine
	// evaluated in between).
	for deadline := time.Now().Add(8 * time.Second); ; {
		var s slosView
		getJSON(t, addrs.Admin+"/api/v1/slos", &s)
		want := budgets(s)
		got, err := chromedp.Run(br.ctx, chromedp.Evaluate[map[string]string](`Object.fromEntries(
			[...document.querySelectorAll('[data-budget]')].map(e => [e.dataset.route + '/' + e.dataset.sli, e.textContent]))`))
		if err != nil {
			t.Fatal(err)
		}
		if len(want) == 7 && fmt.Sprint(got) == fmt.Sprint(want) {
			t.Logf("budgets shown: %v", got)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("budgets on the page %v, want those of /api/v1/slos %v", got, want)
		}
		time.Sleep(250 * time.Millisecond)
	}
	br.screenshot("demo-overview.png")

	br.click("open the migrations", `nav a[data-view="migrations"]`)
	br.poll("the listings rollout", `(() => {
		const p = document.querySelector('[data-phase="listings"]');
		return p && p.textContent.length > 0;
	})()`, 10*time.Second)
	br.poll("the price diff", `!!document.querySelector('#migration-listings tr.significant[data-field="body.listing.price"]')`, 20*time.Second)
	br.screenshot("demo-migration.png")
	br.checkProblems("the demo's dashboard")
}
