// Package reqctx is the request path's cancelable context. It behaves
// like the context package's WithCancelCause, and is built for the three
// layers that cancel a proxied request: the HTTP/1.1 server (the client
// left, the handler returned), the proxy (the route's timeout) and the
// upstream connection (abort its blocked I/O).
//
// With the context package each of those links costs allocations on every
// request: a child registers in a map its parent makes for it, a watch
// (context.AfterFunc) is a context of its own with two closures, and the
// parent's Done channel is made to be compared. Here a child, or a watch
// whose func the caller made once, takes a slot in its parent's short
// list, so a request pays for its contexts and not for their links
// (docs/performance.md, "What each optimisation bought").
//
// A Context works with everything that takes a context.Context: the
// context package's own children of it register through its AfterFunc
// method, as context.AfterFunc documents, rather than with a goroutine.
// One difference: context.Cause of a Context (or of a context derived
// from one with WithValue) reports its Err, not its cause. Use the Cause
// method.
package reqctx

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// ctxKey is the key whose Value is the nearest Context.
var ctxKey int

// closedchan is the Done channel of a Context canceled before anyone
// asked for its channel.
var closedchan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// Context is a cancelable context.Context. Make one with New; cancel it
// with Cancel. It is safe for concurrent use.
type Context struct {
	parent   context.Context
	key, val any          // the Context's own value (SetValue); nil key: none
	canceled atomic.Bool  // err and cause are set
	done     atomic.Value // chan struct{}, made when first asked for

	mu      sync.Mutex
	err     error // context.Canceled once canceled
	cause   error
	links   []link  // children and watches, canceled or called with it
	linkBuf [2]link // links' first storage: most requests have one or two
	nextID  uint64

	up     *Context    // the parent, when this is linked in its list
	upID   uint64      // this Context's link in up
	unhook func() bool // stops the watch on a foreign parent; nil: none
}

// link is a child or a watch in a Context's list.
type link struct {
	id  uint64
	kid *Context // a child, canceled with the same error and cause
	f   func()   // a watch, called when the Context is canceled
}

// New returns a Context canceled when parent is, or when its Cancel is
// called. A parent that is a Context, or wraps one with values only,
// takes it in its list; any other cancelable parent is watched with
// context.AfterFunc.
func New(parent context.Context) *Context {
	c := new(Context)
	c.Init(parent)
	return c
}

// Init readies a zero Context, held in a larger struct to save its
// allocation, as New does. It is called once, before the Context is used,
// and the Context is not copied after.
func (c *Context) Init(parent context.Context) {
	c.parent = parent
	c.links = c.linkBuf[:0]
	if p, ok := parent.(*Context); ok {
		c.linkTo(p)
		return
	}
	done := parent.Done()
	if done == nil {
		return // never canceled
	}
	// A Context further up counts only if nothing between it and parent
	// changes when parent is done (a context.WithCancel, say): then
	// parent's Done is that Context's.
	if p, ok := parent.Value(&ctxKey).(*Context); ok && p.Done() == done {
		c.linkTo(p)
		return
	}
	select {
	case <-done:
		c.cancel(parent.Err(), context.Cause(parent), false)
		return
	default:
	}
	c.mu.Lock()
	c.unhook = context.AfterFunc(parent, func() {
		c.cancel(parent.Err(), context.Cause(parent), false)
	})
	c.mu.Unlock()
}

// linkTo puts c in p's list, or cancels c at once if p is canceled.
func (c *Context) linkTo(p *Context) {
	p.mu.Lock()
	if p.err != nil {
		err, cause := p.err, p.cause
		p.mu.Unlock()
		c.cancel(err, cause, false)
		return
	}
	c.up, c.upID = p, p.add(link{kid: c})
	p.mu.Unlock()
}

// add appends l to c's list and returns its id. c.mu is held.
func (c *Context) add(l link) uint64 {
	c.nextID++
	l.id = c.nextID
	c.links = append(c.links, l)
	return l.id
}

// remove takes the link id out of c's list, reporting whether it was
// there.
func (c *Context) remove(id uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.links {
		if c.links[i].id == id {
			last := len(c.links) - 1
			c.links[i] = c.links[last]
			c.links[last] = link{}
			c.links = c.links[:last]
			return true
		}
	}
	return false
}

// Cancel cancels c and everything below it: Err reports
// context.Canceled and Cause reports cause, or context.Canceled when
// cause is nil. Only the first call has an effect.
func (c *Context) Cancel(cause error) {
	c.cancel(context.Canceled, cause, true)
}

