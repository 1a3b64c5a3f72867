package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"torii/internal/config"
)

// t0 is the fixed clock of tests that check timestamps.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// receiver is a real HTTP receiver that answers each request with the
// status its respond function picks for that attempt (1-based) and
// records the bodies it accepted.
type receiver struct {
	srv      *httptest.Server
	attempts atomic.Int64
	// respond returns the status and headers for attempt n; nil: 200.
	respond func(n int64, h http.Header) int

	mu     sync.Mutex // guards bodies and paths
	bodies [][]byte   // accepted (2xx) request bodies, in order
	paths  []string   // request URIs of every attempt
}

func newReceiver(t *testing.T, respond func(n int64, h http.Header) int) *receiver {
	t.Helper()
	r := &receiver{respond: respond}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		n := r.attempts.Add(1)
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.paths = append(r.paths, req.URL.RequestURI())
		r.mu.Unlock()
		if req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/json" {
			t.Errorf("got %s with Content-Type %q, want POST of application/json", req.Method, req.Header.Get("Content-Type"))
		}
		status := http.StatusOK
		if r.respond != nil {
			status = r.respond(n, w.Header())
		}
		if status/100 == 2 {
			r.mu.Lock()
			r.bodies = append(r.bodies, body)
			r.mu.Unlock()
		}
		w.WriteHeader(status)
		fmt.Fprintf(w, "status %d\n", status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// failFirst answers 503 to the first n attempts, then 200.
func failFirst(n int64) func(int64, http.Header) int {
	return func(a int64, _ http.Header) int {
		if a <= n {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	}
}

// accepted returns the bodies accepted so far.
func (r *receiver) accepted() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.bodies)
}

// alerts decodes every accepted body as an Alertmanager v2 array.
func (r *receiver) alerts(t *testing.T) []postableAlert {
	t.Helper()
	var all []postableAlert
	for _, b := range r.accepted() {
		var batch []postableAlert
		if err := json.Unmarshal(b, &batch); err != nil {
			t.Fatalf("decode Alertmanager body %s: %v", b, err)
		}
		all = append(all, batch...)
	}
	return all
}

// harness is a Dispatcher under test with its registry and log.
type harness struct {
	d   *Dispatcher
	reg *prometheus.Registry
	log *syncBuffer

	mu       sync.Mutex      // guards backoffs and sleeps
	backoffs []int           // attempts Backoff was asked about
	sleeps   []time.Duration // waits Sleep was asked for
}

// newHarness builds a Dispatcher with tiny waits; edit tweaks its options.
func newHarness(t *testing.T, edit func(*Options)) *harness {
	t.Helper()
	h := &harness{reg: prometheus.NewRegistry(), log: &syncBuffer{}}
	opts := Options{
		Logger:     slog.New(slog.NewTextHandler(h.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Registerer: h.reg,
		Backoff: func(attempt int) time.Duration {
			h.mu.Lock()
			h.backoffs = append(h.backoffs, attempt)
			h.mu.Unlock()
			return time.Millisecond
		},
		Sleep: func(ctx context.Context, d time.Duration) {
			h.mu.Lock()
			h.sleeps = append(h.sleeps, d)
			h.mu.Unlock()
			sleep(ctx, time.Millisecond) // whatever was asked: tests do not wait
		},
		FinalTimeout: time.Second,
	}
	if edit != nil {
		edit(&opts)
	}
	d, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h.d = d
	return h
}

// run runs the dispatcher until the test ends, and returns a function
// that stops it and waits for Run to return.
func (h *harness) run(t *testing.T) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		h.d.Run(ctx)
		close(done)
	}()
	stop = func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return 5s after its context ended")
		}
	}
	t.Cleanup(stop)
	return stop
}

