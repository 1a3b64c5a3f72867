// Package request carries what torii learns about one request as it moves
// through the chain: its ID, the client address, the route and upstream it
// took, and how it ended. The outer handler creates an Info and puts it in
// the request context; inner layers fill fields in; the access log, metrics
// and error bodies read them. One goroutine owns an Info at a time (the
// request's), so its fields need no lock.
package request

import (
	"context"
	"net/http"
	"net/netip"
	"time"

	"torii/internal/reqctx"
)

// Info is the per-request record.
type Info struct {
	// ID is the request ID: the client's X-Request-Id when it is a sane
	// token, otherwise one torii generated. Error bodies carry it as "id".
	ID string
	// Start is when torii began handling the request.
	Start time.Time
	// ClientIP is the client's address: the socket peer, or the PROXY
	// protocol source, or the rightmost untrusted X-Forwarded-For entry
	// when the peer is a trusted proxy.
	ClientIP netip.Addr
	// PeerTrusted reports whether the socket peer is in trusted_proxies, so
	// its X-Forwarded-* headers are believed.
	PeerTrusted bool
	// Scheme is "http" or "https" as the client used it (or as a trusted
	// proxy reported it in X-Forwarded-Proto).
	Scheme string
	// Route is the matched route's name; "" when none matched.
	Route string
	// Upstream is the upstream of the last try; "" when none.
	Upstream string
	// Endpoint is the endpoint address of the last try; "" when none.
	Endpoint string
	// Tries counts tries made to upstreams (1 + retries).
	Tries int
	// Status is the status written to the client; 499 when the client went
	// away first.
	Status int
	// BytesOut counts response body bytes written to the client.
	BytesOut int64
	// Claims are the verified JWT claims, when the route has auth.jwt.
	// Later middleware (rate limits keyed on a claim) read them; nil
	// otherwise.
	Claims map[string]any
	// TLS reports whether the client connection is TLS (HTTP/1.1 over a
	// torii-terminated TLS listener has no r.TLS; this says it).
	TLS bool
	// GRPCStatus is the grpc-status the upstream returned ("0" OK, "14"
	// UNAVAILABLE, ...), read from trailers or a trailers-only response;
	// "" when the response is not gRPC.
	GRPCStatus string
	// SLO records the finished request against its route's SLO; nil when
	// the route has none. Set by the router, called by the front handler.
	SLO SLORecorder
	// Err is the failure that decided the response, if any. Its text goes
	// to the log only, never to the client.
	Err error
}

// SLORecorder counts one finished request toward a route's SLIs
// (internal/slo.RouteSLI implements it).
type SLORecorder interface {
	Record(backend string, status int, grpcStatus string, ttfb time.Duration, shadow bool)
}

type ctxKey struct{}

// NewContext returns ctx carrying info.
func NewContext(ctx context.Context, info *Info) context.Context {
	return context.WithValue(ctx, ctxKey{}, info)
}

// Attach returns r with info in its context: in place, when r's context
// is the server's own request context (reqctx) and has no value yet,
// else in a copy of r, as r.WithContext(NewContext(r.Context(), info)).
// Only the request's first handler may call it, before r is shared.
func Attach(r *http.Request, info *Info) *http.Request {
	if c, ok := r.Context().(*reqctx.Context); ok && c.SetValue(ctxKey{}, info) {
		return r
	}
	return r.WithContext(NewContext(r.Context(), info))
}

// FromContext returns the Info in ctx, or nil.
func FromContext(ctx context.Context) *Info {
	info, _ := ctx.Value(ctxKey{}).(*Info)
	return info
}
