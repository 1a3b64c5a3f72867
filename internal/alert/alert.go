// Package alert delivers SLO alert notifications to the owning team's
// channels: Prometheus Alertmanager (API v2) and generic JSON webhooks
// (issue #5). docs/alerts.md describes the payloads, retries and metrics.
//
// The SLO engine decides what fires; it calls Notify on every change of an
// alert's state. Notify never blocks: each channel has its own bounded
// queue and its own delivery worker, so a receiver that is down delays only
// its own notifications. A worker retries with backoff while its receiver
// is down, and only the newest state of an alert is kept while it waits,
// so a channel never receives "firing" after "resolved" for the same key.
// Alertmanager channels also re-send firing alerts periodically, as
// Prometheus does, because Alertmanager resolves an alert by itself once
// its endsAt has passed.
package alert

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"torii/internal/config"
)

// Notification is one change of an alert's state, handed over by the SLO
// engine.
type Notification struct {
	// Key identifies the alert stably across evaluations and restarts,
	// e.g. "items/availability/page". A newer notification with the same
	// Key replaces an undelivered older one.
	Key string
	// Team is the owning team; each of its channels receives the
	// notification. A team with no channels (or unknown) receives nothing.
	Team string
	// Firing is true while the alert fires; false means resolved.
	Firing bool
	// StartsAt is when the alert started firing.
	StartsAt time.Time
	// EndsAt is when the alert resolved; zero while firing. Zero on a
	// resolved notification means "now" (the time of delivery).
	EndsAt time.Time
	// Labels identify the alert to the receiver; Alertmanager groups and
	// routes by them and needs at least one (usually "alertname").
	Labels map[string]string
	// Annotations are descriptive: summary, description, runbook.
	Annotations map[string]string
	// GeneratorURL is an optional link back to the alert's source (the
	// admin API). Empty: not sent.
	GeneratorURL string
}

// Options configure a Dispatcher. Zero fields take the defaults given.
type Options struct {
	// Client sends the notifications. Default: a new http.Client with
	// http.DefaultTransport. Each attempt is bounded by AttemptTimeout
	// whatever the client's own timeout.
	Client *http.Client
	// Now is the clock used for endsAt and Retry-After dates. Default:
	// time.Now.
	Now func() time.Time
	// Logger receives delivery failures and drops. Default:
	// slog.Default().
	Logger *slog.Logger
	// Registerer registers the metrics (see docs/alerts.md). Nil: the
	// metrics are kept but not registered.
	Registerer prometheus.Registerer
	// Backoff is how long to wait before retry number attempt (1 for the
	// first retry) after a failure without a Retry-After header. Default:
	// DefaultBackoff (exponential from 1s to 5m, with jitter).
	Backoff func(attempt int) time.Duration
	// Sleep waits d or until ctx ends, whichever comes first; it waits
	// between retries and is injected so tests need not sleep for a
	// receiver's Retry-After. Default: a timer.
	Sleep func(ctx context.Context, d time.Duration)
	// MaxRetryAfter caps a receiver's Retry-After, so a receiver cannot
	// silence a channel for long. Default: 5m.
	MaxRetryAfter time.Duration
	// ResendInterval is how often firing alerts are re-sent to
	// Alertmanager channels; their endsAt is set 3 intervals ahead, so
	// Alertmanager resolves them by itself if torii goes away. Default: 1m.
	ResendInterval time.Duration
	// AttemptTimeout bounds each delivery attempt (one HTTP request).
	// Default: 10s.
	AttemptTimeout time.Duration
	// FinalTimeout bounds the last delivery attempt made for whatever is
	// still queued when Run's context ends. Default: 5s.
	FinalTimeout time.Duration
	// QueueSize is the most distinct alerts a channel holds undelivered;
	// when it is full the oldest is dropped. Default: 1000.
	QueueSize int
}

// DefaultBackoff is the default Options.Backoff: 1s doubled at each retry
// up to 5m, each wait drawn uniformly from its upper half ("equal jitter")
// so that the replicas of a fleet do not retry in step.
func DefaultBackoff(attempt int) time.Duration {
	const base, limit = time.Second, 5 * time.Minute
	d := limit
	if attempt < 20 { // 2^19 s is far past the limit; avoids overflow
		d = min(base<<max(attempt-1, 0), limit)
	}
	return d/2 + rand.N(d/2+1)
}

// maxBatch is the most alerts sent to Alertmanager in one request, as in
// Prometheus's notifier.
const maxBatch = 64

// Dispatcher delivers notifications to team channels. Its methods are
// safe for concurrent use.
type Dispatcher struct {
	opts    Options
	metrics *metrics

	mu sync.Mutex // guards the fields below
	// teams maps a team name to its channels.
	teams map[string][]*channel
	// channels holds every configured channel by its identity (kind and
	// URL), so a channel kept across a reload keeps its queue.
	channels map[channelID]*channel
	// runCtx is Run's context while Run runs; nil before.
	runCtx context.Context
	// stopped reports whether Run's context has ended; no worker starts
	// after that.
	stopped bool
	// workers counts running workers; Run waits for them.
	workers sync.WaitGroup
}

