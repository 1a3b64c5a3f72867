package upstream

import (
	"net"
	"net/http"
	"time"
)

// maxResponseHeaderBytes bounds an upstream's response head.
const maxResponseHeaderBytes = 1 << 20

// tcpKeepAlive is the TCP keep-alive probe period of upstream connections.
const tcpKeepAlive = 30 * time.Second

// transportKey identifies a cached transport: the upstream and every
// setting the transport is built from. A reload that changes none of them
// reuses the transport and its warm connections.
type transportKey struct {
	upstream            string
	connectTimeout      time.Duration
	maxIdlePerEndpoint  int
	maxConnsPerEndpoint int
	idleTimeout         time.Duration
}

// newTransport builds the keep-alive transport for k. It speaks HTTP/1.1
// only, ignores proxy environment variables and never asks for
// compression, so bodies pass through untouched. Response-header timeouts
// are left to the caller's per-try context.
func newTransport(k transportKey) *http.Transport {
	d := &net.Dialer{Timeout: k.connectTimeout, KeepAlive: tcpKeepAlive}
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	return &http.Transport{
		Proxy:                  nil,
		DialContext:            d.DialContext,
		MaxIdleConns:           0, // no total cap; the per-endpoint one governs
		MaxIdleConnsPerHost:    k.maxIdlePerEndpoint,
		MaxConnsPerHost:        k.maxConnsPerEndpoint,
		IdleConnTimeout:        k.idleTimeout,
		ForceAttemptHTTP2:      false,
		Protocols:              &protocols,
		DisableCompression:     true,
		MaxResponseHeaderBytes: maxResponseHeaderBytes,
		ExpectContinueTimeout:  time.Second,
	}
}
