package alert

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"torii/internal/config"
)

// Channel kinds, also the channel_type label of the metrics.
const (
	kindAlertmanager = "alertmanager"
	kindWebhook      = "webhook"
)

// channelID identifies a channel across reloads.
type channelID struct {
	kind string // kindAlertmanager or kindWebhook
	url  string // as configured
}

// channelIDOf returns ac's identity; ok is false when ac names no URL.
func channelIDOf(ac config.AlertChannel) (id channelID, ok bool) {
	switch {
	case ac.Alertmanager != "":
		return channelID{kindAlertmanager, ac.Alertmanager}, true
	case ac.Webhook != "":
		return channelID{kindWebhook, ac.Webhook}, true
	}
	return channelID{}, false
}

// channel is one destination: its queue of undelivered notifications and,
// for Alertmanager, the firing alerts it re-sends.
type channel struct {
	id channelID
	// target is the URL POSTed to.
	target string
	// host is the only part of the URL that is logged: a webhook's path
	// and query often carry a token.
	host string
	// wake is signalled (without blocking) when the queue gains work.
	wake chan struct{}
	// cancel stops the worker; nil until it starts. Set under
	// Dispatcher.mu.
	cancel context.CancelFunc

	mu sync.Mutex // guards the fields below
	// queue holds the undelivered notifications in arrival order; byKey
	// indexes it, so that at most one state per alert is queued.
	queue []*Notification
	byKey map[string]*Notification
	// inflight counts the notifications taken for an attempt and not
	// yet finished or requeued.
	inflight int
	// firing holds, for Alertmanager channels, the latest firing state of
	// each alert still firing, for re-sends. Updated when notified, not
	// when delivered, so re-sends stop as soon as the alert resolves.
	firing map[string]Notification
	// closed reports whether the channel was removed from the config.
	closed bool
}

// newChannel returns the channel for id, or an error if its URL is not an
// absolute http(s) URL.
func newChannel(id channelID) (*channel, error) {
	u, err := url.Parse(id.url)
	if err != nil {
		return nil, fmt.Errorf("parse %s URL: %w", id.kind, redactErr(err))
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%s URL of host %q: want an absolute http or https URL", id.kind, u.Host)
	}
	ch := &channel{
		id:     id,
		target: id.url,
		host:   u.Host,
		wake:   make(chan struct{}, 1),
		byKey:  map[string]*Notification{},
	}
	if id.kind == kindAlertmanager {
		// The base URL may carry a path prefix (Alertmanager's
		// --web.route-prefix); keep it.
		u.Path = strings.TrimSuffix(u.Path, "/") + "/api/v2/alerts"
		u.RawPath = ""
		ch.target = u.String()
		ch.firing = map[string]Notification{}
	}
	return ch, nil
}

// batchSize is the most notifications one request carries.
func (ch *channel) batchSize() int {
	if ch.id.kind == kindAlertmanager {
		return maxBatch
	}
	return 1
}

// signal wakes the worker without blocking.
func (ch *channel) signal() {
	select {
	case ch.wake <- struct{}{}:
	default:
	}
}

// push queues n, replacing a queued notification with the same key. If the
// queue already holds size alerts, the oldest is dropped and returned with
// ok true.
func (ch *channel) push(n Notification, size int) (dropped Notification, ok bool) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.closed {
		return Notification{}, false
	}
	if ch.firing != nil {
		if n.Firing {
			ch.firing[n.Key] = n
		} else {
			delete(ch.firing, n.Key)
		}
	}
	dropped, ok = ch.enqueueLocked(n, size)
	ch.signal()
	return dropped, ok
}

