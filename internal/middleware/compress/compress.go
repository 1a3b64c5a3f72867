// Package compress compresses a route's responses with zstd, brotli or
// gzip, negotiated from the request's Accept-Encoding q-values.
//
// A response is compressed when the client accepts one of the route's
// codings and the response is a compressible media type, is not already
// encoded, does not forbid transformation (Cache-Control: no-transform),
// is not partial, and is at least MinBytes long. Compressed responses
// lose Content-Length and Accept-Ranges, gain Content-Encoding, and
// their strong ETag is weakened (RFC 9110 §8.8.1: the bytes differ).
// Every compressible response carries Vary: Accept-Encoding, compressed
// or not, so that caches — torii's own sits just outside this
// middleware — store each variant under its own key.
//
// Streams work: a flush from the handler flushes the encoder and the
// client. Encoders and buffers are pooled; no goroutine is started.
// docs/compression.md is the user's guide.
package compress

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"torii/internal/config"
	"torii/internal/telemetry"
)

// Metrics are the compression counters, shared by every route's
// middleware and surviving reloads.
type Metrics struct {
	responses *prometheus.CounterVec
	in, out   *prometheus.CounterVec
}

// NewMetrics returns the metrics, registered with reg when it is not nil:
// torii_compress_responses_total{algorithm}, the responses compressed;
// torii_compress_in_bytes_total{algorithm} and
// torii_compress_out_bytes_total{algorithm}, the body bytes before and
// after compression. Metrics registered earlier with reg are reused.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "torii_compress_responses_total",
			Help: "Responses compressed, by content coding.",
		}, []string{"algorithm"}),
		in: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "torii_compress_in_bytes_total",
			Help: "Body bytes of compressed responses before compression, by content coding.",
		}, []string{"algorithm"}),
		out: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "torii_compress_out_bytes_total",
			Help: "Body bytes of compressed responses after compression, by content coding.",
		}, []string{"algorithm"}),
	}
	if reg != nil {
		m.responses = telemetry.Register(reg, m.responses)
		m.in = telemetry.Register(reg, m.in)
		m.out = telemetry.Register(reg, m.out)
	}
	return m
}

// Option configures New.
type Option func(*middleware)

// WithMetrics counts compressed responses and bytes in m. Without it
// nothing is counted.
func WithMetrics(m *Metrics) Option {
	return func(mw *middleware) { mw.metrics = m }
}

// offer is one coding a route offers, with its counters (nil without
// metrics).
type offer struct {
	alg                *algorithm
	responses, in, out prometheus.Counter
}

// middleware is one route's compression settings, fixed at New.
type middleware struct {
	names    []string // offered codings, most preferred first
	offers   []offer  // by the index of names
	minBytes int
	types    mediaTypes
	metrics  *Metrics
}

// New returns the middleware compressing responses as cfg says. Fields
// of cfg left zero take their defaults (config.DefaultCompressAlgorithms,
// config.DefaultCompressMinBytes, config.DefaultCompressTypes). It fails
// on an unknown algorithm or a malformed type, which a validated config
// does not have.
func New(cfg *config.Compress, opts ...Option) (func(http.Handler) http.Handler, error) {
	if cfg == nil {
		return nil, errors.New("compress: nil config")
	}
	m := &middleware{minBytes: cfg.MinBytes}
	for _, o := range opts {
		o(m)
	}
	if m.minBytes == 0 {
		m.minBytes = config.DefaultCompressMinBytes
	}
	if m.minBytes < 1 || m.minBytes > config.MaxCompressMinBytes {
		return nil, fmt.Errorf("compress: min_bytes %d out of range 1 to %d", m.minBytes, config.MaxCompressMinBytes)
	}
	names := cfg.Algorithms
	if len(names) == 0 {
		names = config.DefaultCompressAlgorithms
	}
	for _, name := range names {
		alg, ok := algorithms[name]
		if !ok {
			return nil, fmt.Errorf("compress: unknown algorithm %q", name)
		}
		if slices.Contains(m.names, name) {
			return nil, fmt.Errorf("compress: duplicate algorithm %q", name)
		}
		o := offer{alg: alg}
		if m.metrics != nil {
			o.responses = m.metrics.responses.WithLabelValues(name)
			o.in = m.metrics.in.WithLabelValues(name)
			o.out = m.metrics.out.WithLabelValues(name)
		}
		m.names = append(m.names, name)
		m.offers = append(m.offers, o)
	}
	types := cfg.Types
	if len(types) == 0 {
		types = config.DefaultCompressTypes
	}
	var err error
	if m.types, err = newMediaTypes(types); err != nil {
		return nil, fmt.Errorf("compress: %w", err)
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			m.serve(w, r, next)
		})
	}, nil
}

