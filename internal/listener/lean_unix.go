//go:build unix

package listener

import (
	"io"
	"syscall"
)

// rawReads: a connection waiting for a request head holds no buffer.
const rawReads = true

// readRaw is the raw read's callback (syscall.RawConn.Read).
func (c *leanConn) readRaw(fd uintptr) bool {
	b := leanReadPool.Get().(*[leanBufSize]byte)
	for {
		n, err := syscall.Read(int(fd), b[:])
		if err == syscall.EINTR {
			continue
		}
		if err == syscall.EAGAIN {
			leanReadPool.Put(b)
			return false
		}
		switch {
		case err != nil:
			leanReadPool.Put(b)
			c.rawErr = err
		case n == 0:
			leanReadPool.Put(b)
			c.rawErr = io.EOF
		default:
			c.buf, c.r, c.w, c.own = b[:], 0, n, false
			c.rawN = n
		}
		return true
	}
}
