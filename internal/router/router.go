// Package router picks the route that serves a request: it matches the
// host, path, method, headers and query parameters of a request against
// compiled rules, under the fixed priority rule documented in
// docs/routing.md. It knows nothing of config types: internal/runtime turns
// validated config routes into Rules, in the same order.
//
// A Router is immutable once built and safe for concurrent use. Match is on
// the path of every request: it allocates nothing unless a candidate rule
// has query conditions and the query needs unescaping, or the Host header
// needs lower-casing.
package router

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// Rule is one route's match conditions, already validated by
// internal/config. Every condition that is set must hold. The zero Rule
// matches every request.
type Rule struct {
	// Host is "" (any host), an exact host ("api.example.com"), or a
	// wildcard ("*.example.com") matching one or more labels before
	// ".example.com" but not "example.com" itself. Compared after
	// NormalizeHost, so case-insensitively and without port.
	Host string
	// Path matches the whole cleaned path exactly. At most one of Path,
	// PathPrefix and PathRegex is set.
	Path string
	// PathPrefix matches on segment boundaries: "/v1" matches "/v1", "/v1/"
	// and "/v1/x" but not "/v10"; "/" matches every path; a prefix ending
	// in "/", such as "/v1/", matches "/v1/" and below but not "/v1".
	PathPrefix string
	// PathRegex is an RE2 expression that must match the whole cleaned,
	// escaped path; it is anchored at both ends for you.
	PathRegex string
	// Methods lists the accepted methods, compared case-sensitively (RFC
	// 9110 §9.1), so write them upper case. Empty: any method.
	Methods []string
	// Headers are request headers that must all match. Names are
	// case-insensitive.
	Headers []ValueMatch
	// Query are query parameters that must all match. Names are
	// case-sensitive.
	Query []ValueMatch
	// Priority overrides the specificity order: a higher priority is tried
	// first. Default: 0.
	Priority int
}

// ValueMatch matches one named header or query parameter. At most one of
// Value, Regex and Present is set; with none set, the value must be empty.
// A header sent on several lines (or a parameter given several times)
// matches when any one of its values matches; a single header line is one
// value, commas included.
type ValueMatch struct {
	// Name is the header or parameter name. Required.
	Name string
	// Value must equal a value exactly (case-sensitive).
	Value string
	// Regex is an RE2 expression that must match a whole value; it is
	// anchored at both ends for you.
	Regex string
	// Present, when true, only requires the name to be present, with any
	// value (even empty).
	Present bool
}

// Router matches requests against compiled rules. Build it with New.
//
// Routes are indexed in buckets, one per host condition (each exact host,
// each wildcard suffix, and one for the routes without a host) and
// priority. A request visits the buckets of its host (the exact host's,
// then each wildcard suffix's of the host from the longest, then the
// any-host ones), skipping a bucket whose best route cannot beat the match
// found so far. Buckets are not merged per host: that would copy every
// shared route (any-host or wildcard) into every host's bucket, and memory
// would grow with hosts times shared routes; TestIndexIsLinear keeps it so.
type Router struct {
	// routes are the compiled rules sorted by the priority rule; a route's
	// index here is its rank, and a lower rank wins.
	routes []route
	// plain[rank] reports whether the route's host and exact or prefix
	// path are all its conditions, so that finding it in a bucket's list
	// is a match. A compact slice keeps most candidate checks off the
	// routes' cache lines.
	plain []bool
	// exact maps an exact host to its routes.
	exact map[string]tiers
	// wild maps a wildcard suffix (".example.com" for "*.example.com") to
	// its routes.
	wild map[string]tiers
	// wildLens holds the lengths of the keys of wild, to skip lookups.
	wildLens lengthSet
	// wildMin is the lowest rank of a wildcard route; the wildcard walk is
	// skipped when a match ranks before it. len(routes) when none.
	wildMin int32
	// any holds the routes without a host condition.
	any tiers
}

// tiers are the buckets of one host condition, one per priority, highest
// priority first. Splitting by priority keeps the pruning sharp: a route
// with a raised priority does not force every request to search all the
// other routes of its host condition.
type tiers []*bucket

// Kinds of host and path condition, in increasing order of precedence.
const (
	hostAny = iota
	hostWildcard
	hostExact
)

const (
	pathNone = iota
	pathRegex
	pathPrefix
	pathExact
)

