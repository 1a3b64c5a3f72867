package compress

import "strings"

// qMax is the weight of a coding listed without one: q=1, in thousandths.
const qMax = 1000

// negotiate chooses a content coding from the Accept-Encoding field
// lines of a request (RFC 9110 §12.5.3). It returns the index in offered
// (the server's codings, most preferred first) of the coding with the
// highest weight, ties going to the earlier one, or -1 when none is
// acceptable.
//
// Codings are matched ignoring case, and "x-gzip" is gzip (RFC 9110
// §8.4.1.3). "*" weighs every coding not listed by name. q=0 excludes a
// coding. When the client lists identity with a weight above the best
// coding's, it prefers the body uncompressed and gets that. An element
// whose weight cannot be parsed is ignored as a whole, so garbage never
// makes a coding acceptable. When a coding is listed twice the first
// listing counts. An absent or empty field accepts no coding here:
// RFC 9110 lets a server compress for a client that sent no field, but
// clients that decode send one, and the others may not decode.
func negotiate(fields []string, offered []string) int {
	var weights [8]int // by index in offered; -1 not listed
	if len(offered) > len(weights) {
		offered = offered[:len(weights)]
	}
	for i := range offered {
		weights[i] = -1
	}
	star, identity := -1, -1
	for _, field := range fields {
		for field != "" {
			var elem string
			elem, field, _ = strings.Cut(field, ",")
			name, params, _ := strings.Cut(elem, ";")
			name = strings.TrimSpace(name)
			if name == "" {
				continue
			}
			q, ok := weight(params)
			if !ok {
				continue
			}
			switch {
			case name == "*":
				if star < 0 {
					star = q
				}
			case strings.EqualFold(name, "identity"):
				if identity < 0 {
					identity = q
				}
			default:
				for i, o := range offered {
					if weights[i] < 0 && (strings.EqualFold(name, o) || (o == "gzip" && strings.EqualFold(name, "x-gzip"))) {
						weights[i] = q
					}
				}
			}
		}
	}
	best, bestQ := -1, 0
	for i := range offered {
		q := weights[i]
		if q < 0 {
			q = star // not listed: "*" decides, or it is unacceptable
		}
		if q > bestQ {
			best, bestQ = i, q
		}
	}
	if identity > bestQ {
		return -1
	}
	return best
}

// weight returns the q parameter among the ;-separated params of an
// Accept-Encoding element, in thousandths: qMax when there is none. It
// reports false when q is malformed. Other parameters are ignored.
func weight(params string) (int, bool) {
	q := qMax
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		name, value, _ := strings.Cut(p, "=")
		if !strings.EqualFold(strings.TrimSpace(name), "q") {
			continue
		}
		var ok bool
		if q, ok = parseQ(strings.TrimSpace(value)); !ok {
			return 0, false
		}
	}
	return q, true
}

// parseQ parses a qvalue (RFC 9110 §12.4.2): "0" to "1" with at most
// three decimals, in thousandths.
func parseQ(s string) (int, bool) {
	if s == "" || (s[0] != '0' && s[0] != '1') {
		return 0, false
	}
	whole := int(s[0] - '0')
	frac := s[1:]
	if frac != "" {
		if frac[0] != '.' || len(frac) > 4 {
			return 0, false
		}
		frac = frac[1:]
	}
	q, scale := whole*qMax, qMax
	for i := 0; i < len(frac); i++ {
		c := frac[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		scale /= 10
		q += int(c-'0') * scale
	}
	if q > qMax {
		return 0, false // "1.5"
	}
	return q, true
}
