package migrate

// This file is the rollout controller (issue 6): it moves a route's
// traffic to a candidate backend step by step, advancing while the
// candidate's SLO burn rates and diff rate stay within the plan's gates
// and rolling back to 0 when one is breached. One replica at a time
// decides (the holder of the store lease "rollouts"); every replica reads
// the decided state from the store and applies it to its own splits.
//
// The config declares the plan; the store holds the live state (phase,
// step, percent), which wins over the plan for as long as the plan's
// generation is the one stored. So an operator's pause or abort stands
// across reloads and restarts until the route's rollout block changes.

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"torii/internal/slo"
	"torii/internal/store"
	"torii/internal/telemetry"
)

// Phases of a rollout, as stored and as Status reports them.
const (
	// PhaseProgressing advances step by step while the gates pass.
	PhaseProgressing = "progressing"
	// PhasePaused holds the current percent until an operator resumes.
	PhasePaused = "paused"
	// PhaseRolledBack holds at 0 after a gate was breached, until the
	// plan's generation changes or an operator resumes (from step 0).
	PhaseRolledBack = "rolled_back"
	// PhaseAborted holds at 0 after an operator's abort, until the plan's
	// generation changes or an operator resumes (from step 0).
	PhaseAborted = "aborted"
	// PhasePromoted holds at 100 after an operator's promote.
	PhasePromoted = "promoted"
	// PhaseCompleted holds at the last step after the rollout reached it.
	PhaseCompleted = "completed"
	// PhasePending is reported by Status for a plan whose generation has
	// no stored state yet: the leader starts it at its next tick. It is
	// never stored.
	PhasePending = "pending"
)

// Operator actions accepted by Controller.Act.
const (
	// ActionPause holds a progressing rollout where it is.
	ActionPause = "pause"
	// ActionResume continues a paused rollout at its step (the step's
	// hold starts over), or restarts a rolled-back or aborted one from
	// step 0.
	ActionResume = "resume"
	// ActionPromote sends every request to the candidate at once.
	ActionPromote = "promote"
	// ActionAbort sends every request away from the candidate at once.
	ActionAbort = "abort"
)

// Actions of the controller's own transitions, as audited and counted.
const (
	ActionStart    = "start"
	ActionAdvance  = "advance"
	ActionComplete = "complete"
	ActionRollback = "rollback"
)

// Gate names, in GateStatus and torii_rollout_gate_value.
const (
	GateMinRequests  = "min_requests"
	GateAvailability = "availability_burn_rate"
	GateLatency      = "latency_burn_rate"
	GateDiffPercent  = "diff_percent"
)

// ActorController is the audit actor of the controller's own transitions.
const ActorController = "rollout"

// DefaultRolloutInterval is ControllerOptions.Interval's default.
const DefaultRolloutInterval = 5 * time.Second

// MinGateWindow is the shortest span a gate looks back over, even right
// after a step started: a bucket of the SLO store (store.Resolution).
const MinGateWindow = 10 * time.Second

// rolloutLease is the store lease whose holder evaluates the plans.
const rolloutLease = "rollouts"

// staleReads is how many intervals the last successful read of the store
// may age before the controller freezes; also the lease's length, so a
// frozen or dead leader's lease lapses as its state goes stale.
const staleReads = 3

// actAttempts bounds how often Act re-reads and retries after losing a
// race for the stored state to another replica.
const actAttempts = 4

var (
	// ErrUnknownRoute is returned by Act for a route without a rollout
	// plan.
	ErrUnknownRoute = errors.New("no rollout plan for route")
	// ErrInvalidAction is returned by Act for an unknown action, or one
	// the rollout's phase does not allow.
	ErrInvalidAction = errors.New("invalid rollout action")

	// errStoreRead wraps a failed read of the rollout states, which the
	// frozen state reports (and logs once) already.
	errStoreRead = errors.New("read rollout states")
)

// Plan is a route's rollout as the config declares it.
type Plan struct {
	// Route is the route's name.
	Route string
	// Owner is the team notified of the rollout's transitions; "" for
	// none.
	Owner string
	// Candidate is the candidate backend's upstream name, whose burn
	// rates the gates judge.
	Candidate string
	// Generation identifies the plan (the caller hashes the route's
	// rollout block): a new generation restarts the rollout from step 0
	// and ends an operator's pause or abort. Required.
	Generation string
	// Steps are the candidate's percents, strictly increasing, each from
	// 0 to 100; 0 observes the candidate through shadow traffic alone.
	// Reaching the last step completes the rollout. Required.
	Steps []float64
	// Every is how long each step holds, with the gates passing, before
	// the next one. Required, above zero.
	Every time.Duration
	// Window is how far back the gates look at most; they never look
	// before the step started, and always at least MinGateWindow. Zero:
	// Every.
	Window time.Duration
	// MinRequests is how many candidate requests (shadow ones included)
	// the gate window needs before any gate judges, to advance or to roll
	// back. Zero counts as 1: a candidate that served nothing is never
	// judged.
	MinRequests int64
	// MaxBurnRate rolls the rollout back when the candidate's
	// availability or latency burn rate over the gate window exceeds it.
	// Required, above zero.
	MaxBurnRate float64
	// MaxDiffPercent rolls the rollout back when the route's diff percent
	// exceeds it. While it is set and no responses were compared yet, the
	// rollout does not advance. Zero: no diff gate.
	MaxDiffPercent float64
}

