package migrate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/klauspost/compress/gzip"
)

func TestAnalyzeThresholds(t *testing.T) {
	tests := []struct {
		name string
		th   Thresholds
		tot  Tally // Compared, NoiseCompared
		f    Tally // Differ, Noise
		want bool
	}{
		{"always differs, never noise", Thresholds{}, Tally{Compared: 1000, NoiseCompared: 200}, Tally{Differ: 1000}, true},
		{"as often as noise", Thresholds{}, Tally{Compared: 1000, NoiseCompared: 200}, Tally{Differ: 1000, Noise: 200}, false},
		{"less often than noise", Thresholds{}, Tally{Compared: 1000, NoiseCompared: 200}, Tally{Differ: 100, Noise: 100}, false},
		// 50% against 39.9%: relative gap 20.2%.
		{"relative just above", Thresholds{}, Tally{Compared: 1000, NoiseCompared: 1000}, Tally{Differ: 500, Noise: 399}, true},
		// 50% against 40.1%: relative gap 19.8%.
		{"relative just below", Thresholds{}, Tally{Compared: 1000, NoiseCompared: 1000}, Tally{Differ: 500, Noise: 401}, false},
		// 0.031% of 100000 against none: absolute gap 0.031.
		{"absolute just above", Thresholds{}, Tally{Compared: 100000, NoiseCompared: 100}, Tally{Differ: 31}, true},
		{"absolute just below", Thresholds{}, Tally{Compared: 100000, NoiseCompared: 100}, Tally{Differ: 29}, false},
		{"custom relative", Thresholds{Relative: 50}, Tally{Compared: 1000, NoiseCompared: 1000}, Tally{Differ: 500, Noise: 300}, false},
		{"custom absolute", Thresholds{Absolute: 5}, Tally{Compared: 1000, NoiseCompared: 100}, Tally{Differ: 40}, false},
		{"no relative bound", Thresholds{Relative: -1}, Tally{Compared: 1000, NoiseCompared: 1000}, Tally{Differ: 500, Noise: 499}, true},
		{"no absolute bound", Thresholds{Absolute: -1}, Tally{Compared: 100000, NoiseCompared: 100}, Tally{Differ: 1}, true},
		{"too few noise samples", Thresholds{}, Tally{Compared: 1000, NoiseCompared: DefaultMinNoiseSamples - 1}, Tally{Differ: 1000}, false},
		{"just enough noise samples", Thresholds{}, Tally{Compared: 1000, NoiseCompared: DefaultMinNoiseSamples}, Tally{Differ: 1000}, true},
		{"custom noise samples", Thresholds{MinNoiseSamples: 500}, Tally{Compared: 1000, NoiseCompared: 499}, Tally{Differ: 1000}, false},
		{"no noise data needed", Thresholds{MinNoiseSamples: -1}, Tally{Compared: 1000}, Tally{Differ: 1000}, true},
		{"nothing compared", Thresholds{MinNoiseSamples: -1}, Tally{}, Tally{Differ: 1}, false},
	}
	for _, tt := range tests {
		rep := Analyze(map[string]map[string]Tally{"GET /x": {"": tt.tot, "body.f": tt.f}}, tt.th)
		got := rep.Endpoints[0].Fields[0]
		if got.Significant != tt.want {
			t.Errorf("%s: significant = %v (%.4f%% against %.4f%% noise), want %v",
				tt.name, got.Significant, got.DiffPercent, got.NoisePercent, tt.want)
		}
		if want := 0.0; !tt.want && rep.DiffPercent != want {
			t.Errorf("%s: report DiffPercent = %v, want %v", tt.name, rep.DiffPercent, want)
		}
	}
}

