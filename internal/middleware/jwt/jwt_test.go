package jwt

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	dto "github.com/prometheus/client_model/go"

	"torii/internal/config"
)

func TestValidTokens(t *testing.T) {
	h := newHarness(t, func(c *config.JWT) { c.Algorithms = []string{"RS256", "ES256", "PS256"} })
	now := h.clock.Now()
	tests := []struct {
		name  string
		token string
	}{
		{"RS256", sign(t, rsaKey, jose.RS256, "rsa1", claimsAt(now))},
		{"ES256", sign(t, ecKey, jose.ES256, "ec1", claimsAt(now))},
		{"aud as a string", h.token(with(claimsAt(now), "aud", "api"))},
		{"no nbf or iat", h.token(with(claimsAt(now), "nbf", nil, "iat", nil))},
		{"exp just past, within leeway", h.token(with(claimsAt(now), "exp", now.Add(-20*time.Second).Unix()))},
		{"nbf just ahead, within leeway", h.token(with(claimsAt(now), "nbf", now.Add(20*time.Second).Unix()))},
		{"fractional exp", h.token(with(claimsAt(now), "exp", float64(now.Unix())+600.5))},
		{"no kid: every fitting key is tried", sign(t, ecKey, jose.ES256, "", claimsAt(now))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := h.do(tt.token)
			if w.Code != http.StatusNoContent {
				t.Fatalf("got status %d (%s), want 204", w.Code, w.Body)
			}
			if got := h.seenInfo.Claims["sub"]; got != "user-42" {
				t.Errorf("got info.Claims[sub] %v, want user-42", got)
			}
			if got := h.seen.Header.Get("Authorization"); got != "Bearer "+tt.token {
				t.Errorf("got upstream Authorization %q, want the client's", got)
			}
		})
	}
	// RS256 with the PS256 key "rsa1" is pinned to RS256 by its JWK alg.
	tok := sign(t, rsaKey, jose.PS256, "rsa1", claimsAt(now))
	if w := h.do(tok); w.Code != http.StatusUnauthorized {
		t.Errorf("PS256 with a key whose JWK alg is RS256: got %d, want 401", w.Code)
	}
}

