package router

import (
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// naiveRouter is the reference the fast Router is checked against: the
// rules sorted by the documented priority rule, then a linear scan that
// checks every condition in the plainest way (url.ParseQuery,
// http.Header.Values, strings.HasPrefix). It shares no matching code with
// the Router apart from NormalizeHost and CleanPath, which have tests of
// their own.
type naiveRouter struct {
	rules []naiveRule // in priority order
}

type naiveRule struct {
	Rule
	id       int
	host     string // normalised; a wildcard keeps its "*."
	path     string // cleaned Path or PathPrefix
	pathRe   *regexp.Regexp
	headerRe []*regexp.Regexp
	queryRe  []*regexp.Regexp
}

func newNaive(t testing.TB, rules []Rule) *naiveRouter {
	t.Helper()
	anchored := func(expr string) *regexp.Regexp {
		if expr == "" {
			return nil
		}
		return regexp.MustCompile("^(?:" + expr + ")$")
	}
	n := &naiveRouter{}
	for i, r := range rules {
		nr := naiveRule{Rule: r, id: i, pathRe: anchored(r.PathRegex)}
		if h, ok := strings.CutPrefix(r.Host, "*."); ok {
			h, err := NormalizeHost(h)
			if err != nil {
				t.Fatalf("rule %d: %v", i, err)
			}
			nr.host = "*." + h
		} else {
			h, err := NormalizeHost(r.Host)
			if err != nil {
				t.Fatalf("rule %d: %v", i, err)
			}
			nr.host = h
		}
		if p := r.Path + r.PathPrefix; p != "" {
			clean, err := CleanPath(p)
			if err != nil {
				t.Fatalf("rule %d: %v", i, err)
			}
			nr.path = clean
		}
		for _, m := range r.Headers {
			nr.headerRe = append(nr.headerRe, anchored(m.Regex))
		}
		for _, m := range r.Query {
			nr.queryRe = append(nr.queryRe, anchored(m.Regex))
		}
		n.rules = append(n.rules, nr)
	}
	// The priority rule, spelled out as in docs/routing.md.
	key := func(r *naiveRule) []int {
		hostRank, hostLen := 0, 0
		switch {
		case strings.HasPrefix(r.host, "*."):
			hostRank, hostLen = 1, len(r.host)-1 // length of ".example.com"
		case r.host != "":
			hostRank, hostLen = 2, len(r.host)
		}
		pathRank, pathLen := 0, 0
		switch {
		case r.Path != "":
			pathRank, pathLen = 3, len(r.path)
		case r.PathPrefix != "":
			pathRank, pathLen = 2, len(r.path)
		case r.PathRegex != "":
			pathRank, pathLen = 1, len(r.PathRegex)
		}
		hasMethods := 0
		if len(r.Methods) > 0 {
			hasMethods = 1
		}
		// Negated so that ascending order puts the winner first.
		return []int{-r.Priority, -hostRank, -hostLen, -pathRank, -pathLen,
			-hasMethods, -len(r.Headers), -len(r.Query), r.id}
	}
	slices.SortFunc(n.rules, func(a, b naiveRule) int { return slices.Compare(key(&a), key(&b)) })
	return n
}

func (n *naiveRouter) Match(req *http.Request) int {
	host, err := NormalizeHost(req.Host)
	if err != nil {
		host = ""
	}
	query, _ := url.ParseQuery(req.URL.RawQuery) // keeps the good pairs
	for i := range n.rules {
		if n.rules[i].matches(req, host, query) {
			return n.rules[i].id
		}
	}
	return -1
}

func (r *naiveRule) matches(req *http.Request, host string, query url.Values) bool {
	switch {
	case r.host == "":
	case strings.HasPrefix(r.host, "*."):
		suffix := r.host[1:]
		if !(len(host) > len(suffix) && strings.HasSuffix(host, suffix)) {
			return false
		}
	default:
		if host != r.host {
			return false
		}
	}
	p := req.URL.EscapedPath()
	switch {
	case r.Path != "":
		if p != r.path {
			return false
		}
	case r.PathPrefix != "":
		if strings.HasSuffix(r.path, "/") {
			if !strings.HasPrefix(p, r.path) {
				return false
			}
		} else if p != r.path && !strings.HasPrefix(p, r.path+"/") {
			return false
		}
	case r.PathRegex != "":
		if !r.pathRe.MatchString(p) {
			return false
		}
	}
	if len(r.Methods) > 0 && !slices.Contains(r.Methods, req.Method) {
		return false
	}
	for i, m := range r.Headers {
		if !naiveValues(m, r.headerRe[i], req.Header.Values(m.Name)) {
			return false
		}
	}
	for i, m := range r.Query {
		if !naiveValues(m, r.queryRe[i], query[m.Name]) {
			return false
		}
	}
	return true
}

func naiveValues(m ValueMatch, re *regexp.Regexp, values []string) bool {
	if m.Present {
		return len(values) > 0
	}
	for _, v := range values {
		if re != nil && re.MatchString(v) || re == nil && v == m.Value {
			return true
		}
	}
	return false
}