func (m *middleware) serve(w http.ResponseWriter, r *http.Request, next http.Handler) {
	cw := &responseWriter{
		ResponseWriter: w,
		m:              m,
		chosen:         negotiate(r.Header["Accept-Encoding"], m.names),
		head:           r.Method == http.MethodHead,
		ranged:         r.Header["Range"] != nil,
	}
	next.ServeHTTP(cw, r)
	// A handler that panics leaves cw unfinished: its encoder and buffer
	// are dropped rather than pooled mid-stream.
	cw.finish()
}

// mediaTypes are the compressible media types of a route.
type mediaTypes struct {
	exact    []string // "application/json"
	prefixes []string // "text/" for "text/*"
	suffixes []string // "+json"
}

func newMediaTypes(list []string) (mediaTypes, error) {
	var t mediaTypes
	for _, s := range list {
		s = strings.ToLower(strings.TrimSpace(s))
		typ, sub, ok := strings.Cut(s, "/")
		switch {
		case strings.HasPrefix(s, "+") && len(s) > 1:
			t.suffixes = append(t.suffixes, s)
		case !ok || typ == "" || sub == "" || typ == "*" || strings.ContainsAny(s, "; "):
			return mediaTypes{}, fmt.Errorf("invalid media type %q", s)
		case sub == "*":
			t.prefixes = append(t.prefixes, typ+"/")
		default:
			t.exact = append(t.exact, s)
		}
	}
	return t, nil
}

// match reports whether the Content-Type value ct names a compressible
// media type. Parameters (charset) are ignored, and so is case. gRPC
// (application/grpc, application/grpc+json, gRPC-Web) is never
// compressible whatever the list says: it frames and compresses its own
// messages, and its clients reject a Content-Encoding.
func (t *mediaTypes) match(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.TrimSpace(mt)
	slash := strings.IndexByte(mt, '/')
	if slash <= 0 || slash == len(mt)-1 {
		return false
	}
	sub := mt[slash+1:]
	if hasPrefixFold(sub, "grpc") {
		return false
	}
	for _, e := range t.exact {
		if strings.EqualFold(mt, e) {
			return true
		}
	}
	for _, p := range t.prefixes {
		if hasPrefixFold(mt, p) {
			return true
		}
	}
	for _, s := range t.suffixes {
		if len(sub) > len(s) && strings.EqualFold(sub[len(sub)-len(s):], s) {
			return true
		}
	}
	return false
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// hasToken reports whether the comma-separated field lines contain
// token, ignoring case and any "=value" (as in Cache-Control).
func hasToken(fields []string, token string) bool {
	for _, f := range fields {
		for f != "" {
			var elem string
			elem, f, _ = strings.Cut(f, ",")
			name, _, _ := strings.Cut(elem, "=")
			if strings.EqualFold(strings.TrimSpace(name), token) {
				return true
			}
		}
	}
	return false
}

// addVary adds Accept-Encoding to the Vary of h unless it is there
// already, or Vary is "*" (which already varies on everything).
func addVary(h http.Header) {
	v := h["Vary"]
	if hasToken(v, "Accept-Encoding") || hasToken(v, "*") {
		return
	}
	h["Vary"] = append(v, "Accept-Encoding")
}

// weakenETag turns a strong ETag of h into a weak one (RFC 9110 §8.8.1):
// a compressed body is not byte for byte the one the tag was made for,
// but means the same.
func weakenETag(h http.Header) {
	if v := h["Etag"]; len(v) == 1 && strings.HasPrefix(v[0], `"`) {
		h["Etag"] = []string{"W/" + v[0]}
	}
}
