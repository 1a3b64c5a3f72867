package config

import (
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"torii/internal/router"
)

// maxBackendWeight caps a backend's weight so a route's total cannot
// overflow (the Gateway API uses the same bound).
const maxBackendWeight = 1_000_000

func (v *checker) routes() {
	names := map[string]int{}
	for i := range v.c.Routes {
		p := "routes[" + strconv.Itoa(i) + "]"
		r := &v.c.Routes[i]
		v.routeName(p, r.Name, i, names)
		v.routeAuth(p, r)
		v.sticky(p, r)
		v.routeRateLimit(p, r)
		v.routeLimits(p, r)
		v.routeCache(p, r)
		v.routeCompress(p, r)
		v.routeShadow(p, r)
		v.routeCompare(p, r)
		v.routeRollout(p, r)
		v.action(p, r)
		v.backends(p, r.Backends)
		v.match(p+".match", &r.Match)
		if r.Redirect != nil {
			v.redirect(p+".redirect", r.Redirect)
		}
		if d := r.DirectResponse; d != nil {
			v.between(p+".direct_response.status", d.Status, 200, 599)
		}
		v.stripPrefix(p, r)
		if r.Rewrite != nil {
			v.rewrite(p+".rewrite", r.Rewrite, r.Match.PathPrefix)
		}
		v.headerOps(p+".request_headers", r.RequestHeaders)
		v.headerOps(p+".response_headers", r.ResponseHeaders)
		if r.Timeout == 0 {
			v.addf(p+".timeout", "must be positive, e.g. \"30s\"")
		}
		if r.Timeout > 0 && r.TryTimeout > r.Timeout {
			v.addf(p+".try_timeout", "try_timeout (%s) must not exceed timeout (%s)", r.TryTimeout, r.Timeout)
		}
		v.retries(p+".retries", r.Retries)
	}
}

func (v *checker) routeName(p, name string, i int, names map[string]int) {
	switch j, dup := names[name]; {
	case name == "":
		v.addf(p+".name", "name is required; it names the route in metrics, logs and the API")
	case !validName(name):
		v.addf(p+".name", "invalid route name %q; use letters, digits, '-', '_' and '.'", name)
	case dup:
		v.addf(p+".name", "duplicate route name %q, also routes[%d]; names must be unique", name, j)
	default:
		names[name] = i
	}
}

// action checks that a route does exactly one thing.
func (v *checker) action(p string, r *Route) {
	var set []string
	if len(r.Backends) > 0 {
		set = append(set, "backends")
	}
	if r.Redirect != nil {
		set = append(set, "redirect")
	}
	if r.DirectResponse != nil {
		set = append(set, "direct_response")
	}
	switch len(set) {
	case 0:
		v.addf(p, "the route does nothing; set one of backends, redirect and direct_response")
	case 1:
	default:
		v.addf(p, "set only one of backends, redirect and direct_response; this route sets %s", strings.Join(set, " and "))
	}
}

func (v *checker) backends(p string, bs []Backend) {
	known := slices.Sorted(maps.Keys(v.c.Upstreams))
	total := 0
	for i, b := range bs {
		bp := p + ".backends[" + strconv.Itoa(i) + "]"
		switch _, ok := v.c.Upstreams[b.Upstream]; {
		case b.Upstream == "":
			v.addf(bp+".upstream", "upstream is required; name one of the upstreams")
		case !ok:
			v.addf(bp+".upstream", "unknown upstream %q%s", b.Upstream, upstreamHint(b.Upstream, known))
		}
		w := 1
		if b.Weight != nil {
			w = *b.Weight
		}
		if w < 0 || w > maxBackendWeight {
			v.addf(bp+".weight", "must be between 0 and %d, got %d", maxBackendWeight, w)
			continue
		}
		total += w
	}
	if len(bs) > 0 && total == 0 {
		v.addf(p+".backends", "the weights add up to 0, so no request could be served; give a backend a positive weight")
	}
}

// sticky checks a route's sticky block: one key, and a claim only where a
// JWT is verified.
func (v *checker) sticky(p string, r *Route) {
	st := r.Sticky
	if st == nil {
		return
	}
	n := 0
	for _, set := range []bool{st.Header != "", st.Cookie != "", st.Claim != "", st.ClientIP} {
		if set {
			n++
		}
	}
	if n != 1 {
		v.addf(p+".sticky", "set exactly one of header, cookie, claim and client_ip")
	}
	if st.Header != "" {
		v.headerName(p+".sticky.header", st.Header)
	}
	if st.Claim != "" && (r.Auth == nil || r.Auth.JWT == nil) {
		v.addf(p+".sticky.claim", "a claim key needs auth.jwt on the route, which verifies the claim")
	}
	if len(r.Backends) == 0 {
		v.addf(p+".sticky", "sticky splits need backends")
	}
}

