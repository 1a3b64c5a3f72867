package config

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func dur(s string) Duration {
	d, err := ParseDuration(s)
	if err != nil {
		panic(err)
	}
	return d
}

// defaultListener is a listener on addr with every default.
func defaultListener(addr string) Listener {
	return Listener{
		Name:           addr,
		Addr:           addr,
		MaxHeaderBytes: 65536,
		Timeouts:       ListenerTimeouts{ReadHeader: dur("10s"), Read: dur("60s"), Idle: dur("120s")},
		HTTP2:          HTTP2{MaxConcurrentStreams: 100},
		MaxConnections: 10000,
	}
}

// defaultUpstream is an upstream with eps and every default.
func defaultUpstream(eps ...Endpoint) *Upstream {
	return &Upstream{
		Endpoints:      eps,
		Balance:        "round_robin",
		DNSRefresh:     dur("30s"),
		Protocol:       "http1",
		Outlier:        Outlier{ConsecutiveFailures: 5, BaseEjection: dur("30s"), MaxEjection: dur("300s"), MaxEjectedPercent: 50},
		RetryBudget:    RetryBudget{Percent: 20, MinRetries: 3},
		Pool:           ConnPool{MaxIdlePerEndpoint: 64, IdleTimeout: dur("90s")},
		ConnectTimeout: dur("5s"),
	}
}

// defaultConfig is what an empty file parses to.
func defaultConfig() *Config {
	return &Config{
		Listen:    []Listener{defaultListener(":8080")},
		Admin:     Admin{Addr: "127.0.0.1:9901"},
		Paths:     Paths{EncodedSlashes: "reject", Semicolons: "reject"},
		Cache:     CacheStore{MaxBytes: 256 << 20, MaxObjectBytes: 8 << 20},
		Store:     Store{SQLite: "torii.db", FlushInterval: dur("10s"), Retention: dur("35d")},
		AccessLog: AccessLog{Sample: new(1.0), Path: "stdout"},
		Tracing:   Tracing{Sample: new(1.0), ServiceName: "torii"},
		Reload:    Reload{WatchInterval: dur("2s")},
		Shutdown:  Shutdown{DrainDelay: dur("5s"), Grace: dur("30s")},
	}
}

