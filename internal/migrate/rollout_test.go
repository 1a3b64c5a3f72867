package migrate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"torii/internal/config"
	"torii/internal/slo"
	"torii/internal/store"
)

// rolloutT0 is where rollout scenarios start: aligned to a bucket.
var rolloutT0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// rolloutClock is a fake clock tests advance by hand.
type rolloutClock struct {
	mu sync.Mutex // guards t
	t  time.Time
}

func (c *rolloutClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *rolloutClock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// rolloutNotes records notifications.
type rolloutNotes struct {
	mu  sync.Mutex // guards got
	got []slo.Notification
}

func (n *rolloutNotes) Notify(_ context.Context, x slo.Notification) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.got = append(n.got, x)
}

func (n *rolloutNotes) all() []slo.Notification {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]slo.Notification(nil), n.got...)
}

// last returns the newest notification.
func (n *rolloutNotes) last(t *testing.T) slo.Notification {
	t.Helper()
	all := n.all()
	if len(all) == 0 {
		t.Fatal("no notification")
	}
	return all[len(all)-1]
}

// errStoreDown is what a downStore answers while down.
var errStoreDown = errors.New("store down")

// downStore fails the rollout methods and the lease while down is set.
type downStore struct {
	store.Store
	mu   sync.Mutex // guards down
	down bool
}

func (s *downStore) set(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

func (s *downStore) err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return errStoreDown
	}
	return nil
}

func (s *downStore) Rollouts(ctx context.Context) ([]store.RolloutState, error) {
	if err := s.err(); err != nil {
		return nil, err
	}
	return s.Store.Rollouts(ctx)
}

func (s *downStore) SaveRollout(ctx context.Context, st store.RolloutState, expect int64, a *store.AuditEntry) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.Store.SaveRollout(ctx, st, expect, a)
}

func (s *downStore) TryLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	if err := s.err(); err != nil {
		return false, err
	}
	return s.Store.TryLease(ctx, name, holder, ttl)
}

// rolloutConfig is route items, owned by team listing, moving from
// upstream monolith to the candidate listing, with a 99.9 % availability
// SLO.
func rolloutConfig() *config.Config {
	return &config.Config{
		Teams:     map[string]*config.Team{"listing": {}},
		Upstreams: map[string]*config.Upstream{"monolith": {}, "listing": {}},
		Routes: []config.Route{{
			Name: "items", Owner: "listing", SLO: &config.SLO{Availability: 99.9},
			Backends: []config.Backend{{Upstream: "monolith"}, {Upstream: "listing"}},
		}},
	}
}

// rolloutPlan is acceptance point 4's plan: steps 1, 5, 25, 50 and 100 %,
// a minute each, rolling back above a burn rate of 14.4 (the fast-burn
// page threshold).
func rolloutPlan(generation string) Plan {
	return Plan{
		Route: "items", Owner: "listing", Candidate: "listing", Generation: generation,
		Steps: []float64{1, 5, 25, 50, 100}, Every: time.Minute, Window: 5 * time.Minute,
		MinRequests: 50, MaxBurnRate: 14.4,
	}
}

// rolloutReplica is one torii replica as far as rollouts go: an SLO engine and a
// rollout controller on a store, and the route's split, fed with
// simulated traffic.
type rolloutReplica struct {
	name  string
	st    store.Store
	eng   *slo.Engine
	sli   *slo.RouteSLI
	c     *Controller
	split *Split
	notes *rolloutNotes
	reg   *prometheus.Registry
	logs  *bytes.Buffer
	plan  Plan

	rate     float64                       // requests per second
	failures func(percent float64) float64 // the candidate's error ratio at a percent
	carry    float64                       // fractional candidate requests owed
	errCarry float64                       // fractional candidate errors owed
}

