package reqctx

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

type key struct{}

var errTimeout = errors.New("route timeout")

// canceled reports whether ctx's Done is closed.
func canceled(ctx context.Context) bool {
	select {
	case <-ctx.Done():
		return true
	default:
		return false
	}
}

// waitDone waits a little for ctx's Done, for cancellations that travel
// through a goroutine.
func waitDone(t *testing.T, ctx context.Context) {
	t.Helper()
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("context not canceled")
	}
}

func TestCancel(t *testing.T) {
	base := context.WithValue(context.Background(), key{}, "v")
	c := New(base)
	if c.Err() != nil || c.Cause() != nil || canceled(c) {
		t.Fatal("a new Context is canceled")
	}
	if c.Value(key{}) != "v" {
		t.Fatalf("Value = %v, want the parent's", c.Value(key{}))
	}
	if _, ok := c.Deadline(); ok {
		t.Fatal("Deadline without one in the parent")
	}
	done := c.Done()
	c.Cancel(errTimeout)
	c.Cancel(errors.New("second")) // no effect
	if !canceled(c) || done != c.Done() {
		t.Fatal("Done not closed, or a new channel")
	}
	if c.Err() != context.Canceled || c.Cause() != errTimeout {
		t.Fatalf("Err, Cause = %v, %v; want Canceled, the first cause", c.Err(), c.Cause())
	}

	// Canceled before anyone asked for Done; no cause.
	c = New(base)
	c.Cancel(nil)
	if !canceled(c) || c.Cause() != context.Canceled {
		t.Fatalf("Done open or Cause %v after Cancel(nil)", c.Cause())
	}
}

func TestSetValue(t *testing.T) {
	type other struct{}
	p := New(context.WithValue(context.Background(), other{}, "parent's"))
	if !p.SetValue(key{}, "own") || p.SetValue(other{}, "second") || p.SetValue(nil, 1) {
		t.Fatal("SetValue: want true once, then false")
	}
	if p.Value(key{}) != "own" || p.Value(other{}) != "parent's" {
		t.Fatalf("Value = %v, %v; want own, then the parent's", p.Value(key{}), p.Value(other{}))
	}
	// Children see it, and a child's own value hides it.
	c := New(p)
	if c.Value(key{}) != "own" {
		t.Fatal("child does not see its parent's value")
	}
	c.SetValue(key{}, "child's")
	if c.Value(key{}) != "child's" || p.Value(key{}) != "own" {
		t.Fatal("a child's value leaked into its parent or was hidden")
	}
	// A value never hides the nearest-Context lookup.
	var embedded struct {
		n int
		Context
	}
	embedded.Init(p)
	if embedded.Value(&ctxKey) != &embedded.Context || embedded.up != p {
		t.Fatal("an embedded Context is not linked to its parent")
	}
	p.Cancel(nil)
	if !canceled(&embedded.Context) {
		t.Fatal("embedded Context not canceled with its parent")
	}
}

func TestChildren(t *testing.T) {
	cases := map[string]func(p *Context) context.Context{
		"direct":     func(p *Context) context.Context { return p },
		"with value": func(p *Context) context.Context { return context.WithValue(p, key{}, 1) },
		"two values": func(p *Context) context.Context {
			return context.WithValue(context.WithValue(p, key{}, 1), &ctxKey, p)
		},
	}
	for name, wrap := range cases {
		t.Run(name, func(t *testing.T) {
			p := New(context.Background())
			c := New(wrap(p))
			if c.up != p {
				t.Fatal("child not in its parent's list")
			}
			gc := New(c)
			p.Cancel(errTimeout)
			for _, x := range []*Context{c, gc} {
				if !canceled(x) || x.Err() != context.Canceled || x.Cause() != errTimeout {
					t.Fatalf("descendant: Err %v, Cause %v; want the parent's", x.Err(), x.Cause())
				}
			}
		})
	}
}

// A Context under a context.WithCancel under a Context is canceled by
// the middle one, which the nearest-Context shortcut must not skip.
func TestChildOfForeignMiddle(t *testing.T) {
	p := New(context.Background())
	mid, cancel := context.WithCancelCause(context.WithValue(p, key{}, 1))
	c := New(mid)
	if c.up != nil {
		t.Fatal("linked past a context.WithCancel")
	}
	cancel(errTimeout)
	waitDone(t, c)
	if c.Err() != context.Canceled || c.Cause() != errTimeout {
		t.Fatalf("Err, Cause = %v, %v; want the middle's", c.Err(), c.Cause())
	}
	if canceled(p) {
		t.Fatal("the top was canceled")
	}
	// The middle is still canceled by the top.
	p2 := New(context.Background())
	mid2, cancel2 := context.WithCancel(p2)
	defer cancel2()
	c2 := New(mid2)
	p2.Cancel(nil)
	waitDone(t, mid2)
	waitDone(t, c2)
}

