package config

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Problem is one thing wrong with a config: where it is and what to do about
// it.
type Problem struct {
	// Source is the file the config came from, e.g. "torii.yaml". Empty when
	// the config was not read from a file.
	Source string `json:"source,omitempty"`
	// Line is the 1-based line in Source. Zero: unknown (a default, or a
	// config built in code).
	Line int `json:"line,omitempty"`
	// Path is the field path, e.g. "routes[3].backends[1].upstream". Empty
	// for a problem with the file as a whole (a YAML syntax error, several
	// documents).
	Path string `json:"path,omitempty"`
	// Msg says what is wrong and how to fix it; lowercase, no final period.
	Msg string `json:"msg"`
}

// Error formats p as "torii.yaml:12: routes[3].name: msg". The source, the
// line and the path are each left out when unknown.
func (p Problem) Error() string {
	var b strings.Builder
	switch {
	case p.Source != "" && p.Line > 0:
		b.WriteString(p.Source + ":" + strconv.Itoa(p.Line) + ": ")
	case p.Source != "":
		b.WriteString(p.Source + ": ")
	case p.Line > 0:
		b.WriteString("line " + strconv.Itoa(p.Line) + ": ")
	}
	if p.Path != "" {
		b.WriteString(p.Path + ": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Problems is every problem found in a config, sorted by line then path. It
// is the error Parse, Load and Validate return; use errors.As to get it.
type Problems []Problem

// Error formats ps one problem a line.
func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// sort orders ps by line, then path, then message, so output is stable.
func (ps Problems) sort() {
	slices.SortStableFunc(ps, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Path, b.Path), cmp.Compare(a.Msg, b.Msg))
	})
}

// err returns ps as an error, or nil when there is no problem. It keeps a nil
// Problems from becoming a non-nil error.
func (ps Problems) err() error {
	if len(ps) == 0 {
		return nil
	}
	return ps
}

// suggest returns the candidate closest to got by edit distance, or "" when
// none is close enough to be a likely typo. Case, '-' and '_' differences
// alone always count as close.
func suggest(got string, candidates []string) string {
	norm := func(s string) string {
		return strings.NewReplacer("-", "", "_", "").Replace(strings.ToLower(s))
	}
	limit := max(1, min(3, len(got)/3))
	best, bestDist := "", limit+1
	for _, c := range candidates {
		if c == got {
			continue
		}
		if norm(c) == norm(got) {
			return c
		}
		if d := editDistance(got, c); d >= len(got) || d >= len(c) {
			continue // a rewrite, not a typo
		} else if d < bestDist || (d == bestDist && c < best) {
			best, bestDist = c, d
		}
	}
	return best
}

// didYouMean returns `; did you mean "x"?` for the closest candidate, or ""
// when there is none.
func didYouMean(got string, candidates []string) string {
	if s := suggest(got, candidates); s != "" {
		return "; did you mean " + strconv.Quote(s) + "?"
	}
	return ""
}

// unknownValue says that got is not one of valid, suggesting the closest
// value or listing them all.
func unknownValue(what, got string, valid []string) string {
	if s := suggest(got, valid); s != "" {
		return fmt.Sprintf("unknown %s %q; did you mean %q?", what, got, s)
	}
	list := strings.Join(valid[:len(valid)-1], ", ") + " or " + valid[len(valid)-1]
	return fmt.Sprintf("unknown %s %q; want %s", what, got, list)
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
