package proxy

import (
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"torii/internal/config"
	"torii/internal/request"
	"torii/internal/upstream"
)

// hopHeaders are the fields that describe one connection, not the message
// (RFC 9110 §7.6.1), so a proxy must not forward them, in either direction.
// Header maps are keyed canonically, so these are in canonical form.
var hopHeaders = []string{
	"Connection",
	"Proxy-Connection", // obsolete, still sent by old clients
	"Keep-Alive",
	"Proxy-Authenticate",  // RFC 9110 §11.7.1: for the proxy, not the origin
	"Proxy-Authorization", // RFC 9110 §11.7.2: ditto; never leak credentials on
	"Te",                  // re-added as "TE: trailers" when the client sent it
	"Trailer",             // re-declared from the trailers actually relayed
	"Transfer-Encoding",
	"Upgrade",        // re-added for a valid upgrade request (never h2c)
	"Http2-Settings", // RFC 9113 §3.1 (RFC 7540 §3.2.1): part of an h2c upgrade
}

// RemoveHopByHop deletes the hop-by-hop fields of h: the fixed list and
// every field named in Connection (RFC 9110 §7.6.1). Anything that sends a
// client's request on (the proxy, shadow traffic) strips them with it.
func RemoveHopByHop(h http.Header) {
	for _, v := range h["Connection"] {
		for name := range strings.SplitSeq(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range hopHeaders {
		delete(h, name)
	}
}

// hasToken reports whether the comma-separated lists in values hold token,
// compared case-insensitively.
func hasToken(values []string, token string) bool {
	for _, v := range values {
		for t := range strings.SplitSeq(v, ",") {
			// A TE element may carry parameters ("trailers;q=1" is not
			// allowed for trailers, but be lenient): compare the name only.
			t, _, _ = strings.Cut(t, ";")
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// outgoingHeader builds the header sent upstream from r's: a copy without
// hop-by-hop fields, with torii's forwarded fields, then the route's ops.
// The forwarded fields are set after the Connection-named fields are gone
// and are computed from r.Header, not the copy, so "Connection:
// X-Forwarded-For" can neither strip them nor the chain they extend.
// upgrade, when not "", is the protocol list of an upgrade request (see
// upgradeProtocols), sent on with "Connection: Upgrade".
//
// The map comes from upstream.NewHeader; upstream.RecycleHeader gives it
// back once nothing can read it.
//
// buf, when it has room, holds the copied values, to save an allocation.
func (h *Handler) outgoingHeader(r *http.Request, info *request.Info, dropExpect bool, upgrade string, buf []string) http.Header {
	out, spare := cloneHeader(r.Header, buf)
	RemoveHopByHop(out)
	if upgrade != "" {
		// RFC 9110 §7.8: Upgrade is hop-by-hop, so the request asks this
		// hop; torii passes the question on, and tunnels if the upstream
		// agrees. Nothing else named in Connection goes with it.
		out["Connection"] = []string{"Upgrade"}
		out["Upgrade"] = []string{upgrade}
	}
	// RFC 9110 §10.1.4: "TE: trailers" says the client accepts trailers;
	// gRPC needs it to reach the upstream.
	if hasToken(r.Header["Te"], "trailers") {
		out["Te"] = []string{"trailers"}
	}
	if dropExpect {
		// The body is already read: there is nothing to wait for.
		delete(out, "Expect")
	}
	setForwarded(out, r, info, &spare)
	h.reqOps.apply(out)
	return out
}

// forwardedFields is how many fields setForwarded may set.
const forwardedFields = 4

// cloneHeader copies h into a map with room for torii's fields, and
// returns with it a values slice for them to share: one allocation for
// the map and one for all values (none when they fit in buf), where
// setting each field would add one and grow the map.
func cloneHeader(h http.Header, buf []string) (http.Header, values) {
	nv := 0
	for _, vv := range h {
		nv += len(vv)
	}
	var sv []string
	if n := nv + forwardedFields; n <= cap(buf) {
		sv = buf[:nv:n]
	} else {
		sv = make([]string, nv, n)
	}
	out := upstream.NewHeader(len(h) + forwardedFields)
	for k, vv := range h {
		if vv == nil {
			out[k] = nil
			continue
		}
		n := copy(sv, vv)
		out[k] = sv[:n:n]
		sv = sv[n:]
	}
	return out, values{spare: sv[len(sv):cap(sv)]}
}

// values hands out one-element value slices from a shared backing array.
type values struct{ spare []string }

// one returns []string{v}, from the spare array while it lasts. The slice
// has capacity one, so an append elsewhere copies rather than overwrite
// a neighbour.
func (vs *values) one(v string) []string {
	if vs == nil || len(vs.spare) == 0 {
		return []string{v}
	}
	s := vs.spare[:1:1]
	s[0] = v
	vs.spare = vs.spare[1:]
	return s
}

// setForwarded sets X-Forwarded-For, -Proto, -Host and X-Request-Id on out.
// A trusted peer (a proxy in trusted_proxies) has its X-Forwarded-* kept and
// the chain extended with its own address; anyone else's are replaced, and
// their Forwarded (RFC 7239) removed, so an upstream never sees a client's
// claims about itself as torii's.
func setForwarded(out http.Header, r *http.Request, info *request.Info, vs *values) {
	client := info.ClientIP
	if !client.IsValid() {
		client = request.ParsePeer(r.RemoteAddr)
	}
	if info.PeerTrusted {
		peer := request.ParsePeer(r.RemoteAddr)
		if !peer.IsValid() {
			peer = client
		}
		chain := peer.String()
		if prior := r.Header["X-Forwarded-For"]; len(prior) > 0 {
			chain = strings.Join(prior, ", ") + ", " + chain
		}
		out["X-Forwarded-For"] = vs.one(chain)
		keepOrSet(out, r.Header, "X-Forwarded-Proto", scheme(r, info), vs)
		keepOrSet(out, r.Header, "X-Forwarded-Host", r.Host, vs)
		if v := r.Header["Forwarded"]; len(v) > 0 {
			out["Forwarded"] = v
		}
	} else {
		if client.IsValid() {
			out["X-Forwarded-For"] = vs.one(addrString(client, r.RemoteAddr))
		} else {
			delete(out, "X-Forwarded-For")
		}
		out["X-Forwarded-Proto"] = vs.one(scheme(r, info))
		out["X-Forwarded-Host"] = vs.one(r.Host)
		delete(out, "Forwarded")
	}
	if info.ID != "" {
		out["X-Request-Id"] = vs.one(info.ID)
	} else {
		delete(out, "X-Request-Id")
	}
}

// keepOrSet sets out[name] to the trusted peer's value from in, or to def
// when the peer sent none.
func keepOrSet(out, in http.Header, name, def string, vs *values) {
	if v := in[name]; len(v) > 0 {
		out[name] = v
		return
	}
	out[name] = vs.one(def)
}

// scheme is the scheme the client used, as the front handler recorded it.
func scheme(r *http.Request, info *request.Info) string {
	if info.Scheme != "" {
		return info.Scheme
	}
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

// addrString is a.String(), taken from remote ("ip:port") without an
// allocation when a is the IPv4 address written there.
func addrString(a netip.Addr, remote string) string {
	if a.Is4() {
		if i := strings.LastIndexByte(remote, ':'); i > 0 {
			if h, err := netip.ParseAddr(remote[:i]); err == nil && h == a {
				return remote[:i]
			}
		}
	}
	return a.String()
}

// headerOps is a route's compiled config.HeaderOps: canonical names, in a
// fixed order.
type headerOps struct {
	remove []string
	set    []field
	add    []field
}

type field struct{ name, value string }

// compileHeaderOps checks and canonicalises ops.
func compileHeaderOps(ops config.HeaderOps) (headerOps, error) {
	var c headerOps
	for _, name := range ops.Remove {
		if !validName(name) {
			return c, fmt.Errorf("remove header %q: invalid field name", name)
		}
		c.remove = append(c.remove, http.CanonicalHeaderKey(name))
	}
	fields := func(m map[string]string, op string) ([]field, error) {
		var fs []field
		for name, value := range m {
			if !validName(name) {
				return nil, fmt.Errorf("%s header %q: invalid field name", op, name)
			}
			if strings.ContainsAny(value, "\r\n\x00") {
				return nil, fmt.Errorf("%s header %q: value holds CR, LF or NUL", op, name)
			}
			fs = append(fs, field{http.CanonicalHeaderKey(name), value})
		}
		slices.SortFunc(fs, func(a, b field) int { return strings.Compare(a.name, b.name) })
		return fs, nil
	}
	var err error
	if c.set, err = fields(ops.Set, "set"); err != nil {
		return c, err
	}
	if c.add, err = fields(ops.Add, "add"); err != nil {
		return c, err
	}
	return c, nil
}

// apply edits h: remove, then set, then add.
func (o *headerOps) apply(h http.Header) {
	for _, name := range o.remove {
		delete(h, name)
	}
	for _, f := range o.set {
		h[f.name] = []string{f.value}
	}
	for _, f := range o.add {
		h[f.name] = append(h[f.name], f.value)
	}
}

// validName reports whether s is a field name: a token (RFC 9110 §5.1,
// §5.6.2).
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// upgradeProtocols returns the protocols r asks to switch to (RFC 9110
// §7.8), as a list for the Upgrade field, or "" when r is not an upgrade
// request that torii forwards. That takes HTTP/1.1 (a server ignores
// Upgrade in HTTP/1.0, and HTTP/2 has none: RFC 9113 §8.2.2), "upgrade"
// in Connection, and well-formed protocols, none of them h2c: torii never
// passes on a cleartext HTTP/2 upgrade, which RFC 9113 §3.1 retired.
func upgradeProtocols(r *http.Request) string {
	values := r.Header["Upgrade"]
	if len(values) == 0 || r.ProtoMajor != 1 || r.ProtoMinor < 1 || !hasToken(r.Header["Connection"], "upgrade") {
		return ""
	}
	n := 0
	for _, v := range values {
		for p := range strings.SplitSeq(v, ",") {
			p = strings.TrimSpace(p)
			if p == "" {
				continue
			}
			name, version, versioned := strings.Cut(p, "/")
			if !validName(name) || versioned && !validName(version) || strings.EqualFold(name, "h2c") {
				return ""
			}
			n++
		}
	}
	if n == 0 {
		return ""
	}
	if len(values) == 1 {
		return values[0]
	}
	return strings.Join(values, ", ")
}

// upgradeAccepted reports whether the Upgrade field of a 101 response
// names only protocols the request offered (RFC 9110 §7.8: the server
// switches to one of them).
func upgradeAccepted(offered string, res http.Header) bool {
	values := res["Upgrade"]
	if len(values) == 0 {
		return false
	}
	for _, v := range values {
		for p := range strings.SplitSeq(v, ",") {
			if p = strings.TrimSpace(p); p != "" && !hasToken([]string{offered}, p) {
				return false
			}
		}
	}
	return true
}
