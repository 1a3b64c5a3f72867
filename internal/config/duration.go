package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// String formats d as a Go duration, e.g. "1m30s".
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON encodes d as a duration string such as "5s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON decodes a duration string as accepted in YAML.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"5s\": %w", err)
	}
	v, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalYAML encodes d as a duration string such as "5s", so a Config
// marshalled back to YAML parses to the same value.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

var errTooLong = errors.New("duration too long")

// ParseDuration parses a Go duration string ("250ms", "1h30m") that may also
// use a day unit ("30d", "1d12h", "1.5d"). A bare number other than "0" is an
// error, since its unit would be a guess.
func ParseDuration(s string) (Duration, error) {
	if s == "" {
		return 0, errors.New("empty duration; write a number with a unit, e.g. \"5s\"")
	}
	if isBareNumber(s) {
		if s == "0" {
			return 0, nil
		}
		return 0, fmt.Errorf("duration %q has no unit; add one, e.g. \"%ss\" or \"%sms\"", s, s, s)
	}
	neg := false
	rest := s
	if rest[0] == '-' || rest[0] == '+' {
		neg = rest[0] == '-'
		rest = rest[1:]
	}
	var total time.Duration
	for rest != "" {
		num, unit, tail := nextComponent(rest)
		if num == "" || unit == "" {
			return 0, invalidDuration(s)
		}
		part, err := componentValue(num, unit)
		if errors.Is(err, errTooLong) || (err == nil && total > math.MaxInt64-part) {
			return 0, fmt.Errorf("duration %q is too long; the limit is about 106751d", s)
		}
		if err != nil {
			return 0, invalidDuration(s)
		}
		total += part
		rest = tail
	}
	if neg {
		total = -total
	}
	return Duration(total), nil
}

func invalidDuration(s string) error {
	return fmt.Errorf("invalid duration %q; write a number with a unit (ns, us, ms, s, m, h, d), e.g. \"5s\", \"1m30s\", \"7d\"", s)
}

// isBareNumber reports whether s is digits with at most one '.', and an
// optional sign: a duration whose unit was forgotten.
func isBareNumber(s string) bool {
	s = strings.TrimLeft(s, "+-")
	if s == "" || strings.Count(s, ".") > 1 {
		return false
	}
	return strings.Trim(s, "0123456789.") == "" && s != "."
}

// nextComponent splits "12.5ms3s" into "12.5", "ms" and "3s".
func nextComponent(s string) (num, unit, rest string) {
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
	}
	j := i
	for j < len(s) && !(s[j] >= '0' && s[j] <= '9' || s[j] == '.') {
		j++
	}
	return s[:i], s[i:j], s[j:]
}

// componentValue is the length of one number-and-unit component, which is
// never negative.
func componentValue(num, unit string) (time.Duration, error) {
	if unit != "d" {
		return time.ParseDuration(num + unit)
	}
	h, err := time.ParseDuration(num + "h")
	if err != nil {
		return 0, err
	}
	if h > math.MaxInt64/24 {
		return 0, errTooLong
	}
	return h * 24, nil
}
