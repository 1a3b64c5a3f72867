package app

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

const e2eIssuer = "https://authority.e2e.test"

// e2eAuthority is an RSA signing key and a real JWKS endpoint serving its
// public half.
type e2eAuthority struct {
	key  *rsa.PrivateKey
	kid  string
	jwks *httptest.Server
}

var (
	e2eRSAOnce sync.Once
	e2eRSAKeys [2]*rsa.PrivateKey
)

// e2eRSA returns two RSA keys, generated once per test binary (RSA
// generation is slow under -race).
func e2eRSA(t *testing.T) [2]*rsa.PrivateKey {
	t.Helper()
	e2eRSAOnce.Do(func() {
		for i := range e2eRSAKeys {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			e2eRSAKeys[i] = k
		}
	})
	return e2eRSAKeys
}

func newE2EAuthority(t *testing.T) *e2eAuthority {
	t.Helper()
	a := &e2eAuthority{key: e2eRSA(t)[0], kid: "e2e-1"}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: a.key.Public(), KeyID: a.kid, Algorithm: "RS256", Use: "sig"}}}
	body, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	a.jwks = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Write(body)
	}))
	t.Cleanup(a.jwks.Close)
	return a
}

// token signs claims with key (RS256, the authority's kid); claims get
// iss, aud and a 1h exp unless they set their own ("-" deletes one).
func (a *e2eAuthority) token(t *testing.T, key *rsa.PrivateKey, claims map[string]any) string {
	t.Helper()
	full := map[string]any{"iss": e2eIssuer, "aud": "api", "exp": time.Now().Add(time.Hour).Unix()}
	for k, v := range claims {
		if v == "-" {
			delete(full, k)
			continue
		}
		full[k] = v
	}
	payload, err := json.Marshal(full)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: a.kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// unsigned returns an alg "none" token carrying claims.
func unsignedToken(t *testing.T, claims map[string]any) string {
	t.Helper()
	enc := base64.RawURLEncoding
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	return enc.EncodeToString([]byte(`{"alg":"none","typ":"JWT","kid":"e2e-1"}`)) + "." + enc.EncodeToString(payload) + "."
}

// TestE2EJWT is acceptance point 2 through the whole app: a real JWKS
// endpoint, a route with auth.jwt forwarding to an echo upstream. Valid
// tokens pass with their claims as headers (client copies replaced);
// missing, expired and otherwise bad tokens get 401 with WWW-Authenticate
// and never reach the upstream; a rate limit keyed on the sub claim
// limits each user on its own.
func TestE2EJWT(t *testing.T) {
	auth := newE2EAuthority(t)
	up := newE2EEcho(t)
	ta := startApp(t, testListeners+fmt.Sprintf(`
upstreams:
  app: {endpoints: [%q]}
routes:
  - name: api
    match: {path_prefix: /api}
    backends: [{upstream: app}]
    auth:
      jwt:
        issuer: %q
        audiences: [api]
        jwks: %q
        claims_to_headers: {sub: X-User-Id, tenant: X-Tenant}
  - name: limited
    match: {path_prefix: /limited}
    backends: [{upstream: app}]
    auth:
      jwt: {issuer: %q, audiences: [api], jwks: %q}
    rate_limit: {requests: 1, period: 1m, burst: 3, key: {claim: sub}}
`, up.addr(), e2eIssuer, auth.jwks.URL, e2eIssuer, auth.jwks.URL))

	keys := e2eRSA(t)
	do := func(t *testing.T, path, authz string, h map[string]string) *http.Response {
		t.Helper()
		req, err := http.NewRequest("GET", ta.base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}

	t.Run("valid token passes claims upstream", func(t *testing.T) {
		tok := auth.token(t, keys[0], map[string]any{"sub": "alice", "tenant": "acme"})
		before := up.hits.Load()
		resp := do(t, "/api/items", "Bearer "+tok, map[string]string{"X-User-Id": "mallory", "X-Tenant": "evil"})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status: got %d, want 200", resp.StatusCode)
		}
		if got := up.hits.Load() - before; got != 1 {
			t.Fatalf("upstream requests: got %d, want 1", got)
		}
		seen := up.last.Load().Header
		for name, want := range map[string]string{"X-User-Id": "alice", "X-Tenant": "acme"} {
			if got := seen.Values(name); len(got) != 1 || got[0] != want {
				t.Errorf("upstream %s: got %q, want [%q] (the client's spoofed copy replaced)", name, got, want)
			}
		}
		// A repeat is served from the verified-token cache, same result.
		resp = do(t, "/api/items", "Bearer "+tok, map[string]string{"X-User-Id": "mallory"})
		if resp.StatusCode != http.StatusOK || up.last.Load().Header.Get("X-User-Id") != "alice" {
			t.Errorf("cached token: got %d with X-User-Id %q, want 200 with %q", resp.StatusCode, up.last.Load().Header.Get("X-User-Id"), "alice")
		}
	})

	t.Run("claim missing sets no header", func(t *testing.T) {
		tok := auth.token(t, keys[0], map[string]any{"sub": "bob"})
		resp := do(t, "/api/x", "Bearer "+tok, map[string]string{"X-Tenant": "evil"})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status: got %d, want 200", resp.StatusCode)
		}
		if got := up.last.Load().Header.Values("X-Tenant"); len(got) != 0 {
			t.Errorf("upstream X-Tenant without a tenant claim: got %q, want none (the client's copy removed)", got)
		}
	})

	now := time.Now()
	refused := []struct {
		name  string
		authz string
		want  string // in WWW-Authenticate
	}{
		{"missing", "", `Bearer realm="torii"`},
		{"basic scheme", "Basic YTpi", `Bearer realm="torii"`},
		{"expired", "Bearer " + auth.token(t, keys[0], map[string]any{"sub": "alice", "exp": now.Add(-time.Hour).Unix()}), `error="invalid_token"`},
		{"not yet valid", "Bearer " + auth.token(t, keys[0], map[string]any{"sub": "alice", "nbf": now.Add(time.Hour).Unix()}), `error="invalid_token"`},
		{"no exp", "Bearer " + auth.token(t, keys[0], map[string]any{"sub": "alice", "exp": "-"}), `error="invalid_token"`},
		{"wrong issuer", "Bearer " + auth.token(t, keys[0], map[string]any{"sub": "alice", "iss": "https://evil.test"}), `error="invalid_token"`},
		{"wrong audience", "Bearer " + auth.token(t, keys[0], map[string]any{"sub": "alice", "aud": "other"}), `error="invalid_token"`},
		{"signed by another key", "Bearer " + auth.token(t, keys[1], map[string]any{"sub": "alice"}), `error="invalid_token"`},
		{"alg none", "Bearer " + unsignedToken(t, map[string]any{"iss": e2eIssuer, "aud": "api", "sub": "alice", "exp": now.Add(time.Hour).Unix()}), `error="invalid_token"`},
		{"malformed", "Bearer not.a.jwt", `error="invalid_token"`},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			before := up.hits.Load()
			resp := do(t, "/api/items", tc.authz, nil)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("status: got %d, want 401", resp.StatusCode)
			}
			if got := resp.Header.Get("WWW-Authenticate"); !strings.Contains(got, tc.want) {
				t.Errorf("WWW-Authenticate: got %q, want it to contain %q", got, tc.want)
			}
			if got := up.hits.Load() - before; got != 0 {
				t.Errorf("upstream requests: got %d, want 0", got)
			}
		})
	}

	t.Run("rate limit per sub claim", func(t *testing.T) {
		// burst 3, then one a minute: each user gets exactly 3 now, and
		// one user's use does not spend another's.
		users := []string{"carol", "dave"}
		toks := map[string]string{}
		for _, u := range users {
			toks[u] = "Bearer " + auth.token(t, keys[0], map[string]any{"sub": u})
		}
		for _, u := range users {
			var got []int
			for i := 0; i < 4; i++ {
				got = append(got, do(t, "/limited", toks[u], nil).StatusCode)
			}
			want := []int{200, 200, 200, 429}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("statuses for %s: got %v, want %v", u, got, want)
			}
		}
		// A different token of a limited user is still that user.
		again := auth.token(t, keys[0], map[string]any{"sub": "carol", "jti": "other"})
		if got := do(t, "/limited", "Bearer "+again, nil).StatusCode; got != http.StatusTooManyRequests {
			t.Errorf("carol with a second token: got %d, want 429", got)
		}
	})
}
