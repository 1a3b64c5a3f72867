package listener

import (
	"io"
	"net/http"
	"runtime"
	"testing"
	"time"
)

// TestLeanIdleKeepsNoRequest: an idle keep-alive connection keeps nothing
// its last response's header pointed at (the front handler's per-request
// state holds the X-Request-Id value this way), though it keeps the
// header map itself for its next response.
func TestLeanIdleKeepsNoRequest(t *testing.T) {
	type state struct {
		id  [1]string
		pad [16 << 10]byte
	}
	collected := make(chan struct{})
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := &state{id: [1]string{"req-1"}}
		runtime.AddCleanup(st, func(ch chan struct{}) { close(ch) }, collected)
		w.Header()["X-Request-Id"] = st.id[:1:1]
		io.WriteString(w, "ok")
	}), Options{})
	c, br := dialRaw(t, ts.addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if res, body := leanResponse(t, br, "GET"); body != "ok" || res.Header.Get("X-Request-Id") != "req-1" {
		t.Fatalf("response: %q, %v", body, res.Header)
	}
	// The connection is idle in keep-alive now.
	deadline := time.Now().Add(5 * time.Second)
	for {
		runtime.GC()
		select {
		case <-collected:
			return
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("an idle connection still holds what its last response's header pointed at")
		}
	}
}
