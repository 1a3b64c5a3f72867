package proxy

import (
	"context"
	"sync"
	"testing"
	"time"

	"torii/internal/reqctx"
)

func TestTimeoutsFire(t *testing.T) {
	const d = 30 * time.Millisecond
	q := newTimeouts(d, ErrTimeout)
	ctx := reqctx.New(context.Background())
	var e timeout
	began := time.Now()
	q.start(&e, ctx)
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("timeout never fired")
	}
	if took := time.Since(began); took < d {
		t.Fatalf("fired after %v, before its %v", took, d)
	}
	if ctx.Cause() != ErrTimeout {
		t.Fatalf("Cause = %v, want ErrTimeout", ctx.Cause())
	}
	if e.stop() {
		t.Fatal("stop after firing reported true")
	}
	if newTimeouts(0, ErrTimeout) != nil {
		t.Fatal("a zero duration made a timeouts")
	}
}

func TestTimeoutsStop(t *testing.T) {
	const d = 20 * time.Millisecond
	q := newTimeouts(d, ErrTimeout)
	// The oldest entry stops; the timer armed for it must still fire for
	// the next one, at that one's own deadline.
	first, second := reqctx.New(context.Background()), reqctx.New(context.Background())
	var a, b timeout
	q.start(&a, first)
	time.Sleep(d / 2)
	q.start(&b, second)
	if !a.stop() || a.stop() {
		t.Fatal("stop: want true, then false")
	}
	select {
	case <-second.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the entry after a stopped oldest never fired")
	}
	time.Sleep(d)
	if first.Err() != nil {
		t.Fatal("a stopped entry fired")
	}
	// A fired entry can start again, as a retry's try does.
	third := reqctx.New(context.Background())
	q.start(&b, third)
	if !b.stop() {
		t.Fatal("restarted entry: stop reported false")
	}
	for i := range q.shards {
		s := &q.shards[i]
		s.mu.Lock()
		left := s.head != nil || s.tail != nil
		s.mu.Unlock()
		if left {
			t.Fatal("entries left in a shard")
		}
	}
	var never timeout
	if never.stop() {
		t.Fatal("stop of an entry never started reported true")
	}
}

// Many requests start and stop at once while some expire: run with -race.
func TestTimeoutsConcurrent(t *testing.T) {
	q := newTimeouts(time.Millisecond, ErrTimeout)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				ctx := reqctx.New(context.Background())
				var e timeout
				q.start(&e, ctx)
				if (g+i)%3 == 0 {
					time.Sleep(2 * time.Millisecond)
				}
				if e.stop() && ctx.Err() != nil {
					t.Error("stop reported true for an entry whose context was canceled")
				}
			}
		}()
	}
	wg.Wait()
}

func BenchmarkTimeouts(b *testing.B) {
	q := newTimeouts(30*time.Second, ErrTimeout)
	ctx := reqctx.New(context.Background())
	var e timeout // in the exchange
	b.ReportAllocs()
	for b.Loop() {
		q.start(&e, ctx)
		e.stop()
	}
}

func BenchmarkAfterFunc(b *testing.B) {
	ctx := reqctx.New(context.Background())
	b.ReportAllocs()
	for b.Loop() {
		t := time.AfterFunc(30*time.Second, func() { ctx.Cancel(ErrTimeout) })
		t.Stop()
	}
}
