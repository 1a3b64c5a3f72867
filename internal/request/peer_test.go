package request

import (
	"context"
	"net/netip"
	"testing"
)

func TestPeer(t *testing.T) {
	ctx := WithPeer(context.Background(), "[::ffff:10.0.0.1]:443")
	a, ok := Peer(ctx, "[::ffff:10.0.0.1]:443")
	if !ok || a != netip.MustParseAddr("10.0.0.1") {
		t.Fatalf("Peer: %v, %v; want 10.0.0.1 (unmapped), true", a, ok)
	}
	// A RemoteAddr a handler rewrote is not the connection's.
	if a, ok := Peer(ctx, "192.0.2.7:1"); ok {
		t.Fatalf("Peer for another RemoteAddr: %v, true", a)
	}
	if _, ok := Peer(context.Background(), "192.0.2.7:1"); ok {
		t.Fatal("Peer without WithPeer: true")
	}
	for remote, want := range map[string]netip.Addr{
		"192.0.2.7:80":    netip.MustParseAddr("192.0.2.7"),
		"[2001:db8::1]:8": netip.MustParseAddr("2001:db8::1"),
		"192.0.2.8":       netip.MustParseAddr("192.0.2.8"),
		"pipe":            {},
		"":                {},
	} {
		if got := ParsePeer(remote); got != want {
			t.Errorf("ParsePeer(%q) = %v, want %v", remote, got, want)
		}
	}
}