// counter returns torii_alert_notifications_total for kind and result.
func (h *harness) counter(t *testing.T, kind, result string) float64 {
	t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "torii_alert_notifications_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["channel_type"] == kind && labels["result"] == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no torii_alert_notifications_total{channel_type=%q,result=%q}", kind, result)
	return 0
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor polls cond until it holds or 5s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// teams returns a config with one team, "items", owning the channels.
func teams(chans ...config.AlertChannel) map[string]*config.Team {
	return map[string]*config.Team{"items": {Alerts: chans}}
}

// firing and resolved build the notifications of alert key.
func firing(key string) Notification {
	return Notification{
		Key:          key,
		Team:         "items",
		Firing:       true,
		StartsAt:     t0.Add(-time.Minute),
		Labels:       map[string]string{"alertname": "SLOBurnRate", "route": "items", "severity": "page", "key": key},
		Annotations:  map[string]string{"summary": "items burns its error budget 14.4x too fast"},
		GeneratorURL: "http://127.0.0.1:9901/api/v1/slos",
	}
}

func resolved(key string) Notification {
	n := firing(key)
	n.Firing = false
	n.EndsAt = t0.Add(10 * time.Minute)
	return n
}

// TestAlertmanagerRetriesThenDelivers is acceptance 5 of issue #5: a
// receiver that fails at first gets the alert after retries, and the
// resolved notification after recovery.
func TestAlertmanagerRetriesThenDelivers(t *testing.T) {
	am := newReceiver(t, failFirst(3))
	h := newHarness(t, func(o *Options) {
		o.Now = func() time.Time { return t0 }
		o.ResendInterval = time.Hour // no re-send during the test
	})
	h.d.SetTeams(teams(config.AlertChannel{Alertmanager: am.srv.URL}))
	h.run(t)

	h.d.Notify(t.Context(), firing("items/availability/page"))
	waitFor(t, "the firing alert", func() bool { return len(am.accepted()) == 1 })
	if got := am.attempts.Load(); got != 4 {
		t.Errorf("got %d attempts, want 4 (3 refused, then accepted)", got)
	}
	h.mu.Lock()
	backoffs := slices.Clone(h.backoffs)
	h.mu.Unlock()
	if want := []int{1, 2, 3}; !slices.Equal(backoffs, want) {
		t.Errorf("got backoff attempts %v, want %v", backoffs, want)
	}

	h.d.Notify(t.Context(), resolved("items/availability/page"))
	waitFor(t, "the resolved alert", func() bool { return len(am.accepted()) == 2 })

	got := am.alerts(t)
	want := []postableAlert{
		{
			Labels:       firing("").Labels,
			Annotations:  firing("").Annotations,
			StartsAt:     t0.Add(-time.Minute),
			EndsAt:       t0.Add(3 * time.Hour), // 3 re-send intervals ahead
			GeneratorURL: "http://127.0.0.1:9901/api/v1/slos",
		},
		{
			Labels:       firing("").Labels,
			Annotations:  firing("").Annotations,
			StartsAt:     t0.Add(-time.Minute),
			EndsAt:       t0.Add(10 * time.Minute), // resolution time
			GeneratorURL: "http://127.0.0.1:9901/api/v1/slos",
		},
	}
	want[0].Labels["key"], want[1].Labels["key"] = "items/availability/page", "items/availability/page"
	if len(got) != len(want) {
		t.Fatalf("got %d alerts, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if !maps(g.Labels, w.Labels) || !maps(g.Annotations, w.Annotations) || !g.StartsAt.Equal(w.StartsAt) ||
			!g.EndsAt.Equal(w.EndsAt) || g.GeneratorURL != w.GeneratorURL {
			t.Errorf("alert %d: got %+v, want %+v", i, g, w)
		}
	}
	am.mu.Lock()
	path := am.paths[0]
	am.mu.Unlock()
	if path != "/api/v2/alerts" {
		t.Errorf("got path %q, want /api/v2/alerts", path)
	}
	// The raw JSON uses the names of the Alertmanager OpenAPI spec.
	raw := string(am.accepted()[0])
	for _, field := range []string{`"labels":`, `"annotations":`, `"startsAt":"2025-03-01T11:59:00Z"`, `"endsAt":"2025-03-01T15:00:00Z"`, `"generatorURL":`} {
		if !strings.Contains(raw, field) {
			t.Errorf("got body %s, want it to contain %s", raw, field)
		}
	}
	if !strings.HasPrefix(raw, "[") {
		t.Errorf("got body %s, want a JSON array", raw)
	}
	for _, c := range []struct {
		result string
		want   float64
	}{{"sent", 2}, {"retry", 3}, {"dropped", 0}} {
		if got := h.counter(t, "alertmanager", c.result); got != c.want {
			t.Errorf("result %q: got %g notifications, want %g", c.result, got, c.want)
		}
	}
	if got := h.d.Pending(); got != 0 {
		t.Errorf("got Pending %d, want 0", got)
	}
}

func maps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestWebhookPayload checks the webhook body, field by field, for both
// states, and that the webhook URL's path and query are kept for the
// request and kept out of the log.
func TestWebhookPayload(t *testing.T) {
	hook := newReceiver(t, failFirst(1))
	h := newHarness(t, func(o *Options) { o.Now = func() time.Time { return t0 } })
	url := hook.srv.URL + "/hooks/torii?token=s3cret-token"
	h.d.SetTeams(teams(config.AlertChannel{Webhook: url}))
	h.run(t)

	h.d.Notify(t.Context(), firing("items/latency/ticket"))
	waitFor(t, "the firing webhook", func() bool { return len(hook.accepted()) == 1 })
	h.d.Notify(t.Context(), resolved("items/latency/ticket"))
	waitFor(t, "the resolved webhook", func() bool { return len(hook.accepted()) == 2 })

	labels := map[string]any{"alertname": "SLOBurnRate", "route": "items", "severity": "page", "key": "items/latency/ticket"}
	annotations := map[string]any{"summary": "items burns its error budget 14.4x too fast"}
	tests := []struct {
		name string
		want map[string]any
	}{
		{"firing", map[string]any{
			"version": "1", "status": "firing", "key": "items/latency/ticket", "team": "items",
			"labels": labels, "annotations": annotations,
			"startsAt": "2025-03-01T11:59:00Z", "generatorURL": "http://127.0.0.1:9901/api/v1/slos",
		}},
		{"resolved", map[string]any{
			"version": "1", "status": "resolved", "key": "items/latency/ticket", "team": "items",
			"labels": labels, "annotations": annotations,
			"startsAt": "2025-03-01T11:59:00Z", "endsAt": "2025-03-01T12:10:00Z",
			"generatorURL": "http://127.0.0.1:9901/api/v1/slos",
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got map[string]any
			if err := json.Unmarshal(hook.accepted()[i], &got); err != nil {
				t.Fatalf("decode: %v", err)
			}
			gotJSON, _ := json.Marshal(got)
			wantJSON, _ := json.Marshal(tt.want)
			if !bytes.Equal(gotJSON, wantJSON) {
				t.Errorf("got %s, want %s", gotJSON, wantJSON)
			}
		})
	}
	hook.mu.Lock()
	path := hook.paths[0]
	hook.mu.Unlock()
	if path != "/hooks/torii?token=s3cret-token" {
		t.Errorf("got request URI %q, want the configured path and query", path)
	}
	logs := h.log.String()
	if !strings.Contains(logs, "alert delivery failed") {
		t.Errorf("got log %q, want the failed first attempt logged", logs)
	}
	if strings.Contains(logs, "s3cret") || strings.Contains(logs, "/hooks/torii") {
		t.Errorf("got log %q, want no webhook path or query in it", logs)
	}
}

// TestNoURLInNetworkErrors: a network error's text (a *url.Error) names
// the whole URL; the log must not.
func TestNoURLInNetworkErrors(t *testing.T) {
	hook := newReceiver(t, nil)
	url := hook.srv.URL + "/hook?token=s3cret-token"
	hook.srv.Close() // connection refused from now on
	h := newHarness(t, nil)
	h.d.SetTeams(teams(config.AlertChannel{Webhook: url}))
	h.run(t)
	h.d.Notify(t.Context(), firing("items/availability/page"))
	waitFor(t, "a retry", func() bool { return h.counter(t, "webhook", "retry") >= 2 })
	logs := h.log.String()
	if !strings.Contains(logs, hook.srv.Listener.Addr().String()) {
		t.Errorf("got log %q, want the receiver's host in it", logs)
	}
	if strings.Contains(logs, "s3cret") {
		t.Errorf("got log %q, want no token in it", logs)
	}
}

// TestNewerStateReplacesOlder: while a receiver is down, only the newest
// state of an alert waits; "firing" is never delivered after "resolved".
func TestNewerStateReplacesOlder(t *testing.T) {
	t.Run("queued before Run", func(t *testing.T) {
		am := newReceiver(t, nil)
		h := newHarness(t, func(o *Options) { o.ResendInterval = time.Hour })
		h.d.SetTeams(teams(config.AlertChannel{Alertmanager: am.srv.URL}))
		h.d.Notify(t.Context(), firing("a"))
		h.d.Notify(t.Context(), firing("b"))
		h.d.Notify(t.Context(), resolved("a"))
		if got := h.d.Pending(); got != 2 {
			t.Errorf("got Pending %d, want 2 (a's resolved replaced its firing)", got)
		}
		h.run(t)
		waitFor(t, "delivery", func() bool { return h.d.Pending() == 0 && len(am.accepted()) > 0 })
		var got []string
		for _, a := range am.alerts(t) {
			got = append(got, fmt.Sprintf("%s:%v", a.Labels["key"], a.EndsAt.Equal(t0.Add(10*time.Minute))))
		}
		// a keeps its place in the queue, in its resolved state.
		if want := []string{"a:true", "b:false"}; !slices.Equal(got, want) {
			t.Errorf("got %v (key:resolved), want %v", got, want)
		}
	})
	t.Run("newer state while an attempt fails", func(t *testing.T) {
		var h *harness
		hook := newReceiver(t, func(n int64, _ http.Header) int {
			switch {
			case n == 2:
				// The alert resolves while its firing state is
				// being refused.
				h.d.Notify(context.Background(), resolved("a"))
				return http.StatusBadGateway
			case n < 2:
				return http.StatusBadGateway
			}
			return http.StatusOK
		})
		h = newHarness(t, nil)
		h.d.SetTeams(teams(config.AlertChannel{Webhook: hook.srv.URL}))
		h.run(t)
		h.d.Notify(t.Context(), firing("a"))
		waitFor(t, "delivery", func() bool { return h.d.Pending() == 0 && len(hook.accepted()) > 0 })
		if got := webhookStatuses(t, hook); !slices.Equal(got, []string{"resolved"}) {
			t.Errorf("got deliveries %v, want [resolved]", got)
		}
	})
	t.Run("receiver recovers mid-way", func(t *testing.T) {
		// Whether the firing state gets through before the resolved
		// one depends on timing; that it never follows it does not.
		for range 20 {
			var up atomic.Bool
			hook := newReceiver(t, func(int64, http.Header) int {
				if up.Load() {
					return http.StatusOK
				}
				return http.StatusBadGateway
			})
			h := newHarness(t, nil)
			h.d.SetTeams(teams(config.AlertChannel{Webhook: hook.srv.URL}))
			stop := h.run(t)
			h.d.Notify(t.Context(), firing("a"))
			waitFor(t, "a failed attempt", func() bool { return hook.attempts.Load() >= 1 })
			up.Store(true)
			h.d.Notify(t.Context(), resolved("a"))
			waitFor(t, "delivery", func() bool {
				got := webhookStatuses(t, hook)
				return h.d.Pending() == 0 && len(got) > 0 && got[len(got)-1] == "resolved"
			})
			stop()
			got := webhookStatuses(t, hook)
			if !slices.Equal(got, []string{"resolved"}) && !slices.Equal(got, []string{"firing", "resolved"}) {
				t.Fatalf("got deliveries %v, want [resolved] or [firing resolved]", got)
			}
		}
	})
}

// webhookStatuses returns the status of every webhook body r accepted.
func webhookStatuses(t *testing.T, r *receiver) []string {
	t.Helper()
	var statuses []string
	for _, b := range r.accepted() {
		var p webhookPayload
		if err := json.Unmarshal(b, &p); err != nil {
			t.Fatalf("decode webhook body %s: %v", b, err)
		}
		statuses = append(statuses, p.Status)
	}
	return statuses
}

// TestPermanentFailureDropped: a 4xx other than 429 is not retried, and a
// refused firing alert is not re-sent.
func TestPermanentFailureDropped(t *testing.T) {
	am := newReceiver(t, func(int64, http.Header) int { return http.StatusBadRequest })
	h := newHarness(t, func(o *Options) { o.ResendInterval = 5 * time.Millisecond })
	h.d.SetTeams(teams(config.AlertChannel{Alertmanager: am.srv.URL}))
	h.run(t)
	h.d.Notify(t.Context(), firing("a"))
	waitFor(t, "the drop", func() bool { return h.counter(t, "alertmanager", "dropped") == 1 })
	time.Sleep(50 * time.Millisecond) // ten re-send intervals
	if got := am.attempts.Load(); got != 1 {
		t.Errorf("got %d attempts, want 1", got)
	}
	if got := h.counter(t, "alertmanager", "retry"); got != 0 {
		t.Errorf("got %g retries, want 0", got)
	}
	if got := h.d.Pending(); got != 0 {
		t.Errorf("got Pending %d, want 0", got)
	}
	if logs := h.log.String(); !strings.Contains(logs, "status 400") {
		t.Errorf("got log %q, want the 400 in it", logs)
	}
}

// TestRetryAfter: a 429 or 503 with Retry-After waits what the receiver
// asked (capped), instead of the backoff.
func TestRetryAfter(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		retryAfter string
		want       time.Duration
	}{
		{"seconds on 429", http.StatusTooManyRequests, "7", 7 * time.Second},
		{"HTTP-date on 503", http.StatusServiceUnavailable, t0.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second},
		{"capped", http.StatusTooManyRequests, "86400", 5 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hook := newReceiver(t, func(n int64, hdr http.Header) int {
				if n == 1 {
					hdr.Set("Retry-After", tt.retryAfter)
					return tt.status
				}
				return http.StatusOK
			})
			h := newHarness(t, func(o *Options) { o.Now = func() time.Time { return t0 } })
			h.d.SetTeams(teams(config.AlertChannel{Webhook: hook.srv.URL}))
			h.run(t)
			h.d.Notify(t.Context(), firing("a"))
			waitFor(t, "delivery", func() bool { return len(hook.accepted()) == 1 })
			h.mu.Lock()
			defer h.mu.Unlock()
			if !slices.Equal(h.sleeps, []time.Duration{tt.want}) {
				t.Errorf("got waits %v, want [%v]", h.sleeps, tt.want)
			}
			if len(h.backoffs) != 0 {
				t.Errorf("got backoff asked for %v, want not asked", h.backoffs)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	tests := []struct {
		name, in string
		want     time.Duration
	}{
		{"absent", "", 0},
		{"seconds", "120", 2 * time.Minute},
		{"spaces", " 3 ", 3 * time.Second},
		{"zero", "0", 0},
		{"negative", "-5", 0},
		{"huge seconds cap at a day", "99999999999999999", 24 * time.Hour},
		{"date ahead", "Sat, 01 Mar 2025 12:01:00 GMT", time.Minute},
		{"date past", "Sat, 01 Mar 2025 11:00:00 GMT", 0},
		{"garbage", "soon", 0},
	}
	for _, tt := range tests {
		if got := retryAfter(tt.in, t0); got != tt.want {
			t.Errorf("%s: retryAfter(%q) = %v, want %v", tt.name, tt.in, got, tt.want)
		}
	}
}

// TestChannelsIndependent: a team's Alertmanager is down; its webhook
// still receives, and another team is unaffected.
func TestChannelsIndependent(t *testing.T) {
	down := newReceiver(t, func(int64, http.Header) int { return http.StatusServiceUnavailable })
	hook := newReceiver(t, nil)
	other := newReceiver(t, nil)
	h := newHarness(t, nil)
	h.d.SetTeams(map[string]*config.Team{
		"items":    {Alerts: []config.AlertChannel{{Alertmanager: down.srv.URL}, {Webhook: hook.srv.URL}}},
		"checkout": {Alerts: []config.AlertChannel{{Webhook: other.srv.URL}}},
	})
	h.run(t)
	h.d.Notify(t.Context(), firing("items/availability/page"))
	c := firing("checkout/availability/page")
	c.Team = "checkout"
	h.d.Notify(t.Context(), c)
	waitFor(t, "the webhooks", func() bool { return len(hook.accepted()) == 1 && len(other.accepted()) == 1 })
	waitFor(t, "Alertmanager retries", func() bool { return down.attempts.Load() >= 3 })
	if got := h.d.Pending(); got != 1 {
		t.Errorf("got Pending %d, want 1 (the alert for the down Alertmanager)", got)
	}
	var p webhookPayload
	if err := json.Unmarshal(other.accepted()[0], &p); err != nil || p.Team != "checkout" {
		t.Errorf("got %s (%v), want the checkout alert", other.accepted()[0], err)
	}
}

// TestResendFiring: Alertmanager channels re-send firing alerts each
// interval with a fresh endsAt, and stop once the alert resolves.
func TestResendFiring(t *testing.T) {
	am := newReceiver(t, nil)
	hook := newReceiver(t, nil)
	var now atomic.Int64
	now.Store(t0.UnixNano())
	h := newHarness(t, func(o *Options) {
		o.ResendInterval = 10 * time.Millisecond
		o.Now = func() time.Time { return time.Unix(0, now.Add(int64(time.Second))).UTC() }
	})
	h.d.SetTeams(teams(config.AlertChannel{Alertmanager: am.srv.URL}, config.AlertChannel{Webhook: hook.srv.URL}))
	h.run(t)
	h.d.Notify(t.Context(), firing("a"))
	waitFor(t, "three sends", func() bool { return len(am.accepted()) >= 3 })
	h.d.Notify(t.Context(), resolved("a"))
	waitFor(t, "the resolved alert", func() bool {
		got := am.alerts(t)
		return got[len(got)-1].EndsAt.Equal(t0.Add(10 * time.Minute))
	})
	time.Sleep(50 * time.Millisecond) // five more intervals: no re-send now
	got := am.alerts(t)
	last := got[len(got)-1]
	if !last.EndsAt.Equal(t0.Add(10 * time.Minute)) {
		t.Errorf("got last alert ending %v, want the resolved one (ending %v): firing re-sent after resolved", last.EndsAt, t0.Add(10*time.Minute))
	}
	var prev time.Time
	for i, a := range got[:len(got)-1] {
		if !a.EndsAt.After(prev) {
			t.Errorf("send %d: got endsAt %v, want later than the previous send's %v", i, a.EndsAt, prev)
		}
		prev = a.EndsAt
	}
	if n := len(hook.accepted()); n != 2 {
		t.Errorf("got %d webhook deliveries, want 2 (webhooks get changes only)", n)
	}
}

// TestRunStops: Run returns when its context ends, after one bounded
// attempt to deliver what is queued.
func TestRunStops(t *testing.T) {
	t.Run("final attempt delivers", func(t *testing.T) {
		hook := newReceiver(t, nil)
		h := newHarness(t, nil)
		h.d.SetTeams(teams(config.AlertChannel{Webhook: hook.srv.URL}))
		h.d.Notify(t.Context(), firing("a"))
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		h.d.Run(ctx) // returns: the context has ended
		if n := len(hook.accepted()); n != 1 {
			t.Errorf("got %d deliveries, want 1 from the final attempt", n)
		}
	})
	t.Run("receiver down", func(t *testing.T) {
		block := make(chan struct{})
		slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select { // hang until the test ends or the client gives up
			case <-block:
			case <-r.Context().Done():
			}
		}))
		t.Cleanup(slow.Close)
		t.Cleanup(func() { close(block) })
		down := newReceiver(t, func(int64, http.Header) int { return http.StatusServiceUnavailable })
		h := newHarness(t, func(o *Options) { o.FinalTimeout = 100 * time.Millisecond })
		h.d.SetTeams(teams(config.AlertChannel{Webhook: slow.URL}, config.AlertChannel{Alertmanager: down.srv.URL}))
		stop := h.run(t)
		h.d.Notify(t.Context(), firing("a"))
		waitFor(t, "retries", func() bool { return down.attempts.Load() >= 2 })
		start := time.Now()
		stop()
		if el := time.Since(start); el > 2*time.Second {
			t.Errorf("Run took %v to return, want about FinalTimeout (100ms)", el)
		}
		if got := h.counter(t, "webhook", "dropped") + h.counter(t, "alertmanager", "dropped"); got != 2 {
			t.Errorf("got %g dropped at shutdown, want 2", got)
		}
		if got := h.d.Pending(); got != 0 {
			t.Errorf("got Pending %d after Run, want 0", got)
		}
	})
	t.Run("second call", func(t *testing.T) {
		h := newHarness(t, nil)
		stop := h.run(t)
		waitFor(t, "the first Run", func() bool {
			h.d.mu.Lock()
			defer h.d.mu.Unlock()
			return h.d.runCtx != nil
		})
		done := make(chan struct{})
		go func() { h.d.Run(t.Context()); close(done) }()
		select {
		case <-done:
		case <-time.After(time.Second):
			t.Error("a second Run did not return at once")
		}
		stop()
	})
}

