// Package admin serves the admin listener: /healthz, /readyz, /metrics,
// the JSON API under /api/v1/ and the dashboard (internal/dashboard) at /.
// It reads the running state through the Backend interface and never
// touches the data plane directly.
//
// Safety: the admin listener is loopback by default, yet a web page in an
// operator's browser can still send requests to it. So every API request
// must carry a Host that names the admin listener itself (IP literal,
// "localhost", or the configured admin host), which defeats DNS rebinding;
// state-changing requests are refused when cross-site (Sec-Fetch-Site and
// Origin checks of net/http.CrossOriginProtection) and, when admin.token is
// set, must carry it as a bearer token.
package admin

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"torii/internal/config"
	"torii/internal/dashboard"
	"torii/internal/migrate"
	"torii/internal/runtime"
	"torii/internal/slo"
	"torii/internal/upstream"
	"torii/internal/version"
)

// Backend is the running gateway as the admin API sees it.
type Backend interface {
	// Snapshot returns the snapshot serving traffic now.
	Snapshot() *runtime.Snapshot
	// Reload reloads the config file; an error leaves the old config serving.
	Reload(ctx context.Context) error
	// Ready reports whether the gateway should receive traffic (false
	// while starting and while draining for shutdown).
	Ready() bool
	// Endpoints returns every endpoint's live state.
	Endpoints() []upstream.EndpointStatus
	// LastReload returns the outcome of the latest reload attempt.
	LastReload() ReloadStatus
	// PurgeCache removes cached responses by exact key or by key prefix
	// and returns how many it removed.
	PurgeCache(key, prefix string) int
	// SLOStatus returns every route's SLO state.
	SLOStatus() []slo.RouteStatus
	// TeamStatus returns a team's routes and their budgets.
	TeamStatus(name string) slo.TeamStatus
	// Migrations returns every migrating route: split, shadow, rollout
	// and diff report.
	Migrations() []migrate.Migration
	// Migration returns one migrating route with its audit trail; an
	// error wrapping migrate.ErrNotMigrating when it does not migrate.
	Migration(ctx context.Context, route string) (migrate.Migration, error)
	// MigrationAction applies an operator's pause, resume, promote or
	// abort to a route's rollout.
	MigrationAction(ctx context.Context, route, action, actor, reason string) (migrate.Status, error)
	// DiffSamples returns a route's stored diff samples at field (""
	// for every field), newest first.
	DiffSamples(ctx context.Context, route, field string, limit int) ([]migrate.SampleRecord, error)
}

// ReloadStatus is the outcome of the latest reload attempt.
type ReloadStatus struct {
	// OK reports whether the latest attempt succeeded (true before any).
	OK bool `json:"ok"`
	// At is when the latest attempt ended.
	At time.Time `json:"at,omitzero"`
	// LastSuccess is when the serving config was loaded.
	LastSuccess time.Time `json:"last_success"`
	// Error is why the latest attempt failed, if it did.
	Error string `json:"error,omitempty"`
}

// Options configure the admin handler.
type Options struct {
	// Backend is the running gateway. Required.
	Backend Backend
	// Gatherer is the metrics registry served at /metrics. Required.
	Gatherer prometheus.Gatherer
	// Logger receives the admin API's logs. Default: slog.Default().
	Logger *slog.Logger
}

// New returns the admin handler.
func New(o Options) http.Handler {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	s := &server{Options: o, csrf: http.NewCrossOriginProtection()}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{ErrorLog: slogAdapter{o.Logger}}))
	mux.HandleFunc("GET /api/v1/config", s.config)
	mux.HandleFunc("GET /api/v1/routes", s.routes)
	mux.HandleFunc("GET /api/v1/upstreams", s.upstreams)
	mux.HandleFunc("GET /api/v1/reload", s.reloadStatus)
	mux.HandleFunc("POST /api/v1/reload", s.reload)
	mux.HandleFunc("GET /api/v1/version", s.version)
	mux.HandleFunc("POST /api/v1/cache/purge", s.purge)
	mux.HandleFunc("GET /api/v1/slos", s.slos)
	mux.HandleFunc("GET /api/v1/stats", s.stats)
	mux.HandleFunc("GET /api/v1/teams/{team}", s.team)
	mux.HandleFunc("GET /api/v1/migrations", s.migrations)
	mux.HandleFunc("GET /api/v1/migrations/{route}", s.migration)
	mux.HandleFunc("GET /api/v1/migrations/{route}/samples", s.samples)
	mux.HandleFunc("POST /api/v1/migrations/{route}/{action}", s.migrationAction)
	// Go's profiler, as Caddy and Envoy expose theirs on the admin port:
	// loopback by default and behind the same Host check as the API.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	// The dashboard: its page at / and its files under /ui/; any other
	// unknown path keeps the JSON 404 below.
	dash := dashboard.Handler()
	mux.Handle("GET /{$}", dash)
	mux.Handle("GET "+dashboard.Prefix, dash)
	mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not found")
	})
	s.mux = mux
	return s
}

