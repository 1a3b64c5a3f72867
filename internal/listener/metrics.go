package listener

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Reasons a request is refused, the values of the reason label of
// torii_listener_requests_rejected_total.
const (
	// ReasonFraming is a request refused by the strict HTTP/1.1 framing
	// check (400).
	ReasonFraming = "framing"
	// ReasonHeaderTooLarge is a request head over max_header_bytes (431).
	ReasonHeaderTooLarge = "header_too_large"
	// ReasonOverload is a request over the listener's max_requests (503).
	ReasonOverload = "overload"
)

// Metrics are the listener metrics of one process, labelled by listener
// name. Create them once with NewMetrics; get each listener's handle with
// Listener.
type Metrics struct {
	connsRejected *prometheus.CounterVec
	openConns     *prometheus.GaugeVec
	reqsRejected  *prometheus.CounterVec
	http2Errors   *prometheus.CounterVec
}

// NewMetrics creates the listener metrics and registers them with reg:
//
//	torii_listener_connections_rejected_total{listener}
//	torii_listener_open_connections{listener}
//	torii_listener_requests_rejected_total{listener, reason}
//	torii_listener_http2_errors_total{listener, type}
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		connsRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "torii_listener_connections_rejected_total",
			Help: "Client connections closed at accept because the listener was at max_connections.",
		}, []string{"listener"}),
		openConns: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "torii_listener_open_connections",
			Help: "Client connections open on the listener.",
		}, []string{"listener"}),
		reqsRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "torii_listener_requests_rejected_total",
			Help: "Requests refused by the listener before routing, by reason: framing (400), header_too_large (431), overload (503).",
		}, []string{"listener", "reason"}),
		http2Errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "torii_listener_http2_errors_total",
			Help: "HTTP/2 protocol errors from clients (stream and connection errors), by type.",
		}, []string{"listener", "type"}),
	}
	for _, c := range []prometheus.Collector{m.connsRejected, m.openConns, m.reqsRejected, m.http2Errors} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register listener metrics: %w", err)
		}
	}
	return m, nil
}

// Listener returns the handle that records the metrics of the listener
// named name. A nil *Metrics returns a nil *Recorder, which records
// nothing.
func (m *Metrics) Listener(name string) *Recorder {
	if m == nil {
		return nil
	}
	r := &Recorder{
		m:             m,
		name:          name,
		connsRejected: m.connsRejected.WithLabelValues(name),
		openConns:     m.openConns.WithLabelValues(name),
		framing:       m.reqsRejected.WithLabelValues(name, ReasonFraming),
		tooLarge:      m.reqsRejected.WithLabelValues(name, ReasonHeaderTooLarge),
		overload:      m.reqsRejected.WithLabelValues(name, ReasonOverload),
	}
	return r
}

// Recorder records one listener's metrics. Its methods do nothing on a nil
// *Recorder.
type Recorder struct {
	m             *Metrics
	name          string
	connsRejected prometheus.Counter
	openConns     prometheus.Gauge
	framing       prometheus.Counter
	tooLarge      prometheus.Counter
	overload      prometheus.Counter
}

func (r *Recorder) connRejected() {
	if r != nil {
		r.connsRejected.Inc()
	}
}

func (r *Recorder) connOpened() {
	if r != nil {
		r.openConns.Inc()
	}
}

func (r *Recorder) connClosed() {
	if r != nil {
		r.openConns.Dec()
	}
}

func (r *Recorder) requestRejected(reason string) {
	if r == nil {
		return
	}
	switch reason {
	case ReasonFraming:
		r.framing.Inc()
	case ReasonHeaderTooLarge:
		r.tooLarge.Inc()
	case ReasonOverload:
		r.overload.Inc()
	}
}

// http2Error counts an HTTP/2 protocol error; it is the CountError hook of
// the listener's http2.Server.
func (r *Recorder) http2Error(errType string) {
	if r != nil {
		r.m.http2Errors.WithLabelValues(r.name, errType).Inc()
	}
}
