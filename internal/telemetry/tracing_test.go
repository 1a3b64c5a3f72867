package telemetry

import (
	"context"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"torii/internal/config"
	"torii/internal/request"
)

// receiver is an in-process OTLP/HTTP trace collector.
type receiver struct {
	srv *httptest.Server

	mu       sync.Mutex // guards spans and services
	spans    []*tracepb.Span
	services []string // service.name of each span's resource
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var req collectortrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			t.Errorf("receiver: decode export request: %v", err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rc.mu.Lock()
		for _, rs := range req.GetResourceSpans() {
			service := ""
			for _, kv := range rs.GetResource().GetAttributes() {
				if kv.GetKey() == "service.name" {
					service = kv.GetValue().GetStringValue()
				}
			}
			for _, ss := range rs.GetScopeSpans() {
				for _, s := range ss.GetSpans() {
					rc.spans = append(rc.spans, s)
					rc.services = append(rc.services, service)
				}
			}
		}
		rc.mu.Unlock()
		resp, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(resp)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

// received returns the spans exported so far and their service names.
func (rc *receiver) received() ([]*tracepb.Span, []string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]*tracepb.Span(nil), rc.spans...), append([]string(nil), rc.services...)
}

// traceparent splits a W3C traceparent header into its trace id, parent id
// and flags.
func traceparent(t *testing.T, h string) (traceID, spanID, flags string) {
	t.Helper()
	parts := strings.Split(h, "-")
	if len(parts) != 4 || parts[0] != "00" || len(parts[1]) != 32 || len(parts[2]) != 16 {
		t.Fatalf("malformed traceparent %q", h)
	}
	return parts[1], parts[2], parts[3]
}

// serve runs req through an outer handler that installs a request.Info,
// then the tracing middleware, then a stand-in for the proxy that records
// the headers it would forward and fills the Info in.
func serve(h func(http.Handler) http.Handler, req *http.Request, status int) http.Header {
	var forwarded http.Header
	proxy := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		forwarded = r.Header.Clone()
		info := request.FromContext(r.Context())
		info.Route, info.Upstream, info.Endpoint, info.Tries = "items", "listing", "127.0.0.1:9", 2
		info.Status = status
		if status >= 500 {
			info.Err = errors.New("dial upstream \"listing\": connection refused")
		}
		w.WriteHeader(status)
	})
	inner := h(proxy)
	outer := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := &request.Info{ID: "req-1", Start: time.Now(), Scheme: "http"}
		inner.ServeHTTP(w, r.WithContext(request.NewContext(r.Context(), info)))
	})
	outer.ServeHTTP(httptest.NewRecorder(), req)
	return forwarded
}

func TestTracingExportsServerSpan(t *testing.T) {
	rc := newReceiver(t)
	ctx := context.Background()
	tr, err := NewTracing(ctx, config.Tracing{Endpoint: rc.srv.URL + "/v1/traces", ServiceName: "edge"})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Shutdown(ctx)

	const (
		clientTrace  = "4bf92f3577b34da6a3ce929d0e0e4736"
		clientParent = "00f067aa0ba902b7"
	)
	req := httptest.NewRequest(http.MethodGet, "http://api.example.com/v1/items?token=x", nil)
	req.Header.Set("Traceparent", "00-"+clientTrace+"-"+clientParent+"-01")
	req.Header.Set("Tracestate", "vendor=abc")
	fwd := serve(tr.Middleware, req, http.StatusBadGateway)

	traceID, spanID, flags := traceparent(t, fwd.Get("Traceparent"))
	if traceID != clientTrace {
		t.Errorf("forwarded trace id %s, want the client's %s", traceID, clientTrace)
	}
	if spanID == clientParent {
		t.Errorf("forwarded parent id %s is the client's, want torii's span", spanID)
	}
	if flags != "01" {
		t.Errorf("forwarded flags %s, want 01", flags)
	}
	if got := fwd.Get("Tracestate"); got != "vendor=abc" {
		t.Errorf("forwarded tracestate %q, want vendor=abc", got)
	}

	if err := tr.Shutdown(ctx); err != nil { // flushes the batch
		t.Fatal(err)
	}
	spans, services := rc.received()
	if len(spans) != 1 {
		t.Fatalf("received %d spans, want 1", len(spans))
	}
	s := spans[0]
	checks := []struct{ what, got, want string }{
		{"trace id", hex.EncodeToString(s.GetTraceId()), clientTrace},
		{"span id", hex.EncodeToString(s.GetSpanId()), spanID},
		{"parent span id", hex.EncodeToString(s.GetParentSpanId()), clientParent},
		{"name", s.GetName(), "GET"},
		{"kind", s.GetKind().String(), tracepb.Span_SPAN_KIND_SERVER.String()},
		{"status", s.GetStatus().GetCode().String(), tracepb.Status_STATUS_CODE_ERROR.String()},
		{"service.name", services[0], "edge"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("span %s = %q, want %q", c.what, c.got, c.want)
		}
	}
	attrs := map[string]any{}
	for _, kv := range s.GetAttributes() {
		switch v := kv.GetValue().GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			attrs[kv.GetKey()] = v.StringValue
		case *commonpb.AnyValue_IntValue:
			attrs[kv.GetKey()] = v.IntValue
		}
	}
	wantAttrs := map[string]any{
		"http.request.method":       "GET",
		"http.response.status_code": int64(502),
		"url.path":                  "/v1/items",
		"server.address":            "api.example.com",
		"torii.route":               "items",
		"torii.upstream":            "listing",
		"torii.tries":               int64(2),
		"error.type":                "502",
	}
	for k, want := range wantAttrs {
		if got := attrs[k]; got != want {
			t.Errorf("span attribute %s = %v, want %v", k, got, want)
		}
	}
	for k, v := range attrs {
		if str, ok := v.(string); ok && strings.Contains(str, "token") {
			t.Errorf("span attribute %s = %q carries the query string", k, v)
		}
	}
}

