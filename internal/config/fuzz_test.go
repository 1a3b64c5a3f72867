package config

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// FuzzParse checks that Parse never panics, that every failure is a
// Problems whose entries say where they are, and that a config that parses
// survives a trip through yaml.Marshal unchanged.
func FuzzParse(f *testing.F) {
	seeds := []string{
		// The empty file: every default.
		"",
		// A comment and a bare document marker: still empty.
		"# nothing\n---\n",
		// A complete small config: one upstream, one route with retries.
		"upstreams:\n  app: {endpoints: [\"127.0.0.1:8000\"], health: {path: /healthz}}\n" +
			"routes:\n  - {name: r, match: {path_prefix: /api}, strip_prefix: /api, backends: [{upstream: app}], retries: {attempts: 2}}\n",
		// Every route action and match kind.
		"routes:\n  - {name: a, match: {host: \"*.example.com\", methods: [get], headers: [{name: X-A, regex: \"v[0-9]+\"}]}, redirect: {scheme: https}}\n" +
			"  - {name: b, match: {path_regex: \"/x/(.*)\", query: [{name: q, present: true}]}, direct_response: {status: 204}}\n",
		// Durations with days, zero, and a bare number (an error).
		"shutdown: {grace: 1d12h, drain_delay: 0}\nreload: {watch_interval: 30}\n",
		// Wrong kinds: a list for a map, text for an integer, a map for a string.
		"admin: [x]\nlisten: [{addr: {a: b}, max_header_bytes: big}]\n",
		// Unknown and duplicate keys.
		"routs: []\nadmin: {addr: \"127.0.0.1:1\", addr: \"127.0.0.1:2\"}\n",
		// Anchors, aliases and merge keys, which are rejected.
		"upstreams:\n  a: &x {endpoints: [\"h:1\"]}\n  b: *x\n  c: {<<: *x}\n",
		// Two documents.
		"admin: {}\n---\nadmin: {}\n",
		// A syntax error.
		"listen: [\n",
		// A top level that is not a map.
		"- 1\n- 2\n",
		// Custom and explicit tags.
		"admin: {addr: !!str 127.0.0.1:9901, token: !secret x}\n",
		// Floats: NaN, infinity, and out-of-range integers.
		"access_log: {sample: .inf}\ntracing: {sample: .nan}\nlisten: [{addr: \":1\", max_header_bytes: 99999999999999999999}]\n",
		// Endpoint shorthand next to the long form, and secrets to redact.
		"upstreams: {u: {endpoints: [\"a.internal:80\", {addr: \"b.internal:80\", weight: 5}]}}\n" +
			"admin: {token: t}\ntracing: {endpoint: \"http://u:p@c:4318/v1/traces\", headers: {X-Key: k}}\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "fuzz.yaml")
		if err != nil {
			checkProblems(t, c, err)
			return
		}
		out, err := yaml.Marshal(c)
		if err != nil {
			t.Fatalf("marshal a parsed config: %v", err)
		}
		again, err := Parse(out, "again.yaml")
		if err != nil {
			t.Fatalf("got error parsing the marshalled config:\n%v\n--- marshalled:\n%s", err, out)
		}
		if !sameConfig(c, again) {
			t.Fatalf("got a different config after a marshal round trip:\n%s\nwant\n%s", toJSON(t, again), toJSON(t, c))
		}
		if _, err := json.Marshal(c.Redacted()); err != nil {
			t.Fatalf("marshal the redacted config as JSON: %v", err)
		}
	})
}

// checkProblems checks the failure of Parse: a nil config and a Problems in
// which every problem has a message and either a path or is about the file
// as a whole.
func checkProblems(t *testing.T, c *Config, err error) {
	t.Helper()
	if c != nil {
		t.Errorf("got a config along with an error, want nil")
	}
	var probs Problems
	if !errors.As(err, &probs) || len(probs) == 0 {
		t.Fatalf("got error %T %v, want a non-empty Problems", err, err)
	}
	for _, p := range probs {
		if p.Msg == "" || p.Source != "fuzz.yaml" {
			t.Errorf("got problem %+v, want a message and the source", p)
		}
		if p.Path == "" && !fileLevel(p) {
			t.Errorf("got problem %q without a path, want a path", p.Msg)
		}
	}
}

// fileLevel reports whether p is about the file as a whole, so has no path.
func fileLevel(p Problem) bool {
	for _, prefix := range []string{"invalid yaml", "multiple yaml documents", "the top level"} {
		if strings.HasPrefix(p.Msg, prefix) {
			return true
		}
	}
	return false
}