func TestForeignParent(t *testing.T) {
	parent, cancel := context.WithCancelCause(context.Background())
	c := New(parent)
	if canceled(c) {
		t.Fatal("canceled early")
	}
	cancel(errTimeout)
	waitDone(t, c)
	if c.Err() != context.Canceled || c.Cause() != errTimeout {
		t.Fatalf("Err, Cause = %v, %v", c.Err(), c.Cause())
	}

	// Canceling the child stops its watch on the parent.
	parent, cancel = context.WithCancelCause(context.Background())
	c = New(parent)
	c.Cancel(nil)
	if c.unhook != nil {
		t.Fatal("watch on the parent kept after Cancel")
	}
	cancel(nil)

	// A deadline parent: its Err and Deadline come through.
	dl, stop := context.WithTimeout(context.Background(), time.Millisecond)
	defer stop()
	c = New(dl)
	if _, ok := c.Deadline(); !ok {
		t.Fatal("parent's deadline lost")
	}
	waitDone(t, c)
	if c.Err() != context.DeadlineExceeded {
		t.Fatalf("Err = %v, want DeadlineExceeded", c.Err())
	}
}

func TestParentAlreadyCanceled(t *testing.T) {
	p := New(context.Background())
	p.Cancel(errTimeout)
	for _, parent := range []context.Context{p, context.WithValue(p, key{}, 1)} {
		if c := New(parent); !canceled(c) || c.Cause() != errTimeout {
			t.Fatalf("child of a canceled Context: Cause %v", c.Cause())
		}
	}
	f, cancel := context.WithCancelCause(context.Background())
	cancel(errTimeout)
	if c := New(f); !canceled(c) || c.Cause() != errTimeout {
		t.Fatalf("child of a canceled context: Cause %v", c.Cause())
	}
}

func TestCancelUnlinks(t *testing.T) {
	p := New(context.Background())
	for range 100 {
		c := New(context.WithValue(p, key{}, 1))
		id := c.Watch(func() {})
		c.Unwatch(id)
		c.Cancel(nil)
	}
	if n := len(p.links); n != 0 {
		t.Fatalf("%d links left in the parent after every child was canceled", n)
	}
	if canceled(p) {
		t.Fatal("a child canceled its parent")
	}
}

func TestWatch(t *testing.T) {
	c := New(context.Background())
	var calls []string
	a := c.Watch(func() { calls = append(calls, "a") })
	b := c.Watch(func() { calls = append(calls, "b") })
	_ = c.Watch(func() { calls = append(calls, "c") }) // past linkBuf
	if !c.Unwatch(b) || c.Unwatch(b) {
		t.Fatal("Unwatch: want true once, then false")
	}
	c.Cancel(nil)
	if len(calls) != 2 || calls[0] == "b" || calls[1] == "b" {
		t.Fatalf("calls %v, want a and c", calls)
	}
	if c.Unwatch(a) {
		t.Fatal("Unwatch after the func ran reported true")
	}
	ran := false
	if id := c.Watch(func() { ran = true }); id != 0 || !ran {
		t.Fatal("Watch on a canceled Context: want the func run and id 0")
	}
	if c.Unwatch(0) {
		t.Fatal("Unwatch(0) reported true")
	}
}

// The context package's own machinery works on a Context: children made
// by WithCancel and context.AfterFunc, both through its AfterFunc.
func TestStdlibChildren(t *testing.T) {
	c := New(context.Background())
	child, cancel := context.WithCancel(c)
	defer cancel()
	ran := make(chan struct{})
	context.AfterFunc(c, func() { close(ran) })
	stopped := context.AfterFunc(c, func() { t.Error("stopped AfterFunc ran") })
	if !stopped() {
		t.Fatal("stop of a pending AfterFunc reported false")
	}
	c.Cancel(errTimeout)
	waitDone(t, child)
	<-ran
	if child.Err() != context.Canceled {
		t.Fatalf("child Err = %v", child.Err())
	}
	if n := len(c.links); n != 0 {
		t.Fatalf("%d links after cancel", n)
	}
	// WithoutCancel cuts the chain.
	if d := context.WithoutCancel(c).Done(); d != nil {
		t.Fatal("WithoutCancel has a Done")
	}
	if x := New(context.WithoutCancel(c)); canceled(x) || x.up != nil {
		t.Fatal("a child of WithoutCancel was linked or canceled")
	}
}

// Cancellations from every side at once: run with -race.
func TestConcurrent(t *testing.T) {
	for range 200 {
		p := New(context.Background())
		var wg sync.WaitGroup
		for i := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := New(context.WithValue(p, key{}, i))
				id := c.Watch(func() {})
				if i%2 == 0 {
					c.Unwatch(id)
					c.Cancel(nil)
				}
				<-c.Done()
				if c.Err() == nil {
					t.Error("Done closed, Err nil")
				}
			}()
		}
		go p.Cancel(errTimeout)
		wg.Wait()
	}
}