// newRolloutReplica builds a replica the way the app starts: Load, then the
// snapshot's Split, then Apply.
func newRolloutReplica(t *testing.T, name string, clk *rolloutClock, st store.Store, plan Plan) *rolloutReplica {
	t.Helper()
	r := &rolloutReplica{name: name, st: st, notes: &rolloutNotes{}, reg: prometheus.NewRegistry(), logs: &bytes.Buffer{}, plan: plan,
		rate: 100, failures: func(float64) float64 { return 0 }}
	eng, err := slo.New(slo.Options{Now: clk.Now, Store: st, ReplicaID: name})
	if err != nil {
		t.Fatal(err)
	}
	cfg := rolloutConfig()
	r.sli = eng.Accountant(cfg).Route("items")
	eng.Apply(cfg)
	r.eng = eng
	r.c, err = NewController(ControllerOptions{
		Store: st, Burn: eng, Notifier: r.notes, Now: clk.Now, Interval: 5 * time.Second, ReplicaID: name,
		Logger: slog.New(slog.NewTextHandler(&lockedBuffer{w: r.logs}, nil)), Registerer: r.reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.c.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	r.split, err = r.c.Split(plan.Route, plan.Generation, []int{1, 1}, 1, plan.Steps[0])
	if err != nil {
		t.Fatal(err)
	}
	r.c.Apply([]Plan{plan})
	return r
}

// lockedBuffer makes a buffer safe for concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex // guards w
	w  *bytes.Buffer
}

func (s *lockedBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// second records one second of traffic: rate requests, split by the live
// weights, the candidate failing as failures says.
func (r *rolloutReplica) second() {
	ws := r.split.Weights().Get()
	owed := r.rate*float64(ws[1])/float64(ws[0]+ws[1]) + r.carry
	n := int(owed)
	r.carry = owed - float64(n)
	failing := r.failures(r.split.Percent())*float64(n) + r.errCarry
	errs := int(failing)
	r.errCarry = failing - float64(errs)
	for i := range n {
		status := 200
		if i < errs {
			status = 502
		}
		r.sli.Record("listing", status, "", time.Millisecond, false)
	}
	for range int(r.rate) - n {
		r.sli.Record("monolith", 200, "", time.Millisecond, false)
	}
}

// status returns the replica's status of route items.
func (r *rolloutReplica) status(t *testing.T) Status {
	t.Helper()
	ss := r.c.Status()
	if len(ss) != 1 || ss[0].Route != "items" {
		t.Fatalf("%s: status %+v, want route items alone", r.name, ss)
	}
	return ss[0]
}

// metric returns the value of the series name{labels} of the replica's
// registry; ok is false when there is none.
func (r *rolloutReplica) metric(t *testing.T, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue next
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue(), true
			}
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// rolloutSim drives replicas on a shared clock, a second at a time: each replica
// records its traffic, every 10 s each engine flushes and every 5 s each
// controller ticks, in order.
type rolloutSim struct {
	t        *testing.T
	clk      *rolloutClock
	replicas []*rolloutReplica
	// afterTick, when set, runs after every round of ticks.
	afterTick func()
}

// tick ticks every replica's controller.
func (s *rolloutSim) tick() {
	s.t.Helper()
	for _, r := range s.replicas {
		if err := r.c.Tick(s.t.Context()); err != nil {
			s.t.Fatalf("%s: tick at %s: %v", r.name, s.clk.Now().Sub(rolloutT0), err)
		}
	}
	if s.afterTick != nil {
		s.afterTick()
	}
}

// run simulates up to d, stopping early once until returns true (checked
// after every round of ticks), and reports whether it did.
func (s *rolloutSim) run(d time.Duration, until func() bool) bool {
	s.t.Helper()
	for end := s.clk.Now().Add(d); s.clk.Now().Before(end); {
		for _, r := range s.replicas {
			r.second()
		}
		now := s.clk.Advance(time.Second)
		if now.Unix()%10 == 0 {
			for _, r := range s.replicas {
				if err := r.eng.Flush(s.t.Context()); err != nil {
					s.t.Fatal(err)
				}
			}
		}
		if now.Unix()%5 == 0 {
			s.tick()
			if until != nil && until() {
				return true
			}
		}
	}
	return false
}

// splitAt returns a condition: r's split is at percent.
func splitAt(r *rolloutReplica, percent float64) func() bool {
	return func() bool { return r.split.Percent() == percent }
}

// rolloutAudit returns route items' audit trail, oldest first.
func rolloutAudit(t *testing.T, c *Controller) []store.AuditEntry {
	t.Helper()
	es, err := c.Audit(t.Context(), "items", 1000)
	if err != nil {
		t.Fatal(err)
	}
	for i, j := 0, len(es)-1; i < j; i, j = i+1, j-1 {
		es[i], es[j] = es[j], es[i]
	}
	return es
}

// auditActions returns the audit entries' actions with their target percents.
func auditActions(es []store.AuditEntry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Action + " " + strconv.FormatFloat(e.ToPercent, 'g', -1, 64)
	}
	return out
}

// TestRolloutRollsBackFailingCandidate is acceptance point 4: at 100 req/s,
// a candidate that fails 5 % of its requests from the 25 % step on is
// rolled back to 0 within 60 s of reaching it, and the audit trail names
// the gate that tripped and its value.
func TestRolloutRollsBackFailingCandidate(t *testing.T) {
	clk := &rolloutClock{t: rolloutT0}
	r := newRolloutReplica(t, "a", clk, store.NewMemory(clk.Now), rolloutPlan("g1"))
	r.failures = func(percent float64) float64 {
		if percent >= 25 {
			return 0.05
		}
		return 0
	}
	s := &rolloutSim{t: t, clk: clk, replicas: []*rolloutReplica{r}}
	s.tick() // the leader starts the plan
	if got := r.split.Percent(); got != 1 {
		t.Fatalf("after the first tick: %v%%, want 1%%", got)
	}
	if !s.run(10*time.Minute, splitAt(r, 25)) {
		t.Fatalf("never reached 25%%; status %+v", r.status(t))
	}
	reached := clk.Now()
	if !s.run(10*time.Minute, splitAt(r, 0)) {
		t.Fatalf("not rolled back; status %+v", r.status(t))
	}
	if took := clk.Now().Sub(reached); took > time.Minute {
		t.Errorf("rolled back %s after reaching 25%%, want within 1m", took)
	}
	st := r.status(t)
	if st.Phase != PhaseRolledBack || st.Percent != 0 || st.Step != 2 {
		t.Errorf("status: phase %s at %v%%, step %d; want rolled_back at 0%%, step 2", st.Phase, st.Percent, st.Step)
	}

	es := rolloutAudit(t, r.c)
	want := []string{"start 1", "advance 5", "advance 25", "rollback 0"}
	if got := auditActions(es); strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Fatalf("audit: got %v, want %v", got, want)
	}
	rb := es[3]
	if rb.Actor != ActorController || rb.FromPercent != 25 || rb.Generation != "g1" {
		t.Errorf("rollback entry %+v: want actor rollout, from 25%%, generation g1", rb)
	}
	m := regexp.MustCompile(`^gate availability_burn_rate ([0-9.]+) > 14\.4 over \S+ \((\d+) requests, (\d+) errors\)$`).FindStringSubmatch(rb.Reason)
	if m == nil {
		t.Fatalf("rollback reason %q does not name the gate, its value and limit", rb.Reason)
	}
	if v, _ := strconv.ParseFloat(m[1], 64); v <= 14.4 {
		t.Errorf("rollback reason %q: value %v not above the limit", rb.Reason, v)
	}
	t.Logf("rolled back %s after reaching 25%%: %s", clk.Now().Sub(reached), rb.Reason)
	if st.Reason != rb.Reason {
		t.Errorf("status reason %q, want the rolloutAudit's %q", st.Reason, rb.Reason)
	}

	n := r.notes.last(t)
	if !n.Firing || n.Key != "items/rollout" || n.Team != "listing" || n.Labels["severity"] != "page" ||
		n.Labels["action"] != "rollback" || n.Labels["alertname"] != "ToriiRollout" || n.Annotations["description"] != rb.Reason {
		t.Errorf("rollback notification %+v", n)
	}
	if got := len(r.notes.all()); got != 4 {
		t.Errorf("%d notifications, want one per transition (4)", got)
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"torii_rollout_candidate_percent", map[string]string{"route": "items"}, 0},
		{"torii_rollout_step", map[string]string{"route": "items"}, 2},
		{"torii_rollout_frozen", map[string]string{"route": "items"}, 0},
		{"torii_rollout_transitions_total", map[string]string{"route": "items", "action": "rollback"}, 1},
		{"torii_rollout_transitions_total", map[string]string{"route": "items", "action": "advance"}, 2},
	} {
		if got, ok := r.metric(t, c.name, c.labels); !ok || got != c.want {
			t.Errorf("%s%v: got %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	if v, ok := r.metric(t, "torii_rollout_gate_value", map[string]string{"route": "items", "gate": GateAvailability}); !ok || v <= 14.4 {
		t.Errorf("gate value metric: %v (present %v), want above 14.4", v, ok)
	}

	// It stays rolled back.
	s.run(5*time.Minute, nil)
	if st := r.status(t); st.Phase != PhaseRolledBack || r.split.Percent() != 0 || len(rolloutAudit(t, r.c)) != 4 {
		t.Errorf("5 minutes later: phase %s at %v%%, %d rolloutAudit entries; want rolled_back at 0%%, 4", st.Phase, r.split.Percent(), len(rolloutAudit(t, r.c)))
	}
}

// TestRolloutHealthyCandidateCompletes is the other half of acceptance
// point 4: a healthy candidate reaches 100 %.
func TestRolloutHealthyCandidateCompletes(t *testing.T) {
	for _, tc := range []struct {
		name  string
		ratio float64
	}{
		{"no errors", 0},
		{"0.05% errors against a 99.9% SLO", 0.0005},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := &rolloutClock{t: rolloutT0}
			r := newRolloutReplica(t, "a", clk, store.NewMemory(clk.Now), rolloutPlan("g1"))
			r.failures = func(float64) float64 { return tc.ratio }
			s := &rolloutSim{t: t, clk: clk, replicas: []*rolloutReplica{r}}
			s.tick()
			var waited bool
			s.afterTick = func() {
				if r.status(t).Waiting != "" {
					waited = true
				}
			}
			if !s.run(15*time.Minute, func() bool { return r.status(t).Phase == PhaseCompleted }) {
				t.Fatalf("not completed; status %+v", r.status(t))
			}
			if took := clk.Now().Sub(rolloutT0); took > 6*time.Minute {
				t.Errorf("completed after %s, want about 4 steps of 1m", took)
			}
			st := r.status(t)
			if r.split.Percent() != 100 || st.Percent != 100 || st.Step != 4 || !st.NextStepAt.IsZero() || !st.Leader || st.Frozen {
				t.Errorf("status %+v, split at %v%%", st, r.split.Percent())
			}
			want := "start 1, advance 5, advance 25, advance 50, complete 100"
			if got := strings.Join(auditActions(rolloutAudit(t, r.c)), ", "); got != want {
				t.Errorf("audit: got %s, want %s", got, want)
			}
			if !waited {
				t.Error("the 1% step never waited for min_requests")
			}
			// Every advance held its step a minute.
			es := rolloutAudit(t, r.c)
			for i := 1; i < len(es); i++ {
				if d := es[i].At.Sub(es[i-1].At); d < time.Minute {
					t.Errorf("%s after %s: want at least 1m", auditActions(es)[i], d)
				}
			}
		})
	}
}