// route is a compiled Rule.
type route struct {
	id       int
	priority int
	hostKind int
	pathKind int
	// host is the exact host, or a wildcard's suffix with its leading dot.
	host string
	// path is the exact path or the prefix, cleaned.
	path string
	// pathLen orders routes of one path kind: the length of the prefix or
	// of the regular expression as written.
	pathLen int
	re      *regexp.Regexp
	// reLit is a literal every path matching re starts with.
	reLit   string
	methods []string
	headers []valueMatch
	query   []valueMatch
}

// valueMatch is a compiled ValueMatch.
type valueMatch struct {
	// name is the canonical header key (textproto.CanonicalMIMEHeaderKey),
	// or the query parameter's name as written.
	name    string
	present bool
	value   string
	re      *regexp.Regexp
}

// bucket indexes the routes of one host condition by path. Each list holds
// ranks in increasing order.
type bucket struct {
	// min is the lowest rank in the bucket: once a match ranks before it,
	// the bucket has nothing better to offer.
	min   int32
	exact map[string][]int32
	// prefix maps a path prefix without its trailing slash ("/v1" for both
	// "/v1" and "/v1/", "" for "/") to the routes with that prefix.
	prefix     map[string]prefixRoutes
	prefixLens lengthSet
	// regex holds the regex routes without a literal prefix to index by.
	regex []int32
	none  []int32
}

// prefixRoutes are the routes sharing a prefix key.
type prefixRoutes struct {
	plain []int32 // prefix without trailing slash: matches key and key/...
	slash []int32 // prefix with trailing slash: matches key/... only
	// regex holds regex routes whose literal prefix (every match starts
	// with it) reaches key+"/": they can only match paths with a cut point
	// at key, so they are tried there instead of on every request.
	regex []int32
}

// lengthSet is a set of string lengths; lengths from 256 up are one
// member.
type lengthSet [5]uint64

func (s *lengthSet) add(n int) {
	n = min(n, 256)
	s[n>>6] |= 1 << (n & 63)
}

func (s *lengthSet) has(n int) bool {
	n = min(n, 256)
	return s[n>>6]&(1<<(n&63)) != 0
}

