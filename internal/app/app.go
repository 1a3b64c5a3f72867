// Package app runs torii: it loads the config, builds the runtime snapshot,
// serves the data-plane listeners and the admin listener, reloads
// (all-or-nothing: a broken config leaves the old one serving) and shuts
// down gracefully (readyz fails first, then listeners close, then in-flight
// requests drain within a grace period).
package app

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"torii/internal/accesslog"
	"torii/internal/admin"
	"torii/internal/alert"
	"torii/internal/config"
	"torii/internal/listener"
	"torii/internal/middleware/cache"
	"torii/internal/middleware/compress"
	"torii/internal/middleware/forwardauth"
	"torii/internal/middleware/jwt"
	"torii/internal/middleware/ratelimit"
	"torii/internal/migrate"
	"torii/internal/proxy"
	"torii/internal/proxyproto"
	"torii/internal/runtime"
	"torii/internal/slo"
	"torii/internal/store"
	"torii/internal/telemetry"
	"torii/internal/upstream"
)

// Options configure an App.
type Options struct {
	// ConfigPath is the torii.yaml to load and reload. Required.
	ConfigPath string
	// Logger receives torii's own logs. Default: JSON on stderr.
	Logger *slog.Logger
	// AccessLog, when set, receives the access log instead of
	// access_log.path (tests use it).
	AccessLog io.Writer
	// Resolver resolves upstream host names. Default: net.DefaultResolver.
	Resolver upstream.Resolver
	// JWKSClient fetches JWT key sets. Default: a client with a 10s
	// timeout.
	JWKSClient *http.Client
}

// App is one running torii.
type App struct {
	opts     Options
	logger   *slog.Logger
	registry *upstream.Registry
	tunnels  *proxy.Tunnels
	jwtKeys  *jwt.Keys
	fwdAuth  *http.Client
	fwdStats *forwardauth.Metrics
	limits   *ratelimit.Shared
	cache    *cache.Store
	compress *compress.Metrics
	shadow   *migrate.Metrics

	listenerMetrics *listener.Metrics

	store    store.Store
	slo      *slo.Engine
	diffs    *migrate.Diffs
	rollouts *migrate.Controller
	alerts   *alert.Dispatcher
	bgWG     sync.WaitGroup // the SLO engine and alert dispatcher loops
	prom     *prometheus.Registry
	metrics  *telemetry.Metrics

	snap   atomic.Pointer[runtime.Snapshot]
	access atomic.Pointer[accesslog.Logger]
	trace  atomic.Pointer[telemetry.Tracing]
	// routed is the tracing middleware around dispatch, rebuilt when the
	// tracer changes so no request pays for building it.
	routed atomic.Pointer[routedHandler]

	ready    atomic.Bool
	draining atomic.Bool

	// mu serializes reloads and shutdown; it guards the fields below.
	mu          sync.Mutex
	runCtx      context.Context
	cancelRun   context.CancelFunc
	lastReload  admin.ReloadStatus
	accessFile  io.Closer
	fileStamp   fileStamp
	certs       []*atomic.Pointer[listener.Certs] // by listener index; nil for plain ones
	servers     []*listener.Server
	listeners   []net.Listener
	adminServer *http.Server
	adminLn     net.Listener
	serveWG     sync.WaitGroup
}