// TestRolloutGates: what one evaluation of a progressing rollout reports
// and does, gate by gate.
func TestRolloutGates(t *testing.T) {
	cases := []struct {
		name     string
		plan     func(*Plan)
		burn     slo.Burn
		noSLO    bool
		diff     *diffStub
		wantStep int
		phase    string
		waiting  string
		reason   string
		gatesOK  map[string]bool
	}{
		{name: "too few requests", burn: slo.Burn{Window: time.Minute, Events: 49, Errors: 49, Availability: 1000},
			wantStep: 0, phase: PhaseProgressing, waiting: "waiting for 50 candidate requests",
			gatesOK: map[string]bool{GateMinRequests: false, GateAvailability: false, GateLatency: true}},
		{name: "healthy advances", burn: slo.Burn{Window: time.Minute, Events: 60},
			wantStep: 1, phase: PhaseProgressing, reason: "held 1m0s at 1% with the gates passing",
			gatesOK: map[string]bool{GateMinRequests: true, GateAvailability: true, GateLatency: true}},
		{name: "latency burn", burn: slo.Burn{Window: time.Minute, Events: 60, Slow: 30, Latency: 50},
			wantStep: 0, phase: PhaseRolledBack, reason: "gate latency_burn_rate 50.0 > 14.4 over 1m0s (60 requests, 30 slow)",
			gatesOK: map[string]bool{GateMinRequests: true, GateAvailability: true, GateLatency: false}},
		{name: "diff over the limit", plan: func(p *Plan) { p.MaxDiffPercent = 1 },
			burn: slo.Burn{Window: time.Minute, Events: 60}, diff: &diffStub{percent: 3.1, compared: 2000, ok: true},
			wantStep: 0, phase: PhaseRolledBack, reason: "gate diff_percent 3.10 > 1.00 (2000 compared)",
			gatesOK: map[string]bool{GateMinRequests: true, GateAvailability: true, GateLatency: true, GateDiffPercent: false}},
		{name: "diff within the limit", plan: func(p *Plan) { p.MaxDiffPercent = 1 },
			burn: slo.Burn{Window: time.Minute, Events: 60}, diff: &diffStub{percent: 0.5, compared: 2000, ok: true},
			wantStep: 1, phase: PhaseProgressing, reason: "diff 0.50% of 2000 compared",
			gatesOK: map[string]bool{GateMinRequests: true, GateAvailability: true, GateLatency: true, GateDiffPercent: true}},
		{name: "nothing compared yet", plan: func(p *Plan) { p.MaxDiffPercent = 1 },
			burn: slo.Burn{Window: time.Minute, Events: 60}, diff: &diffStub{},
			wantStep: 0, phase: PhaseProgressing, waiting: "waiting for the first response comparison",
			gatesOK: map[string]bool{GateMinRequests: true, GateAvailability: true, GateLatency: true, GateDiffPercent: false}},
		{name: "diff gate without a diff source", plan: func(p *Plan) { p.MaxDiffPercent = 1 },
			burn:     slo.Burn{Window: time.Minute, Events: 60},
			wantStep: 0, phase: PhaseProgressing, waiting: "waiting for the first response comparison",
			gatesOK: map[string]bool{GateMinRequests: true, GateAvailability: true, GateLatency: true, GateDiffPercent: false}},
		{name: "too few requests for the diff gate too", plan: func(p *Plan) { p.MaxDiffPercent = 1 },
			burn: slo.Burn{Window: time.Minute, Events: 10}, diff: &diffStub{percent: 50, compared: 10, ok: true},
			wantStep: 0, phase: PhaseProgressing, waiting: "waiting for 50 candidate requests",
			gatesOK: map[string]bool{GateMinRequests: false, GateAvailability: true, GateLatency: true, GateDiffPercent: false}},
		{name: "route without an SLO", noSLO: true, burn: slo.Burn{Window: time.Minute, Events: 60},
			wantStep: 0, phase: PhaseProgressing, waiting: "no SLO",
			gatesOK: map[string]bool{GateMinRequests: false}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clk := &rolloutClock{t: rolloutT0}
			burn := &burnStub{b: tc.burn, ok: !tc.noSLO}
			o := ControllerOptions{Store: store.NewMemory(clk.Now), Burn: burn, Now: clk.Now, Interval: 5 * time.Second,
				Logger: slog.New(slog.DiscardHandler)}
			if tc.diff != nil {
				o.Diffs = tc.diff
			}
			c, err := NewController(o)
			if err != nil {
				t.Fatal(err)
			}
			p := rolloutPlan("g1")
			if tc.plan != nil {
				tc.plan(&p)
			}
			c.Apply([]Plan{p})
			if err := c.Tick(t.Context()); err != nil { // start
				t.Fatal(err)
			}
			clk.Advance(time.Minute)
			if err := c.Tick(t.Context()); err != nil {
				t.Fatal(err)
			}
			if burn.w != time.Minute {
				t.Errorf("gate window %s, want 1m (the step's age)", burn.w)
			}
			st := c.Status()[0]
			if st.Step != tc.wantStep || st.Phase != tc.phase {
				t.Errorf("step %d, phase %s; want %d, %s", st.Step, st.Phase, tc.wantStep, tc.phase)
			}
			if !strings.Contains(st.Waiting, tc.waiting) || (tc.waiting == "") != (st.Waiting == "") {
				t.Errorf("waiting %q, want %q", st.Waiting, tc.waiting)
			}
			if !strings.Contains(st.Reason, tc.reason) {
				t.Errorf("reason %q, want it to contain %q", st.Reason, tc.reason)
			}
			if st.Phase == PhaseRolledBack {
				return // a held phase shows no gates
			}
			got := map[string]bool{}
			for _, g := range st.Gates {
				got[g.Name] = g.OK
			}
			if len(got) != len(tc.gatesOK) {
				t.Errorf("gates %+v, want %v", st.Gates, tc.gatesOK)
			}
			for name, ok := range tc.gatesOK {
				if v, found := got[name]; !found || v != ok {
					t.Errorf("gate %s: ok %v (present %v), want %v", name, v, found, ok)
				}
			}
		})
	}
}

