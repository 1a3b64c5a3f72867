package jwt

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/prometheus/client_golang/prometheus"

	"torii/internal/telemetry"
)

const (
	// fetchTimeout bounds one JWKS fetch, whatever the client's timeout.
	fetchTimeout = 5 * time.Second
	// maxJWKSBytes caps a JWKS response body; a real key set is a few KiB.
	maxJWKSBytes = 1 << 20
	// maxKeys caps the keys kept from one key set.
	maxKeys = 100
	// minRSABits is the smallest RSA modulus accepted (RFC 7518 §3.3 says
	// 2048 bits or larger MUST be used).
	minRSABits = 2048
	// noKeysRetry is how often a key set that has never been fetched
	// successfully may be retried: shorter than jwks_min_refresh, so a
	// JWKS endpoint that was down when torii started is picked up soon.
	noKeysRetry = time.Second
)

// KeysOptions configures NewKeys. Every field is optional.
type KeysOptions struct {
	// Client fetches key sets. Default: a client with a 10s timeout. Each
	// fetch is also bounded to 5s.
	Client *http.Client
	// Now is the clock used for key refresh and for token times (exp, nbf,
	// iat, the verified-token cache). Default: time.Now.
	Now func() time.Time
	// Logger receives key-set fetch failures. Default: slog.Default().
	Logger *slog.Logger
	// Registerer registers the metrics torii_jwt_jwks_fetches_total{result}
	// and torii_jwt_verifications_total{route,result}. Default: nil, the
	// metrics are kept but not registered.
	Registerer prometheus.Registerer
}

// Keys holds the JWKS caches, keyed by URL, shared by all routes and
// surviving reloads: build it once and hand it to every New. It starts no
// goroutine: a key set is fetched on demand, when a token needs it and it
// is missing or older than jwks_refresh, or when a token names an unknown
// "kid"; concurrent requests share one fetch. A failed fetch keeps the
// last good keys.
type Keys struct {
	client        *http.Client
	now           func() time.Time
	log           *slog.Logger
	fetches       *prometheus.CounterVec
	verifications *prometheus.CounterVec

	mu   sync.Mutex // guards sets
	sets map[string]*keySet
}

// NewKeys returns an empty Keys. It fetches nothing until a token needs a
// key.
func NewKeys(opts KeysOptions) *Keys {
	k := &Keys{
		client: opts.Client,
		now:    opts.Now,
		log:    opts.Logger,
		sets:   map[string]*keySet{},
		fetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "torii_jwt_jwks_fetches_total",
			Help: "JWKS fetches by result: ok, or error (the last good keys are kept).",
		}, []string{"result"}),
		verifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "torii_jwt_verifications_total",
			Help: "JWT checks by route and result: ok, cached (ok from the verified-token cache), missing, invalid, expired, unknown_key, no_keys, forbidden.",
		}, []string{"route", "result"}),
	}
	if k.client == nil {
		k.client = &http.Client{Timeout: 10 * time.Second}
	}
	if k.now == nil {
		k.now = time.Now
	}
	if k.log == nil {
		k.log = slog.Default()
	}
	if opts.Registerer != nil {
		k.fetches = telemetry.Register(opts.Registerer, k.fetches)
		k.verifications = telemetry.Register(opts.Registerer, k.verifications)
	}
	return k
}

// set returns the key set of url, creating it empty on first use.
func (k *Keys) set(url string) *keySet {
	k.mu.Lock()
	defer k.mu.Unlock()
	s := k.sets[url]
	if s == nil {
		s = &keySet{url: url, keys: k}
		k.sets[url] = s
	}
	return s
}

// keySet is the cache of one JWKS URL.
type keySet struct {
	url  string
	keys *Keys
	cur  atomic.Pointer[keyMap] // the last good keys; nil before the first

	mu          sync.Mutex // guards lastAttempt and call
	lastAttempt time.Time  // start of the last fetch, good or bad
	call        *fetchCall // the fetch in flight, or nil
}

// fetchCall is one fetch in flight, which concurrent callers may wait for.
type fetchCall struct {
	done chan struct{}
	err  error // set before done is closed
}