// TestSetTeams: a reload keeps a channel's queue when the channel stays,
// drops it when the channel goes, and starts workers for new channels.
func TestSetTeams(t *testing.T) {
	var up atomic.Bool
	kept := newReceiver(t, func(int64, http.Header) int {
		if up.Load() {
			return http.StatusOK
		}
		return http.StatusServiceUnavailable
	})
	gone := newReceiver(t, func(int64, http.Header) int { return http.StatusServiceUnavailable })
	added := newReceiver(t, nil)
	h := newHarness(t, nil)
	h.d.SetTeams(teams(config.AlertChannel{Webhook: kept.srv.URL}, config.AlertChannel{Webhook: gone.srv.URL}))
	h.run(t)
	h.d.Notify(t.Context(), firing("a"))
	waitFor(t, "failures", func() bool { return kept.attempts.Load() >= 2 && gone.attempts.Load() >= 2 })

	h.d.SetTeams(teams(config.AlertChannel{Webhook: kept.srv.URL}, config.AlertChannel{Webhook: added.srv.URL}))
	if got := h.d.Pending(); got != 1 {
		t.Errorf("got Pending %d after reload, want 1 (kept channel's alert)", got)
	}
	// The removed channel's alert may be in flight; it is counted when
	// that attempt fails.
	waitFor(t, "the removed channel's alert dropped", func() bool { return h.counter(t, "webhook", "dropped") == 1 })
	up.Store(true)
	h.d.Notify(t.Context(), resolved("a"))
	waitFor(t, "deliveries", func() bool {
		got := webhookStatuses(t, kept)
		return len(got) > 0 && got[len(got)-1] == "resolved" && len(added.accepted()) == 1
	})
	n := gone.attempts.Load()
	time.Sleep(20 * time.Millisecond)
	if got := gone.attempts.Load(); got != n {
		t.Errorf("removed channel got %d more attempts, want none", got-n)
	}
}