// New loads the config, opens the store (the SQLite file, or a connection
// to PostgreSQL: the SLO engine needs it before the first snapshot is
// built) and builds the first snapshot. It binds no listener and starts no
// goroutine; Start does. An invalid config returns config.Problems.
func New(opts Options) (*App, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	cfg, err := config.Load(opts.ConfigPath)
	if err != nil {
		return nil, err
	}
	a := &App{opts: opts, logger: opts.Logger, tunnels: &proxy.Tunnels{}}
	a.registry = upstream.NewRegistry(upstream.Options{Resolver: opts.Resolver, Logger: opts.Logger})
	a.prom = prometheus.NewRegistry()
	a.prom.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a.metrics, err = telemetry.NewMetrics(a.prom, a.registry.Status)
	if err != nil {
		return nil, fmt.Errorf("create metrics: %w", err)
	}
	a.jwtKeys = jwt.NewKeys(jwt.KeysOptions{Logger: opts.Logger, Registerer: a.prom, Client: opts.JWKSClient})
	a.fwdAuth = &http.Client{Transport: &http.Transport{
		Proxy:               nil,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 5 * time.Second,
	}}
	a.fwdStats = forwardauth.NewMetrics(a.prom)
	a.cache, err = cache.NewStore(cache.StoreOptions{
		MaxBytes:       int64(cfg.Cache.MaxBytes),
		MaxObjectBytes: int64(cfg.Cache.MaxObjectBytes),
		Registerer:     a.prom,
		Logger:         opts.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("create cache: %w", err)
	}
	a.compress = compress.NewMetrics(a.prom)
	a.shadow = migrate.NewMetrics(a.prom)
	a.listenerMetrics, err = listener.NewMetrics(a.prom)
	if err != nil {
		return nil, fmt.Errorf("create listener metrics: %w", err)
	}
	a.limits, err = ratelimit.NewShared(ratelimit.SharedOptions{Registerer: a.prom, Logger: opts.Logger})
	if err != nil {
		return nil, fmt.Errorf("create rate limits: %w", err)
	}
	if err := a.limits.SetRedis(cfg.Redis); err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	if err := a.openSLO(cfg); err != nil {
		return nil, err
	}
	snap, err := runtime.Build(cfg, a.deps(cfg))
	if err != nil {
		a.store.Close()
		return nil, err
	}
	a.snap.Store(snap)
	a.slo.Apply(cfg)
	a.applyMigrations(cfg)
	a.warn(cfg)
	a.fileStamp, _ = stampOf(opts.ConfigPath)
	now := time.Now()
	a.lastReload = admin.ReloadStatus{OK: true, At: now, LastSuccess: now}
	a.metrics.ReloadResult(true, now)
	return a, nil
}

// Start binds every listener (all or none), then serves. It returns once
// serving; Shutdown stops it.
func (a *App) Start(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.runCtx != nil {
		return errors.New("start: already started")
	}
	snap := a.snap.Load()
	cfg := snap.Config()

	certs, err := loadCerts(cfg)
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	var lns []net.Listener
	closeAll := func() {
		for _, ln := range lns {
			ln.Close()
		}
	}
	for i, l := range cfg.Listen {
		ln, err := listen(l)
		if err != nil {
			closeAll()
			return fmt.Errorf("start: listen[%d] %s: %w", i, l.Addr, err)
		}
		lns = append(lns, ln)
	}
	var adminLn net.Listener
	if !cfg.Admin.Disabled {
		ln, err := net.Listen("tcp", cfg.Admin.Addr)
		if err != nil {
			closeAll()
			return fmt.Errorf("start: admin %s: %w", cfg.Admin.Addr, err)
		}
		adminLn = ln
	}

	a.runCtx, a.cancelRun = context.WithCancel(context.WithoutCancel(ctx))
	if err := a.applyObservability(cfg); err != nil {
		a.logger.Error("start observability", "err", err)
	}
	if a.trace.Load() == nil {
		t, _ := telemetry.NewTracing(a.runCtx, config.Tracing{})
		a.trace.Store(t)
		a.routed.Store(&routedHandler{t.Middleware(http.HandlerFunc(a.dispatch))})
	}
	snap.Start(a.runCtx)

	http1Name, ok := http1ServerName()
	if !ok {
		a.logger.Warn("TORII_HTTP1_SERVER is neither torii nor stdlib; using torii's", "value", http1Server)
	}
	f := &front{app: a, ids: newIDSource()}
	errLog := slog.NewLogLogger(a.logger.Handler(), slog.LevelWarn)
	a.certs = make([]*atomic.Pointer[listener.Certs], len(cfg.Listen))
	for i, l := range cfg.Listen {
		rec := a.listenerMetrics.Listener(l.Name)
		opts := listener.Options{
			H2C:            l.HTTP2.H2C,
			MaxConnections: l.MaxConnections,
			Metrics:        rec,
			Logger:         a.logger,
		}
		if l.TLS != nil {
			a.certs[i] = new(atomic.Pointer[listener.Certs])
			a.certs[i].Store(certs[i])
			opts.TLS = listener.ServerTLS(l.TLS, a.certs[i])
		}
		if !l.HTTP2.Disabled {
			opts.HTTP2 = listener.NewHTTP2(l.HTTP2.MaxConcurrentStreams, rec)
		}
		srv := &http.Server{
			Handler:           listener.MaxRequests(l.MaxRequests, rec, f),
			ReadHeaderTimeout: l.Timeouts.ReadHeader.D(),
			ReadTimeout:       l.Timeouts.Read.D(),
			WriteTimeout:      l.Timeouts.Write.D(),
			IdleTimeout:       l.Timeouts.Idle.D(),
			MaxHeaderBytes:    l.MaxHeaderBytes,
			ErrorLog:          errLog,
		}
		opts.StdlibHTTP1 = http1Name == "stdlib"
		server := listener.NewServer(srv, lns[i], opts)
		a.servers = append(a.servers, server)
		a.listeners = append(a.listeners, lns[i])
		a.serveData(server, l.Name)
	}
	if adminLn != nil {
		a.adminServer = &http.Server{
			Handler:           admin.New(admin.Options{Backend: a, Gatherer: a.prom, Logger: a.logger}),
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			IdleTimeout:       120 * time.Second,
			ErrorLog:          errLog,
		}
		a.adminLn = adminLn
		a.serve(a.adminServer, adminLn, "admin")
	}
	go a.watch(a.runCtx)
	a.bgWG.Add(4)
	go func() { defer a.bgWG.Done(); a.slo.Run(a.runCtx) }()
	go func() { defer a.bgWG.Done(); a.alerts.Run(a.runCtx) }()
	flushEvery := a.snap.Load().Config().Store.FlushInterval.D()
	go func() { defer a.bgWG.Done(); a.diffs.Run(a.runCtx, flushEvery) }()
	go func() { defer a.bgWG.Done(); a.rollouts.Run(a.runCtx) }()
	a.ready.Store(true)
	a.logger.Info("torii started", "listeners", addrStrings(a.listeners), "admin", addrString(adminLn), "http1_server", http1Name)
	return nil
}

func listen(l config.Listener) (net.Listener, error) {
	ln, err := net.Listen("tcp", l.Addr)
	if err != nil {
		return nil, err
	}
	if l.ProxyProtocol != nil {
		trusted, err := runtime.ParsePrefixes(l.ProxyProtocol.Trusted)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("proxy_protocol.trusted: %w", err)
		}
		ln = proxyproto.NewListener(ln, trusted, l.ProxyProtocol.Timeout.D())
	}
	return ln, nil
}

