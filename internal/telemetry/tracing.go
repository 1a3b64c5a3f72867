package telemetry

import (
	"context"
	"fmt"
	"net/http"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"torii/internal/config"
	"torii/internal/request"
	"torii/internal/version"
)

// Attribute keys of torii's own span attributes, beside the OpenTelemetry
// HTTP semantic conventions. A route name is not the path template that
// http.route means, so it gets its own key.
const (
	attrRoute    = attribute.Key("torii.route")
	attrUpstream = attribute.Key("torii.upstream")
	attrEndpoint = attribute.Key("torii.endpoint")
	attrTries    = attribute.Key("torii.tries")
	attrID       = attribute.Key("torii.request_id")
)

// Tracing is OpenTelemetry tracing of requests with W3C trace-context
// propagation, exported over OTLP/HTTP. A nil *Tracing, or one built from
// a config without an endpoint, is off: its Middleware returns the handler
// unchanged, so traceparent and tracestate headers pass through untouched.
type Tracing struct {
	provider   *sdktrace.TracerProvider // nil when off
	tracer     trace.Tracer
	propagator propagation.TextMapPropagator
}

// NewTracing builds tracing from cfg. When cfg.Endpoint is empty tracing
// is off and NewTracing starts nothing. Otherwise it starts a batch span
// processor that exports to cfg.Endpoint (an OTLP/HTTP URL such as
// http://127.0.0.1:4318/v1/traces) until Shutdown. New traces are sampled
// at cfg.Sample (default 1); a request whose traceparent says its parent
// was sampled, or not, follows the parent's decision.
func NewTracing(ctx context.Context, cfg config.Tracing) (*Tracing, error) {
	if cfg.Endpoint == "" {
		return &Tracing{}, nil
	}
	opts := []otlptracehttp.Option{otlptracehttp.WithEndpointURL(cfg.Endpoint)}
	if len(cfg.Headers) > 0 {
		opts = append(opts, otlptracehttp.WithHeaders(cfg.Headers))
	}
	exporter, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("create OTLP exporter for %q: %w", cfg.Endpoint, err)
	}

	sample := 1.0
	if cfg.Sample != nil {
		sample = *cfg.Sample
	}
	name := cfg.ServiceName
	if name == "" {
		name = "torii"
	}
	res := resource.NewWithAttributes(semconv.SchemaURL,
		semconv.ServiceName(name),
		semconv.ServiceVersion(version.Get().Version),
	)
	provider := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exporter),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(sample))),
		sdktrace.WithResource(res),
	)
	return &Tracing{
		provider:   provider,
		tracer:     provider.Tracer("torii/internal/telemetry"),
		propagator: propagation.TraceContext{},
	}, nil
}

// Enabled reports whether t records and exports spans.
func (t *Tracing) Enabled() bool {
	return t != nil && t.provider != nil
}

// Middleware starts a server span for each request, the child of the
// trace context in the request's traceparent and tracestate headers when
// they are valid, and replaces those headers with the span's own context,
// so the proxy forwards torii's span as the upstream request's parent.
//
// The span is named by the method. When it ends it records the route,
// upstream, status and tries from the request's request.Info, so the
// middleware must run inside the handler that puts the Info in the
// context; a 5xx status marks the span as an error.
//
// When tracing is off, Middleware returns next.
func (t *Tracing) Middleware(next http.Handler) http.Handler {
	if !t.Enabled() {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		carrier := propagation.HeaderCarrier(r.Header)
		ctx := t.propagator.Extract(r.Context(), carrier)
		method, known := spanMethod(r.Method)
		name := method
		if !known {
			name = "HTTP" // the semantic conventions' name for an unknown method
		}
		attrs := []attribute.KeyValue{
			semconv.HTTPRequestMethodKey.String(method),
			semconv.URLPath(r.URL.Path),
			semconv.ServerAddress(r.Host),
			semconv.NetworkProtocolVersion(protocolVersion(r)),
		}
		if ua := r.UserAgent(); ua != "" {
			attrs = append(attrs, semconv.UserAgentOriginal(ua))
		}
		if !known {
			attrs = append(attrs, semconv.HTTPRequestMethodOriginal(r.Method))
		}
		ctx, span := t.tracer.Start(ctx, name,
			trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attrs...))
		defer span.End()

		// The upstream request is built from r.Header: put this span's
		// context there, replacing the client's (W3C Trace Context
		// section 3: a proxy that participates updates parent-id).
		r.Header.Del("Traceparent")
		r.Header.Del("Tracestate")
		t.propagator.Inject(ctx, carrier)

		next.ServeHTTP(w, r.WithContext(ctx))

		info := request.FromContext(ctx)
		if info == nil || !span.IsRecording() {
			return
		}
		span.SetAttributes(
			semconv.URLScheme(info.Scheme),
			semconv.HTTPResponseStatusCode(info.Status),
			attrRoute.String(info.Route),
			attrID.String(info.ID),
		)
		if info.ClientIP.IsValid() {
			span.SetAttributes(semconv.ClientAddress(info.ClientIP.String()))
		}
		if info.Upstream != "" {
			span.SetAttributes(
				attrUpstream.String(info.Upstream),
				attrEndpoint.String(info.Endpoint),
				attrTries.Int(info.Tries),
			)
		}
		// Server spans are errors for 5xx only; a 4xx is the client's
		// mistake, not the server's (semantic conventions, HTTP spans).
		if info.Status >= 500 {
			span.SetAttributes(semconv.ErrorTypeKey.String(strconv.Itoa(info.Status)))
			msg := ""
			if info.Err != nil {
				msg = info.Err.Error()
			}
			span.SetStatus(codes.Error, msg)
		}
	})
}

// Shutdown flushes spans not yet exported and stops the exporter. It
// returns when done or when ctx ends. It is a no-op when tracing is off.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if !t.Enabled() {
		return nil
	}
	if err := t.provider.Shutdown(ctx); err != nil {
		return fmt.Errorf("shut down tracing: %w", err)
	}
	return nil
}

// spanMethod returns the method to record and whether it is one of the
// known methods; the semantic conventions fold others into "_OTHER" so a
// client cannot mint span names.
func spanMethod(m string) (string, bool) {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
		http.MethodPatch, http.MethodDelete, http.MethodConnect,
		http.MethodOptions, http.MethodTrace:
		return m, true
	}
	return "_OTHER", false
}

// protocolVersion is network.protocol.version: "1.0", "1.1", "2" or "3".
func protocolVersion(r *http.Request) string {
	switch {
	case r.ProtoMajor == 1:
		return "1." + strconv.Itoa(r.ProtoMinor)
	default:
		return strconv.Itoa(r.ProtoMajor)
	}
}
