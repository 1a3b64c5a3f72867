package demo

import (
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Audience is the "aud" claim of the Authority's tokens; the demo's
// routes accept no other.
const Audience = "torii-demo"

// tokenTTL is how long an issued token is valid.
const tokenTTL = time.Hour

// Authority issues RS256 JWTs, as an identity provider would, and serves
// its public key as a JWKS (RFC 7517) for torii to verify them:
//
//	POST /token                   sub=alice (form) or {"sub": "alice"} -> {"access_token": ..., "token_type": "Bearer", "expires_in": 3600}
//	GET  /.well-known/jwks.json   the public key
//
// It trusts whoever asks: it is the demo's stand-in, not a login.
type Authority struct {
	issuer string
	signer jose.Signer
	jwks   []byte
	now    func() time.Time
}

// NewAuthority returns an Authority that signs with key under the key id
// kid and names itself issuer (its URL) in the "iss" claim.
func NewAuthority(issuer string, key *rsa.PrivateKey, kid string) (*Authority, error) {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, fmt.Errorf("authority: create signer: %w", err)
	}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: kid, Algorithm: "RS256", Use: "sig"}}}
	jwks, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("authority: encode jwks: %w", err)
	}
	return &Authority{issuer: issuer, signer: signer, jwks: jwks, now: time.Now}, nil
}

// Issuer returns the "iss" claim of the Authority's tokens.
func (a *Authority) Issuer() string { return a.issuer }

// JWKSURL returns the URL of the Authority's key set.
func (a *Authority) JWKSURL() string { return a.issuer + "/.well-known/jwks.json" }

// Token returns a signed token for sub and when it expires.
func (a *Authority) Token(sub string) (string, time.Time, error) {
	now := a.now()
	exp := now.Add(tokenTTL)
	payload, err := json.Marshal(map[string]any{
		"iss": a.issuer, "aud": Audience, "sub": sub,
		"iat": now.Unix(), "exp": exp.Unix(),
	})
	if err != nil {
		return "", time.Time{}, err
	}
	jws, err := a.signer.Sign(payload)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign token: %w", err)
	}
	tok, err := jws.CompactSerialize()
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign token: %w", err)
	}
	return tok, exp, nil
}

// ServeHTTP serves /token and /.well-known/jwks.json.
func (a *Authority) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/.well-known/jwks.json":
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Header().Set("Cache-Control", "max-age=300")
		w.Write(a.jwks)
	case "/token":
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "POST a subject: curl -d sub=alice " + a.issuer + "/token"})
			return
		}
		sub, err := subject(w, r)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		tok, exp, err := a.Token(sub)
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		w.Header().Set("Cache-Control", "no-store") // RFC 6749 §5.1
		writeJSON(w, http.StatusOK, map[string]any{
			"access_token": tok,
			"token_type":   "Bearer",
			"expires_in":   int(time.Until(exp).Round(time.Second).Seconds()),
		})
	default:
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "not found; try POST /token or GET /.well-known/jwks.json"})
	}
}

// subject reads the requested subject from a form or JSON body.
func subject(w http.ResponseWriter, r *http.Request) (string, error) {
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	var sub string
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		var body struct {
			Sub string `json:"sub"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			return "", fmt.Errorf("read body: %w", err)
		}
		sub = body.Sub
	} else {
		if err := r.ParseForm(); err != nil {
			return "", fmt.Errorf("read form: %w", err)
		}
		sub = r.PostForm.Get("sub")
	}
	switch {
	case sub == "":
		return "", fmt.Errorf(`sub is required, e.g. sub=alice or {"sub": "alice"}`)
	case len(sub) > 64 || strings.ContainsFunc(sub, func(c rune) bool { return c < 0x21 || c == 0x7f }):
		return "", fmt.Errorf("sub: want at most 64 printable characters without spaces")
	}
	return sub, nil
}