// http1Server is TORII_HTTP1_SERVER: "stdlib" puts plaintext HTTP/1.x
// listeners on net/http's server rather than torii's own ("torii", the
// default), a way back should the lean server misbehave with some client.
var http1Server = os.Getenv("TORII_HTTP1_SERVER")

// http1ServerName is the HTTP/1.1 server plaintext listeners use, and
// whether the environment asked for it in a way torii understands.
func http1ServerName() (name string, ok bool) {
	switch http1Server {
	case "", "torii":
		return "torii", true
	case "stdlib":
		return "stdlib", true
	}
	return "torii", false
}

// serveData serves a data-plane listener through internal/listener: the
// connection limit, TLS, HTTP/2 and the strict HTTP/1.1 framing check.
func (a *App) serveData(server *listener.Server, name string) {
	a.serveWG.Add(1)
	go func() {
		defer a.serveWG.Done()
		if err := server.Serve(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.logger.Error("serve", "listener", name, "err", err)
		}
	}()
}

// loadCerts reads every TLS listener's certificates; the slice is indexed
// like cfg.Listen, nil for plain listeners.
func loadCerts(cfg *config.Config) ([]*listener.Certs, error) {
	out := make([]*listener.Certs, len(cfg.Listen))
	for i, l := range cfg.Listen {
		if l.TLS == nil {
			continue
		}
		cs, err := listener.LoadCerts(l.TLS.Certificates)
		if err != nil {
			return nil, fmt.Errorf("listen[%d].tls.certificates: %w", i, err)
		}
		out[i] = cs
	}
	return out, nil
}

func (a *App) serve(srv *http.Server, ln net.Listener, name string) {
	a.serveWG.Add(1)
	go func() {
		defer a.serveWG.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.logger.Error("serve", "listener", name, "err", err)
		}
	}()
}

