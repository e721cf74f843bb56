// Package tmpl fills the templates of switchyard.yaml: a value (a response, a
// request body, an event's data or subject) whose strings may name values of the
// exchange being simulated or sent — {{id}} (the exchange's id, the same
// throughout it), {{uuid}} (a new id each time), {{now}}, {{request.<field>}},
// {{path.<name>}}, {{event.<field>}} and, in a gateway route's response template,
// {{response.<field>}} (or {{response}}, the whole answer). A string that is one reference alone
// takes the referenced value with its type (a number stays a number); references
// inside longer strings are replaced by their text.
//
// Go's text/template would let a file run arbitrary pipelines over our values and
// offers nothing for typed substitution into JSON; these six names are all a
// declaration needs, and each is checked where it is used.
package tmpl

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/event"
)

var reference = regexp.MustCompile(`\{\{\s*([a-z_][a-z0-9_]*(?:\.[A-Za-z0-9_]+)*)\s*\}\}`)

// Vars are what an exchange's templates may read.
type Vars struct {
	ID      string
	Request any // the request's JSON body, or its gRPC message in JSON form
	Path    map[string]string
	Event   any // the data of the event being handled
	// Response is the answer a gateway route reshapes (its response template).
	Response any
}

// Scope is what a template may read where it is used.
type Scope struct {
	Request, Event bool
	// Response allows {{response}} (the whole answer) and {{response.<field>}}.
	Response bool
	Path     []string // the path parameters of the endpoint
}

// Check returns the first reference in t that the scope cannot fill.
func Check(t any, sc Scope) error {
	var err error
	walk(t, func(s string) {
		for _, m := range reference.FindAllStringSubmatch(s, -1) {
			if err != nil {
				return
			}
			ns, field, _ := strings.Cut(m[1], ".")
			switch {
			case (ns == "id" || ns == "uuid" || ns == "now") && field == "":
			case ns == "request" && sc.Request && field != "":
			case ns == "event" && sc.Event && field != "":
			case ns == "response" && sc.Response:
			case ns == "path" && field != "":
				found := false
				for _, p := range sc.Path {
					found = found || p == field
				}
				if !found {
					err = fmt.Errorf("{{%s}}: the endpoint's path has no {%s}", m[1], field)
				}
			default:
				err = fmt.Errorf("{{%s}} is not something this template can read: {{id}}, {{uuid}}, {{now}}%s", m[1], sc.names())
			}
		}
	})
	return err
}

func (sc Scope) names() string {
	var b strings.Builder
	if sc.Request {
		b.WriteString(", {{request.<field>}}")
	}
	if len(sc.Path) > 0 {
		b.WriteString(", {{path.<name>}}")
	}
	if sc.Event {
		b.WriteString(", {{event.<field>}}")
	}
	if sc.Response {
		b.WriteString(", {{response}}, {{response.<field>}}")
	}
	return b.String()
}

func walk(t any, fn func(string)) {
	switch v := t.(type) {
	case string:
		fn(v)
	case map[string]any:
		for _, x := range v {
			walk(x, fn)
		}
	case []any:
		for _, x := range v {
			walk(x, fn)
		}
	}
}

// Render returns a copy of t with its references filled from v.
func Render(t any, v *Vars) any {
	switch x := t.(type) {
	case string:
		if m := reference.FindStringSubmatchIndex(x); m != nil && m[0] == 0 && m[1] == len(x) {
			return v.lookup(x[m[2]:m[3]])
		}
		if !strings.Contains(x, "{{") {
			return x
		}
		return reference.ReplaceAllStringFunc(x, func(ref string) string {
			return text(v.lookup(reference.FindStringSubmatch(ref)[1]))
		})
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = Render(e, v)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = Render(e, v)
		}
		return out
	default:
		return t
	}
}

// RenderString renders a template that must come out as text (a subject).
func RenderString(t string, v *Vars) string { return text(Render(t, v)) }

func (v *Vars) lookup(name string) any {
	ns, field, _ := strings.Cut(name, ".")
	switch ns {
	case "id":
		return v.ID
	case "uuid":
		return event.NewID()
	case "now":
		return time.Now().UTC().Format(time.RFC3339Nano)
	case "path":
		return v.Path[field]
	case "request":
		return dig(v.Request, field)
	case "event":
		return dig(v.Event, field)
	case "response":
		if field == "" {
			return v.Response
		}
		return dig(v.Response, field)
	}
	return nil
}

