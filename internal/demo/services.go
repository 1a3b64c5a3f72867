package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// The demo's upstreams: a monolith and the two services carved out of it.
// They serve the same catalog, generated from ids so every process and
// every call agrees on it, with the noise a real service has: a timestamp
// and a request id in every answer, a few milliseconds of work, and now
// and then a slow query on the monolith.

// Catalog sizes: ids from 1 to these exist; others are 404.
const (
	numItems    = 500
	numUsers    = 200
	numListings = 300
	perPage     = 10
)

// failEvery is the listing service's error rate: one request in
// failEvery answers 500 (1 %). It is a counter, not a coin, so the burn
// rate is the same in every gate window and the story never depends on
// luck.
const failEvery = 100

var (
	adjectives = []string{"Vintage", "Compact", "Sturdy", "Bright", "Quiet", "Classic", "Rugged", "Slim", "Cozy", "Smart"}
	nouns      = []string{"Lamp", "Chair", "Kettle", "Backpack", "Bicycle", "Camera", "Desk", "Guitar", "Jacket", "Teapot"}
	firstNames = []string{"Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken", "Frances", "Dennis", "Margaret", "Niklaus"}
	lastNames  = []string{"Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Thompson", "Allen", "Ritchie", "Hamilton", "Wirth"}
)

// meta is the noise every answer carries: it differs on every call, even
// to the same service, and torii's diffing learns to ignore it.
type meta struct {
	GeneratedAt string `json:"generated_at"`
	RequestID   string `json:"request_id"`
}

func newMeta() meta {
	return meta{GeneratedAt: time.Now().UTC().Format(time.RFC3339Nano), RequestID: fmt.Sprintf("%016x", rand.Uint64())}
}

type item struct {
	ID       int      `json:"id"`
	Name     string   `json:"name"`
	Price    float64  `json:"price"`
	Currency string   `json:"currency"`
	Stock    int      `json:"stock"`
	Tags     []string `json:"tags"`
}

type user struct {
	ID     int    `json:"id"`
	Name   string `json:"name"`
	Email  string `json:"email"`
	Joined string `json:"joined"`
	Seller bool   `json:"seller"`
}

// listing is a listing as the monolith writes it. Price is a number there
// and a string ("12.50") in the listing service: the subtle difference
// the shadow comparison reports as body.listing.price and
// body.listings[*].price.
type listing struct {
	ID       int    `json:"id"`
	ItemID   int    `json:"item_id"`
	SellerID int    `json:"seller_id"`
	Title    string `json:"title"`
	Price    any    `json:"price"`
	Currency string `json:"currency"`
	Status   string `json:"status"`
}

func itemByID(id int) item {
	return item{
		ID:       id,
		Name:     adjectives[id%len(adjectives)] + " " + nouns[(id/len(adjectives))%len(nouns)],
		Price:    float64(cents(id)) / 100,
		Currency: "EUR",
		Stock:    (id * 37) % 50,
		Tags:     []string{nouns[(id/len(adjectives))%len(nouns)], []string{"new", "used", "refurbished"}[id%3]},
	}
}

func userByID(id int) user {
	first, last := firstNames[id%len(firstNames)], lastNames[(id/len(firstNames))%len(lastNames)]
	return user{
		ID:     id,
		Name:   first + " " + last,
		Email:  fmt.Sprintf("%s.%s%d@example.com", first, last, id),
		Joined: time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, id*7).Format(time.DateOnly),
		Seller: id%4 == 0,
	}
}

// listingByID returns listing id; with stringPrice its price is written
// as the listing service writes it.
func listingByID(id int, stringPrice bool) listing {
	it := itemByID((id*13)%numItems + 1)
	c := cents(id + 1000)
	var price any = float64(c) / 100
	if stringPrice {
		price = fmt.Sprintf("%d.%02d", c/100, c%100)
	}
	return listing{
		ID:       id,
		ItemID:   it.ID,
		SellerID: (id*7)%numUsers + 1,
		Title:    it.Name + " — " + []string{"like new", "good condition", "barely used", "as is"}[id%4],
		Price:    price,
		Currency: "EUR",
		Status:   []string{"active", "active", "active", "reserved"}[id%4],
	}
}