// burnStub answers BackendBurn with b, recording the window asked.
type burnStub struct {
	mu sync.Mutex // guards w
	b  slo.Burn
	ok bool
	w  time.Duration
}

func (f *burnStub) BackendBurn(_ context.Context, _, _ string, w time.Duration) (slo.Burn, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.w = w
	if !f.ok {
		return slo.Burn{}, false, nil
	}
	return f.b, true, nil
}

// diffStub answers DiffPercent with fixed values.
type diffStub struct {
	percent  float64
	compared int64
	ok       bool
}

func (f *diffStub) DiffPercent(string) (float64, int64, bool) { return f.percent, f.compared, f.ok }

// TestRolloutOperator: pause holds, abort stands across ticks, a restart
// and a reload of the same plan, resume restarts, promote sends
// everything to the candidate, a new generation starts over.
func TestRolloutOperator(t *testing.T) {
	ctx := t.Context()
	clk := &rolloutClock{t: rolloutT0}
	mem := store.NewMemory(clk.Now)
	plan := rolloutPlan("g1")
	r := newRolloutReplica(t, "a", clk, mem, plan)
	s := &rolloutSim{t: t, clk: clk, replicas: []*rolloutReplica{r}}
	s.tick()
	if !s.run(5*time.Minute, splitAt(r, 5)) {
		t.Fatal("never reached 5%")
	}

	st, err := r.c.Act(ctx, "items", ActionPause, "admin:alice", "looking at a p99 bump")
	if err != nil {
		t.Fatal(err)
	}
	if st.Phase != PhasePaused || st.Percent != 5 || !st.NextStepAt.IsZero() || st.Reason != "looking at a p99 bump" {
		t.Errorf("paused status %+v", st)
	}
	s.run(5*time.Minute, nil)
	if st := r.status(t); st.Phase != PhasePaused || r.split.Percent() != 5 {
		t.Errorf("5 minutes paused: phase %s at %v%%, want paused at 5%%", st.Phase, r.split.Percent())
	}

	resumed := clk.Now()
	if st, err = r.c.Act(ctx, "items", ActionResume, "admin:alice", ""); err != nil {
		t.Fatal(err)
	}
	if st.Phase != PhaseProgressing || !st.StepStarted.Equal(resumed) || !st.NextStepAt.Equal(resumed.Add(time.Minute)) || st.Reason != "resume by admin:alice" {
		t.Errorf("resumed status %+v", st)
	}
	if !s.run(5*time.Minute, splitAt(r, 25)) {
		t.Fatal("never reached 25% after resuming")
	}
	if d := clk.Now().Sub(resumed); d < time.Minute {
		t.Errorf("advanced %s after resuming, want the step's minute over again", d)
	}

	if st, err = r.c.Act(ctx, "items", ActionAbort, "", "bad p99"); err != nil {
		t.Fatal(err)
	}
	if st.Phase != PhaseAborted || st.Percent != 0 || r.split.Percent() != 0 {
		t.Errorf("aborted status %+v, split at %v%%", st, r.split.Percent())
	}
	last := rolloutAudit(t, r.c)[len(rolloutAudit(t, r.c))-1]
	if last.Action != ActionAbort || last.Actor != "admin" || last.Reason != "bad p99" || last.FromPercent != 25 || last.ToPercent != 0 {
		t.Errorf("abort rolloutAudit entry %+v", last)
	}
	if n := r.notes.last(t); !n.Firing || n.Labels["action"] != "abort" || n.Labels["severity"] != "info" || n.Annotations["description"] != "bad p99" {
		t.Errorf("abort notification %+v", n)
	}
	s.run(3*time.Minute, nil)
	if st := r.status(t); st.Phase != PhaseAborted || r.split.Percent() != 0 {
		t.Errorf("3 minutes after the abort: %s at %v%%", st.Phase, r.split.Percent())
	}

	// A reload with the same plan, then a restart on the same store.
	r.c.Apply([]Plan{plan})
	s.tick()
	if st := r.status(t); st.Phase != PhaseAborted || r.split.Percent() != 0 {
		t.Errorf("after a reload: %s at %v%%", st.Phase, r.split.Percent())
	}
	r2 := newRolloutReplica(t, "a-restarted", clk, mem, plan)
	if got := r2.split.Percent(); got != 0 {
		t.Errorf("after a restart, before a tick: split at %v%%, want 0", got)
	}
	s.replicas = []*rolloutReplica{r2}
	s.run(time.Minute, nil)
	if st := r2.status(t); st.Phase != PhaseAborted || r2.split.Percent() != 0 {
		t.Errorf("a minute after a restart: %s at %v%%", st.Phase, r2.split.Percent())
	}

	// Invalid actions change nothing.
	for _, tc := range []struct{ route, action string }{
		{"items", ActionAbort},
		{"items", ActionPause},
		{"items", "frobnicate"},
		{"items", ""},
	} {
		if _, err := r2.c.Act(ctx, tc.route, tc.action, "admin", ""); !errors.Is(err, ErrInvalidAction) {
			t.Errorf("%s on an aborted rollout: got %v, want ErrInvalidAction", tc.action, err)
		}
	}
	if _, err := r2.c.Act(ctx, "nope", ActionPause, "admin", ""); !errors.Is(err, ErrUnknownRoute) {
		t.Errorf("pause of an unplanned route: got %v, want ErrUnknownRoute", err)
	}
	if _, err := r2.c.Act(ctx, "items", ActionPause, "admin", ""); err == nil || !strings.Contains(err.Error(), "aborted") {
		t.Errorf("pause of an aborted rollout: %v, want an error naming the phase", err)
	}

	// Resume restarts from step 0 and resolves the abort's alert.
	if st, err = r2.c.Act(ctx, "items", ActionResume, "admin", ""); err != nil {
		t.Fatal(err)
	}
	if st.Phase != PhaseProgressing || st.Step != 0 || st.Percent != 1 || r2.split.Percent() != 1 {
		t.Errorf("resumed after the abort: %+v", st)
	}
	if n := r2.notes.last(t); n.Firing || n.Labels["action"] != "abort" || n.EndsAt.IsZero() || !strings.Contains(n.Annotations["summary"], "resume") {
		t.Errorf("resume notification %+v, want the abort's alert resolved", n)
	}

	if st, err = r2.c.Act(ctx, "items", ActionPromote, "admin", "ship it"); err != nil {
		t.Fatal(err)
	}
	if st.Phase != PhasePromoted || st.Percent != 100 || r2.split.Percent() != 100 {
		t.Errorf("promoted: %+v", st)
	}
	for _, a := range []string{ActionPromote, ActionPause, ActionResume} {
		if _, err := r2.c.Act(ctx, "items", a, "admin", ""); !errors.Is(err, ErrInvalidAction) {
			t.Errorf("%s when promoted: got %v, want ErrInvalidAction", a, err)
		}
	}
	s.run(2*time.Minute, nil)
	if r2.split.Percent() != 100 {
		t.Errorf("promoted rollout moved to %v%%", r2.split.Percent())
	}

	// A new generation starts over; the old generation's split is dropped.
	plan2 := rolloutPlan("g2")
	split2, err := r2.c.Split("items", "g2", []int{1, 1}, 1, plan2.Steps[0])
	if err != nil {
		t.Fatal(err)
	}
	if split2 == r2.split || split2.Percent() != 1 {
		t.Errorf("split of the new generation: same %v, at %v%%", split2 == r2.split, split2.Percent())
	}
	if again, _ := r2.c.Split("items", "g2", []int{1, 1}, 1, 50); again != split2 {
		t.Error("Split of the same generation returned another split")
	}
	r2.c.Apply([]Plan{plan2})
	r2.split = split2
	s.tick()
	st = r2.status(t)
	if st.Phase != PhaseProgressing || st.Step != 0 || st.Generation != "g2" || split2.Percent() != 1 {
		t.Errorf("new generation: %+v", st)
	}
	last = rolloutAudit(t, r2.c)[len(rolloutAudit(t, r2.c))-1]
	if last.Action != ActionStart || last.Generation != "g2" || !strings.Contains(last.Reason, "g1") {
		t.Errorf("new generation's rolloutAudit entry %+v", last)
	}
	if !s.run(3*time.Minute, splitAt(r2, 5)) {
		t.Error("the new generation did not progress")
	}
}