// keyMap is one immutable fetched key set.
type keyMap struct {
	fetched time.Time
	byKid   map[string][]*key
	all     []*key
	members map[*key]struct{} // for the cache's "is this key still served" check
}

// key is one usable public key from a set.
type key struct {
	kid   string
	alg   string           // the JWK's "alg", "" when absent
	pub   crypto.PublicKey // *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
	thumb string           // RFC 7638 thumbprint, to keep identity across refreshes
}

// fits reports whether k may verify a signature made with alg: the key's
// type and curve must be the algorithm's (RFC 8725 §3.1, no algorithm
// confusion; a symmetric key is never loaded at all), and a JWK that names
// its "alg" is used with that algorithm only (RFC 7517 §4.4).
func (k *key) fits(alg string) bool {
	if k.alg != "" && k.alg != alg {
		return false
	}
	switch pub := k.pub.(type) {
	case *rsa.PublicKey:
		switch alg {
		case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
			return true
		}
	case *ecdsa.PublicKey:
		switch alg {
		case "ES256":
			return pub.Curve == elliptic.P256()
		case "ES384":
			return pub.Curve == elliptic.P384()
		case "ES512":
			return pub.Curve == elliptic.P521()
		}
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}

// match returns the keys of m that may verify a token with kid and alg: the
// keys with that kid, or every key when the token names none.
func (m *keyMap) match(kid, alg string) []*key {
	pool := m.all
	if kid != "" {
		pool = m.byKid[kid]
	}
	var out []*key
	for _, k := range pool {
		if k.fits(alg) {
			out = append(out, k)
		}
	}
	return out
}

// errNoKeys means a key set has never been fetched successfully.
var errNoKeys = errors.New("no keys")

// candidates returns the keys that may verify a token with kid and alg,
// fetching the key set when it is missing or older than refresh, and once
// more when kid is unknown. Fetches are at most one per minRefresh.
func (s *keySet) candidates(ctx context.Context, kid, alg string, refresh, minRefresh time.Duration) ([]*key, error) {
	m := s.cur.Load()
	switch {
	case m == nil:
		var err error
		if m, err = s.refresh(ctx, min(minRefresh, noKeysRetry), true); m == nil {
			return nil, fmt.Errorf("%w from %s: %v", errNoKeys, s.url, err)
		}
	case s.keys.now().Sub(m.fetched) >= refresh:
		// Stale: refresh, but do not wait for another request's fetch;
		// the current keys serve meanwhile.
		if fresh, _ := s.refresh(ctx, minRefresh, false); fresh != nil {
			m = fresh
		}
	}
	ks := m.match(kid, alg)
	if len(ks) == 0 && kid != "" {
		// An unknown kid may mean the issuer rotated its keys (RFC 7517
		// §4.5): refetch, at most once per minRefresh.
		if fresh, _ := s.refresh(ctx, minRefresh, true); fresh != nil && fresh != m {
			ks = fresh.match(kid, alg)
		}
	}
	return ks, nil
}

// refresh fetches the key set unless a fetch started less than minRefresh
// ago, and returns the current keys (nil when there are none). When a
// fetch is already in flight it waits for it if wait is set, and otherwise
// returns the current keys at once.
func (s *keySet) refresh(ctx context.Context, minRefresh time.Duration, wait bool) (*keyMap, error) {
	s.mu.Lock()
	if c := s.call; c != nil {
		s.mu.Unlock()
		if !wait {
			return s.cur.Load(), nil
		}
		select {
		case <-c.done:
			return s.cur.Load(), c.err
		case <-ctx.Done():
			return s.cur.Load(), ctx.Err()
		}
	}
	now := s.keys.now()
	if !s.lastAttempt.IsZero() && now.Sub(s.lastAttempt) < minRefresh {
		s.mu.Unlock()
		return s.cur.Load(), errors.New("fetched recently")
	}
	c := &fetchCall{done: make(chan struct{})}
	s.call, s.lastAttempt = c, now
	s.mu.Unlock()

	m, err := s.fetch(ctx, s.cur.Load())
	if err == nil {
		s.cur.Store(m)
		s.keys.fetches.WithLabelValues("ok").Inc()
	} else {
		s.keys.fetches.WithLabelValues("error").Inc()
		s.keys.log.Warn("jwks fetch failed; keeping the last good keys", "url", s.url, "error", err)
	}
	s.mu.Lock()
	s.call = nil
	s.mu.Unlock()
	c.err = err
	close(c.done)
	return s.cur.Load(), err
}

// fetch downloads and parses the key set. The fetch outlives the request
// that started it (others may be waiting for it) but not fetchTimeout.
func (s *keySet) fetch(ctx context.Context, old *keyMap) (*keyMap, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch jwks: %w", err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := s.keys.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch jwks: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return nil, fmt.Errorf("fetch jwks: status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read jwks: %w", err)
	}
	if len(body) > maxJWKSBytes {
		return nil, fmt.Errorf("read jwks: larger than %d bytes", maxJWKSBytes)
	}
	m, skipped, err := parseKeySet(body, old, s.keys.now())
	if err != nil {
		return nil, err
	}
	if skipped > 0 {
		s.keys.log.Info("jwks: skipped keys torii cannot use for signatures", "url", s.url, "skipped", skipped, "kept", len(m.all))
	}
	return m, nil
}

