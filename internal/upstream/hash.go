package upstream

import (
	"fmt"
	"math"
	"net/http"
	"strings"

	"torii/internal/config"
)

// hashBalancer is consistent hashing by weighted rendezvous (highest random
// weight) hashing: each usable endpoint scores ln(u)/weight, where u in
// (0, 1) is a hash of the key and the endpoint's address, and the highest
// score wins. An endpoint gets keys in proportion to its weight; adding or
// removing one endpoint moves only the keys it wins or loses (about 1/n);
// and when the first choice cannot be used the next-highest score takes
// over, the same one for every request with that key. A request without
// the key falls back to smooth weighted round robin.
type hashBalancer struct {
	header   string // canonical header name, or ""
	cookie   string // cookie name, or ""
	clientIP bool
}

func newHashBalancer(k config.HashKey) (hashBalancer, error) {
	h := hashBalancer{cookie: k.Cookie, clientIP: k.ClientIP}
	if k.Header != "" {
		h.header = http.CanonicalHeaderKey(k.Header)
	}
	if h.header == "" && h.cookie == "" && !h.clientIP {
		return h, fmt.Errorf("balance hash: the hash key needs a header, a cookie or client_ip")
	}
	return h, nil
}

func (h hashBalancer) pick(s *endpointSet, a pickArgs) *Endpoint {
	key, ok := h.key(a)
	if !ok {
		return s.rr.next(s.eps, a)
	}
	var best *Endpoint
	bestScore := math.Inf(-1)
	for _, e := range s.eps {
		if !a.usable(e) {
			continue
		}
		score := math.Log(unitFloat(mix64(key^e.hash))) / float64(e.weight)
		if best == nil || score > bestScore {
			best, bestScore = e, score
		}
	}
	return best
}

// key returns the hash of the request's key and whether it has one.
func (h hashBalancer) key(a pickArgs) (uint64, bool) {
	switch {
	case h.clientIP:
		if !a.clientIP.IsValid() {
			return 0, false
		}
		b := a.clientIP.Unmap().As16()
		return hashBytes(b[:]), true
	case a.req == nil:
		return 0, false
	case h.header != "":
		if v := a.req.Header[h.header]; len(v) > 0 && v[0] != "" {
			return hashString(v[0]), true
		}
	case h.cookie != "":
		if v := cookieValue(a.req.Header, h.cookie); v != "" {
			return hashString(v), true
		}
	}
	return 0, false
}

// cookieValue returns the value of the first cookie called name in the
// Cookie headers, without allocating (http.Request.Cookie parses them all).
func cookieValue(hdr http.Header, name string) string {
	for _, line := range hdr["Cookie"] {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
			if !ok || k != name {
				continue
			}
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			return v
		}
	}
	return ""
}

// FNV-1a, 64 bit.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func hashString(s string) uint64 {
	h := uint64(fnvOffset)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

func hashBytes(b []byte) uint64 {
	h := uint64(fnvOffset)
	for _, c := range b {
		h ^= uint64(c)
		h *= fnvPrime
	}
	return h
}

// mix64 is the SplitMix64 finaliser: it spreads every input bit over the
// output, so key^endpoint hashes become independent-looking scores.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// unitFloat maps x to (0, 1), never 0, so its logarithm is finite.
func unitFloat(x uint64) float64 {
	return (float64(x>>11) + 0.5) / (1 << 53)
}
