// Package telemetry is torii's Prometheus metrics and OpenTelemetry
// tracing. docs/observability.md lists every metric, its type and labels.
//
// Metrics is built once per process and outlives config reloads: route
// and upstream names are label values, not registrations, so a reload
// needs no new collectors.
package telemetry

import (
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"torii/internal/request"
	"torii/internal/upstream"
	"torii/internal/version"
)

// DurationBuckets are the upper bounds, in seconds, of the request
// duration histogram: a modest set, from 5ms to 10s, so that 10,000 routes
// stay affordable.
var DurationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// noneLabel stands for an empty route or upstream name: no route matched,
// or the route answered without an upstream (redirect, direct response).
const noneLabel = "none"

// Metrics holds torii's Prometheus collectors. Its methods are safe for
// concurrent use.
type Metrics struct {
	requests *prometheus.CounterVec   // route, upstream, code
	grpc     *prometheus.CounterVec   // route, upstream, grpc_code
	duration *prometheus.HistogramVec // route
	retries  *prometheus.CounterVec   // route, upstream
	inFlight prometheus.Gauge

	reloadOK      prometheus.Gauge
	reloadTime    prometheus.Gauge
	reloadSuccess prometheus.Counter
	reloadFailure prometheus.Counter

	// series caches the resolved children of each (route, upstream,
	// code, gRPC code) seen, so Observe does no label hashing after the
	// first request of a combination. Keys: seriesKey; values: *series.
	series sync.Map
	// inFlightDone is inFlight.Dec, bound once so InFlight does not
	// allocate a closure per request.
	inFlightDone func()
}

// seriesKey identifies one cached set of children.
type seriesKey struct {
	route, upstream string
	code            int
	grpc            int // gRPC status code 0-16, grpcOther, or grpcNone
}

// series are the children of one seriesKey.
type series struct {
	requests prometheus.Counter
	retries  prometheus.Counter
	duration prometheus.Observer
	grpc     prometheus.Counter // nil when the key's grpc is grpcNone
}

// NewMetrics builds torii's collectors and registers them with reg, which
// must not be nil. endpoints, if not nil, is read at each scrape for the per-endpoint
// gauges and counters, so an endpoint that leaves the config leaves the
// metrics with it. NewMetrics starts nothing. It fails if a collector is
// already registered, so build one Metrics per registry.
func NewMetrics(reg prometheus.Registerer, endpoints func() []upstream.EndpointStatus) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "torii_http_requests_total",
			Help: "HTTP requests served, by route, upstream of the last try and status code; route and upstream are \"none\" when absent.",
		}, []string{"route", "upstream", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "torii_http_request_duration_seconds",
			Help:    "Time from the start of a request to the end of its response, by route.",
			Buckets: DurationBuckets,
		}, []string{"route"}),
		grpc: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "torii_grpc_requests_total",
			Help: "gRPC requests served, by route, upstream of the last try and grpc-status name (OK, NOT_FOUND, ..., or other).",
		}, []string{"route", "upstream", "grpc_code"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "torii_upstream_retries_total",
			Help: "Retries to upstreams (tries after the first), by route and upstream of the last try.",
		}, []string{"route", "upstream"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "torii_http_requests_in_flight",
			Help: "HTTP requests being served.",
		}),
		reloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "torii_config_last_reload_successful",
			Help: "Whether the last configuration load or reload succeeded (1) or failed (0).",
		}),
		reloadTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "torii_config_last_reload_success_timestamp_seconds",
			Help: "Unix time of the last successful configuration load or reload.",
		}),
	}
	m.inFlightDone = m.inFlight.Dec
	reloads := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "torii_config_reloads_total",
		Help: "Configuration loads and reloads, by result (success or failure).",
	}, []string{"result"})
	m.reloadSuccess = reloads.WithLabelValues("success")
	m.reloadFailure = reloads.WithLabelValues("failure")

	build := version.Get()
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "torii_build_info",
		Help: "Always 1; the labels identify the running build.",
		ConstLabels: prometheus.Labels{
			"version":   build.Version,
			"revision":  build.Commit,
			"goversion": build.GoVersion,
		},
	})
	buildInfo.Set(1)

	collectors := []prometheus.Collector{
		m.requests, m.grpc, m.duration, m.retries, m.inFlight,
		m.reloadOK, m.reloadTime, reloads, buildInfo,
	}
	if endpoints != nil {
		collectors = append(collectors, endpointCollector(endpoints))
	}
	for _, c := range collectors {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}

// InFlight counts a request as in flight until done is called. Call done
// exactly once.
func (m *Metrics) InFlight() (done func()) {
	m.inFlight.Inc()
	return m.inFlightDone
}

// Observe records a finished request: its count by route, upstream and
// status, its duration, its retries (info.Tries beyond the first), and,
// for a gRPC request (info.GRPCStatus set), its count by grpc-status.
// The first request of each (route, upstream, status, gRPC status)
// combination creates its series; later ones neither allocate nor hash
// labels.
func (m *Metrics) Observe(info *request.Info, dur time.Duration) {
	s := m.seriesFor(seriesKey{route: info.Route, upstream: info.Upstream, code: info.Status,
		grpc: grpcCode(info.GRPCStatus)})
	s.requests.Inc()
	if s.grpc != nil {
		s.grpc.Inc()
	}
	s.duration.Observe(dur.Seconds())
	if info.Tries > 1 {
		s.retries.Add(float64(info.Tries - 1))
	}
}

