package contract

import (
	"fmt"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

// Edge is one value at the boundary of what a documented string parameter takes:
// absent, empty, at and past its lengths, with a character its pattern or ASCII
// may refuse. Valid is the document's own verdict on it — the test that sends the
// edges compares the server's answer with that verdict, so either side changing
// alone fails it.
type Edge struct {
	Name    string
	Value   string
	Present bool // false: the parameter is not sent at all
	Valid   bool
}

// Edges returns the edge cases of the parameter named name (a header, query or
// path parameter under components.parameters, or declared inline on an operation)
// of doc. Each value differs from the others (seed gives it its own characters, so
// that a key used as an identity, such as Idempotency-Key, is new in each case).
func Edges(doc *openapi3.T, name, seed string) ([]Edge, error) {
	p := parameter(doc, name)
	if p == nil || p.Schema == nil || p.Schema.Value == nil {
		return nil, fmt.Errorf("contract: no parameter %q with a schema in the document", name)
	}
	s := p.Schema.Value
	if !s.Type.Is(openapi3.TypeString) {
		return nil, fmt.Errorf("contract: parameter %q is not a string", name)
	}
	fill := func(n int, tag string) string {
		v := seed + tag
		for len(v) < n {
			v += "x"
		}
		return v[:max(n, 0)]
	}
	long := s.MaxLength
	var raw []Edge
	raw = append(raw, Edge{Name: "absent"}, Edge{Name: "empty", Present: true})
	lo := int(s.MinLength)
	raw = append(raw, Edge{Name: fmt.Sprintf("%d characters (the least)", max(lo, 1)), Value: fill(max(lo, 1), "a"), Present: true})
	if lo > 1 {
		raw = append(raw, Edge{Name: fmt.Sprintf("%d characters (one too few)", lo-1), Value: fill(lo-1, "b"), Present: true})
	}
	for _, n := range []uint64{64, 65, 255, 256} {
		if long == nil || n <= *long+1 {
			raw = append(raw, Edge{Name: fmt.Sprintf("%d characters", n), Value: fill(int(n), fmt.Sprintf("c%d", n)), Present: true})
		}
	}
	if long != nil && *long != 64 && *long != 255 {
		raw = append(raw, Edge{Name: fmt.Sprintf("%d characters (the most)", *long), Value: fill(int(*long), "d"), Present: true},
			Edge{Name: fmt.Sprintf("%d characters (one too many)", *long+1), Value: fill(int(*long)+1, "e"), Present: true})
	}
	for _, c := range []struct{ name, value string }{
		{"a space inside", seed + "f x"},
		{"a tab inside", seed + "g\tx"},
		{"a non-ASCII letter", seed + "hé"},
		{"punctuation", seed + "i:/-_.~!"},
	} {
		raw = append(raw, Edge{Name: c.name, Value: c.value, Present: true})
	}
	for i := range raw {
		e := &raw[i]
		if !e.Present {
			e.Valid = !p.Required
			continue
		}
		e.Valid = s.VisitJSON(e.Value) == nil
	}
	return raw, nil
}

func parameter(doc *openapi3.T, name string) *openapi3.Parameter {
	if doc.Components != nil {
		for _, ref := range doc.Components.Parameters {
			if ref.Value != nil && strings.EqualFold(ref.Value.Name, name) {
				return ref.Value
			}
		}
	}
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			for _, ref := range op.Parameters {
				if ref.Value != nil && strings.EqualFold(ref.Value.Name, name) {
					return ref.Value
				}
			}
		}
	}
	return nil
}