func TestAnalyzeReport(t *testing.T) {
	counts := map[string]map[string]Tally{
		"GET /b": {
			"":                {Compared: 1000, NoiseCompared: 100},
			"body.price":      {Differ: 100},              // 10%, real
			"body.at":         {Differ: 1000, Noise: 100}, // 100%, noise
			"body.name":       {Differ: 500, Noise: 1},    // 50% against 1%, real
			"header.X-Req-Id": {Differ: 1000, Noise: 100}, // 100%, noise
		},
		"GET /a": {
			"":       {Compared: 10, NoiseCompared: 50},
			"status": {Differ: 2, Noise: 1}, // 20% against 2%
		},
		"GET /c": {"": {Compared: 5}},
	}
	rep := Analyze(counts, Thresholds{})
	got, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"compared":1015,"noise_compared":150,"diff_percent":49,"endpoints":[` +
		`{"endpoint":"GET /a","compared":10,"noise_compared":50,"fields":[` +
		`{"field":"status","differ":2,"noise":1,"diff_percent":20,"noise_percent":2,"significant":true}]},` +
		`{"endpoint":"GET /b","compared":1000,"noise_compared":100,"fields":[` +
		`{"field":"body.name","differ":500,"noise":1,"diff_percent":50,"noise_percent":1,"significant":true},` +
		`{"field":"body.price","differ":100,"noise":0,"diff_percent":10,"noise_percent":0,"significant":true},` +
		`{"field":"body.at","differ":1000,"noise":100,"diff_percent":100,"noise_percent":100,"significant":false},` +
		`{"field":"header.X-Req-Id","differ":1000,"noise":100,"diff_percent":100,"noise_percent":100,"significant":false}]},` +
		`{"endpoint":"GET /c","compared":5,"noise_compared":0,"fields":[]}]}`
	if string(got) != want {
		t.Errorf("report:\n got %s\nwant %s", got, want)
	}

	if got, _ := json.Marshal(Analyze(nil, Thresholds{})); string(got) != `{"compared":0,"noise_compared":0,"diff_percent":0,"endpoints":[]}` {
		t.Errorf("empty report = %s", got)
	}
}

func TestCounter(t *testing.T) {
	c := NewCounter(2, 2)
	c.AddCandidate("GET /a", []string{"body.x", "body.y"})
	c.AddCandidate("GET /a", []string{"body.x", "body.z"}) // z: no room
	c.AddNoise("GET /a", []string{"body.y"})
	c.AddCandidate("GET /b", nil)
	c.AddCandidate("GET /c", []string{"status"}) // no room: other
	c.AddNoise("GET /d", []string{"status"})     // other too
	want := map[string]map[string]Tally{
		"GET /a":      {"": {Compared: 2, NoiseCompared: 1}, "body.x": {Differ: 2}, "body.y": {Differ: 1, Noise: 1}},
		"GET /b":      {"": {Compared: 1}},
		OtherEndpoint: {"": {Compared: 1, NoiseCompared: 1}, "status": {Differ: 1, Noise: 1}},
	}
	got := c.Take()
	if !equalCounts(got, want) {
		t.Errorf("Take() = %v, want %v", got, want)
	}
	if n := c.Dropped(); n != 1 {
		t.Errorf("Dropped() = %d, want 1", n)
	}
	if again := c.Take(); len(again) != 0 {
		t.Errorf("second Take() = %v, want empty", again)
	}

	// A failed flush puts the counts back, after new ones arrived.
	c.AddCandidate("GET /e", []string{"body.x"})
	c.Merge(got)
	want2 := map[string]map[string]Tally{
		"GET /e":      {"": {Compared: 1}, "body.x": {Differ: 1}},
		"GET /a":      want["GET /a"],
		OtherEndpoint: {"": {Compared: 2, NoiseCompared: 1}, "status": {Differ: 1, Noise: 1}}, // and GET /b
	}
	if got2 := c.Take(); !equalCounts(got2, want2) {
		t.Errorf("after Merge, Take() = %v, want %v", got2, want2)
	}

	// Merge respects the field bound too.
	c.Merge(map[string]map[string]Tally{"GET /a": {"": {Compared: 1}, "a": {Differ: 1}, "b": {Differ: 1}, "c": {Differ: 1}}})
	if n := c.Dropped(); n != 2 {
		t.Errorf("Dropped() after Merge = %d, want 2", n)
	}
}

// equalCounts reports whether a and b hold the same counts.
func equalCounts(a, b map[string]map[string]Tally) bool {
	if len(a) != len(b) {
		return false
	}
	for ep, fa := range a {
		fb, ok := b[ep]
		if !ok || len(fa) != len(fb) {
			return false
		}
		for f, t := range fa {
			if u, ok := fb[f]; !ok || t != u {
				return false
			}
		}
	}
	return true
}

func TestCounterConcurrent(t *testing.T) {
	c := NewCounter(10, 10)
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := map[string]map[string]Tally{}
	merge := func(m map[string]map[string]Tally) {
		mu.Lock()
		defer mu.Unlock()
		for ep, fs := range m {
			if total[ep] == nil {
				total[ep] = map[string]Tally{}
			}
			for f, t := range fs {
				total[ep][f] = total[ep][f].plus(t)
			}
		}
	}
	for g := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				ep := fmt.Sprintf("GET /%d", i%3)
				c.AddCandidate(ep, []string{"body.a"})
				if i%5 == 0 {
					c.AddNoise(ep, []string{"body.a", "body.b"})
				}
				if g == 0 && i%100 == 0 {
					merge(c.Take())
				}
			}
		})
	}
	wg.Wait()
	merge(c.Take())
	var compared, noise, differ int64
	for _, fs := range total {
		compared += fs[""].Compared
		noise += fs[""].NoiseCompared
		differ += fs["body.a"].Differ
	}
	if compared != 8000 || differ != 8000 || noise != 1600 {
		t.Errorf("counted %d compared, %d differ, %d noise; want 8000, 8000, 1600", compared, differ, noise)
	}
}

func TestEndpoint(t *testing.T) {
	tests := []struct{ method, path, want string }{
		{"GET", "/items/123/reviews", "GET /items/{id}/reviews"},
		{"GET", "/items/123/reviews?page=2#top", "GET /items/{id}/reviews"},
		{"GET", "", "GET /"},
		{"GET", "/", "GET /"},
		{"GET", "/?q=1", "GET /"},
		{"POST", "//orders//", "POST /orders"},
		{"GET", "/users/3f2b8c1e-9d4a-4e6b-a1c2-0123456789ab", "GET /users/{id}"},
		{"GET", "/users/3F2B8C1E-9D4A-4E6B-A1C2-0123456789AB/x", "GET /users/{id}/x"},
		{"GET", "/blobs/deadbeefcafebabe", "GET /blobs/{id}"},                         // 16 hex digits
		{"GET", "/blobs/deadbeefcafebab", "GET /blobs/deadbeefcafebab"},               // 15
		{"GET", "/t/AbCdEfGhIjKlMnOpQrS1", "GET /t/{id}"},                             // 20, letters and digits
		{"GET", "/t/AbCdEfGhIjKlMnOpQr1", "GET /t/AbCdEfGhIjKlMnOpQr1"},               // 19
		{"GET", "/t/abcdefghijklmnopqrstuvwxyz", "GET /t/abcdefghijklmnopqrstuvwxyz"}, // no digit
		{"GET", "/t/01HF3Z4K5M6N7P8Q9R0S1T2V3W", "GET /t/{id}"},                       // ULID
		{"GET", "/v1/items", "GET /v1/items"},
		{"GET", "/files/report-2024.pdf", "GET /files/report-2024.pdf"},
		{"GET", "/1/2/3/4/5/6/7/8", "GET /{id}/{id}/{id}/{id}/{id}/{id}/{id}/{id}"},
		{"GET", "/a/b/c/d/e/f/g/h/i/j", "GET /a/b/c/d/e/f/g/h/…"},
	}
	for _, tt := range tests {
		if got := Endpoint(tt.method, tt.path); got != tt.want {
			t.Errorf("Endpoint(%q, %q) = %q, want %q", tt.method, tt.path, got, tt.want)
		}
	}
}

// shop simulates a primary that answers with noise in some fields: a
// timestamp, a request id (in the body and a header), a Date header, and
// which of its 4 replicas served the request.
type shop struct {
	rng *rand.Rand
	gz  *gzip.Writer // reused: a new one costs more than the comparison
}

// response returns the primary's response to request n of path; the
// candidate's when priceAsString.
func (s *shop) response(path string, n int, priceAsString bool) *Response {
	price := `12.5`
	if priceAsString {
		price = `"12.5"`
	}
	id := fmt.Sprintf("%08x-%04x-4%03x-a%03x-%012x", s.rng.Uint32(), s.rng.IntN(1<<16), s.rng.IntN(1<<12), s.rng.IntN(1<<12), s.rng.Uint64()>>16)
	var body string
	if strings.HasPrefix(path, "/items/") {
		body = fmt.Sprintf(`{"id":%d,"name":"item %d","price":%s,"currency":"EUR","tags":["a","b"],`+
			`"offers":[{"seller":"s1","stock":3},{"seller":"s2","stock":0}],`+
			`"generated_at":"2025-11-25T17:%02d:%02d.%06dZ","request_id":%q,"served_by":"replica-%d"}`,
			n, n, price, s.rng.IntN(60), s.rng.IntN(60), s.rng.IntN(1e6), id, s.rng.IntN(4))
	} else {
		body = fmt.Sprintf(`{"user":{"id":%d,"roles":["reader"]},"meta":{"trace":%q,"at":%d}}`,
			n, id, s.rng.Int64())
	}
	r := &Response{
		Status: 200,
		Header: http.Header{
			"Content-Type": {"application/json; charset=utf-8"},
			"Date":         {fmt.Sprintf("Tue, 25 Nov 2025 17:%02d:%02d GMT", s.rng.IntN(60), s.rng.IntN(60))},
			"X-Request-Id": {id},
		},
		Body: []byte(body),
	}
	if s.rng.IntN(2) == 0 { // compression must not matter
		var buf bytes.Buffer
		s.gz.Reset(&buf)
		s.gz.Write(r.Body)
		s.gz.Close()
		r.Body = buf.Bytes()
		r.Header.Set("Content-Encoding", "gzip")
	}
	return r
}

// simulate mirrors 2000 requests, half to each endpoint, comparing the
// primary's response to the candidate's and, on a fifth of them, to a
// second primary call's, and returns the report. seed seeds the noise.
func simulate(t *testing.T, candidateChangesPrice bool, seed uint64) Report {
	t.Helper()
	c, err := NewComparer(CompareOptions{Headers: []string{"Content-Type", "Date", "X-Request-Id"}})
	if err != nil {
		t.Fatal(err)
	}
	counter := NewCounter(100, 100)
	s := &shop{rng: rand.New(rand.NewPCG(seed, 2)), gz: gzip.NewWriter(nil)}
	for n := range 2000 {
		path := fmt.Sprintf("/items/%d", n)
		if n%2 == 1 {
			path = fmt.Sprintf("/users/%d", n)
		}
		ep := Endpoint("GET", path)
		primary := s.response(path, n, false)
		candidate := s.response(path, n, candidateChangesPrice)
		counter.AddCandidate(ep, c.Compare(primary, candidate))
		if s.rng.Float64() < 0.2 {
			counter.AddNoise(ep, c.Compare(primary, s.response(path, n, false)))
		}
	}
	if counter.Dropped() != 0 {
		t.Errorf("Dropped() = %d, want 0", counter.Dropped())
	}
	return Analyze(counter.Take(), Thresholds{})
}

// significantFields returns the significant fields of rep, as
// "endpoint field".
func significantFields(rep Report) []string {
	var out []string
	for _, ep := range rep.Endpoints {
		for _, f := range ep.Fields {
			if f.Significant {
				out = append(out, ep.Endpoint+" "+f.Field)
			}
		}
	}
	return out
}

// TestNoiseCancellation is the acceptance check: a candidate that changes
// one JSON field is reported at that field, and the fields that differ
// between two primary calls are never reported.
func TestNoiseCancellation(t *testing.T) {
	rep := simulate(t, true, 1)
	if got, want := significantFields(rep), []string{"GET /items/{id} body.price"}; !slices.Equal(got, want) {
		t.Errorf("significant fields = %q, want %q", got, want)
	}
	if rep.Compared != 2000 || rep.NoiseCompared < 300 || rep.NoiseCompared > 500 {
		t.Errorf("compared %d, noise compared %d; want 2000 and about 400", rep.Compared, rep.NoiseCompared)
	}
	if rep.DiffPercent != 100 {
		t.Errorf("DiffPercent = %v, want 100 (price differs on every request)", rep.DiffPercent)
	}
	// The noise was seen, and reported as not significant.
	var noisy []string
	for _, ep := range rep.Endpoints {
		for _, f := range ep.Fields {
			if !f.Significant {
				noisy = append(noisy, f.Field)
			}
		}
	}
	slices.Sort(noisy)
	noisy = slices.Compact(noisy)
	want := []string{"body.generated_at", "body.meta.at", "body.meta.trace", "body.request_id", "body.served_by", "header.Date", "header.X-Request-Id"}
	if !slices.Equal(noisy, want) {
		t.Errorf("noisy fields = %q, want %q", noisy, want)
	}
}

// TestNoiseOnly: a candidate that differs from the primary only where the
// primary differs from itself has no significant field.
func TestNoiseOnly(t *testing.T) {
	rep := simulate(t, false, 1)
	if got := significantFields(rep); got != nil {
		t.Errorf("significant fields = %q, want none", got)
	}
	if rep.DiffPercent != 0 {
		t.Errorf("DiffPercent = %v, want 0", rep.DiffPercent)
	}
}
