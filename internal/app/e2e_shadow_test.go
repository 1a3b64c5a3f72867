package app

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestE2EShadow: a route mirrors its GETs to a candidate through the whole
// app; the client gets the primary's answer, the candidate sees the
// request marked as a shadow.
func TestE2EShadow(t *testing.T) {
	primary := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "primary")
	}))
	defer primary.Close()
	seen := make(chan string, 10)
	candidate := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Get("X-Torii-Shadow") + " " + r.URL.RequestURI()
		w.WriteHeader(500) // a broken candidate changes nothing for the client
	}))
	defer candidate.Close()
	ta := startApp(t, testListeners+fmt.Sprintf(`
upstreams:
  monolith: {endpoints: [%q]}
  listing: {endpoints: [%q]}
routes:
  - name: items
    backends: [{upstream: monolith}]
    shadow: {upstream: listing}
`, primary.Listener.Addr().String(), candidate.Listener.Addr().String()))

	resp, err := http.Get(ta.base + "/v1/items?id=7")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "primary" {
		t.Errorf("client: got %d %q, want 200 %q", resp.StatusCode, body, "primary")
	}
	select {
	case got := <-seen:
		if got != "1 /v1/items?id=7" {
			t.Errorf("candidate saw %q, want %q", got, "1 /v1/items?id=7")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the candidate saw no shadow request")
	}
	post, err := http.Post(ta.base+"/v1/items", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	post.Body.Close()
	select {
	case got := <-seen:
		t.Errorf("a POST was mirrored (%q); want only safe methods by default", got)
	case <-time.After(300 * time.Millisecond):
	}
}