func fullConfig() *Config {
	c := defaultConfig()
	tls := defaultListener("0.0.0.0:8443")
	tls.Name = "tls-edge"
	tls.ProxyProtocol = &ProxyProtocol{Trusted: []string{"10.0.0.0/8", "192.0.2.7"}, Timeout: dur("5s")}
	tls.Timeouts = ListenerTimeouts{ReadHeader: dur("5s"), Read: dur("1m"), Idle: dur("24h")}
	tls.MaxHeaderBytes = 32768
	plain := defaultListener(":8080")
	plain.HTTP2 = HTTP2{H2C: true, MaxConcurrentStreams: 250}
	plain.MaxConnections, plain.MaxRequests = -1, 2000
	c.Listen = []Listener{plain, tls}
	c.Admin = Admin{Addr: "127.0.0.1:9999", Token: "s3cret"}
	c.TrustedProxies = []string{"10.0.0.0/8"}

	mono := defaultUpstream(Endpoint{Addr: "10.0.0.11:8000", Weight: 1}, Endpoint{Addr: "10.0.0.12:8000", Weight: 3})
	mono.Balance = "least_request"
	mono.Health = &HealthCheck{Path: "/healthz", Interval: dur("10s"), Timeout: dur("2s"), HealthyThreshold: 2, UnhealthyThreshold: 3, ExpectStatus: []string{"200-399"}}
	mono.MaxRequests = 500
	listing := defaultUpstream(Endpoint{Addr: "listing.internal:8080", Weight: 1})
	listing.Balance = "hash"
	listing.Hash = &HashKey{Header: "X-User"}
	listing.DNSRefresh = dur("1m")
	listing.Outlier.ConsecutiveFailures, listing.Outlier.MaxEjectedPercent = 3, 30
	listing.RetryBudget = RetryBudget{Percent: 10, MinRetries: 1}
	listing.Pool = ConnPool{MaxIdlePerEndpoint: 8, MaxConnsPerEndpoint: 100, IdleTimeout: dur("30s")}
	listing.ConnectTimeout = dur("1s")
	grpc := defaultUpstream(Endpoint{Addr: "127.0.0.1:9000", Weight: 1})
	grpc.Protocol = "h2c"
	secure := defaultUpstream(Endpoint{Addr: "api.internal:8443", Weight: 1})
	secure.Protocol = "h2"
	secure.TLS = &UpstreamTLS{ServerName: "api.internal"}
	c.Upstreams = map[string]*Upstream{"monolith": mono, "listing": listing, "grpc": grpc, "secure": secure}
	c.Paths = Paths{EncodedSlashes: "keep", Semicolons: "keep"}
	c.Redis = &Redis{Addr: "127.0.0.1:6379", Username: "torii", Password: "r3dis", DB: 2, Timeout: dur("100ms")}
	c.Cache.MaxBytes = 64 << 20

	defaultRetries := Retries{Attempts: new(1), On: []string{"connect_failure", "reset"}}
	defaultLimits := Limits{MaxBodyBytes: 10 << 20}
	c.Routes = []Route{
		{
			Name:     "items",
			Priority: 5,
			Match: Match{
				Host: "api.example.com", PathPrefix: "/v1/items", Methods: []string{"GET", "POST"},
				Headers: []ValueMatch{{Name: "X-Canary", Present: true}},
				Query:   []ValueMatch{{Name: "debug", Value: "1"}},
			},
			Backends:        []Backend{{Upstream: "monolith", Weight: new(90)}, {Upstream: "listing", Weight: new(10)}},
			StripPrefix:     "/v1",
			RequestHeaders:  HeaderOps{Set: map[string]string{"X-Team": "listing"}, Remove: []string{"X-Debug"}},
			ResponseHeaders: HeaderOps{Add: map[string]string{"Cache-Control": "no-store"}},
			Timeout:         dur("3s"),
			TryTimeout:      dur("1s"),
			Retries:         Retries{Attempts: new(2), On: []string{"connect_failure", "timeout"}, Statuses: []int{502, 503}},
			Limits:          defaultLimits,
			Cache:           &RouteCache{DefaultTTL: dur("30s"), KeyHeaders: []string{"X-Tenant"}},
		},
		{
			Name:     "old-home",
			Match:    Match{Host: "*.example.org", Path: "/home"},
			Redirect: &Redirect{Scheme: "https", Host: "www.example.com", Status: 301},
			Limits:   defaultLimits,
			Timeout:  dur("30s"),
			Retries:  defaultRetries,
		},
		{
			Name:           "gone",
			Match:          Match{PathRegex: "/legacy/.*"},
			DirectResponse: &DirectResponse{Status: 410, Body: "gone", ContentType: "text/plain; charset=utf-8"},
			Limits:         defaultLimits,
			Timeout:        dur("30s"),
			Retries:        defaultRetries,
		},
		{
			Name:  "account",
			Match: Match{PathPrefix: "/account"},
			Auth: &Auth{
				JWT: &JWT{
					Issuer:          "https://authority.internal",
					Audiences:       []string{"account-api", "legacy"},
					JWKS:            "https://authority.internal/jwks.json",
					JWKSRefresh:     dur("5m"),
					JWKSMinRefresh:  dur("10s"),
					Algorithms:      []string{"ES256", "EdDSA"},
					Leeway:          dur("1m"),
					Cookie:          "session",
					RequiredClaims:  map[string]string{"tenant_type": "business"},
					Scopes:          []string{"account:read", "account:write"},
					ClaimsToHeaders: map[string]string{"sub": "X-User-Id", "tenant": "X-Tenant"},
					CacheSize:       500,
				},
				Forward: &ForwardAuth{
					URL:            "http://127.0.0.1:9100/check",
					RequestHeaders: []string{"Authorization", "Cookie"},
					Timeout:        dur("2s"),
				},
			},
			RateLimit: &RateLimit{
				Algorithm: "gcra", Requests: 20, Period: dur("1s"), Burst: 20,
				Key: RateLimitKey{Claim: "sub"}, Scope: "local", OnRedisError: "open",
			},
			Limits:   Limits{MaxBodyBytes: 1 << 20},
			Backends: []Backend{{Upstream: "grpc", Weight: new(1)}},
			Timeout:  dur("30s"),
			Retries:  defaultRetries,
		},
		{
			Name:  "search",
			Match: Match{PathPrefix: "/search"},
			Auth: &Auth{
				JWT: &JWT{
					Issuer:         "https://authority.internal",
					JWKS:           "https://authority.internal/jwks.json",
					JWKSRefresh:    dur("10m"),
					JWKSMinRefresh: dur("30s"),
					Algorithms:     []string{"RS256", "ES256"},
					Leeway:         dur("30s"),
					Header:         "Authorization",
					CacheSize:      10000,
				},
				Forward: &ForwardAuth{
					URL:             "http://127.0.0.1:9100/check",
					RequestHeaders:  []string{"Authorization", "X-Api-Key"},
					ResponseHeaders: []string{"X-Auth-User"},
					Timeout:         dur("500ms"),
				},
			},
			RateLimit: &RateLimit{
				Algorithm: "token_bucket", Requests: 100, Period: dur("1m"), Burst: 10,
				Key: RateLimitKey{Header: "X-Api-Key"}, Scope: "global", OnRedisError: "closed",
			},
			Limits:   Limits{MaxBodyBytes: -1},
			Backends: []Backend{{Upstream: "secure", Weight: new(1)}},
			Timeout:  dur("30s"),
			Retries:  defaultRetries,
		},
	}
	c.AccessLog = AccessLog{Sample: new(0.25), Path: "stderr"}
	c.Tracing.Endpoint = "https://user:pw@collector.internal:4318/v1/traces"
	c.Tracing.Headers = map[string]string{"X-Api-Key": "k3y"}
	c.Reload.Watch = true
	c.Shutdown.DrainDelay = dur("1s")
	return c
}

