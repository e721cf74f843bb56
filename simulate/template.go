package simulate

import (
	"fmt"
	"maps"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/event"
)

// A template is a value from switchyard.yaml (a response, a call's body, an
// event's data or subject) whose strings may name values of the exchange being
// simulated: {{id}} (the exchange's id, the same throughout it), {{uuid}} (a new
// id each time), {{now}}, {{request.<field>}}, {{path.<name>}} and
// {{event.<field>}}. A string that is one reference alone takes the referenced
// value with its type (a number stays a number); references inside longer
// strings are replaced by their text.
var reference = regexp.MustCompile(`\{\{\s*([a-z_][a-z0-9_]*(?:\.[A-Za-z0-9_]+)*)\s*\}\}`)

// vars are what an exchange's templates may read.
type vars struct {
	id      string
	request any // the request's JSON body, or its gRPC message in JSON form
	path    map[string]string
	event   any // the data of the event being handled
}

// where a template is used decides what it may read.
type scope struct {
	request, event bool
	path           []string // the path parameters of the endpoint
}

// checkTemplate returns the first reference in t that scope cannot fill.
func checkTemplate(t any, sc scope) error {
	var err error
	walk(t, func(s string) {
		for _, m := range reference.FindAllStringSubmatch(s, -1) {
			if err != nil {
				return
			}
			ns, field, _ := strings.Cut(m[1], ".")
			switch {
			case (ns == "id" || ns == "uuid" || ns == "now") && field == "":
			case ns == "request" && sc.request && field != "":
			case ns == "event" && sc.event && field != "":
			case ns == "path" && field != "":
				found := false
				for _, p := range sc.path {
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

func (sc scope) names() string {
	var b strings.Builder
	if sc.request {
		b.WriteString(", {{request.<field>}}")
	}
	if len(sc.path) > 0 {
		b.WriteString(", {{path.<name>}}")
	}
	if sc.event {
		b.WriteString(", {{event.<field>}}")
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

// render returns a copy of t with its references filled from v.
func render(t any, v *vars) any {
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
			out[k] = render(e, v)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = render(e, v)
		}
		return out
	default:
		return t
	}
}

// renderString renders a template that must come out as text (a subject).
func renderString(t string, v *vars) string { return text(render(t, v)) }

func (v *vars) lookup(name string) any {
	ns, field, _ := strings.Cut(name, ".")
	switch ns {
	case "id":
		return v.id
	case "uuid":
		return event.NewID()
	case "now":
		return time.Now().UTC().Format(time.RFC3339Nano)
	case "path":
		return v.path[field]
	case "request":
		return dig(v.request, field)
	case "event":
		return dig(v.event, field)
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

// merge sets the fields of over onto base (both decoded JSON objects), deeply.
func merge(base, over any) any {
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
		out[k] = merge(out[k], v)
	}
	return out
}