// Validate reports every problem of p, for the caller to refuse a config
// before it serves.
func (p Plan) Validate() error {
	var errs []error
	if p.Route == "" {
		errs = append(errs, errors.New("no route"))
	}
	if p.Candidate == "" {
		errs = append(errs, errors.New("no candidate"))
	}
	if p.Generation == "" {
		errs = append(errs, errors.New("no generation"))
	}
	if len(p.Steps) == 0 {
		errs = append(errs, errors.New("no steps"))
	}
	for i, s := range p.Steps {
		switch {
		case math.IsNaN(s) || s < 0 || s > 100:
			errs = append(errs, fmt.Errorf("steps[%d]: %v is not between 0 and 100", i, s))
		case i > 0 && s <= p.Steps[i-1]:
			errs = append(errs, fmt.Errorf("steps[%d]: %v does not exceed the step before, %v", i, s, p.Steps[i-1]))
		}
	}
	if p.Every <= 0 {
		errs = append(errs, fmt.Errorf("every: %s is not above zero", p.Every))
	}
	if p.Window < 0 {
		errs = append(errs, fmt.Errorf("window: %s is negative", p.Window))
	}
	if p.MinRequests < 0 {
		errs = append(errs, fmt.Errorf("min requests: %d is negative", p.MinRequests))
	}
	if !(p.MaxBurnRate > 0) || math.IsInf(p.MaxBurnRate, 0) {
		errs = append(errs, fmt.Errorf("max burn rate: %v is not above zero", p.MaxBurnRate))
	}
	if math.IsNaN(p.MaxDiffPercent) || p.MaxDiffPercent < 0 || p.MaxDiffPercent > 100 {
		errs = append(errs, fmt.Errorf("max diff percent: %v is not between 0 and 100", p.MaxDiffPercent))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("rollout plan of route %q: %w", p.Route, err)
	}
	return nil
}

// withDefaults returns p with the zero values that stand for defaults
// replaced, and its steps copied.
func (p Plan) withDefaults() Plan {
	p.Steps = slices.Clone(p.Steps)
	if p.Window == 0 {
		p.Window = p.Every
	}
	p.MinRequests = max(1, p.MinRequests)
	return p
}

// gateWindow is how far back the gates look, elapsed after the step
// started.
func (p Plan) gateWindow(elapsed time.Duration) time.Duration {
	return max(MinGateWindow, min(elapsed, p.Window))
}

// BurnSource reports a backend's recent burn rates within a route;
// *slo.Engine implements it.
type BurnSource interface {
	BackendBurn(ctx context.Context, route, backend string, w time.Duration) (slo.Burn, bool, error)
}

// DiffSource reports a route's share of candidate responses that differ
// from the primary's; *Diffs implements it.
type DiffSource interface {
	// DiffPercent returns the percent of compared requests whose
	// responses differ, and how many were compared; ok is false before
	// the first comparison.
	DiffPercent(route string) (percent float64, compared int64, ok bool)
}

// ControllerOptions are a Controller's dependencies. Store and Burn are
// required; zero values of the others take defaults.
type ControllerOptions struct {
	// Store holds the rollout states, the audit trail and the lease.
	// Required.
	Store store.Store
	// Burn reports the candidates' burn rates. Required.
	Burn BurnSource
	// Diffs reports the routes' diff rates. Nil: a plan with a diff gate
	// never advances.
	Diffs DiffSource
	// Notifier receives every transition, for the route owner's alert
	// channels. Nil: not sent.
	Notifier slo.Notifier
	// Now is the clock of steps, gates and the lease. Default: time.Now.
	Now func() time.Time
	// Interval is how often Run calls Tick. Default: 5s.
	Interval time.Duration
	// ReplicaID names this replica in the lease, so that one replica
	// alone evaluates the plans. Default: host/pid/random.
	ReplicaID string
	// Logger receives transitions, the freezing and unfreezing of
	// rollouts, and Run's failures. Default: slog.Default().
	Logger *slog.Logger
	// Registerer receives the torii_rollout_* metrics. Nil: not
	// registered.
	Registerer prometheus.Registerer
}