// TestQueueBound: a full queue drops its oldest notification.
func TestQueueBound(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.QueueSize = 2 })
	h.d.SetTeams(teams(config.AlertChannel{Webhook: "http://127.0.0.1:9/hook"}))
	for _, k := range []string{"a", "b", "c"} {
		h.d.Notify(t.Context(), firing(k))
	}
	h.d.Notify(t.Context(), resolved("c")) // replaces, does not grow
	if got := h.d.Pending(); got != 2 {
		t.Errorf("got Pending %d, want 2", got)
	}
	if got := h.counter(t, "webhook", "dropped"); got != 1 {
		t.Errorf("got %g dropped, want 1", got)
	}
	batch := h.d.channels[channelID{kindWebhook, "http://127.0.0.1:9/hook"}].take(10)
	var keys []string
	for _, n := range batch {
		keys = append(keys, n.Key)
	}
	if want := []string{"b", "c"}; !slices.Equal(keys, want) {
		t.Errorf("got queue %v, want %v", keys, want)
	}
}

// TestAlertmanagerURL: the API path is appended to the base URL, keeping a
// route prefix.
func TestAlertmanagerURL(t *testing.T) {
	tests := []struct{ base, want string }{
		{"http://am:9093", "http://am:9093/api/v2/alerts"},
		{"http://am:9093/", "http://am:9093/api/v2/alerts"},
		{"https://am.example/alertmanager/", "https://am.example/alertmanager/api/v2/alerts"},
	}
	for _, tt := range tests {
		ch, err := newChannel(channelID{kindAlertmanager, tt.base})
		if err != nil {
			t.Errorf("%s: %v", tt.base, err)
			continue
		}
		if ch.target != tt.want {
			t.Errorf("%s: got %s, want %s", tt.base, ch.target, tt.want)
		}
	}
	for _, bad := range []string{"am:9093", "ftp://am/", "/relative"} {
		if _, err := newChannel(channelID{kindAlertmanager, bad}); err == nil {
			t.Errorf("%s: got no error, want one", bad)
		}
	}
}