// BenchmarkChain is a proxied request's contexts: the server's, a child
// under a WithValue (the proxy's), a watch made once (the upstream
// connection's), then all canceled. Compare BenchmarkChainStdlib.
func BenchmarkChain(b *testing.B) {
	base := context.Background()
	f := func() {}
	b.ReportAllocs()
	for b.Loop() {
		r := New(base)
		x := New(context.WithValue(r, key{}, 1))
		id := x.Watch(f)
		x.Unwatch(id)
		x.Cancel(nil)
		r.Cancel(nil)
	}
}

func BenchmarkChainStdlib(b *testing.B) {
	base := context.Background()
	f := func() {}
	b.ReportAllocs()
	for b.Loop() {
		r, rc := context.WithCancel(base)
		x, xc := context.WithCancelCause(context.WithValue(r, key{}, 1))
		if x.Done() != nil {
			stop := context.AfterFunc(x, f)
			stop()
		}
		xc(nil)
		rc()
	}
}

// reuse resets c and readies it under parent, as a pooled holder does
// after a quiet Release.
func reuse(c *Context, parent context.Context) {
	*c = Context{}
	c.Init(parent)
}

func TestRelease(t *testing.T) {
	t.Run("quiet child of a Context", func(t *testing.T) {
		old := New(context.Background())
		c := New(old)
		if !c.Release() {
			t.Fatal("Release of a child with nothing below it: not quiet")
		}
		if c.Err() != context.Canceled {
			t.Fatalf("Err after Release: %v", c.Err())
		}
		reuse(c, context.Background())
		old.Cancel(nil) // must not reach the reused c
		if c.Err() != nil {
			t.Fatalf("the old parent canceled the reused Context: %v", c.Err())
		}
	})
	t.Run("quiet child of a foreign context", func(t *testing.T) {
		old, cancel := context.WithCancel(context.Background())
		c := New(old)
		if !c.Release() {
			t.Fatal("Release of a foreign parent's child: not quiet")
		}
		reuse(c, context.Background())
		cancel()
		time.Sleep(10 * time.Millisecond) // an AfterFunc would run now
		if c.Err() != nil {
			t.Fatalf("the old parent canceled the reused Context: %v", c.Err())
		}
	})
	t.Run("canceled before", func(t *testing.T) {
		c := New(context.Background())
		c.Cancel(nil)
		if c.Release() {
			t.Fatal("Release after Cancel: quiet")
		}
		p := New(context.Background())
		c = New(p)
		p.Cancel(errors.New("gone"))
		if c.Release() {
			t.Fatal("Release after the parent canceled: quiet")
		}
	})
	t.Run("watch left", func(t *testing.T) {
		c := New(context.Background())
		called := false
		c.Watch(func() { called = true })
		if c.Release() {
			t.Fatal("Release with a watch left: quiet")
		}
		if !called {
			t.Fatal("Release did not call the watch")
		}
	})
	t.Run("child left", func(t *testing.T) {
		c := New(context.Background())
		kid := New(c)
		if c.Release() {
			t.Fatal("Release with a child left: quiet")
		}
		if kid.Err() != context.Canceled {
			t.Fatalf("child Err after Release: %v", kid.Err())
		}
	})
}

// A parent canceled while its child is released: whenever Release says
// quiet, the parent's cancel must not reach the reused child.
func TestReleaseRacesParent(t *testing.T) {
	var c Context
	for i := range 2000 {
		old := New(context.Background())
		// Siblings ahead of c in old's list widen the window between
		// old's taking its list and its canceling c.
		for range 64 {
			New(old)
		}
		reuse(&c, old)
		kid := New(&c) // canceled and unlinked before Release, as a try's is
		done := make(chan struct{})
		go func() {
			old.Cancel(nil)
			close(done)
		}()
		if i%2 == 0 {
			time.Sleep(time.Microsecond)
		}
		kid.Cancel(nil)
		quiet := c.Release()
		if !quiet {
			<-done
			continue
		}
		reuse(&c, context.Background())
		<-done
		if c.Err() != nil {
			t.Fatalf("round %d: Release said quiet, then the old parent canceled the reused Context", i)
		}
	}
}

// The same race with a foreign parent (as net/http's HTTP/2 server
// gives): whenever Release says quiet, the parent's AfterFunc must not
// reach the reused child. A Context Release did not call quiet may still
// be written by that AfterFunc, so the next round takes a new one.
func TestReleaseRacesForeignParent(t *testing.T) {
	c := new(Context)
	for i := range 300 {
		old, cancel := context.WithCancel(context.Background())
		reuse(c, old)
		go cancel()
		if i%2 == 0 {
			time.Sleep(time.Microsecond)
		}
		if !c.Release() {
			c = new(Context)
			continue
		}
		reuse(c, context.Background())
		<-old.Done()
		time.Sleep(time.Millisecond) // an AfterFunc started by cancel runs now
		if c.Err() != nil {
			t.Fatalf("round %d: Release said quiet, then the old parent canceled the reused Context", i)
		}
	}
}