// New returns a Dispatcher with no channels. It starts nothing: call
// SetTeams, then Run. It fails if the metrics cannot be registered.
func New(opts Options) (*Dispatcher, error) {
	if opts.Client == nil {
		opts.Client = &http.Client{}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Backoff == nil {
		opts.Backoff = DefaultBackoff
	}
	if opts.Sleep == nil {
		opts.Sleep = sleep
	}
	if opts.MaxRetryAfter <= 0 {
		opts.MaxRetryAfter = 5 * time.Minute
	}
	if opts.ResendInterval <= 0 {
		opts.ResendInterval = time.Minute
	}
	if opts.AttemptTimeout <= 0 {
		opts.AttemptTimeout = 10 * time.Second
	}
	if opts.FinalTimeout <= 0 {
		opts.FinalTimeout = 5 * time.Second
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = 1000
	}
	d := &Dispatcher{
		opts:     opts,
		teams:    map[string][]*channel{},
		channels: map[channelID]*channel{},
	}
	m, err := newMetrics(opts.Registerer, d.Pending)
	if err != nil {
		return nil, err
	}
	d.metrics = m
	return d, nil
}

// sleep is the default Options.Sleep.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// SetTeams replaces the teams and their channels; call it on every config
// (re)load. A channel present before and after (same kind and URL) keeps
// its queue and re-send state; a channel no longer configured is stopped
// and whatever it still held is dropped. Channels with an empty or
// unparsable URL are skipped (validation rejects them).
func (d *Dispatcher) SetTeams(teams map[string]*config.Team) {
	d.mu.Lock()
	defer d.mu.Unlock()
	newTeams := make(map[string][]*channel, len(teams))
	keep := map[channelID]bool{}
	for name, t := range teams {
		if t == nil {
			continue
		}
		for _, ac := range t.Alerts {
			id, ok := channelIDOf(ac)
			if !ok {
				continue
			}
			ch := d.channels[id]
			if ch == nil {
				var err error
				ch, err = newChannel(id)
				if err != nil {
					d.opts.Logger.Warn("alert channel skipped", "team", name, "error", err)
					continue
				}
				d.channels[id] = ch
				d.startLocked(ch)
			}
			keep[id] = true
			if !slices.Contains(newTeams[name], ch) {
				newTeams[name] = append(newTeams[name], ch)
			}
		}
	}
	for id, ch := range d.channels {
		if keep[id] {
			continue
		}
		delete(d.channels, id)
		if n := ch.remove(); n > 0 {
			d.metrics.count(ch.id.kind, resultDropped, n)
			d.opts.Logger.Warn("alert channel removed with undelivered notifications",
				"channel", ch.id.kind, "host", ch.host, "dropped", n)
		}
	}
	d.teams = newTeams
}

// startLocked starts ch's worker if Run is running. d.mu must be held.
func (d *Dispatcher) startLocked(ch *channel) {
	if d.runCtx == nil || d.stopped {
		return
	}
	ctx, cancel := context.WithCancel(d.runCtx)
	ch.cancel = cancel
	d.workers.Go(func() { d.work(ctx, ch) })
}

// Notify enqueues n on each channel of n.Team and returns at once. An
// undelivered notification with the same Key on a channel is replaced by
// n, keeping its place in the queue.
func (d *Dispatcher) Notify(ctx context.Context, n Notification) {
	d.mu.Lock()
	chans := d.teams[n.Team]
	d.mu.Unlock()
	if len(chans) == 0 {
		d.opts.Logger.DebugContext(ctx, "alert not sent: team has no channels", "team", n.Team, "key", n.Key)
		return
	}
	for _, ch := range chans {
		if dropped, ok := ch.push(n, d.opts.QueueSize); ok {
			d.metrics.count(ch.id.kind, resultDropped, 1)
			d.opts.Logger.WarnContext(ctx, "alert queue full: oldest notification dropped",
				"channel", ch.id.kind, "host", ch.host, "dropped_key", dropped.Key)
		}
	}
}

// Pending returns how many notifications wait to be delivered, over all
// channels, counting those being sent.
func (d *Dispatcher) Pending() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, ch := range d.channels {
		n += ch.pending()
	}
	return n
}

// Run delivers notifications until ctx ends, one worker per channel;
// channels added by SetTeams while it runs get their own. When ctx ends,
// each worker makes one last attempt, bounded by FinalTimeout, to deliver
// what it still holds; Run returns when every worker has stopped. Run is
// called once; a second call returns at once.
func (d *Dispatcher) Run(ctx context.Context) {
	d.mu.Lock()
	if d.runCtx != nil {
		d.mu.Unlock()
		return
	}
	d.runCtx = ctx
	for _, ch := range d.channels {
		d.startLocked(ch)
	}
	d.mu.Unlock()

	<-ctx.Done()
	d.mu.Lock()
	d.stopped = true
	d.mu.Unlock()
	d.workers.Wait()
}

