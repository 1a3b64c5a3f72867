package proxy

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Exchanges are reused once a request is done (exchanges, reusable):
// requests of every kind, many at once, must each reach the upstream as
// they were sent and get their own response back, with no field, path or
// body of another request. Run with -race, it also catches an exchange
// reused while something still reads it.
func TestExchangeReuse(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Path", r.URL.Path)
		w.Header().Set("X-Id", r.Header.Get("X-Id"))
		fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.Path, body)
	})
	for _, opts := range []Options{
		{},
		{Timeout: 5 * time.Second},
		{Timeout: 5 * time.Second, TryTimeout: 2 * time.Second},
	} {
		h := newHandler(t, newPool(t, "app", nil, o.addr()), opts)
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for i := range 50 {
					id := fmt.Sprintf("%d-%d", g, i)
					var r *http.Request
					want := "GET /" + id + " "
					if i%3 == 0 {
						r = httptest.NewRequest("POST", "/"+id, strings.NewReader("body-"+id))
						want = "POST /" + id + " body-" + id
					} else {
						r = httptest.NewRequest("GET", "/"+id, nil)
					}
					r.Header.Set("X-Id", id)
					rec, info := serve(h, r)
					if rec.Code != http.StatusOK || rec.Body.String() != want {
						t.Errorf("%+v request %s: %d %q, want 200 %q (%v)", opts, id, rec.Code, rec.Body.String(), want, info.Err)
						return
					}
					if rec.Header().Get("X-Path") != "/"+id || rec.Header().Get("X-Id") != id {
						t.Errorf("%+v request %s: response fields %v", opts, id, rec.Header())
						return
					}
				}
			})
		}
		wg.Wait()
	}
}