// parseKeySet parses a JWKS document (RFC 7517 §5), keeping the public
// signature keys torii can use and counting the others as skipped. A key
// identical to one in old (same kid and thumbprint) keeps its identity, so
// cached tokens it verified stay valid across refreshes.
func parseKeySet(data []byte, old *keyMap, now time.Time) (m *keyMap, skipped int, err error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, 0, fmt.Errorf("parse jwks: %w", err)
	}
	m = &keyMap{fetched: now, byKid: map[string][]*key{}, members: map[*key]struct{}{}}
	for _, raw := range doc.Keys {
		k := parseKey(raw)
		if k == nil || len(m.all) == maxKeys {
			skipped++
			continue
		}
		if old != nil {
			for _, o := range old.byKid[k.kid] {
				if o.thumb == k.thumb && o.alg == k.alg {
					k = o
					break
				}
			}
		}
		m.all = append(m.all, k)
		m.byKid[k.kid] = append(m.byKid[k.kid], k)
		m.members[k] = struct{}{}
	}
	if len(m.all) == 0 {
		return nil, skipped, fmt.Errorf("parse jwks: no usable signature keys (%d skipped)", skipped)
	}
	return m, skipped, nil
}

// parseKey returns the public signature key of one JWK, or nil when it is
// not one torii uses: unparseable, meant for encryption, symmetric ("oct",
// never used, so a public key can never double as an HMAC secret, RFC 8725
// §2.1), or an RSA key under 2048 bits.
func parseKey(raw json.RawMessage) *key {
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(raw); err != nil || !jwk.Valid() {
		return nil
	}
	if jwk.Use != "" && jwk.Use != "sig" {
		return nil
	}
	var pub crypto.PublicKey
	switch k := jwk.Key.(type) {
	case *rsa.PublicKey:
		pub = k
	case *rsa.PrivateKey:
		pub = &k.PublicKey
	case *ecdsa.PublicKey:
		pub = k
	case *ecdsa.PrivateKey:
		pub = &k.PublicKey
	case ed25519.PublicKey:
		pub = k
	case ed25519.PrivateKey:
		pub = k.Public()
	default:
		return nil
	}
	if rk, ok := pub.(*rsa.PublicKey); ok && rk.N.BitLen() < minRSABits {
		return nil
	}
	public := jwk.Public()
	thumb, err := public.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil
	}
	return &key{kid: jwk.KeyID, alg: jwk.Algorithm, pub: pub, thumb: string(thumb)}
}

// ForgetRoute deletes the verification series of a route a reload
// removed, so they stop being exported.
func (k *Keys) ForgetRoute(route string) {
	k.verifications.DeletePartialMatch(prometheus.Labels{"route": route})
}