// New compiles rules into a Router. The index of a rule in rules is its id,
// which Match returns. An invalid rule is an error naming its index; every
// invalid rule is reported.
func New(rules []Rule) (*Router, error) {
	if len(rules) > 1<<31-1 {
		return nil, errors.New("build router: too many rules")
	}
	routes := make([]route, 0, len(rules))
	var errs []error
	for i := range rules {
		rt, err := compile(&rules[i])
		if err != nil {
			errs = append(errs, fmt.Errorf("rule %d: %w", i, err))
			continue
		}
		rt.id = i
		routes = append(routes, rt)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	slices.SortFunc(routes, compareRoutes)

	// Group ranks by host condition; ranks are visited in order, so each
	// group is sorted.
	var anyHost []int32
	exactHost := make(map[string][]int32)
	wildHost := make(map[string][]int32)
	r := &Router{
		routes:  routes,
		plain:   make([]bool, len(routes)),
		exact:   make(map[string]tiers),
		wild:    make(map[string]tiers),
		wildMin: int32(len(routes)),
	}
	for rank := range routes {
		rt := &routes[rank]
		r.plain[rank] = rt.re == nil && len(rt.methods) == 0 && len(rt.headers) == 0 && len(rt.query) == 0
		switch rt.hostKind {
		case hostExact:
			exactHost[rt.host] = append(exactHost[rt.host], int32(rank))
		case hostWildcard:
			wildHost[rt.host] = append(wildHost[rt.host], int32(rank))
			r.wildMin = min(r.wildMin, int32(rank))
		default:
			anyHost = append(anyHost, int32(rank))
		}
	}
	for host, ranks := range exactHost {
		r.exact[host] = newTiers(routes, ranks)
	}
	for suffix, ranks := range wildHost {
		r.wild[suffix] = newTiers(routes, ranks)
		r.wildLens.add(len(suffix))
	}
	r.any = newTiers(routes, anyHost)
	return r, nil
}

// newTiers splits sorted ranks into runs of equal priority and indexes
// each run.
func newTiers(routes []route, ranks []int32) tiers {
	var t tiers
	for len(ranks) > 0 {
		n := 1
		for n < len(ranks) && routes[ranks[n]].priority == routes[ranks[0]].priority {
			n++
		}
		t = append(t, newBucket(routes, ranks[:n]))
		ranks = ranks[n:]
	}
	return t
}

// compareRoutes is the priority rule of docs/routing.md: it orders a
// before b when a wins over b.
func compareRoutes(a, b route) int {
	return cmp.Or(
		cmp.Compare(b.priority, a.priority), // higher priority first
		cmp.Compare(b.hostKind, a.hostKind), // exact > wildcard > any
		cmp.Compare(len(b.host), len(a.host)),
		cmp.Compare(b.pathKind, a.pathKind), // exact > prefix > regex > none
		cmp.Compare(b.pathLen, a.pathLen),
		cmp.Compare(min(len(b.methods), 1), min(len(a.methods), 1)),
		cmp.Compare(len(b.headers), len(a.headers)),
		cmp.Compare(len(b.query), len(a.query)),
		cmp.Compare(a.id, b.id), // earlier in the list first
	)
}

// newBucket indexes the routes with the given ranks, which are sorted, so
// every list it builds is sorted too.
func newBucket(routes []route, ranks []int32) *bucket {
	b := &bucket{
		min:    ranks[0],
		exact:  make(map[string][]int32),
		prefix: make(map[string]prefixRoutes),
	}
	for _, rank := range ranks {
		rt := &routes[rank]
		switch rt.pathKind {
		case pathExact:
			b.exact[rt.path] = append(b.exact[rt.path], rank)
		case pathPrefix:
			key, slash := strings.CutSuffix(rt.path, "/")
			p := b.prefix[key]
			if slash {
				p.slash = append(p.slash, rank)
			} else {
				p.plain = append(p.plain, rank)
			}
			b.prefix[key] = p
			b.prefixLens.add(len(key))
		case pathRegex:
			// A path matching the route starts with reLit, so it has a
			// cut point at reLit's last slash (index 0 when it is "/").
			slash := strings.LastIndexByte(rt.reLit, '/')
			if slash < 0 {
				b.regex = append(b.regex, rank)
				break
			}
			key := rt.reLit[:slash]
			p := b.prefix[key]
			p.regex = append(p.regex, rank)
			b.prefix[key] = p
			b.prefixLens.add(len(key))
		default:
			b.none = append(b.none, rank)
		}
	}
	return b
}

// compile validates and compiles one rule; its errors name the field as
// the config spells it.
func compile(rule *Rule) (route, error) {
	rt := route{priority: rule.Priority}
	var errs []error
	switch host := rule.Host; {
	case host == "":
		rt.hostKind = hostAny
	case strings.HasPrefix(host, "*."):
		h, err := ruleHost(host[2:])
		if err == nil && strings.HasPrefix(h, "[") {
			err = errors.New("a wildcard cannot cover an IP literal")
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("host %q: %w", host, err))
		}
		rt.hostKind, rt.host = hostWildcard, "."+h
	default:
		h, err := ruleHost(host)
		if err != nil {
			errs = append(errs, fmt.Errorf("host %q: %w", host, err))
		}
		rt.hostKind, rt.host = hostExact, h
	}

	set := 0
	if rule.Path != "" {
		set++
		p, err := rulePath(rule.Path)
		if err != nil {
			errs = append(errs, fmt.Errorf("path: %w", err))
		}
		rt.pathKind, rt.path, rt.pathLen = pathExact, p, len(p)
	}
	if rule.PathPrefix != "" {
		set++
		p, err := rulePath(rule.PathPrefix)
		if err != nil {
			errs = append(errs, fmt.Errorf("path_prefix: %w", err))
		}
		rt.pathKind, rt.path, rt.pathLen = pathPrefix, p, len(p)
	}
	if rule.PathRegex != "" {
		set++
		re, err := compileAnchored(rule.PathRegex)
		if err != nil {
			errs = append(errs, fmt.Errorf("path_regex: %w", err))
		} else {
			rt.re = re
			rt.reLit, _ = re.LiteralPrefix()
		}
		rt.pathKind, rt.pathLen = pathRegex, len(rule.PathRegex)
	}
	if set > 1 {
		errs = append(errs, errors.New("at most one of path, path_prefix and path_regex may be set"))
	}

	for i, m := range rule.Methods {
		if m == "" {
			errs = append(errs, fmt.Errorf("methods[%d]: empty method", i))
		}
	}
	rt.methods = slices.Clone(rule.Methods)

	for i := range rule.Headers {
		vm, err := compileValueMatch(&rule.Headers[i])
		if err != nil {
			errs = append(errs, fmt.Errorf("headers[%d]: %w", i, err))
		}
		vm.name = textproto.CanonicalMIMEHeaderKey(vm.name)
		rt.headers = append(rt.headers, vm)
	}
	for i := range rule.Query {
		vm, err := compileValueMatch(&rule.Query[i])
		if err != nil {
			errs = append(errs, fmt.Errorf("query[%d]: %w", i, err))
		}
		rt.query = append(rt.query, vm)
	}
	return rt, errors.Join(errs...)
}

