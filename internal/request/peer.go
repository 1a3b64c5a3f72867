package request

import (
	"context"
	"net/netip"
)

// peerKey is the context key of a connection's parsed peer address.
type peerKey struct{}

// peer is a connection's RemoteAddr and its address.
type peer struct {
	remote string
	addr   netip.Addr
}

// WithPeer returns ctx carrying the address of remote, a connection's
// RemoteAddr ("ip:port"), parsed once: a server sets it in the context
// of each connection, and every request on it finds its peer without
// parsing the string again (that parse was about 1 % of a proxied
// request's CPU). An IPv4-mapped IPv6 address is unmapped.
func WithPeer(ctx context.Context, remote string) context.Context {
	return context.WithValue(ctx, peerKey{}, peer{remote, ParsePeer(remote)})
}

// Peer returns the address WithPeer parsed, when ctx has one for remote.
// A request whose RemoteAddr a handler changed gets false, and its caller
// parses the new value (ParsePeer).
func Peer(ctx context.Context, remote string) (netip.Addr, bool) {
	p, ok := ctx.Value(peerKey{}).(peer)
	if !ok || p.remote != remote {
		return netip.Addr{}, false
	}
	return p.addr, true
}

// ParsePeer parses a RemoteAddr: "ip:port", or a bare IP. It returns
// the zero Addr for anything else.
func ParsePeer(remote string) netip.Addr {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		a, _ := netip.ParseAddr(remote)
		return a.Unmap()
	}
	return ap.Addr().Unmap()
}