// hmacToken hand-crafts an HS256 token keyed with secret.
func hmacToken(header, claims string, secret []byte) string {
	input := b64(header) + "." + b64(claims)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(input))
	return input + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func TestRefusedTokens(t *testing.T) {
	h := newHarness(t, nil)
	now := h.clock.Now()
	claims, _ := json.Marshal(claimsAt(now))
	good := h.token(claimsAt(now))
	parts := strings.Split(good, ".")
	// The HMAC/RSA confusion attack: an HS256 token whose secret is the
	// RSA public key, which an attacker can read from the JWKS.
	der, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	jwkJSON, _ := json.Marshal(pub(rsaKey, "rsa1", "RS256"))

	tests := []struct {
		name   string
		token  string
		status int
		desc   string // in WWW-Authenticate
	}{
		{"expired", h.token(with(claimsAt(now), "exp", now.Add(-time.Minute).Unix())), 401, "token expired"},
		{"not yet valid", h.token(with(claimsAt(now), "nbf", now.Add(time.Minute).Unix())), 401, "token not valid yet"},
		{"issued in the future", h.token(with(claimsAt(now), "iat", now.Add(time.Hour).Unix())), 401, "token issued in the future"},
		{"no exp", h.token(with(claimsAt(now), "exp", nil)), 401, "missing or malformed exp"},
		{"exp a string", h.token(with(claimsAt(now), "exp", "tomorrow")), 401, "missing or malformed exp"},
		{"wrong issuer", h.token(with(claimsAt(now), "iss", "https://evil.test")), 401, "wrong issuer"},
		{"issuer case differs", h.token(with(claimsAt(now), "iss", strings.ToUpper(issuer))), 401, "wrong issuer"},
		{"wrong audience", h.token(with(claimsAt(now), "aud", []string{"billing"})), 401, "wrong audience"},
		{"no audience", h.token(with(claimsAt(now), "aud", nil)), 401, "wrong audience"},
		{"alg none", b64(`{"alg":"none","kid":"rsa1"}`) + "." + b64(string(claims)) + ".", 401, "signing algorithm not allowed"},
		{"alg none, no signature part", b64(`{"alg":"none"}`) + "." + b64(string(claims)), 401, "malformed token"},
		{"HS256 keyed with the RSA public key (DER)", hmacToken(`{"alg":"HS256","kid":"rsa1"}`, string(claims), der), 401, "signing algorithm not allowed"},
		{"HS256 keyed with the RSA public JWK", hmacToken(`{"alg":"HS256","kid":"rsa1"}`, string(claims), jwkJSON), 401, "signing algorithm not allowed"},
		{"algorithm not configured", sign(t, rsaKey, jose.RS512, "rsa1", claimsAt(now)), 401, "signing algorithm not allowed"},
		{"ES256 claiming the RSA key's kid", sign(t, ecKey, jose.ES256, "rsa1", claimsAt(now)), 401, "unknown signing key"},
		{"signed by a stranger's key under a known kid", sign(t, strangeEC, jose.ES256, "ec1", claimsAt(now)), 401, "bad signature"},
		{"payload swapped", parts[0] + "." + b64(string(with2(claims, "sub", "admin"))) + "." + parts[2], 401, "bad signature"},
		{"claims not an object", h.token(nil), 401, "malformed claims"},
		{"JWE (five parts)", "a.b.c.d.e", 401, "encrypted tokens are not accepted"},
		{"JSON serialization", `{"payload":"x","signatures":[]}`, 401, "malformed token"},
		{"two parts", parts[0] + "." + parts[1], 401, "malformed token"},
		{"one part", parts[0], 401, "malformed token"},
		{"bad base64 header", "!!!." + parts[1] + "." + parts[2], 401, "malformed token"},
		{"bad base64 signature", parts[0] + "." + parts[1] + ".***", 401, "malformed token"},
		{"header not JSON", b64("not json") + "." + parts[1] + "." + parts[2], 401, "malformed token"},
		{"payload not JSON", parts[0] + "." + b64("{oops") + "." + parts[2], 401, "bad signature"},
		{"huge header", b64(`{"alg":"RS256","x":"`+strings.Repeat("a", 20000)+`"}`) + "." + parts[1] + "." + parts[2], 401, "token too large"},
		{"crit header", signCrit(t, claimsAt(now)), 401, "critical header extensions are not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := h.do(tt.token)
			if w.Code != tt.status {
				t.Fatalf("got status %d (%s), want %d", w.Code, w.Body, tt.status)
			}
			if h.seen != nil {
				t.Errorf("the request reached the upstream, want it stopped")
			}
			want := `Bearer realm="torii", error="invalid_token", error_description="` + tt.desc + `"`
			if got := w.Header().Get("WWW-Authenticate"); got != want {
				t.Errorf("got WWW-Authenticate %q, want %q", got, want)
			}
			if !strings.Contains(w.Body.String(), `"id":"req-1"`) {
				t.Errorf("got body %s, want the JSON error with the request id", w.Body)
			}
		})
	}
}

// with2 re-encodes JSON claims with one claim changed.
func with2(claims []byte, k string, v any) []byte {
	var m map[string]any
	json.Unmarshal(claims, &m)
	m[k] = v
	out, _ := json.Marshal(m)
	return out
}

// signCrit signs a token whose protected header marks an unknown extension
// critical (RFC 7515 §4.1.11).
func signCrit(t *testing.T, claims map[string]any) string {
	opts := (&jose.SignerOptions{}).WithHeader("kid", "rsa1").WithHeader("exp-ext", 1).WithCritical("exp-ext")
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: rsaKey}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := jws.CompactSerialize()
	return tok
}

