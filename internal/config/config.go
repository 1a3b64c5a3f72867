package config

import (
	"fmt"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strings"
)

// Load reads the config file at path and parses it with Parse, using path as
// the source name in problems. A file that cannot be read is a plain error;
// a config that is wrong is a Problems.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(data, path)
}

// Parse decodes data strictly, fills the defaults and validates the result.
// source names the input in problems (e.g. "torii.yaml"); it may be empty.
// An empty document is a valid config with every default.
//
// On failure the error is a Problems listing every problem found, each with
// its field path and line, and the returned Config is nil.
func Parse(data []byte, source string) (*Config, error) {
	c := &Config{source: source, lines: map[string]int{}}
	root, probs := parseYAML(data)
	if len(probs) == 0 {
		var skip []string
		if root != nil {
			d := decoder{lines: c.lines}
			d.decodeRoot(root, c)
			probs = d.probs
			skip = d.skipPaths()
		}
		c.ApplyDefaults()
		probs = append(probs, withoutCascades(c.check(), skip)...)
	}
	for i := range probs {
		probs[i].Source = source
	}
	probs.sort()
	if len(probs) > 0 {
		return nil, probs
	}
	return c, nil
}

// withoutCascades drops the validation problems at or below the paths in
// skip, where decoding already failed: a field left empty by a type error
// would otherwise also be reported as missing.
func withoutCascades(found Problems, skip []string) Problems {
	return slices.DeleteFunc(found, func(p Problem) bool {
		return slices.ContainsFunc(skip, func(s string) bool { return within(p.Path, s) })
	})
}

// within reports whether path is base or below it.
func within(path, base string) bool {
	if base == "" || !strings.HasPrefix(path, base) {
		return false
	}
	rest := path[len(base):]
	return rest == "" || rest[0] == '.' || rest[0] == '['
}

// Source returns the name the config was parsed from, as given to Parse.
func (c *Config) Source() string { return c.source }

// Line returns the line where the field at path (as in Problem.Path, e.g.
// "routes[3].backends[1].upstream") was written, or 0 if it was not written
// in the source: a default, or a config built in code.
func (c *Config) Line(path string) int { return c.lines[path] }

// lineNear returns the line of path, or of its closest written ancestor, so
// that a problem with a missing field points at the object lacking it.
func (c *Config) lineNear(path string) int {
	for path != "" {
		if l, ok := c.lines[path]; ok {
			return l
		}
		path = parentPath(path)
	}
	return 0
}

// parentPath strips the last element of a field path: "a.b[2]" -> "a.b",
// "a.b" -> "a".
func parentPath(path string) string {
	if strings.HasSuffix(path, "]") {
		if i := strings.LastIndexByte(path, '['); i >= 0 {
			return path[:i]
		}
	}
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		return path[:i]
	}
	return ""
}

// Redacted returns a deep copy of c with its secrets replaced by "REDACTED":
// the admin token, the values of tracing headers, the Redis and PostgreSQL
// passwords, the path and query of alert webhooks, and the userinfo of the
// tracing endpoint, Alertmanager, JWKS and forward-auth URLs (the password,
// or a lone user name, which is often an API key). The admin API serves
// this copy.
func (c *Config) Redacted() *Config {
	out := deepCopy(reflect.ValueOf(c)).Interface().(*Config)
	out.lines = c.lines // read-only after Parse, so sharing is safe
	out.source = c.source
	if out.Admin.Token != "" {
		out.Admin.Token = redacted
	}
	for k := range out.Tracing.Headers {
		out.Tracing.Headers[k] = redacted
	}
	out.Tracing.Endpoint = redactURL(out.Tracing.Endpoint)
	if out.Redis != nil && out.Redis.Password != "" {
		out.Redis.Password = redacted
	}
	out.Store.Postgres = redactDSN(out.Store.Postgres)
	for _, t := range out.Teams {
		if t == nil {
			continue
		}
		for i := range t.Alerts {
			if t.Alerts[i].Webhook != "" {
				t.Alerts[i].Webhook = redactWebhook(t.Alerts[i].Webhook)
			}
			t.Alerts[i].Alertmanager = redactURL(t.Alerts[i].Alertmanager)
		}
	}
	for i := range out.Routes {
		if a := out.Routes[i].Auth; a != nil {
			if a.JWT != nil {
				a.JWT.JWKS = redactURL(a.JWT.JWKS)
			}
			if a.Forward != nil {
				a.Forward.URL = redactURL(a.Forward.URL)
			}
		}
	}
	return out
}

const redacted = "REDACTED"

// redactDSN hides the password of a PostgreSQL connection string, URL
// ("postgres://user:pw@host/db") or key=value ("password=pw host=...").
func redactDSN(dsn string) string {
	if dsn == "" {
		return ""
	}
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return redacted
		}
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), redacted)
		}
		q := u.Query()
		if q.Has("password") {
			q.Set("password", redacted)
			u.RawQuery = q.Encode()
		}
		return u.String()
	}
	fields := strings.Fields(dsn)
	for i, f := range fields {
		if k, _, ok := strings.Cut(f, "="); ok && strings.EqualFold(k, "password") {
			fields[i] = k + "=" + redacted
		}
	}
	return strings.Join(fields, " ")
}

// redactWebhook keeps a webhook's scheme and host, enough to tell channels
// apart, and hides its path and query, where chat services put tokens.
func redactWebhook(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return redacted
	}
	return u.Scheme + "://" + u.Host + "/" + redacted
}

// redactURL hides the userinfo secret of a URL: the password, or the user
// name when it stands alone.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), redacted)
	} else {
		u.User = url.User(redacted)
	}
	return u.String()
}

// deepCopy copies v, following pointers, slices and maps. Unexported struct
// fields are copied shallowly.
func deepCopy(v reflect.Value) reflect.Value {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return v
		}
		p := reflect.New(v.Type().Elem())
		p.Elem().Set(deepCopy(v.Elem()))
		return p
	case reflect.Slice:
		if v.IsNil() {
			return v
		}
		s := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := range v.Len() {
			s.Index(i).Set(deepCopy(v.Index(i)))
		}
		return s
	case reflect.Map:
		if v.IsNil() {
			return v
		}
		m := reflect.MakeMapWithSize(v.Type(), v.Len())
		for it := v.MapRange(); it.Next(); {
			m.SetMapIndex(it.Key(), deepCopy(it.Value()))
		}
		return m
	case reflect.Struct:
		s := reflect.New(v.Type()).Elem()
		s.Set(v)
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				s.Field(i).Set(deepCopy(v.Field(i)))
			}
		}
		return s
	}
	return v
}
