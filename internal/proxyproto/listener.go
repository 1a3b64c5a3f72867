package proxyproto

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"
)

// DefaultTimeout bounds the wait for a PROXY header when NewListener is
// given no timeout.
const DefaultTimeout = 5 * time.Second

// NewListener returns a listener that accepts the PROXY protocol (v1 and v2)
// on connections from peers inside trusted, and passes every other
// connection through untouched.
//
// Accept never reads: the header of a trusted connection is read on the
// connection's first Read, RemoteAddr or LocalAddr, under a read deadline
// of timeout (DefaultTimeout when timeout <= 0), so a slow peer stalls only
// its own connection. net/http calls RemoteAddr in the connection's own
// goroutine, so the wait happens there; an http.Server ConnState or
// ConnContext hook that calls RemoteAddr would instead stall the accept
// loop.
//
// A trusted connection whose header is missing, malformed or late is
// closed, and its Read returns the error. A header's LOCAL command (v2) or
// UNKNOWN protocol (v1) keeps the socket addresses.
func NewListener(inner net.Listener, trusted []netip.Prefix, timeout time.Duration) net.Listener {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return &listener{
		Listener: inner,
		trusted:  append([]netip.Prefix(nil), trusted...),
		timeout:  timeout,
	}
}

// listener is the net.Listener returned by NewListener.
type listener struct {
	net.Listener
	trusted []netip.Prefix
	timeout time.Duration
}

// Accept waits for the next connection. It does not read from it.
func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if !l.isTrusted(c.RemoteAddr()) {
		return c, nil
	}
	return &conn{Conn: c, timeout: l.timeout}, nil
}

// isTrusted reports whether addr, a socket peer, may send a PROXY header.
func (l *listener) isTrusted(addr net.Addr) bool {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return false
	}
	// A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; the
	// trusted list is written with plain IPv4 prefixes.
	ip := tcp.AddrPort().Addr().Unmap()
	for _, p := range l.trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// conn is a connection from a trusted peer. Its PROXY header is read once,
// by whichever of Read, RemoteAddr and LocalAddr comes first.
type conn struct {
	net.Conn
	timeout time.Duration

	once sync.Once
	// The fields below are written inside once and read-only after it.
	err    error    // why the header was refused; the conn is then closed
	remote net.Addr // from the header, or nil to use the socket's
	local  net.Addr // from the header, or nil to use the socket's
	rest   []byte   // bytes read past the header, served first by Read

	// mu guards readDeadline.
	mu sync.Mutex
	// readDeadline is the last read deadline set by the conn's user,
	// restored after the header is read under its own deadline.
	readDeadline time.Time
}

// Read reads the PROXY header first if it has not been read, then returns
// any bytes that arrived with it before reading from the socket again.
func (c *conn) Read(p []byte) (int, error) {
	c.once.Do(c.readHeader)
	if c.err != nil {
		return 0, c.err
	}
	if len(c.rest) > 0 {
		n := copy(p, c.rest)
		c.rest = c.rest[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// RemoteAddr returns the client address from the PROXY header, or the
// socket's peer address for a LOCAL or UNKNOWN header or a refused one.
func (c *conn) RemoteAddr() net.Addr {
	c.once.Do(c.readHeader)
	if c.remote != nil {
		return c.remote
	}
	return c.Conn.RemoteAddr()
}

// LocalAddr returns the destination address from the PROXY header, or the
// socket's local address for a LOCAL or UNKNOWN header or a refused one.
func (c *conn) LocalAddr() net.Addr {
	c.once.Do(c.readHeader)
	if c.local != nil {
		return c.local
	}
	return c.Conn.LocalAddr()
}

// SetDeadline sets the read and write deadlines, remembering the read one.
func (c *conn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.readDeadline = t
	c.mu.Unlock()
	return c.Conn.SetDeadline(t)
}

// SetReadDeadline sets the read deadline and remembers it.
func (c *conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.readDeadline = t
	c.mu.Unlock()
	return c.Conn.SetReadDeadline(t)
}

// readHeader reads and parses the PROXY header under c.timeout. On failure
// it records the error and closes the connection.
func (c *conn) readHeader() {
	peer := c.Conn.RemoteAddr()
	if err := c.Conn.SetReadDeadline(time.Now().Add(c.timeout)); err != nil {
		c.fail(fmt.Errorf("read PROXY header from %s: %w", peer, err))
		return
	}
	h, rest, err := readFrom(c.Conn)
	if err != nil {
		c.fail(fmt.Errorf("read PROXY header from %s: %w", peer, err))
		return
	}
	c.mu.Lock()
	err = c.Conn.SetReadDeadline(c.readDeadline)
	c.mu.Unlock()
	if err != nil {
		c.fail(fmt.Errorf("read PROXY header from %s: %w", peer, err))
		return
	}
	c.rest = rest
	if !h.local {
		c.remote = net.TCPAddrFromAddrPort(h.src)
		c.local = net.TCPAddrFromAddrPort(h.dst)
	}
}

// fail records err as the connection's error and closes it.
func (c *conn) fail(err error) {
	c.err = err
	c.Conn.Close()
}

// readFrom reads from r until it holds a whole PROXY header, and returns
// the header and the bytes read past it.
func readFrom(r interface{ Read([]byte) (int, error) }) (header, []byte, error) {
	// Most headers fit in one small read: a v1 line is at most 107 bytes,
	// a v2 header with addresses 28 or 52 bytes plus any TLVs.
	buf := make([]byte, 0, 256)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, make([]byte, min(cap(buf), maxHeaderLen))...)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if n > 0 {
			h, size, perr := parse(buf)
			if perr == nil {
				return h, buf[size:], nil
			}
			if !errors.Is(perr, errIncomplete) {
				return header{}, nil, perr
			}
		}
		if err != nil {
			if len(buf) == 0 {
				return header{}, nil, fmt.Errorf("no header: %w", err)
			}
			return header{}, nil, fmt.Errorf("incomplete header after %d bytes: %w", len(buf), err)
		}
	}
}

// CloseWrite shuts down the writing side of the connection when the socket
// supports it, as net/http does to flush a last response before closing.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}
