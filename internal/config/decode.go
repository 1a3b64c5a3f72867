package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The decoder walks the yaml.Node tree itself, instead of calling
// yaml.Unmarshal, so that it can report every problem (not only the first),
// each with its field path and line, and record where each field was written
// for the problems validation finds later.

var (
	durationType = reflect.TypeFor[Duration]()
	endpointType = reflect.TypeFor[Endpoint]()
)

// decoder holds what a walk has found so far.
type decoder struct {
	// lines maps each decoded field path to its line.
	lines map[string]int
	// probs are the problems found while decoding.
	probs Problems
	// suggested are the paths of keys suggested for misspelt ones; the
	// problems validation finds there (such as "addr is required" after
	// "adr") follow from the typo and are not reported.
	suggested []string
}

// parseYAML parses data into the root node of its single document. A nil
// root with no problem means the file is empty.
func parseYAML(data []byte) (root *yaml.Node, probs Problems) {
	defer func() {
		// The YAML library is not ours; a panic in it on hostile input
		// must not take the gateway down during a reload.
		if r := recover(); r != nil {
			root, probs = nil, Problems{{Msg: fmt.Sprintf("invalid yaml: %v", r)}}
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, Problems{yamlProblem(err)}
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		line := next.Line
		if len(next.Content) > 0 {
			line = next.Content[0].Line
		}
		return nil, Problems{{Line: line, Msg: "multiple yaml documents in one file; a config is one document, so remove the \"---\" and everything after it, or merge the documents"}}
	case !errors.Is(err, io.EOF):
		return nil, Problems{yamlProblem(err)}
	}
	if len(doc.Content) == 0 || isNull(doc.Content[0]) {
		return nil, nil
	}
	return doc.Content[0], nil
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlProblem turns a YAML syntax error into a file-level problem, moving
// the line number out of the message.
func yamlProblem(err error) Problem {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return Problem{Line: line, Msg: "invalid yaml: " + m[2]}
	}
	return Problem{Msg: "invalid yaml: " + strings.TrimPrefix(msg, "yaml: ")}
}

// skipPaths returns the paths whose validation problems would only repeat a
// decoding problem.
func (d *decoder) skipPaths() []string {
	paths := slices.Clone(d.suggested)
	for _, p := range d.probs {
		paths = append(paths, p.Path)
	}
	return paths
}

// decodeRoot decodes the top-level mapping into c.
func (d *decoder) decodeRoot(root *yaml.Node, c *Config) {
	if !d.plain(root, "") {
		return
	}
	if root.Kind != yaml.MappingNode {
		d.add(root, "", "the top level must be a map of settings such as listen, upstreams and routes, got "+describe(root))
		return
	}
	d.decode(root, reflect.ValueOf(c).Elem(), "")
}

// add records a problem at n. A problem with no path is about the document
// as a whole, and says so.
func (d *decoder) add(n *yaml.Node, path, msg string) {
	if path == "" && !strings.HasPrefix(msg, "the top level") {
		msg = "the top level: " + msg
	}
	d.probs = append(d.probs, Problem{Line: n.Line, Path: path, Msg: msg})
}

// decode stores n into v, whose field path is path.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if !d.plain(n, path) || isNull(n) {
		return
	}
	switch v.Type() {
	case durationType:
		d.duration(n, v, path)
		return
	case endpointType:
		if n.Kind == yaml.ScalarNode {
			d.endpoint(n, v, path)
			return
		}
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, v.Elem(), path)
	case reflect.Struct:
		if d.expect(n, yaml.MappingNode, path) {
			d.structFields(n, v, path)
		}
	case reflect.Map:
		if d.expect(n, yaml.MappingNode, path) {
			d.mapEntries(n, v, path)
		}
	case reflect.Slice:
		if d.expect(n, yaml.SequenceNode, path) {
			d.sequence(n, v, path)
		}
	default:
		d.scalar(n, v, path)
	}
}