// GateStatus is one gate at the last evaluation.
type GateStatus struct {
	// Name is the gate: min_requests, availability_burn_rate,
	// latency_burn_rate or diff_percent.
	Name string `json:"name"`
	// Value is what was measured: requests, a burn rate or a percent.
	Value float64 `json:"value"`
	// Limit is the plan's bound: the least requests, or the most burn
	// rate or diff percent.
	Limit float64 `json:"limit"`
	// OK reports whether the value is within the limit. A diff gate with
	// nothing compared yet is not OK.
	OK bool `json:"ok"`
}

// Status is one route's rollout, for the admin API.
type Status struct {
	// Route, Owner, Candidate and Generation are the plan's.
	Route      string `json:"route"`
	Owner      string `json:"owner,omitempty"`
	Candidate  string `json:"candidate"`
	Generation string `json:"generation"`
	// Phase is one of the Phase constants.
	Phase string `json:"phase"`
	// Step is the index into Steps of the step last reached; after a
	// rollback or abort, the step it stopped at.
	Step int `json:"step"`
	// Steps are the plan's percents.
	Steps []float64 `json:"steps"`
	// Percent is the candidate's share of the route's traffic, in
	// percent.
	Percent float64 `json:"percent"`
	// StepStarted is when the current step or phase began; zero while
	// pending.
	StepStarted time.Time `json:"step_started,omitzero"`
	// NextStepAt is the earliest the rollout may advance, if the gates
	// pass; zero when it is not progressing or at its last step.
	NextStepAt time.Time `json:"next_step_at,omitzero"`
	// Frozen reports whether the rollout state could not be read from the
	// store recently: no transitions happen, the weights stay as they
	// are. FrozenReason says why.
	Frozen       bool   `json:"frozen"`
	FrozenReason string `json:"frozen_reason,omitempty"`
	// Waiting says why a progressing rollout cannot be judged yet, e.g.
	// too few candidate requests in the gate window; "" otherwise.
	Waiting string `json:"waiting,omitempty"`
	// Gates are the gates at EvaluatedAt; empty unless the rollout was
	// progressing then.
	Gates []GateStatus `json:"gates"`
	// EvaluatedAt is when this replica last looked at the rollout.
	EvaluatedAt time.Time `json:"evaluated_at,omitzero"`
	// Reason is why the last change happened.
	Reason string `json:"reason,omitempty"`
	// Updated is when the state was last saved.
	Updated time.Time `json:"updated,omitzero"`
	// Leader reports whether this replica held the lease at its last
	// tick, and so made the controller's decisions.
	Leader bool `json:"leader"`
}

// evaluation is what one tick found for a plan.
type evaluation struct {
	at      time.Time
	gates   []GateStatus
	waiting string
}

// splitKey identifies a split: a route under one plan generation.
type splitKey struct{ route, generation string }

// Controller drives every route's rollout. Every replica runs one; the
// holder of the store lease "rollouts" decides, the others follow the
// stored state. It is safe for concurrent use.
type Controller struct {
	store    store.Store
	burn     BurnSource
	diffs    DiffSource
	notifier slo.Notifier
	now      func() time.Time
	interval time.Duration
	replica  string
	log      *slog.Logger
	m        *rolloutMetrics

	// ioMu serialises Load, Tick and Act, so this replica never races
	// itself over the stored state (replicas race through SaveRollout's
	// version check). Lock order: ioMu, mu.
	ioMu sync.Mutex

	// mu guards the fields below.
	mu     sync.Mutex
	plans  map[string]Plan // by route, with defaults applied
	splits map[splitKey]*Split
	states map[string]store.RolloutState // by route, as last read or saved
	// lastRead is when the states were last read; zero: never.
	lastRead time.Time
	// readErr is why the last read failed; nil after a success.
	readErr error
	// frozenLogged reports whether the current freeze was logged.
	frozenLogged bool
	leader       bool
	evals        map[string]evaluation // by route
}

