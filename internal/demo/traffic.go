package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The traffic generator: synthetic users, each with a token from the
// Authority, sending a realistic mix through the gateway at a steady
// rate, so the SLO charts and the rollout's gates always have data.

// maxInFlight bounds the generator's concurrent requests; a tick that
// finds them all busy is skipped (and counted), so a stalled gateway
// cannot make the demo pile up goroutines.
const maxInFlight = 256

// synthUser is one synthetic user and its current token.
type synthUser struct {
	sub string
	// mu guards token and exp.
	mu    sync.Mutex
	token string
	exp   time.Time
}

// stats are the generator's counters since it started.
type stats struct {
	// Sent is the requests sent; the others split them by outcome.
	Sent, OK, Unauthorized, NotFound, OtherClient, ServerError, Failed, Skipped int64
}

// traffic sends the mix.
type traffic struct {
	client    *http.Client
	gateway   string // base URL
	authority string // base URL
	rate      float64
	users     []*synthUser

	sent, ok, unauthorized, notFound, otherClient, serverError, failed, skipped atomic.Int64
}

func newTraffic(gateway, authority string, rate float64, users int) *traffic {
	t := &traffic{
		client: &http.Client{
			Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: maxInFlight, IdleConnTimeout: 30 * time.Second},
			Timeout:   10 * time.Second,
		},
		gateway:   gateway,
		authority: authority,
		rate:      rate,
	}
	for i := range users {
		t.users = append(t.users, &synthUser{sub: fmt.Sprintf("user-%02d", i+1)})
	}
	return t
}

// Stats returns the counters now.
func (t *traffic) Stats() stats {
	return stats{
		Sent: t.sent.Load(), OK: t.ok.Load(), Unauthorized: t.unauthorized.Load(), NotFound: t.notFound.Load(),
		OtherClient: t.otherClient.Load(), ServerError: t.serverError.Load(), Failed: t.failed.Load(), Skipped: t.skipped.Load(),
	}
}

// Run sends requests until ctx ends, then waits for those in flight.
func (t *traffic) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer func() {
		wg.Wait()
		t.client.CloseIdleConnections()
	}()
	if t.rate <= 0 {
		<-ctx.Done()
		return
	}
	sem := make(chan struct{}, maxInFlight)
	// Requests are spaced by exponential gaps (a Poisson process, as
	// independent users arrive), at t.rate on average.
	next := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		select {
		case sem <- struct{}{}:
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				t.one(ctx)
			}()
		default:
			t.skipped.Add(1)
		}
		next = next.Add(time.Duration(rand.ExpFloat64() / t.rate * float64(time.Second)))
		if d := time.Until(next); d > 0 {
			timer.Reset(d)
		} else {
			next = time.Now() // behind (a slow machine): do not burst to catch up
			timer.Reset(0)
		}
	}
}

// one sends one request of the mix.
func (t *traffic) one(ctx context.Context) {
	u := t.users[rand.IntN(len(t.users))]
	path, withToken := pick()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.gateway+path, nil)
	if err != nil {
		return
	}
	if withToken {
		tok, err := u.Token(ctx, t.client, t.authority)
		if err != nil {
			if ctx.Err() == nil {
				t.sent.Add(1)
				t.failed.Add(1)
			}
			return
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := t.client.Do(req)
	if ctx.Err() != nil {
		if err == nil {
			resp.Body.Close()
		}
		return // stopping: not the gateway's doing
	}
	t.sent.Add(1)
	if err != nil {
		t.failed.Add(1)
		return
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	switch c := resp.StatusCode; {
	case c < 400:
		t.ok.Add(1)
	case c == http.StatusUnauthorized:
		t.unauthorized.Add(1)
	case c == http.StatusNotFound:
		t.notFound.Add(1)
	case c < 500:
		t.otherClient.Add(1)
	default:
		t.serverError.Add(1)
	}
}

// pick returns a request of the mix: listings (the migrating route) are
// the busiest; a few ask for ids that do not exist (404), and about 2 %
// come without a token (401).
func pick() (path string, withToken bool) {
	n := rand.IntN(100)
	switch {
	case n < 2:
		return "/v1/listings/" + fmt.Sprint(1+rand.IntN(numListings)), false
	case n < 4:
		return "/v1/items/" + fmt.Sprint(numItems+1+rand.IntN(1000)), true
	case n < 5:
		return "/", false
	case n < 30:
		return "/v1/items/" + fmt.Sprint(1+rand.IntN(numItems)), true
	case n < 50:
		return "/v1/users/" + fmt.Sprint(1+rand.IntN(numUsers)), true
	case n < 72:
		return "/v1/listings?page=" + fmt.Sprint(1+rand.IntN(numListings/perPage)), true
	default:
		return "/v1/listings/" + fmt.Sprint(1+rand.IntN(numListings)), true
	}
}

// Token returns the user's token, asking the Authority for a new one
// when it has none or it expires within 5 minutes.
func (u *synthUser) Token(ctx context.Context, c *http.Client, authority string) (string, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.token != "" && time.Until(u.exp) > 5*time.Minute {
		return u.token, nil
	}
	tok, exp, err := fetchToken(ctx, c, authority, u.sub)
	if err != nil {
		return "", err
	}
	u.token, u.exp = tok, exp
	return tok, nil
}

// fetchToken asks the Authority at base for a token for sub.
func fetchToken(ctx context.Context, c *http.Client, base, sub string) (string, time.Time, error) {
	form := url.Values{"sub": {sub}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/token", strings.NewReader(form))
	if err != nil {
		return "", time.Time{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.Do(req)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("fetch token: %w", err)
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
		Error       string `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return "", time.Time{}, fmt.Errorf("fetch token: %s: %w", resp.Status, err)
	}
	if resp.StatusCode != http.StatusOK || body.AccessToken == "" {
		return "", time.Time{}, fmt.Errorf("fetch token: %s: %s", resp.Status, body.Error)
	}
	return body.AccessToken, time.Now().Add(time.Duration(body.ExpiresIn) * time.Second), nil
}
