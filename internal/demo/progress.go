package demo

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"torii/internal/migrate"
	"torii/internal/slo"
)

// What the demo prints: the banner with the URLs, a progress report every
// few seconds, and the alerts the teams receive.

// console serializes the demo's output: the progress reporter and the
// alert sink write from different goroutines.
type console struct {
	start time.Time
	// mu guards w.
	mu sync.Mutex
	w  io.Writer
}

func (c *console) print(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	io.WriteString(c.w, s)
}

// elapsed is d as m:ss (h:mm:ss past an hour).
func elapsed(d time.Duration) string {
	s := int(d.Round(time.Second).Seconds())
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

// banner is what the demo prints once it serves.
func banner(a Addrs, curlToken string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "torii demo: a monolith, two services carved out of it, an Authority and torii in front, on loopback.\n\n")
	fmt.Fprintf(&b, "  gateway    %s\n", a.Gateway)
	fmt.Fprintf(&b, "  dashboard  %s/\n", a.Admin)
	fmt.Fprintf(&b, "  admin API  %s/api/v1/  (slos, migrations, routes, upstreams, config)\n", a.Admin)
	fmt.Fprintf(&b, "  authority  %s  (POST /token, GET /.well-known/jwks.json)\n", a.Authority)
	fmt.Fprintf(&b, "  upstreams  monolith %s · users %s · listing %s\n", a.Monolith, a.Users, a.Listing)
	fmt.Fprintf(&b, "  config     %s  (reloaded on save)\n\n", a.Config)
	fmt.Fprintf(&b, "Try (the token is alice's, valid for an hour; get more with curl -d sub=bob %s/token):\n\n", a.Authority)
	fmt.Fprintf(&b, "  curl -i -H 'Authorization: Bearer %s' %s/v1/listings/7\n", curlToken, a.Gateway)
	fmt.Fprintf(&b, "  curl -s %s/api/v1/migrations/listings\n\n", a.Admin)
	fmt.Fprintf(&b, "The listings route is mid-rollout to the listing service; watch it below or on the dashboard. Ctrl-C stops everything.\n\n")
	return b.String()
}

// report is one progress report: traffic since the start (and its rate
// over the last interval), each rollout, and each route's budget left.
func report(at time.Duration, st, prev stats, interval time.Duration, migs []migrate.Migration, slos []slo.RouteStatus, now time.Time) string {
	var b strings.Builder
	rate := float64(st.Sent-prev.Sent) / interval.Seconds()
	fmt.Fprintf(&b, "[%s] %d requests (%.1f/s)", elapsed(at), st.Sent, rate)
	if st.Sent > 0 {
		pct := func(n int64) string { return fmt.Sprintf("%.1f%%", float64(n)*100/float64(st.Sent)) }
		mix := []string{"2xx " + pct(st.OK)}
		for _, c := range []struct {
			name string
			n    int64
		}{{"401", st.Unauthorized}, {"404", st.NotFound}, {"4xx", st.OtherClient}, {"5xx", st.ServerError}, {"failed", st.Failed}} {
			if c.n > 0 {
				mix = append(mix, c.name+" "+pct(c.n))
			}
		}
		fmt.Fprintf(&b, ": %s", strings.Join(mix, " · "))
	}
	if st.Skipped > 0 {
		fmt.Fprintf(&b, " (%d skipped: too many in flight)", st.Skipped)
	}
	b.WriteString("\n")
	for _, m := range migs {
		if m.Rollout == nil {
			continue
		}
		fmt.Fprintf(&b, "    %-9s %s", m.Route, rolloutLine(*m.Rollout, now))
		if d := diffLine(m.Diff); d != "" {
			b.WriteString(" · " + d)
		}
		b.WriteString("\n")
	}
	var avail, lat []string
	evaluated := false
	for _, s := range slos {
		if !s.EvaluatedAt.IsZero() {
			evaluated = true
		}
		if s.Availability != nil {
			avail = append(avail, fmt.Sprintf("%s %s", s.Route, budget(s.Availability.BudgetRemaining)))
		}
		if s.Latency != nil {
			lat = append(lat, fmt.Sprintf("%s %s", s.Route, budget(s.Latency.BudgetRemaining)))
		}
	}
	switch {
	case !evaluated:
		fmt.Fprintf(&b, "    %-9s first SLO evaluation within %s\n", "budget", slo.EvalInterval)
	default:
		fmt.Fprintf(&b, "    %-9s availability: %s\n", "budget", strings.Join(avail, " · "))
		fmt.Fprintf(&b, "    %-9s latency:      %s\n", "", strings.Join(lat, " · "))
	}
	return b.String()
}