// cents is a price from 5.00 to 204.99, fixed per id.
func cents(id int) int { return 500 + (id*7919)%20000 }

// service is one of the demo's upstreams.
type service struct {
	name string
	// stringPrice writes listing prices as strings (the listing service).
	stringPrice bool
	// failing makes one request in failEvery fail (the listing service).
	failing bool
	// slowPercent of requests take a slow query's 320–420 ms.
	slowPercent float64
	requests    atomic.Int64
}

// handler serves the parts of the catalog named: "items", "users",
// "listings", and "home" (an index at /).
func (s *service) handler(parts ...string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	for _, p := range parts {
		switch p {
		case "items":
			mux.HandleFunc("GET /v1/items/{id}", s.serve(func(r *http.Request) (int, any) {
				id, ok := pathID(r, numItems)
				if !ok {
					return http.StatusNotFound, map[string]any{"error": "no such item", "meta": newMeta()}
				}
				return http.StatusOK, struct {
					Item item `json:"item"`
					Meta meta `json:"meta"`
				}{itemByID(id), newMeta()}
			}))
		case "users":
			mux.HandleFunc("GET /v1/users/{id}", s.serve(func(r *http.Request) (int, any) {
				id, ok := pathID(r, numUsers)
				if !ok {
					return http.StatusNotFound, map[string]any{"error": "no such user", "meta": newMeta()}
				}
				return http.StatusOK, struct {
					User user `json:"user"`
					Meta meta `json:"meta"`
				}{userByID(id), newMeta()}
			}))
		case "listings":
			mux.HandleFunc("GET /v1/listings", s.serve(func(r *http.Request) (int, any) {
				page, err := strconv.Atoi(r.URL.Query().Get("page"))
				if err != nil || page < 1 {
					page = 1
				}
				out := struct {
					Page     int       `json:"page"`
					PerPage  int       `json:"per_page"`
					Total    int       `json:"total"`
					Listings []listing `json:"listings"`
					Meta     meta      `json:"meta"`
				}{Page: page, PerPage: perPage, Total: numListings, Listings: []listing{}, Meta: newMeta()}
				for id := (page-1)*perPage + 1; id <= page*perPage && id <= numListings; id++ {
					out.Listings = append(out.Listings, listingByID(id, s.stringPrice))
				}
				return http.StatusOK, out
			}))
			mux.HandleFunc("GET /v1/listings/{id}", s.serve(func(r *http.Request) (int, any) {
				id, ok := pathID(r, numListings)
				if !ok {
					return http.StatusNotFound, map[string]any{"error": "no such listing", "meta": newMeta()}
				}
				return http.StatusOK, struct {
					Listing listing `json:"listing"`
					Meta    meta    `json:"meta"`
				}{listingByID(id, s.stringPrice), newMeta()}
			}))
		case "home":
			mux.HandleFunc("GET /{$}", s.serve(func(r *http.Request) (int, any) {
				return http.StatusOK, map[string]any{
					"service":   s.name,
					"endpoints": []string{"GET /v1/items/{id}", "GET /v1/users/{id}", "GET /v1/listings?page=N", "GET /v1/listings/{id}"},
					"note":      "the /v1 endpoints need a bearer token from the demo's Authority",
				}
			}))
		}
	}
	return mux
}

// serve wraps an endpoint with the service's work time, its failures and
// JSON encoding.
func (s *service) serve(f func(*http.Request) (int, any)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		n := s.requests.Add(1)
		d := time.Duration(1+rand.IntN(6)) * time.Millisecond
		if s.slowPercent > 0 && rand.Float64()*100 < s.slowPercent {
			d = time.Duration(320+rand.IntN(100)) * time.Millisecond
		}
		if !sleep(r.Context(), d) {
			return
		}
		w.Header().Set("X-Served-By", s.name)
		if s.failing && n%failEvery == 0 {
			writeJSON(w, http.StatusInternalServerError, map[string]any{"error": "internal error", "meta": newMeta()})
			return
		}
		code, body := f(r)
		writeJSON(w, code, body)
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// pathID returns the {id} path value if it is an id from 1 to max.
func pathID(r *http.Request, max int) (int, bool) {
	id, err := strconv.Atoi(r.PathValue("id"))
	return id, err == nil && id >= 1 && id <= max
}

// sleep waits d, or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