// plain reports whether n is free of the YAML features the config does not
// support: aliases, anchors and custom tags. It reports the problem if not.
func (d *decoder) plain(n *yaml.Node, path string) bool {
	switch {
	case n.Kind == yaml.AliasNode:
		d.add(n, path, fmt.Sprintf("yaml aliases (*%s) are not supported; write the value out in full", n.Value))
		return false
	case n.Anchor != "":
		d.add(n, path, fmt.Sprintf("yaml anchors (&%s) are not supported; remove the anchor", n.Anchor))
		return false
	case !strings.HasPrefix(n.ShortTag(), "!!"):
		d.add(n, path, fmt.Sprintf("yaml tag %s is not supported; remove it", n.Tag))
		return false
	}
	return true
}

// expect reports whether n is of the wanted kind, reporting it if not.
func (d *decoder) expect(n *yaml.Node, want yaml.Kind, path string) bool {
	if n.Kind == want {
		return true
	}
	msg := "must be a " + kindName(want) + ", got " + describe(n)
	if want == yaml.SequenceNode && n.Kind == yaml.ScalarNode {
		msg += fmt.Sprintf("; write a list even for one item, e.g. [%s]", n.Value)
	}
	d.add(n, path, msg)
	return false
}

// structFields decodes a mapping into the struct v, field by yaml name.
func (d *decoder) structFields(n *yaml.Node, v reflect.Value, path string) {
	fields, names := fieldsOf(v.Type())
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		name, ok := d.key(k, path, seen)
		if !ok {
			continue
		}
		p := join(path, name)
		idx, ok := fields[name]
		if !ok {
			d.unknownKey(k, path, name, names)
			continue
		}
		d.lines[p] = k.Line
		d.decode(val, v.Field(idx), p)
	}
}

// mapEntries decodes a mapping into the map v, keyed by string. An empty
// mapping leaves v nil: empty and unset mean the same.
func (d *decoder) mapEntries(n *yaml.Node, v reflect.Value, path string) {
	if v.IsNil() && len(n.Content) > 0 {
		v.Set(reflect.MakeMapWithSize(v.Type(), len(n.Content)/2))
	}
	elemType := v.Type().Elem()
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		name, ok := d.key(k, path, seen)
		if !ok {
			continue
		}
		p := join(path, name)
		d.lines[p] = k.Line
		elem := reflect.New(elemType).Elem()
		if elemType.Kind() == reflect.Pointer {
			// A named entry with an empty body ("monolith:") is still an
			// entry, so validation can say what it lacks.
			elem.Set(reflect.New(elemType.Elem()))
		}
		d.decode(val, elem, p)
		v.SetMapIndex(reflect.ValueOf(name).Convert(v.Type().Key()), elem)
	}
}

// key returns the mapping key k as a string, reporting keys that are not
// plain strings or repeat an earlier key of the same mapping.
func (d *decoder) key(k *yaml.Node, path string, seen map[string]int) (string, bool) {
	if k.Kind == yaml.ScalarNode {
		path = join(path, k.Value)
	}
	if !d.plain(k, path) {
		return "", false
	}
	if k.Kind != yaml.ScalarNode {
		d.add(k, path, "map keys must be strings, got "+describe(k))
		return "", false
	}
	if k.ShortTag() == "!!merge" {
		d.add(k, path, "yaml merge keys (<<) are not supported; write the keys out in full")
		return "", false
	}
	if first, dup := seen[k.Value]; dup {
		d.add(k, path, fmt.Sprintf("duplicate key %q, first set on line %d; keep only one", k.Value, first))
		return "", false
	}
	seen[k.Value] = k.Line
	return k.Value, true
}

// sequence decodes a sequence into the slice v. An empty sequence leaves v
// nil: empty and unset mean the same.
func (d *decoder) sequence(n *yaml.Node, v reflect.Value, path string) {
	if len(n.Content) == 0 {
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		p := path + "[" + strconv.Itoa(i) + "]"
		d.lines[p] = item.Line
		d.decode(item, s.Index(i), p)
	}
	v.Set(s)
}