// upstreamHint suggests the closest upstream name, or lists the known ones.
func upstreamHint(got string, known []string) string {
	switch hint := didYouMean(got, known); {
	case hint != "":
		return hint
	case len(known) == 0:
		return "; no upstreams are defined, add it under upstreams"
	case len(known) <= 10:
		return "; known upstreams are " + quoteList(known)
	}
	return ""
}

func (v *checker) match(p string, m *Match) {
	if msg := checkRouteHost(m.Host); msg != "" {
		v.addf(p+".host", "%s", msg)
	}
	if count(m.Path != "", m.PathPrefix != "", m.PathRegex != "") > 1 {
		v.addf(p, "set at most one of path, path_prefix and path_regex")
	}
	v.matchPath(p+".path", m.Path)
	v.matchPath(p+".path_prefix", m.PathPrefix)
	if m.PathRegex != "" {
		v.regex(p+".path_regex", m.PathRegex)
	}
	for i, method := range m.Methods {
		if !isToken(method) {
			v.addf(p+".methods["+strconv.Itoa(i)+"]", "invalid method %q; want a token such as GET or POST", method)
		}
	}
	for i, h := range m.Headers {
		v.valueMatch(p+".headers["+strconv.Itoa(i)+"]", h, true)
	}
	for i, q := range m.Query {
		v.valueMatch(p+".query["+strconv.Itoa(i)+"]", q, false)
	}
}

// checkRouteHost checks a match host: "", a host name, or "*." followed by
// a host name. It expects the host already lower-cased.
func checkRouteHost(h string) string {
	name := strings.TrimPrefix(h, "*.")
	switch {
	case h == "" || isIP(h):
		return ""
	case h == "*":
		return "host \"*\" would match every host; leave host empty instead"
	case strings.Contains(name, "*"):
		return "a wildcard is only allowed as the whole first label, e.g. \"*.example.com\""
	case strings.Contains(h, ":"):
		return "host must not include a port; hosts are matched without their port"
	case strings.HasSuffix(h, "."):
		return "host must not end with \".\"; remove the trailing dot"
	case !validHostname(name):
		return "invalid host " + strconv.Quote(h) + "; want a host name such as \"api.example.com\" or a wildcard such as \"*.example.com\""
	}
	return ""
}

// isIP reports whether s is an IP address, IPv6 optionally in brackets.
func isIP(s string) bool {
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		s = s[1 : len(s)-1]
	}
	_, err := netip.ParseAddr(s)
	return err == nil
}

func (v *checker) absPath(path, s string) {
	if s == "" {
		return
	}
	if !strings.HasPrefix(s, "/") {
		v.addf(path, "must start with \"/\", got %q", s)
	} else if hasControl(s) {
		v.addf(path, "must not contain control characters")
	}
}

// matchPath checks a match path or prefix as absPath does, then as the
// router will compile it, so `torii validate` catches what a reload would
// refuse.
func (v *checker) matchPath(path, s string) {
	before := len(v.probs)
	v.absPath(path, s)
	if s == "" || len(v.probs) > before {
		return
	}
	if err := router.CheckRulePath(s); err != nil {
		v.addf(path, "%s", strings.TrimPrefix(err.Error(), router.ErrInvalidPath.Error()+": "))
	}
}

func (v *checker) regex(path, re string) {
	if msg := checkRegex(re); msg != "" {
		v.addf(path, "%s", msg)
	}
}

func (v *checker) valueMatch(p string, m ValueMatch, header bool) {
	switch {
	case m.Name == "":
		v.addf(p+".name", "name is required")
	case header:
		v.headerName(p+".name", m.Name)
	}
	if count(m.Value != "", m.Regex != "", m.Present) != 1 {
		v.addf(p, "set exactly one of value, regex and present: true")
	}
	if m.Regex != "" {
		v.regex(p+".regex", m.Regex)
	}
}

var redirectStatuses = []int{301, 302, 303, 307, 308}

func (v *checker) redirect(p string, r *Redirect) {
	if !slices.Contains(redirectStatuses, r.Status) {
		v.addf(p+".status", "status %d is not a redirect; want 301, 302, 303, 307 or 308", r.Status)
	}
	if r.Scheme != "" && r.Scheme != "http" && r.Scheme != "https" {
		v.addf(p+".scheme", "unknown scheme %q; want http or https", r.Scheme)
	}
	if r.Host != "" && !validHostname(r.Host) && !isIP(r.Host) {
		v.addf(p+".host", "invalid host %q; want a host name without port (set port separately)", r.Host)
	}
	v.between(p+".port", r.Port, 0, 65535)
	v.absPath(p+".path", r.Path)
}