// seriesFor returns the cached children for k, creating them on first use.
func (m *Metrics) seriesFor(k seriesKey) *series {
	if s, ok := m.series.Load(k); ok {
		return s.(*series)
	}
	route, up := labelOrNone(k.route), labelOrNone(k.upstream)
	s := &series{
		requests: m.requests.WithLabelValues(route, up, codeLabel(k.code)),
		retries:  m.retries.WithLabelValues(route, up),
		duration: m.duration.WithLabelValues(route),
	}
	if k.grpc != grpcNone {
		s.grpc = m.grpc.WithLabelValues(route, up, grpcCodeLabel(k.grpc))
	}
	// Two goroutines may race to build the same series; the children
	// they resolved are the same, so either copy will do.
	actual, _ := m.series.LoadOrStore(k, s)
	return actual.(*series)
}

// ForgetRoutes deletes the series of every route for which keep reports
// false, so routes removed by a reload stop being exported. Call it after
// a successful reload with the new snapshot's route names. A request still
// finishing on a forgotten route may be counted in a series that is no
// longer exported.
func (m *Metrics) ForgetRoutes(keep func(route string) bool) {
	m.series.Range(func(key, _ any) bool {
		k := key.(seriesKey)
		if k.route == "" || keep(k.route) {
			return true
		}
		m.series.Delete(k)
		route, up := labelOrNone(k.route), labelOrNone(k.upstream)
		m.requests.DeleteLabelValues(route, up, codeLabel(k.code))
		m.retries.DeleteLabelValues(route, up)
		m.duration.DeleteLabelValues(route)
		if k.grpc != grpcNone {
			m.grpc.DeleteLabelValues(route, up, grpcCodeLabel(k.grpc))
		}
		return true
	})
}

// ReloadResult records a configuration load or reload that finished at
// at: ok reports whether it took effect.
func (m *Metrics) ReloadResult(ok bool, at time.Time) {
	if !ok {
		m.reloadOK.Set(0)
		m.reloadFailure.Inc()
		return
	}
	m.reloadOK.Set(1)
	m.reloadTime.Set(float64(at.UnixNano()) / 1e9)
	m.reloadSuccess.Inc()
}

// labelOrNone returns s, or "none" when s is empty.
func labelOrNone(s string) string {
	if s == "" {
		return noneLabel
	}
	return s
}

// codeLabel returns the status code as a label value. Anything outside the
// HTTP range 100-599 (including 0, no status recorded) is "other", so a
// misbehaving upstream cannot mint series.
func codeLabel(code int) string {
	if code < 100 || code > 599 {
		return "other"
	}
	return strconv.Itoa(code)
}

// grpcCodeNames are the canonical names of the gRPC status codes 0-16,
// indexed by code (grpc/grpc doc/statuscodes.md).
var grpcCodeNames = [...]string{
	"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
	"NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
	"FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
	"INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
}

// Special values of seriesKey.grpc.
const (
	grpcNone  = -1 // not a gRPC request
	grpcOther = -2 // a grpc-status that is not a known code
)

// grpcCode parses a grpc-status value into a seriesKey.grpc: "" is
// grpcNone, a code 0-16 is itself, anything else grpcOther, so a
// misbehaving upstream cannot mint series.
func grpcCode(status string) int {
	switch {
	case status == "":
		return grpcNone
	case len(status) == 1 && '0' <= status[0] && status[0] <= '9':
		return int(status[0] - '0')
	case len(status) == 2 && status[0] == '1' && '0' <= status[1] && status[1] <= '6':
		return 10 + int(status[1]-'0')
	}
	return grpcOther
}

// grpcCodeLabel returns the grpc_code label of a seriesKey.grpc.
func grpcCodeLabel(code int) string {
	if code < 0 || code >= len(grpcCodeNames) {
		return "other"
	}
	return grpcCodeNames[code]
}

// Endpoint metric descriptions; see endpointCollector.
var (
	endpointHealthyDesc = prometheus.NewDesc("torii_upstream_endpoint_healthy",
		"Whether the endpoint passes its active health checks (1) or not (0).",
		[]string{"upstream", "endpoint"}, nil)
	endpointEjectedDesc = prometheus.NewDesc("torii_upstream_endpoint_ejected",
		"Whether passive outlier detection has ejected the endpoint (1) or not (0).",
		[]string{"upstream", "endpoint"}, nil)
	endpointInFlightDesc = prometheus.NewDesc("torii_upstream_endpoint_in_flight",
		"Tries in progress to the endpoint.",
		[]string{"upstream", "endpoint"}, nil)
	endpointEjectionsDesc = prometheus.NewDesc("torii_upstream_ejections_total",
		"Times passive outlier detection ejected the endpoint.",
		[]string{"upstream", "endpoint"}, nil)
)

// endpointCollector exports the live state of each endpoint, read at
// scrape time, so it has no series to go stale.
type endpointCollector func() []upstream.EndpointStatus

// Describe sends the four endpoint descriptions.
func (c endpointCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- endpointHealthyDesc
	ch <- endpointEjectedDesc
	ch <- endpointInFlightDesc
	ch <- endpointEjectionsDesc
}

// Collect reads the endpoints and sends their metrics.
func (c endpointCollector) Collect(ch chan<- prometheus.Metric) {
	for _, e := range c() {
		ch <- prometheus.MustNewConstMetric(endpointHealthyDesc, prometheus.GaugeValue, boolValue(e.Healthy), e.Upstream, e.Addr)
		ch <- prometheus.MustNewConstMetric(endpointEjectedDesc, prometheus.GaugeValue, boolValue(e.Ejected), e.Upstream, e.Addr)
		ch <- prometheus.MustNewConstMetric(endpointInFlightDesc, prometheus.GaugeValue, float64(e.InFlight), e.Upstream, e.Addr)
		ch <- prometheus.MustNewConstMetric(endpointEjectionsDesc, prometheus.CounterValue, float64(e.Ejections), e.Upstream, e.Addr)
	}
}

// boolValue is 1 for true and 0 for false.
func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