// scalar decodes a string, integer, float or boolean.
func (d *decoder) scalar(n *yaml.Node, v reflect.Value, path string) {
	kind := v.Kind()
	want := map[reflect.Kind]string{
		reflect.String: "a string", reflect.Int: "an integer",
		reflect.Float64: "a number", reflect.Bool: "true or false",
	}[kind]
	if want == "" {
		panic("config: no decoder for " + v.Type().String()) // a schema bug, caught by tests
	}
	if n.Kind != yaml.ScalarNode {
		d.add(n, path, "must be "+want+", got "+describe(n))
		return
	}
	tag := n.ShortTag()
	ok := false
	switch kind {
	case reflect.String:
		v.SetString(n.Value)
		return
	case reflect.Int:
		ok = tag == "!!int"
	case reflect.Float64:
		ok = tag == "!!int" || tag == "!!float"
	case reflect.Bool:
		ok = tag == "!!bool"
	}
	if !ok {
		d.add(n, path, "must be "+want+", got "+describe(n)+scalarHint(n, kind))
		return
	}
	if err := n.Decode(v.Addr().Interface()); err != nil {
		d.add(n, path, fmt.Sprintf("%s is out of range", n.Value))
		return
	}
	if kind == reflect.Float64 && (math.IsNaN(v.Float()) || math.IsInf(v.Float(), 0)) {
		v.SetFloat(0)
		d.add(n, path, "must be a finite number, got "+n.Value)
	}
}

// scalarHint explains the likely cause of a scalar of the wrong type: quotes
// around a number or boolean, or an integer too large for its field.
func scalarHint(n *yaml.Node, kind reflect.Kind) string {
	plain := yaml.Node{Kind: yaml.ScalarNode, Value: n.Value}
	tag := plain.ShortTag()
	quoted := n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0
	switch {
	case quoted && (tag == "!!int" || tag == "!!bool" || (tag == "!!float" && kind == reflect.Float64)):
		return "; remove the quotes"
	case !quoted && kind == reflect.Int && strings.Trim(n.Value, "+-0123456789") == "":
		return "; the number is out of range"
	}
	return ""
}

// duration decodes a Duration from a string such as "5s" or "30d".
func (d *decoder) duration(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.ScalarNode {
		d.add(n, path, "must be a duration such as \"5s\", got "+describe(n))
		return
	}
	dur, err := ParseDuration(n.Value)
	if err != nil {
		d.add(n, path, err.Error())
		return
	}
	if dur < 0 {
		d.add(n, path, fmt.Sprintf("negative duration %q; durations must be zero or more", n.Value))
		return
	}
	v.SetInt(int64(dur))
}

// endpoint decodes the "host:port" shorthand of an Endpoint.
func (d *decoder) endpoint(n *yaml.Node, v reflect.Value, path string) {
	if n.ShortTag() != "!!str" {
		d.add(n, path, fmt.Sprintf("must be \"host:port\" or a map {addr, weight}, got %s", describe(n)))
		return
	}
	v.Addr().Interface().(*Endpoint).Addr = n.Value
}

// fieldsOf maps the yaml names of t's exported fields to their index, and
// returns the names sorted, for suggestions.
func fieldsOf(t reflect.Type) (map[string]int, []string) {
	fields := make(map[string]int, t.NumField())
	var names []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "" || name == "-" {
			continue
		}
		fields[name] = i
		names = append(names, name)
	}
	slices.Sort(names)
	return fields, names
}

func (d *decoder) unknownKey(k *yaml.Node, path, name string, valid []string) {
	p := join(path, name)
	if s := suggest(name, valid); s != "" {
		d.suggested = append(d.suggested, join(path, s))
		d.add(k, p, fmt.Sprintf("unknown key %q; did you mean %q?", name, s))
		return
	}
	d.add(k, p, fmt.Sprintf("unknown key %q; valid keys are %s", name, strings.Join(valid, ", ")))
}

// join appends a map key to a field path.
func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "map"
	case yaml.SequenceNode:
		return "list"
	}
	return "value"
}

// describe names what n is, for "got ..." in messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a map"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	if len(n.Value) > 40 {
		return strconv.Quote(n.Value[:40] + "...")
	}
	return strconv.Quote(n.Value)
}
