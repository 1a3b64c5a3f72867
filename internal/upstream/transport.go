package upstream

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"time"

	"torii/internal/config"
)

// maxResponseHeaderBytes bounds an upstream's response head.
const maxResponseHeaderBytes = 1 << 20

// tcpKeepAlive is the TCP keep-alive probe period of upstream connections.
const tcpKeepAlive = 30 * time.Second

// HTTP/2 connection liveness: a connection that received no frame for
// h2PingAfter is sent a PING, and closed when no answer comes within
// h2PingTimeout, so a long gRPC stream over a dead connection fails
// instead of hanging.
const (
	h2PingAfter   = 30 * time.Second
	h2PingTimeout = 15 * time.Second
)

// The protocols torii speaks to endpoints (config.Upstream.Protocol).
const (
	// ProtocolHTTP1 is HTTP/1.1, over TLS when the upstream has tls. It
	// is the default.
	ProtocolHTTP1 = "http1"
	// ProtocolH2 is HTTP/2 over TLS, negotiated by ALPN.
	ProtocolH2 = "h2"
	// ProtocolH2C is cleartext HTTP/2 with prior knowledge (RFC 9113
	// §3.3).
	ProtocolH2C = "h2c"
)

// transportKey identifies a cached transport: the upstream and every
// setting the transport is built from. A reload that changes none of them
// reuses the transport and its warm connections; one that changes the
// protocol, the TLS settings or the content of a TLS file builds a new one.
type transportKey struct {
	upstream            string
	connectTimeout      time.Duration
	maxIdlePerEndpoint  int
	maxConnsPerEndpoint int
	idleTimeout         time.Duration
	protocol            string // ProtocolHTTP1, ProtocolH2 or ProtocolH2C
	tls                 tlsKey // zero: cleartext
}

// scheme is the URL scheme of requests sent with the key's transport.
func (k transportKey) scheme() string {
	if k.tls.enabled {
		return "https"
	}
	return "http"
}

// protocol returns cfg's protocol with the default filled in, checked
// against its TLS setting.
func protocol(cfg *config.Upstream) (string, error) {
	switch cfg.Protocol {
	case "", ProtocolHTTP1:
		return ProtocolHTTP1, nil
	case ProtocolH2:
		// HTTP/2 over cleartext is h2c; h2 without a tls block uses TLS
		// with the system roots.
		return ProtocolH2, nil
	case ProtocolH2C:
		if cfg.TLS != nil {
			return "", fmt.Errorf("protocol h2c is cleartext HTTP/2 and cannot use tls; use protocol h2")
		}
		return ProtocolH2C, nil
	}
	return "", fmt.Errorf("unknown protocol %q: want http1, h2 or h2c", cfg.Protocol)
}

// roundTripper is a pooled transport: the lean HTTP/1.1 one (h1.go) or
// net/http's.
type roundTripper interface {
	http.RoundTripper
	CloseIdleConnections()
}

// newTransport builds the keep-alive transport for k, with tc the TLS
// client config k.tls describes (nil for cleartext): the lean HTTP/1.1
// transport for ProtocolHTTP1, net/http's for HTTP/2 (newNetTransport).
func newTransport(k transportKey, tc *tls.Config) roundTripper {
	if k.protocol == ProtocolHTTP1 {
		return newH1Transport(k, tc)
	}
	return newNetTransport(k, tc)
}

// newNetTransport builds net/http's keep-alive transport for k, with tc
// the TLS client config k.tls describes (nil for cleartext). It speaks exactly
// k.protocol, ignores proxy environment variables and never asks for
// compression, so bodies pass through untouched. Response-header timeouts
// are left to the caller's per-try context.
//
// HTTP/2 (and health checks, for every protocol) use net/http's Transport
// and its bundled HTTP/2, rather than x/net/http2.Transport: one type
// carries the dialer, the per-endpoint connection caps, idle timeouts and
// the header-size limit, and h2c needs no custom dialer since Go 1.24's
// Protocols.SetUnencryptedHTTP2.
func newNetTransport(k transportKey, tc *tls.Config) *http.Transport {
	d := &net.Dialer{Timeout: k.connectTimeout, KeepAlive: tcpKeepAlive}
	var protocols http.Protocols
	switch k.protocol {
	case ProtocolH2:
		protocols.SetHTTP2(true)
	case ProtocolH2C:
		protocols.SetUnencryptedHTTP2(true)
	default:
		protocols.SetHTTP1(true)
	}
	if tc != nil {
		// The Transport sets NextProtos for HTTP/2 on the config it is
		// given; keep the caller's copy untouched.
		tc = tc.Clone()
		if k.protocol == ProtocolHTTP1 {
			tc.NextProtos = []string{"http/1.1"}
		}
	}
	return &http.Transport{
		Proxy:                  nil,
		DialContext:            d.DialContext,
		TLSClientConfig:        tc,
		TLSHandshakeTimeout:    k.connectTimeout,
		MaxIdleConns:           0, // no total cap; the per-endpoint one governs
		MaxIdleConnsPerHost:    k.maxIdlePerEndpoint,
		MaxConnsPerHost:        k.maxConnsPerEndpoint,
		IdleConnTimeout:        k.idleTimeout,
		Protocols:              &protocols,
		HTTP2:                  &http.HTTP2Config{SendPingTimeout: h2PingAfter, PingTimeout: h2PingTimeout},
		DisableCompression:     true,
		MaxResponseHeaderBytes: maxResponseHeaderBytes,
		ExpectContinueTimeout:  time.Second,
	}
}

// Scheme returns the URL scheme of requests to the pool's endpoints:
// "https" when the upstream has tls, otherwise "http".
func (p *Pool) Scheme() string { return p.s.conn.scheme() }

// Protocol returns the protocol the pool speaks to its endpoints:
// ProtocolHTTP1, ProtocolH2 or ProtocolH2C.
func (p *Pool) Protocol() string { return p.s.conn.protocol }