// Release cancels c as Cancel(nil) does, and reports whether c is quiet:
// whether its memory may be reset (*c = Context{}) and Init again for
// another request. c is quiet when this call was the first to cancel it
// (no parent, timer or other caller may still be inside a cancel of c),
// when it left no child or watch to call (a child may be in the middle of
// leaving c's list), and when it left its parent's list, or stopped
// watching a foreign parent, before the parent could cancel it. That c is
// otherwise unreachable (no goroutine kept it, or its Done channel) is
// the caller's to know.
func (c *Context) Release() bool {
	return c.cancel(context.Canceled, nil, true)
}

// cancel sets err and cause, closes Done, cancels the children and calls
// the watches. unlink takes c out of its parent's list; a parent that is
// canceling its own list does not need that. It reports whether c is
// quiet after it (see Release).
func (c *Context) cancel(err, cause error, unlink bool) (quiet bool) {
	if cause == nil {
		cause = err
	}
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return false
	}
	c.err, c.cause = err, cause
	c.canceled.Store(true)
	if d, _ := c.done.Load().(chan struct{}); d != nil {
		close(d)
	} else {
		c.done.Store(closedchan)
	}
	links := c.links
	c.links = nil
	up, upID, unhook := c.up, c.upID, c.unhook
	c.up, c.unhook = nil, nil
	c.mu.Unlock()

	quiet = len(links) == 0
	for _, l := range links {
		if l.kid != nil {
			l.kid.cancel(err, cause, false)
		} else {
			l.f()
		}
	}
	if up != nil && !(unlink && up.remove(upID)) {
		quiet = false // the parent is canceling c, or will
	}
	if unhook != nil && !unhook() {
		quiet = false // the foreign parent's watch has started
	}
	return quiet
}

// Watch arranges for f to be called when c is canceled, in the goroutine
// that cancels it, so f must be quick and must not block (setting a
// connection's deadline, say). It returns the watch's id for Unwatch, or
// 0 when c is already canceled, in which case f has run before Watch
// returns. A func made once and watched many times costs nothing per
// watch, unlike context.AfterFunc.
func (c *Context) Watch(f func()) uint64 {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		f()
		return 0
	}
	id := c.add(link{f: f})
	c.mu.Unlock()
	return id
}

// Unwatch stops the watch id. It reports true when that kept its func
// from being called, and false when the func has been called (or is
// being called), or when id is 0 or no longer watched.
func (c *Context) Unwatch(id uint64) bool {
	if id == 0 {
		return false
	}
	return c.remove(id)
}

// AfterFunc arranges for f to be called in its own goroutine when c is
// canceled, as context.AfterFunc does; context.AfterFunc and the context
// package's children of c use it. stop reports whether it kept f from
// being started.
func (c *Context) AfterFunc(f func()) (stop func() bool) {
	id := c.Watch(func() { go f() })
	return func() bool { return c.Unwatch(id) }
}

// Deadline is the parent's deadline.
func (c *Context) Deadline() (time.Time, bool) { return c.parent.Deadline() }

// Done returns a channel closed when c is canceled.
func (c *Context) Done() <-chan struct{} {
	if d := c.done.Load(); d != nil {
		return d.(chan struct{})
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if d := c.done.Load(); d != nil {
		return d.(chan struct{})
	}
	d := make(chan struct{})
	c.done.Store(d)
	return d
}

// Err is nil until c is canceled, then the error it was canceled with:
// context.Canceled, or its canceled parent's Err.
func (c *Context) Err() error {
	if !c.canceled.Load() {
		return nil
	}
	return c.err // written before canceled was set, and never again
}

// Cause is nil until c is canceled, then why: the cause given to
// Cancel, or its canceled parent's cause.
func (c *Context) Cause() error {
	if !c.canceled.Load() {
		return nil
	}
	return c.cause
}

// Value is the value SetValue gave c for key, else the parent's.
func (c *Context) Value(key any) any {
	switch {
	case key == &ctxKey:
		return c
	case c.key != nil && key == c.key:
		return c.val
	}
	return c.parent.Value(key)
}

// SetValue gives c one value of its own, as context.WithValue would give
// a child: a request's first handler attaches what it knows of the
// request this way and saves the copy of the http.Request that
// WithContext makes. It reports false, changing nothing, when c has a
// value already. key follows context.WithValue's rules.
//
// A context is otherwise immutable, so SetValue must happen before c is
// shared: before any other goroutine may read its values, and before
// any Value call that must not see the value.
func (c *Context) SetValue(key, val any) bool {
	if key == nil || c.key != nil {
		return false
	}
	c.key, c.val = key, val
	return true
}

// String names c for debugging, as the context package's contexts do.
func (c *Context) String() string { return "reqctx.Context" }