// openSLO opens the store and builds the SLO engine and the alert
// dispatcher. A relative SQLite path is taken from the config file's
// directory, so a config and its database travel together.
func (a *App) openSLO(cfg *config.Config) error {
	sc := cfg.Store
	if sc.Postgres == "" && sc.SQLite != "" && !filepath.IsAbs(sc.SQLite) {
		sc.SQLite = filepath.Join(filepath.Dir(a.opts.ConfigPath), sc.SQLite)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := store.Open(ctx, sc, store.Options{Logger: a.logger})
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	a.store = st
	a.alerts, err = alert.New(alert.Options{Registerer: a.prom, Logger: a.logger})
	if err != nil {
		st.Close()
		return fmt.Errorf("alerts: %w", err)
	}
	a.alerts.SetTeams(cfg.Teams)
	host, _ := os.Hostname()
	// Unique per App: hosts and PIDs repeat (containers sharing a
	// hostname, two Apps in one test), and leases key on it.
	replica := fmt.Sprintf("%s/%d/%s", host, os.Getpid(), rand.Text()[:8])
	a.slo, err = slo.New(slo.Options{
		Store:      st,
		Notifier:   alertNotifier{a.alerts},
		Logger:     a.logger,
		Registerer: a.prom,
		ReplicaID:  replica,
	})
	if err != nil {
		st.Close()
		return fmt.Errorf("slo: %w", err)
	}
	if err := a.openMigrations(replica); err != nil {
		st.Close()
		return err
	}
	return nil
}

// alertNotifier hands the SLO engine's notifications to the dispatcher.
type alertNotifier struct{ d *alert.Dispatcher }

func (n alertNotifier) Notify(ctx context.Context, s slo.Notification) {
	n.d.Notify(ctx, alert.Notification{
		Key:         s.Key,
		Team:        s.Team,
		Firing:      s.Firing,
		StartsAt:    s.StartsAt,
		EndsAt:      s.EndsAt,
		Labels:      s.Labels,
		Annotations: s.Annotations,
	})
}

// SLOStatus returns every route's SLO state, for GET /api/v1/slos.
func (a *App) SLOStatus() []slo.RouteStatus { return a.slo.Status() }

// TeamStatus returns a team's routes and budgets, for GET
// /api/v1/teams/{team}.
func (a *App) TeamStatus(name string) slo.TeamStatus { return a.slo.Team(name) }

// warn logs what a valid config still should not do in production.
func (a *App) warn(cfg *config.Config) {
	for _, name := range slices.Sorted(maps.Keys(cfg.Upstreams)) {
		if t := cfg.Upstreams[name].TLS; t != nil && t.InsecureSkipVerify {
			a.logger.Warn("upstream TLS certificates are not verified; use tls.ca instead of insecure_skip_verify outside tests",
				"path", "upstreams."+name+".tls.insecure_skip_verify")
		}
	}
}

// forgetRoute drops the per-route series of a route a reload removed, so
// a fleet of short-lived routes cannot grow /metrics without bound. The
// SLO engine does the same for its own series when it applies a config.
func (a *App) forgetRoute(name string) {
	a.jwtKeys.ForgetRoute(name)
	a.fwdStats.ForgetRoute(name)
	a.limits.ForgetRoute(name)
	a.cache.ForgetRoute(name)
	a.shadow.ForgetRoute(name)
	a.rollouts.ForgetRoute(name)
}

// deps are what every snapshot is built with.
func (a *App) deps(cfg *config.Config) runtime.Deps {
	return runtime.Deps{
		SLO:                a.slo.Accountant(cfg),
		Registry:           a.registry,
		Logger:             a.logger,
		Tunnels:            a.tunnels,
		JWTKeys:            a.jwtKeys,
		ForwardAuth:        a.fwdAuth,
		ForwardAuthMetrics: a.fwdStats,
		RateLimits:         a.limits,
		Cache:              a.cache,
		Compress:           a.compress,
		Shadow:             a.shadow,
		Diffs:              a.diffs,
		Rollouts:           a.rollouts,
	}
}

// Run starts the app and serves until ctx ends, then shuts down
// gracefully.
func (a *App) Run(ctx context.Context) error {
	if err := a.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	return a.Shutdown()
}

// Shutdown stops torii gracefully: /readyz fails for shutdown.drain_delay
// so load balancers stop sending; then listeners close (new connections
// are refused) and in-flight requests, streams included, get
// shutdown.grace to finish before their connections are cut.
func (a *App) Shutdown() error {
	cfg := a.snap.Load().Config()
	a.draining.Store(true)
	a.logger.Info("shutdown: draining", "drain_delay", cfg.Shutdown.DrainDelay.D().String(), "grace", cfg.Shutdown.Grace.D().String())
	time.Sleep(cfg.Shutdown.DrainDelay.D())

	a.mu.Lock()
	defer a.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Shutdown.Grace.D())
	defer cancel()
	var wg sync.WaitGroup
	var cut atomic.Int32
	for _, srv := range a.servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Shutdown(ctx); err != nil {
				cut.Add(1)
				srv.Close()
			}
		}()
	}
	wg.Wait()
	// Upgraded connections (WebSocket) left net/http's tracking when they
	// were hijacked: wait for them within the same grace, then close them.
	if err := a.tunnels.Shutdown(ctx); err != nil {
		a.logger.Warn("shutdown: grace period over, tunnels closed", "err", err)
	}
	if n := cut.Load(); n > 0 {
		a.logger.Warn("shutdown: grace period over, connections cut", "servers", n)
	}
	if a.adminServer != nil {
		a.adminServer.Close()
	}
	if a.cancelRun != nil {
		a.cancelRun()
	}
	a.serveWG.Wait()
	// The SLO engine flushes its last counts when its context ends; the
	// store closes after it.
	a.bgWG.Wait()
	a.store.Close()
	a.snap.Load().Close()
	if t := a.trace.Load(); t != nil {
		tctx, tcancel := context.WithTimeout(context.Background(), 5*time.Second)
		t.Shutdown(tctx)
		tcancel()
	}
	if a.accessFile != nil {
		a.accessFile.Close()
	}
	a.limits.Close()
	a.logger.Info("shutdown: done")
	return nil
}

