package jwt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// maxTokenBytes caps the token torii will parse. Real tokens are well under
// 4 KiB; the cap keeps a hostile header from costing base64 and JSON work.
const maxTokenBytes = 16 << 10

// Outcomes of a check, the result label of torii_jwt_verifications_total.
const (
	resultOK         = "ok"
	resultCached     = "cached"
	resultMissing    = "missing"
	resultInvalid    = "invalid"
	resultExpired    = "expired"
	resultUnknownKey = "unknown_key"
	resultNoKeys     = "no_keys"
	resultForbidden  = "forbidden"
)

// failure is why a request is refused: the status, the RFC 6750 error
// code and description for WWW-Authenticate, and the metric result.
type failure struct {
	status int
	code   string // "invalid_token", "insufficient_scope", "invalid_request" or "" (no token)
	desc   string // short, safe to show; never contains the token
	result string
	err    error // detail for the log; may be nil
}

func (f *failure) Error() string {
	if f.err != nil {
		return "jwt: " + f.desc + ": " + f.err.Error()
	}
	return "jwt: " + f.desc
}

func invalid(result, desc string, err error) *failure {
	return &failure{status: 401, code: "invalid_token", desc: desc, result: result, err: err}
}

func forbidden(desc string) *failure {
	return &failure{status: 403, code: "insufficient_scope", desc: desc, result: resultForbidden}
}

// verify checks token completely: its form, its signature against the key
// set, and its claims against the route's rules. It returns the entry to
// cache, or why the token is refused.
func (m *middleware) verify(ctx context.Context, token string, now time.Time) (*entry, *failure) {
	if len(token) > maxTokenBytes {
		return nil, invalid(resultInvalid, "token too large", nil)
	}
	// Compact JWS only (RFC 7515 §7.1): three dot-separated parts. Five
	// parts is a JWE (RFC 7516 §7.1), which torii cannot verify; a leading
	// "{" is the JSON serialization, which may carry several signatures.
	switch strings.Count(token, ".") {
	case 2:
	case 4:
		return nil, invalid(resultInvalid, "encrypted tokens are not accepted", nil)
	default:
		return nil, invalid(resultInvalid, "malformed token", nil)
	}
	jws, err := jose.ParseSignedCompact(token, m.algs)
	if err != nil {
		var unexpected *jose.ErrUnexpectedSignatureAlgorithm
		if errors.As(err, &unexpected) {
			return nil, invalid(resultInvalid, "signing algorithm not allowed", err)
		}
		return nil, invalid(resultInvalid, "malformed token", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, invalid(resultInvalid, "malformed token", nil)
	}
	h := jws.Signatures[0].Protected
	// RFC 7515 §4.1.11: a token marking an extension critical must be
	// refused by a verifier that does not understand it, and torii
	// understands none (this also refuses "b64": false, RFC 7797).
	if _, ok := h.ExtraHeaders["crit"]; ok {
		return nil, invalid(resultInvalid, "critical header extensions are not supported", nil)
	}
	if _, ok := h.ExtraHeaders["b64"]; ok {
		return nil, invalid(resultInvalid, "unencoded payloads are not supported", nil)
	}
	// The algorithm comes from the token, but only from the configured
	// list (ParseSignedCompact refused the rest), and the key must be of
	// that algorithm's type: RFC 8725 §2.1 and §3.1. Keys named in the
	// token itself (jwk, jku, x5u) are never used (RFC 8725 §3.10): only
	// keys from the configured JWKS.
	alg := h.Algorithm
	keys, err := m.set.candidates(ctx, h.KeyID, alg, m.refresh, m.minRefresh)
	if err != nil {
		return nil, &failure{status: 503, desc: "signing keys unavailable", result: resultNoKeys, err: err}
	}
	if len(keys) == 0 {
		return nil, invalid(resultUnknownKey, "unknown signing key", fmt.Errorf("no %s key with kid %q", alg, h.KeyID))
	}
	var payload []byte
	var signer *key
	for _, k := range keys {
		if p, err := jws.Verify(k.pub); err == nil {
			payload, signer = p, k
			break
		}
	}
	if signer == nil {
		return nil, invalid(resultInvalid, "bad signature", nil)
	}
	claims, err := parseClaims(payload)
	if err != nil {
		return nil, invalid(resultInvalid, "malformed claims", err)
	}
	exp, f := m.checkClaims(claims, now)
	if f != nil {
		return nil, f
	}
	return &entry{claims: claims, expires: exp, key: signer, values: m.headerValues(claims)}, nil
}

// parseClaims decodes a JWT claims set (RFC 7519 §7.2 step 10): a JSON
// object. Numbers stay json.Number so they reach headers unchanged.
func parseClaims(payload []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var claims map[string]any
	if err := dec.Decode(&claims); err != nil {
		return nil, err
	}
	if claims == nil {
		return nil, errors.New("claims are not a JSON object")
	}
	if dec.More() {
		return nil, errors.New("data after the claims object")
	}
	return claims, nil
}

// checkClaims applies the route's rules to verified claims and returns the
// time the token stops being accepted (exp plus leeway).
func (m *middleware) checkClaims(c map[string]any, now time.Time) (time.Time, *failure) {
	// RFC 7519 §4.1.1: iss is a case-sensitive string.
	if iss, _ := c["iss"].(string); iss != m.issuer {
		return time.Time{}, invalid(resultInvalid, "wrong issuer", fmt.Errorf("iss %q", iss))
	}
	if len(m.audiences) > 0 && !hasAudience(c["aud"], m.audiences) {
		return time.Time{}, invalid(resultInvalid, "wrong audience", nil)
	}
	// exp is required here (RFC 7519 makes it optional; RFC 8725 §3.10
	// wants tokens short-lived) and must be in the future (§4.1.4).
	exp, ok := numericDate(c["exp"])
	if !ok {
		return time.Time{}, invalid(resultInvalid, "missing or malformed exp", nil)
	}
	expires := exp.Add(m.leeway)
	if !now.Before(expires) {
		return time.Time{}, invalid(resultExpired, "token expired", nil)
	}
	// nbf (§4.1.5) and iat (§4.1.6) are optional, but a token from the
	// future is refused.
	for _, name := range [...]string{"nbf", "iat"} {
		v, present := c[name]
		if !present {
			continue
		}
		t, ok := numericDate(v)
		if !ok {
			return time.Time{}, invalid(resultInvalid, "malformed "+name, nil)
		}
		if t.After(now.Add(m.leeway)) {
			if name == "nbf" {
				return time.Time{}, invalid(resultExpired, "token not valid yet", nil)
			}
			return time.Time{}, invalid(resultInvalid, "token issued in the future", nil)
		}
	}
	for _, rc := range m.required {
		if v, _ := c[rc.name].(string); v != rc.value {
			return time.Time{}, forbidden("required claim " + rc.name + " missing or different")
		}
	}
	if len(m.scopes) > 0 {
		have := scopes(c)
		for _, s := range m.scopes {
			if !slices.Contains(have, s) {
				return time.Time{}, forbidden("missing scope " + s)
			}
		}
	}
	return expires, nil
}

// hasAudience reports whether aud, a string or a list of strings (RFC 7519
// §4.1.3), holds one of want.
func hasAudience(aud any, want []string) bool {
	switch a := aud.(type) {
	case string:
		return slices.Contains(want, a)
	case []any:
		for _, v := range a {
			if s, ok := v.(string); ok && slices.Contains(want, s) {
				return true
			}
		}
	}
	return false
}

// numericDate reads a NumericDate (RFC 7519 §2): seconds since the epoch,
// possibly fractional. Values beyond year 9999 are clamped there.
func numericDate(v any) (time.Time, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, false
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return time.Time{}, false
	}
	const maxDate = 253402300799 // 9999-12-31T23:59:59Z
	f = max(min(f, maxDate), -maxDate)
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}

