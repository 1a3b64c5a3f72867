//go:build !unix

package listener

// rawReads: off; a waiting connection holds its read buffer.
const rawReads = false

func (c *leanConn) readRaw(fd uintptr) bool { return true }