// work is the delivery loop of one channel.
func (d *Dispatcher) work(ctx context.Context, ch *channel) {
	var resend <-chan time.Time
	if ch.id.kind == kindAlertmanager {
		t := time.NewTicker(d.opts.ResendInterval)
		defer t.Stop()
		resend = t.C
	}
	failures := 0
	for {
		if ctx.Err() != nil {
			if !ch.isClosed() {
				d.flush(ctx, ch)
			}
			return
		}
		// A receiver that stays busy must still get its re-sends.
		select {
		case <-resend:
			ch.queueResends(d.opts.QueueSize)
		default:
		}
		batch := ch.take(ch.batchSize())
		if len(batch) == 0 {
			select {
			case <-ctx.Done():
			case <-ch.wake:
			case <-resend:
				ch.queueResends(d.opts.QueueSize)
			}
			continue
		}
		res := d.send(ctx, ch, batch, d.opts.AttemptTimeout)
		switch {
		case res.err == nil:
			ch.finish(batch, true)
			d.metrics.count(ch.id.kind, resultSent, len(batch))
			if failures > 0 {
				d.opts.Logger.Info("alert channel recovered", "channel", ch.id.kind, "host", ch.host, "failed_attempts", failures)
			}
			failures = 0
		case !res.retry:
			ch.finish(batch, false)
			d.metrics.count(ch.id.kind, resultDropped, len(batch))
			d.opts.Logger.Error("alert notification dropped", "channel", ch.id.kind, "host", ch.host,
				"alerts", len(batch), "error", res.err)
		default:
			if n := ch.requeue(batch); n > 0 {
				// The channel was removed during the attempt.
				d.metrics.count(ch.id.kind, resultDropped, n)
				continue
			}
			if ctx.Err() != nil {
				// The attempt was cut short by shutdown: flush
				// tries it once more.
				continue
			}
			failures++
			d.metrics.count(ch.id.kind, resultRetry, len(batch))
			wait := res.retryAfter
			if wait <= 0 {
				wait = d.opts.Backoff(failures)
			}
			d.opts.Logger.Warn("alert delivery failed; will retry", "channel", ch.id.kind, "host", ch.host,
				"alerts", len(batch), "attempt", failures, "retry_in", wait, "error", res.err)
			d.opts.Sleep(ctx, wait)
		}
	}
}

// flush makes one last attempt, bounded by FinalTimeout in all, to deliver
// what ch still holds after Run's context ended. What it cannot deliver is
// dropped.
func (d *Dispatcher) flush(ctx context.Context, ch *channel) {
	deadline := time.Now().Add(d.opts.FinalTimeout)
	fctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
	defer cancel()
	for {
		batch := ch.take(ch.batchSize())
		if len(batch) == 0 {
			return
		}
		res := d.send(fctx, ch, batch, min(d.opts.AttemptTimeout, time.Until(deadline)))
		if res.err == nil {
			ch.finish(batch, true)
			d.metrics.count(ch.id.kind, resultSent, len(batch))
			continue
		}
		ch.finish(batch, false)
		left := ch.drain()
		n := len(batch) + left
		d.metrics.count(ch.id.kind, resultDropped, n)
		d.opts.Logger.Error("alert notifications undelivered at shutdown", "channel", ch.id.kind, "host", ch.host,
			"alerts", n, "error", res.err)
		return
	}
}

// result is the outcome of one delivery attempt.
type result struct {
	err error
	// retry reports whether the failure is worth retrying (network
	// error, 5xx or 429).
	retry bool
	// retryAfter is the receiver's Retry-After, capped; zero if none.
	retryAfter time.Duration
}

// send makes one attempt to deliver batch to ch within timeout.
func (d *Dispatcher) send(ctx context.Context, ch *channel, batch []Notification, timeout time.Duration) result {
	now := d.opts.Now()
	body, err := ch.encode(batch, now, d.opts.ResendInterval)
	if err != nil {
		return result{err: fmt.Errorf("encode %s notification: %w", ch.id.kind, err)}
	}
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, ch.target, bytes.NewReader(body))
	if err != nil {
		return result{err: fmt.Errorf("build %s request: %w", ch.id.kind, redactErr(err))}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "torii-alert")
	resp, err := d.opts.Client.Do(req)
	if err != nil {
		return result{err: fmt.Errorf("post to %s: %w", ch.host, redactErr(err)), retry: true}
	}
	defer resp.Body.Close()
	// Read a little of the body: it says why, and draining lets the
	// connection be reused.
	msg := readSnippet(resp.Body)
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return result{}
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return result{
			err:        fmt.Errorf("post to %s: status %d: %s", ch.host, resp.StatusCode, msg),
			retry:      true,
			retryAfter: min(retryAfter(resp.Header.Get("Retry-After"), now), d.opts.MaxRetryAfter),
		}
	default:
		// 4xx (and the odd 1xx/3xx left over): the receiver refuses
		// this payload and would refuse it again.
		return result{err: fmt.Errorf("post to %s: status %d: %s", ch.host, resp.StatusCode, msg)}
	}
}

// redactErr strips the URL from a *url.Error, whose text would otherwise
// carry a webhook's path and query, where tokens live.
func redactErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