// ruleHost normalises a rule's host, which may not carry a port.
func ruleHost(host string) (string, error) {
	if _, hasPort, _, err := cutPort(host); err == nil && hasPort {
		return "", errors.New("a route's host has no port")
	}
	h, err := NormalizeHost(host)
	if err == nil && h == "" {
		err = errors.New("empty host")
	}
	return h, err
}

// CheckRulePath reports why p cannot be a rule's path or path prefix, or
// nil. internal/config calls it so `torii validate` catches what New would
// refuse.
func CheckRulePath(p string) error {
	_, err := rulePath(p)
	return err
}

// rulePath cleans a rule's path or prefix. Differences of encoding alone
// ("%7e" for "~", "é" for "%C3%A9") are normalised silently; dot segments
// or repeated slashes are refused, since "/v1/../" would quietly match far
// more than it says.
func rulePath(p string) (string, error) {
	clean, err := CleanPath(p)
	if err != nil {
		return "", err
	}
	if clean != p {
		enc, _ := normalizeEncoding(p)
		if string(enc) != clean {
			return "", fmt.Errorf("%q has dot segments or repeated slashes; write %q", p, clean)
		}
	}
	return clean, nil
}

// compileAnchored compiles an RE2 expression that must match a whole
// string.
func compileAnchored(expr string) (*regexp.Regexp, error) {
	if _, err := regexp.Compile(expr); err != nil {
		return nil, err // report the error against the expression as written
	}
	return regexp.Compile(`^(?:` + expr + `)$`)
}

func compileValueMatch(m *ValueMatch) (valueMatch, error) {
	vm := valueMatch{name: m.Name, present: m.Present, value: m.Value}
	var errs []error
	if m.Name == "" {
		errs = append(errs, errors.New("name: required"))
	}
	set := 0
	if m.Value != "" {
		set++
	}
	if m.Present {
		set++
	}
	if m.Regex != "" {
		set++
		re, err := compileAnchored(m.Regex)
		if err != nil {
			errs = append(errs, fmt.Errorf("regex: %w", err))
		}
		vm.re = re
	}
	if set > 1 {
		errs = append(errs, errors.New("at most one of value, regex and present may be set"))
	}
	return vm, errors.Join(errs...)
}

// Match returns the id (index in the rules given to New) of the rule that
// wins for req under the priority rule, or -1 when none matches.
//
// Match reads req.Host (any case, with or without port; an invalid host
// matches only rules without a host condition), req.Method, req.Header,
// and, only when a candidate rule has query conditions, req.URL.RawQuery.
// Paths are matched in escaped form, as forwarded: req.URL.EscapedPath(),
// read without allocating when req.URL.RawPath is empty and req.URL.Path
// needs no escaping. The caller must already have cleaned the path with
// CleanPath and stored it in req.URL (Path decoded, RawPath the cleaned
// escaped form, as url.URL documents).
func (r *Router) Match(req *http.Request) int {
	return r.MatchPath(req, escapedPath(req.URL))
}

// MatchPath is Match with the cleaned, escaped path given explicitly; it
// does not read req.URL.Path.
func (r *Router) MatchPath(req *http.Request, path string) int {
	host := requestHost(req.Host)
	best := int32(len(r.routes)) // a rank beyond every route: no match yet
	if t, ok := r.exact[host]; ok {
		best = r.matchTiers(t, best, req, path)
	}
	if best > r.wildMin {
		// Left to right visits the longest suffix first, the best-ranked.
		// A wildcard needs at least one byte before its suffix, hence i >= 1.
		for i := 1; i < len(host); i++ {
			if host[i] != '.' || !r.wildLens.has(len(host)-i) {
				continue
			}
			if t, ok := r.wild[host[i:]]; ok {
				best = r.matchTiers(t, best, req, path)
			}
		}
	}
	best = r.matchTiers(r.any, best, req, path)
	if int(best) == len(r.routes) {
		return -1
	}
	return r.routes[best].id
}