func TestMissingToken(t *testing.T) {
	h := newHarness(t, nil)
	tests := []struct {
		name   string
		header []string
		status int
		want   string
	}{
		{"no header", nil, 401, `Bearer realm="torii"`},
		{"basic scheme", []string{"Authorization", "Basic dXNlcjpwYXNz"}, 401, `Bearer realm="torii"`},
		{"bearer without token", []string{"Authorization", "Bearer"}, 401, `Bearer realm="torii"`},
		{"bearer, spaces only", []string{"Authorization", "Bearer    "}, 401, `Bearer realm="torii", error="invalid_token", error_description="malformed token"`},
		{"two headers", []string{"Authorization", "Bearer a.b.c", "Authorization", "Bearer d.e.f"}, 400, `Bearer realm="torii", error="invalid_request", error_description="more than one Authorization header"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := h.do("", tt.header...)
			if w.Code != tt.status {
				t.Fatalf("got status %d, want %d", w.Code, tt.status)
			}
			if got := w.Header().Get("WWW-Authenticate"); got != tt.want {
				t.Errorf("got WWW-Authenticate %q, want %q", got, tt.want)
			}
			if got := w.Header().Get("Content-Type"); got != "application/json" {
				t.Errorf("got Content-Type %q, want application/json", got)
			}
		})
	}
	// The scheme is case-insensitive.
	tok := h.token(claimsAt(h.clock.Now()))
	if w := h.do("", "Authorization", "bEaReR "+tok); w.Code != http.StatusNoContent {
		t.Errorf("scheme bEaReR: got %d, want 204", w.Code)
	}
}

func TestExpiresWhileCached(t *testing.T) {
	h := newHarness(t, nil)
	now := h.clock.Now()
	tok := h.token(with(claimsAt(now), "exp", now.Add(time.Minute).Unix()))
	if w := h.do(tok); w.Code != http.StatusNoContent {
		t.Fatalf("first use: got %d, want 204", w.Code)
	}
	h.clock.Advance(80 * time.Second) // within exp + 30s leeway
	if w := h.do(tok); w.Code != http.StatusNoContent {
		t.Fatalf("cached, before exp+leeway: got %d, want 204", w.Code)
	}
	h.clock.Advance(11 * time.Second) // past exp + leeway
	w := h.do(tok)
	if w.Code != http.StatusUnauthorized {
		t.Fatalf("cached, after exp+leeway: got %d, want 401", w.Code)
	}
	if got := w.Header().Get("WWW-Authenticate"); !strings.Contains(got, "token expired") {
		t.Errorf("got WWW-Authenticate %q, want token expired", got)
	}
}

func TestCacheHitSkipsVerification(t *testing.T) {
	h := newHarness(t, nil)
	tok := h.token(claimsAt(h.clock.Now()))
	for range 3 {
		if w := h.do(tok); w.Code != http.StatusNoContent {
			t.Fatalf("got %d, want 204", w.Code)
		}
	}
	if got := counter(t, h.keys, "items", resultCached); got != 2 {
		t.Errorf("got %v cached results, want 2", got)
	}
	if got := counter(t, h.keys, "items", resultOK); got != 1 {
		t.Errorf("got %v full verifications, want 1", got)
	}
}

func TestKeyRotation(t *testing.T) {
	h := newHarness(t, nil)
	now := h.clock.Now()
	if w := h.do(h.token(claimsAt(now))); w.Code != http.StatusNoContent {
		t.Fatalf("old key: got %d, want 204", w.Code)
	}
	// The Authority rotates: it now serves rsa2 (and still rsa1). Without
	// a restart, a token signed with rsa2 triggers one refetch (once
	// jwks_min_refresh has passed since the last fetch).
	h.clock.Advance(config.DefaultJWKSMinRefresh)
	now = h.clock.Now()
	h.jwks.setKeys(pub(rsaKey, "rsa1", "RS256"), pub(rsaKey2, "rsa2", "RS256"))
	tok := sign(t, rsaKey2, jose.RS256, "rsa2", claimsAt(now))
	if w := h.do(tok); w.Code != http.StatusNoContent {
		t.Fatalf("new kid after rotation: got %d (%s), want 204", w.Code, w.Header().Get("WWW-Authenticate"))
	}
	if got := h.jwks.hits.Load(); got != 2 {
		t.Errorf("got %d JWKS fetches, want 2 (first use, then the unknown kid)", got)
	}
}

func TestWithdrawnKeyVoidsCachedTokens(t *testing.T) {
	h := newHarness(t, nil)
	now := h.clock.Now()
	tok := h.token(claimsAt(now))
	if w := h.do(tok); w.Code != http.StatusNoContent {
		t.Fatalf("got %d, want 204", w.Code)
	}
	// rsa1 is withdrawn; the next refresh (after jwks_refresh) drops it,
	// and the cached token with it.
	h.jwks.setKeys(pub(rsaKey2, "rsa2", "RS256"))
	h.clock.Advance(config.DefaultJWKSRefresh)
	// A fresh token, a miss, drives the refresh.
	if w := h.do(sign(t, rsaKey2, jose.RS256, "rsa2", claimsAt(h.clock.Now()))); w.Code != http.StatusNoContent {
		t.Fatalf("rsa2 token: got %d, want 204", w.Code)
	}
	if w := h.do(tok); w.Code != http.StatusUnauthorized {
		t.Errorf("cached token of a withdrawn key: got %d, want 401", w.Code)
	}
}

func TestJWKSDown(t *testing.T) {
	h := newHarness(t, nil)
	if w := h.do(h.token(claimsAt(h.clock.Now()))); w.Code != http.StatusNoContent {
		t.Fatalf("got %d, want 204", w.Code)
	}
	for _, tt := range []struct {
		name string
		down func()
	}{
		{"500", func() { h.jwks.setFail(true) }},
		{"closed", func() { h.jwks.Close() }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.down()
			// Past jwks_refresh the set is stale: the refresh fails and
			// the last good keys keep verifying new (uncached) tokens.
			h.clock.Advance(config.DefaultJWKSRefresh + time.Second)
			before := counter(t, h.keys, "", "error")
			for i := range 3 {
				tok := h.token(with(claimsAt(h.clock.Now()), "jti", tt.name+string(rune('a'+i))))
				if w := h.do(tok); w.Code != http.StatusNoContent {
					t.Fatalf("token %d with the JWKS down: got %d, want 204", i, w.Code)
				}
			}
			if got := counter(t, h.keys, "", "error") - before; got != 1 {
				t.Errorf("got %v failed fetches, want 1 (then rate-limited)", got)
			}
		})
	}
}

func TestNoKeysYet(t *testing.T) {
	h := newHarness(t, nil)
	h.jwks.setFail(true)
	tok := h.token(claimsAt(h.clock.Now()))
	if w := h.do(tok); w.Code != http.StatusServiceUnavailable {
		t.Fatalf("JWKS never reachable: got %d, want 503", w.Code)
	}
	// Recovery is tried again after a second, not after jwks_min_refresh.
	h.jwks.setFail(false)
	if w := h.do(tok); w.Code != http.StatusServiceUnavailable {
		t.Fatalf("retry within a second: got %d, want 503", w.Code)
	}
	h.clock.Advance(time.Second)
	if w := h.do(tok); w.Code != http.StatusNoContent {
		t.Fatalf("JWKS back: got %d, want 204", w.Code)
	}
}

func TestRefetchRateLimit(t *testing.T) {
	h := newHarness(t, nil)
	now := h.clock.Now()
	if w := h.do(h.token(claimsAt(now))); w.Code != http.StatusNoContent {
		t.Fatalf("got %d, want 204", w.Code)
	}
	// A flood of tokens with unknown kids: one refetch per 30s, no more.
	h.clock.Advance(config.DefaultJWKSMinRefresh)
	for i := range 20 {
		tok := sign(t, rsaKey2, jose.RS256, "unknown-"+string(rune('a'+i)), claimsAt(now))
		if w := h.do(tok); w.Code != http.StatusUnauthorized {
			t.Fatalf("unknown kid: got %d, want 401", w.Code)
		}
	}
	if got := h.jwks.hits.Load(); got != 2 {
		t.Errorf("got %d JWKS fetches, want 2", got)
	}
	h.clock.Advance(config.DefaultJWKSMinRefresh)
	h.do(sign(t, rsaKey2, jose.RS256, "unknown-z", claimsAt(now)))
	if got := h.jwks.hits.Load(); got != 3 {
		t.Errorf("after jwks_min_refresh: got %d JWKS fetches, want 3", got)
	}
	if got := counter(t, h.keys, "items", resultUnknownKey); got != 21 {
		t.Errorf("got %v unknown_key results, want 21", got)
	}
}

func TestConcurrentFirstFetchIsShared(t *testing.T) {
	h := newHarness(t, nil)
	tok := h.token(claimsAt(h.clock.Now()))
	handler := h.mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			w := httptest.NewRecorder()
			r := httptest.NewRequest("GET", "/", nil)
			r.Header.Set("Authorization", "Bearer "+tok)
			handler.ServeHTTP(w, r)
			if w.Code != http.StatusNoContent {
				t.Errorf("got %d, want 204", w.Code)
			}
		})
	}
	wg.Wait()
	if got := h.jwks.hits.Load(); got != 1 {
		t.Errorf("got %d JWKS fetches, want 1", got)
	}
}

func TestScopesAndRequiredClaims(t *testing.T) {
	h := newHarness(t, func(c *config.JWT) {
		c.Scopes = []string{"items:read", "items:write"}
		c.RequiredClaims = map[string]string{"tenant": "acme"}
	})
	now := h.clock.Now()
	base := with(claimsAt(now), "tenant", "acme")
	tests := []struct {
		name   string
		claims map[string]any
		status int
	}{
		{"scope string", with(base, "scope", "openid items:write items:read"), 204},
		{"scp list", with(base, "scp", []string{"items:read", "items:write"}), 204},
		{"scp string", with(base, "scp", "items:read items:write"), 204},
		{"split over scope and scp", with(base, "scope", "items:read", "scp", []string{"items:write"}), 204},
		{"one scope missing", with(base, "scope", "items:read"), 403},
		{"no scopes", base, 403},
		{"scope prefix only", with(base, "scope", "items:readwrite items:write"), 403},
		{"required claim different", with(base, "tenant", "globex", "scope", "items:read items:write"), 403},
		{"required claim missing", with(base, "tenant", nil, "scope", "items:read items:write"), 403},
		{"required claim not a string", with(base, "tenant", 7, "scope", "items:read items:write"), 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := h.do(h.token(tt.claims))
			if w.Code != tt.status {
				t.Fatalf("got status %d, want %d", w.Code, tt.status)
			}
			if tt.status == 403 {
				got := w.Header().Get("WWW-Authenticate")
				if !strings.HasPrefix(got, `Bearer realm="torii", error="insufficient_scope"`) || !strings.HasSuffix(got, `scope="items:read items:write"`) {
					t.Errorf("got WWW-Authenticate %q, want insufficient_scope with the scopes", got)
				}
			}
		})
	}
}

func TestClaimsToHeaders(t *testing.T) {
	h := newHarness(t, func(c *config.JWT) {
		c.ClaimsToHeaders = map[string]string{
			"sub": "X-User-Id", "roles": "x-user-roles", "admin": "X-Admin",
			"n": "X-N", "org": "X-Org", "missing": "X-Missing", "evil": "X-Evil",
		}
	})
	now := h.clock.Now()
	tok := h.token(with(claimsAt(now),
		"roles", []string{"reader", "writer"}, "admin", false, "n", 12345678901,
		"org", map[string]any{"id": 1}, "evil", "a\r\nX-Injected: 1"))
	spoof := []string{"X-User-Id", "root", "X-User-Roles", "admin", "x-missing", "spoofed", "X-Org", "spoofed", "X-Evil", "spoofed"}
	for _, cached := range []string{"verified", "cached"} {
		w := h.do(tok, spoof...)
		if w.Code != http.StatusNoContent {
			t.Fatalf("%s: got %d, want 204", cached, w.Code)
		}
		want := map[string][]string{
			"X-User-Id": {"user-42"}, "X-User-Roles": {"reader,writer"}, "X-Admin": {"false"},
			"X-N": {"12345678901"}, "X-Missing": nil, "X-Org": nil, "X-Evil": nil,
		}
		for name, v := range want {
			if got := h.seen.Header[name]; strings.Join(got, "|") != strings.Join(v, "|") {
				t.Errorf("%s: got upstream %s %q, want %q", cached, name, got, v)
			}
		}
	}
	// Spoofed copies are removed even when the request is refused, so no
	// later layer can mistake them for verified claims.
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("X-User-Id", "root")
	h.send(r)
	if got := r.Header.Get("X-User-Id"); got != "" {
		t.Errorf("refused request kept the client's X-User-Id %q, want it removed", got)
	}
}

func TestCookieToken(t *testing.T) {
	h := newHarness(t, func(c *config.JWT) { c.Cookie = "session" })
	tok := h.token(claimsAt(h.clock.Now()))
	r := httptest.NewRequest("GET", "/", nil)
	r.AddCookie(&http.Cookie{Name: "other", Value: "x"})
	r.AddCookie(&http.Cookie{Name: "session", Value: tok})
	if w := h.send(r); w.Code != http.StatusNoContent {
		t.Fatalf("token in cookie: got %d, want 204", w.Code)
	}
	// With a cookie configured, the Authorization header is not read.
	if w := h.do(tok); w.Code != http.StatusUnauthorized {
		t.Errorf("token in header, cookie configured: got %d, want 401", w.Code)
	}
}

func TestCustomHeader(t *testing.T) {
	h := newHarness(t, func(c *config.JWT) { c.Header = "x-api-token" })
	tok := h.token(claimsAt(h.clock.Now()))
	if w := h.do("", "X-Api-Token", "Bearer "+tok); w.Code != http.StatusNoContent {
		t.Fatalf("got %d, want 204", w.Code)
	}
}

func TestNewRefuses(t *testing.T) {
	keys := NewKeys(KeysOptions{})
	base := config.JWT{Issuer: issuer, JWKS: "https://authority.test/jwks.json"}
	tests := []struct {
		name string
		edit func(*config.JWT)
	}{
		{"none", func(c *config.JWT) { c.Algorithms = []string{"none"} }},
		{"HS256", func(c *config.JWT) { c.Algorithms = []string{"RS256", "HS256"} }},
		{"no issuer", func(c *config.JWT) { c.Issuer = "" }},
		{"no jwks", func(c *config.JWT) { c.JWKS = "" }},
		{"header and cookie", func(c *config.JWT) { c.Header, c.Cookie = "Authorization", "s" }},
		{"claim into the token header", func(c *config.JWT) { c.ClaimsToHeaders = map[string]string{"sub": "authorization"} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base
			tt.edit(&cfg)
			if _, err := New("r", &cfg, keys); err == nil {
				t.Errorf("got no error, want New to refuse")
			}
		})
	}
}

func TestClaimsInInfo(t *testing.T) {
	h := newHarness(t, nil)
	tok := h.token(with(claimsAt(h.clock.Now()), "tenant", "acme"))
	h.do(tok)
	info := h.seenInfo
	if info == nil || info.Claims["tenant"] != "acme" {
		t.Fatalf("got info %+v, want Claims with tenant acme", info)
	}
	// A refused request records why, for the access log, and its status.
	w := h.do("garbage")
	if w.Code != 401 {
		t.Fatalf("got %d, want 401", w.Code)
	}
	if h.lastInfo.Err == nil || h.lastInfo.Status != 401 {
		t.Errorf("got info Err %v, Status %d; want the failure and 401", h.lastInfo.Err, h.lastInfo.Status)
	}
	if strings.Contains(h.lastInfo.Err.Error(), "garbage") {
		t.Errorf("got info Err %q, want no token in it", h.lastInfo.Err)
	}
}

// counter reads torii_jwt_verifications_total{route,result}, or with route
// "" torii_jwt_jwks_fetches_total{result}.
func counter(t *testing.T, k *Keys, route, result string) float64 {
	t.Helper()
	c := k.fetches.WithLabelValues(result)
	if route != "" {
		c = k.verifications.WithLabelValues(route, result)
	}
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
