package ratelimit

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/netip"
	"net/textproto"
	"strconv"

	"torii/internal/config"
	"torii/internal/request"
)

// Each key starts with a byte saying what kind it is, so that a header or
// claim value can never share a count with a client IP.
const (
	kindClientIP = 'i'
	kindHeader   = 'h'
	kindClaim    = 'c'
)

// maxRedisKey is the longest key (kind byte and value) written into a
// Redis key name as is; a longer one is replaced by its SHA-256, so that a
// client cannot make torii store huge keys.
const maxRedisKey = 64

// keyer extracts a request's rate-limit key.
type keyer struct {
	kind byte
	// name is the canonical header name, or the claim name.
	name string
}

func newKeyer(k config.RateLimitKey) keyer {
	switch {
	case k.Header != "":
		return keyer{kind: kindHeader, name: textproto.CanonicalMIMEHeaderKey(k.Header)}
	case k.Claim != "":
		return keyer{kind: kindClaim, name: k.Claim}
	}
	return keyer{kind: kindClientIP}
}

// appendKey appends r's key to dst:
//
//   - client IP: the address as text; an IPv6 address stands for its /64,
//     which is what one subscriber usually gets (RFC 6177), so that a
//     client cannot dodge the limit by walking its own prefix. IPv4-mapped
//     IPv6 addresses count as IPv4.
//   - header: the header's first value. Requests without it share one key,
//     the empty value.
//   - claim: the verified JWT claim's value, a string, number or boolean
//     as written in the token (other JSON values as Go formats them). A
//     request without the claim (or without verified claims) falls back to
//     its client IP, so anonymous traffic is still limited per client.
func (k keyer) appendKey(dst []byte, r *http.Request) []byte {
	info := request.FromContext(r.Context())
	switch k.kind {
	case kindHeader:
		dst = append(dst, kindHeader)
		if vs := r.Header[k.name]; len(vs) > 0 {
			dst = append(dst, vs[0]...)
		}
		return dst
	case kindClaim:
		if info != nil {
			if v, ok := info.Claims[k.name]; ok && v != nil {
				return appendClaim(append(dst, kindClaim), v)
			}
		}
	}
	return appendClientIP(append(dst, kindClientIP), info, r)
}

func appendClaim(dst []byte, v any) []byte {
	switch v := v.(type) {
	case string:
		return append(dst, v...)
	case float64:
		return strconv.AppendFloat(dst, v, 'g', -1, 64)
	case bool:
		return strconv.AppendBool(dst, v)
	case fmt.Stringer: // json.Number, among others
		return append(dst, v.String()...)
	}
	return fmt.Append(dst, v)
}

func appendClientIP(dst []byte, info *request.Info, r *http.Request) []byte {
	var ip netip.Addr
	if info != nil {
		ip = info.ClientIP
	}
	if !ip.IsValid() {
		// No Info (a handler used outside torii's chain): the peer.
		if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
			ip = ap.Addr()
		}
	}
	if !ip.IsValid() {
		return dst
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.WithZone("").Prefix(64)
		return p.AppendTo(dst)
	}
	return ip.AppendTo(dst)
}

// redisKey returns the Redis key of key under prefix.
func redisKey(prefix string, key []byte) string {
	if len(key) <= maxRedisKey {
		return prefix + string(key)
	}
	sum := sha256.Sum256(key)
	return prefix + string(key[0]) + "#" + hex.EncodeToString(sum[:16])
}