// matchTiers returns the rank of the best route in t that ranks before
// best and matches, or best when none does.
func (r *Router) matchTiers(t tiers, best int32, req *http.Request, path string) int32 {
	for _, b := range t {
		if b.min >= best {
			break // this tier, and every later one, ranks after best
		}
		best = r.matchBucket(b, best, req, path)
	}
	return best
}

// matchBucket returns the rank of the best route in b that ranks before
// best and matches, or best when none does.
func (r *Router) matchBucket(b *bucket, best int32, req *http.Request, path string) int32 {
	if len(b.exact) > 0 {
		if list, ok := b.exact[path]; ok {
			best = r.first(list, best, req, path)
		}
	}
	if len(b.prefix) > 0 {
		// A prefix key k matches at a cut point, where path continues with
		// "/" after k (plain and trailing-slash prefixes, and regexes filed
		// under k), and at the whole path (plain prefixes only). Longest
		// first: with equal priority those win, and best prunes the rest.
		if b.prefixLens.has(len(path)) {
			if p, ok := b.prefix[path]; ok {
				best = r.first(p.plain, best, req, path)
			}
		}
		for i := len(path) - 1; i >= 0; i-- {
			if path[i] != '/' || !b.prefixLens.has(i) {
				continue
			}
			if p, ok := b.prefix[path[:i]]; ok {
				best = r.first(p.plain, best, req, path)
				best = r.first(p.slash, best, req, path)
				best = r.first(p.regex, best, req, path)
			}
		}
	}
	best = r.first(b.regex, best, req, path)
	return r.first(b.none, best, req, path)
}

// escapedPath returns u.EscapedPath(), without calling it in the common
// case where u.Path is its own escaped form.
func escapedPath(u *url.URL) string {
	if u.RawPath == "" && !needsEscape(u.Path) {
		return u.Path
	}
	return u.EscapedPath()
}

// first returns the rank of the first route in list (sorted by rank) that
// ranks before best and matches req, or best when none does. The host and
// any exact or prefix path condition already hold.
func (r *Router) first(list []int32, best int32, req *http.Request, path string) int32 {
	for _, rank := range list {
		if rank >= best {
			break
		}
		if r.plain[rank] || r.routes[rank].matches(req, path) {
			return rank
		}
	}
	return best
}

// matches reports whether the route's method, header, regex path and query
// conditions hold, cheapest first.
func (rt *route) matches(req *http.Request, path string) bool {
	if len(rt.methods) > 0 && !slices.Contains(rt.methods, req.Method) {
		return false
	}
	for i := range rt.headers {
		if !rt.headers[i].matchHeader(req.Header) {
			return false
		}
	}
	if rt.re != nil && (!strings.HasPrefix(path, rt.reLit) || !rt.re.MatchString(path)) {
		return false
	}
	if len(rt.query) > 0 {
		raw := ""
		if req.URL != nil {
			raw = req.URL.RawQuery
		}
		for i := range rt.query {
			if !rt.query[i].matchQuery(raw) {
				return false
			}
		}
	}
	return true
}

// matchValue reports whether one value satisfies m.
func (m *valueMatch) matchValue(v string) bool {
	switch {
	case m.present:
		return true
	case m.re != nil:
		return m.re.MatchString(v)
	default:
		return v == m.value
	}
}

// matchHeader reports whether any value of the header satisfies m.
func (m *valueMatch) matchHeader(h http.Header) bool {
	for _, v := range h[m.name] {
		if m.matchValue(v) {
			return true
		}
	}
	return false
}

// matchQuery reports whether any value of the parameter in the raw query
// satisfies m. It reads the query as url.ParseQuery does (pairs split on
// "&"; a pair holding ";" or a bad escape is ignored), without allocating
// unless a name or value needs unescaping.
func (m *valueMatch) matchQuery(raw string) bool {
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		if pair == "" || strings.IndexByte(pair, ';') >= 0 {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		k, ok := unescapeQuery(k)
		if !ok || k != m.name {
			continue
		}
		if v, ok = unescapeQuery(v); ok && m.matchValue(v) {
			return true
		}
	}
	return false
}

// unescapeQuery decodes a query component ("+" is a space), allocating only
// when there is something to decode.
func unescapeQuery(s string) (string, bool) {
	if strings.IndexByte(s, '%') < 0 && strings.IndexByte(s, '+') < 0 {
		return s, true
	}
	u, err := url.QueryUnescape(s)
	return u, err == nil
}