// dig follows a dotted path through decoded JSON; nil when it leads nowhere.
func dig(v any, path string) any {
	for _, seg := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			v = x[seg]
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

func text(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	default:
		return fmt.Sprint(x)
	}
}

// Merge sets the fields of over onto base (both decoded JSON objects), deeply.
func Merge(base, over any) any {
	b, ok1 := base.(map[string]any)
	o, ok2 := over.(map[string]any)
	if !ok1 || !ok2 {
		if over == nil {
			return base
		}
		return over
	}
	out := maps.Clone(b)
	for k, v := range o {
		out[k] = Merge(out[k], v)
	}
	return out
}

// FillPath fills a path pattern's {names}: with the exchange's own path parameter
// of that name, else a new id.
func FillPath(pattern string, v *Vars) string {
	if !strings.Contains(pattern, "{") {
		return pattern
	}
	segs := strings.Split(pattern, "/")
	for i, seg := range segs {
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
			name := strings.TrimSuffix(seg[1:len(seg)-1], "...")
			if got := v.Path[name]; got != "" {
				segs[i] = got
			} else {
				segs[i] = event.NewID()
			}
		}
	}
	return strings.Join(segs, "/")
}

// Params lists the {names} of a path pattern.
func Params(path string) []string {
	var out []string
	for _, seg := range strings.Split(path, "/") {
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
			out = append(out, strings.TrimSuffix(seg[1:len(seg)-1], "..."))
		}
	}
	return out
}

// JSON is a template compiled to its JSON encoding: the literal text encoded
// once, the references left as holes filled per exchange. It writes what
// encoding/json would write of Render's result — keys sorted, HTML escaped — at
// the cost of the holes alone.
type JSON struct{ parts []part }

// part is literal JSON, or a hole: a string with references inside (written as
// a JSON string) or one reference alone (written as its value's JSON).
type part struct {
	lit      []byte
	str, ref string
}

// CompileJSON compiles t; it fails for a value encoding/json cannot write.
func CompileJSON(t any) (*JSON, error) {
	j := &JSON{}
	var lit []byte
	flush := func() {
		if len(lit) > 0 {
			j.parts = append(j.parts, part{lit: lit})
			lit = nil
		}
	}
	var walk func(t any) error
	walk = func(t any) error {
		switch x := t.(type) {
		case string:
			if m := reference.FindStringSubmatchIndex(x); m != nil && m[0] == 0 && m[1] == len(x) {
				flush()
				j.parts = append(j.parts, part{ref: x[m[2]:m[3]]})
				return nil
			}
			if strings.Contains(x, "{{") {
				flush()
				j.parts = append(j.parts, part{str: x})
				return nil
			}
		case map[string]any:
			lit = append(lit, '{')
			for i, k := range slices.Sorted(maps.Keys(x)) {
				if i > 0 {
					lit = append(lit, ',')
				}
				key, _ := json.Marshal(k)
				lit = append(append(lit, key...), ':')
				if err := walk(x[k]); err != nil {
					return err
				}
			}
			lit = append(lit, '}')
			return nil
		case []any:
			lit = append(lit, '[')
			for i, e := range x {
				if i > 0 {
					lit = append(lit, ',')
				}
				if err := walk(e); err != nil {
					return err
				}
			}
			lit = append(lit, ']')
			return nil
		}
		b, err := json.Marshal(t)
		if err != nil {
			return err
		}
		lit = append(lit, b...)
		return nil
	}
	if err := walk(t); err != nil {
		return nil, err
	}
	lit = append(lit, '\n') // as json.Encoder ends a value
	flush()
	return j, nil
}

// Append appends the template's JSON, filled from v, to dst.
func (j *JSON) Append(dst []byte, v *Vars) []byte {
	for _, p := range j.parts {
		switch {
		case p.lit != nil:
			dst = append(dst, p.lit...)
		case p.ref != "":
			b, err := json.Marshal(v.lookup(p.ref))
			if err != nil {
				b = []byte("null") // decoded JSON always encodes; nothing else reaches a hole
			}
			dst = append(dst, b...)
		default:
			b, _ := json.Marshal(Render(p.str, v))
			dst = append(dst, b...)
		}
	}
	return dst
}
