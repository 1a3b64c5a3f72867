// Package demo is `torii demo`: the whole system in a box, on loopback, in
// one process. A monolith serves items, users and listings; a users
// service and a listing service have been carved out of it (the listing
// one writes prices as strings and fails 1 % of its requests); an
// Authority issues RS256 JWTs and serves its JWKS; torii runs in front
// with a generated config (teams, SLOs, JWT, a finished users rollout and
// a listings rollout in progress with shadow diffing) on a SQLite store in
// a temporary directory; and a traffic generator keeps it all busy. It
// prints the URLs, then a progress report, until its context ends.
//
// See docs/demo.md for the story and what to look at.
package demo

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"torii/internal/app"
)

// Defaults of Options.
const (
	DefaultListen = "127.0.0.1:8080"
	DefaultAdmin  = "127.0.0.1:9901"
	DefaultRate   = 30
	DefaultUsers  = 40
)

// Options configure Run.
type Options struct {
	// Listen is the gateway's address; a loopback address (the demo is
	// not for a network), port 0 for any free one. Default:
	// 127.0.0.1:8080.
	Listen string
	// Admin is the admin listener's address (API and dashboard); loopback
	// too. Default: 127.0.0.1:9901.
	Admin string
	// Rate is the synthetic traffic, in requests per second. Zero: no
	// synthetic traffic (the CLI's default is DefaultRate).
	Rate float64
	// Users is the number of synthetic users, each with a token. Default
	// (and zero): 40.
	Users int
	// Out receives the banner, the progress reports and the teams'
	// alerts. Default: os.Stdout.
	Out io.Writer
	// Logger receives torii's and the demo servers' logs. Default:
	// warnings and errors as text on stderr.
	Logger *slog.Logger
	// Fast shortens every clock (rollout steps of 10 s, a 1 s store
	// flush, a report every 2 s) so a test sees the whole story in
	// seconds.
	Fast bool
	// Ready, when set, is called once everything serves, with the bound
	// addresses, before the banner is printed.
	Ready func(Addrs)
}

// Addrs are where the demo's parts listen, and its files.
type Addrs struct {
	// Gateway, Admin and Authority are base URLs, e.g.
	// "http://127.0.0.1:8080".
	Gateway, Admin, Authority string
	// Monolith, Users and Listing are the upstreams' host:port.
	Monolith, Users, Listing string
	// Dir is the temporary directory (config and SQLite store), removed
	// when Run returns; Config is the config file in it.
	Dir, Config string
}

