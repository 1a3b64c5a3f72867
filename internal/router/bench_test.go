package router

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"testing"
)

// realisticMix generates n rules shaped like a real edge's routing table,
// and a fixed set of requests that hit a mix of them and miss. The same
// seed gives the same rules and requests.
//
// The table: 100 exact hosts carry most routes (each host a few dozen to a
// hundred path prefixes under a handful of API versions); 10 wildcard
// tenant domains plus a catch-all "*.example.com"; a few any-host routes
// (health checks, ACME challenges). Paths are mostly prefixes, 10 % exact,
// 5 % regex, 2 % none (host catch-alls); 15 % of rules restrict methods, 5 % need a header,
// 1 % a query parameter, 1 % carry an explicit priority.
func realisticMix(n int, seed uint64) ([]Rule, []*http.Request) {
	rng := rand.New(rand.NewPCG(seed, 0x70_72_69_69))
	hosts := make([]string, 100)
	for i := range hosts {
		hosts[i] = fmt.Sprintf("svc%02d.example.com", i)
	}
	wild := []string{"*.example.com"}
	for i := range 10 {
		wild = append(wild, fmt.Sprintf("*.tenant%d.example.net", i))
	}
	methodSets := [][]string{{"GET", "HEAD"}, {"POST"}, {"PUT", "PATCH"}, {"DELETE"}}

	rules := make([]Rule, n)
	for i := range rules {
		r := &rules[i]
		switch x := rng.IntN(100); {
		case x < 85:
			r.Host = hosts[i%len(hosts)]
		case x < 93:
			r.Host = wild[rng.IntN(len(wild))]
		}
		base := fmt.Sprintf("/api/v%d/res%d", 1+rng.IntN(3), i)
		switch x := rng.IntN(100); {
		case x < 5:
			r.PathRegex = base + `/[0-9]+/(details|history)`
		case x < 15:
			r.Path = base + "/status"
		case x < 17 && r.Host != "":
			// no path condition: the host's catch-all
		case x < 20:
			r.PathPrefix = base + "/"
		default:
			r.PathPrefix = base
		}
		if rng.IntN(100) < 15 {
			r.Methods = methodSets[rng.IntN(len(methodSets))]
		}
		if rng.IntN(100) < 5 {
			switch rng.IntN(3) {
			case 0:
				r.Headers = []ValueMatch{{Name: "X-Canary", Value: "1"}}
			case 1:
				r.Headers = []ValueMatch{{Name: "x-tenant", Regex: "t[0-9]+"}}
			default:
				r.Headers = []ValueMatch{{Name: "Authorization", Present: true}}
			}
		}
		if rng.IntN(100) < 1 {
			r.Query = []ValueMatch{{Name: "debug", Value: "1"}}
		}
		if rng.IntN(100) < 1 {
			r.Priority = 10
		}
	}
	// A few any-host routes every edge has.
	if n >= 10 {
		rules[n-1] = Rule{PathPrefix: "/.well-known/acme-challenge/"}
		rules[n-2] = Rule{Path: "/healthz", Methods: []string{"GET"}}
	}

	reqs := make([]*http.Request, 1000)
	for i := range reqs {
		method, host, path, query := "GET", "", "", ""
		header := http.Header{}
		if rng.IntN(100) < 75 {
			// Aim at a rule; whether it wins depends on its neighbours.
			r := rules[rng.IntN(n)]
			switch {
			case r.Host == "":
				host = hosts[rng.IntN(len(hosts))]
			case r.Host[0] == '*':
				host = fmt.Sprintf("app%d%s", rng.IntN(5), r.Host[1:])
			default:
				host = r.Host
			}
			switch {
			case r.Path != "":
				path = r.Path
			case r.PathPrefix != "":
				path = r.PathPrefix
				if path[len(path)-1] != '/' {
					path += "/"
				}
				path += fmt.Sprintf("%d/items", rng.IntN(1000))
			case r.PathRegex != "":
				path = fmt.Sprintf("/api/v1/res%d/%d/details", rng.IntN(n), rng.IntN(1000))
			default:
				path = "/anything"
			}
			if len(r.Methods) > 0 {
				method = r.Methods[0]
			}
			for _, m := range r.Headers {
				header.Set(m.Name, "t1")
			}
			if len(r.Query) > 0 {
				query = "debug=1"
			}
		} else {
			// Misses: unknown hosts, unknown paths on known hosts.
			if rng.IntN(2) == 0 {
				host = fmt.Sprintf("unknown%d.example.org", rng.IntN(50))
			} else {
				host = hosts[rng.IntN(len(hosts))]
			}
			path = fmt.Sprintf("/nope/v%d/thing%d", rng.IntN(3), rng.IntN(1000))
		}
		switch rng.IntN(10) {
		case 0:
			host += ":8443"
		case 1:
			method = "POST"
		}
		if rng.IntN(4) == 0 {
			query = "page=2&sort=name"
		}
		reqs[i] = &http.Request{
			Method: method,
			Host:   host,
			URL:    &url.URL{Path: path, RawQuery: query},
			Header: header,
		}
	}
	return rules, reqs
}

func BenchmarkMatch(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		b.Run(fmt.Sprintf("routes=%d", n), func(b *testing.B) {
			rules, reqs := realisticMix(n, 1)
			r, err := New(rules)
			if err != nil {
				b.Fatal(err)
			}
			hits := 0
			for _, req := range reqs {
				if r.Match(req) >= 0 {
					hits++
				}
			}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				r.Match(reqs[i%len(reqs)])
			}
			b.ReportMetric(float64(hits)/float64(len(reqs))*100, "%hit")
		})
	}
}

func BenchmarkNew(b *testing.B) {
	rules, _ := realisticMix(10000, 1)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := New(rules); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCleanPath(b *testing.B) {
	for _, bc := range []struct{ name, path string }{
		{"clean", "/api/v1/items/12345/details"},
		{"dot-segments", "/api/v1/../v2/./items//12345/"},
		{"encoded", "/api/v1/items/caf%c3%a9/%7Euser"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := CleanPath(bc.path); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkNormalizeHost(b *testing.B) {
	for _, bc := range []struct{ name, host string }{
		{"lower", "api.example.com"},
		{"port", "api.example.com:8443"},
		{"upper", "API.Example.com"},
		{"ipv6", "[::1]:8080"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				requestHost(bc.host)
			}
		})
	}
}