// TestNotifyUnknownTeam: a team without channels receives nothing, and
// Notify does not block.
func TestNotifyUnknownTeam(t *testing.T) {
	h := newHarness(t, nil)
	h.d.SetTeams(map[string]*config.Team{"quiet": {}, "nil": nil})
	n := firing("a")
	for _, team := range []string{"quiet", "nil", "nobody"} {
		n.Team = team
		h.d.Notify(t.Context(), n)
	}
	if got := h.d.Pending(); got != 0 {
		t.Errorf("got Pending %d, want 0", got)
	}
}

func TestDefaultBackoff(t *testing.T) {
	tests := []struct {
		attempt  int
		min, max time.Duration
	}{
		{1, 500 * time.Millisecond, time.Second},
		{2, time.Second, 2 * time.Second},
		{4, 4 * time.Second, 8 * time.Second},
		{10, 150 * time.Second, 5 * time.Minute},
		{1000, 150 * time.Second, 5 * time.Minute},
	}
	for _, tt := range tests {
		for range 100 {
			if got := DefaultBackoff(tt.attempt); got < tt.min || got > tt.max {
				t.Fatalf("DefaultBackoff(%d) = %v, want in [%v, %v]", tt.attempt, got, tt.min, tt.max)
			}
		}
	}
}

func TestMetricsRegistration(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := New(Options{Registerer: reg}); err != nil {
		t.Fatalf("first New: %v", err)
	}
	if _, err := New(Options{Registerer: reg}); err == nil {
		t.Error("second New on the same registry: got no error, want one")
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	if want := []string{"torii_alert_notifications_total", "torii_alert_queue_length"}; !slices.Equal(names, want) {
		t.Errorf("got metrics %v, want %v", names, want)
	}
}
