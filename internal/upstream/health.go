package upstream

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"torii/internal/config"
)

// Health-check defaults applied to zero config values.
const (
	defaultHealthInterval     = 5 * time.Second
	defaultHealthTimeout      = 2 * time.Second
	defaultHealthyThreshold   = 2
	defaultUnhealthyThreshold = 3
	// maxCheckBody is how much of a check's response body is read, so the
	// connection can be reused; the body is otherwise ignored.
	maxCheckBody = 64 << 10
	// checkUserAgent is the User-Agent of active checks, so upstream logs
	// can tell them apart.
	checkUserAgent = "torii-health-check"
)

// healthSettings is a health check's config with defaults filled in.
type healthSettings struct {
	path      string
	host      string // "" : the endpoint's address
	interval  time.Duration
	timeout   time.Duration
	healthy   int64
	unhealthy int64
	expect    []statusRange
}

// statusRange is an inclusive range of passing statuses.
type statusRange struct{ lo, hi int }

func newHealthSettings(c *config.HealthCheck) (*healthSettings, error) {
	h := &healthSettings{
		path:      c.Path,
		host:      c.Host,
		interval:  orDefault(c.Interval.D(), defaultHealthInterval),
		timeout:   orDefault(c.Timeout.D(), defaultHealthTimeout),
		healthy:   int64(orDefault(c.HealthyThreshold, defaultHealthyThreshold)),
		unhealthy: int64(orDefault(c.UnhealthyThreshold, defaultUnhealthyThreshold)),
	}
	if !strings.HasPrefix(h.path, "/") {
		h.path = "/" + h.path
	}
	h.timeout = min(h.timeout, h.interval)
	expect := c.ExpectStatus
	if len(expect) == 0 {
		expect = []string{"200-399"}
	}
	for i, s := range expect {
		r, err := parseStatusRange(s)
		if err != nil {
			return nil, fmt.Errorf("expect_status[%d]: %w", i, err)
		}
		h.expect = append(h.expect, r)
	}
	return h, nil
}

// parseStatusRange parses "204" or "200-299" with the config's own rule.
func parseStatusRange(s string) (statusRange, error) {
	lo, hi, ok := config.ParseStatusRange(s)
	if !ok {
		return statusRange{}, fmt.Errorf("parse status %q: want a code or a range within 100-599", s)
	}
	return statusRange{lo, hi}, nil
}

// passes reports whether status is one of the expected statuses.
func (h *healthSettings) passes(status int) bool {
	for _, r := range h.expect {
		if status >= r.lo && status <= r.hi {
			return true
		}
	}
	return false
}

// newHealthClient returns the client of a pool's active checks: the same
// protocol, TLS and dialer settings as traffic (tc is the TLS config k
// describes), but its own small keep-alive pool, so checks neither wait
// behind busy traffic connections nor hide a broken one. It does not
// follow redirects: a 3xx is judged by expect_status.
func newHealthClient(k transportKey, tc *tls.Config) *http.Client {
	t := newNetTransport(k, tc)
	t.MaxIdleConnsPerHost = 1
	t.MaxConnsPerHost = 0
	t.ExpectContinueTimeout = 0
	return &http.Client{
		Transport:     t,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// startCheckLocked starts e's health-check goroutine if the pool is
// started, runs checks, and has none for e yet. p.mu must be held.
func (p *Pool) startCheckLocked(e *Endpoint) {
	if p.s.health == nil || p.runCtx == nil || p.checks[e.addr] != nil {
		return
	}
	ctx, cancel := context.WithCancel(p.runCtx)
	p.checks[e.addr] = cancel
	st, addr := e.st, e.addr
	p.goLocked(func() { p.checkLoop(ctx, st, addr) })
}

// checkLoop checks addr every interval, give or take 5 % so the checks of
// many endpoints spread out, until ctx ends. The first check comes within a
// tenth of an interval.
func (p *Pool) checkLoop(ctx context.Context, st *endpointState, addr string) {
	h := p.s.health
	jitter := func() time.Duration { return rand.N(h.interval/10 + 1) }
	t := time.NewTimer(jitter())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.checkOnce(ctx, st, addr)
		t.Reset(h.interval - h.interval/20 + jitter())
	}
}

// checkOnce runs one check of addr and records it, unless ctx ended first.
func (p *Pool) checkOnce(ctx context.Context, st *endpointState, addr string) {
	start := p.reg.now()
	err := p.probe(ctx, addr)
	if ctx.Err() != nil {
		return // stopping: a canceled check says nothing about the endpoint
	}
	p.recordCheck(st, start.UnixNano(), err)
}

// probe sends one GET to addr and returns why it failed, or nil.
func (p *Pool) probe(ctx context.Context, addr string) error {
	h := p.s.health
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.Scheme()+"://"+addr+h.path, nil)
	if err != nil {
		return fmt.Errorf("health check %s: %w", addr, err)
	}
	if h.host != "" {
		req.Host = h.host
	}
	req.Header.Set("User-Agent", checkUserAgent)
	resp, err := p.healthClient.Do(req)
	if err != nil {
		return fmt.Errorf("health check %s: %w", addr, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxCheckBody))
	resp.Body.Close()
	if !h.passes(resp.StatusCode) {
		return fmt.Errorf("health check %s: status %d not expected", addr, resp.StatusCode)
	}
	return nil
}

// recordCheck applies one check result (err nil: passed) started at start
// (Unix nanoseconds): healthy_threshold passes in a row make an unhealthy
// endpoint healthy, unhealthy_threshold failures in a row the reverse, and
// a pass ends an ejection that began before the check did.
func (p *Pool) recordCheck(st *endpointState, start int64, err error) {
	h := p.s.health
	st.lastCheck.Store(start)
	if err != nil {
		msg := err.Error()
		st.lastCheckErr.Store(&msg)
		st.checkPasses.Store(0)
		n := st.checkFailures.Add(1)
		if n >= h.unhealthy && st.healthy.CompareAndSwap(true, false) {
			p.reg.log.Warn("upstream endpoint unhealthy", "upstream", p.name, "endpoint", st.addr,
				"failures", n, "err", err)
		}
		return
	}
	st.lastCheckErr.Store(nil)
	st.checkFailures.Store(0)
	n := st.checkPasses.Add(1)
	if n >= h.healthy && st.healthy.CompareAndSwap(false, true) {
		p.reg.log.Info("upstream endpoint healthy", "upstream", p.name, "endpoint", st.addr, "passes", n)
	}
	if p.endEjection(st, start, p.reg.now().UnixNano()) {
		p.reg.log.Info("upstream endpoint ejection ended by a passing check", "upstream", p.name, "endpoint", st.addr)
	}
}