// TestOperate: which action each phase allows.
func TestOperate(t *testing.T) {
	p := rolloutPlan("g1")
	now := rolloutT0.Add(time.Hour)
	phases := []string{PhaseProgressing, PhasePaused, PhaseRolledBack, PhaseAborted, PhasePromoted, PhaseCompleted}
	want := map[string]map[string]string{ // action -> phase before -> phase after ("" refused)
		ActionPause:   {PhaseProgressing: PhasePaused},
		ActionResume:  {PhasePaused: PhaseProgressing, PhaseRolledBack: PhaseProgressing, PhaseAborted: PhaseProgressing},
		ActionPromote: {PhaseProgressing: PhasePromoted, PhasePaused: PhasePromoted, PhaseRolledBack: PhasePromoted, PhaseAborted: PhasePromoted},
		ActionAbort:   {PhaseProgressing: PhaseAborted, PhasePaused: PhaseAborted, PhasePromoted: PhaseAborted, PhaseCompleted: PhaseAborted},
	}
	for action, after := range want {
		for _, phase := range phases {
			cur := store.RolloutState{Route: "items", Generation: "g1", Phase: phase, Step: 2, Percent: 25, StepStarted: rolloutT0}
			next, err := operate(p, cur, action, now)
			if after[phase] == "" {
				if !errors.Is(err, ErrInvalidAction) || !strings.Contains(err.Error(), phase) {
					t.Errorf("%s when %s: got %v, want ErrInvalidAction naming the phase", action, phase, err)
				}
				continue
			}
			if err != nil {
				t.Errorf("%s when %s: %v", action, phase, err)
				continue
			}
			if next.Phase != after[phase] || !next.StepStarted.Equal(now) {
				t.Errorf("%s when %s: got phase %s since %s, want %s since now", action, phase, next.Phase, next.StepStarted, after[phase])
			}
			wantPercent := map[string]float64{ActionPause: 25, ActionPromote: 100, ActionAbort: 0}[action]
			if action == ActionResume {
				wantPercent = map[string]float64{PhasePaused: 25, PhaseRolledBack: 1, PhaseAborted: 1}[phase]
			}
			if next.Percent != wantPercent {
				t.Errorf("%s when %s: at %v%%, want %v%%", action, phase, next.Percent, wantPercent)
			}
		}
	}
}

