package migrate

import (
	"strings"
	"testing"
	"time"

	"torii/internal/store"
	"torii/internal/testpg"
)

// TestRolloutTwoReplicasPostgres is the second half of acceptance point 5:
// two replicas, each with its own SLO engine and controller, share one
// PostgreSQL database. Exactly one leads; the other's split follows each
// step within a tick; an abort made through the follower stands.
func TestRolloutTwoReplicasPostgres(t *testing.T) {
	ctx := t.Context()
	dsn := testpg.DSN(t)
	clk := &rolloutClock{t: rolloutT0}
	open := func() store.Store {
		s, err := store.OpenPostgres(ctx, dsn, store.Options{Now: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a := newRolloutReplica(t, "a", clk, open(), rolloutPlan("g1"))
	b := newRolloutReplica(t, "b", clk, open(), rolloutPlan("g1"))
	a.rate, b.rate = 50, 50 // 100 req/s behind a load balancer
	both := []*rolloutReplica{a, b}

	// After every round of ticks: one leader, and the splits apart for at
	// most one round (the follower may tick before the leader moves).
	var leader, follower *rolloutReplica
	apart, lagged, rounds := 0, 0, 0
	s := &rolloutSim{t: t, clk: clk, replicas: both}
	s.afterTick = func() {
		rounds++
		var leaders []*rolloutReplica
		for _, r := range both {
			if r.status(t).Leader {
				leaders = append(leaders, r)
			}
		}
		if len(leaders) != 1 {
			t.Fatalf("round %d: %d leaders, want exactly one", rounds, len(leaders))
		}
		if leader != nil && leaders[0] != leader {
			t.Errorf("round %d: the lease moved from %s to %s", rounds, leader.name, leaders[0].name)
		}
		leader = leaders[0]
		follower = a
		if leader == a {
			follower = b
		}
		if leader.split.Percent() == follower.split.Percent() {
			apart = 0
			return
		}
		lagged++
		if apart++; apart > 1 {
			t.Errorf("round %d: follower %s at %v%%, leader at %v%% for two ticks", rounds, follower.name, follower.split.Percent(), leader.split.Percent())
		}
	}
	// b takes the lease first; a, ticking before it in every round, sees
	// each of its steps a round late: the slowest a follower can be.
	if err := b.c.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	s.tick()
	if leader != b {
		t.Fatalf("leader %s, want b, which ticked first", leader.name)
	}
	if !s.run(5*time.Minute, func() bool { return a.split.Percent() == 25 && b.split.Percent() == 25 }) {
		t.Fatalf("never reached 25%% on both: %+v, %+v", a.status(t), b.status(t))
	}

	if lagged == 0 {
		t.Error("the follower never lagged behind the leader's step changes")
	}

	// An abort through the follower: at once there, within a tick on the
	// leader, and it stands.
	st, err := follower.c.Act(ctx, "items", ActionAbort, "admin:bob", "errors in the candidate's logs")
	if err != nil {
		t.Fatal(err)
	}
	if st.Phase != PhaseAborted || st.Leader || follower.split.Percent() != 0 {
		t.Errorf("abort through the follower: %+v, its split at %v%%", st, follower.split.Percent())
	}
	s.tick()
	if got := leader.status(t); got.Phase != PhaseAborted || leader.split.Percent() != 0 {
		t.Errorf("leader a tick after the abort: %s at %v%%", got.Phase, leader.split.Percent())
	}
	s.run(3*time.Minute, nil)
	for _, r := range both {
		if got := r.status(t); got.Phase != PhaseAborted || r.split.Percent() != 0 {
			t.Errorf("%s 3 minutes after the abort: %s at %v%%", r.name, got.Phase, r.split.Percent())
		}
	}
	es := rolloutAudit(t, a.c)
	want := "start 1, advance 5, advance 25, abort 0"
	if got := strings.Join(auditActions(es), ", "); got != want {
		t.Errorf("audit: got %s, want %s", got, want)
	}
	if last := es[len(es)-1]; last.Actor != "admin:bob" || last.Reason != "errors in the candidate's logs" {
		t.Errorf("abort entry %+v", last)
	}
	// Each transition was notified once, by the replica that made it.
	if n, m := len(leader.notes.all()), len(follower.notes.all()); n != 3 || m != 1 {
		t.Errorf("notifications: leader %d, follower %d; want 3 and 1", n, m)
	}

	// The follower takes over when the leader stops.
	s.replicas = []*rolloutReplica{follower}
	s.afterTick = nil
	s.run(20*time.Second, nil)
	if !follower.status(t).Leader {
		t.Errorf("%s did not take the lease over after %s stopped", follower.name, leader.name)
	}
}
