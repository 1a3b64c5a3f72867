package app

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// TestE2EGRPC is acceptance point 3: a grpc-go health service behind
// torii (upstream protocol h2c), called by grpc-go clients over an h2c
// listener and over a TLS listener: unary Check, server-streaming Watch
// with every status change relayed as it happens, and an error status
// (NOT_FOUND) that reaches the client and torii_grpc_requests_total.
func TestE2EGRPC(t *testing.T) {
	hs := health.NewServer()
	hs.SetServingStatus("svc", healthpb.HealthCheckResponse_SERVING)
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(ln)
	t.Cleanup(gs.Stop)

	ca := newE2ECA(t)
	crt, key, _ := ca.issue(t, "grpc", "grpc.e2e.test")
	ta := startApp(t, fmt.Sprintf(`
listen:
  - {name: h2c, addr: "127.0.0.1:0", http2: {h2c: true}}
  - {name: tls, addr: "127.0.0.1:0", tls: {certificates: [{cert: %q, key: %q}]}}
admin: {addr: "127.0.0.1:0"}
shutdown: {drain_delay: 0s, grace: 5s}
access_log: {disabled: true}
upstreams:
  health: {endpoints: [%q], protocol: h2c}
routes:
  - name: grpc
    match: {path_prefix: /grpc.health.v1.Health/}
    backends: [{upstream: health}]
`, crt, key, ln.Addr().String()))

	transports := []struct {
		name  string
		addr  string
		creds credentials.TransportCredentials
	}{
		{"h2c", e2eAddr(ta, 0), insecure.NewCredentials()},
		{"tls", e2eAddr(ta, 1), credentials.NewTLS(e2eTLSClient(ca, "grpc.e2e.test"))},
	}
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			cc, err := grpc.NewClient(tr.addr, grpc.WithTransportCredentials(tr.creds))
			if err != nil {
				t.Fatal(err)
			}
			defer cc.Close()
			client := healthpb.NewHealthClient(cc)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()

			// Unary.
			resp, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: "svc"})
			if err != nil {
				t.Fatalf("Check(svc): %v", err)
			}
			if got := resp.GetStatus(); got != healthpb.HealthCheckResponse_SERVING {
				t.Errorf("Check(svc): got %v, want SERVING", got)
			}

			// An error status, carried in the trailers (Trailers-Only).
			before, _ := gauge(t, ta.App, "torii_grpc_requests_total", map[string]string{"route": "grpc", "grpc_code": "NOT_FOUND"})
			_, err = client.Check(ctx, &healthpb.HealthCheckRequest{Service: "unknown"})
			if got := status.Code(err); got != codes.NotFound {
				t.Errorf("Check(unknown): got %v (%v), want NotFound", got, err)
			}
			after, ok := gauge(t, ta.App, "torii_grpc_requests_total", map[string]string{"route": "grpc", "grpc_code": "NOT_FOUND"})
			if !ok || after-before != 1 {
				t.Errorf(`torii_grpc_requests_total{grpc_code="NOT_FOUND"}: got +%v (found %v), want +1`, after-before, ok)
			}

			// Server streaming: each status change arrives while the
			// stream stays open.
			hs.SetServingStatus("svc", healthpb.HealthCheckResponse_SERVING)
			stream, err := client.Watch(ctx, &healthpb.HealthCheckRequest{Service: "svc"})
			if err != nil {
				t.Fatalf("Watch(svc): %v", err)
			}
			want := []healthpb.HealthCheckResponse_ServingStatus{
				healthpb.HealthCheckResponse_SERVING,
				healthpb.HealthCheckResponse_NOT_SERVING,
				healthpb.HealthCheckResponse_SERVING,
			}
			for i, w := range want {
				if i > 0 {
					// Flip only after the previous update arrived, so each
					// one must have been relayed on its own.
					hs.SetServingStatus("svc", w)
				}
				msg, err := stream.Recv()
				if err != nil {
					t.Fatalf("Watch update %d: %v", i, err)
				}
				if got := msg.GetStatus(); got != w {
					t.Errorf("Watch update %d: got %v, want %v", i, got, w)
				}
			}
			cancel()
			if _, err := stream.Recv(); status.Code(err) != codes.Canceled {
				t.Errorf("Watch after cancel: got %v, want Canceled", err)
			}
			if v, ok := gauge(t, ta.App, "torii_grpc_requests_total", map[string]string{"route": "grpc", "grpc_code": "OK"}); !ok || v < 1 {
				t.Errorf(`torii_grpc_requests_total{grpc_code="OK"}: got %v (found %v), want at least 1`, v, ok)
			}
		})
	}
}