func (o Options) withDefaults() Options {
	if o.Listen == "" {
		o.Listen = DefaultListen
	}
	if o.Admin == "" {
		o.Admin = DefaultAdmin
	}
	if o.Users <= 0 {
		o.Users = DefaultUsers
	}
	if o.Out == nil {
		o.Out = os.Stdout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return o
}

// Run runs the demo until ctx ends, then stops it all (traffic, torii
// with a graceful shutdown, the services), removes its temporary
// directory and returns nil. It returns an error if the demo cannot
// start, e.g. when an address is taken, after undoing what it started.
func Run(ctx context.Context, o Options) (err error) {
	o = o.withDefaults()
	for _, a := range []struct{ name, addr string }{{"listen", o.Listen}, {"admin", o.Admin}} {
		if err := checkLoopback(a.addr); err != nil {
			return fmt.Errorf("demo: %s: %w", a.name, err)
		}
	}
	if o.Rate < 0 {
		return fmt.Errorf("demo: rate: want requests per second, 0 or more, got %v", o.Rate)
	}
	tm := normalTimings
	if o.Fast {
		tm = fastTimings
	}
	out := &console{w: o.Out, start: time.Now()}

	// Teardown runs in reverse: traffic, torii, the servers, the files.
	dir, err := os.MkdirTemp("", "torii-demo-")
	if err != nil {
		return fmt.Errorf("demo: create temp dir: %w", err)
	}
	defer func() {
		if rerr := os.RemoveAll(dir); rerr != nil && err == nil {
			err = fmt.Errorf("demo: remove temp dir: %w", rerr)
		}
	}()
	srv := &servers{logger: o.Logger}
	defer func() {
		srv.close()
		o.Logger.Debug("demo: servers stopped")
	}()

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return fmt.Errorf("demo: generate the authority's key: %w", err)
	}
	authLn, err := loopback()
	if err != nil {
		return err
	}
	authority, err := NewAuthority("http://"+authLn.Addr().String(), key, "demo-1")
	if err != nil {
		authLn.Close()
		return fmt.Errorf("demo: %w", err)
	}
	srv.serve(authLn, authority)

	monolith := &service{name: "monolith", slowPercent: 0.3}
	users := &service{name: "users"}
	listing := &service{name: "listing", stringPrice: true, failing: true}
	addrs := Addrs{Authority: authority.Issuer(), Dir: dir, Config: filepath.Join(dir, "torii.yaml")}
	var alertsURL string
	for _, s := range []struct {
		h    http.Handler
		addr *string
	}{
		{monolith.handler("home", "items", "users", "listings"), &addrs.Monolith},
		{users.handler("users"), &addrs.Users},
		{listing.handler("listings"), &addrs.Listing},
		{alertSink{out}, &alertsURL},
	} {
		ln, err := loopback()
		if err != nil {
			return err
		}
		srv.serve(ln, s.h)
		*s.addr = ln.Addr().String()
	}

	cfg, err := renderConfig(configData{
		timings: tm, Listen: o.Listen, Admin: o.Admin, DB: filepath.Join(dir, "torii.db"),
		Monolith: addrs.Monolith, Users: addrs.Users, Listing: addrs.Listing, Alerts: "http://" + alertsURL,
		Issuer: authority.Issuer(), JWKS: authority.JWKSURL(), Audience: Audience,
	})
	if err != nil {
		return fmt.Errorf("demo: render config: %w", err)
	}
	if err := os.WriteFile(addrs.Config, cfg, 0o600); err != nil {
		return fmt.Errorf("demo: write config: %w", err)
	}
	torii, err := app.New(app.Options{ConfigPath: addrs.Config, Logger: o.Logger})
	if err != nil {
		return fmt.Errorf("demo: the generated config: %w", err)
	}
	if err := torii.Start(ctx); err != nil {
		// Start binds nothing when it fails; Shutdown closes the store.
		torii.Shutdown()
		return fmt.Errorf("demo: %w", err)
	}
	defer torii.Shutdown()
	addrs.Gateway = "http://" + torii.Addrs()[0].String()
	addrs.Admin = "http://" + torii.AdminAddr().String()

	tok, _, err := authority.Token("alice")
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if o.Ready != nil {
		o.Ready(addrs)
	}
	out.print(banner(addrs, tok))

	gen := newTraffic(addrs.Gateway, addrs.Authority, o.Rate, o.Users)
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		stop()
		wg.Wait()
		o.Logger.Debug("demo: traffic stopped")
		st := gen.Stats()
		out.print(fmt.Sprintf("[%s] stopping: %d requests sent; shutting down torii and the services\n", elapsed(time.Since(out.start)), st.Sent))
	}()
	wg.Add(2)
	go func() { defer wg.Done(); gen.Run(runCtx) }()
	go func() { defer wg.Done(); progress(runCtx, out, gen, torii, tm.Progress) }()
	<-ctx.Done()
	return nil
}

// progress prints a report every interval until ctx ends.
func progress(ctx context.Context, out *console, gen *traffic, torii *app.App, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var prev stats
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st := gen.Stats()
		out.print(report(time.Since(out.start), st, prev, interval, torii.Migrations(), torii.SLOStatus(), time.Now()))
		prev = st
	}
}

// servers are the demo's own HTTP servers: the Authority, the upstreams
// and the alert sink.
type servers struct {
	logger *slog.Logger
	// mu guards all.
	mu  sync.Mutex
	all []*http.Server
	wg  sync.WaitGroup
}

// serve serves h on ln until close.
func (s *servers) serve(ln net.Listener, h http.Handler) {
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       time.Minute,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
	}
	s.mu.Lock()
	s.all = append(s.all, hs)
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.logger.Error("demo server", "addr", ln.Addr().String(), "err", err)
		}
	}()
}

// close shuts every server down, letting requests in flight finish for a
// few seconds.
func (s *servers) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.mu.Lock()
	all := slices.Clone(s.all)
	s.mu.Unlock()
	for _, hs := range all {
		if err := hs.Shutdown(ctx); err != nil {
			hs.Close()
		}
	}
	s.wg.Wait()
}

// loopback listens on a free loopback port.
func loopback() (net.Listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("demo: listen: %w", err)
	}
	return ln, nil
}

// checkLoopback reports an error unless addr is a loopback host:port.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("want host:port, got %q", addr)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("the demo serves on loopback only; want e.g. 127.0.0.1:8080, got %q", addr)
	}
	return nil
}