// scopes returns the token's scopes: "scope", a space-separated string
// (RFC 8693 §4.2), and "scp", a list or a string (common in practice).
func scopes(c map[string]any) []string {
	var out []string
	if s, ok := c["scope"].(string); ok {
		out = append(out, strings.Fields(s)...)
	}
	switch scp := c["scp"].(type) {
	case string:
		out = append(out, strings.Fields(scp)...)
	case []any:
		for _, v := range scp {
			if s, ok := v.(string); ok {
				out = append(out, s)
			}
		}
	}
	return out
}

// headerValues computes the claims_to_headers values of claims, aligned
// with m.headers.
func (m *middleware) headerValues(c map[string]any) []string {
	if len(m.headers) == 0 {
		return nil
	}
	values := make([]string, len(m.headers))
	for i, h := range m.headers {
		values[i] = claimValue(c[h.claim])
	}
	return values
}

// claimValue formats a claim for a header: strings as they are, numbers
// and booleans in JSON form, lists of those joined with ",". Objects,
// nulls, missing claims and values a header cannot carry (control
// characters) give "", meaning no header.
func claimValue(v any) string {
	var s string
	switch v := v.(type) {
	case string:
		s = v
	case json.Number:
		s = v.String()
	case bool:
		s = strconv.FormatBool(v)
	case []any:
		parts := make([]string, 0, len(v))
		for _, item := range v {
			p := claimValue(item)
			if _, nested := item.([]any); nested || (p == "" && item != "") {
				return ""
			}
			parts = append(parts, p)
		}
		s = strings.Join(parts, ",")
	default:
		return ""
	}
	if strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }) {
		return ""
	}
	return s
}