// budget is a budget left (1 untouched, negative overspent) in percent.
func budget(r float64) string {
	return fmt.Sprintf("%.1f%%", r*100)
}

// rolloutLine says where a rollout stands.
func rolloutLine(st migrate.Status, now time.Time) string {
	var b strings.Builder
	switch st.Phase {
	case migrate.PhaseProgressing:
		fmt.Fprintf(&b, "progressing: %g%% on %s (step %d of %d)", st.Percent, st.Candidate, st.Step+1, len(st.Steps))
		if st.Step+1 < len(st.Steps) && !st.NextStepAt.IsZero() {
			fmt.Fprintf(&b, ", next %g%%", st.Steps[st.Step+1])
			if d := st.NextStepAt.Sub(now); d > 0 {
				fmt.Fprintf(&b, " in %s", d.Round(time.Second))
			}
		}
	case migrate.PhaseRolledBack:
		fmt.Fprintf(&b, "rolled back to 0%%: %s", st.Reason)
	default:
		fmt.Fprintf(&b, "%s: %g%% on %s", strings.ReplaceAll(st.Phase, "_", " "), st.Percent, st.Candidate)
	}
	if st.Frozen {
		fmt.Fprintf(&b, " · frozen: %s", st.FrozenReason)
	}
	if st.Waiting != "" {
		fmt.Fprintf(&b, " · %s", st.Waiting)
		return b.String()
	}
	for _, g := range st.Gates {
		if g.Name == "availability_burn_rate" {
			fmt.Fprintf(&b, " · burn %.1f (gate %g)", g.Value, g.Limit)
		}
	}
	return b.String()
}

// diffLine names the significant fields of a diff report, the most
// frequent first, at most three, with how often each differs.
func diffLine(rep *migrate.Report) string {
	if rep == nil || rep.Compared == 0 {
		return "diffs: none compared yet"
	}
	worst := map[string]float64{} // field -> its highest diff percent on any endpoint
	for _, ep := range rep.Endpoints {
		for _, f := range ep.Fields {
			if f.Significant {
				worst[f.Field] = max(worst[f.Field], f.DiffPercent)
			}
		}
	}
	if len(worst) == 0 {
		return fmt.Sprintf("diffs: none significant in %d compared", rep.Compared)
	}
	fields := slices.SortedFunc(maps.Keys(worst), func(a, b string) int {
		return cmp.Or(cmp.Compare(worst[b], worst[a]), cmp.Compare(a, b))
	})
	var parts []string
	for _, f := range fields[:min(3, len(fields))] {
		parts = append(parts, fmt.Sprintf("%s %.3g%%", f, worst[f]))
	}
	more := ""
	if n := len(fields) - 3; n > 0 {
		more = fmt.Sprintf(" (+%d more)", n)
	}
	return fmt.Sprintf("diffs: %s%s in %d compared", strings.Join(parts, ", "), more, rep.Compared)
}

// alertSink stands in for the teams' chat: it receives torii's webhook
// alerts at /<team> and prints them.
type alertSink struct{ out *console }

func (s alertSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var p struct {
		Status      string            `json:"status"`
		Team        string            `json:"team"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
	}
	if r.Method != http.MethodPost {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&p); err != nil {
		http.Error(w, "bad payload: "+err.Error(), http.StatusBadRequest)
		return
	}
	team := strings.TrimPrefix(r.URL.Path, "/")
	what := p.Labels["alertname"]
	if a := p.Labels["action"]; a != "" {
		what += " " + a
	} else {
		what += " " + p.Status
	}
	s.out.print(fmt.Sprintf("[%s] alert to team %s: %s (%s): %s\n",
		elapsed(time.Since(s.out.start)), team, what, p.Labels["severity"], p.Annotations["summary"]))
	w.WriteHeader(http.StatusNoContent)
}
