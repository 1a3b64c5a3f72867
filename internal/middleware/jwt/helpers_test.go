package jwt

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"torii/internal/config"
	"torii/internal/request"
)

// Test keys are generated once per test binary: RSA generation is slow.
var (
	keysOnce         sync.Once
	rsaKey, rsaKey2  *rsa.PrivateKey
	ecKey, strangeEC *ecdsa.PrivateKey
)

func testKeys(t testing.TB) {
	t.Helper()
	keysOnce.Do(func() {
		var err error
		for _, k := range []**rsa.PrivateKey{&rsaKey, &rsaKey2} {
			if *k, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
				panic(err)
			}
		}
		for _, k := range []**ecdsa.PrivateKey{&ecKey, &strangeEC} {
			if *k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
				panic(err)
			}
		}
	})
}

// jwksServer is a real JWKS endpoint whose keys and health change on
// demand, counting its hits.
type jwksServer struct {
	*httptest.Server
	hits atomic.Int64

	mu   sync.Mutex // guards keys and fail
	keys []jose.JSONWebKey
	fail bool
}

func newJWKSServer(t testing.TB, keys ...jose.JSONWebKey) *jwksServer {
	s := &jwksServer{keys: keys}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.fail {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: s.keys})
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) setKeys(keys ...jose.JSONWebKey) {
	s.mu.Lock()
	s.keys = keys
	s.mu.Unlock()
}

func (s *jwksServer) setFail(fail bool) {
	s.mu.Lock()
	s.fail = fail
	s.mu.Unlock()
}

// pub is the public JWK of a private key.
func pub(k crypto.Signer, kid, alg string) jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.Public(), KeyID: kid, Algorithm: alg, Use: "sig"}
}

// clock is a fake clock the tests move by hand.
type clock struct {
	mu sync.Mutex // guards t
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var epoch = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

const issuer = "https://authority.test"

// sign returns a compact JWS of claims signed by key with alg and kid.
func sign(t testing.TB, key crypto.Signer, alg jose.SignatureAlgorithm, kid string, claims map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// claimsAt are valid claims for a token issued at now, living 10 minutes.
func claimsAt(now time.Time) map[string]any {
	return map[string]any{
		"iss": issuer,
		"sub": "user-42",
		"aud": []string{"api", "other"},
		"iat": now.Unix(),
		"nbf": now.Unix(),
		"exp": now.Add(10 * time.Minute).Unix(),
	}
}

// with returns a copy of c with the given claims set (nil deletes).
func with(c map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range c {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
		} else {
			out[kv[i].(string)] = kv[i+1]
		}
	}
	return out
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// harness is a route with the JWT middleware in front of a handler that
// records what reached it.
type harness struct {
	t       testing.TB
	jwks    *jwksServer
	clock   *clock
	keys    *Keys
	mw      func(http.Handler) http.Handler
	handler http.Handler
	// seen is the last request that reached the upstream handler, and
	// its Info.
	seen     *http.Request
	seenInfo *request.Info
	// lastInfo is the Info of the last request sent.
	lastInfo *request.Info
}

// newHarness builds a route "items" over a JWKS server serving an RSA key
// "rsa1" and an EC key "ec1". edit may change the config.
func newHarness(t testing.TB, edit func(*config.JWT)) *harness {
	testKeys(t)
	h := &harness{t: t, clock: &clock{t: epoch}}
	h.jwks = newJWKSServer(t, pub(rsaKey, "rsa1", "RS256"), pub(ecKey, "ec1", ""))
	h.keys = NewKeys(KeysOptions{
		Client: h.jwks.Client(),
		Now:    h.clock.Now,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	cfg := &config.JWT{Issuer: issuer, JWKS: h.jwks.URL + "/jwks.json", Audiences: []string{"api"}}
	if edit != nil {
		edit(cfg)
	}
	mw, err := New("items", cfg, h.keys)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h.mw = mw
	h.handler = mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.seen = r
		h.seenInfo = request.FromContext(r.Context())
		w.WriteHeader(http.StatusNoContent)
	}))
	return h
}

// do sends a request with "Authorization: Bearer token" (none when token
// is "") and extra headers as name, value pairs.
func (h *harness) do(token string, headers ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("GET", "http://api.example.com/v1/items", nil)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i < len(headers); i += 2 {
		r.Header.Add(headers[i], headers[i+1])
	}
	return h.send(r)
}

func (h *harness) send(r *http.Request) *httptest.ResponseRecorder {
	h.seen, h.seenInfo = nil, nil
	h.lastInfo = &request.Info{ID: "req-1"}
	r = r.WithContext(request.NewContext(r.Context(), h.lastInfo))
	w := httptest.NewRecorder()
	h.handler.ServeHTTP(w, r)
	return w
}

// token signs claims with the RSA key "rsa1".
func (h *harness) token(claims map[string]any) string {
	return sign(h.t, rsaKey, jose.RS256, "rsa1", claims)
}