// TestGoodConfigs parses testdata/*.good.yaml and compares the result,
// defaults included, with the expected Config.
func TestGoodConfigs(t *testing.T) {
	tests := []struct {
		file string
		want *Config
	}{
		{"empty.good.yaml", defaultConfig()},
		{"full.good.yaml", fullConfig()},
	}
	files, _ := filepath.Glob("testdata/*.good.yaml")
	if len(files) != len(tests) {
		t.Errorf("got %d testdata/*.good.yaml files, want %d; add the new ones to this table", len(files), len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := Load(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatalf("got error:\n%v\nwant none", err)
			}
			if got.Source() != filepath.Join("testdata", tt.file) {
				t.Errorf("got source %q, want the path", got.Source())
			}
			if !sameConfig(got, tt.want) {
				t.Errorf("got\n%s\nwant\n%s", toJSON(t, got), toJSON(t, tt.want))
			}
		})
	}
}

// sameConfig compares configs without their line tables and sources.
func sameConfig(a, b *Config) bool {
	x, y := *a, *b
	x.lines, y.lines, x.source, y.source = nil, nil, "", ""
	return reflect.DeepEqual(x, y)
}

func toJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestLine(t *testing.T) {
	c, err := Load("testdata/full.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		want int
	}{
		{"listen", 3},
		{"listen[0].addr", 4},
		{"listen[1]", 5},
		{"listen[1].timeouts.idle", 8},
		{"upstreams.monolith.health", 18},
		{"upstreams.monolith.health.interval", 18},
		{"upstreams.monolith.endpoints[1].weight", 16},
		{"routes[0].backends[1].upstream", 40},
		{"routes[0].retries", 46},
		{"routes[1].timeout", 0}, // a default, not written
		{"nonsense", 0},
	}
	for _, tt := range tests {
		if got := c.Line(tt.path); got != tt.want {
			t.Errorf("Line(%q): got %d, want %d", tt.path, got, tt.want)
		}
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr string // a substring; "" for no error
	}{
		{"250ms", 250 * time.Millisecond, ""},
		{"1h30m", 90 * time.Minute, ""},
		{"0", 0, ""},
		{"30d", 30 * 24 * time.Hour, ""},
		{"1d12h", 36 * time.Hour, ""},
		{"1.5d", 36 * time.Hour, ""},
		{"-5s", -5 * time.Second, ""}, // the decoder rejects negatives, not the parser
		{"30", 0, "has no unit"},
		{"1.5", 0, "has no unit"},
		{"", 0, "empty duration"},
		{"5 s", 0, "invalid duration"},
		{"d", 0, "invalid duration"},
		{"1x", 0, "invalid duration"},
		{"99999999999d", 0, "invalid duration"},
		{"106751d", 106751 * 24 * time.Hour, ""},
		{"106752d", 0, "too long"},
		{"106751d24h", 0, "too long"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseDuration(tt.in)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("got error %v, want %v", err, tt.want)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
			case got.D() != tt.want:
				t.Errorf("got %v, want %v", got.D(), tt.want)
			}
		})
	}
}