// stripPrefix checks that strip_prefix removes a prefix the route matches,
// ending on a segment boundary.
func (v *checker) stripPrefix(p string, r *Route) {
	sp, mp := r.StripPrefix, r.Match.PathPrefix
	switch {
	case sp == "":
	case !strings.HasPrefix(sp, "/"):
		v.addf(p+".strip_prefix", "must start with \"/\", got %q", sp)
	case mp == "":
		v.addf(p+".strip_prefix", "strip_prefix needs match.path_prefix, so every request it applies to has the prefix")
	case !segmentPrefix(sp, mp):
		v.addf(p+".strip_prefix", "%q is not a prefix of match.path_prefix %q ending at a \"/\"; e.g. \"/api\" fits \"/api/v1\" but not \"/apiv1\"", sp, mp)
	}
}

// segmentPrefix reports whether prefix is a prefix of path that ends on a
// segment boundary.
func segmentPrefix(prefix, path string) bool {
	if !strings.HasPrefix(path, prefix) {
		return false
	}
	return len(path) == len(prefix) || strings.HasSuffix(prefix, "/") || path[len(prefix)] == '/'
}

func (v *checker) rewrite(p string, rw *Rewrite, matchPrefix string) {
	if count(rw.Path != "", rw.Prefix != "", rw.Regex != "") != 1 {
		v.addf(p, "set exactly one of path, prefix and regex")
	}
	v.absPath(p+".path", rw.Path)
	if rw.Prefix != "" {
		v.absPath(p+".prefix", rw.Prefix)
		if matchPrefix == "" {
			v.addf(p+".prefix", "rewrite.prefix replaces the matched match.path_prefix, so the route needs one")
		}
	}
	if rw.Regex != "" {
		v.regex(p+".regex", rw.Regex)
	}
	if rw.Replace != "" && rw.Regex == "" {
		v.addf(p+".replace", "replace is only used with regex; set regex or remove replace")
	}
}

// hopByHop are the headers of one connection (RFC 9110 §7.6.1), which the
// proxy always removes; editing them in config could not work.
var hopByHop = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Te", "Trailer", "Upgrade"}

func (v *checker) headerOps(p string, ops HeaderOps) {
	v.headerMap(p+".set", ops.Set)
	v.headerMap(p+".add", ops.Add)
	for i, name := range ops.Remove {
		v.editableHeader(p+".remove["+strconv.Itoa(i)+"]", name)
	}
}

func (v *checker) headerMap(p string, m map[string]string) {
	canon := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(m)) {
		path := join(p, name)
		if !v.editableHeader(path, name) {
			continue
		}
		if !validHeaderValue(m[name]) {
			v.addf(path, "header value contains a control character")
		}
		c := canonicalHeader(name)
		if first, dup := canon[c]; dup {
			v.addf(path, "header %q is also written as %q; header names ignore case, keep one", name, first)
		}
		canon[c] = name
	}
}

// editableHeader reports whether name may be set, added or removed, and
// reports why not otherwise.
func (v *checker) editableHeader(path, name string) bool {
	if !isToken(name) {
		v.headerName(path, name)
		return false
	}
	c := canonicalHeader(name)
	if slices.Contains(hopByHop, c) {
		v.addf(path, "%q is a hop-by-hop header, which the proxy always removes; it cannot be edited", name)
		return false
	}
	if c == "Host" {
		v.addf(path, "the Host header cannot be edited here; the proxy sends the client's host to the upstream")
		return false
	}
	return true
}

// canonicalHeader is the canonical form of a header name: "x-foo" becomes
// "X-Foo".
func canonicalHeader(name string) string {
	parts := strings.Split(strings.ToLower(name), "-")
	for i, s := range parts {
		if s != "" {
			parts[i] = strings.ToUpper(s[:1]) + s[1:]
		}
	}
	return strings.Join(parts, "-")
}

var retryOns = []string{RetryOnConnectFailure, RetryOnReset, RetryOnTimeout}

func (v *checker) retries(p string, r Retries) {
	if r.Attempts != nil {
		v.between(p+".attempts", *r.Attempts, 0, 10)
	}
	for i, on := range r.On {
		if !slices.Contains(retryOns, on) {
			v.addf(p+".on["+strconv.Itoa(i)+"]", "%s", unknownValue("retry condition", on, retryOns))
		}
	}
	for i, s := range r.Statuses {
		v.between(p+".statuses["+strconv.Itoa(i)+"]", s, 100, 599)
	}
}
