package alert

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// postableAlert is one element of the body of Alertmanager's
// POST /api/v2/alerts (the postableAlert definition of its OpenAPI spec,
// api/v2/openapi.yaml): labels are required, the rest optional.
type postableAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// resendFactor times the re-send interval is how far ahead a firing
// alert's endsAt is set: Alertmanager resolves the alert by itself if
// torii stops re-sending it (Prometheus uses a similar margin).
const resendFactor = 3

// encodeAlertmanager returns the Alertmanager v2 body for batch. A firing
// alert ends resendFactor re-send intervals after now; a resolved one
// ends at its EndsAt (now when that is zero).
func encodeAlertmanager(batch []Notification, now time.Time, resend time.Duration) ([]byte, error) {
	alerts := make([]postableAlert, len(batch))
	for i, n := range batch {
		ends := now.Add(resendFactor * resend)
		if !n.Firing {
			ends = resolvedAt(n, now)
		}
		labels := n.Labels
		if labels == nil {
			labels = map[string]string{}
		}
		alerts[i] = postableAlert{
			Labels:       labels,
			Annotations:  n.Annotations,
			StartsAt:     n.StartsAt.UTC(),
			EndsAt:       ends.UTC(),
			GeneratorURL: n.GeneratorURL,
		}
	}
	return json.Marshal(alerts)
}

// WebhookVersion is the "version" of the webhook payload; it changes only
// if the payload changes incompatibly.
const WebhookVersion = "1"

// webhookPayload is the body POSTed to a webhook channel: one alert's
// change of state.
type webhookPayload struct {
	Version     string            `json:"version"`
	Status      string            `json:"status"` // "firing" or "resolved"
	Key         string            `json:"key"`
	Team        string            `json:"team"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	StartsAt    time.Time         `json:"startsAt"`
	// EndsAt is absent while firing.
	EndsAt       *time.Time `json:"endsAt,omitempty"`
	GeneratorURL string     `json:"generatorURL,omitempty"`
}

// encodeWebhook returns the webhook body for n.
func encodeWebhook(n Notification, now time.Time) ([]byte, error) {
	p := webhookPayload{
		Version:      WebhookVersion,
		Status:       "firing",
		Key:          n.Key,
		Team:         n.Team,
		Labels:       n.Labels,
		Annotations:  n.Annotations,
		StartsAt:     n.StartsAt.UTC(),
		GeneratorURL: n.GeneratorURL,
	}
	if p.Labels == nil {
		p.Labels = map[string]string{}
	}
	if p.Annotations == nil {
		p.Annotations = map[string]string{}
	}
	if !n.Firing {
		p.Status = "resolved"
		ends := resolvedAt(n, now).UTC()
		p.EndsAt = &ends
	}
	return json.Marshal(p)
}

// resolvedAt is when a resolved notification ended.
func resolvedAt(n Notification, now time.Time) time.Time {
	if n.EndsAt.IsZero() {
		return now
	}
	return n.EndsAt
}

// retryAfter parses a Retry-After header (RFC 9110 section 10.2.3:
// delay-seconds or an HTTP-date) into a wait from now; zero if absent,
// invalid or past.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(min(secs, int64(24*time.Hour/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// readSnippet reads the start of a response body for an error message and
// discards a bounded remainder so the connection can be reused.
func readSnippet(r io.Reader) string {
	const show, discard = 256, 64 << 10
	b, _ := io.ReadAll(io.LimitReader(r, show))
	_, _ = io.Copy(io.Discard, io.LimitReader(r, discard))
	return strings.TrimSpace(strings.ToValidUTF8(string(b), "?"))
}