// enqueueLocked queues n as push does. ch.mu must be held.
func (ch *channel) enqueueLocked(n Notification, size int) (dropped Notification, ok bool) {
	if old := ch.byKey[n.Key]; old != nil {
		*old = n // the newer state takes the older one's place
		return Notification{}, false
	}
	if len(ch.queue) >= size {
		oldest := ch.queue[0]
		ch.queue[0] = nil
		ch.queue = ch.queue[1:]
		delete(ch.byKey, oldest.Key)
		if ch.firing != nil && oldest.Firing {
			// Re-sending it later would deliver it after all.
			delete(ch.firing, oldest.Key)
		}
		dropped, ok = *oldest, true
	}
	p := &n
	ch.queue = append(ch.queue, p)
	ch.byKey[n.Key] = p
	return dropped, ok
}

// queueResends queues every firing alert not already queued.
func (ch *channel) queueResends(size int) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.closed {
		return
	}
	for key, n := range ch.firing {
		if ch.byKey[key] != nil || len(ch.queue) >= size {
			continue
		}
		p := &n
		ch.queue = append(ch.queue, p)
		ch.byKey[key] = p
	}
	if len(ch.queue) > 0 {
		ch.signal()
	}
}

// take removes up to max notifications from the head of the queue for an
// attempt.
func (ch *channel) take(max int) []Notification {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	n := min(max, len(ch.queue))
	batch := make([]Notification, n)
	for i, p := range ch.queue[:n] {
		batch[i] = *p
		delete(ch.byKey, p.Key)
		ch.queue[i] = nil
	}
	ch.queue = ch.queue[n:]
	ch.inflight += n
	return batch
}

// requeue puts a batch whose attempt failed back at the head of the queue,
// except the alerts that got a newer state meanwhile: that state is queued
// already and will be delivered instead, so a stale "firing" never follows
// a "resolved". It returns how many it dropped because the channel was
// removed meanwhile.
func (ch *channel) requeue(batch []Notification) (dropped int) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	ch.inflight -= len(batch)
	if ch.closed {
		return len(batch)
	}
	back := make([]*Notification, 0, len(batch)+len(ch.queue))
	for i := range batch {
		if ch.byKey[batch[i].Key] != nil {
			continue
		}
		p := &batch[i]
		back = append(back, p)
		ch.byKey[p.Key] = p
	}
	ch.queue = append(back, ch.queue...)
	return 0
}

// finish ends the attempt on batch. A permanent refusal (delivered false)
// also stops re-sending the refused firing alerts, which would be refused
// again, unless a newer state arrived meanwhile.
func (ch *channel) finish(batch []Notification, delivered bool) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	ch.inflight -= len(batch)
	if delivered || ch.firing == nil {
		return
	}
	for _, n := range batch {
		if f, ok := ch.firing[n.Key]; ok && n.Firing && f.StartsAt.Equal(n.StartsAt) {
			delete(ch.firing, n.Key)
		}
	}
}

// drain empties the queue and returns how many notifications it held.
func (ch *channel) drain() int {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	n := len(ch.queue)
	ch.queue = nil
	clear(ch.byKey)
	return n
}

// remove marks the channel removed from the config, stops its worker and
// returns how many queued notifications it dropped. An attempt in flight
// may still complete.
func (ch *channel) remove() int {
	ch.mu.Lock()
	ch.closed = true
	n := len(ch.queue)
	ch.queue = nil
	clear(ch.byKey)
	clear(ch.firing)
	ch.mu.Unlock()
	if ch.cancel != nil {
		ch.cancel()
	}
	return n
}

// isClosed reports whether the channel was removed from the config.
func (ch *channel) isClosed() bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.closed
}

// pending returns how many notifications are queued or being sent.
func (ch *channel) pending() int {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.closed {
		return 0
	}
	return len(ch.queue) + ch.inflight
}

// encode returns the request body for batch at time now.
func (ch *channel) encode(batch []Notification, now time.Time, resend time.Duration) ([]byte, error) {
	if ch.id.kind == kindAlertmanager {
		return encodeAlertmanager(batch, now, resend)
	}
	return encodeWebhook(batch[0], now)
}
