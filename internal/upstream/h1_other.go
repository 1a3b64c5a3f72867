//go:build !unix

package upstream

// alive reports true: without a non-blocking peek, a closed connection
// is found by using it (and the request resent when that is safe).
func (c *h1Conn) alive() bool { return true }
