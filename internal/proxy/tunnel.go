package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"torii/internal/upstream"
)

// switchProtocols handles an upstream's 101 Switching Protocols: for an
// upgrade the client asked for and the upstream granted (RFC 9110 §7.8;
// WebSocket's handshake, RFC 6455 §4), it hijacks the client's connection,
// writes the 101 head and copies bytes both ways until either side closes.
// Any other 101 is a broken upstream: 502. It closes the open try.
func (x *exchange) switchProtocols(w http.ResponseWriter, res *http.Response) {
	backend, ok := res.Body.(io.ReadWriteCloser)
	switch {
	case x.upgrade == "":
		x.end(upstream.GatewayError)
		fail(w, x.r, x.info, x.wrap(fmt.Errorf("101 to a request that asked for no upgrade: %w", ErrUpgrade)))
		return
	case !ok || !upgradeAccepted(x.upgrade, res.Header):
		// net/http's client hands over the connection only for a 101
		// with "Connection: upgrade" and an Upgrade field.
		x.end(upstream.GatewayError)
		fail(w, x.r, x.info, x.wrap(fmt.Errorf("101 switching to %q, asked for %q: %w",
			res.Header.Get("Upgrade"), x.upgrade, ErrUpgrade)))
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// Not the upstream's fault: do not count it against the endpoint.
		backend.Close()
		x.end(upstream.Canceled)
		fail(w, x.r, x.info, x.wrap(fmt.Errorf("take over client connection: %w: %w", ErrUpgrade, err)))
		return
	}
	t := &tunnel{client: conn, backend: backend}
	defer t.close()
	if !x.h.tunnels.add(t) {
		x.info.Err = x.wrap(fmt.Errorf("open tunnel: %w: shutting down", ErrUpgrade))
		x.info.Status = StatusClientClosedRequest // nothing was sent
		x.end(upstream.Canceled)
		return
	}
	defer x.h.tunnels.remove(t)
	// The server's read and write deadlines were for one request; a
	// tunnel lives as long as its two ends want.
	conn.SetDeadline(time.Time{})

	protocols := res.Header.Values("Upgrade")
	head := res.Header
	RemoveHopByHop(head)
	head["Connection"] = []string{"Upgrade"}
	head["Upgrade"] = protocols
	x.h.resOps.apply(head)
	x.info.Status = http.StatusSwitchingProtocols
	if err := writeSwitchHead(brw.Writer, head); err != nil {
		x.info.Err = x.wrap(fmt.Errorf("write 101 head: %w (%v)", ErrClientGone, err))
		x.end(upstream.Canceled)
		return
	}

	// A request context that ends (the server is forced down) ends the
	// tunnel; net/http's client no longer watches it after a 101.
	stop := context.AfterFunc(x.r.Context(), t.close)
	defer stop()

	done := make(chan struct{})
	go func() {
		defer close(done)
		// Bytes the client sent after its request head are in brw.Reader.
		t.copy(backend, brw.Reader)
	}()
	x.info.BytesOut += t.copy(conn, backend)
	<-done
	x.end(upstream.Success)
}

// writeSwitchHead writes the head of a 101 response with header h.
func writeSwitchHead(w *bufio.Writer, h http.Header) error {
	w.WriteString("HTTP/1.1 101 Switching Protocols\r\n")
	h.Write(w)
	w.WriteString("\r\n")
	return w.Flush()
}

// tunnel is one switched connection: the client's and the upstream's ends.
type tunnel struct {
	client  net.Conn
	backend io.ReadWriteCloser
	once    sync.Once
}

// copy copies src to dst until either fails or ends, then closes both
// ends so the copy in the other direction ends too. It returns the bytes
// copied.
func (t *tunnel) copy(dst io.Writer, src io.Reader) int64 {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	n, _ := io.CopyBuffer(dst, src, *bp) // either side closing is the normal end
	t.close()
	return n
}

// close closes both ends, once.
func (t *tunnel) close() {
	t.once.Do(func() {
		t.client.Close()
		t.backend.Close()
	})
}

// Tunnels tracks the connections of proxied protocol switches (WebSocket
// and other upgrades). net/http's Server forgets a connection once it is
// hijacked, so Server.Shutdown neither waits for nor closes tunnels: the
// owner of the servers calls Shutdown or Close on this after theirs. The
// zero value is ready to use; a nil *Tunnels tracks nothing and has none
// open. Its methods are safe for concurrent use.
type Tunnels struct {
	mu     sync.Mutex // guards open and closed
	open   map[*tunnel]struct{}
	closed bool
}

// add starts tracking t and reports whether it may run: false once Close
// was called. A nil Tunnels admits every tunnel and tracks none.
func (ts *Tunnels) add(t *tunnel) bool {
	if ts == nil {
		return true
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.closed {
		return false
	}
	if ts.open == nil {
		ts.open = make(map[*tunnel]struct{})
	}
	ts.open[t] = struct{}{}
	return true
}

// remove stops tracking t.
func (ts *Tunnels) remove(t *tunnel) {
	if ts == nil {
		return
	}
	ts.mu.Lock()
	delete(ts.open, t)
	ts.mu.Unlock()
}

// Len returns the number of open tunnels; 0 for a nil Tunnels.
func (ts *Tunnels) Len() int {
	if ts == nil {
		return 0
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return len(ts.open)
}

// Close closes every open tunnel (both of its connections) and refuses
// new ones: a client whose upgrade the upstream grants after Close has its
// connection closed without an answer. It returns the number closed; a
// nil Tunnels closes nothing.
func (ts *Tunnels) Close() int {
	if ts == nil {
		return 0
	}
	ts.mu.Lock()
	ts.closed = true
	open := make([]*tunnel, 0, len(ts.open))
	for t := range ts.open {
		open = append(open, t)
	}
	ts.mu.Unlock()
	for _, t := range open {
		t.close()
	}
	return len(open)
}

// tunnelPoll is how often Shutdown looks whether the tunnels are gone.
const tunnelPoll = 50 * time.Millisecond

// Shutdown waits for the open tunnels to end on their own until ctx ends,
// then closes those left (see Close). It returns ctx's error when it had
// to close some, nil otherwise. Tunnels opened while it waits are waited
// for too.
func (ts *Tunnels) Shutdown(ctx context.Context) error {
	tick := time.NewTicker(tunnelPoll)
	defer tick.Stop()
	for ts.Len() > 0 {
		select {
		case <-ctx.Done():
			if ts.Close() > 0 {
				return ctx.Err()
			}
			return nil
		case <-tick.C:
		}
	}
	ts.Close()
	return nil
}
