package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"torii/internal/config"
)

// syncBuffer is a bytes.Buffer safe for the demo's writers and the test.
type syncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestDemoEndToEnd is issue 7's acceptance point 2: the demo, with its
// real parts on loopback and fast clocks, serves a request carrying the
// Authority's token (and refuses one without), reports the listing
// service's changed price field as a significant diff and its errors as
// SLO burn within 60 s, and on cancel stops cleanly and removes its
// files.
func TestDemoEndToEnd(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	var out syncBuffer
	ready := make(chan Addrs, 1)
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	go func() {
		done <- Run(ctx, Options{
			Listen: "127.0.0.1:0", Admin: "127.0.0.1:0", Rate: 60, Fast: true,
			Out: &out, Logger: logger, Ready: func(a Addrs) { ready <- a },
		})
	}()
	var a Addrs
	select {
	case a = <-ready:
	case err := <-done:
		t.Fatalf("Run returned before serving: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the demo did not serve within 30 s")
	}
	t.Logf("serving after %s in %s", time.Since(start).Round(time.Millisecond), a.Dir)
	deadline := start.Add(60 * time.Second)

	// Through the gateway, with and without the Authority's token.
	tok, _, err := fetchToken(ctx, http.DefaultClient, a.Authority, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, a.Gateway+"/v1/items/7", tok); code != http.StatusOK || !strings.Contains(body, `"item":{"id":7`) {
		t.Errorf("GET /v1/items/7 with a token: got %d %s, want 200 with item 7", code, body)
	}
	if code, body := get(t, a.Gateway+"/v1/listings/7", ""); code != http.StatusUnauthorized {
		t.Errorf("GET /v1/listings/7 without a token: got %d %s, want 401", code, body)
	}

	// The diff report names the price, on a listings endpoint, as
	// significant; the listing service's errors burn its budget.
	var diffSeen, burnSeen string
	for diffSeen == "" || burnSeen == "" {
		if time.Now().After(deadline) {
			t.Fatalf("after 60 s: diff %q, burn %q; want both; output:\n%s", diffSeen, burnSeen, out.String())
		}
		time.Sleep(500 * time.Millisecond)
		if diffSeen == "" {
			diffSeen = significantPrice(t, a.Admin)
		}
		if burnSeen == "" {
			burnSeen = listingBurn(t, a.Admin)
		}
	}
	t.Logf("after %s: significant diff %s; burn: %s", time.Since(start).Round(time.Millisecond), diffSeen, burnSeen)

	stopped := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after cancel: got %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10 s of cancel")
	}
	t.Logf("stopped in %s", time.Since(stopped).Round(time.Millisecond))
	if _, err := os.Stat(a.Dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("temp dir %s after Run: stat error %v, want it removed", a.Dir, err)
	}
	printed := out.String()
	for _, want := range []string{a.Gateway, a.Admin + "/", a.Authority, "Authorization: Bearer ey", "listings  progressing", "budget", "stopping"} {
		if !strings.Contains(printed, want) {
			t.Errorf("output lacks %q:\n%s", want, printed)
		}
	}
	if testing.Verbose() {
		t.Logf("output:\n%s", printed)
	}
}

// get sends a GET with an optional bearer token.
func get(t *testing.T, u, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// getJSON decodes the admin API's answer at u into v.
func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	code, body := get(t, u, "")
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", u, code, body)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
}

// significantPrice returns the listings route's significant price field,
// e.g. "GET /v1/listings/{id} body.listing.price (99.0 %)", or "".
func significantPrice(t *testing.T, admin string) string {
	var m struct {
		Diff *struct {
			Endpoints []struct {
				Endpoint string `json:"endpoint"`
				Fields   []struct {
					Field       string  `json:"field"`
					DiffPercent float64 `json:"diff_percent"`
					Significant bool    `json:"significant"`
				} `json:"fields"`
			} `json:"endpoints"`
		} `json:"diff"`
	}
	getJSON(t, admin+"/api/v1/migrations/"+url.PathEscape("listings"), &m)
	if m.Diff == nil {
		return ""
	}
	for _, ep := range m.Diff.Endpoints {
		for _, f := range ep.Fields {
			if f.Significant && strings.HasSuffix(f.Field, ".price") && strings.Contains(ep.Endpoint, "/v1/listings") {
				return fmt.Sprintf("%s %s (%.1f %% of compared)", ep.Endpoint, f.Field, f.DiffPercent)
			}
		}
	}
	return ""
}

// listingBurn describes the listing service's burn in /api/v1/slos: its
// backend's availability under 1, or bad events on the listings route;
// "" before any.
func listingBurn(t *testing.T, admin string) string {
	var body struct {
		SLOs []struct {
			Route        string `json:"route"`
			Availability *struct {
				Bad      map[string]int64   `json:"bad"`
				BurnRate map[string]float64 `json:"burn_rate"`
			} `json:"availability"`
			Backends []struct {
				Upstream     string             `json:"upstream"`
				Events       map[string]int64   `json:"events"`
				Availability map[string]float64 `json:"availability"`
			} `json:"backends"`
		} `json:"slos"`
	}
	getJSON(t, admin+"/api/v1/slos", &body)
	for _, s := range body.SLOs {
		if s.Route != "listings" {
			continue
		}
		for _, b := range s.Backends {
			if b.Upstream == "listing" && b.Availability["5m"] > 0 && b.Availability["5m"] < 1 {
				return fmt.Sprintf("backend listing: availability %.4f over 5m (%d requests)", b.Availability["5m"], b.Events["5m"])
			}
		}
		if av := s.Availability; av != nil && av.Bad["5m"] > 0 && av.BurnRate["5m"] > 0 {
			return fmt.Sprintf("route listings: %d bad over 5m, burn rate %.1f", av.Bad["5m"], av.BurnRate["5m"])
		}
	}
	return ""
}

// TestConfigValid checks the generated config, with either clock, is
// what `torii validate` accepts.
func TestConfigValid(t *testing.T) {
	for name, tm := range map[string]timings{"normal": normalTimings, "fast": fastTimings} {
		t.Run(name, func(t *testing.T) {
			b, err := renderConfig(configData{
				timings: tm, Listen: DefaultListen, Admin: DefaultAdmin, DB: "/tmp/torii demo/torii.db",
				Monolith: "127.0.0.1:9001", Users: "127.0.0.1:9002", Listing: "127.0.0.1:9003", Alerts: "http://127.0.0.1:9004",
				Issuer: "http://127.0.0.1:9005", JWKS: "http://127.0.0.1:9005/.well-known/jwks.json", Audience: Audience,
			})
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Parse(b, "torii.yaml")
			if err != nil {
				t.Fatalf("the generated config is invalid:\n%v\n%s", err, b)
			}
			var rolling []string
			for _, r := range cfg.Routes {
				if r.Rollout != nil {
					rolling = append(rolling, r.Name)
				}
			}
			if got := strings.Join(rolling, ","); got != "users,listings" {
				t.Errorf("routes rolling out: got %q, want users,listings", got)
			}
		})
	}
}

func TestCheckLoopback(t *testing.T) {
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:8080", true},
		{"127.0.0.1:0", true},
		{"[::1]:8080", true},
		{"localhost:8080", true},
		{"0.0.0.0:8080", false},
		{":8080", false},
		{"192.168.1.5:8080", false},
		{"8080", false},
	} {
		if err := checkLoopback(tc.addr); (err == nil) != tc.ok {
			t.Errorf("checkLoopback(%q): got %v, want ok %v", tc.addr, err, tc.ok)
		}
	}
}