// TestRolloutRestartSQLite is the first half of acceptance point 5: a
// rollout resumes after a restart on the same SQLite file at the same
// step, percent and step start.
func TestRolloutRestartSQLite(t *testing.T) {
	ctx := t.Context()
	clk := &rolloutClock{t: rolloutT0}
	path := filepath.Join(t.TempDir(), "torii.db")
	st1, err := store.OpenSQLite(ctx, path, store.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	r1 := newRolloutReplica(t, "before", clk, st1, rolloutPlan("g1"))
	s := &rolloutSim{t: t, clk: clk, replicas: []*rolloutReplica{r1}}
	s.tick()
	if !s.run(5*time.Minute, splitAt(r1, 25)) {
		t.Fatal("never reached 25%")
	}
	before := r1.status(t)
	if err := r1.eng.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st1.Close(); err != nil {
		t.Fatal(err)
	}

	clk.Advance(2 * time.Second)
	st2, err := store.OpenSQLite(ctx, path, store.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	r2 := newRolloutReplica(t, "after", clk, st2, rolloutPlan("g1"))
	if got := r2.split.Percent(); got != 25 {
		t.Errorf("restarted split at %v%%, want 25%%", got)
	}
	after := r2.status(t)
	if after.Phase != before.Phase || after.Step != before.Step || !after.StepStarted.Equal(before.StepStarted) || after.Percent != 25 {
		t.Errorf("after a restart: %+v, want the state before: %+v", after, before)
	}
	s.replicas = []*rolloutReplica{r2}
	if !s.run(5*time.Minute, splitAt(r2, 50)) {
		t.Fatalf("the restarted rollout did not advance: %+v", r2.status(t))
	}
	if d := clk.Now().Sub(before.StepStarted); d < time.Minute || d > time.Minute+20*time.Second {
		t.Errorf("advanced %s after the 25%% step started, want the step's minute, kept across the restart (the old lease lapsing within 15s)", d)
	}
	want := "start 1, advance 5, advance 25, advance 50"
	if got := strings.Join(auditActions(rolloutAudit(t, r2.c)), ", "); got != want {
		t.Errorf("audit: got %s, want %s", got, want)
	}
}

// TestRolloutFrozen: while the store cannot be read the rollout neither
// advances nor rolls back, says so and exports it; operator actions fail;
// it thaws when the store answers.
func TestRolloutFrozen(t *testing.T) {
	ctx := t.Context()
	clk := &rolloutClock{t: rolloutT0}
	ds := &downStore{Store: store.NewMemory(clk.Now)}
	r := newRolloutReplica(t, "a", clk, ds, rolloutPlan("g1"))
	s := &rolloutSim{t: t, clk: clk, replicas: []*rolloutReplica{r}}
	s.tick()
	if !s.run(5*time.Minute, splitAt(r, 5)) {
		t.Fatal("never reached 5%")
	}
	entries := len(rolloutAudit(t, r.c))

	// Between ticks too long, the state goes stale.
	clk.Advance(16 * time.Second)
	if st := r.status(t); !st.Frozen || !strings.Contains(st.FrozenReason, "stale") {
		t.Errorf("16s without a tick: frozen %v (%q), want frozen as stale", st.Frozen, st.FrozenReason)
	}

	ds.set(true)
	r.failures = func(float64) float64 { return 1 } // would roll back at once
	for range 3 * 60 / 5 {
		for range 5 {
			r.second()
			clk.Advance(time.Second)
		}
		if err := r.c.Tick(ctx); !errors.Is(err, errStoreDown) {
			t.Fatalf("tick with the store down: got %v, want errStoreDown", err)
		}
	}
	st := r.status(t)
	if !st.Frozen || !strings.Contains(st.FrozenReason, "store down") || st.Leader {
		t.Errorf("frozen status %+v", st)
	}
	if r.split.Percent() != 5 || st.Percent != 5 || st.Phase != PhaseProgressing {
		t.Errorf("frozen rollout moved: split %v%%, status %+v", r.split.Percent(), st)
	}
	if v, ok := r.metric(t, "torii_rollout_frozen", map[string]string{"route": "items"}); !ok || v != 1 {
		t.Errorf("torii_rollout_frozen: %v (present %v), want 1", v, ok)
	}
	if _, err := r.c.Act(ctx, "items", ActionAbort, "admin", ""); !errors.Is(err, errStoreDown) {
		t.Errorf("abort with the store down: got %v, want errStoreDown", err)
	}
	if n := strings.Count(r.logs.String(), "rollouts frozen"); n != 1 {
		t.Errorf("logged the freeze %d times, want once:\n%s", n, r.logs)
	}

	ds.set(false)
	s.tick()
	st = r.status(t)
	if st.Frozen || st.FrozenReason != "" {
		t.Errorf("after the store answers: frozen %v (%q)", st.Frozen, st.FrozenReason)
	}
	if v, _ := r.metric(t, "torii_rollout_frozen", map[string]string{"route": "items"}); v != 0 {
		t.Errorf("torii_rollout_frozen after thawing: %v, want 0", v)
	}
	if st.Phase != PhaseRolledBack || r.split.Percent() != 0 {
		t.Errorf("thawed with a failing candidate: %s at %v%%, want rolled back", st.Phase, r.split.Percent())
	}
	if got := len(rolloutAudit(t, r.c)); got != entries+1 {
		t.Errorf("%d rolloutAudit entries, want %d: none while frozen, the rollback after", got, entries+1)
	}
	if !strings.Contains(r.logs.String(), "rollouts unfrozen") {
		t.Errorf("thawing not logged:\n%s", r.logs)
	}
}

// TestRolloutLoadFails: a controller whose first read fails starts its
// split at the first step, frozen, and thaws at the first good tick.
func TestRolloutLoadFails(t *testing.T) {
	clk := &rolloutClock{t: rolloutT0}
	ds := &downStore{Store: store.NewMemory(clk.Now)}
	ds.set(true)
	c, err := NewController(ControllerOptions{Store: ds, Burn: &burnStub{ok: true}, Now: clk.Now, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Load(t.Context()); !errors.Is(err, errStoreDown) {
		t.Fatalf("Load: got %v, want errStoreDown", err)
	}
	sp, err := c.Split("items", "g1", []int{1, 1}, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	c.Apply([]Plan{rolloutPlan("g1")})
	if st := c.Status()[0]; !st.Frozen || st.Phase != PhasePending || sp.Percent() != 1 {
		t.Errorf("status %+v, split at %v%%", st, sp.Percent())
	}
	ds.set(false)
	if err := c.Tick(t.Context()); err != nil {
		t.Fatal(err)
	}
	if st := c.Status()[0]; st.Frozen || st.Phase != PhaseProgressing {
		t.Errorf("after a good tick: %+v", st)
	}
}

// TestRolloutApply: Apply drops the splits and series of routes that lost
// their plan, leaves invalid plans out, and keeps the stored state.
func TestRolloutApply(t *testing.T) {
	clk := &rolloutClock{t: rolloutT0}
	r := newRolloutReplica(t, "a", clk, store.NewMemory(clk.Now), rolloutPlan("g1"))
	if err := r.c.Tick(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.metric(t, "torii_rollout_candidate_percent", map[string]string{"route": "items"}); !ok {
		t.Fatal("no torii_rollout_candidate_percent series")
	}
	bad := rolloutPlan("g1")
	bad.Route, bad.Steps = "other", []float64{5, 5}
	r.c.Apply([]Plan{bad})
	if ss := r.c.Status(); len(ss) != 0 {
		t.Errorf("status after the plans went: %+v", ss)
	}
	if _, ok := r.metric(t, "torii_rollout_candidate_percent", map[string]string{"route": "items"}); ok {
		t.Error("the series of a route without a plan is still exported")
	}
	sp, err := r.c.Split("items", "g1", []int{1, 1}, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if sp == r.split {
		t.Error("the split of a route without a plan was kept")
	}
	if sp.Percent() != 1 {
		t.Errorf("a split of the stored generation starts at %v%%, want the stored 1%%", sp.Percent())
	}
	// Other backends for the same generation: a new split at the same percent.
	r.c.Apply([]Plan{rolloutPlan("g1")})
	sp2, err := r.c.Split("items", "g1", []int{1, 1, 1}, 2, 1)
	if err != nil {
		t.Fatal(err)
	}
	if sp2 == sp || sp2.Percent() != 1 || len(sp2.Weights().Get()) != 3 {
		t.Errorf("split for other backends: same %v at %v%%, weights %v", sp2 == sp, sp2.Percent(), sp2.Weights().Get())
	}
}

func TestPlanValidate(t *testing.T) {
	cases := []struct {
		name   string
		change func(*Plan)
		want   string // "" valid
	}{
		{"valid", func(*Plan) {}, ""},
		{"one step", func(p *Plan) { p.Steps = []float64{100} }, ""},
		{"shadow step", func(p *Plan) { p.Steps = []float64{0, 50, 100} }, ""},
		{"no steps", func(p *Plan) { p.Steps = nil }, "no steps"},
		{"not increasing", func(p *Plan) { p.Steps = []float64{5, 5} }, "steps[1]: 5 does not exceed"},
		{"over 100", func(p *Plan) { p.Steps = []float64{50, 101} }, "steps[1]: 101 is not between 0 and 100"},
		{"no every", func(p *Plan) { p.Every = 0 }, "every"},
		{"no burn limit", func(p *Plan) { p.MaxBurnRate = 0 }, "max burn rate"},
		{"negative min requests", func(p *Plan) { p.MinRequests = -1 }, "min requests"},
		{"no generation", func(p *Plan) { p.Generation = "" }, "no generation"},
		{"no candidate", func(p *Plan) { p.Candidate = "" }, "no candidate"},
		{"diff over 100", func(p *Plan) { p.MaxDiffPercent = 200 }, "max diff percent"},
	}
	for _, tc := range cases {
		p := rolloutPlan("g1")
		tc.change(&p)
		err := p.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: got %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}

// TestRolloutOneStep: a plan of one step is complete as it starts.
func TestRolloutOneStep(t *testing.T) {
	clk := &rolloutClock{t: rolloutT0}
	r := newRolloutReplica(t, "a", clk, store.NewMemory(clk.Now), Plan{Route: "items", Candidate: "listing", Generation: "g1",
		Steps: []float64{100}, Every: time.Minute, MaxBurnRate: 1})
	if err := r.c.Tick(t.Context()); err != nil {
		t.Fatal(err)
	}
	if st := r.status(t); st.Phase != PhaseCompleted || r.split.Percent() != 100 {
		t.Errorf("%+v at %v%%", st, r.split.Percent())
	}
}

// TestRolloutRun: Run ticks on its own and returns when ctx ends.
func TestRolloutRun(t *testing.T) {
	c, err := NewController(ControllerOptions{Store: store.NewMemory(nil), Burn: &burnStub{ok: true},
		Interval: 10 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	c.Apply([]Plan{rolloutPlan("g1")})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for c.Status()[0].Phase == PhasePending {
		if time.Now().After(deadline) {
			t.Fatal("Run did not start the rollout")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after ctx ended")
	}
}

func TestNewControllerErrors(t *testing.T) {
	mem := store.NewMemory(nil)
	for name, o := range map[string]ControllerOptions{
		"no store":          {Burn: &burnStub{}},
		"no burn source":    {Store: mem},
		"negative interval": {Store: mem, Burn: &burnStub{}, Interval: -time.Second},
	} {
		if _, err := NewController(o); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestRolloutConcurrentActs: operator actions on one replica race the
// other replica's ticks; every save lands exactly once, each with its
// audit entry.
func TestRolloutConcurrentActs(t *testing.T) {
	ctx := t.Context()
	clk := &rolloutClock{t: rolloutT0}
	mem := store.NewMemory(clk.Now)
	plan := rolloutPlan("g1")
	plan.Every = time.Hour // so that no step completes the rollout, where pause is refused
	a := newRolloutReplica(t, "a", clk, mem, plan)
	b := newRolloutReplica(t, "b", clk, mem, plan)
	s := &rolloutSim{t: t, clk: clk, replicas: []*rolloutReplica{a, b}}
	s.tick()
	done := make(chan error, 1)
	go func() {
		for i := range 100 {
			action := ActionPause
			if i%2 == 1 {
				action = ActionResume
			}
			if _, err := b.c.Act(ctx, "items", action, "admin", ""); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for finished := false; !finished; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			finished = true
		default:
			s.run(5*time.Second, nil)
		}
	}
	states, err := mem.Rollouts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	es := rolloutAudit(t, a.c)
	if len(states) != 1 || states[0].Version != int64(len(es)) {
		t.Errorf("stored state %+v after %d audit entries, want its version to count them", states, len(es))
	}
	pauses := 0
	for _, e := range es {
		if e.Action == ActionPause {
			pauses++
		}
	}
	if pauses != 50 {
		t.Errorf("%d pauses audited, want 50", pauses)
	}
}

// TestStatusJSON: the admin API's field names.
func TestStatusJSON(t *testing.T) {
	b, err := json.Marshal(Status{Gates: []GateStatus{{Name: GateMinRequests}}})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"route":"","candidate":"","generation":"","phase":"","step":0,"steps":null,"percent":0,"frozen":false,` +
		`"gates":[{"name":"min_requests","value":0,"limit":0,"ok":false}],"leader":false}`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
	now := rolloutT0
	b, _ = json.Marshal(Status{Owner: "o", StepStarted: now, NextStepAt: now, FrozenReason: "r", Waiting: "w", EvaluatedAt: now, Reason: "x", Updated: now})
	var keys map[string]any
	if err := json.Unmarshal(b, &keys); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"owner", "step_started", "next_step_at", "frozen_reason", "waiting", "evaluated_at", "reason", "updated"} {
		if _, ok := keys[k]; !ok {
			t.Errorf("no %q in %s", k, b)
		}
	}
}
