package alert

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Values of the result label.
const (
	resultSent    = "sent"    // delivered (2xx)
	resultRetry   = "retry"   // an attempt failed and will be retried
	resultDropped = "dropped" // refused (4xx), queue full, channel removed or undelivered at shutdown
)

// metrics are the dispatcher's collectors.
type metrics struct {
	notifications *prometheus.CounterVec // channel_type, result
}

// newMetrics builds the collectors and registers them with reg unless reg
// is nil; pending feeds the queue length gauge.
func newMetrics(reg prometheus.Registerer, pending func() int) (*metrics, error) {
	m := &metrics{
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "torii_alert_notifications_total",
			Help: "Alert notifications by channel type and result: sent, retry (an attempt failed and will be retried) or dropped.",
		}, []string{"channel_type", "result"}),
	}
	queue := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "torii_alert_queue_length",
		Help: "Alert notifications waiting to be delivered, over all channels.",
	}, func() float64 { return float64(pending()) })
	// Show every series from the start, so rate() and alerts on drops
	// see a zero before the first increment.
	for _, kind := range []string{kindAlertmanager, kindWebhook} {
		for _, r := range []string{resultSent, resultRetry, resultDropped} {
			m.notifications.WithLabelValues(kind, r)
		}
	}
	if reg == nil {
		return m, nil
	}
	if err := reg.Register(m.notifications); err != nil {
		return nil, fmt.Errorf("register alert metrics: %w", err)
	}
	if err := reg.Register(queue); err != nil {
		reg.Unregister(m.notifications) // leave reg as it was
		return nil, fmt.Errorf("register alert metrics: %w", err)
	}
	return m, nil
}

// count adds n to the counter of kind and result.
func (m *metrics) count(kind, result string, n int) {
	if n > 0 {
		m.notifications.WithLabelValues(kind, result).Add(float64(n))
	}
}