func TestDurationJSON(t *testing.T) {
	b, err := json.Marshal(struct{ D Duration }{dur("1m30s")})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"D":"1m30s"}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	var back struct{ D Duration }
	if err := json.Unmarshal([]byte(`{"D":"2d"}`), &back); err != nil {
		t.Fatal(err)
	}
	if got, want := back.D.D(), 48*time.Hour; got != want {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestSuggest(t *testing.T) {
	names := []string{"listing", "monolith", "search-v2", "path_prefix"}
	tests := []struct{ got, want string }{
		{"listng", "listing"},
		{"monolit", "monolith"},
		{"search_v2", "search-v2"},
		{"pathPrefix", "path_prefix"},
		{"LISTING", "listing"},
		{"cart", ""},
		{"ab", ""},
		{"listing", ""}, // an exact match is no suggestion
	}
	for _, tt := range tests {
		if got := suggest(tt.got, names); got != tt.want {
			t.Errorf("suggest(%q): got %q, want %q", tt.got, got, tt.want)
		}
	}
}

func TestCheckRouteHost(t *testing.T) {
	tests := []struct {
		host string
		ok   bool
	}{
		{"", true},
		{"api.example.com", true},
		{"*.example.com", true},
		{"localhost", true},
		{"10.0.0.1", true},
		{"[::1]", true},
		{"*", false},
		{"api.*.com", false},
		{"*api.example.com", false},
		{"*.*.example.com", false},
		{"api.example.com:8080", false},
		{"api..example.com", false},
		{"-api.example.com", false},
		{"api example.com", false},
		{"example.com.", false},
	}
	for _, tt := range tests {
		if msg := checkRouteHost(tt.host); (msg == "") != tt.ok {
			t.Errorf("checkRouteHost(%q): got %q, want ok=%v", tt.host, msg, tt.ok)
		}
	}
}

func TestParseStatusRange(t *testing.T) {
	tests := []struct {
		in     string
		lo, hi int
		ok     bool
	}{
		{"200", 200, 200, true},
		{"200-299", 200, 299, true},
		{"100-599", 100, 599, true},
		{"099", 0, 0, false},
		{"600", 0, 0, false},
		{"300-200", 0, 0, false},
		{"2xx", 0, 0, false},
		{"+200", 0, 0, false},
		{"200-", 0, 0, false},
	}
	for _, tt := range tests {
		lo, hi, ok := ParseStatusRange(tt.in)
		if ok != tt.ok || (ok && (lo != tt.lo || hi != tt.hi)) {
			t.Errorf("ParseStatusRange(%q): got %d, %d, %v, want %d, %d, %v", tt.in, lo, hi, ok, tt.lo, tt.hi, tt.ok)
		}
	}
}

func TestRedacted(t *testing.T) {
	c, err := Load("testdata/full.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r := c.Redacted()
	if got, want := r.Admin.Token, "REDACTED"; got != want {
		t.Errorf("admin token: got %q, want %q", got, want)
	}
	if got, want := r.Tracing.Headers["X-Api-Key"], "REDACTED"; got != want {
		t.Errorf("tracing header: got %q, want %q", got, want)
	}
	if got, want := r.Tracing.Endpoint, "https://user:REDACTED@collector.internal:4318/v1/traces"; got != want {
		t.Errorf("tracing endpoint: got %q, want %q", got, want)
	}
	// The original is untouched, and the copy shares nothing mutable.
	if c.Admin.Token != "s3cret" || c.Tracing.Headers["X-Api-Key"] != "k3y" {
		t.Errorf("got the original changed, want it untouched")
	}
	r.Upstreams["monolith"].Endpoints[0].Addr = "changed"
	*r.Routes[0].Backends[0].Weight = 7
	if c.Upstreams["monolith"].Endpoints[0].Addr == "changed" || *c.Routes[0].Backends[0].Weight == 7 {
		t.Errorf("got the copy sharing memory with the original, want a deep copy")
	}
	if got, want := r.Line("routes[0].name"), c.Line("routes[0].name"); got != want {
		t.Errorf("line: got %d, want %d", got, want)
	}
	b := toJSON(t, c.Redacted())
	for _, secret := range []string{"s3cret", "k3y", ":pw@", "r3dis"} {
		if strings.Contains(b, secret) {
			t.Errorf("got %q in the redacted JSON, want it hidden", secret)
		}
	}
}

func TestRedactedAuthURLs(t *testing.T) {
	c, err := Parse([]byte(`
upstreams:
  app: {endpoints: ["127.0.0.1:9000"]}
routes:
  - name: r
    backends: [{upstream: app}]
    auth:
      jwt: {issuer: "https://authority.internal", jwks: "https://svc:jwks-pw@authority.internal/jwks.json"}
      forward: {url: "http://fwd-key@auth.internal/check"}
`), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b := toJSON(t, c.Redacted())
	for _, secret := range []string{"jwks-pw", "fwd-key"} {
		if strings.Contains(b, secret) {
			t.Errorf("got %q in the redacted JSON, want it hidden", secret)
		}
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"http://collector:4318/v1/traces", "http://collector:4318/v1/traces"},
		{"http://user:pw@collector/v1", "http://user:REDACTED@collector/v1"},
		{"https://apikey@collector/v1", "https://REDACTED@collector/v1"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := redactURL(tt.in); got != tt.want {
			t.Errorf("redactURL(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestJSONNames(t *testing.T) {
	c, err := Parse([]byte("routes: [{name: a, direct_response: {status: 204}}]"), "")
	if err != nil {
		t.Fatal(err)
	}
	b := toJSON(t, c)
	for _, want := range []string{`"read_header": "10s"`, `"max_header_bytes": 65536`, `"direct_response": {`, `"service_name": "torii"`} {
		if !strings.Contains(b, want) {
			t.Errorf("got JSON without %s:\n%s", want, b)
		}
	}
}

// TestValidateInCode checks a Config built in code: ApplyDefaults, then
// Validate, with problems that have paths but no lines.
func TestValidateInCode(t *testing.T) {
	c := &Config{
		Upstreams: map[string]*Upstream{"a": {Endpoints: []Endpoint{{Addr: "10.0.0.1:80"}}}},
		Routes: []Route{
			{Name: "ok", Backends: []Backend{{Upstream: "a"}}},
			{Name: "bad", Backends: []Backend{{Upstream: "b"}}, Timeout: -1},
		},
	}
	c.ApplyDefaults()
	err := c.Validate()
	var probs Problems
	if !errors.As(err, &probs) {
		t.Fatalf("got %v, want Problems", err)
	}
	want := Problems{
		{Path: "routes[1].backends[0].upstream", Msg: `unknown upstream "b"; known upstreams are "a"`},
		{Path: "routes[1].timeout", Msg: "negative duration -1ns; durations must be zero or more"},
	}
	if !reflect.DeepEqual(probs, want) {
		t.Errorf("got\n%v\nwant\n%v", probs, want)
	}
	c.Routes = c.Routes[:1]
	if err := c.Validate(); err != nil {
		t.Errorf("got %v, want nil", err)
	}
}

func TestProblemFormat(t *testing.T) {
	tests := []struct {
		p    Problem
		want string
	}{
		{Problem{Source: "torii.yaml", Line: 12, Path: "routes[3].name", Msg: "m"}, "torii.yaml:12: routes[3].name: m"},
		{Problem{Source: "torii.yaml", Path: "admin.addr", Msg: "m"}, "torii.yaml: admin.addr: m"},
		{Problem{Line: 3, Msg: "invalid yaml: x"}, "line 3: invalid yaml: x"},
		{Problem{Path: "a", Msg: "m"}, "a: m"},
	}
	for _, tt := range tests {
		if got := tt.p.Error(); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("got %v, want an error wrapping os.ErrNotExist", err)
	}
}

func TestDrainDelayExplicitZero(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want time.Duration
	}{
		{"absent takes the default", "shutdown: {grace: 10s}\n", 5 * time.Second},
		{"explicit zero means none", "shutdown: {drain_delay: 0s}\n", 0},
		{"explicit value", "shutdown: {drain_delay: 2s}\n", 2 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.yaml), "t.yaml")
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Shutdown.DrainDelay.D(); got != tc.want {
				t.Errorf("drain_delay: got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRedactedStoreAndAlerts(t *testing.T) {
	tests := []struct{ dsn, want string }{
		{"postgres://torii:pg-secret@db:5432/torii?sslmode=disable", "postgres://torii:REDACTED@db:5432/torii?sslmode=disable"},
		{"postgresql://db/torii?password=pg-secret", "postgresql://db/torii?password=REDACTED"},
		{"host=db user=torii password=pg-secret dbname=torii", "host=db user=torii password=REDACTED dbname=torii"},
		{"", ""},
	}
	for _, tc := range tests {
		if got := redactDSN(tc.dsn); got != tc.want {
			t.Errorf("redactDSN(%q): got %q, want %q", tc.dsn, got, tc.want)
		}
	}
	if got, want := redactWebhook("https://chat.example/hooks/T0/B0/hook-secret?token=x"), "https://chat.example/REDACTED"; got != want {
		t.Errorf("redactWebhook: got %q, want %q", got, want)
	}
}