type server struct {
	Options
	csrf *http.CrossOriginProtection
	mux  *http.ServeMux
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.hostAllowed(r.Host) {
		writeError(w, http.StatusMisdirectedRequest, "host "+quote(r.Host)+" is not this admin listener; use its address or localhost")
		return
	}
	if unsafeMethod(r.Method) {
		if err := s.csrf.Check(r); err != nil {
			writeError(w, http.StatusForbidden, "cross-site request refused")
			return
		}
		if tok := s.Backend.Snapshot().Config().Admin.Token; tok != "" && !bearerMatches(r, tok) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="torii-admin"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong admin token (admin.token)")
			return
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	s.mux.ServeHTTP(w, r)
}

// hostAllowed reports whether host names this admin listener: an IP
// literal, "localhost", or the configured admin address's host. Anything
// else is a DNS-rebinding attempt or a misrouted request.
func (s *server) hostAllowed(host string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	h = strings.TrimSuffix(strings.ToLower(strings.Trim(h, "[]")), ".")
	if h == "" || h == "localhost" || net.ParseIP(h) != nil {
		return true
	}
	ah, _, err := net.SplitHostPort(s.Backend.Snapshot().Config().Admin.Addr)
	return err == nil && ah != "" && strings.EqualFold(ah, h)
}

func unsafeMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

func bearerMatches(r *http.Request, token string) bool {
	auth := r.Header.Get("Authorization")
	const prefix = "bearer "
	if len(auth) <= len(prefix) || !strings.EqualFold(auth[:len(prefix)], prefix) {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(auth[len(prefix):])), []byte(token)) == 1
}

func (s *server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *server) readyz(w http.ResponseWriter, r *http.Request) {
	if !s.Backend.Ready() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (s *server) config(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.Backend.Snapshot().Config().Redacted())
}

func (s *server) routes(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"routes": s.Backend.Snapshot().Routes()})
}

func (s *server) upstreams(w http.ResponseWriter, r *http.Request) {
	type upstreamView struct {
		Name      string                    `json:"name"`
		Balance   string                    `json:"balance"`
		Endpoints []upstream.EndpointStatus `json:"endpoints"`
	}
	cfg := s.Backend.Snapshot().Config()
	byName := map[string]*upstreamView{}
	var out []*upstreamView
	for _, st := range s.Backend.Endpoints() {
		v := byName[st.Upstream]
		if v == nil {
			v = &upstreamView{Name: st.Upstream, Endpoints: []upstream.EndpointStatus{}}
			if u := cfg.Upstreams[st.Upstream]; u != nil {
				v.Balance = u.Balance
			}
			byName[st.Upstream] = v
			out = append(out, v)
		}
		v.Endpoints = append(v.Endpoints, st)
	}
	if out == nil {
		out = []*upstreamView{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"upstreams": out})
}

func (s *server) reloadStatus(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.Backend.LastReload())
}

func (s *server) reload(w http.ResponseWriter, r *http.Request) {
	err := s.Backend.Reload(r.Context())
	if err != nil {
		var probs config.Problems
		body := map[string]any{"ok": false, "error": err.Error()}
		if errors.As(err, &probs) {
			body["problems"] = probs
		}
		writeJSON(w, http.StatusUnprocessableEntity, body)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": true})
}

// purge answers POST /api/v1/cache/purge with a JSON body naming either
// an exact key or a prefix: {"key": "GET api.example.com/v1/items"} or
// {"prefix": "api.example.com/v1/"}.
func (s *server) purge(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Key    string `json:"key"`
		Prefix string `json:"prefix"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "body: want {\"key\": \"...\"} or {\"prefix\": \"...\"}: "+err.Error())
		return
	}
	if (req.Key == "") == (req.Prefix == "") {
		writeError(w, http.StatusBadRequest, "give exactly one of key and prefix")
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"purged": s.Backend.PurgeCache(req.Key, req.Prefix)})
}

func (s *server) slos(w http.ResponseWriter, r *http.Request) {
	st := s.Backend.SLOStatus()
	if st == nil {
		st = []slo.RouteStatus{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"slos": st})
}

// team answers the coverage map of one team: the routes it owns and their
// budgets.
func (s *server) team(w http.ResponseWriter, r *http.Request) {
	t := s.Backend.TeamStatus(r.PathValue("team"))
	if !t.Known && len(t.Routes) == 0 {
		writeError(w, http.StatusNotFound, "no team "+quote(r.PathValue("team"))+" in the config")
		return
	}
	writeJSON(w, http.StatusOK, t)
}

func (s *server) version(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, version.Get())
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"error": msg, "status": status})
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// slogAdapter lets promhttp log through slog.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Println(v ...any) {
	a.l.Error("serve metrics", "err", fmt.Sprint(v...))
}
