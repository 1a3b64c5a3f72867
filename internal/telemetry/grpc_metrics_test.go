package telemetry

import (
	"testing"
	"time"

	"torii/internal/request"
)

func TestObserveGRPC(t *testing.T) {
	m, reg := newTestMetrics(t, nil)
	infos := []*request.Info{
		{Route: "rpc", Upstream: "svc", Status: 200, Tries: 1, GRPCStatus: "0"},
		{Route: "rpc", Upstream: "svc", Status: 200, Tries: 1, GRPCStatus: "0"},
		{Route: "rpc", Upstream: "svc", Status: 200, Tries: 1, GRPCStatus: "5"},
		{Route: "rpc", Upstream: "svc", Status: 200, Tries: 1, GRPCStatus: "14"},
		{Route: "rpc", Upstream: "svc", Status: 200, Tries: 1, GRPCStatus: "16"},
		{Route: "rpc", Upstream: "svc", Status: 200, Tries: 1, GRPCStatus: "17"},  // unknown code
		{Route: "rpc", Upstream: "svc", Status: 200, Tries: 1, GRPCStatus: "07"},  // not canonical
		{Route: "rpc", Upstream: "svc", Status: 200, Tries: 1, GRPCStatus: "abc"}, // nonsense
		{Route: "rpc", Upstream: "svc", Status: 502, Tries: 1},                    // not gRPC
		{Route: "web", Upstream: "svc", Status: 200, Tries: 1},                    // not gRPC
	}
	for _, info := range infos {
		m.Observe(info, time.Millisecond)
	}
	checkScrape(t, reg, `
torii_grpc_requests_total{grpc_code="NOT_FOUND",route="rpc",upstream="svc"} 1
torii_grpc_requests_total{grpc_code="OK",route="rpc",upstream="svc"} 2
torii_grpc_requests_total{grpc_code="UNAUTHENTICATED",route="rpc",upstream="svc"} 1
torii_grpc_requests_total{grpc_code="UNAVAILABLE",route="rpc",upstream="svc"} 1
torii_grpc_requests_total{grpc_code="other",route="rpc",upstream="svc"} 3
torii_http_requests_total{code="200",route="rpc",upstream="svc"} 8
torii_http_requests_total{code="200",route="web",upstream="svc"} 1
torii_http_requests_total{code="502",route="rpc",upstream="svc"} 1
`, "torii_grpc_requests_total", "torii_http_requests_total")
}

func TestGRPCCodeLabel(t *testing.T) {
	tests := []struct {
		status, want string
	}{
		{"0", "OK"}, {"1", "CANCELLED"}, {"2", "UNKNOWN"}, {"3", "INVALID_ARGUMENT"},
		{"4", "DEADLINE_EXCEEDED"}, {"5", "NOT_FOUND"}, {"6", "ALREADY_EXISTS"},
		{"7", "PERMISSION_DENIED"}, {"8", "RESOURCE_EXHAUSTED"}, {"9", "FAILED_PRECONDITION"},
		{"10", "ABORTED"}, {"11", "OUT_OF_RANGE"}, {"12", "UNIMPLEMENTED"}, {"13", "INTERNAL"},
		{"14", "UNAVAILABLE"}, {"15", "DATA_LOSS"}, {"16", "UNAUTHENTICATED"},
		{"17", "other"}, {"-1", "other"}, {"1 ", "other"}, {"０", "other"},
	}
	for _, tt := range tests {
		t.Run(tt.status, func(t *testing.T) {
			if got := grpcCodeLabel(grpcCode(tt.status)); got != tt.want {
				t.Errorf("grpcCodeLabel(grpcCode(%q)): got %q, want %q", tt.status, got, tt.want)
			}
		})
	}
	if got := grpcCode(""); got != grpcNone {
		t.Errorf("grpcCode(\"\"): got %d, want grpcNone", got)
	}
}

func TestForgetRoutesGRPC(t *testing.T) {
	m, reg := newTestMetrics(t, nil)
	for _, route := range []string{"keep", "drop"} {
		m.Observe(&request.Info{Route: route, Upstream: "u", Status: 200, Tries: 1, GRPCStatus: "5"}, time.Millisecond)
	}
	m.ForgetRoutes(func(route string) bool { return route == "keep" })
	checkScrape(t, reg, `
torii_grpc_requests_total{grpc_code="NOT_FOUND",route="keep",upstream="u"} 1
`, "torii_grpc_requests_total")
	// A forgotten route that comes back is counted afresh.
	m.Observe(&request.Info{Route: "drop", Upstream: "u", Status: 200, Tries: 1, GRPCStatus: "0"}, time.Millisecond)
	checkScrape(t, reg, `
torii_grpc_requests_total{grpc_code="NOT_FOUND",route="keep",upstream="u"} 1
torii_grpc_requests_total{grpc_code="OK",route="drop",upstream="u"} 1
`, "torii_grpc_requests_total")
}

func BenchmarkObserveGRPC(b *testing.B) {
	m, _ := newTestMetrics(b, nil)
	info := &request.Info{Route: "rpc", Upstream: "svc", Status: 200, Tries: 1, GRPCStatus: "0"}
	b.ReportAllocs()
	for b.Loop() {
		m.Observe(info, time.Millisecond)
	}
}
