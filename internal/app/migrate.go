package app

import (
	"context"
	"fmt"
	"slices"
	"time"

	"torii/internal/config"
	"torii/internal/migrate"
)

// This file wires migrations (issue 6) into the app: response diffs and
// the rollout controller, which outlive reloads like the SLO engine.

// openMigrations builds the diff keeper and the rollout controller on the
// store, and reads the rollouts' live state so the first snapshot starts
// at the stored weights. An unreachable store leaves rollouts frozen.
func (a *App) openMigrations(replica string) error {
	var err error
	a.diffs, err = migrate.NewDiffs(migrate.DiffsOptions{Store: a.store, Logger: a.logger, Registerer: a.prom})
	if err != nil {
		return fmt.Errorf("diffs: %w", err)
	}
	a.rollouts, err = migrate.NewController(migrate.ControllerOptions{
		Store:      a.store,
		Burn:       a.slo,
		Diffs:      a.diffs,
		Notifier:   alertNotifier{a.alerts},
		ReplicaID:  replica,
		Logger:     a.logger,
		Registerer: a.prom,
	})
	if err != nil {
		return fmt.Errorf("rollouts: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.rollouts.Load(ctx); err != nil {
		a.logger.Warn("rollout state unreadable; rollouts stay frozen until the store answers", "err", err)
	}
	return nil
}

// applyMigrations hands the rollout plans and compared routes of cfg to
// the controller and the diff keeper, after cfg's snapshot is swapped in.
func (a *App) applyMigrations(cfg *config.Config) {
	a.rollouts.Apply(plans(cfg))
	var compared []string
	for i := range cfg.Routes {
		if s := cfg.Routes[i].Shadow; s != nil && s.Compare != nil {
			compared = append(compared, cfg.Routes[i].Name)
		}
	}
	a.diffs.Apply(compared)
}

// plans returns the rollout plans of cfg.
func plans(cfg *config.Config) []migrate.Plan {
	var out []migrate.Plan
	for i := range cfg.Routes {
		r := &cfg.Routes[i]
		ro := r.Rollout
		if ro == nil {
			continue
		}
		cand, _, _ := r.Candidate()
		out = append(out, migrate.Plan{
			Route:          r.Name,
			Owner:          r.Owner,
			Candidate:      cand,
			Generation:     r.Generation(),
			Steps:          slices.Clone(ro.Steps),
			Every:          ro.Every.D(),
			Window:         ro.Window.D(),
			MinRequests:    int64(ro.MinRequests),
			MaxBurnRate:    ro.MaxBurnRate,
			MaxDiffPercent: ro.MaxDiffPercent,
		})
	}
	return out
}

// Migrations returns every migrating route, for GET /api/v1/migrations.
func (a *App) Migrations() []migrate.Migration {
	cfg := a.snap.Load().Config()
	rollouts := map[string]migrate.Status{}
	for _, st := range a.rollouts.Status() {
		rollouts[st.Route] = st
	}
	out := []migrate.Migration{}
	for i := range cfg.Routes {
		r := &cfg.Routes[i]
		if !migrate.Migrating(r) {
			continue
		}
		m := migrate.Migration{Route: r.Name, Owner: r.Owner}
		if st, ok := rollouts[r.Name]; ok && r.Rollout != nil {
			m.Rollout = &st
		}
		m.Backends = migrate.Shares(r, m.Rollout)
		if s := r.Shadow; s != nil {
			m.Shadow = &migrate.ShadowInfo{Upstream: s.Upstream, Percent: s.Percent, Compare: s.Compare != nil}
			if rep, ok := a.diffs.Report(r.Name); ok && s.Compare != nil {
				m.Diff = &rep
			}
		}
		out = append(out, m)
	}
	return out
}

// Migration returns one migrating route with its audit trail, for GET
// /api/v1/migrations/{route}.
func (a *App) Migration(ctx context.Context, route string) (migrate.Migration, error) {
	for _, m := range a.Migrations() {
		if m.Route != route {
			continue
		}
		if m.Rollout != nil {
			es, err := a.rollouts.Audit(ctx, route, 50)
			if err != nil {
				return m, fmt.Errorf("read the audit trail: %w", err)
			}
			m.Audit = migrate.AuditRecords(es)
		}
		return m, nil
	}
	return migrate.Migration{}, fmt.Errorf("route %q: %w", route, migrate.ErrNotMigrating)
}

// MigrationAction applies an operator's pause, resume, promote or abort.
func (a *App) MigrationAction(ctx context.Context, route, action, actor, reason string) (migrate.Status, error) {
	return a.rollouts.Act(ctx, route, action, actor, reason)
}

// DiffSamples returns a route's stored diff samples at field ("" for
// every field), newest first.
func (a *App) DiffSamples(ctx context.Context, route, field string, limit int) ([]migrate.SampleRecord, error) {
	ss, err := a.diffs.Samples(ctx, route, field, limit)
	if err != nil {
		return nil, err
	}
	return migrate.SampleRecords(ss), nil
}
