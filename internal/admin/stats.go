package admin

import (
	"cmp"
	"math"
	"net/http"
	"slices"
	"strconv"

	dto "github.com/prometheus/client_model/go"
)

// The metrics the stats endpoint reads from the registry
// (docs/observability.md; internal/telemetry registers them).
const (
	requestsMetric = "torii_http_requests_total"
	durationMetric = "torii_http_request_duration_seconds"
)

// statsView is GET /api/v1/stats: every configured route's counters since
// the process started, with its owning team. The dashboard turns two reads
// into request rates, error ratios and a p99, so the server keeps no state.
type statsView struct {
	// Teams are the teams the config declares, sorted.
	Teams []string `json:"teams"`
	// Routes are the configured routes, in config order.
	Routes []routeStats `json:"routes"`
}

// routeStats is one route's counters.
type routeStats struct {
	Route string `json:"route"`
	// Owner is the owning team (default_owner applied); "" when none.
	Owner string `json:"owner,omitempty"`
	// Kind is proxy, redirect or direct.
	Kind string `json:"kind"`
	// HasSLO reports whether the route has an SLO.
	HasSLO bool `json:"has_slo"`
	// Requests counts the responses sent, by every upstream.
	Requests uint64 `json:"requests"`
	// Errors counts the responses with a 5xx status.
	Errors uint64 `json:"errors"`
	// Codes counts the responses by status code label ("200", "499",
	// "other").
	Codes map[string]uint64 `json:"codes"`
	// Latency is the request duration histogram.
	Latency latencyStats `json:"latency"`
}

// latencyStats is a cumulative histogram of request durations.
type latencyStats struct {
	// Count and SumSeconds are the observations and their total.
	Count      uint64  `json:"count"`
	SumSeconds float64 `json:"sum_seconds"`
	// Buckets are cumulative counts by upper bound in seconds, ascending;
	// the +Inf bucket is left out (it is Count). Empty before the first
	// request.
	Buckets []bucket `json:"buckets"`
}

type bucket struct {
	LE    float64 `json:"le"`
	Count uint64  `json:"count"`
}

// stats answers GET /api/v1/stats from the metrics registry.
func (s *server) stats(w http.ResponseWriter, r *http.Request) {
	mfs, err := s.Gatherer.Gather()
	if err != nil {
		// Gather returns what it could alongside the error; the series
		// read here are torii's own and should not be among the failures.
		s.Logger.Warn("gather metrics for /api/v1/stats", "err", err)
		if len(mfs) == 0 {
			writeError(w, http.StatusServiceUnavailable, "gather metrics: "+err.Error())
			return
		}
	}
	cfg := s.Backend.Snapshot().Config()
	out := statsView{Teams: make([]string, 0, len(cfg.Teams)), Routes: make([]routeStats, 0, len(cfg.Routes))}
	for name := range cfg.Teams {
		out.Teams = append(out.Teams, name)
	}
	slices.Sort(out.Teams)
	kinds := map[string]string{}
	for _, rt := range s.Backend.Snapshot().Routes() {
		kinds[rt.Name] = rt.Kind
	}
	byRoute := map[string]*routeStats{}
	for _, rc := range cfg.Routes {
		out.Routes = append(out.Routes, routeStats{Route: rc.Name, Owner: rc.Owner, Kind: kinds[rc.Name],
			HasSLO: rc.SLO != nil, Codes: map[string]uint64{}, Latency: latencyStats{Buckets: []bucket{}}})
	}
	for i := range out.Routes {
		byRoute[out.Routes[i].Route] = &out.Routes[i]
	}
	for _, mf := range mfs {
		switch mf.GetName() {
		case requestsMetric:
			for _, m := range mf.GetMetric() {
				rs := byRoute[label(m, "route")]
				if rs == nil {
					continue
				}
				n := counter(m.GetCounter().GetValue())
				code := label(m, "code")
				rs.Requests += n
				rs.Codes[code] += n
				if c, err := strconv.Atoi(code); err == nil && c >= 500 && c <= 599 {
					rs.Errors += n
				}
			}
		case durationMetric:
			for _, m := range mf.GetMetric() {
				rs := byRoute[label(m, "route")]
				if rs == nil {
					continue
				}
				addHistogram(&rs.Latency, m.GetHistogram())
			}
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// addHistogram adds h to l. A route has one duration series, but adding
// keeps the sum right should the histogram ever gain a label.
func addHistogram(l *latencyStats, h *dto.Histogram) {
	l.Count += h.GetSampleCount()
	l.SumSeconds += h.GetSampleSum()
	for _, b := range h.GetBucket() {
		le := b.GetUpperBound()
		if math.IsInf(le, +1) {
			continue
		}
		i, found := slices.BinarySearchFunc(l.Buckets, le, func(x bucket, le float64) int { return cmp.Compare(x.LE, le) })
		if found {
			l.Buckets[i].Count += b.GetCumulativeCount()
			continue
		}
		l.Buckets = slices.Insert(l.Buckets, i, bucket{LE: le, Count: b.GetCumulativeCount()})
	}
}

func label(m *dto.Metric, name string) string {
	for _, lp := range m.GetLabel() {
		if lp.GetName() == name {
			return lp.GetValue()
		}
	}
	return ""
}

// counter converts a counter's value, a whole number held in a float64.
func counter(v float64) uint64 {
	if v <= 0 || math.IsNaN(v) {
		return 0
	}
	return uint64(math.Round(v))
}