// Reload loads the config file again and, if it is valid and builds,
// swaps it in. On any error the old config keeps serving, and the error
// is logged, counted (torii_config_last_reload_successful 0) and returned.
func (a *App) Reload(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	err := a.reloadLocked()
	now := time.Now()
	a.lastReload.At = now
	if err != nil {
		a.lastReload.OK, a.lastReload.Error = false, err.Error()
		a.metrics.ReloadResult(false, now)
		a.logger.Error("reload failed; the old config keeps serving", "err", err)
		return err
	}
	a.lastReload.OK, a.lastReload.Error, a.lastReload.LastSuccess = true, "", now
	a.metrics.ReloadResult(true, now)
	a.logger.Info("reloaded", "config", a.opts.ConfigPath)
	return nil
}

func (a *App) reloadLocked() error {
	stamp, _ := stampOf(a.opts.ConfigPath)
	cfg, err := config.Load(a.opts.ConfigPath)
	if err != nil {
		return err
	}
	old := a.snap.Load()
	if err := listenersChanged(old.Config(), cfg); err != nil {
		return err
	}
	// Certificates are reread on every reload, so replacing the files and
	// reloading rotates them without dropping a connection.
	certs, err := loadCerts(cfg)
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	snap, err := runtime.Build(cfg, a.deps(cfg))
	if err != nil {
		return err
	}
	if a.runCtx != nil {
		if err := a.applyObservability(cfg); err != nil {
			snap.Close()
			return err
		}
	}
	// Switch Redis only once the new snapshot built, so a failed reload
	// leaves the old config's Redis in place.
	if err := a.limits.SetRedis(cfg.Redis); err != nil {
		snap.Close()
		return fmt.Errorf("reload: redis: %w", err)
	}
	if a.runCtx != nil {
		snap.Start(a.runCtx)
	}
	a.snap.Store(snap)
	a.slo.Apply(cfg)
	a.applyMigrations(cfg)
	a.alerts.SetTeams(cfg.Teams)
	a.cache.SetLimits(int64(cfg.Cache.MaxBytes), int64(cfg.Cache.MaxObjectBytes))
	for i, p := range a.certs {
		if p != nil && certs[i] != nil {
			p.Store(certs[i])
		}
	}
	a.warn(cfg)
	// The old snapshot's requests keep running: closing it stops only its
	// health checks and DNS refreshes; connections live in the registry.
	old.Close()
	a.fileStamp = stamp
	keep := make(map[string]bool, len(cfg.Routes))
	for _, r := range cfg.Routes {
		keep[r.Name] = true
	}
	a.metrics.ForgetRoutes(func(route string) bool { return keep[route] })
	for _, r := range old.Config().Routes {
		if !keep[r.Name] {
			a.forgetRoute(r.Name)
		}
	}
	return nil
}