// NewController returns a controller with no plans. It starts nothing
// and touches no store.
func NewController(o ControllerOptions) (*Controller, error) {
	switch {
	case o.Store == nil:
		return nil, errors.New("new rollout controller: no store")
	case o.Burn == nil:
		return nil, errors.New("new rollout controller: no burn source")
	case o.Interval < 0:
		return nil, fmt.Errorf("new rollout controller: negative interval %s", o.Interval)
	}
	c := &Controller{
		store:    o.Store,
		burn:     o.Burn,
		diffs:    o.Diffs,
		notifier: o.Notifier,
		now:      o.Now,
		interval: cmp.Or(o.Interval, DefaultRolloutInterval),
		replica:  o.ReplicaID,
		log:      cmp.Or(o.Logger, slog.Default()),
		m:        newRolloutMetrics(o.Registerer),
		plans:    map[string]Plan{},
		splits:   map[splitKey]*Split{},
		states:   map[string]store.RolloutState{},
		evals:    map[string]evaluation{},
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.replica == "" {
		host, _ := os.Hostname()
		c.replica = fmt.Sprintf("%s/%d/%s", host, os.Getpid(), rand.Text()[:8])
	}
	return c, nil
}

// Load reads every rollout state from the store. Call it before the
// first snapshot is built, so that splits start at the stored percents.
// After an error the controller stays frozen until a later Tick reads the
// store.
func (c *Controller) Load(ctx context.Context) error {
	c.ioMu.Lock()
	defer c.ioMu.Unlock()
	now := c.now()
	err := c.read(ctx, now)
	c.noteFrozen(now)
	return err
}

// Split returns the live split of route under plan generation, for the
// route's proxy handler; base and candidate are as NewSplit takes them.
// The same route, generation, base and candidate give the same *Split
// across calls, so it outlives snapshot reloads. It starts at the stored
// percent when the stored state is of generation, else at firstStep (the
// plan's first step, which the leader starts a new generation at); a
// split replacing one of the same generation with other backends starts
// at that one's percent. Splits of other generations of route are dropped
// by the next Apply.
func (c *Controller) Split(route, generation string, base []int, candidate int, firstStep float64) (*Split, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := splitKey{route, generation}
	old := c.splits[k]
	if old != nil && old.same(base, candidate) {
		return old, nil
	}
	s, err := NewSplit(base, candidate)
	if err != nil {
		return nil, fmt.Errorf("split of route %q: %w", route, err)
	}
	percent := firstStep
	if st, ok := c.states[route]; ok && st.Generation == generation {
		percent = st.Percent
	} else if old != nil {
		percent = old.Percent()
	}
	if err := s.Set(percent); err != nil {
		return nil, fmt.Errorf("split of route %q: %w", route, err)
	}
	c.splits[k] = s
	return s, nil
}

// Apply installs the plans in force once a config serves. Splits of
// routes without a plan, or of another generation than their plan's, are
// dropped, and so are the metrics of routes whose plan went away. Invalid
// plans (see Plan.Validate) are logged and left out. Stored states of
// routes without a plan are kept, so that a plan coming back under the
// same generation resumes where it was.
func (c *Controller) Apply(plans []Plan) {
	next := make(map[string]Plan, len(plans))
	for _, p := range plans {
		if err := p.Validate(); err != nil {
			c.log.Error("rollout plan left out", "route", p.Route, "err", err)
			continue
		}
		next[p.Route] = p.withDefaults()
	}
	c.mu.Lock()
	var gone []string
	for route := range c.plans {
		if _, ok := next[route]; !ok {
			gone = append(gone, route)
			delete(c.evals, route)
		}
	}
	for k := range c.splits {
		if p, ok := next[k.route]; !ok || p.Generation != k.generation {
			delete(c.splits, k)
		}
	}
	c.plans = next
	c.mu.Unlock()
	for _, route := range gone {
		c.ForgetRoute(route)
	}
}

// ForgetRoute deletes route's torii_rollout_* series.
func (c *Controller) ForgetRoute(route string) {
	c.m.forget(route)
}

// Run calls Tick every Interval until ctx ends, logging its failures
// (a failed read of the store shows as the frozen state instead).
func (c *Controller) Run(ctx context.Context) {
	t := time.NewTicker(c.interval)
	defer t.Stop()
	for {
		if err := c.Tick(ctx); err != nil && ctx.Err() == nil && !errors.Is(err, errStoreRead) {
			c.log.Warn("rollout tick", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Tick reads every rollout state from the store and sets this replica's
// splits to the stored percents, so that a change made by another replica
// or an operator reaches every replica within one interval. Then, if this
// replica holds the lease "rollouts", it evaluates every plan and saves
// the transitions, each with its audit entry, and notifies the route's
// owner; a transition that loses a race with another replica is dropped
// and judged again at the next tick. While the store cannot be read, Tick
// changes nothing.
func (c *Controller) Tick(ctx context.Context) error {
	c.ioMu.Lock()
	defer c.ioMu.Unlock()
	now := c.now()
	err := c.read(ctx, now)
	c.noteFrozen(now)
	if errors.Is(err, errStoreRead) {
		c.mu.Lock()
		c.leader = false
		c.mu.Unlock()
		c.export(now)
		return err
	}
	errs := []error{err}
	leader, err := c.store.TryLease(ctx, rolloutLease, c.replica, staleReads*c.interval)
	if err != nil {
		leader = false
		errs = append(errs, fmt.Errorf("take the rollout lease: %w", err))
	}
	c.mu.Lock()
	c.leader = leader
	c.mu.Unlock()
	for _, p := range c.sortedPlans() {
		errs = append(errs, c.evaluate(ctx, p, now, leader))
	}
	c.export(now)
	return errors.Join(errs...)
}

// read replaces the states with the store's and sets the splits of the
// stored generations to the stored percents. A failed read returns an
// error wrapping errStoreRead; a split refusing its percent does not.
func (c *Controller) read(ctx context.Context, now time.Time) error {
	states, err := c.store.Rollouts(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.readErr = err
		return fmt.Errorf("%w: %w", errStoreRead, err)
	}
	c.readErr, c.lastRead = nil, now
	c.states = make(map[string]store.RolloutState, len(states))
	for _, st := range states {
		c.states[st.Route] = st
	}
	var errs []error
	for k, s := range c.splits {
		if st, ok := c.states[k.route]; ok && st.Generation == k.generation && s.Percent() != st.Percent {
			if err := s.Set(st.Percent); err != nil {
				errs = append(errs, fmt.Errorf("route %q: %w", k.route, err))
			}
		}
	}
	return errors.Join(errs...)
}

// frozenLocked reports whether the controller is frozen at now, and why.
// c.mu must be held.
func (c *Controller) frozenLocked(now time.Time) (bool, string) {
	switch {
	case c.readErr != nil:
		return true, "cannot read the rollout state from the store: " + c.readErr.Error()
	case c.lastRead.IsZero():
		return true, "the rollout state has not been read from the store yet"
	case now.Sub(c.lastRead) > staleReads*c.interval:
		return true, fmt.Sprintf("the rollout state is stale: last read from the store %s ago", now.Sub(c.lastRead).Round(time.Second))
	}
	return false, ""
}

// noteFrozen logs the start and the end of a freeze, once each.
func (c *Controller) noteFrozen(now time.Time) {
	c.mu.Lock()
	frozen, reason := c.frozenLocked(now)
	changed := frozen != c.frozenLogged
	c.frozenLogged = frozen
	c.mu.Unlock()
	switch {
	case changed && frozen:
		c.log.Warn("rollouts frozen: no step advances or rolls back until the store answers", "reason", reason)
	case changed:
		c.log.Info("rollouts unfrozen: the store answers again")
	}
}

// evaluate judges plan p at now and, on the leader, makes the transition
// it calls for.
func (c *Controller) evaluate(ctx context.Context, p Plan, now time.Time, leader bool) error {
	c.mu.Lock()
	st, stored := c.states[p.Route]
	c.mu.Unlock()
	ev := evaluation{at: now}
	defer func() {
		c.mu.Lock()
		c.evals[p.Route] = ev
		c.mu.Unlock()
	}()
	if !stored || st.Generation != p.Generation {
		if !leader {
			ev.waiting = "waiting for the leading replica to start the rollout"
			return nil
		}
		reason := "new rollout plan"
		if stored {
			reason = fmt.Sprintf("rollout plan changed (generation %s, was %s)", p.Generation, st.Generation)
		}
		return c.transition(ctx, p, st, stored, startState(p, now), ActionStart, ActorController, reason, now)
	}
	if st.Phase != PhaseProgressing {
		return nil
	}
	step := min(max(st.Step, 0), len(p.Steps)-1)
	b, ok, err := c.burn.BackendBurn(ctx, p.Route, p.Candidate, p.gateWindow(now.Sub(st.StepStarted)))
	if err != nil {
		ev.waiting = "cannot read the candidate's burn rates: " + err.Error()
		return fmt.Errorf("rollout of route %q: %w", p.Route, err)
	}
	ev.gates = append(ev.gates, GateStatus{Name: GateMinRequests, Value: float64(b.Events), Limit: float64(p.MinRequests), OK: b.Events >= p.MinRequests})
	if !ok {
		ev.waiting = "the route has no SLO, so the burn-rate gates cannot judge the candidate"
		return nil
	}
	ev.gates = append(ev.gates,
		GateStatus{Name: GateAvailability, Value: b.Availability, Limit: p.MaxBurnRate, OK: b.Availability <= p.MaxBurnRate},
		GateStatus{Name: GateLatency, Value: b.Latency, Limit: p.MaxBurnRate, OK: b.Latency <= p.MaxBurnRate})
	var diff float64
	var compared int64
	diffOK := false
	if p.MaxDiffPercent > 0 {
		if c.diffs != nil {
			diff, compared, diffOK = c.diffs.DiffPercent(p.Route)
		}
		ev.gates = append(ev.gates, GateStatus{Name: GateDiffPercent, Value: diff, Limit: p.MaxDiffPercent, OK: diffOK && diff <= p.MaxDiffPercent})
	}
	for _, g := range ev.gates {
		c.m.gate.WithLabelValues(p.Route, g.Name).Set(g.Value)
	}
	if b.Events < p.MinRequests {
		ev.waiting = fmt.Sprintf("waiting for %d candidate requests in the last %s (%d so far)", p.MinRequests, b.Window, b.Events)
		return nil
	}
	var breach string
	switch {
	case b.Availability > p.MaxBurnRate:
		breach = fmt.Sprintf("gate %s %.1f > %.1f over %s (%d requests, %d errors)", GateAvailability, b.Availability, p.MaxBurnRate, b.Window, b.Events, b.Errors)
	case b.Latency > p.MaxBurnRate:
		breach = fmt.Sprintf("gate %s %.1f > %.1f over %s (%d requests, %d slow)", GateLatency, b.Latency, p.MaxBurnRate, b.Window, b.Events, b.Slow)
	case diffOK && diff > p.MaxDiffPercent:
		breach = fmt.Sprintf("gate %s %.2f > %.2f (%d compared)", GateDiffPercent, diff, p.MaxDiffPercent, compared)
	}
	if breach != "" {
		if !leader {
			return nil
		}
		next := st
		next.Phase, next.Percent, next.StepStarted, next.Reason = PhaseRolledBack, 0, now, breach
		return c.transition(ctx, p, st, true, next, ActionRollback, ActorController, breach, now)
	}
	if p.MaxDiffPercent > 0 && !diffOK {
		ev.waiting = "waiting for the first response comparison (the diff gate judges every step)"
		return nil
	}
	if now.Sub(st.StepStarted) < p.Every || !leader {
		return nil
	}
	next := st
	next.Step = min(step+1, len(p.Steps)-1)
	next.Percent, next.StepStarted = p.Steps[next.Step], now
	gates := fmt.Sprintf("%d requests over %s, burn rates %.2f availability, %.2f latency", b.Events, b.Window, b.Availability, b.Latency)
	if p.MaxDiffPercent > 0 {
		gates += fmt.Sprintf(", diff %.2f%% of %d compared", diff, compared)
	}
	next.Reason = fmt.Sprintf("held %s at %g%% with the gates passing (%s)", now.Sub(st.StepStarted).Round(time.Second), st.Percent, gates)
	action := ActionAdvance
	if next.Step == len(p.Steps)-1 {
		next.Phase, action = PhaseCompleted, ActionComplete
	}
	return c.transition(ctx, p, st, true, next, action, ActorController, next.Reason, now)
}

// startState is step 0 of p, progressing from now; a one-step plan is
// complete at once.
func startState(p Plan, now time.Time) store.RolloutState {
	st := store.RolloutState{Route: p.Route, Generation: p.Generation, Phase: PhaseProgressing, Percent: p.Steps[0], StepStarted: now}
	if len(p.Steps) == 1 {
		st.Phase = PhaseCompleted
	}
	return st
}

// transition saves next as the state of p's route over prev (stored: a
// state was read, of any generation) with its audit entry, then applies
// it to the split, counts it and notifies. A save that loses to another
// writer returns an error wrapping store.ErrConflict and changes nothing.
func (c *Controller) transition(ctx context.Context, p Plan, prev store.RolloutState, stored bool, next store.RolloutState, action, actor, reason string, now time.Time) error {
	var expect int64
	if stored {
		expect = prev.Version
	}
	next.Route, next.Generation, next.Updated, next.Reason = p.Route, p.Generation, now, reason
	from := next.Percent
	c.mu.Lock()
	if stored && prev.Generation == p.Generation {
		from = prev.Percent
	} else if s := c.splits[splitKey{p.Route, p.Generation}]; s != nil {
		from = s.Percent()
	}
	c.mu.Unlock()
	audit := &store.AuditEntry{Route: p.Route, Generation: p.Generation, At: now, Actor: actor, Action: action,
		FromPercent: from, ToPercent: next.Percent, Reason: reason}
	if err := c.store.SaveRollout(ctx, next, expect, audit); err != nil {
		if errors.Is(err, store.ErrConflict) && actor == ActorController {
			return nil // another replica got there first: judged again after the next read
		}
		return fmt.Errorf("save rollout of route %q: %s: %w", p.Route, action, err)
	}
	next.Version = expect + 1
	var errs []error
	c.mu.Lock()
	c.states[p.Route] = next
	if s := c.splits[splitKey{p.Route, p.Generation}]; s != nil {
		if err := s.Set(next.Percent); err != nil {
			errs = append(errs, fmt.Errorf("route %q: %w", p.Route, err))
		}
	}
	if ev, ok := c.evals[p.Route]; ok {
		ev.waiting = ""
		c.evals[p.Route] = ev
	}
	c.mu.Unlock()
	c.m.transitions.WithLabelValues(p.Route, action).Inc()
	c.log.Info("rollout "+action, "route", p.Route, "actor", actor, "from_percent", from, "to_percent", next.Percent, "phase", next.Phase, "reason", reason)
	c.notify(ctx, p, prev, next, action, actor, from)
	return errors.Join(errs...)
}

// stopped reports whether phase holds the candidate at 0 until a human or
// a new plan acts: the phases whose notification fires.
func stopped(phase string) bool { return phase == PhaseRolledBack || phase == PhaseAborted }

// notify sends a transition to the route owner. Entering rolled_back or
// aborted fires an alert (severity page for a rollback, info for an
// abort), which the alert dispatcher re-sends until the rollout leaves
// that phase; the notification of the transition that leaves it resolves
// it, and so carries the firing one's labels. Every other transition is
// sent resolved at once: webhooks receive it as an event, Alertmanager
// records it without notifying.
func (c *Controller) notify(ctx context.Context, p Plan, prev, next store.RolloutState, action, actor string, from float64) {
	if c.notifier == nil {
		return
	}
	labelAction, severity := action, "info"
	if action == ActionRollback {
		severity = "page"
	}
	n := slo.Notification{Key: p.Route + "/rollout", Firing: stopped(next.Phase), StartsAt: next.Updated, Team: p.Owner}
	if !n.Firing {
		n.EndsAt = next.Updated
		if stopped(prev.Phase) {
			// Resolve the firing alert: Alertmanager tells alerts apart
			// by their labels.
			n.StartsAt, labelAction = prev.StepStarted, ActionAbort
			if prev.Phase == PhaseRolledBack {
				labelAction, severity = ActionRollback, "page"
			}
		}
	}
	n.Labels = map[string]string{"alertname": "ToriiRollout", "severity": severity, "route": p.Route, "team": p.Owner, "action": labelAction}
	n.Annotations = map[string]string{
		"summary":     fmt.Sprintf("Rollout of route %s to %s: %s by %s, %g%% to %g%% (now %s)", p.Route, p.Candidate, action, actor, from, next.Percent, next.Phase),
		"description": next.Reason,
	}
	c.notifier.Notify(ctx, n)
}

// Act applies an operator's action to route's rollout: pause, resume,
// promote or abort (see the Action constants). actor is recorded in the
// audit trail (e.g. "admin"; "" is recorded as "admin"), and reason with
// it when not "". The new state is saved (re-read and retried a few times
// when another replica saves at once), applied to this replica's split at
// once and notified; other replicas follow within a tick. Act fails with
// ErrUnknownRoute for a route without a plan, ErrInvalidAction for an
// action unknown or not allowed in the rollout's phase, or the store's
// error, wrapped: while the store cannot be read, nothing can be changed.
func (c *Controller) Act(ctx context.Context, route, action, actor, reason string) (Status, error) {
	switch action {
	case ActionPause, ActionResume, ActionPromote, ActionAbort:
	default:
		return Status{}, fmt.Errorf("%w %q: want pause, resume, promote or abort", ErrInvalidAction, action)
	}
	actor = cmp.Or(actor, "admin")
	c.ioMu.Lock()
	defer c.ioMu.Unlock()
	for attempt := 1; ; attempt++ {
		c.mu.Lock()
		p, ok := c.plans[route]
		c.mu.Unlock()
		if !ok {
			return Status{}, fmt.Errorf("%s rollout of route %q: %w", action, route, ErrUnknownRoute)
		}
		now := c.now()
		err := c.read(ctx, now)
		c.noteFrozen(now)
		if errors.Is(err, errStoreRead) {
			return Status{}, fmt.Errorf("%s rollout of route %q: %w", action, route, err)
		}
		c.mu.Lock()
		st, stored := c.states[route]
		c.mu.Unlock()
		cur := st
		if !stored || st.Generation != p.Generation {
			cur = startState(p, now) // not started yet: act on step 0
		}
		next, err := operate(p, cur, action, now)
		if err != nil {
			return Status{}, fmt.Errorf("%s rollout of route %q: %w", action, route, err)
		}
		why := reason
		if why == "" {
			why = fmt.Sprintf("%s by %s", action, actor)
		}
		err = c.transition(ctx, p, st, stored, next, action, actor, why, now)
		if errors.Is(err, store.ErrConflict) && attempt < actAttempts {
			continue
		}
		if err != nil {
			return Status{}, err
		}
		c.export(now)
		return c.status(p, now), nil
	}
}

// operate returns the state action leads to from cur, or an error
// wrapping ErrInvalidAction when cur's phase does not allow it.
func operate(p Plan, cur store.RolloutState, action string, now time.Time) (store.RolloutState, error) {
	next := cur
	next.StepStarted = now
	allowed := false
	switch action {
	case ActionPause:
		allowed = cur.Phase == PhaseProgressing
		next.Phase = PhasePaused
	case ActionResume:
		switch cur.Phase {
		case PhasePaused:
			allowed, next.Phase = true, PhaseProgressing
		case PhaseRolledBack, PhaseAborted:
			allowed = true
			next = startState(p, now)
		}
	case ActionPromote:
		allowed = cur.Phase != PhasePromoted && cur.Phase != PhaseCompleted
		next.Phase, next.Percent, next.Step = PhasePromoted, 100, len(p.Steps)-1
	case ActionAbort:
		allowed = !stopped(cur.Phase)
		next.Phase, next.Percent = PhaseAborted, 0
	}
	if !allowed {
		return cur, fmt.Errorf("%w: cannot %s a rollout that is %s", ErrInvalidAction, action, cur.Phase)
	}
	return next, nil
}

// Status returns every planned rollout, by route.
func (c *Controller) Status() []Status {
	now := c.now()
	plans := c.sortedPlans()
	out := make([]Status, 0, len(plans))
	for _, p := range plans {
		out = append(out, c.status(p, now))
	}
	return out
}

// sortedPlans returns the plans by route.
func (c *Controller) sortedPlans() []Plan {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.SortedFunc(maps.Values(c.plans), func(a, b Plan) int { return cmp.Compare(a.Route, b.Route) })
}

// status returns p's rollout as this replica knows it at now.
func (c *Controller) status(p Plan, now time.Time) Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := Status{Route: p.Route, Owner: p.Owner, Candidate: p.Candidate, Generation: p.Generation,
		Steps: slices.Clone(p.Steps), Leader: c.leader, Gates: []GateStatus{}}
	if st, ok := c.states[p.Route]; ok && st.Generation == p.Generation {
		s.Phase, s.Step, s.Percent, s.StepStarted, s.Reason, s.Updated = st.Phase, st.Step, st.Percent, st.StepStarted, st.Reason, st.Updated
		if st.Phase == PhaseProgressing && st.Step < len(p.Steps)-1 {
			s.NextStepAt = st.StepStarted.Add(p.Every)
		}
	} else {
		s.Phase, s.Percent = PhasePending, p.Steps[0]
		if sp := c.splits[splitKey{p.Route, p.Generation}]; sp != nil {
			s.Percent = sp.Percent()
		}
	}
	s.Frozen, s.FrozenReason = c.frozenLocked(now)
	if ev, ok := c.evals[p.Route]; ok {
		s.EvaluatedAt, s.Waiting = ev.at, ev.waiting
		if s.Phase == PhaseProgressing || s.Phase == PhasePending {
			s.Gates = append(s.Gates, ev.gates...)
		}
	}
	return s
}

// Audit returns route's audit trail ("": every route's), newest first, at
// most limit entries (<= 0: 100).
func (c *Controller) Audit(ctx context.Context, route string, limit int) ([]store.AuditEntry, error) {
	es, err := c.store.Audit(ctx, route, limit)
	if err != nil {
		return nil, fmt.Errorf("rollout audit of route %q: %w", route, err)
	}
	return es, nil
}

// export sets the per-route gauges from the current state.
func (c *Controller) export(now time.Time) {
	for _, p := range c.sortedPlans() {
		s := c.status(p, now)
		c.m.percent.WithLabelValues(p.Route).Set(s.Percent)
		c.m.step.WithLabelValues(p.Route).Set(float64(s.Step))
		frozen := 0.0
		if s.Frozen {
			frozen = 1
		}
		c.m.frozen.WithLabelValues(p.Route).Set(frozen)
	}
}

// rolloutMetrics are the torii_rollout_* metrics.
type rolloutMetrics struct {
	percent, step, frozen *prometheus.GaugeVec   // route
	transitions           *prometheus.CounterVec // route, action
	gate                  *prometheus.GaugeVec   // route, gate
}

// newRolloutMetrics returns the metrics, registered with reg when it is
// not nil (reusing those registered before).
func newRolloutMetrics(reg prometheus.Registerer) *rolloutMetrics {
	m := &rolloutMetrics{
		percent: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "torii_rollout_candidate_percent",
			Help: "The rollout candidate's share of the route's traffic on this replica, in percent."}, []string{"route"}),
		step: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "torii_rollout_step",
			Help: "Index of the rollout step last reached (0 is the plan's first step)."}, []string{"route"}),
		frozen: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "torii_rollout_frozen",
			Help: "1 while the rollout is frozen because its state cannot be read from the store, else 0."}, []string{"route"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "torii_rollout_transitions_total",
			Help: "Rollout transitions made by this replica, by action (start, advance, complete, rollback, pause, resume, promote, abort)."}, []string{"route", "action"}),
		gate: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "torii_rollout_gate_value",
			Help: "A rollout gate's value at this replica's last evaluation: candidate requests, a burn rate or a diff percent."}, []string{"route", "gate"}),
	}
	if reg != nil {
		m.percent = telemetry.Register(reg, m.percent)
		m.step = telemetry.Register(reg, m.step)
		m.frozen = telemetry.Register(reg, m.frozen)
		m.transitions = telemetry.Register(reg, m.transitions)
		m.gate = telemetry.Register(reg, m.gate)
	}
	return m
}

// forget deletes route's series.
func (m *rolloutMetrics) forget(route string) {
	l := prometheus.Labels{"route": route}
	m.percent.DeletePartialMatch(l)
	m.step.DeletePartialMatch(l)
	m.frozen.DeletePartialMatch(l)
	m.transitions.DeletePartialMatch(l)
	m.gate.DeletePartialMatch(l)
}
