package jwt

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"torii/internal/config"
)

// FuzzToken feeds arbitrary tokens through the token path (header
// parsing, JWS parsing, key lookup, signature, claims) and checks that it
// never panics and never accepts a token whose signature the JWKS keys do
// not verify, checked independently of go-jose with crypto/rsa and
// crypto/ecdsa. It calls the verifier directly rather than through
// net/http, so coverage guidance looks at the token code.
//
//	go test ./internal/middleware/jwt -run '^$' -fuzz FuzzToken -fuzztime 30s -fuzzminimizetime 100x
//
// (Without -fuzzminimizetime, Go spends up to a minute minimizing each new
// interesting input, which shows as "0/sec" in the progress lines.)
func FuzzToken(f *testing.F) {
	h := newHarness(f, func(c *config.JWT) { c.Algorithms = []string{"RS256", "ES256", "PS256"} })
	now := h.clock.Now()
	claims, _ := json.Marshal(claimsAt(now))
	good := h.token(claimsAt(now))
	parts := strings.Split(good, ".")

	// Valid tokens, so mutations start from the accepting path.
	f.Add(good)
	f.Add(sign(f, ecKey, jose.ES256, "ec1", claimsAt(now)))
	f.Add(sign(f, ecKey, jose.ES256, "", claimsAt(now)))
	// Forms that must be refused: alg none, HMAC keyed with the public
	// key, a JWE, the JSON serialization, missing and extra parts.
	f.Add(b64(`{"alg":"none"}`) + "." + b64(string(claims)) + ".")
	f.Add(hmacToken(`{"alg":"HS256","kid":"rsa1"}`, string(claims), []byte("secret")))
	f.Add("eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d")
	f.Add(`{"payload":"e30","signatures":[{"protected":"e30","signature":""}]}`)
	f.Add(parts[0] + "." + parts[1])
	f.Add(good + ".")
	// Header edge cases: kid of the wrong key type, embedded jwk, crit,
	// b64, non-string values.
	f.Add(b64(`{"alg":"ES256","kid":"rsa1"}`) + "." + parts[1] + "." + parts[2])
	f.Add(b64(`{"alg":"RS256","jwk":{"kty":"oct","k":"c2VjcmV0"}}`) + "." + parts[1] + "." + parts[2])
	f.Add(b64(`{"alg":"RS256","kid":"rsa1","crit":["b64"],"b64":false}`) + "." + parts[1] + "." + parts[2])
	f.Add(b64(`{"alg":["RS256"],"kid":7}`) + "." + parts[1] + "." + parts[2])
	// Claims edge cases under a bad signature: huge, negative and
	// fractional dates, null, nested objects.
	f.Add(parts[0] + "." + b64(`{"iss":"`+issuer+`","exp":1e309,"aud":"api"}`) + "." + parts[2])
	f.Add(parts[0] + "." + b64(`{"exp":-1,"nbf":null,"aud":[{}]}`) + "." + parts[2])
	f.Add(parts[0] + "." + b64(`null`) + "." + parts[2])
	// Junk.
	f.Add("")
	f.Add("..")
	f.Add("a.b.c")

	rsaPub, ecPub := &rsaKey.PublicKey, &ecKey.PublicKey
	m := middlewareOf(f, h)
	m.algs = append(m.algs, jose.PS256)
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, token string) {
		// The header path: the token, whatever it is, comes back whole
		// or is refused.
		r := &http.Request{Header: http.Header{"Authorization": {"Bearer " + token}}}
		if got, fail := m.token(r); fail == nil && got != strings.TrimLeft(token, " ") {
			t.Fatalf("token(%q) = %q", token, got)
		}
		e, fail := m.verify(ctx, token, now)
		if fail != nil {
			if fail.status != 401 && fail.status != 403 {
				t.Fatalf("refused with status %d, want 401 or 403: %v", fail.status, fail)
			}
			return
		}
		// Accepted: the signature must verify with a JWKS key, and the
		// claims must be this route's.
		if !signedBy(token, rsaPub, ecPub) {
			t.Fatalf("accepted a token no JWKS key signed: %q", token)
		}
		if e.claims["iss"] != issuer || !now.Before(e.expires) {
			t.Fatalf("accepted claims %v", e.claims)
		}
	})
}

// signedBy reports whether token's signature verifies with one of the keys
// (RFC 7515 §5.2), over the canonical encoding of its decoded parts.
func signedBy(token string, rsaPub *rsa.PublicKey, ecPub *ecdsa.PublicKey) bool {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return false
	}
	var raw [3][]byte
	for i, p := range parts {
		var err error
		if raw[i], err = base64.RawURLEncoding.DecodeString(p); err != nil {
			return false
		}
	}
	var header struct{ Alg string }
	if json.Unmarshal(raw[0], &header) != nil {
		return false
	}
	input := base64.RawURLEncoding.EncodeToString(raw[0]) + "." + base64.RawURLEncoding.EncodeToString(raw[1])
	digest := sha256.Sum256([]byte(input))
	switch header.Alg {
	case "RS256":
		return rsa.VerifyPKCS1v15(rsaPub, crypto.SHA256, digest[:], raw[2]) == nil
	case "PS256":
		return rsa.VerifyPSS(rsaPub, crypto.SHA256, digest[:], raw[2], nil) == nil
	case "ES256":
		if len(raw[2]) != 64 {
			return false
		}
		r, s := new(big.Int).SetBytes(raw[2][:32]), new(big.Int).SetBytes(raw[2][32:])
		return ecdsa.Verify(ecPub, digest[:], r, s)
	}
	return false
}