// listenersChanged refuses reloads that change sockets: rebinding ports
// under traffic is a restart's job, and silently ignoring the change would
// be worse.
func listenersChanged(old, cur *config.Config) error {
	if !reflect.DeepEqual(old.Listen, cur.Listen) {
		return errors.New("reload: listen: listeners changed; restart torii to apply listener changes")
	}
	if old.Admin.Addr != cur.Admin.Addr || old.Admin.Disabled != cur.Admin.Disabled {
		return errors.New("reload: admin.addr: the admin listener changed; restart torii to apply it")
	}
	if old.Store.SQLite != cur.Store.SQLite || old.Store.Postgres != cur.Store.Postgres {
		return errors.New("reload: store: the store changed; restart torii to switch stores")
	}
	return nil
}

// applyObservability swaps the access log and the tracer when their
// config changed. Caller holds mu.
func (a *App) applyObservability(cfg *config.Config) error {
	old := a.snap.Load().Config()
	if a.access.Load() == nil || !reflect.DeepEqual(old.AccessLog, cfg.AccessLog) {
		w, closer, err := a.accessWriter(cfg.AccessLog)
		if err != nil {
			return fmt.Errorf("access_log.path: %w", err)
		}
		a.access.Store(accesslog.New(cfg.AccessLog, w))
		if a.accessFile != nil {
			a.accessFile.Close()
		}
		a.accessFile = closer
	}
	if a.trace.Load() == nil || !reflect.DeepEqual(old.Tracing, cfg.Tracing) {
		t, err := telemetry.NewTracing(a.runCtx, cfg.Tracing)
		if err != nil {
			return fmt.Errorf("tracing: %w", err)
		}
		a.routed.Store(&routedHandler{t.Middleware(http.HandlerFunc(a.dispatch))})
		if prev := a.trace.Swap(t); prev != nil {
			go prev.Shutdown(context.Background())
		}
	}
	return nil
}

func (a *App) accessWriter(cfg config.AccessLog) (io.Writer, io.Closer, error) {
	if a.opts.AccessLog != nil {
		return a.opts.AccessLog, nil, nil
	}
	switch cfg.Path {
	case "", "stdout":
		return os.Stdout, nil, nil
	case "stderr":
		return os.Stderr, nil, nil
	}
	f, err := os.OpenFile(cfg.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, nil, err
	}
	return f, f, nil
}

type routedHandler struct{ http.Handler }

// dispatch hands a request to the snapshot serving now.
func (a *App) dispatch(w http.ResponseWriter, r *http.Request) {
	a.snap.Load().ServeHTTP(w, r)
}

// Snapshot returns the snapshot serving traffic now.
func (a *App) Snapshot() *runtime.Snapshot { return a.snap.Load() }

// Ready reports whether torii should receive traffic.
func (a *App) Ready() bool { return a.ready.Load() && !a.draining.Load() }

// Endpoints returns every endpoint's live state.
func (a *App) Endpoints() []upstream.EndpointStatus { return a.registry.Status() }

// LastReload returns the outcome of the latest reload attempt.
func (a *App) LastReload() admin.ReloadStatus {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lastReload
}

// PurgeCache removes cached responses: the one stored under key, or every
// one whose key starts with prefix. It returns how many were removed.
func (a *App) PurgeCache(key, prefix string) int {
	if prefix != "" {
		return a.cache.PurgePrefix(prefix)
	}
	return a.cache.Purge(key)
}

// Addrs returns the bound data-plane listener addresses, in config order.
func (a *App) Addrs() []net.Addr {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]net.Addr, len(a.listeners))
	for i, ln := range a.listeners {
		out[i] = ln.Addr()
	}
	return out
}

// AdminAddr returns the bound admin address, or nil when disabled.
func (a *App) AdminAddr() net.Addr {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.adminLn == nil {
		return nil
	}
	return a.adminLn.Addr()
}

// Gatherer returns the app's metrics registry.
func (a *App) Gatherer() prometheus.Gatherer { return a.prom }

func addrStrings(lns []net.Listener) []string {
	out := make([]string, len(lns))
	for i, ln := range lns {
		out[i] = ln.Addr().String()
	}
	return out
}

func addrString(ln net.Listener) string {
	if ln == nil {
		return ""
	}
	return ln.Addr().String()
}