func TestTracingNewTrace(t *testing.T) {
	rc := newReceiver(t)
	ctx := context.Background()
	tr, err := NewTracing(ctx, config.Tracing{Endpoint: rc.srv.URL + "/v1/traces"})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("BREW", "http://api.example.com/", nil)
	req.Header.Set("Traceparent", "garbage")
	fwd := serve(tr.Middleware, req, http.StatusOK)
	traceID, spanID, _ := traceparent(t, fwd.Get("Traceparent"))
	if err := tr.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	spans, services := rc.received()
	if len(spans) != 1 {
		t.Fatalf("received %d spans, want 1", len(spans))
	}
	s := spans[0]
	if got := hex.EncodeToString(s.GetTraceId()); got != traceID {
		t.Errorf("span trace id %s, want the forwarded %s", got, traceID)
	}
	if got := hex.EncodeToString(s.GetSpanId()); got != spanID {
		t.Errorf("span id %s, want the forwarded parent id %s", got, spanID)
	}
	if len(s.GetParentSpanId()) != 0 {
		t.Errorf("span has parent %x, want a root span", s.GetParentSpanId())
	}
	if s.GetName() != "HTTP" {
		t.Errorf("span name for an unknown method = %q, want HTTP", s.GetName())
	}
	if s.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR {
		t.Error("a 200 response marked the span as an error")
	}
	if services[0] != "torii" {
		t.Errorf("service.name = %q, want the default torii", services[0])
	}
}

// TestTracingFollowsUnsampledParent shows a parent's "not sampled" flag is
// honoured: nothing is exported, yet the upstream still sees torii as the
// parent, with the flag kept.
func TestTracingFollowsUnsampledParent(t *testing.T) {
	rc := newReceiver(t)
	ctx := context.Background()
	tr, err := NewTracing(ctx, config.Tracing{Endpoint: rc.srv.URL + "/v1/traces"})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "http://api.example.com/", nil)
	req.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
	fwd := serve(tr.Middleware, req, http.StatusOK)
	traceID, spanID, flags := traceparent(t, fwd.Get("Traceparent"))
	if traceID != "4bf92f3577b34da6a3ce929d0e0e4736" || spanID == "00f067aa0ba902b7" || flags != "00" {
		t.Errorf("forwarded traceparent %q, want the client's trace, a new parent id, flags 00", fwd.Get("Traceparent"))
	}
	if err := tr.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if spans, _ := rc.received(); len(spans) != 0 {
		t.Errorf("received %d spans of an unsampled trace, want 0", len(spans))
	}
}

func TestTracingOff(t *testing.T) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tests := []struct {
		name string
		tr   func(t *testing.T) *Tracing
	}{
		{"no endpoint", func(t *testing.T) *Tracing {
			tr, err := NewTracing(context.Background(), config.Tracing{})
			if err != nil {
				t.Fatal(err)
			}
			return tr
		}},
		{"nil", func(*testing.T) *Tracing { return nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := tt.tr(t)
			if tr.Enabled() {
				t.Error("Enabled() = true, want false")
			}
			req := httptest.NewRequest(http.MethodGet, "http://api.example.com/", nil)
			req.Header.Set("Traceparent", tp)
			req.Header.Set("Tracestate", "vendor=abc")
			fwd := serve(tr.Middleware, req, http.StatusOK)
			if got := fwd.Get("Traceparent"); got != tp {
				t.Errorf("forwarded traceparent %q, want %q untouched", got, tp)
			}
			if got := fwd.Get("Tracestate"); got != "vendor=abc" {
				t.Errorf("forwarded tracestate %q, want vendor=abc untouched", got)
			}
			if err := tr.Shutdown(context.Background()); err != nil {
				t.Errorf("Shutdown() = %v, want nil", err)
			}
		})
	}
}
