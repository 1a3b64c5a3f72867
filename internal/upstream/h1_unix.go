//go:build unix

package upstream

import (
	"crypto/tls"
	"syscall"
)

// alive reports whether an idle connection is still usable: the upstream
// has not closed it, and (in cleartext) sent nothing unasked. It peeks at
// the socket without blocking (one syscall).
func (c *h1Conn) alive() bool {
	sc, ok := c.raw.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	_, isTLS := c.conn.(*tls.Conn)
	ok = true
	var buf [1]byte
	err = rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK:
			// Nothing to read: open and quiet.
		case err != nil || n == 0:
			ok = false // reset, or closed (EOF)
		case !isTLS:
			ok = false // bytes nobody asked for
		}
		// A TLS server may send records (session tickets) after the
		// handshake; they are read with the next response.
		return true
	})
	return ok && err == nil
}
