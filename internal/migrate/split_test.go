package migrate

import (
	"math"
	"slices"
	"testing"
)

func TestSplitWeights(t *testing.T) {
	cases := []struct {
		name      string
		base      []int
		candidate int
		percent   float64
		want      []int
	}{
		{"start", []int{1, 1}, 1, 0, []int{10000, 0}},
		{"quarter", []int{1, 1}, 1, 25, []int{7500, 2500}},
		{"all", []int{1, 1}, 1, 100, []int{0, 10000}},
		{"candidate base weight ignored", []int{1, 999}, 1, 10, []int{9000, 1000}},
		{"candidate first", []int{7, 2}, 0, 40, []int{4000, 6000}},
		{"others keep their proportions", []int{2, 1, 5}, 2, 10, []int{6000, 3000, 1000}},
		{"zero-weight other stays at zero", []int{1, 0, 1}, 2, 50, []int{5000, 0, 5000}},
		{"basis point", []int{1, 1, 1, 1}, 3, 0.01, []int{3333, 3333, 3333, 1}},
		{"rounds to basis points", []int{1, 1}, 1, 33.33333, []int{6667, 3333}},
		{"rounding half up", []int{1, 1, 1}, 2, 0.03, []int{4999, 4999, 3}},
		{"tiny remainder", []int{1, 1, 1}, 2, 99.99, []int{1, 1, 9999}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewSplit(tc.base, tc.candidate)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Set(tc.percent); err != nil {
				t.Fatal(err)
			}
			if got := s.Weights().Get(); !slices.Equal(got, tc.want) {
				t.Errorf("weights at %v%%: got %v, want %v", tc.percent, got, tc.want)
			}
			if got := s.Percent(); got != tc.percent {
				t.Errorf("percent: got %v, want %v", got, tc.percent)
			}
		})
	}
}

// TestSplit moves splits of several shapes through every basis point from
// 0 to 100 %: the weights never add up to 0, the candidate's share is the
// percent asked to the basis point, and the others keep their proportions.
func TestSplit(t *testing.T) {
	bases := []struct {
		base      []int
		candidate int
	}{
		{[]int{1, 1}, 1},
		{[]int{1, 0}, 1},
		{[]int{3, 1, 0}, 2},
		{[]int{1_000_000, 1, 1}, 1},
		{[]int{5, 5, 5, 5, 5, 5, 5}, 3},
	}
	for _, b := range bases {
		s, err := NewSplit(b.base, b.candidate)
		if err != nil {
			t.Fatalf("%v: %v", b.base, err)
		}
		w := s.Weights()
		for bp := 0; bp <= 10000; bp++ {
			percent := float64(bp) / 100
			if err := s.Set(percent); err != nil {
				t.Fatalf("%v at %v%%: %v", b.base, percent, err)
			}
			if s.Weights() != w {
				t.Fatalf("%v: Weights changed identity", b.base)
			}
			checkSplit(t, b.base, b.candidate, percent, w.Get())
		}
	}
}

// checkSplit checks the weights ws of a split of base at percent.
func checkSplit(t *testing.T, base []int, candidate int, percent float64, ws []int) {
	t.Helper()
	total, others := 0, 0
	for i, v := range ws {
		if v < 0 {
			t.Fatalf("%v at %v%%: negative weight in %v", base, percent, ws)
		}
		total += v
		if i != candidate {
			others += base[i]
		}
	}
	if total == 0 {
		t.Fatalf("%v at %v%%: weights %v add up to 0", base, percent, ws)
	}
	cw := int(math.Round(percent * 100))
	if ws[candidate] != cw {
		t.Fatalf("%v at %v%%: candidate weight %d, want %d", base, percent, ws[candidate], cw)
	}
	for i, v := range ws {
		if i == candidate {
			continue
		}
		exact := float64(10000-cw) * float64(base[i]) / float64(others)
		if math.Abs(float64(v)-exact) > 0.5 {
			t.Fatalf("%v at %v%%: backend %d weight %d, want %v rounded", base, percent, i, v, exact)
		}
	}
	// What the proxy sees: the candidate's share of the total.
	if share := 100 * float64(ws[candidate]) / float64(total); math.Abs(share-percent) > 0.01*float64(len(ws)) {
		t.Fatalf("%v at %v%%: candidate share %v%%", base, percent, share)
	}
}

func TestNewSplitErrors(t *testing.T) {
	cases := []struct {
		name      string
		base      []int
		candidate int
	}{
		{"one backend", []int{1}, 0},
		{"no backends", nil, 0},
		{"candidate out of range", []int{1, 1}, 2},
		{"negative candidate", []int{1, 1}, -1},
		{"negative weight", []int{1, -1, 1}, 2},
		{"no other weight", []int{0, 0, 5}, 2},
		{"overflow", []int{math.MaxInt32, 1, 1}, 2},
	}
	for _, tc := range cases {
		if s, err := NewSplit(tc.base, tc.candidate); err == nil {
			t.Errorf("%s: NewSplit(%v, %d) = %v, want an error", tc.name, tc.base, tc.candidate, s.Weights().Get())
		}
	}
}

func TestSplitSetErrors(t *testing.T) {
	s, err := NewSplit([]int{1, 1}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Set(5); err != nil {
		t.Fatal(err)
	}
	for _, p := range []float64{-0.01, 100.01, math.NaN(), math.Inf(1), math.Inf(-1)} {
		if err := s.Set(p); err == nil {
			t.Errorf("Set(%v): no error", p)
		}
		if got, want := s.Weights().Get(), []int{9500, 500}; !slices.Equal(got, want) || s.Percent() != 5 {
			t.Errorf("after Set(%v): weights %v at %v%%, want %v at 5%%", p, got, s.Percent(), want)
		}
	}
}

// FuzzSplit: any accepted split, at any percent accepted, gives weights a
// proxy accepts, with the candidate's share as asked.
func FuzzSplit(f *testing.F) {
	f.Add(1, 1, 0, 25.0)       // the usual monolith and candidate
	f.Add(0, 7, 3, 0.01)       // a zero-weight other backend
	f.Add(1000000, 1, 1, 99.5) // skewed weights
	f.Add(1, 1, 1, 100.0)      // everything to the candidate
	f.Add(0, 7, 37, 4.015)     // 4.015×10000/100 rounds to 401, 4.015×100 to 402 (Set rounds the latter)
	f.Fuzz(func(t *testing.T, a, b, c int, percent float64) {
		base := []int{a, b, c}
		s, err := NewSplit(base, 2)
		if err != nil {
			return
		}
		if err := s.Set(percent); err != nil {
			return
		}
		checkSplit(t, base, 2, percent, s.Weights().Get())
	})
}
